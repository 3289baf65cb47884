//! A recorded event decoded for the read side: its place in the log and, for the streams of a
//! known category, the typed event and its metadata.

use leadflow_domain::{
    CatalogEvent, CatalogPart, LeadEvent, LeadId, OpsEvent, OpsScope, SubjectEvent, SubjectId,
};
use leadflow_store::{Position, RecordedEvent};
use uuid::Uuid;

use crate::metadata::EventMetadata;
use crate::seal::Opening;
use crate::streams::StreamRef;

/// The subjects' keys a reader has at hand, to open sealed personal fields with.
pub trait Keys {
    /// How `subject`'s fields open, if that is known without waiting (a cached key, or
    /// erased); `None`: fetch it first ([`Opened::NeedsKey`]).
    fn opening(&self, subject: Uuid) -> Option<Opening>;
}

/// No keys at all: every sealed event needs one.
pub struct NoKeys;

impl Keys for NoKeys {
    fn opening(&self, _: Uuid) -> Option<Opening> {
        None
    }
}

/// Keys that open nothing and need nothing: every sealed personal field reads as erased. For
/// readers that must not see personal data (the funnel audit from the log, the analysts'
/// export): they need no master key, and nothing personal can reach them.
pub struct WithoutPersonalData;

impl Keys for WithoutPersonalData {
    fn opening(&self, _: Uuid) -> Option<Opening> {
        Some(Opening::Erased)
    }
}

/// A decoded event, or the key it waits for. (Boxing the envelope would cost an allocation
/// per event of the log, the common case.)
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Opened {
    Envelope(Envelope),
    /// The event has personal fields sealed under `subject`'s key, which is not at hand:
    /// fetch it and decode again.
    NeedsKey {
        subject: Uuid,
        event: RecordedEvent,
    },
}

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
    /// An event of a `subject-{id}` stream: an erasure or an export.
    Subject {
        subject: SubjectId,
        event: SubjectEvent,
        meta: EventMetadata,
    },
    /// An event of an `ops-{scope}` stream: what an operator did.
    Ops {
        scope: OpsScope,
        event: OpsEvent,
        meta: EventMetadata,
    },
    /// An event of a stream no aggregate here owns.
    Other,
}

impl Envelope {
    /// The event's type as stored (`LeadRegistered`), or `other` for a stream no aggregate
    /// here owns: what ops read in a failed read model's status and in its dead letters.
    pub fn event_type(&self) -> &'static str {
        use crate::Stored;
        match &self.body {
            Body::Lead { event, .. } => leadflow_domain::LeadAggregate::event_type(event),
            Body::Catalog { event, .. } => leadflow_domain::CatalogAggregate::event_type(event),
            Body::Subject { event, .. } => leadflow_domain::SubjectAggregate::event_type(event),
            Body::Ops { event, .. } => leadflow_domain::OpsAggregate::event_type(event),
            Body::Other => "other",
        }
    }
}

/// A recorded event of a known category that does not decode: poison, never skipped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot decode event at position {position}: {reason}")]
pub struct DecodeError {
    pub position: Position,
    pub reason: String,
}

/// Decodes `event` when it seals nothing; events of streams of no known category come out as
/// [`Body::Other`]. A sealed event is a [`DecodeError`] here: read those with
/// [`decode_with_keys`].
pub fn decode(event: RecordedEvent) -> Result<Envelope, DecodeError> {
    let position = event.position;
    match decode_with_keys(event, &NoKeys)? {
        Opened::Envelope(envelope) => Ok(envelope),
        Opened::NeedsKey { subject, .. } => Err(DecodeError {
            position,
            reason: format!("personal fields sealed under subject {subject}, and no key at hand"),
        }),
    }
}

/// Decodes `event`, opening its sealed personal fields with `keys` (an erased subject's read
/// as [`crate::seal::ERASED`]).
pub fn decode_with_keys(event: RecordedEvent, keys: &dyn Keys) -> Result<Opened, DecodeError> {
    let position = event.position;
    let bad = |reason: String| DecodeError { position, reason };
    let stream_ref = StreamRef::parse(&event.stream).map_err(bad)?;
    if stream_ref == StreamRef::Other {
        return Ok(Opened::Envelope(Envelope {
            position,
            stream: event.stream,
            revision: event.revision,
            data: event.data,
            body: Body::Other,
        }));
    }
    let meta = EventMetadata::decode(&event.metadata)
        .map_err(|e| bad(format!("{} ({})", e, event.event_type)))?;
    // Sealed personal fields are opened in the payload's text, which is then decoded as an
    // unsealed one is (`seal::open_text`); where the text cannot say, on a parsed tree, which
    // is then decoded as it stands (no second parse). An event of a subject whose payload
    // holds no sealed value (its personal fields were empty: most stage changes) decodes
    // straight away, with no key: the sealer seals every personal string, so there is
    // nothing to open.
    let (mut opened, mut opened_text) = (None, None);
    if let Some(subject) = meta
        .subject
        .filter(|_| crate::seal::holds_sealed(&event.data))
    {
        let Some(opening) = keys.opening(subject) else {
            return Ok(Opened::NeedsKey { subject, event });
        };
        let sealed_err = |e: String| {
            bad(format!(
                "{} in stream {} revision {}: {e}",
                event.event_type, event.stream, event.revision
            ))
        };
        match crate::seal::open_text(&event.data, &event.event_type, &opening, subject, event.id)
            .map_err(|e| sealed_err(e.to_string()))?
        {
            Some(text) => opened_text = Some(text),
            None => {
                let mut value: serde_json::Value =
                    serde_json::from_slice(&event.data).map_err(|e| sealed_err(e.to_string()))?;
                crate::seal::open_fields(
                    &mut value,
                    &event.event_type,
                    &opening,
                    subject,
                    event.id,
                )
                .map_err(|e| sealed_err(e.to_string()))?;
                opened = Some(value);
            }
        }
    }
    let in_stream = |e: crate::lead::CodecError| {
        bad(format!(
            "{e} in stream {} revision {}",
            event.stream, event.revision
        ))
    };
    let body = match stream_ref {
        StreamRef::Lead(lead_id) => Body::Lead {
            lead_id,
            event: match (opened, opened_text) {
                (Some(value), _) => {
                    crate::lead::decode_value(&event.event_type, meta.version, value)
                }
                (None, text) => crate::lead::decode(
                    &event.event_type,
                    meta.version,
                    text.as_deref().unwrap_or(&event.data),
                ),
            }
            .map_err(in_stream)?,
            meta,
        },
        StreamRef::Catalog(part) => Body::Catalog {
            part,
            event: crate::catalog::decode(&event.event_type, meta.version, &event.data)
                .map_err(in_stream)?,
            meta,
        },
        StreamRef::Subject(subject) => Body::Subject {
            subject,
            event: crate::subject::decode(&event.event_type, meta.version, &event.data)
                .map_err(in_stream)?,
            meta,
        },
        StreamRef::Ops(scope) => Body::Ops {
            scope,
            event: crate::ops::decode(&event.event_type, meta.version, &event.data)
                .map_err(in_stream)?,
            meta,
        },
        StreamRef::Other => unreachable!("answered above"),
    };
    Ok(Opened::Envelope(Envelope {
        position,
        stream: event.stream,
        revision: event.revision,
        data: event.data,
        body,
    }))
}
