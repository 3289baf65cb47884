//! Why a command was refused: one variant per rule, each naming what it needs. A rejected
//! command emits nothing.
//!
//! ### Handling
//! Every variant is the caller's to fix (a different command, other data, another user);
//! retrying the same command on the same state gives the same rejection. The API maps
//! `Unknown*` and `Invalid*` to `BAD_USER_INPUT`, `*Only`/`NotAllowedTo*` to `FORBIDDEN`, and
//! the rest to `INVALID_TRANSITION` with [`Rejection::rule`] as the rule's name.

use crate::catalog::Role;
use crate::commands::CommandName;
use crate::ids::{DealId, FunnelId, LeadId, ReasonCode, StageKey, TaskId, UserId};
use crate::stage::Stage;
use crate::values::{Currency, ValueError};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    #[error("lead {lead} is already registered")]
    AlreadyRegistered { lead: LeadId },
    #[error("cannot {} a lead that is not registered", command.verb())]
    NotRegistered { command: CommandName },
    /// A manager acting on a lead they neither are responsible for nor created (SPEC 3.7).
    /// Clients are told the lead is not registered: its existence is not revealed.
    #[error("cannot {} a lead outside the actor's scope", command.verb())]
    OutOfScope { command: CommandName },
    #[error("cannot {} a lead in stage {stage}", command.verb())]
    NotAllowedInStage { command: CommandName, stage: Stage },
    #[error("unknown funnel {funnel}")]
    UnknownFunnel { funnel: FunnelId },
    #[error("funnel {funnel} has no stage {stage}")]
    UnknownStage { funnel: FunnelId, stage: StageKey },
    #[error("unknown user {user}")]
    UnknownUser { user: UserId },
    #[error("user {user} is dismissed and cannot take leads")]
    InactiveUser { user: UserId },
    #[error("unknown disqualification reason {reason}")]
    UnknownReason { reason: ReasonCode },
    #[error("unknown {kind} {code}")]
    UnknownCatalogCode { kind: &'static str, code: String },
    #[error(transparent)]
    InvalidValue(#[from] ValueError),
    #[error("field {field} is changed twice in one command")]
    DuplicateChange { field: &'static str },
    #[error("amounts must be in the base currency {expected}, not {given}")]
    NotBaseCurrency { expected: Currency, given: Currency },
    #[error("cannot qualify a lead in stage {stage} without a contact (name and phone or e-mail) or an account name")]
    QualificationNeedsContactData { stage: Stage },
    #[error("cannot create a contact from a lead without a contact name")]
    NoContactToCreate,
    #[error("cannot create an account from a lead without an account name")]
    NoAccountToCreate,
    #[error("cannot start handoff of a lead in stage {stage} without a responsible")]
    ResponsibleRequired { stage: Stage },
    #[error("the lead in stage {stage} has no open {kind} task")]
    NoOpenTask { stage: Stage, kind: &'static str },
    #[error("task {given} is not the lead's open {kind} task {open}")]
    TaskMismatch {
        kind: &'static str,
        open: TaskId,
        given: TaskId,
    },
    #[error("the lead in stage {stage} already has an open handoff task {task}")]
    HandoffTaskAlreadyOpen { stage: Stage, task: TaskId },
    #[error("cannot schedule a handoff task while handoff details are awaited on task {task}")]
    HandoffDetailsPending { task: TaskId },
    #[error("the given time must be after the current time")]
    TimeInPast,
    #[error("cannot {} a lead in stage {stage} without a budget and a sales direction", command.verb())]
    SaleTermsRequired { command: CommandName, stage: Stage },
    #[error("a conversion needs at least one target: contact, account or deal")]
    NothingToConvert,
    #[error("deal {given} is not the lead's open deal {open}")]
    DealMismatch { open: DealId, given: DealId },
    #[error("the lead is already in stage {stage}")]
    AlreadyInStage { stage: Stage },
    #[error("cannot jump to stage {to}: closed stages are reached only by their own commands")]
    JumpTargetClosed { to: Stage },
    #[error("only supervisors and admins may {}, not a {role:?}", command.verb())]
    SupervisorOnly { command: CommandName, role: Role },
    #[error("only the responsible or a supervisor may jump a lead, not user {user}")]
    NotAllowedToJump { user: UserId },
    #[error("only the creator, their supervisor or an admin may convert a lead, not user {user}")]
    NotAllowedToConvert { user: UserId },
}

impl Rejection {
    /// The rule's stable name, as the API reports it.
    pub fn rule(&self) -> &'static str {
        match self {
            Self::AlreadyRegistered { .. } => "already_registered",
            Self::NotRegistered { .. } => "not_registered",
            Self::OutOfScope { .. } => "out_of_scope",
            Self::NotAllowedInStage { .. } => "not_allowed_in_stage",
            Self::UnknownFunnel { .. } => "unknown_funnel",
            Self::UnknownStage { .. } => "unknown_stage",
            Self::UnknownUser { .. } => "unknown_user",
            Self::InactiveUser { .. } => "inactive_user",
            Self::UnknownReason { .. } => "unknown_reason",
            Self::UnknownCatalogCode { .. } => "unknown_catalog_code",
            Self::InvalidValue(_) => "invalid_value",
            Self::DuplicateChange { .. } => "duplicate_change",
            Self::NotBaseCurrency { .. } => "not_base_currency",
            Self::QualificationNeedsContactData { .. } => "qualification_needs_contact_data",
            Self::NoContactToCreate => "no_contact_to_create",
            Self::NoAccountToCreate => "no_account_to_create",
            Self::ResponsibleRequired { .. } => "responsible_required",
            Self::NoOpenTask { .. } => "no_open_task",
            Self::TaskMismatch { .. } => "task_mismatch",
            Self::HandoffTaskAlreadyOpen { .. } => "handoff_task_already_open",
            Self::HandoffDetailsPending { .. } => "handoff_details_pending",
            Self::TimeInPast => "time_in_past",
            Self::SaleTermsRequired { .. } => "sale_terms_required",
            Self::NothingToConvert => "nothing_to_convert",
            Self::DealMismatch { .. } => "deal_mismatch",
            Self::AlreadyInStage { .. } => "already_in_stage",
            Self::JumpTargetClosed { .. } => "jump_target_closed",
            Self::SupervisorOnly { .. } => "supervisor_only",
            Self::NotAllowedToJump { .. } => "not_allowed_to_jump",
            Self::NotAllowedToConvert { .. } => "not_allowed_to_convert",
        }
    }
}
