//! The `transitions` read model (issue 11): every stage each lead entered, with its business
//! time, log position, actor, whether it was a jump and the disqualification reason; each
//! lead's cohort as registered; who was responsible from when. The funnel audit scans these
//! rows instead of decoding the log. Nothing in it is personal: a jump's free-text reason and
//! a lost deal's comment are left out.

use rusqlite::{params, OptionalExtension, Transaction};
use uuid::Uuid;

use leadflow_domain::events::Transition;
use leadflow_domain::stage::Stage;
use leadflow_domain::LeadEvent;

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
        1
    }

    fn schema(&self) -> &'static str {
        include_str!("../../../projections/transitions.v1.sql")
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
        let mut hold_reason = tx.prepare_cached(
            "INSERT OR REPLACE INTO pending_reasons(lead, reason) VALUES (?1, ?2)",
        )?;
        let mut take_reason =
            tx.prepare_cached("DELETE FROM pending_reasons WHERE lead = ?1 RETURNING reason")?;
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
            ])
        };
        for env in events {
            let Some((lead, row)) = row_of(env) else {
                continue;
            };
            let lead = lead.as_bytes().as_slice();
            match row {
                Row::Registered(c, m, a) => {
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
                    insert_move(lead, &m)?;
                    if let Some(a) = a {
                        insert_assignment(lead, &a)?;
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
                }
                Row::Assigned(a) => {
                    insert_assignment(lead, &a)?;
                }
            }
        }
        Ok(())
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

/// What one event of a lead adds to the model.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Row {
    /// The registration: the cohort row, its entry into the first stage, and its responsible.
    Registered(CohortRow, MoveRow, Option<AssignmentRow>),
    /// A disqualification's reason, held until the stage change of the same command (which
    /// comes with its `reason` empty: the reader fills it in).
    Reason(String),
    Moved(MoveRow),
    Assigned(AssignmentRow),
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
    let row = match event {
        LeadEvent::LeadRegistered(r) => {
            let d = &r.details;
            Row::Registered(
                CohortRow {
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
                moved(String::new(), r.stage.to_string(), "registered", false),
                r.responsible.map(|u| assigned(u.as_uuid())),
            )
        }
        LeadEvent::LeadDisqualified(d) => Row::Reason(d.reason.as_str().to_owned()),
        LeadEvent::LeadStageChanged(c) => Row::Moved(moved(
            c.from.to_string(),
            c.to.to_string(),
            via_name(&c.via),
            is_jump(c.from, c.to, &c.via),
        )),
        LeadEvent::ResponsibleAssigned(a) => Row::Assigned(assigned(a.to.as_uuid())),
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
