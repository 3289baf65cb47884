//! The fixed process semantics every funnel maps its stages onto (SPEC 3.3), and need maturity.

use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// An enum whose variants have names: how read models store them and reports show them.
macro_rules! named {
    ($(#[$meta:meta])* $vis:vis enum $name:ident {
        $($(#[$vmeta:meta])* $variant:ident),* $(,)?
    }) => {
        $(#[$meta])*
        $vis enum $name {
            $($(#[$vmeta])* $variant,)*
        }

        impl $name {
            /// The variant's name, without formatting or allocating.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => stringify!($variant),)*
                }
            }

            /// The variant named `name` ([`Self::as_str`]'s inverse); `None` for any other text.
            pub fn parse(name: &str) -> Option<Self> {
                match name {
                    $(stringify!($variant) => Some(Self::$variant),)*
                    _ => None,
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}
pub(crate) use named;

named! {
/// Where a lead is in the Creatio lead process.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
pub enum Stage {
    Qualification,
    Distribution,
    Handoff,
    /// The lead process is over; the lead waits for its deal's outcome.
    AwaitingSale,
    Disqualified,
    NeedAbsent,
    NeedSatisfied,
}
}

impl Stage {
    /// Every stage in funnel order: the working stages, AwaitingSale, then the closed ones.
    pub const ALL: [Stage; 7] = [
        Stage::Qualification,
        Stage::Distribution,
        Stage::Handoff,
        Stage::AwaitingSale,
        Stage::Disqualified,
        Stage::NeedAbsent,
        Stage::NeedSatisfied,
    ];

    /// Qualification, Distribution and Handoff: where the process itself runs.
    pub fn is_working(self) -> bool {
        matches!(
            self,
            Stage::Qualification | Stage::Distribution | Stage::Handoff
        )
    }

    /// Disqualified, NeedAbsent and NeedSatisfied: only ReopenLead leaves them.
    pub fn is_closed(self) -> bool {
        matches!(
            self,
            Stage::Disqualified | Stage::NeedAbsent | Stage::NeedSatisfied
        )
    }

    /// The working stages strictly between `self` and AwaitingSale: what a conversion skips.
    pub fn skipped_before_sale(self) -> Vec<Stage> {
        [Stage::Qualification, Stage::Distribution, Stage::Handoff]
            .into_iter()
            .filter(|s| *s > self)
            .collect()
    }
}

named! {
/// Need maturity (seed 002 names the middle three).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default, Serialize, Deserialize, JsonSchema)]
pub enum Maturity {
    #[default]
    Unknown,
    InterestShown,
    ReadyForSale,
    NoInterest,
    Satisfied,
}
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::details::Quality;

    /// A name is what the derived `Debug` prints (what read models stored before names
    /// existed), and parses back to its variant; other text parses to nothing.
    #[test]
    fn every_variant_is_named_as_debug_prints_it_and_parses_back() {
        fn check<T: Copy + fmt::Debug + fmt::Display + PartialEq>(
            all: &[T],
            name: fn(T) -> &'static str,
            parse: fn(&str) -> Option<T>,
        ) {
            for &v in all {
                assert_eq!(name(v), format!("{v:?}"));
                assert_eq!(v.to_string(), format!("{v:?}"));
                assert_eq!(parse(name(v)), Some(v));
                assert_eq!(parse(&name(v).to_lowercase()), None);
            }
            assert_eq!(parse(""), None);
        }
        check(&Stage::ALL, Stage::as_str, Stage::parse);
        check(
            &[
                Maturity::Unknown,
                Maturity::InterestShown,
                Maturity::ReadyForSale,
                Maturity::NoInterest,
                Maturity::Satisfied,
            ],
            Maturity::as_str,
            Maturity::parse,
        );
        check(
            &[
                Quality::Target,
                Quality::NonTarget,
                Quality::Repeat,
                Quality::Unverified,
                Quality::Unsorted,
            ],
            Quality::as_str,
            Quality::parse,
        );
    }
}
