//! Wire shapes: UUIDs in both forms, stream identifiers, recorded events with their system
//! metadata (`type`, `content-type`, `created` in 100-ns ticks since the Unix epoch).

use std::collections::HashMap;

use tonic::Status;
use uuid::Uuid;

use leadflow_store::RecordedEvent;

use crate::proto::event_store::client as pb;
use crate::proto::event_store::client::streams::read_resp;
use crate::semantics::{TOMBSTONE_REVISION, TOMBSTONE_TYPE};

pub fn uuid_from(id: Option<&pb::Uuid>) -> Result<Uuid, Status> {
    match id.and_then(|u| u.value.as_ref()) {
        Some(pb::uuid::Value::Structured(s)) => Ok(Uuid::from_u64_pair(
            s.most_significant_bits as u64,
            s.least_significant_bits as u64,
        )),
        Some(pb::uuid::Value::String(s)) => Uuid::parse_str(s)
            .map_err(|e| Status::invalid_argument(format!("invalid event id {s:?}: {e}"))),
        None => Err(Status::invalid_argument("an event id is required")),
    }
}

pub fn uuid_to(id: Uuid, structured: bool) -> pb::Uuid {
    let value = if structured {
        let (msb, lsb) = id.as_u64_pair();
        pb::uuid::Value::Structured(pb::uuid::Structured {
            most_significant_bits: msb as i64,
            least_significant_bits: lsb as i64,
        })
    } else {
        pb::uuid::Value::String(id.hyphenated().to_string())
    };
    pb::Uuid { value: Some(value) }
}

pub fn stream_name(id: Option<&pb::StreamIdentifier>) -> Result<String, Status> {
    let id = id.ok_or_else(|| Status::invalid_argument("a stream identifier is required"))?;
    let name = String::from_utf8(id.stream_name.clone())
        .map_err(|_| Status::invalid_argument("the stream name is not UTF-8"))?;
    if name.is_empty() {
        return Err(Status::invalid_argument("the stream name is empty"));
    }
    Ok(name)
}

pub fn stream_identifier(name: &str) -> pb::StreamIdentifier {
    pb::StreamIdentifier {
        stream_name: name.as_bytes().to_vec(),
    }
}

/// 100-ns ticks since the Unix epoch, as the `created` metadata key carries them.
pub fn ticks(micros: i64) -> i64 {
    micros.saturating_mul(10)
}

/// A stored event as the wire's `RecordedEvent`. A tombstone shows at revision `i64::MAX`.
pub fn recorded(e: &RecordedEvent, structured: bool) -> read_resp::read_event::RecordedEvent {
    let revision = if e.event_type == TOMBSTONE_TYPE {
        TOMBSTONE_REVISION
    } else {
        e.revision
    };
    let mut metadata = HashMap::with_capacity(3);
    metadata.insert("type".to_owned(), e.event_type.clone());
    metadata.insert(
        "content-type".to_owned(),
        crate::semantics::content_type_of(e).to_owned(),
    );
    metadata.insert(
        "created".to_owned(),
        ticks(e.recorded_at_micros).to_string(),
    );
    read_resp::read_event::RecordedEvent {
        id: Some(uuid_to(e.id, structured)),
        stream_identifier: Some(stream_identifier(&e.stream)),
        stream_revision: revision,
        prepare_position: e.position.0,
        commit_position: e.position.0,
        metadata,
        custom_metadata: e.metadata.clone(),
        data: e.data.clone(),
    }
}

pub fn read_event(e: &RecordedEvent, structured: bool) -> read_resp::ReadEvent {
    read_resp::ReadEvent {
        event: Some(recorded(e, structured)),
        link: None,
        position: Some(read_resp::read_event::Position::CommitPosition(
            e.position.0,
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuids_travel_in_both_forms() {
        let id = Uuid::parse_str("6a1c3e9e-0b5c-4f7e-9a51-3c2d1e0f9a8b").unwrap();
        for structured in [true, false] {
            assert_eq!(uuid_from(Some(&uuid_to(id, structured))).unwrap(), id);
        }
        let (msb, _) = id.as_u64_pair();
        assert_eq!(msb.to_be_bytes(), id.as_bytes()[..8]);
        assert!(uuid_from(None).is_err());
    }
}
