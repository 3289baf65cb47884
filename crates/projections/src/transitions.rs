//! The `transitions` read model (issue 11): every stage each lead entered, with its business
//! time, log position, actor, whether it was a jump and the disqualification reason; each
//! lead's cohort as registered; who was responsible from when. The funnel audit scans these
//! rows instead of decoding the log. Nothing in it is personal: a jump's free-text reason and
//! a lost deal's comment are left out. Version 2 adds budgets from when (the board and the
//! reports as of a time), each lead's way as it stands (the live conversion report) and one row
//! per command (manager activity).

use std::collections::HashMap;

use rusqlite::{params, OptionalExtension, Transaction};

use leadflow_domain::stage::Stage;

use crate::board_hours::BoardHours;
pub use crate::rows::*;
use crate::{micros, Body, Envelope, Projection, ProjectionError};

/// The `transitions` read model.
pub const TRANSITIONS: crate::Model = crate::Model("transitions");

#[derive(Default)]
pub struct TransitionsProjection {
    /// While rebuilding from zero the board by hour is left empty and built from the paths
    /// at the end ([`crate::board_hours::rebuild`]).
    rebuilding: bool,
}

impl TransitionsProjection {
    pub fn new() -> Self {
        Self::default()
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
        5
    }

    fn schema(&self) -> &'static str {
        include_str!("../../../projections/transitions.v5.sql")
    }

    fn set_rebuilding(&mut self, rebuilding: bool) {
        self.rebuilding = rebuilding;
    }

    fn finish_rebuild(&mut self, tx: &Transaction<'_>) -> Result<(), ProjectionError> {
        Ok(crate::board_hours::rebuild(tx)?)
    }

    fn apply(&mut self, tx: &Transaction<'_>, events: &[Envelope]) -> Result<(), ProjectionError> {
        let mut take_reason =
            tx.prepare_cached("DELETE FROM pending_reasons WHERE lead = ?1 RETURNING reason")?;
        let mut days = BoardHours::default();
        // Each lead's `lead_reach` row, read once a batch and written once at its end (a lead
        // moves several times in a batch while catching up), and the disqualification reasons
        // this batch holds.
        let mut reaches = Reaches::default();
        let disqualified = Stage::Disqualified.to_string();
        let mut pending: HashMap<uuid::Uuid, compact_str::CompactString> = HashMap::new();
        let mut rows = Pending::default();
        for env in events {
            let Body::Lead { lead_id, meta, .. } = &env.body else {
                continue;
            };
            let id = lead_id.as_uuid();
            let lead = id.as_bytes().as_slice();
            if let Some((_, row)) = row_of(env) {
                let at = micros(meta.occurred_at);
                let mut row = row;
                match &mut row {
                    Row::Registered {
                        cohort: c,
                        entered,
                        assigned,
                        budget,
                    } => {
                        rows.leads.push((id, c.clone()));
                        rows.moves.push((id, entered.clone()));
                        let responsible = assigned.as_ref().map(|a| a.user).or(c.responsible);
                        reaches.register(id, Reach::default().after(entered), responsible);
                        rows.assignments
                            .extend(assigned.iter().map(|a| (id, a.clone())));
                        rows.budgets.extend(budget.iter().map(|b| (id, b.clone())));
                    }
                    Row::Reason(reason) => {
                        pending.insert(id, std::mem::take(reason));
                    }
                    Row::Moved(m) => {
                        if m.to == disqualified {
                            // The table may hold an older reason of the lead: it goes too.
                            let held: Option<String> =
                                take_reason.query_row([lead], |r| r.get(0)).optional()?;
                            m.reason = pending
                                .remove(&id)
                                .or(held.map(Into::into))
                                .unwrap_or_default();
                        }
                        rows.moves.push((id, m.clone()));
                        if let Some(r) = reaches.get(tx, id)? {
                            r.reach = std::mem::take(&mut r.reach).after(m);
                            r.changed = true;
                        }
                    }
                    Row::Assigned(a) => {
                        rows.assignments.push((id, a.clone()));
                        if let Some(r) = reaches.get(tx, id)? {
                            r.responsible = Some(a.user);
                            r.changed = true;
                        }
                    }
                    Row::Budget(b) => {
                        rows.budgets.push((id, b.clone()));
                    }
                }
                // The board's rows read the model's rows of this event: written first. (A
                // rebuild builds the board at its end, and writes the batch's rows in key
                // order at the batch's end.)
                if !self.rebuilding {
                    rows.write(tx)?;
                    days.apply(tx, id, &row, env.revision, at)?;
                }
            }
            // One row per command: an event whose command differs from its lead's last
            // event's.
            let command_id = meta.command_id;
            if reaches.last_command(tx, id)? == Some(command_id) {
                continue;
            }
            rows.commands.push(CommandRow {
                lead: id,
                revision: env.revision,
                position: env.position.0,
                at: micros(meta.occurred_at),
                actor: meta.actor.user_id.as_uuid(),
                command: meta.command.as_deref().unwrap_or(env_type(env)).into(),
            });
            reaches.commanded(id, command_id);
        }
        rows.write(tx)?;
        reaches.write(tx)?;
        days.flush(tx)?;
        let mut hold_reason = tx.prepare_cached(
            "INSERT OR REPLACE INTO pending_reasons(lead, reason) VALUES (?1, ?2)",
        )?;
        for (lead, reason) in pending {
            hold_reason.execute(params![lead.as_bytes().as_slice(), reason.as_str()])?;
        }
        Ok(())
    }
}

