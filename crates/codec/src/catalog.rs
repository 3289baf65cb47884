//! The catalog events' table: `CatalogEvent` <-> (event type, JSON payload), with versions and
//! upcasters like the lead's.

use leadflow_domain::catalog::*;

use crate::lead::{decode_versioned, CodecError, Upcaster};

/// Every upcaster of the catalog events (all are at version 1 so far).
pub const UPCASTERS: &[Upcaster] = &[];

macro_rules! codec {
    ($($name:ident = $version:literal,)*) => {
        /// The current version of `event_type`, if it is a catalog event.
        pub fn current_version(event_type: &str) -> Option<u32> {
            match event_type {
                $(stringify!($name) => Some($version),)*
                _ => None,
            }
        }

        /// The payload of `event` as JSON.
        pub fn encode(event: &CatalogEvent) -> Vec<u8> {
            let encoded = match event {
                $(CatalogEvent::$name(e) => serde_json::to_vec(e),)*
            };
            encoded.expect("catalog events always serialize")
        }

        fn decode_current(event_type: &str, data: &[u8]) -> Result<CatalogEvent, serde_json::Error> {
            match event_type {
                $(stringify!($name) => serde_json::from_slice::<$name>(data).map(CatalogEvent::from),)*
                _ => unreachable!("checked by current_version"),
            }
        }
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
