//! The lead events' table: `LeadEvent` <-> (event type, JSON payload). Versions stay
//! readable forever: a stored payload older than the current version runs through the
//! upcasters registered for its type, in order, before it is decoded.

use leadflow_domain::events::*;
use leadflow_domain::LeadEvent;

/// An upcaster lifts a payload of `event_type` from `from_version` to `from_version + 1`.
pub struct Upcaster {
    pub event_type: &'static str,
    pub from_version: u32,
    pub upcast: fn(serde_json::Value) -> serde_json::Value,
}

/// Every upcaster of the lead events.
///
/// Version 2 of the events with personal fields (issue 20) seals those fields under the data
/// subject's key; the shape is the same, so a version-1 payload (plain text, written before
/// sealing) is a valid version-2 one as it stands, except that `LeadRegistered` v2 names its
/// subject: a v1 registration's subject is the one a registration mints today
/// ([`leadflow_domain::SubjectId::for_lead`]). Opening sealed fields happens before the
/// upcasters, on version-2 payloads only (`crate::sealing`).
pub const UPCASTERS: &[Upcaster] = &[
    Upcaster {
        event_type: "LeadRegistered",
        from_version: 1,
        upcast: registration_names_its_subject,
    },
    unchanged("LeadDetailsUpdated", 1),
    unchanged("LeadQualified", 1),
    unchanged("LeadStageChanged", 1),
    unchanged("LeadDisqualified", 1),
    unchanged("LeadDistributed", 1),
    unchanged("SystemTaskCompleted", 1),
    unchanged("HandoffDetailsRecorded", 1),
    unchanged("LeadConverted", 1),
    unchanged("DealLost", 1),
    unchanged("LeadReopened", 1),
];

/// A version step that changed what the fields may hold (sealed), not their shape.
const fn unchanged(event_type: &'static str, from_version: u32) -> Upcaster {
    Upcaster {
        event_type,
        from_version,
        upcast: |v| v,
    }
}

/// `LeadRegistered` 1 -> 2: adds `subject`, minted from the lead id as registration does.
fn registration_names_its_subject(mut payload: serde_json::Value) -> serde_json::Value {
    let subject = payload
        .get("leadId")
        .and_then(serde_json::Value::as_str)
        .and_then(|id| leadflow_domain::LeadId::parse(id).ok())
        .map(|lead| leadflow_domain::SubjectId::for_lead(lead).to_string());
    if let (Some(object), Some(subject)) = (payload.as_object_mut(), subject) {
        object.insert("subject".to_owned(), subject.into());
    }
    payload
}

/// Why a stored event could not be read.
///
/// ### Handling
/// The stream holds something this build cannot decode: a bug or a newer writer. Report it
/// with the stream and revision; never skip it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodecError {
    #[error("unknown event type {event_type}")]
    UnknownType { event_type: String },
    #[error("{event_type} version {version} is newer than this build reads ({current})")]
    NewerVersion {
        event_type: String,
        version: u32,
        current: u32,
    },
    #[error("{event_type} has no upcaster from version {version}")]
    MissingUpcaster { event_type: String, version: u32 },
    #[error("cannot decode {event_type} v{version}: {reason}")]
    Payload {
        event_type: String,
        version: u32,
        reason: String,
    },
    #[error("cannot decode event metadata: {reason}")]
    Metadata { reason: String },
}

macro_rules! codec {
    ($($list:tt)*) => {
        event_table!(LeadEvent, "a lead event"; $($list)*);
    };
}

leadflow_domain::for_each_lead_event!(codec);

/// [`decode`] with an explicit upcaster table (tests use their own).
pub fn decode_with(
    upcasters: &[Upcaster],
    event_type: &str,
    version: u32,
    data: &[u8],
) -> Result<LeadEvent, CodecError> {
    decode_versioned(
        upcasters,
        current_version(event_type),
        event_type,
        version,
        data,
        decode_current,
        decode_current_value,
    )
}

/// Refuses unknown event types and versions newer than `current`; answers `current`.
fn checked(current: Option<u32>, event_type: &str, version: u32) -> Result<u32, CodecError> {
    let current = current.ok_or_else(|| CodecError::UnknownType {
        event_type: event_type.to_owned(),
    })?;
    if version > current {
        return Err(CodecError::NewerVersion {
            event_type: event_type.to_owned(),
            version,
            current,
        });
    }
    Ok(current)
}

