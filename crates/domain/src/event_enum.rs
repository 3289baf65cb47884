//! What every aggregate's event enum is made of: `event_enum!` writes, for a list of payload
//! types with their versions, the enum wrapping them, its `event_type` and `version`, a `From`
//! per payload, and the function listing every payload's JSON schema.

/// `event_enum! { #[attrs] Enum, schemas_fn; Type = version, ... }`.
macro_rules! event_enum {
    ($(#[$meta:meta])* $enum:ident, $schemas:ident; $($name:ident = $version:literal,)*) => {
        $(#[$meta])*
        #[derive(Clone, Debug, PartialEq, Eq)]
        pub enum $enum {
            $($name($name),)*
        }

        impl $enum {
            /// The event type as stored (the payload type's name).
            pub fn event_type(&self) -> &'static str {
                match self {
                    $(Self::$name(_) => stringify!($name),)*
                }
            }

            /// The payload's schema version.
            pub fn version(&self) -> u32 {
                match self {
                    $(Self::$name(_) => $version,)*
                }
            }
        }

        $(
            impl From<$name> for $enum {
                fn from(e: $name) -> Self {
                    Self::$name(e)
                }
            }
        )*

        /// The JSON Schema of every event type at its current version.
        pub fn $schemas() -> Vec<(&'static str, u32, schemars::Schema)> {
            vec![$((stringify!($name), $version, schemars::schema_for!($name)),)*]
        }
    };
}
