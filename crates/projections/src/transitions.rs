//! The `transitions` read model (issue 11): every stage each lead entered, with its business
//! time, log position, actor, whether it was a jump and the disqualification reason; each
//! lead's cohort as registered; who was responsible from when. The funnel audit scans these
//! rows instead of decoding the log. Nothing in it is personal: a jump's free-text reason and
//! a lost deal's comment are left out. Version 2 adds budgets from when (the board and the
//! reports as of a time), each lead's way as it stands (the live conversion report) and its
//! commands (manager activity). Version 6 keeps all of a lead but its assignments in one row:
//! its path in three encoded columns, where version 5 wrote a row per move, budget and
//! command (7 M rows at 1 M leads, now 2.6 M), the per-row work being most of the model's
//! rebuild. Version 7 keeps in that row what the board by hour counts the lead by, where a
//! `board_leads` row was written beside it.

use std::collections::HashMap;

use rusqlite::{params, OptionalExtension, Transaction};

use leadflow_domain::stage::Stage;

use crate::audit::LeadPath;
use crate::board_hours::{history, BoardHours, Known, Names, Standing};
pub use crate::rows::*;
use crate::rows::{decode_rows, encode_rows};
use crate::{micros, Body, Envelope, Projection, ProjectionError};

/// The `transitions` read model.
pub const TRANSITIONS: crate::Model = crate::Model("transitions");

/// The board by hour of a rebuild from zero, carried from batch to batch, with the position
/// of the last batch applied: its changes count once that batch is known to have committed.
type Carried = (BoardHours, Option<leadflow_store::Position>);

#[derive(Default)]
pub struct TransitionsProjection {
    rebuilding: bool,
    /// While rebuilding from zero the board by hour is summed in memory, batch by batch, and
    /// written once caught up. A rebuild that did not start from zero here (resumed after a
    /// restart), or had a batch rolled back, gives it up (`None`) and builds the board from
    /// the paths at its end instead ([`crate::board_hours::rebuild`]).
    board: Option<Carried>,
    /// Whether this rebuild's first batch was seen.
    board_started: bool,
}

impl TransitionsProjection {
    pub fn new() -> Self {
        Self::default()
    }

    /// The board carried so far, if every batch it took in committed (the checkpoint in `tx`
    /// reached the last of them) and the first was the log's first; on the first call, a new
    /// one if nothing was applied yet.
    fn settle_board(&mut self, tx: &Transaction<'_>) -> Result<Option<Carried>, ProjectionError> {
        let committed: i64 = tx
            .query_row(
                "SELECT position FROM projection_state WHERE name = ?1",
                [TRANSITIONS.name()],
                |r| r.get(0),
            )
            .optional()?
            .unwrap_or(0);
        if !std::mem::replace(&mut self.board_started, true) {
            return Ok((committed == 0).then(|| (BoardHours::default(), None)));
        }
        Ok(self
            .board
            .take()
            .filter(|(_, last)| last.is_none_or(|p| committed as u64 >= p.0)))
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
        7
    }

