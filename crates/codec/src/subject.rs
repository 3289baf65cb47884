//! The data subjects' events' table (issue 20), with versions and upcasters like the lead's.

use leadflow_domain::subject::*;

use crate::lead::{decode_versioned, CodecError, Upcaster};

/// Every upcaster of the subject events (all are at version 1 so far).
pub const UPCASTERS: &[Upcaster] = &[];

macro_rules! codec {
    ($($list:tt)*) => {
        event_table!(SubjectEvent, "a data subject's event"; $($list)*);
    };
}

leadflow_domain::for_each_subject_event!(codec);

/// Decodes a stored subject payload written at `version`, upcasting it first if it is older.
pub fn decode(event_type: &str, version: u32, data: &[u8]) -> Result<SubjectEvent, CodecError> {
    decode_versioned(
        UPCASTERS,
        current_version(event_type),
        event_type,
        version,
        data,
        decode_current,
    )
}
