//! The catalog events' table: `CatalogEvent` <-> (event type, JSON payload), with versions and
//! upcasters like the lead's.

use leadflow_domain::catalog::*;

use crate::lead::{decode_versioned, CodecError, Upcaster};

/// Every upcaster of the catalog events (all are at version 1 so far).
pub const UPCASTERS: &[Upcaster] = &[];

macro_rules! codec {
    ($($list:tt)*) => {
        event_table!(CatalogEvent, "a catalog event"; $($list)*);
    };
}

leadflow_domain::for_each_catalog_event!(codec);

/// Decodes a stored catalog payload written at `version`, upcasting it first if it is older.
pub fn decode(event_type: &str, version: u32, data: &[u8]) -> Result<CatalogEvent, CodecError> {
    decode_versioned(
        UPCASTERS,
        current_version(event_type),
        event_type,
        version,
        data,
        decode_current,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_seed_round_trips() {
        for (_, events) in seed::events() {
            for e in events {
                let back = decode(e.event_type(), e.version(), &encode(&e)).unwrap();
                assert_eq!(back, e);
            }
        }
        assert!(matches!(
            decode("LeadQualified", 1, b"{}"),
            Err(CodecError::UnknownType { .. })
        ));
    }
}
