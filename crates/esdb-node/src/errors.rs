//! The exact error statuses, texts and trailers of EventStoreDB (clients parse the texts).

use prost::Message;
use tonic::metadata::{MetadataMap, MetadataValue};
use tonic::{Code, Status};

use crate::proto::event_store::client as pb;
use crate::proto::google::rpc;
use crate::semantics::Expected;

fn trailers(pairs: &[(&'static str, String)]) -> MetadataMap {
    let mut map = MetadataMap::new();
    for (key, value) in pairs {
        if let Ok(v) = MetadataValue::try_from(value.as_str()) {
            map.insert(*key, v);
        }
    }
    map
}

pub fn stream_deleted(stream: &str) -> Status {
    Status::with_metadata(
        Code::FailedPrecondition,
        format!("Event stream '{stream}' is deleted."),
        trailers(&[
            ("exception", "stream-deleted".to_owned()),
            ("stream-name", stream.to_owned()),
        ]),
    )
}

/// Delete and Tombstone answer a wrong expected version as an error (Append answers it in
/// the body).
pub fn delete_wrong_version(stream: &str, expected: Expected, actual: i64) -> Status {
    let expected = expected.wire();
    Status::with_metadata(
        Code::FailedPrecondition,
        format!(
            "Delete failed due to WrongExpectedVersion. Stream: {stream}, Expected version: {expected}, Actual version: {actual}"
        ),
        trailers(&[
            ("exception", "wrong-expected-version".to_owned()),
            ("stream-name", stream.to_owned()),
            ("expected-version", expected.to_string()),
            ("actual-version", actual.to_string()),
        ]),
    )
}

pub fn missing_metadata(property: &str) -> Status {
    Status::with_metadata(
        Code::InvalidArgument,
        format!("Required Metadata Property '{property}' is missing"),
        trailers(&[
            ("exception", "missing-required-metadata-property".to_owned()),
            (
                "required-metadata-properties",
                "type,content-type".to_owned(),
            ),
        ]),
    )
}

pub fn too_large(max: usize) -> Status {
    Status::with_metadata(
        Code::InvalidArgument,
        format!("Maximum Append Size of {max} Exceeded."),
        trailers(&[
            ("exception", "maximum-append-size-exceeded".to_owned()),
            ("maximum-append-size", max.to_string()),
        ]),
    )
}

pub fn bad_combination(what: &str) -> Status {
    Status::invalid_argument(format!("The combination of ({what}) is invalid."))
}

/// A store failure the client cannot fix: `Unavailable`, which clients treat as a server
/// error and may retry.
pub fn store(e: leadflow_store::StoreError) -> Status {
    match e {
        leadflow_store::StoreError::AppendTooLarge { max, .. } => too_large(max),
        other => Status::unavailable(other.to_string()),
    }
}

/// A batch-append error: `google.rpc.Status` with one `Any` naming the details type.
pub fn batch_error(code: rpc::Code, details: BatchDetails) -> rpc::Status {
    let (name, bytes) = match details {
        BatchDetails::WrongExpectedVersion(w) => ("WrongExpectedVersion", w.encode_to_vec()),
        BatchDetails::StreamDeleted(d) => ("StreamDeleted", d.encode_to_vec()),
        BatchDetails::Timeout => ("Timeout", pb::Timeout {}.encode_to_vec()),
        BatchDetails::TooLarge(m) => ("MaximumAppendSizeExceeded", m.encode_to_vec()),
        BatchDetails::BadRequest(b) => ("BadRequest", b.encode_to_vec()),
    };
    rpc::Status {
        code: code as i32,
        message: name.to_owned(),
        details: Some(prost_types::Any {
            type_url: format!("type.googleapis.com/event_store.client.{name}"),
            value: bytes,
        }),
    }
}

pub enum BatchDetails {
    WrongExpectedVersion(pb::WrongExpectedVersion),
    StreamDeleted(pb::StreamDeleted),
    Timeout,
    TooLarge(pb::MaximumAppendSizeExceeded),
    BadRequest(pb::BadRequest),
}
