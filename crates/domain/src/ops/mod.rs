//! What operators do to the read models (issue 12), as events: who paused, resumed, retried,
//! skipped an event of, rebuilt or rolled back which read model, when, and why. The read side
//! carries the action out; this stream, `ops-readmodels`, is its record in the log, the one
//! place an auditor reads every operator's hand on the product's data.
//!
//! Why is a code from a fixed list plus an optional ticket reference, never free text: the log
//! keeps it forever, and a sentence about an incident can name a person (issue 20).
//!
//! Rules, each an [`OpsRejection`] variant: only an admin acts on a read model; an action
//! names at least one read model (a code); a skip names the log position of the event it
//! leaves out.

use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::catalog::Role;
use crate::context::Context;
use crate::ids::UserId;
use crate::subject::TicketRef;
use crate::values::ValueError;

/// Calls `$m! { Type = version, ... }` with every ops event type and its current version.
#[macro_export]
macro_rules! for_each_ops_event {
    ($m:ident) => {
        $m! {
            ReadModelPaused = 2,
            ReadModelResumed = 2,
            ReadModelRetried = 2,
            ReadModelEventSkipped = 2,
            ReadModelRebuildStarted = 2,
            ReadModelRolledBack = 2,
        }
    };
}

macro_rules! define_ops_event {
    ($($list:tt)*) => {
        event_enum! {
            /// Every event of the ops stream.
            OpsEvent, ops_event_schemas; $($list)*
        }
    };
}

for_each_ops_event!(define_ops_event);

/// What an ops stream is about: its id (`ops-readmodels`). Backups and restores, webhooks'
/// replays and the like will be further variants.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum OpsScope {
    /// The read models: their control, rebuilds and rollbacks.
    ReadModels,
}

impl OpsScope {
    pub const ALL: [OpsScope; 1] = [OpsScope::ReadModels];

    pub fn as_str(self) -> &'static str {
        match self {
            OpsScope::ReadModels => "readmodels",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == raw)
    }
}

impl fmt::Display for OpsScope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why an operator acted: a fixed list, never free text (the log keeps it forever).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum OpsReason {
    /// Something is wrong in production and this is part of handling it.
    Incident,
    /// An event the model cannot apply (a bug, bad data): skipped or retried.
    BadEvent,
    /// A fix for what stopped the model is deployed: retried.
    FixDeployed,
    /// Planned work (a rebuild at a quiet hour, a pause for a copy).
    Maintenance,
    /// A new version of the product or of a model's SQL.
    Upgrade,
    /// Checking a model against a rebuild of it.
    Verification,
    Other,
}

impl OpsReason {
    pub const ALL: [OpsReason; 7] = [
        OpsReason::Incident,
        OpsReason::BadEvent,
        OpsReason::FixDeployed,
        OpsReason::Maintenance,
        OpsReason::Upgrade,
        OpsReason::Verification,
        OpsReason::Other,
    ];

    pub fn code(self) -> &'static str {
        match self {
            OpsReason::Incident => "incident",
            OpsReason::BadEvent => "bad_event",
            OpsReason::FixDeployed => "fix_deployed",
            OpsReason::Maintenance => "maintenance",
            OpsReason::Upgrade => "upgrade",
            OpsReason::Verification => "verification",
            OpsReason::Other => "other",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.code() == raw)
    }
}

impl fmt::Display for OpsReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// A read model's name (`leads`, `history`): 1-40 characters of a-z, 0-9 and `_`, starting
/// with a letter. Which models exist is the read side's to say.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(transparent)]
pub struct ReadModelName(String);

impl ReadModelName {
    pub fn parse(raw: &str) -> Result<Self, ValueError> {
        let ok = raw.len() <= 40
            && raw.starts_with(|c: char| c.is_ascii_lowercase())
            && raw
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        ValueError::shaped(
            raw,
            ok,
            "read model",
            "use 1-40 characters of a-z, 0-9 and '_', starting with a letter",
        )
        .map(Self)
    }
}