    fn schema(&self) -> &'static str {
        include_str!("../../../projections/transitions.v7.sql")
    }

    fn set_rebuilding(&mut self, rebuilding: bool) {
        self.rebuilding = rebuilding;
        self.board = None;
        self.board_started = false;
    }

    /// Only the leads' table has statistics to gather: the audit splits its reading by the
    /// lead count they record; every other table is read by its key.
    fn planned_tables(&self) -> Option<&'static [&'static str]> {
        Some(&["transition_leads"])
    }

    fn finish_rebuild(&mut self, tx: &Transaction<'_>) -> Result<(), ProjectionError> {
        match self.settle_board(tx)? {
            Some((mut board, _)) => {
                let started = std::time::Instant::now();
                board.flush(tx)?;
                tracing::info!(
                    writing_ms = started.elapsed().as_millis() as u64,
                    "wrote the board by hour summed through the rebuild"
                );
            }
            None => crate::board_hours::rebuild(tx)?,
        }
        Ok(())
    }

    fn apply(&mut self, tx: &Transaction<'_>, events: &[Envelope]) -> Result<(), ProjectionError> {
        let mut take_reason =
            tx.prepare_cached("DELETE FROM pending_reasons WHERE lead = ?1 RETURNING reason")?;
        // The board by hour: this batch's changes, or a rebuild's carried from its start.
        let mut carried = if self.rebuilding {
            self.settle_board(tx)?
        } else {
            None
        };
        let mut own = BoardHours::default();
        let days = match carried.as_mut() {
            Some((board, _)) => board,
            None => &mut own,
        };
        // Each lead's row, read once a batch and written once at its end (a lead moves several
        // times in a batch while catching up), and the disqualification reasons this batch
        // holds.
        let mut leads = Leads::default();
        let disqualified = Stage::Disqualified.to_string();
        let mut pending: HashMap<uuid::Uuid, compact_str::CompactString> = HashMap::new();
        for env in events {
            let Body::Lead { lead_id, meta, .. } = &env.body else {
                continue;
            };
            let id = lead_id.as_uuid();
            let lead = id.as_bytes().as_slice();
            if let Some((_, row)) = row_of(env) {
                let at = micros(meta.occurred_at);
                let mut row = row;
                // Where the lead counted on the board before this event.
                let before = match &row {
                    Row::Registered { .. } | Row::Reason(_) => None,
                    _ => leads.known(tx, id, &mut days.names)?,
                };
                match &mut row {
                    Row::Registered {
                        cohort: c,
                        entered,
                        assigned,
                        budget,
                    } => {
                        let responsible = assigned.as_ref().map(|a| a.user).or(c.responsible);
                        leads.register(id, c.clone(), entered.clone(), responsible, budget.clone());
                        leads
                            .assignments
                            .extend(assigned.iter().map(|a| (id, a.clone())));
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
                        leads.change(tx, id, |l| {
                            if l.moves.last().is_none_or(|x| x.revision < m.revision) {
                                l.reach = std::mem::take(&mut l.reach).after(m);
                                l.moves.push(m.clone());
                            }
                        })?;
                    }
                    Row::Assigned(a) => {
                        leads.assignments.push((id, a.clone()));
                        leads.change(tx, id, |l| l.responsible = Some(a.user))?;
                    }
                    Row::Budget(b) => {
                        leads.change(tx, id, |l| {
                            if l.budgets.last().is_none_or(|x| x.revision < b.revision) {
                                l.budgets.push(b.clone());
                            }
                        })?;
                    }
                }
                // The board takes the lead where it counts now, unless it has no row (then
                // it never counted) or the event changed nothing it counts by.
                let counts = match &row {
                    Row::Registered { .. } => true,
                    Row::Reason(_) => false,
                    _ => before.is_some(),
                };
                if let (true, Some(standing)) = (counts, leads.standing(id, &mut days.names)) {
                    let revision = env.revision;
                    let known = days.step(id, before.as_ref(), standing, at, |me| {
                        Ok(history(&mut me.names, &leads.path(tx, id)?, revision))
                    })?;
                    leads.set_known(id, &known);
                }
            }
            // One row per command: an event whose command differs from its lead's last
            // event's.
            let command_id = meta.command_id;
            if leads.last_command(tx, id)? == Some(command_id) {
                continue;
            }
            leads.commanded(
                id,
                command_id,
                CommandRow {
                    revision: env.revision,
                    position: env.position.0,
                    at: micros(meta.occurred_at),
                    actor: meta.actor.user_id.as_uuid(),
                    command: meta.command.as_deref().unwrap_or(env_type(env)).into(),
                },
            );
        }
        leads.write(tx)?;
        match carried {
            Some((board, last)) => {
                self.board = Some((board, events.last().map(|e| e.position).or(last)));
            }
            // Live, the batch's changes; a rebuild that gave its board up builds it at its
            // end, unless that end committed already (what followed it failed, and the
            // runner goes on before trying it again): then the batch's changes go in as live.
            None if !self.rebuilding || rebuild_finished(tx)? => own.flush(tx)?,
            None => {}
        }
        let mut hold_reason = tx.prepare_cached(
            "INSERT OR REPLACE INTO pending_reasons(lead, reason) VALUES (?1, ?2)",
        )?;
        for (lead, reason) in pending {
            hold_reason.execute(params![lead.as_bytes().as_slice(), reason.as_str()])?;
        }
        Ok(())
    }
}

