//! The rows of the `transitions` model (issue 11), as one mapping from events: each lead's
//! cohort as registered, every stage it entered, who was responsible and its budget from when.
//! The projection stores them, and the audit's from-log path keeps them in memory, so both read
//! the same rows. Nothing here is personal.

use compact_str::CompactString;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use leadflow_domain::details::DetailChange;
use leadflow_domain::events::{DealOpened, Transition};
use leadflow_domain::stage::Stage;
use leadflow_domain::LeadEvent;

use crate::{micros, Body, Envelope};

/// How a stage change came about, as the rows name it.
pub fn via_name(via: &Transition) -> &'static str {
    match via {
        Transition::Qualified => "qualified",
        Transition::StartHandoff => "startHandoff",
        Transition::NeedAbsent => "needAbsent",
        Transition::Disqualified => "disqualified",
        Transition::PlaceOrder => "placeOrder",
        Transition::TransferToSale => "transferToSale",
        Transition::ReturnToDistribution => "returnToDistribution",
        Transition::Converted => "converted",
        Transition::Jump { .. } => "jump",
        Transition::DealWon => "dealWon",
        Transition::DealLost => "dealLost",
        Transition::Reopened => "reopened",
    }
}

/// Where a stage stands on the way to a sale: the working stages, then AwaitingSale.
fn step(stage: Stage) -> Option<u8> {
    match stage {
        Stage::Qualification => Some(0),
        Stage::Distribution => Some(1),
        Stage::Handoff => Some(2),
        Stage::AwaitingSale => Some(3),
        _ => None,
    }
}

/// Where a stage stands among the audit's steps: Qualification is 0, and step `k` is rank
/// `k + 1` (rank 1, Qualification done, is leaving Qualification forward).
pub fn rank(stage: &str) -> Option<usize> {
    match stage {
        "Qualification" => Some(0),
        "Distribution" => Some(2),
        "Handoff" => Some(3),
        "AwaitingSale" => Some(4),
        "NeedSatisfied" => Some(5),
        _ => None,
    }
}

/// The steps (indexes into the audit's five) a move from `from` to `to` reaches: going
/// forward, every step after `from` up to and including `to`'s; otherwise (back, or in from a
/// closed stage or the registration) `to`'s own step, if it is one.
pub fn steps_of(from: &str, to: &str) -> Vec<usize> {
    let Some(t) = rank(to) else {
        return Vec::new();
    };
    match rank(from) {
        Some(f) if t > f => (f + 1..=t).map(|r| r - 1).collect(),
        _ if t >= 1 => vec![t - 1],
        _ => Vec::new(),
    }
}

/// A lead's way as it stands, kept move by move (the columns `reached` to `reason` of its `transition_leads` row): the steps reached in
/// order (bit k: step k), those reached by a jump, and the stage it is in with its reason.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Reach {
    pub reached: u8,
    pub by_jump: u8,
    pub stage: String,
    pub reason: String,
}

impl Reach {
    /// The way after `m`: each step the move reaches counts once reached after the step
    /// before it (the audit's ordered mode, with no window).
    pub fn after(mut self, m: &MoveRow) -> Self {
        for s in steps_of(&m.from, &m.to) {
            let in_order = s == 0 || self.reached & (1 << (s - 1)) != 0;
            if in_order && self.reached & (1 << s) == 0 {
                self.reached |= 1 << s;
                if m.jump {
                    self.by_jump |= 1 << s;
                }
            }
        }
        self.stage.clear();
        self.stage.push_str(&m.to);
        self.reason.clear();
        self.reason.push_str(&m.reason);
        self
    }
}

/// A jump: the jump command, or a conversion over a stage of the way (straight from
/// Qualification or Distribution to AwaitingSale). A qualification straight to Handoff (the
/// lead had its manager already) is the normal path.
pub fn is_jump(from: Stage, to: Stage, via: &Transition) -> bool {
    match via {
        Transition::Jump { .. } => true,
        Transition::Converted => {
            matches!((step(from), step(to)), (Some(a), Some(b)) if b > a + 1)
        }
        _ => false,
    }
}