/// Which generation of a read model a pause, resume, retry or skip is on: the one serving,
/// or the one a rebuild is building beside it (which can be paused at a busy hour, and stops at
/// an event the new version cannot apply like any other).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Generation {
    #[default]
    Live,
    Building,
}

impl Generation {
    pub fn as_str(self) -> &'static str {
        match self {
            Generation::Live => "live",
            Generation::Building => "building",
        }
    }
}

/// The process that carried an action out. Every `serve` node keeps its own read models, so a
/// pause on one is not a pause on another, and the record says where it happened: `host:port`
/// of a `serve`, `host:cli` of a command run with no server. 1-100 characters of letters,
/// digits and `.-_:@[]` (an IPv6 address in brackets).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(transparent)]
pub struct NodeName(String);

impl NodeName {
    pub fn parse(raw: &str) -> Result<Self, ValueError> {
        let ok = (1..=100).contains(&raw.len())
            && raw
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || ".-_:@[]".contains(c));
        ValueError::shaped(
            raw,
            ok,
            "node name",
            "use 1-100 characters of letters, digits and .-_:@[]",
        )
        .map(Self)
    }
}

/// `as_str` and `Display` of the names above: the text they were parsed from.
macro_rules! shown_as_parsed {
    ($($name:ident),*) => {$(
        impl $name {
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    )*};
}

shown_as_parsed!(ReadModelName, NodeName);

/// Why, as every ops event records it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Why {
    pub reason: OpsReason,
    /// The incident or change in another system (`INC-2291`).
    pub ticket: Option<TicketRef>,
}

/// A read model stopped following the log on an operator's word; it kept serving what it had.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReadModelPaused {
    pub model: ReadModelName,
    pub by: UserId,
    /// Where; none on actions recorded before nodes were named (version 1).
    pub node: Option<NodeName>,
    pub generation: Generation,
    pub why: Why,
}

/// A paused read model follows the log again.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReadModelResumed {
    pub model: ReadModelName,
    pub by: UserId,
    pub node: Option<NodeName>,
    pub generation: Generation,
    pub why: Why,
}

/// A failed read model tries again: the event it stopped at (`position`), or, when it failed
/// at no event (finishing a rebuild), what it failed at.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReadModelRetried {
    pub model: ReadModelName,
    pub by: UserId,
    pub node: Option<NodeName>,
    pub generation: Generation,
    pub position: Option<u64>,
    pub why: Why,
}

/// The event at `position`, which a read model could not apply, is left out of it for good
/// (its dead letters list it) and the model goes on after it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReadModelEventSkipped {
    pub model: ReadModelName,
    pub by: UserId,
    pub node: Option<NodeName>,
    pub generation: Generation,
    pub position: u64,
    pub why: Why,
}

/// A rebuild of a read model beside the live one began (`verify`: it takes over only if it
/// equals the live one at one log position).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReadModelRebuildStarted {
    pub model: ReadModelName,
    pub by: UserId,
    pub node: Option<NodeName>,
    pub verify: bool,
    pub why: Why,
}

/// A read model went back to the generation that served before its last switch.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReadModelRolledBack {
    pub model: ReadModelName,
    pub by: UserId,
    pub node: Option<NodeName>,
    pub why: Why,
}

/// What an operator does to a read model.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OpsAction {
    Pause,
    Resume,
    /// Retry the event at this log position (the one the model stopped at, if any).
    Retry {
        position: Option<u64>,
    },
    /// Skip the event at this log position (the one the model stopped at).
    Skip {
        position: u64,
    },
    Rebuild {
        verify: bool,
    },
    Rollback,
}

