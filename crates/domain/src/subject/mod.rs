//! A data subject (issue 20): a person outside the company whose personal data the CRM holds.
//! Its stream, `subject-{id}`, records what was done with that data on request: erased
//! (crypto-shredding: the codec's key for the subject is destroyed, after which every personal
//! field sealed with it reads as erased everywhere) and exported (who took a copy, when).
//! Neither event carries a personal value.
//!
//! Rules, each a [`SubjectRejection`] variant: only an admin erases or exports; erasing an
//! erased subject again changes nothing.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::catalog::Role;
use crate::context::Context;
use crate::ids::{SubjectId, UserId};
use crate::values::ValueError;

/// Calls `$m! { Type = version, ... }` with every subject event type and its current version.
#[macro_export]
macro_rules! for_each_subject_event {
    ($m:ident) => {
        $m! {
            PersonalDataErased = 1,
            PersonalDataExported = 1,
        }
    };
}

macro_rules! define_subject_event {
    ($($list:tt)*) => {
        event_enum! {
            /// Every event of a subject's stream.
            SubjectEvent, subject_event_schemas; $($list)*
        }
    };
}

for_each_subject_event!(define_subject_event);

/// The event type of an erasure, for readers that act on it before decoding (caches).
pub const ERASED_EVENT: &str = "PersonalDataErased";

/// Why a subject's data was erased: a fixed list, never free text (the log keeps it forever).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum ErasureReason {
    /// The person asked (152-FZ art. 21, GDPR art. 17).
    Request,
    /// The retention period ran out (`privacy sweep`).
    Retention,
    /// A duplicate record of a person kept elsewhere.
    Duplicate,
    Other,
}

impl ErasureReason {
    pub const ALL: [ErasureReason; 4] = [
        ErasureReason::Request,
        ErasureReason::Retention,
        ErasureReason::Duplicate,
        ErasureReason::Other,
    ];

    pub fn code(self) -> &'static str {
        match self {
            ErasureReason::Request => "request",
            ErasureReason::Retention => "retention",
            ErasureReason::Duplicate => "duplicate",
            ErasureReason::Other => "other",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.code() == raw)
    }
}

/// A reference to the request in another system (`GDPR-2026-0042`, `SR#1187`): 1-64
/// characters of letters, digits and `-_./#:`, so it cannot hold a sentence about the person.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(transparent)]
pub struct TicketRef(String);

impl TicketRef {
    pub fn parse(raw: &str) -> Result<Self, ValueError> {
        let ok = !raw.is_empty()
            && raw.len() <= 64
            && raw
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_./#:".contains(c));
        ValueError::shaped(
            raw,
            ok,
            "ticket reference",
            "use 1-64 letters, digits and any of -_./#: (a reference, not a sentence)",
        )
        .map(Self)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The subject's personal data was erased: its key is destroyed, and every read model shows
/// its personal fields as erased. The process history (stages, times, amounts, who acted)
/// stays whole.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PersonalDataErased {
    pub subject: SubjectId,
    pub by: UserId,
    pub reason_code: ErasureReason,
    pub ticket: Option<TicketRef>,
}

/// A copy of the subject's personal data was handed out (GDPR art. 15): who took it, and how
/// many values it held; the values themselves are not in the log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PersonalDataExported {
    pub subject: SubjectId,
    pub by: UserId,
    pub values: u32,
    pub ticket: Option<TicketRef>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SubjectCommand {
    Erase {
        subject: SubjectId,
        reason: ErasureReason,
        ticket: Option<TicketRef>,
    },
    RecordExport {
        subject: SubjectId,
        values: u32,
        ticket: Option<TicketRef>,
    },
}

impl SubjectCommand {
    pub const NAMES: [&'static str; 2] = ["ErasePersonalData", "ExportPersonalData"];

    pub fn name(&self) -> &'static str {
        match self {
            SubjectCommand::Erase { .. } => Self::NAMES[0],
            SubjectCommand::RecordExport { .. } => Self::NAMES[1],
        }
    }

    /// The subject it is about (its stream).
    pub fn subject(&self) -> SubjectId {
        match self {
            SubjectCommand::Erase { subject, .. }
            | SubjectCommand::RecordExport { subject, .. } => *subject,
        }
    }
}

/// A subject's state: whether its data is erased, and how often it was exported.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Subject {
    pub id: Option<SubjectId>,
    pub erased: bool,
    pub exports: u32,
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SubjectRejection {
    #[error("only an admin may erase or export a person's data")]
    NotAdmin,
}

impl SubjectRejection {
    pub fn rule(&self) -> &'static str {
        match self {
            SubjectRejection::NotAdmin => "subject.not_admin",
        }
    }
}

/// The subject as an [`crate::Aggregate`].
pub enum SubjectAggregate {}

impl crate::Aggregate for SubjectAggregate {
    const CATEGORY: &'static str = "subject";
    type Id = SubjectId;
    type State = Subject;
    type Command = SubjectCommand;
    type Event = SubjectEvent;
    type Rejection = SubjectRejection;

    fn decide(
        state: Option<&Subject>,
        command: &SubjectCommand,
        ctx: &Context,
    ) -> Result<Vec<SubjectEvent>, SubjectRejection> {
        if ctx.actor.role != Role::Admin {
            return Err(SubjectRejection::NotAdmin);
        }
        let erased = state.is_some_and(|s| s.erased);
        Ok(match command {
            SubjectCommand::Erase { .. } if erased => Vec::new(),
            SubjectCommand::Erase {
                subject,
                reason,
                ticket,
            } => vec![PersonalDataErased {
                subject: *subject,
                by: ctx.actor.user,
                reason_code: *reason,
                ticket: ticket.clone(),
            }
            .into()],
            SubjectCommand::RecordExport {
                subject,
                values,
                ticket,
            } => vec![PersonalDataExported {
                subject: *subject,
                by: ctx.actor.user,
                values: *values,
                ticket: ticket.clone(),
            }
            .into()],
        })
    }

    fn evolve(state: Option<Subject>, event: &SubjectEvent) -> Option<Subject> {
        let mut subject = state.unwrap_or_default();
        match event {
            SubjectEvent::PersonalDataErased(e) => {
                subject.id = Some(e.subject);
                subject.erased = true;
            }
            SubjectEvent::PersonalDataExported(e) => {
                subject.id = Some(e.subject);
                subject.exports += 1;
            }
        }
        Some(subject)
    }

    fn command_name(command: &SubjectCommand) -> &'static str {
        command.name()
    }
}