/// A lead as registered: what an audit's cohort filters and groups by.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CohortRow {
    pub funnel: CompactString,
    /// '' when none.
    pub source: CompactString,
    pub channel: CompactString,
    pub created_by: Uuid,
    /// At registration; `None`: unassigned.
    pub responsible: Option<Uuid>,
    pub quality: CompactString,
    pub advertising: bool,
    /// Business time, µs since the epoch.
    pub registered_at: i64,
    pub position: u64,
}

/// A stage a lead entered: its registration (from '') or a stage change.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MoveRow {
    pub revision: u64,
    pub position: u64,
    /// Business time, µs since the epoch.
    pub at: i64,
    pub from: CompactString,
    pub to: CompactString,
    pub via: CompactString,
    pub jump: bool,
    /// The disqualification reason's code, '' otherwise.
    pub reason: CompactString,
    pub actor: Uuid,
}

/// Who became responsible, from when.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AssignmentRow {
    pub revision: u64,
    pub position: u64,
    pub at: i64,
    pub user: Uuid,
}

/// The budget a lead had from when, in minor units (`None`: cleared).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BudgetRow {
    pub revision: u64,
    pub position: u64,
    pub at: i64,
    pub budget_minor: Option<i64>,
}

/// One command on a lead: its first event.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommandRow {
    pub revision: u64,
    pub position: u64,
    pub at: i64,
    pub actor: Uuid,
    /// The command's name, or the event's type for events that do not name theirs.
    pub command: CompactString,
}

/// A lead's rows of one kind (its moves, budgets or commands), in log order, as the model
/// stores them in one column of the lead's row: postcard (serde's varint format), about 40
/// to 60 bytes a row.
pub(crate) fn encode_rows<T: Serialize>(rows: &[T]) -> Vec<u8> {
    postcard::to_stdvec(rows).expect("rows of plain values serialize")
}

/// The rows [`encode_rows`] wrote into column `column`.
pub(crate) fn decode_rows<T: DeserializeOwned>(
    r: &rusqlite::Row<'_>,
    column: usize,
) -> rusqlite::Result<Vec<T>> {
    let blob = r
        .get_ref(column)?
        .as_blob()
        .map_err(rusqlite::Error::from)?;
    postcard::from_bytes(blob).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(column, rusqlite::types::Type::Blob, Box::new(e))
    })
}

/// The model's columns of each row type, in table order after the lead: what every reader
/// selects, read back by the `read` functions below from column `from` on.
pub(crate) const COHORT_COLUMNS: &str =
    "funnel, source, channel, created_by, responsible, quality, advertising, registered_at, position";
pub(crate) const ASSIGNMENT_COLUMNS: &str = "revision, position, at, user";

/// The text in column `i`, held inline when short (every stage name and code is): no
/// allocation per value, which an audit reading millions of rows would pay.
fn text_at(r: &rusqlite::Row<'_>, i: usize) -> rusqlite::Result<CompactString> {
    Ok(CompactString::new(
        r.get_ref(i)?.as_str().map_err(rusqlite::Error::from)?,
    ))
}

fn uuid_at(r: &rusqlite::Row<'_>, i: usize) -> rusqlite::Result<Uuid> {
    Ok(Uuid::from_slice(&r.get::<_, Vec<u8>>(i)?).unwrap_or_default())
}

impl CohortRow {
    /// The [`COHORT_COLUMNS`] of a row, from column `from` on.
    pub(crate) fn read(r: &rusqlite::Row<'_>, from: usize) -> rusqlite::Result<Self> {
        Ok(Self {
            funnel: text_at(r, from)?,
            source: text_at(r, from + 1)?,
            channel: text_at(r, from + 2)?,
            created_by: uuid_at(r, from + 3)?,
            responsible: r
                .get::<_, Option<Vec<u8>>>(from + 4)?
                .map(|b| Uuid::from_slice(&b).unwrap_or_default()),
            quality: text_at(r, from + 5)?,
            advertising: r.get(from + 6)?,
            registered_at: r.get(from + 7)?,
            position: r.get::<_, i64>(from + 8)? as u64,
        })
    }
}

