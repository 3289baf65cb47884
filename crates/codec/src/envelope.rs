//! A recorded event decoded for the read side: its place in the log and, for the streams of a
//! known category, the typed event and its metadata.

use leadflow_domain::{CatalogEvent, CatalogPart, LeadEvent, LeadId};
use leadflow_store::{Position, RecordedEvent};

use crate::metadata::EventMetadata;
use crate::streams::StreamRef;

/// A decoded event of the log.
#[derive(Clone, Debug)]
pub struct Envelope {
    pub position: Position,
    pub stream: String,
    pub revision: u64,
    /// The payload exactly as stored (JSON), for read models that show it.
    pub data: Vec<u8>,
    pub body: Body,
}

#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug)]
pub enum Body {
    /// An event of a `lead-{id}` stream. (Boxing it would cost an allocation per event for
    /// the rare `Other`.)
    Lead {
        lead_id: LeadId,
        event: LeadEvent,
        meta: EventMetadata,
    },
    /// An event of a `catalog-{part}` stream.
    Catalog {
        part: CatalogPart,
        event: CatalogEvent,
        meta: EventMetadata,
    },
    /// An event of a stream no aggregate here owns.
    Other,
}

/// A recorded event of a known category that does not decode: poison, never skipped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot decode event at position {position}: {reason}")]
pub struct DecodeError {
    pub position: Position,
    pub reason: String,
}

/// Decodes `event`; events of streams of no known category come out as [`Body::Other`].
pub fn decode(event: RecordedEvent) -> Result<Envelope, DecodeError> {
    let position = event.position;
    let bad = |reason: String| DecodeError { position, reason };
    let stream_ref = StreamRef::parse(&event.stream).map_err(bad)?;
    if stream_ref == StreamRef::Other {
        return Ok(Envelope {
            position,
            stream: event.stream,
            revision: event.revision,
            data: event.data,
            body: Body::Other,
        });
    }
    let meta = EventMetadata::decode(&event.metadata)
        .map_err(|e| bad(format!("{} ({})", e, event.event_type)))?;
    let in_stream = |e: crate::lead::CodecError| {
        bad(format!(
            "{e} in stream {} revision {}",
            event.stream, event.revision
        ))
    };
    let body = match stream_ref {
        StreamRef::Lead(lead_id) => Body::Lead {
            lead_id,
            event: crate::lead::decode(&event.event_type, meta.version, &event.data)
                .map_err(in_stream)?,
            meta,
        },
        StreamRef::Catalog(part) => Body::Catalog {
            part,
            event: crate::catalog::decode(&event.event_type, meta.version, &event.data)
                .map_err(in_stream)?,
            meta,
        },
        StreamRef::Other => unreachable!("answered above"),
    };
    Ok(Envelope {
        position,
        stream: event.stream,
        revision: event.revision,
        data: event.data,
        body,
    })
}