/// A lead's row as a batch holds it: its cohort, its way as it stands and its path.
struct LeadRow {
    cohort: CohortRow,
    reach: Reach,
    /// Who is responsible now.
    responsible: Option<uuid::Uuid>,
    last_command: Option<uuid::Uuid>,
    moves: Vec<MoveRow>,
    budgets: Vec<BudgetRow>,
    commands: Vec<CommandRow>,
    /// The business time of its last change the board took in, and whether it stepped back
    /// in business time (then the board's counters leave it out).
    last_at: i64,
    irregular: bool,
    /// Changed since it was last written (and listed in [`Leads::changed`]).
    dirty: bool,
}

impl LeadRow {
    /// Where it counts on the board.
    fn standing(&self, names: &mut Names) -> Standing {
        Standing {
            funnel: names.number(&self.cohort.funnel),
            stage: names.number(&self.reach.stage),
            responsible: self.responsible,
            created_by: self.cohort.created_by,
            budget_minor: self
                .budgets
                .last()
                .and_then(|b| b.budget_minor)
                .unwrap_or(0),
        }
    }
}

/// The columns of a lead's row after its key, in table order: what [`Leads::get`] reads and
/// [`Leads::write`] writes.
const LEAD_COLUMNS: &str = "funnel, source, channel, created_by, responsible, quality, advertising,
    registered_at, position, reached, by_jump, stage, reason, responsible_now, last_command,
    last_at, irregular, moves, budgets, commands";

/// The rows of a batch's leads, each read at most once and written once at the batch's end,
/// and the batch's assignments. A lead's lists only grow by events after their last one: a
/// batch applied again after it committed (its checkpoint not seen advanced) adds nothing
/// twice. A lead the model has no row of (`None`: events before its registration, which
/// no command writes) gets none, but its last command is still remembered for the batch.
#[derive(Default)]
struct Leads {
    // foldhash: looked up for every event of a catching-up batch.
    rows: foldhash::HashMap<uuid::Uuid, Option<LeadRow>>,
    /// The last command of leads without a row.
    orphans: foldhash::HashMap<uuid::Uuid, uuid::Uuid>,
    /// The leads whose rows changed since they were last written, each once.
    changed: Vec<uuid::Uuid>,
    assignments: Vec<(uuid::Uuid, AssignmentRow)>,
}

impl Leads {
    /// A registration starts the lead's row: its cohort, its entry into the first stage, its
    /// responsible and its budget.
    fn register(
        &mut self,
        lead: uuid::Uuid,
        cohort: CohortRow,
        entered: MoveRow,
        responsible: Option<uuid::Uuid>,
        budget: Option<BudgetRow>,
    ) {
        self.orphans.remove(&lead);
        let was_dirty = self
            .rows
            .get(&lead)
            .is_some_and(|l| l.as_ref().is_some_and(|l| l.dirty));
        if !was_dirty {
            self.changed.push(lead);
        }
        self.rows.insert(
            lead,
            Some(LeadRow {
                cohort,
                reach: Reach::default().after(&entered),
                responsible,
                last_command: None,
                moves: vec![entered],
                budgets: budget.into_iter().collect(),
                commands: Vec::new(),
                last_at: 0,
                irregular: false,
                dirty: true,
            }),
        );
    }

    fn get(
        &mut self,
        tx: &Transaction<'_>,
        lead: uuid::Uuid,
    ) -> rusqlite::Result<Option<&mut LeadRow>> {
        if let std::collections::hash_map::Entry::Vacant(slot) = self.rows.entry(lead) {
            let row = tx
                .prepare_cached(&format!(
                    "SELECT {LEAD_COLUMNS} FROM transition_leads WHERE lead = ?1"
                ))?
                .query_row([lead.as_bytes().as_slice()], |r| {
                    Ok(LeadRow {
                        cohort: CohortRow::read(r, 0)?,
                        reach: Reach {
                            reached: r.get(9)?,
                            by_jump: r.get(10)?,
                            stage: r.get(11)?,
                            reason: r.get(12)?,
                        },
                        responsible: uuid_of(r.get_ref(13)?.as_blob_or_null()?),
                        last_command: uuid_of(r.get_ref(14)?.as_blob_or_null()?),
                        last_at: r.get(15)?,
                        irregular: r.get(16)?,
                        moves: decode_rows(r, 17)?,
                        budgets: decode_rows(r, 18)?,
                        commands: decode_rows(r, 19)?,
                        dirty: false,
                    })
                })
                .optional()?;
            slot.insert(row);
        }
        Ok(self.rows.get_mut(&lead).and_then(Option::as_mut))
    }

