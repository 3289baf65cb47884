//! Stream names per aggregate category: `lead-<uuid>`, `catalog-<part>`, `subject-<uuid>`,
//! `ops-<scope>`; each new aggregate
//! (tasks, contacts...) adds its category here, so one place builds and parses every name.

use leadflow_domain::{
    Aggregate, CatalogAggregate, CatalogPart, LeadAggregate, LeadId, OpsAggregate, OpsScope,
    SubjectAggregate, SubjectId,
};

use crate::aggregates::Stored;
use leadflow_store::StreamName;

/// The stream of one instance of aggregate `A`: `<category>-<id>`.
pub fn stream_of<A: Aggregate>(id: A::Id) -> StreamName {
    StreamName::parse(format!("{}-{id}", A::CATEGORY)).expect("aggregate stream names are valid")
}

/// The stream of a lead.
pub fn lead_stream(id: LeadId) -> StreamName {
    stream_of::<LeadAggregate>(id)
}

/// The stream of one part of the catalog (`catalog-users`).
pub fn catalog_stream(part: CatalogPart) -> StreamName {
    stream_of::<CatalogAggregate>(part)
}

/// The stream of a data subject (what was done with their data on request).
pub fn subject_stream(id: SubjectId) -> StreamName {
    stream_of::<SubjectAggregate>(id)
}

/// The stream of what operators did (`ops-readmodels`).
pub fn ops_stream(scope: OpsScope) -> StreamName {
    stream_of::<OpsAggregate>(scope)
}

/// The id of aggregate `A` that `name` designates, if it is a stream of `A`'s category; a
/// name of the category with a malformed id is an error.
fn id_in<A: Stored>(name: &str) -> Option<Result<A::Id, String>> {
    let id = name.strip_prefix(A::CATEGORY)?.strip_prefix('-')?;
    Some(A::parse_id(id).map_err(|e| format!("stream {name}: {e}")))
}

/// What a stream name designates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StreamRef {
    Lead(LeadId),
    Catalog(CatalogPart),
    Subject(SubjectId),
    Ops(OpsScope),
    /// A stream of no category this build knows (system streams, other writers).
    Other,
}

impl StreamRef {
    /// Parses `name`; a name of a known category with a malformed id is an error.
    pub fn parse(name: &str) -> Result<Self, String> {
        if let Some(lead) = id_in::<LeadAggregate>(name) {
            return lead.map(Self::Lead);
        }
        if let Some(part) = id_in::<CatalogAggregate>(name) {
            return part.map(Self::Catalog);
        }
        if let Some(subject) = id_in::<SubjectAggregate>(name) {
            return subject.map(Self::Subject);
        }
        // An ops stream of a scope this build does not know (a newer node's, over a shared
        // EventStoreDB) is none of its business: never poison for the read models.
        if let Some(Ok(scope)) = id_in::<OpsAggregate>(name) {
            return Ok(Self::Ops(scope));
        }
        Ok(Self::Other)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lead_streams_round_trip_and_others_are_other() {
        let id = LeadId::from_uuid(uuid::Uuid::from_u128(9));
        let name = lead_stream(id);
        assert_eq!(StreamRef::parse(name.as_str()), Ok(StreamRef::Lead(id)));
        assert_eq!(StreamRef::parse("$all-ish"), Ok(StreamRef::Other));
        assert!(StreamRef::parse("lead-not-a-uuid").is_err());
        let users = catalog_stream(CatalogPart::Users);
        assert_eq!(users.as_str(), "catalog-users");
        assert_eq!(
            StreamRef::parse(users.as_str()),
            Ok(StreamRef::Catalog(CatalogPart::Users))
        );
        assert!(StreamRef::parse("catalog-nope").is_err());
        let ops = ops_stream(OpsScope::ReadModels);
        assert_eq!(ops.as_str(), "ops-readmodels");
        assert_eq!(
            StreamRef::parse(ops.as_str()),
            Ok(StreamRef::Ops(OpsScope::ReadModels))
        );
        assert_eq!(StreamRef::parse("ops-backups"), Ok(StreamRef::Other));
    }
}