impl AssignmentRow {
    /// The [`ASSIGNMENT_COLUMNS`] of a row, from column `from` on.
    pub(crate) fn read(r: &rusqlite::Row<'_>, from: usize) -> rusqlite::Result<Self> {
        Ok(Self {
            revision: r.get::<_, i64>(from)? as u64,
            position: r.get::<_, i64>(from + 1)? as u64,
            at: r.get(from + 2)?,
            user: uuid_at(r, from + 3)?,
        })
    }
}

/// What one event of a lead adds to the model. (Boxing the registration would cost an
/// allocation per event for one short-lived value.)
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Row {
    /// The registration: the cohort row, its entry into the first stage, its responsible and
    /// its budget.
    Registered {
        cohort: CohortRow,
        entered: MoveRow,
        assigned: Option<AssignmentRow>,
        budget: Option<BudgetRow>,
    },
    /// A disqualification's reason, held until the stage change of the same command (which
    /// comes with its `reason` empty: the reader fills it in).
    Reason(CompactString),
    Moved(MoveRow),
    Assigned(AssignmentRow),
    /// The budget set (or cleared).
    Budget(BudgetRow),
}

/// The event types [`row_of`] maps to a row: whoever holds an event of another type knows,
/// without decoding it, that it adds none (the audit straight from the log leaves more than
/// half of the log undecoded so).
pub const ROW_EVENT_TYPES: [&str; 7] = [
    "LeadRegistered",
    "LeadDisqualified",
    "LeadStageChanged",
    "ResponsibleAssigned",
    "HandoffDetailsRecorded",
    "DealOpened",
    "LeadDetailsUpdated",
];

/// The rows `env` adds, with its lead; `None` for events the model does not keep. The one
/// mapping from events to rows: the projection stores them, and the audit's from-log path
/// ([`crate::audit::PathsFromLog`]) keeps them in memory, so both read the same rows.
pub fn row_of(env: &Envelope) -> Option<(Uuid, Row)> {
    let Body::Lead {
        lead_id,
        event,
        meta,
    } = &env.body
    else {
        return None;
    };
    let (revision, position, at) = (env.revision, env.position.0, micros(meta.occurred_at));
    let actor = meta.actor.user_id.as_uuid();
    let moved = |from: CompactString, to: CompactString, via: &str, jump: bool| MoveRow {
        revision,
        position,
        at,
        from,
        to,
        via: CompactString::new(via),
        jump,
        reason: CompactString::default(),
        actor,
    };
    let assigned = |user: Uuid| AssignmentRow {
        revision,
        position,
        at,
        user,
    };
    let budget = |budget_minor: Option<i64>| BudgetRow {
        revision,
        position,
        at,
        budget_minor,
    };
    let row = match event {
        LeadEvent::LeadRegistered(r) => {
            let d = &r.details;
            Row::Registered {
                cohort: CohortRow {
                    funnel: r.funnel.as_str().into(),
                    source: d.source.as_ref().map_or("", |s| s.as_str()).into(),
                    channel: d.channel.as_ref().map_or("", |c| c.as_str()).into(),
                    created_by: r.created_by.as_uuid(),
                    responsible: r.responsible.map(|u| u.as_uuid()),
                    quality: CompactString::const_new(d.quality.as_str()),
                    advertising: d.advertising,
                    registered_at: at,
                    position,
                },
                entered: moved(
                    CompactString::default(),
                    CompactString::const_new(r.stage.as_str()),
                    "registered",
                    false,
                ),
                assigned: r.responsible.map(|u| assigned(u.as_uuid())),
                budget: d.budget.as_ref().map(|m| budget(Some(m.minor()))),
            }
        }
        LeadEvent::LeadDisqualified(d) => Row::Reason(d.reason.as_str().into()),
        LeadEvent::LeadStageChanged(c) => Row::Moved(moved(
            CompactString::const_new(c.from.as_str()),
            CompactString::const_new(c.to.as_str()),
            via_name(&c.via),
            is_jump(c.from, c.to, &c.via),
        )),
        LeadEvent::ResponsibleAssigned(a) => Row::Assigned(assigned(a.to.as_uuid())),
        LeadEvent::HandoffDetailsRecorded(h) => Row::Budget(budget(Some(h.budget.minor()))),
        LeadEvent::DealOpened(DealOpened {
            budget: Some(b), ..
        }) => Row::Budget(budget(Some(b.minor()))),
        LeadEvent::LeadDetailsUpdated(u) => {
            let set = u.changes.iter().rev().find_map(|c| match c {
                DetailChange::Budget(b) => Some(b.as_ref().map(|m| m.minor())),
                _ => None,
            })?;
            Row::Budget(budget(set))
        }
        // Every other type (and ROW_EVENT_TYPES lists exactly the ones above: every test that
        // builds the transitions model runs the assertion below).
        _ => return None,
    };
    debug_assert!(ROW_EVENT_TYPES.contains(&event.event_type()));
    Some((lead_id.as_uuid(), row))
}