    /// Changes `lead`'s row with `f`, if it has one.
    fn change(
        &mut self,
        tx: &Transaction<'_>,
        lead: uuid::Uuid,
        f: impl FnOnce(&mut LeadRow),
    ) -> rusqlite::Result<()> {
        if let Some(l) = self.get(tx, lead)? {
            f(l);
            if !std::mem::replace(&mut l.dirty, true) {
                self.changed.push(lead);
            }
        }
        Ok(())
    }

    /// The lead as the board knows it, from its row (`None`: it has none).
    fn known(
        &mut self,
        tx: &Transaction<'_>,
        lead: uuid::Uuid,
        names: &mut Names,
    ) -> rusqlite::Result<Option<Known>> {
        Ok(self.get(tx, lead)?.map(|l| Known {
            standing: l.standing(names),
            last_at: l.last_at,
            irregular: l.irregular,
        }))
    }

    /// Where the lead counts on the board as its row stands (`None`: it has none).
    fn standing(&self, lead: uuid::Uuid, names: &mut Names) -> Option<Standing> {
        let row = self.rows.get(&lead)?.as_ref()?;
        Some(row.standing(names))
    }

    /// What the board made of the lead's last event.
    fn set_known(&mut self, lead: uuid::Uuid, known: &Known) {
        if let Some(Some(l)) = self.rows.get_mut(&lead) {
            l.last_at = known.last_at;
            l.irregular = known.irregular;
        }
    }

    /// The lead's path as this batch has it: its row's, and its assignments, stored and this
    /// batch's.
    fn path(&self, tx: &Transaction<'_>, lead: uuid::Uuid) -> rusqlite::Result<LeadPath> {
        let Some(Some(l)) = self.rows.get(&lead) else {
            return Err(rusqlite::Error::QueryReturnedNoRows);
        };
        let mut assignments = crate::board_hours::assignments_of(tx, lead)?;
        assignments.extend(
            self.assignments
                .iter()
                .filter(|(l, _)| *l == lead)
                .map(|(_, a)| a.clone()),
        );
        assignments.sort_by_key(|a| a.revision);
        assignments.dedup_by_key(|a| a.revision);
        Ok(LeadPath {
            lead,
            cohort: l.cohort.clone(),
            moves: l.moves.clone(),
            assignments,
            budgets: l.budgets.clone(),
        })
    }

    fn last_command(
        &mut self,
        tx: &Transaction<'_>,
        lead: uuid::Uuid,
    ) -> rusqlite::Result<Option<uuid::Uuid>> {
        Ok(match self.get(tx, lead)? {
            Some(l) => l.last_command,
            None => self.orphans.get(&lead).copied(),
        })
    }

    /// `command` on `lead` begins with this event.
    fn commanded(&mut self, lead: uuid::Uuid, id: uuid::Uuid, command: CommandRow) {
        match self.rows.get_mut(&lead).and_then(Option::as_mut) {
            Some(l) => {
                l.last_command = Some(id);
                if l.commands
                    .last()
                    .is_none_or(|c| c.revision < command.revision)
                {
                    l.commands.push(command);
                }
                if !std::mem::replace(&mut l.dirty, true) {
                    self.changed.push(lead);
                }
            }
            None => {
                self.orphans.insert(lead, id);
            }
        }
    }

