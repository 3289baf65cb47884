//! What every aggregate's event table is made of: `event_table!` writes, for an event enum and
//! its list of `Type = version`, `current_version`, `encode`, and `decode` (from bytes or from
//! a parsed value) through the module's `UPCASTERS`. Each table module calls it once with its
//! aggregate's list.

/// `event_table!(Enum, "what"; Type = version, ...)`.
macro_rules! event_table {
    ($enum:ident, $what:literal; $($name:ident = $version:literal,)*) => {
        #[doc = concat!("The current version of `event_type`, if it is ", $what, ".")]
        pub fn current_version(event_type: &str) -> Option<u32> {
            match event_type {
                $(stringify!($name) => Some($version),)*
                _ => None,
            }
        }

        /// The payload of `event` as JSON.
        pub fn encode(event: &$enum) -> Vec<u8> {
            let encoded = match event {
                $($enum::$name(e) => serde_json::to_vec(e),)*
            };
            encoded.expect("events always serialize")
        }

        /// The payload of `event` as a JSON value (for sealing its fields in place).
        pub fn encode_value(event: &$enum) -> serde_json::Value {
            let encoded = match event {
                $($enum::$name(e) => serde_json::to_value(e),)*
            };
            encoded.expect("events always serialize")
        }

        fn decode_current(event_type: &str, data: &[u8]) -> Result<$enum, serde_json::Error> {
            match event_type {
                $(stringify!($name) => serde_json::from_slice::<$name>(data).map($enum::from),)*
                _ => unreachable!("checked by current_version"),
            }
        }

        fn decode_current_value(
            event_type: &str,
            value: serde_json::Value,
        ) -> Result<$enum, serde_json::Error> {
            match event_type {
                $(stringify!($name) => serde_json::from_value::<$name>(value).map($enum::from),)*
                _ => unreachable!("checked by current_version"),
            }
        }

        /// Decodes a stored payload written at `version`, upcasting it first if it is older.
        pub fn decode(
            event_type: &str,
            version: u32,
            data: &[u8],
        ) -> Result<$enum, $crate::lead::CodecError> {
            $crate::lead::decode_versioned(
                UPCASTERS,
                current_version(event_type),
                event_type,
                version,
                data,
                decode_current,
                decode_current_value,
            )
        }

        /// Decodes a payload already parsed (opened sealed fields), upcasting it first if it
        /// is older.
        pub fn decode_value(
            event_type: &str,
            version: u32,
            value: serde_json::Value,
        ) -> Result<$enum, $crate::lead::CodecError> {
            $crate::lead::decode_value_versioned(
                UPCASTERS,
                current_version(event_type),
                event_type,
                version,
                value,
                decode_current_value,
            )
        }
    };
}
