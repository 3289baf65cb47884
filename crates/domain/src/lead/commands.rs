//! The commands of the lead process (SPEC 3.3), already parsed: every field is a domain value.

use std::fmt;

use chrono::{DateTime, Utc};

use crate::details::{DetailChange, LeadDetails};
use crate::events::HandoffResult;
use crate::ids::{
    AccountId, ContactId, DealId, FunnelId, LeadId, ReasonCode, StageKey, TaskId, UserId,
};
use crate::values::{Comment, Money, Short};

/// Who is responsible for a new lead.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ResponsibleChoice {
    /// The user registering it (the default of the create form).
    #[default]
    Creator,
    User(UserId),
    /// Web forms, calls and imports arrive without one; qualification sends them to Distribution.
    Unassigned,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RegisterLead {
    pub lead_id: LeadId,
    /// `None`: the catalog's default funnel (the one the registry shows).
    pub funnel: Option<FunnelId>,
    pub responsible: ResponsibleChoice,
    pub details: LeadDetails,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UpdateLeadDetails {
    pub changes: Vec<DetailChange>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct QualifyLead {
    /// Link an existing contact instead of creating one from the lead's data.
    pub link_contact: Option<ContactId>,
    pub link_account: Option<AccountId>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DisqualifyLead {
    pub reason: ReasonCode,
    pub comment: Option<Comment>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AssignResponsible {
    pub to: UserId,
    pub remind: bool,
}

pub use crate::events::DistributionDecision;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CompleteHandoffTask {
    pub task_id: TaskId,
    pub result: HandoffResult,
}

/// Submits the follow-up task TransferToSale opened.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SubmitHandoffDetails {
    pub task_id: TaskId,
    pub budget: Money,
    pub sales_direction: Short,
    pub meeting_at: DateTime<Utc>,
    pub decision_at: DateTime<Utc>,
    pub need_type: Option<Short>,
    pub comment: Option<Comment>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScheduleHandoffTask {
    pub due_at: DateTime<Utc>,
}

/// A conversion target: made from the lead's data, or an existing record linked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target<Id> {
    CreateFromLead,
    Link(Id),
}

/// What a deal needs: budget (base currency) and sales direction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SaleTerms {
    pub budget: Money,
    pub sales_direction: Short,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConvertLead {
    pub contact: Option<Target<ContactId>>,
    pub account: Option<Target<AccountId>>,
    /// `Some`: open a deal and go to AwaitingSale. `Some(None)` uses the lead's own terms.
    pub deal: Option<Option<SaleTerms>>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordDealWon {
    pub deal_id: DealId,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordDealLost {
    pub deal_id: DealId,
    pub reason: Option<Comment>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JumpToStage {
    /// A stage of the lead's funnel, by its key.
    pub stage: StageKey,
    pub reason: Comment,
    /// For a jump into AwaitingSale when the lead lacks budget or sales direction.
    pub sale: Option<SaleTerms>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReopenLead {
    pub comment: Option<Comment>,
}

// Commands are built once per request and moved, never stored in bulk: boxing the
// registration would only add an allocation.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LeadCommand {
    Register(RegisterLead),
    UpdateDetails(UpdateLeadDetails),
    Qualify(QualifyLead),
    Disqualify(DisqualifyLead),
    AssignResponsible(AssignResponsible),
    Distribute(DistributionDecision),
    CompleteHandoffTask(CompleteHandoffTask),
    SubmitHandoffDetails(SubmitHandoffDetails),
    ScheduleHandoffTask(ScheduleHandoffTask),
    Convert(ConvertLead),
    RecordDealWon(RecordDealWon),
    RecordDealLost(RecordDealLost),
    JumpToStage(JumpToStage),
    Reopen(ReopenLead),
}

/// A command's name without its data: what rejections and traces name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CommandName {
    RegisterLead,
    UpdateLeadDetails,
    QualifyLead,
    DisqualifyLead,
    AssignResponsible,
    Distribute,
    CompleteHandoffTask,
    SubmitHandoffDetails,
    ScheduleHandoffTask,
    ConvertLead,
    RecordDealWon,
    RecordDealLost,
    JumpToStage,
    ReopenLead,
}

impl CommandName {
    /// Every command, in the order of SPEC 3.3.
    pub const ALL: [CommandName; 14] = [
        Self::RegisterLead,
        Self::UpdateLeadDetails,
        Self::QualifyLead,
        Self::DisqualifyLead,
        Self::AssignResponsible,
        Self::Distribute,
        Self::CompleteHandoffTask,
        Self::SubmitHandoffDetails,
        Self::ScheduleHandoffTask,
        Self::ConvertLead,
        Self::RecordDealWon,
        Self::RecordDealLost,
        Self::JumpToStage,
        Self::ReopenLead,
    ];

    /// The command named `raw` as `Display` writes it (`QualifyLead`).
    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.to_string() == raw)
    }

    /// The verb of "cannot {verb} a lead in stage {stage}".
    pub fn verb(self) -> &'static str {
        match self {
            Self::RegisterLead => "register",
            Self::UpdateLeadDetails => "update the details of",
            Self::QualifyLead => "qualify",
            Self::DisqualifyLead => "disqualify",
            Self::AssignResponsible => "reassign",
            Self::Distribute => "distribute",
            Self::CompleteHandoffTask => "record a handoff task result on",
            Self::SubmitHandoffDetails => "submit handoff details for",
            Self::ScheduleHandoffTask => "schedule a handoff task for",
            Self::ConvertLead => "convert",
            Self::RecordDealWon => "record a won deal for",
            Self::RecordDealLost => "record a lost deal for",
            Self::JumpToStage => "jump",
            Self::ReopenLead => "reopen",
        }
    }
}

impl CommandName {
    /// The name as recorded in event metadata (`QualifyLead`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::RegisterLead => "RegisterLead",
            Self::UpdateLeadDetails => "UpdateLeadDetails",
            Self::QualifyLead => "QualifyLead",
            Self::DisqualifyLead => "DisqualifyLead",
            Self::AssignResponsible => "AssignResponsible",
            Self::Distribute => "Distribute",
            Self::CompleteHandoffTask => "CompleteHandoffTask",
            Self::SubmitHandoffDetails => "SubmitHandoffDetails",
            Self::ScheduleHandoffTask => "ScheduleHandoffTask",
            Self::ConvertLead => "ConvertLead",
            Self::RecordDealWon => "RecordDealWon",
            Self::RecordDealLost => "RecordDealLost",
            Self::JumpToStage => "JumpToStage",
            Self::ReopenLead => "ReopenLead",
        }
    }
}

impl fmt::Display for CommandName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl LeadCommand {
    pub fn name(&self) -> CommandName {
        match self {
            Self::Register(_) => CommandName::RegisterLead,
            Self::UpdateDetails(_) => CommandName::UpdateLeadDetails,
            Self::Qualify(_) => CommandName::QualifyLead,
            Self::Disqualify(_) => CommandName::DisqualifyLead,
            Self::AssignResponsible(_) => CommandName::AssignResponsible,
            Self::Distribute(_) => CommandName::Distribute,
            Self::CompleteHandoffTask(_) => CommandName::CompleteHandoffTask,
            Self::SubmitHandoffDetails(_) => CommandName::SubmitHandoffDetails,
            Self::ScheduleHandoffTask(_) => CommandName::ScheduleHandoffTask,
            Self::Convert(_) => CommandName::ConvertLead,
            Self::RecordDealWon(_) => CommandName::RecordDealWon,
            Self::RecordDealLost(_) => CommandName::RecordDealLost,
            Self::JumpToStage(_) => CommandName::JumpToStage,
            Self::Reopen(_) => CommandName::ReopenLead,
        }
    }
}