    /// Writes the rows that changed, then the assignments, each in key order: while catching
    /// up, a batch's rows then go in at the right end of each table, or near it, rather than
    /// at places all over it (the log interleaves leads), which splits fewer pages and leaves
    /// them fuller. The rows stay held for the batch's later events.
    fn write(&mut self, tx: &Transaction<'_>) -> rusqlite::Result<()> {
        if !self.changed.is_empty() {
            self.changed.sort_unstable();
            let mut write = tx.prepare_cached(&format!(
                "INSERT OR REPLACE INTO transition_leads(lead, {LEAD_COLUMNS})
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16,
                     ?17, ?18, ?19, ?20, ?21)"
            ))?;
            for lead in self.changed.drain(..) {
                let Some(Some(l)) = self.rows.get_mut(&lead) else {
                    continue;
                };
                l.dirty = false;
                let c = &l.cohort;
                write.execute(params![
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
                    l.reach.reached,
                    l.reach.by_jump,
                    l.reach.stage,
                    l.reach.reason,
                    l.responsible.map(|u| u.as_bytes().to_vec()),
                    l.last_command.map(|c| c.as_bytes().to_vec()),
                    l.last_at,
                    l.irregular,
                    encode_rows(&l.moves),
                    encode_rows(&l.budgets),
                    encode_rows(&l.commands),
                ])?;
            }
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
        Ok(())
    }
}

fn uuid_of(bytes: Option<&[u8]>) -> Option<uuid::Uuid> {
    bytes.and_then(|b| uuid::Uuid::from_slice(b).ok())
}

/// Whether the model's rebuild has ended (its deferred work done and committed).
fn rebuild_finished(tx: &Transaction<'_>) -> rusqlite::Result<bool> {
    let deferred: Option<Option<String>> = tx
        .query_row(
            "SELECT deferred FROM projection_state WHERE name = ?1",
            [TRANSITIONS.name()],
            |r| r.get(0),
        )
        .optional()?;
    Ok(matches!(deferred, Some(None)))
}

/// The event's type, for events that do not name their command.
fn env_type(env: &Envelope) -> &'static str {
    match &env.body {
        Body::Lead { event, .. } => event.event_type(),
        _ => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use leadflow_domain::events::{LeadStageChanged, Transition};
    use leadflow_domain::{LeadEvent, LeadId};
    use rusqlite::Connection;

    use crate::recorded::{golden, lead_event};

    /// Lead `lead`'s event `event` at `revision`, by command number `command`.
    fn event(lead: LeadId, revision: u64, event: LeadEvent, command: u128) -> Envelope {
        let mut env = lead_event(lead, 10 + revision, revision, event);
        if let Body::Lead { meta, .. } = &mut env.body {
            meta.command_id = uuid::Uuid::from_u128(command);
            meta.command = None;
        }
        env
    }

    /// A batch applied again after it committed (the runner did not see its checkpoint
    /// advance) leaves the lead's path, its commands and its board as they were.
    #[test]
    fn a_batch_applied_twice_adds_nothing_twice() {
        let lead = LeadId::from_uuid(uuid::Uuid::from_u128(7));
        let registered = leadflow_codec::lead::decode(
            "LeadRegistered",
            1,
            golden("LeadRegistered")[0].as_bytes(),
        )
        .unwrap();
        let LeadEvent::LeadRegistered(r) = &registered else {
            unreachable!()
        };
        let moved = LeadEvent::LeadStageChanged(LeadStageChanged {
            from: r.stage,
            to: leadflow_domain::Stage::Disqualified,
            via: Transition::Disqualified,
        });
        let first = vec![event(lead, 0, registered.clone(), 1)];
        let second = vec![event(lead, 1, moved, 2)];
        let mut conn = Connection::open_in_memory().unwrap();
        let model = TransitionsProjection::new();
        conn.execute_batch(model.schema()).unwrap();
        let apply = |conn: &mut Connection, batch: &[Envelope]| {
            let tx = conn.transaction().unwrap();
            TransitionsProjection::new().apply(&tx, batch).unwrap();
            tx.commit().unwrap();
        };
        apply(&mut conn, &first);
        apply(&mut conn, &second);
        let once = crate::runner::generations::tables_of(&conn).unwrap();
        apply(&mut conn, &second);
        assert_eq!(crate::runner::generations::tables_of(&conn).unwrap(), once);
        let path = crate::board_hours::path_of(&conn, lead.as_uuid()).unwrap();
        assert_eq!(path.moves.len(), 2, "{:?}", path.moves);
    }
}