#[cfg(test)]
mod tests {
    use super::*;
    use leadflow_domain::values::Comment;

    /// Every recorded payload of every lead event type (`tests/golden/v1`) goes through
    /// `row_of`: each type that maps to a row is listed in `ROW_EVENT_TYPES` (the from-log
    /// audit decodes only those), and each listed type is a lead event of this build.
    #[test]
    fn the_types_that_map_to_rows_are_the_listed_ones() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/golden/v1");
        let lines = |file: &std::path::Path| -> Vec<String> {
            std::fs::read_to_string(file)
                .unwrap()
                .lines()
                .filter(|l| !l.trim().is_empty())
                .map(str::to_owned)
                .collect()
        };
        let meta = lines(&dir.join("metadata.jsonl"))
            .iter()
            .find_map(|l| leadflow_codec::EventMetadata::decode(l.as_bytes()).ok())
            .expect("a recorded metadata");
        let mut mapped = std::collections::BTreeSet::new();
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_stem().unwrap().to_string_lossy().into_owned();
            if leadflow_codec::lead::current_version(&name).is_none() {
                continue;
            }
            for payload in lines(&path) {
                let event = leadflow_codec::lead::decode(&name, 1, payload.as_bytes()).unwrap();
                let env = Envelope {
                    position: leadflow_store::Position(1),
                    stream: "lead-test".to_owned(),
                    revision: 0,
                    data: Vec::new(),
                    body: Body::Lead {
                        lead_id: leadflow_domain::LeadId::from_uuid(Uuid::nil()),
                        event,
                        meta: meta.clone(),
                    },
                };
                if row_of(&env).is_some() {
                    mapped.insert(name.clone());
                }
            }
        }
        let listed: std::collections::BTreeSet<String> =
            ROW_EVENT_TYPES.iter().map(|t| (*t).to_owned()).collect();
        // The recordings hold a budget for each type that can carry one, so every listed type
        // maps to a row from some recorded payload.
        assert_eq!(mapped, listed);
    }

    #[test]
    fn a_jump_is_the_jump_command_or_a_step_over_a_stage_of_the_way() {
        use Stage::*;
        let jump = Transition::Jump {
            reason: Comment::parse("comment", "the client asked").unwrap(),
        };
        for (from, to, via, expected) in [
            (Qualification, Distribution, Transition::Qualified, false),
            (Qualification, Handoff, Transition::Qualified, false),
            (Qualification, AwaitingSale, Transition::Converted, true),
            (Handoff, AwaitingSale, Transition::Converted, false),
            (Distribution, Handoff, jump.clone(), true),
            (Handoff, Disqualified, Transition::Disqualified, false),
            (Disqualified, Qualification, Transition::Reopened, false),
            (AwaitingSale, NeedSatisfied, Transition::DealWon, false),
        ] {
            assert_eq!(
                is_jump(from, to, &via),
                expected,
                "{from:?} -> {to:?} via {via:?}"
            );
        }
    }
}