fn payload_error(event_type: &str, version: u32, e: serde_json::Error) -> CodecError {
    CodecError::Payload {
        event_type: event_type.to_owned(),
        version,
        reason: e.to_string(),
    }
}

/// The versioned decode every event table shares: refuse unknown and newer versions; a
/// payload at the current version decodes straight from its bytes, an older one is parsed,
/// run through the upcasters from `version` to the current one and decoded from the value.
pub(crate) fn decode_versioned<E>(
    upcasters: &[Upcaster],
    current: Option<u32>,
    event_type: &str,
    version: u32,
    data: &[u8],
    decode_current: fn(&str, &[u8]) -> Result<E, serde_json::Error>,
    decode_current_value: fn(&str, serde_json::Value) -> Result<E, serde_json::Error>,
) -> Result<E, CodecError> {
    let current = checked(current, event_type, version)?;
    if version == current {
        return decode_current(event_type, data).map_err(|e| payload_error(event_type, version, e));
    }
    let value = serde_json::from_slice(data).map_err(|e| payload_error(event_type, version, e))?;
    decode_value_versioned(
        upcasters,
        Some(current),
        event_type,
        version,
        value,
        decode_current_value,
    )
}

/// [`decode_versioned`] of a payload already parsed (its sealed fields opened).
pub(crate) fn decode_value_versioned<E>(
    upcasters: &[Upcaster],
    current: Option<u32>,
    event_type: &str,
    version: u32,
    mut value: serde_json::Value,
    decode_current_value: fn(&str, serde_json::Value) -> Result<E, serde_json::Error>,
) -> Result<E, CodecError> {
    let current = checked(current, event_type, version)?;
    for v in version..current {
        let up = upcasters
            .iter()
            .find(|u| u.event_type == event_type && u.from_version == v)
            .ok_or_else(|| CodecError::MissingUpcaster {
                event_type: event_type.to_owned(),
                version: v,
            })?;
        value = (up.upcast)(value);
    }
    decode_current_value(event_type, value).map_err(|e| payload_error(event_type, version, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_and_newer_events_are_named() {
        assert_eq!(
            decode("LeadTeleported", 1, b"{}"),
            Err(CodecError::UnknownType {
                event_type: "LeadTeleported".to_owned()
            })
        );
        assert!(matches!(
            decode("DealWon", 9, b"{}"),
            Err(CodecError::NewerVersion { .. })
        ));
        assert!(matches!(
            decode("DealWon", 1, b"{\"nope\":1}"),
            Err(CodecError::Payload { .. })
        ));
    }

    #[test]
    fn every_event_with_personal_fields_has_a_sealed_version() {
        for (event_type, version, _) in leadflow_domain::event_schemas() {
            if crate::seal::has_personal_fields(event_type) {
                assert!(
                    version >= 2,
                    "{event_type} v{version} holds personal fields in the clear"
                );
                assert!(
                    UPCASTERS
                        .iter()
                        .any(|u| u.event_type == event_type && u.from_version == 1),
                    "{event_type} has no upcaster from its plain-text version"
                );
            }
        }
    }

    #[test]
    fn older_payloads_are_upcast_before_decoding() {
        // Pretend DealWon v1 is current and stored payloads at v0 named the field `deal`.
        let rename: fn(serde_json::Value) -> serde_json::Value = |mut v| {
            let deal = v["deal"].take();
            serde_json::json!({ "dealId": deal })
        };
        let table = [Upcaster {
            event_type: "DealWon",
            from_version: 0,
            upcast: rename,
        }];
        let id = uuid::Uuid::from_u128(7);
        let old = serde_json::to_vec(&serde_json::json!({ "deal": id })).unwrap();
        let event = decode_with(&table, "DealWon", 0, &old).unwrap();
        assert_eq!(
            event,
            LeadEvent::DealWon(DealWon {
                deal_id: leadflow_domain::DealId::from_uuid(id)
            })
        );
        assert!(matches!(
            decode_with(&[], "DealWon", 0, &old),
            Err(CodecError::MissingUpcaster { .. })
        ));
    }
}