impl OpsAction {
    /// A short name for logs: `pause`, `skip`, ...
    pub fn label(&self) -> &'static str {
        match self {
            OpsAction::Pause => "pause",
            OpsAction::Resume => "resume",
            OpsAction::Retry { .. } => "retry",
            OpsAction::Skip { .. } => "skip",
            OpsAction::Rebuild { .. } => "rebuild",
            OpsAction::Rollback => "rollback",
        }
    }
}

/// An operator's action on read models (one, or every one for a rebuild of all), with why:
/// one event per model, appended together.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OpsCommand {
    pub models: Vec<ReadModelName>,
    pub action: OpsAction,
    /// The generation a pause, resume, retry or skip is on; a rebuild and a rollback act on
    /// the model as a whole and take `Live`.
    pub generation: Generation,
    /// The process carrying it out.
    pub node: NodeName,
    pub why: Why,
}

impl OpsCommand {
    pub const NAMES: [&'static str; 6] = [
        "PauseReadModel",
        "ResumeReadModel",
        "RetryReadModel",
        "SkipReadModelEvent",
        "RebuildReadModel",
        "RollBackReadModel",
    ];

    pub fn name(&self) -> &'static str {
        Self::NAMES[match self.action {
            OpsAction::Pause => 0,
            OpsAction::Resume => 1,
            OpsAction::Retry { .. } => 2,
            OpsAction::Skip { .. } => 3,
            OpsAction::Rebuild { .. } => 4,
            OpsAction::Rollback => 5,
        }]
    }

    /// The stream it is recorded in.
    pub fn scope(&self) -> OpsScope {
        OpsScope::ReadModels
    }
}

/// The ops stream's state: how many actions it records, and the last one.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OpsLog {
    pub actions: u64,
    pub last: Option<OpsEvent>,
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum OpsRejection {
    #[error("only an admin may act on a read model")]
    NotAdmin,
    #[error("a skip names the log position of the event it leaves out")]
    NoPosition,
    #[error("an action names the read models it is on")]
    NoModel,
    #[error("a rebuild or a rollback acts on the read model, not on a generation being built")]
    NotOnBuilding,
}

impl OpsRejection {
    pub fn rule(&self) -> &'static str {
        match self {
            OpsRejection::NotAdmin => "ops.not_admin",
            OpsRejection::NoPosition => "ops.no_position",
            OpsRejection::NoModel => "ops.no_model",
            OpsRejection::NotOnBuilding => "ops.not_on_building",
        }
    }
}

/// The ops stream as an [`crate::Aggregate`].
pub enum OpsAggregate {}

impl crate::Aggregate for OpsAggregate {
    const CATEGORY: &'static str = "ops";
    type Id = OpsScope;
    type State = OpsLog;
    type Command = OpsCommand;
    type Event = OpsEvent;
    type Rejection = OpsRejection;

    fn decide(
        _state: Option<&OpsLog>,
        command: &OpsCommand,
        ctx: &Context,
    ) -> Result<Vec<OpsEvent>, OpsRejection> {
        if ctx.actor.role != Role::Admin {
            return Err(OpsRejection::NotAdmin);
        }
        if command.models.is_empty() {
            return Err(OpsRejection::NoModel);
        }
        if command.action == (OpsAction::Skip { position: 0 }) {
            return Err(OpsRejection::NoPosition);
        }
        let whole = matches!(
            command.action,
            OpsAction::Rebuild { .. } | OpsAction::Rollback
        );
        if whole && command.generation == Generation::Building {
            return Err(OpsRejection::NotOnBuilding);
        }
        Ok(command
            .models
            .iter()
            .map(|model| event_of(model.clone(), command, ctx.actor.user))
            .collect())
    }

    fn evolve(state: Option<OpsLog>, event: &OpsEvent) -> Option<OpsLog> {
        let mut log = state.unwrap_or_default();
        log.actions += 1;
        log.last = Some(event.clone());
        Some(log)
    }

    fn command_name(command: &OpsCommand) -> &'static str {
        command.name()
    }
}

