//! The fixed process semantics every funnel maps its stages onto (SPEC 3.3), and need maturity.

use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

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

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

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

impl fmt::Display for Maturity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}
