//! The catalog events' table: `CatalogEvent` <-> (event type, JSON payload), with versions and
//! upcasters like the lead's.

use leadflow_domain::catalog::*;

use crate::lead::Upcaster;

/// Every upcaster of the catalog events (all are at version 1 so far).
pub const UPCASTERS: &[Upcaster] = &[];

macro_rules! codec {
    ($($list:tt)*) => {
        event_table!(CatalogEvent, "a catalog event"; $($list)*);
    };
}

leadflow_domain::for_each_catalog_event!(codec);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::CodecError;

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