/// The event recording the command's action on `model`.
fn event_of(model: ReadModelName, command: &OpsCommand, by: UserId) -> OpsEvent {
    let why = command.why.clone();
    let node = Some(command.node.clone());
    let generation = command.generation;
    match command.action {
        OpsAction::Pause => ReadModelPaused {
            model,
            by,
            node,
            generation,
            why,
        }
        .into(),
        OpsAction::Resume => ReadModelResumed {
            model,
            by,
            node,
            generation,
            why,
        }
        .into(),
        OpsAction::Retry { position } => ReadModelRetried {
            model,
            by,
            node,
            generation,
            position,
            why,
        }
        .into(),
        OpsAction::Skip { position } => ReadModelEventSkipped {
            model,
            by,
            node,
            generation,
            position,
            why,
        }
        .into(),
        OpsAction::Rebuild { verify } => ReadModelRebuildStarted {
            model,
            by,
            node,
            verify,
            why,
        }
        .into(),
        OpsAction::Rollback => ReadModelRolledBack {
            model,
            by,
            node,
            why,
        }
        .into(),
    }
}

impl OpsEvent {
    /// The read model the action was on.
    pub fn model(&self) -> &ReadModelName {
        match self {
            OpsEvent::ReadModelPaused(e) => &e.model,
            OpsEvent::ReadModelResumed(e) => &e.model,
            OpsEvent::ReadModelRetried(e) => &e.model,
            OpsEvent::ReadModelEventSkipped(e) => &e.model,
            OpsEvent::ReadModelRebuildStarted(e) => &e.model,
            OpsEvent::ReadModelRolledBack(e) => &e.model,
        }
    }

    /// Who acted.
    pub fn by(&self) -> UserId {
        match self {
            OpsEvent::ReadModelPaused(e) => e.by,
            OpsEvent::ReadModelResumed(e) => e.by,
            OpsEvent::ReadModelRetried(e) => e.by,
            OpsEvent::ReadModelEventSkipped(e) => e.by,
            OpsEvent::ReadModelRebuildStarted(e) => e.by,
            OpsEvent::ReadModelRolledBack(e) => e.by,
        }
    }

    /// Where: the node that carried it out (none before nodes were named).
    pub fn node(&self) -> Option<&NodeName> {
        match self {
            OpsEvent::ReadModelPaused(e) => e.node.as_ref(),
            OpsEvent::ReadModelResumed(e) => e.node.as_ref(),
            OpsEvent::ReadModelRetried(e) => e.node.as_ref(),
            OpsEvent::ReadModelEventSkipped(e) => e.node.as_ref(),
            OpsEvent::ReadModelRebuildStarted(e) => e.node.as_ref(),
            OpsEvent::ReadModelRolledBack(e) => e.node.as_ref(),
        }
    }

    /// The generation a pause, resume, retry or skip was on; a rebuild or rollback is on the
    /// model and reads `Live`.
    pub fn generation(&self) -> Generation {
        match self {
            OpsEvent::ReadModelPaused(e) => e.generation,
            OpsEvent::ReadModelResumed(e) => e.generation,
            OpsEvent::ReadModelRetried(e) => e.generation,
            OpsEvent::ReadModelEventSkipped(e) => e.generation,
            OpsEvent::ReadModelRebuildStarted(_) | OpsEvent::ReadModelRolledBack(_) => {
                Generation::Live
            }
        }
    }

    /// Why.
    pub fn why(&self) -> &Why {
        match self {
            OpsEvent::ReadModelPaused(e) => &e.why,
            OpsEvent::ReadModelResumed(e) => &e.why,
            OpsEvent::ReadModelRetried(e) => &e.why,
            OpsEvent::ReadModelEventSkipped(e) => &e.why,
            OpsEvent::ReadModelRebuildStarted(e) => &e.why,
            OpsEvent::ReadModelRolledBack(e) => &e.why,
        }
    }
}
