//! Stream names per aggregate category: `lead-<uuid>` today; each new aggregate (the catalog,
//! tasks, contacts...) adds its category here, so one place builds and parses every name.

use leadflow_domain::{Aggregate, LeadAggregate, LeadId};
use leadflow_store::StreamName;

/// The stream of one instance of aggregate `A`: `<category>-<id>`.
pub fn stream_of<A: Aggregate>(id: A::Id) -> StreamName {
    StreamName::parse(format!("{}-{id}", A::CATEGORY)).expect("aggregate stream names are valid")
}

/// The stream of a lead.
pub fn lead_stream(id: LeadId) -> StreamName {
    stream_of::<LeadAggregate>(id)
}

/// What a stream name designates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StreamRef {
    Lead(LeadId),
    /// A stream of no category this build knows (system streams, other writers).
    Other,
}

impl StreamRef {
    /// Parses `name`; a name of a known category with a malformed id is an error.
    pub fn parse(name: &str) -> Result<Self, String> {
        let lead = name
            .strip_prefix(LeadAggregate::CATEGORY)
            .and_then(|rest| rest.strip_prefix('-'));
        match lead {
            Some(id) => LeadId::parse(id)
                .map(Self::Lead)
                .map_err(|e| format!("stream {name}: {e}")),
            None => Ok(Self::Other),
        }
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
    }
}
