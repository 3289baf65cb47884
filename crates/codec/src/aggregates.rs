//! Each aggregate's events as stored, behind one trait, so the engine runs every aggregate on
//! one generic path and the read side decodes them alike.

use leadflow_domain::{
    Aggregate, CatalogAggregate, CatalogEvent, CatalogPart, CommandName, Lead, LeadAggregate,
    LeadEvent, LeadId, OpsAggregate, OpsCommand, OpsEvent, OpsScope, SubjectAggregate,
    SubjectCommand, SubjectEvent, SubjectId,
};

use crate::lead::CodecError;

/// An [`Aggregate`] whose events this build can store and read back.
pub trait Stored: Aggregate {
    fn event_type(event: &Self::Event) -> &'static str;
    /// The payload's schema version.
    fn version(event: &Self::Event) -> u32;
    fn encode(event: &Self::Event) -> Vec<u8>;
    /// The payload as a JSON value, to seal its personal fields in place.
    fn encode_value(event: &Self::Event) -> serde_json::Value;
    fn decode(event_type: &str, version: u32, data: &[u8]) -> Result<Self::Event, CodecError>;
    /// The id in a stream name (`lead-<id>` -> `<id>`).
    fn parse_id(raw: &str) -> Result<Self::Id, String>;
    /// A command name read back from metadata, if it is one of this aggregate's.
    fn known_command(name: &str) -> Option<&'static str>;
    /// The data subject whose key seals `event`'s personal fields, given the state before it
    /// (issue 20); `None` for aggregates that hold no one's personal data, and for events
    /// that carry no personal value (nothing to seal, so readers need no key for them).
    fn subject(state: Option<&Self::State>, event: &Self::Event) -> Option<uuid::Uuid> {
        let _ = (state, event);
        None
    }
}

impl Stored for LeadAggregate {
    fn event_type(event: &LeadEvent) -> &'static str {
        event.event_type()
    }

    fn version(event: &LeadEvent) -> u32 {
        event.version()
    }

    fn encode(event: &LeadEvent) -> Vec<u8> {
        crate::lead::encode(event)
    }

    fn encode_value(event: &LeadEvent) -> serde_json::Value {
        crate::lead::encode_value(event)
    }

    fn decode(event_type: &str, version: u32, data: &[u8]) -> Result<LeadEvent, CodecError> {
        crate::lead::decode(event_type, version, data)
    }

    fn parse_id(raw: &str) -> Result<LeadId, String> {
        LeadId::parse(raw).map_err(|e| e.to_string())
    }

    fn known_command(name: &str) -> Option<&'static str> {
        CommandName::parse(name).map(CommandName::as_str)
    }

    fn subject(state: Option<&Lead>, event: &LeadEvent) -> Option<uuid::Uuid> {
        if !crate::seal::has_personal_fields(event.event_type()) || !event.holds_personal_data() {
            return None;
        }
        match event {
            LeadEvent::LeadRegistered(e) => Some(e.subject.as_uuid()),
            _ => state.map(|lead| lead.subject.as_uuid()),
        }
    }
}

impl Stored for CatalogAggregate {
    fn event_type(event: &CatalogEvent) -> &'static str {
        event.event_type()
    }

    fn version(event: &CatalogEvent) -> u32 {
        event.version()
    }

    fn encode(event: &CatalogEvent) -> Vec<u8> {
        crate::catalog::encode(event)
    }

    fn encode_value(event: &CatalogEvent) -> serde_json::Value {
        crate::catalog::encode_value(event)
    }

    fn decode(event_type: &str, version: u32, data: &[u8]) -> Result<CatalogEvent, CodecError> {
        crate::catalog::decode(event_type, version, data)
    }

    fn parse_id(raw: &str) -> Result<CatalogPart, String> {
        CatalogPart::parse(raw).ok_or_else(|| format!("no catalog part is named {raw:?}"))
    }

    fn known_command(name: &str) -> Option<&'static str> {
        leadflow_domain::CatalogCommand::NAMES
            .into_iter()
            .find(|n| *n == name)
    }
}

impl Stored for SubjectAggregate {
    fn event_type(event: &SubjectEvent) -> &'static str {
        event.event_type()
    }

    fn version(event: &SubjectEvent) -> u32 {
        event.version()
    }

    fn encode(event: &SubjectEvent) -> Vec<u8> {
        crate::subject::encode(event)
    }

    fn encode_value(event: &SubjectEvent) -> serde_json::Value {
        crate::subject::encode_value(event)
    }

    fn decode(event_type: &str, version: u32, data: &[u8]) -> Result<SubjectEvent, CodecError> {
        crate::subject::decode(event_type, version, data)
    }

    fn parse_id(raw: &str) -> Result<SubjectId, String> {
        SubjectId::parse(raw).map_err(|e| e.to_string())
    }

    fn known_command(name: &str) -> Option<&'static str> {
        SubjectCommand::NAMES.into_iter().find(|n| *n == name)
    }
}

impl Stored for OpsAggregate {
    fn event_type(event: &OpsEvent) -> &'static str {
        event.event_type()
    }

    fn version(event: &OpsEvent) -> u32 {
        event.version()
    }

    fn encode(event: &OpsEvent) -> Vec<u8> {
        crate::ops::encode(event)
    }

    fn encode_value(event: &OpsEvent) -> serde_json::Value {
        crate::ops::encode_value(event)
    }

    fn decode(event_type: &str, version: u32, data: &[u8]) -> Result<OpsEvent, CodecError> {
        crate::ops::decode(event_type, version, data)
    }

    fn parse_id(raw: &str) -> Result<OpsScope, String> {
        OpsScope::parse(raw).ok_or_else(|| format!("no ops stream is named {raw:?}"))
    }

    fn known_command(name: &str) -> Option<&'static str> {
        OpsCommand::NAMES.into_iter().find(|n| *n == name)
    }
}
