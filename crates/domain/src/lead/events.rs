//! The lead's events: past tense, versioned, JSON (camelCase). Each payload is its own type so
//! that `schemas/events/<Type>.v<N>.json` describes exactly one event; [`LeadEvent`] wraps them.
//! The list lives in [`for_each_lead_event!`] so that the engine's codec enumerates the very
//! same types and versions without the domain knowing any encoding.

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::catalog::Role;
use crate::details::{DetailChange, LeadDetails};
use crate::ids::{
    AccountId, ContactId, DealId, FunnelId, LeadId, ReasonCode, SubjectId, TaskId, UserId,
};
use crate::stage::{Maturity, Stage};
use crate::values::{Comment, Money, Name, Short};

/// Calls `$m! { Type = version, ... }` with every lead event type and its current version.
/// Version 2 of each event with personal fields holds them sealed under the lead's data
/// subject's key (issue 20); `LeadRegistered` v2 also names that subject.
#[macro_export]
macro_rules! for_each_lead_event {
    ($m:ident) => {
        $m! {
            LeadRegistered = 2,
            LeadDetailsUpdated = 2,
            LeadQualified = 2,
            LeadStageChanged = 2,
            MaturityChanged = 1,
            LeadDisqualified = 2,
            ResponsibleAssigned = 1,
            LeadDistributed = 2,
            SystemTaskOpened = 1,
            SystemTaskCompleted = 2,
            SystemTaskCancelled = 1,
            HandoffDetailsRecorded = 2,
            DealOpened = 1,
            LeadConverted = 2,
            DealWon = 1,
            DealLost = 2,
            LeadReopened = 2,
        }
    };
}

macro_rules! define_lead_event {
    ($($list:tt)*) => {
        event_enum! {
            /// Every event of a lead stream. (Registration carries the whole card, boxed.)
            LeadEvent, event_schemas; $($list)*
        }
    };
}

for_each_lead_event!(define_lead_event);

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LeadRegistered {
    pub lead_id: LeadId,
    /// The person the lead's contact data belongs to: every personal field of the lead's
    /// events is sealed under this subject's key (issue 20).
    pub subject: SubjectId,
    pub funnel: FunnelId,
    pub stage: Stage,
    /// `None`: the lead arrived without one (web form, call, import) and goes to Distribution.
    pub responsible: Option<UserId>,
    pub created_by: UserId,
    // Boxed: the card is most of the event's size, and a catching-up read model holds and
    // moves tens of thousands of events at once, nine in ten of them small. (A plain comment:
    // the published schema describes the payload, not its layout in memory.)
    pub details: Box<LeadDetails>,
}

/// One event listing every field a command changed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LeadDetailsUpdated {
    pub changes: Vec<DetailChange>,
}

/// A contact linked to the lead: created from the lead's data, or an existing one.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ContactLink {
    pub contact_id: ContactId,
    pub created: bool,
    pub name: Option<Name>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AccountLink {
    pub account_id: AccountId,
    pub created: bool,
    pub name: Option<Name>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LeadQualified {
    pub contact: Option<ContactLink>,
    pub account: Option<AccountLink>,
}

/// Why a stage changed; audits tell jumps from the normal path by it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum Transition {
    Qualified,
    StartHandoff,
    NeedAbsent,
    Disqualified,
    PlaceOrder,
    TransferToSale,
    ReturnToDistribution,
    Converted,
    Jump { reason: Comment },
    DealWon,
    DealLost,
    Reopened,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LeadStageChanged {
    pub from: Stage,
    pub to: Stage,
    pub via: Transition,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MaturityChanged {
    pub from: Maturity,
    pub to: Maturity,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LeadDisqualified {
    pub reason: ReasonCode,
    pub comment: Option<Comment>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ResponsibleAssigned {
    pub from: Option<UserId>,
    pub to: UserId,
    /// The new responsible asked to be reminded (a notification, once notifications exist).
    pub remind: bool,
}

/// What the supervisors decided in Distribution.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "decision", rename_all = "camelCase")]
pub enum DistributionDecision {
    #[serde(rename_all = "camelCase")]
    StartHandoff { remind: bool },
    /// Stay in Distribution and look again at `next_check_at` (Creatio's "next actualization").
    #[serde(rename_all = "camelCase")]
    ContinueNurturing {
        next_check_at: DateTime<Utc>,
        strategy: Option<Comment>,
    },
    #[serde(rename_all = "camelCase")]
    NeedAbsent { comment: Option<Comment> },
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LeadDistributed {
    pub decision: DistributionDecision,
}

/// The tasks the stage machine opens by itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum SystemTaskKind {
    /// "Contact the customer: confirm the need...", for the responsible, in Handoff.
    Handoff,
    /// The follow-up of TransferToSale: enter budget, sales direction, meeting, decision date.
    HandoffDetails,
    /// "Lead management: Distribution", for the supervisors.
    Distribution,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SystemTaskOpened {
    pub task_id: TaskId,
    pub kind: SystemTaskKind,
    /// `None`: the department's supervisors.
    pub assignee: Option<UserId>,
    pub due_at: DateTime<Utc>,
    pub text: String,
}

/// The result a responsible records on the handoff task (seed 002).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "result", rename_all = "camelCase")]
pub enum HandoffResult {
    PlaceOrder {
        comment: Option<Comment>,
    },
    TransferToSale {
        comment: Comment,
    },
    ReturnToDistribution {
        comment: Option<Comment>,
    },
    Postponed {
        until: DateTime<Utc>,
        comment: Option<Comment>,
    },
    NoInterest {
        comment: Option<Comment>,
    },
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SystemTaskCompleted {
    pub task_id: TaskId,
    pub kind: SystemTaskKind,
    /// Set for handoff tasks.
    pub result: Option<HandoffResult>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SystemTaskCancelled {
    pub task_id: TaskId,
    pub kind: SystemTaskKind,
    /// The stage the lead left, which made the task moot.
    pub left_stage: Stage,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HandoffDetailsRecorded {
    pub budget: Money,
    pub sales_direction: Short,
    pub meeting_at: Option<DateTime<Utc>>,
    pub decision_at: Option<DateTime<Utc>>,
    pub need_type: Option<Short>,
    pub comment: Option<Comment>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum SaleKind {
    /// PlaceOrder: the customer orders straight away.
    Order,
    /// A sale worked by the sales team.
    Sale,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DealOpened {
    pub deal_id: DealId,
    pub kind: SaleKind,
    pub budget: Option<Money>,
    pub sales_direction: Option<Short>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LeadConverted {
    pub contact: Option<ContactLink>,
    pub account: Option<AccountLink>,
    pub deal: Option<DealId>,
    /// The working stages the conversion jumped over on its way to AwaitingSale.
    pub skipped: Vec<Stage>,
    pub by_role: Role,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DealWon {
    pub deal_id: DealId,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DealLost {
    pub deal_id: DealId,
    pub reason: Option<Comment>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LeadReopened {
    pub from: Stage,
    pub comment: Option<Comment>,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A catching-up read model holds tens of thousands of events at once and moves them
    /// between threads: the registration's card stays behind its box, so every event is
    /// about the size of the small ones.
    #[test]
    fn an_event_is_small() {
        let size = std::mem::size_of::<LeadEvent>();
        eprintln!(
            "LeadEvent: {size} bytes; LeadDetails: {} bytes",
            std::mem::size_of::<LeadDetails>()
        );
        assert!(size <= 160, "LeadEvent is {size} bytes");
    }
}
