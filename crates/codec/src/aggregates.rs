//! Each aggregate's events as stored, behind one trait, so the engine runs every aggregate on
//! one generic path and the read side decodes them alike.

use leadflow_domain::{
    Aggregate, CatalogAggregate, CatalogEvent, CatalogPart, CommandName, LeadAggregate, LeadEvent,
    LeadId,
};

use crate::lead::CodecError;

/// An [`Aggregate`] whose events this build can store and read back.
pub trait Stored: Aggregate {
    fn event_type(event: &Self::Event) -> &'static str;
    /// The payload's schema version.
    fn version(event: &Self::Event) -> u32;
    fn encode(event: &Self::Event) -> Vec<u8>;
    fn decode(event_type: &str, version: u32, data: &[u8]) -> Result<Self::Event, CodecError>;
    /// The id in a stream name (`lead-<id>` -> `<id>`).
    fn parse_id(raw: &str) -> Result<Self::Id, String>;
    /// A command name read back from metadata, if it is one of this aggregate's.
    fn known_command(name: &str) -> Option<&'static str>;
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

    fn decode(event_type: &str, version: u32, data: &[u8]) -> Result<LeadEvent, CodecError> {
        crate::lead::decode(event_type, version, data)
    }

    fn parse_id(raw: &str) -> Result<LeadId, String> {
        LeadId::parse(raw).map_err(|e| e.to_string())
    }

    fn known_command(name: &str) -> Option<&'static str> {
        CommandName::parse(name).map(CommandName::as_str)
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
