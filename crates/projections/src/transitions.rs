//! The `transitions` read model (issue 11): every stage each lead entered, with its business
//! time, log position, actor, whether it was a jump and the disqualification reason; each
//! lead's cohort as registered; who was responsible from when. The funnel audit scans these
//! rows instead of decoding the log. Nothing in it is personal: a jump's free-text reason and
//! a lost deal's comment are left out. Version 2 adds budgets from when (the board and the
//! reports as of a time), each lead's way as it stands (the live conversion report) and one row
//! per command (manager activity).

use rusqlite::{params, OptionalExtension, Transaction};
use uuid::Uuid;

use leadflow_domain::details::DetailChange;
use leadflow_domain::events::{DealOpened, Transition};
use leadflow_domain::stage::Stage;
use leadflow_domain::LeadEvent;

use crate::board_hours::BoardHours;
use crate::{micros, Body, Envelope, Projection, ProjectionError};

/// The `transitions` read model.
pub const TRANSITIONS: crate::Model = crate::Model("transitions");

#[derive(Default)]
pub struct TransitionsProjection;

impl TransitionsProjection {
    pub fn new() -> Self {
        Self
    }
}

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

/// A lead's way as it stands, kept move by move (the `lead_reach` row): the steps reached in
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
        self.stage = m.to.clone();
        self.reason = m.reason.clone();
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

impl Projection for TransitionsProjection {
    fn name(&self) -> &'static str {
        TRANSITIONS.name()
    }

    fn version(&self) -> u32 {
        4
    }

    fn schema(&self) -> &'static str {
        include_str!("../../../projections/transitions.v4.sql")
    }

    fn apply(&mut self, tx: &Transaction<'_>, events: &[Envelope]) -> Result<(), ProjectionError> {
        let mut lead_row = tx.prepare_cached(
            "INSERT OR REPLACE INTO transition_leads(lead, funnel, source, channel, created_by,
                 responsible, quality, advertising, registered_at, position)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
        )?;
        let mut transition = tx.prepare_cached(
            "INSERT OR REPLACE INTO transitions(lead, revision, position, at, from_stage, to_stage,
                 via, jump, reason, actor)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
        )?;
        let mut assignment = tx.prepare_cached(
            "INSERT OR REPLACE INTO assignments(lead, revision, position, at, user)
             VALUES (?1, ?2, ?3, ?4, ?5)",
        )?;
        let mut budget = tx.prepare_cached(
            "INSERT OR REPLACE INTO budgets(lead, revision, position, at, budget_minor)
             VALUES (?1, ?2, ?3, ?4, ?5)",
        )?;
        let mut hold_reason = tx.prepare_cached(
            "INSERT OR REPLACE INTO pending_reasons(lead, reason) VALUES (?1, ?2)",
        )?;
        let mut take_reason =
            tx.prepare_cached("DELETE FROM pending_reasons WHERE lead = ?1 RETURNING reason")?;
        let mut read_reach = tx.prepare_cached(
            "SELECT reached, by_jump, stage, reason, last_command FROM lead_reach WHERE lead = ?1",
        )?;
        let mut write_reach = tx.prepare_cached(
            "INSERT OR REPLACE INTO lead_reach(lead, reached, by_jump, stage, reason, responsible,
                 last_command)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        )?;
        let mut update_reach = tx.prepare_cached(
            "UPDATE lead_reach SET reached = ?2, by_jump = ?3, stage = ?4, reason = ?5
             WHERE lead = ?1",
        )?;
        let mut reassign =
            tx.prepare_cached("UPDATE lead_reach SET responsible = ?2 WHERE lead = ?1")?;
        let mut last_command =
            tx.prepare_cached("UPDATE lead_reach SET last_command = ?2 WHERE lead = ?1")?;
        let mut command = tx.prepare_cached(
            "INSERT OR REPLACE INTO commands(lead, revision, position, at, actor, command)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )?;
        let mut insert_move = |lead: &[u8], m: &MoveRow| {
            transition.execute(params![
                lead,
                m.revision as i64,
                m.position as i64,
                m.at,
                m.from,
                m.to,
                m.via,
                m.jump,
                m.reason,
                m.actor.as_bytes().as_slice(),
            ])
        };
        let mut insert_assignment = |lead: &[u8], a: &AssignmentRow| {
            assignment.execute(params![
                lead,
                a.revision as i64,
                a.position as i64,
                a.at,
                a.user.as_bytes().as_slice(),
            ])?;
            reassign.execute(params![lead, a.user.as_bytes().as_slice()])
        };
        let mut insert_budget = |lead: &[u8], b: &BudgetRow| {
            budget.execute(params![
                lead,
                b.revision as i64,
                b.position as i64,
                b.at,
                b.budget_minor
            ])
        };
        let mut days = BoardHours::default();
        for env in events {
            let Some((id, row)) = row_of(env) else {
                continue;
            };
            let lead = id.as_bytes().as_slice();
            let at = match &env.body {
                Body::Lead { meta, .. } => micros(meta.occurred_at),
                _ => 0,
            };
            // The board's rows read the model's rows of this event: written first.
            let written = row.clone();
            match row {
                Row::Registered {
                    cohort: c,
                    entered,
                    assigned,
                    budget,
                } => {
                    lead_row.execute(params![
                        lead,
                        c.funnel,
                        c.source,
                        c.channel,
                        c.created_by.as_bytes().as_slice(),
                        c.responsible.map(|u| u.as_bytes().to_vec()),
                        c.quality,
                        c.advertising,
                        c.registered_at,
                        c.position as i64,
                    ])?;
                    insert_move(lead, &entered)?;
                    let reach = Reach::default().after(&entered);
                    write_reach.execute(params![
                        lead,
                        reach.reached,
                        reach.by_jump,
                        reach.stage,
                        reach.reason,
                        c.responsible.map(|u| u.as_bytes().to_vec()),
                        Option::<Vec<u8>>::None,
                    ])?;
                    if let Some(a) = assigned {
                        insert_assignment(lead, &a)?;
                    }
                    if let Some(b) = budget {
                        insert_budget(lead, &b)?;
                    }
                }
                Row::Reason(reason) => {
                    hold_reason.execute(params![lead, reason])?;
                }
                Row::Moved(mut m) => {
                    if m.to == Stage::Disqualified.to_string() {
                        m.reason = take_reason
                            .query_row([lead], |r| r.get(0))
                            .optional()?
                            .unwrap_or_default();
                    }
                    insert_move(lead, &m)?;
                    let before = read_reach
                        .query_row([lead], |r| {
                            Ok(Reach {
                                reached: r.get(0)?,
                                by_jump: r.get(1)?,
                                stage: r.get(2)?,
                                reason: r.get(3)?,
                            })
                        })
                        .optional()?;
                    if let Some(reach) = before.map(|r| r.after(&m)) {
                        update_reach.execute(params![
                            lead,
                            reach.reached,
                            reach.by_jump,
                            reach.stage,
                            reach.reason
                        ])?;
                    }
                }
                Row::Assigned(a) => {
                    insert_assignment(lead, &a)?;
                }
                Row::Budget(b) => {
                    insert_budget(lead, &b)?;
                }
            }
            days.apply(tx, id, &written, env.revision, at)?;
        }
        days.flush(tx)?;
        // One row per command: an event whose command differs from its lead's last event's.
        for env in events {
            let Body::Lead { lead_id, meta, .. } = &env.body else {
                continue;
            };
            let lead = lead_id.as_uuid();
            let lead = lead.as_bytes().as_slice();
            let id = meta.command_id.as_bytes().as_slice();
            let last: Option<Option<Vec<u8>>> =
                read_reach.query_row([lead], |r| r.get(4)).optional()?;
            if last.as_ref().is_some_and(|l| l.as_deref() == Some(id)) {
                continue;
            }
            command.execute(params![
                lead,
                env.revision as i64,
                env.position.0 as i64,
                micros(meta.occurred_at),
                meta.actor.user_id.as_uuid().as_bytes().as_slice(),
                meta.command.as_deref().unwrap_or(env_type(env)),
            ])?;
            last_command.execute(params![lead, id])?;
        }
        Ok(())
    }
}

