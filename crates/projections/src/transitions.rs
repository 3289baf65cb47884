//! The `transitions` read model (issue 11): every stage each lead entered, with its business
//! time, log position, actor, whether it was a jump and the disqualification reason; each
//! lead's cohort as registered; who was responsible from when. The funnel audit scans these
//! rows instead of decoding the log. Nothing in it is personal: a jump's free-text reason and
//! a lost deal's comment are left out. Version 2 adds budgets from when (the board and the
//! reports as of a time), each lead's way as it stands (the live conversion report) and one row
//! per command (manager activity).

use std::collections::{HashMap, HashSet};

use rusqlite::{params, OptionalExtension, Transaction};

use leadflow_domain::stage::Stage;

use crate::board_hours::BoardHours;
pub use crate::rows::*;
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

impl Projection for TransitionsProjection {
    fn name(&self) -> &'static str {
        TRANSITIONS.name()
    }

    fn fresh(&self) -> Box<dyn Projection> {
        Box::new(Self::new())
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
        // Each lead's way, read once a batch and written once at its end (a lead moves several
        // times in a batch while catching up).
        let mut reaches: HashMap<uuid::Uuid, Option<Reach>> = HashMap::new();
        let mut moved: HashSet<uuid::Uuid> = HashSet::new();
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
                    reaches.insert(id, Some(reach.clone()));
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
                    let before = match reaches.remove(&id) {
                        Some(known) => known,
                        None => read_reach
                            .query_row([lead], |r| {
                                Ok(Reach {
                                    reached: r.get(0)?,
                                    by_jump: r.get(1)?,
                                    stage: r.get(2)?,
                                    reason: r.get(3)?,
                                })
                            })
                            .optional()?,
                    };
                    if before.is_some() {
                        moved.insert(id);
                    }
                    reaches.insert(id, before.map(|r| r.after(&m)));
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
        for id in moved {
            if let Some(Some(reach)) = reaches.get(&id) {
                update_reach.execute(params![
                    id.as_bytes().as_slice(),
                    reach.reached,
                    reach.by_jump,
                    reach.stage,
                    reach.reason
                ])?;
            }
        }
        days.flush(tx)?;
        // One row per command: an event whose command differs from its lead's last event's. Each
        // lead's last command is read once a batch and written once at its end.
        let mut lasts: HashMap<uuid::Uuid, Option<Vec<u8>>> = HashMap::new();
        let mut commanded: HashSet<uuid::Uuid> = HashSet::new();
        for env in events {
            let Body::Lead { lead_id, meta, .. } = &env.body else {
                continue;
            };
            let uuid = lead_id.as_uuid();
            let lead = uuid.as_bytes().as_slice();
            let id = meta.command_id.as_bytes().as_slice();
            let last = match lasts.get(&uuid) {
                Some(last) => last.clone(),
                None => read_reach
                    .query_row([lead], |r| r.get::<_, Option<Vec<u8>>>(4))
                    .optional()?
                    .flatten(),
            };
            if last.as_deref() == Some(id) {
                lasts.insert(uuid, last);
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
            lasts.insert(uuid, Some(id.to_vec()));
            commanded.insert(uuid);
        }
        for uuid in commanded {
            if let Some(Some(id)) = lasts.get(&uuid) {
                last_command.execute(params![uuid.as_bytes().as_slice(), id])?;
            }
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