/// One command on a lead: its first event.
struct CommandRow {
    lead: uuid::Uuid,
    revision: u64,
    position: u64,
    at: i64,
    actor: uuid::Uuid,
    command: compact_str::CompactString,
}

/// The rows of a batch not written yet. Written in key order (lead, revision): while catching
/// up, a batch's rows then go in at the right end of each table, or near it, rather than at
/// places all over it (the log interleaves leads), which splits fewer pages and leaves them
/// fuller.
#[derive(Default)]
struct Pending {
    leads: Vec<(uuid::Uuid, CohortRow)>,
    moves: Vec<(uuid::Uuid, MoveRow)>,
    assignments: Vec<(uuid::Uuid, AssignmentRow)>,
    budgets: Vec<(uuid::Uuid, BudgetRow)>,
    commands: Vec<CommandRow>,
}

impl Pending {
    fn write(&mut self, tx: &Transaction<'_>) -> rusqlite::Result<()> {
        self.leads.sort_unstable_by_key(|(lead, _)| *lead);
        let mut insert = tx.prepare_cached(
            "INSERT OR REPLACE INTO transition_leads(lead, funnel, source, channel, created_by,
                 responsible, quality, advertising, registered_at, position)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
        )?;
        for (lead, c) in self.leads.drain(..) {
            insert.execute(params![
                lead.as_bytes().as_slice(),
                c.funnel.as_str(),
                c.source.as_str(),
                c.channel.as_str(),
                c.created_by.as_bytes().as_slice(),
                c.responsible.map(|u| u.as_bytes().to_vec()),
                c.quality.as_str(),
                c.advertising,
                c.registered_at,
                c.position as i64,
            ])?;
        }
        self.moves
            .sort_unstable_by_key(|(lead, m)| (*lead, m.revision));
        let mut insert = tx.prepare_cached(
            "INSERT OR REPLACE INTO transitions(lead, revision, position, at, from_stage, to_stage,
                 via, jump, reason, actor)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
        )?;
        for (lead, m) in self.moves.drain(..) {
            insert.execute(params![
                lead.as_bytes().as_slice(),
                m.revision as i64,
                m.position as i64,
                m.at,
                m.from.as_str(),
                m.to.as_str(),
                m.via.as_str(),
                m.jump,
                m.reason.as_str(),
                m.actor.as_bytes().as_slice(),
            ])?;
        }
        self.assignments
            .sort_unstable_by_key(|(lead, a)| (*lead, a.revision));
        let mut insert = tx.prepare_cached(
            "INSERT OR REPLACE INTO assignments(lead, revision, position, at, user)
             VALUES (?1, ?2, ?3, ?4, ?5)",
        )?;
        for (lead, a) in self.assignments.drain(..) {
            insert.execute(params![
                lead.as_bytes().as_slice(),
                a.revision as i64,
                a.position as i64,
                a.at,
                a.user.as_bytes().as_slice(),
            ])?;
        }
        self.budgets
            .sort_unstable_by_key(|(lead, b)| (*lead, b.revision));
        let mut insert = tx.prepare_cached(
            "INSERT OR REPLACE INTO budgets(lead, revision, position, at, budget_minor)
             VALUES (?1, ?2, ?3, ?4, ?5)",
        )?;
        for (lead, b) in self.budgets.drain(..) {
            insert.execute(params![
                lead.as_bytes().as_slice(),
                b.revision as i64,
                b.position as i64,
                b.at,
                b.budget_minor
            ])?;
        }
        self.commands.sort_unstable_by_key(|c| (c.lead, c.revision));
        let mut insert = tx.prepare_cached(
            "INSERT OR REPLACE INTO commands(lead, revision, position, at, actor, command)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )?;
        for c in self.commands.drain(..) {
            insert.execute(params![
                c.lead.as_bytes().as_slice(),
                c.revision as i64,
                c.position as i64,
                c.at,
                c.actor.as_bytes().as_slice(),
                c.command.as_str(),
            ])?;
        }
        Ok(())
    }
}