/// The event's type, for events that do not name their command.
fn env_type(env: &Envelope) -> &'static str {
    match &env.body {
        Body::Lead { event, .. } => event.event_type(),
        _ => "",
    }
}

/// A lead as registered: what an audit's cohort filters and groups by.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CohortRow {
    pub funnel: String,
    /// '' when none.
    pub source: String,
    pub channel: String,
    pub created_by: Uuid,
    /// At registration; `None`: unassigned.
    pub responsible: Option<Uuid>,
    pub quality: String,
    pub advertising: bool,
    /// Business time, µs since the epoch.
    pub registered_at: i64,
    pub position: u64,
}

/// A stage a lead entered: its registration (from '') or a stage change.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MoveRow {
    pub revision: u64,
    pub position: u64,
    /// Business time, µs since the epoch.
    pub at: i64,
    pub from: String,
    pub to: String,
    pub via: String,
    pub jump: bool,
    /// The disqualification reason's code, '' otherwise.
    pub reason: String,
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
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BudgetRow {
    pub revision: u64,
    pub position: u64,
    pub at: i64,
    pub budget_minor: Option<i64>,
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
    Reason(String),
    Moved(MoveRow),
    Assigned(AssignmentRow),
    /// The budget set (or cleared).
    Budget(BudgetRow),
}

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
    let moved = |from: String, to: String, via: &str, jump: bool| MoveRow {
        revision,
        position,
        at,
        from,
        to,
        via: via.to_owned(),
        jump,
        reason: String::new(),
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
                    funnel: r.funnel.as_str().to_owned(),
                    source: d.source.as_ref().map_or("", |s| s.as_str()).to_owned(),
                    channel: d.channel.as_ref().map_or("", |c| c.as_str()).to_owned(),
                    created_by: r.created_by.as_uuid(),
                    responsible: r.responsible.map(|u| u.as_uuid()),
                    quality: format!("{:?}", d.quality),
                    advertising: d.advertising,
                    registered_at: at,
                    position,
                },
                entered: moved(String::new(), r.stage.to_string(), "registered", false),
                assigned: r.responsible.map(|u| assigned(u.as_uuid())),
                budget: d.budget.as_ref().map(|m| budget(Some(m.minor()))),
            }
        }
        LeadEvent::LeadDisqualified(d) => Row::Reason(d.reason.as_str().to_owned()),
        LeadEvent::LeadStageChanged(c) => Row::Moved(moved(
            c.from.to_string(),
            c.to.to_string(),
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
        _ => return None,
    };
    Some((lead_id.as_uuid(), row))
}

#[cfg(test)]
mod tests {
    use super::*;
    use leadflow_domain::values::Comment;

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