/// A lead's `lead_reach` row as a batch holds it.
#[derive(Default)]
struct ReachRow {
    reach: Reach,
    responsible: Option<uuid::Uuid>,
    last_command: Option<uuid::Uuid>,
    changed: bool,
}

/// The `lead_reach` rows of a batch's leads: each read at most once and written once at the
/// batch's end. A lead the model has no row of (`None`) gets none, but its last command is
/// still remembered for the batch.
#[derive(Default)]
struct Reaches {
    rows: foldhash::HashMap<uuid::Uuid, Option<ReachRow>>,
    /// The last command of leads without a row.
    orphans: foldhash::HashMap<uuid::Uuid, uuid::Uuid>,
}

impl Reaches {
    fn register(&mut self, lead: uuid::Uuid, reach: Reach, responsible: Option<uuid::Uuid>) {
        self.rows.insert(
            lead,
            Some(ReachRow {
                reach,
                responsible,
                last_command: None,
                changed: true,
            }),
        );
    }

    fn get(
        &mut self,
        tx: &Transaction<'_>,
        lead: uuid::Uuid,
    ) -> rusqlite::Result<Option<&mut ReachRow>> {
        if let std::collections::hash_map::Entry::Vacant(slot) = self.rows.entry(lead) {
            let row = tx
                .prepare_cached(
                    "SELECT reached, by_jump, stage, reason, responsible, last_command
                     FROM lead_reach WHERE lead = ?1",
                )?
                .query_row([lead.as_bytes().as_slice()], |r| {
                    Ok(ReachRow {
                        reach: Reach {
                            reached: r.get(0)?,
                            by_jump: r.get(1)?,
                            stage: r.get(2)?,
                            reason: r.get(3)?,
                        },
                        responsible: uuid_of(r.get_ref(4)?.as_blob_or_null()?),
                        last_command: uuid_of(r.get_ref(5)?.as_blob_or_null()?),
                        changed: false,
                    })
                })
                .optional()?;
            slot.insert(row);
        }
        Ok(self.rows.get_mut(&lead).and_then(Option::as_mut))
    }

    fn last_command(
        &mut self,
        tx: &Transaction<'_>,
        lead: uuid::Uuid,
    ) -> rusqlite::Result<Option<uuid::Uuid>> {
        Ok(match self.get(tx, lead)? {
            Some(r) => r.last_command,
            None => self.orphans.get(&lead).copied(),
        })
    }

    fn commanded(&mut self, lead: uuid::Uuid, command: uuid::Uuid) {
        match self.rows.get_mut(&lead).and_then(Option::as_mut) {
            Some(r) => {
                r.last_command = Some(command);
                r.changed = true;
            }
            None => {
                self.orphans.insert(lead, command);
            }
        }
    }

    /// Writes the rows that changed, in key order.
    fn write(self, tx: &Transaction<'_>) -> rusqlite::Result<()> {
        let mut write = tx.prepare_cached(
            "INSERT OR REPLACE INTO lead_reach(lead, reached, by_jump, stage, reason, responsible,
                 last_command)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        )?;
        let mut changed: Vec<(uuid::Uuid, ReachRow)> = self
            .rows
            .into_iter()
            .filter_map(|(lead, row)| row.filter(|r| r.changed).map(|r| (lead, r)))
            .collect();
        changed.sort_unstable_by_key(|(lead, _)| *lead);
        for (lead, r) in changed {
            write.execute(params![
                lead.as_bytes().as_slice(),
                r.reach.reached,
                r.reach.by_jump,
                r.reach.stage,
                r.reach.reason,
                r.responsible.map(|u| u.as_bytes().to_vec()),
                r.last_command.map(|c| c.as_bytes().to_vec()),
            ])?;
        }
        Ok(())
    }
}

fn uuid_of(bytes: Option<&[u8]>) -> Option<uuid::Uuid> {
    bytes.and_then(|b| uuid::Uuid::from_slice(b).ok())
}

/// The event's type, for events that do not name their command.
fn env_type(env: &Envelope) -> &'static str {
    match &env.body {
        Body::Lead { event, .. } => event.event_type(),
        _ => "",
    }
}
