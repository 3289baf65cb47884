//! The board by business hour (issue 11): every change of a lead's column, responsible or
//! budget adds its deltas to the counters of its hour, so the board as of a time is the sum of
//! the hours before that time's hour, plus the leads that changed in that hour, folded from
//! their rows. A lead whose events came out of business-time order (an import of the past) leaves
//! the counters and is folded whole whenever asked. Exact either way; the property test checks
//! it against folding every lead.

use std::collections::HashMap;

use rusqlite::{params, Connection, Transaction};
use uuid::Uuid;

use crate::audit::LeadPath;
use crate::query::Board;
use crate::reports::{state_at, Scope};
use crate::rows::{decode_rows, AssignmentRow, CohortRow, ASSIGNMENT_COLUMNS, COHORT_COLUMNS};

/// The counters' bucket: an hour, in µs. Per day, a dense data set (1 440 leads changed a
/// day in the bench's) left a thousand leads to fold; per hour, a few dozen.
pub const BUCKET_MICROS: i64 = 3_600_000_000;

fn hour_of(at: i64) -> i64 {
    at.div_euclid(BUCKET_MICROS)
}

/// A funnel's or a stage's name, numbered within one batch ([`Names`]): the counters are
/// keyed and a lead's standing copied without a string compared or copied.
pub(crate) type Name = u32;

/// The names a batch met, each numbered once; 0 is ''.
pub(crate) struct Names {
    names: Vec<String>,
    numbers: foldhash::HashMap<String, Name>,
}

impl Default for Names {
    fn default() -> Self {
        let mut numbers = foldhash::HashMap::default();
        numbers.insert(String::new(), 0);
        Self {
            names: vec![String::new()],
            numbers,
        }
    }
}

impl Names {
    pub(crate) fn number(&mut self, name: &str) -> Name {
        if let Some(n) = self.numbers.get(name) {
            return *n;
        }
        let n = self.names.len() as Name;
        self.names.push(name.to_owned());
        self.numbers.insert(name.to_owned(), n);
        n
    }

    fn name(&self, n: Name) -> &str {
        &self.names[n as usize]
    }
}

/// A scope of the board, as the live board keeps them: everyone's (''), and a user's as
/// responsible (`r:`), as creator (`c:`) and as both (`b:`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum ScopeKey {
    Everyone,
    Responsible(Uuid),
    Creator(Uuid),
    Both(Uuid),
}

impl ScopeKey {
    /// The `scope` column.
    fn column(self) -> String {
        match self {
            Self::Everyone => String::new(),
            Self::Responsible(u) => format!("r:{u}"),
            Self::Creator(u) => format!("c:{u}"),
            Self::Both(u) => format!("b:{u}"),
        }
    }
}

/// Where a lead counts on the board: its funnel's column, one lead and its budget, under each
/// scope that sees it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Standing {
    pub(crate) funnel: Name,
    pub(crate) stage: Name,
    pub(crate) responsible: Option<Uuid>,
    pub(crate) created_by: Uuid,
    pub(crate) budget_minor: i64,
}

impl Standing {
    fn scopes(&self) -> impl Iterator<Item = ScopeKey> {
        let r = self.responsible;
        [
            Some(ScopeKey::Everyone),
            Some(ScopeKey::Creator(self.created_by)),
            r.map(ScopeKey::Responsible),
            r.filter(|r| *r == self.created_by).map(ScopeKey::Both),
        ]
        .into_iter()
        .flatten()
    }
}

/// A lead as the counters know it: where it counts, the business time of its last change,
/// and whether it stepped back in business time (then it counts no more). The `transitions`
/// model keeps the last two in the lead's row and derives the standing from it.
#[derive(Clone, Debug)]
pub(crate) struct Known {
    pub(crate) standing: Standing,
    pub(crate) last_at: i64,
    pub(crate) irregular: bool,
}

/// A counter: funnel, scope, hour and column.
type Key = (Name, ScopeKey, i64, Name);

/// Changes to the counters and the hours each lead changed in, summed in memory and written
/// once: at a batch's end, or at a rebuild's (which carries them from batch to batch).
#[derive(Default)]
pub struct BoardHours {
    pub(crate) names: Names,
    // Hashed with foldhash: a rebuild looks a counter up for every scope of every change of a
    // million leads, and std's SipHash was a fifth of the fold.
    counters: foldhash::HashMap<Key, (i64, i64)>,
    touched: Vec<(i64, Uuid)>,
}

impl BoardHours {
    fn add(&mut self, hour: i64, old: Option<&Standing>, new: Option<&Standing>, sign: i64) {
        if old == new {
            return;
        }
        for (s, n) in [(old, -1), (new, 1)] {
            let Some(s) = s else { continue };
            for scope in s.scopes() {
                let c = self
                    .counters
                    .entry((s.funnel, scope, hour, s.stage))
                    .or_default();
                c.0 += sign * n;
                c.1 += sign * n * s.budget_minor;
            }
        }
    }

    /// The rule the batches and a rebuild's fold both follow: the lead known as `before`
    /// (`None`: just registered) takes `standing` at business time `at`. It counts in that
    /// hour while its steps come in business-time order; at its first step back, its steps
    /// before this one (`earlier`) leave the counters and it counts no more.
    pub(crate) fn step(
        &mut self,
        lead: Uuid,
        before: Option<&Known>,
        standing: Standing,
        at: i64,
        earlier: impl FnOnce(&mut Self) -> rusqlite::Result<Vec<(i64, Standing)>>,
    ) -> rusqlite::Result<Known> {
        let mut irregular = before.is_some_and(|k| k.irregular);
        if !irregular && before.is_some_and(|k| at < k.last_at) {
            irregular = true;
            let mut old: Option<Standing> = None;
            for (at, next) in earlier(self)? {
                self.add(hour_of(at), old.as_ref(), Some(&next), -1);
                old = Some(next);
            }
        } else if !irregular {
            self.add(hour_of(at), before.map(|k| &k.standing), Some(&standing), 1);
            // The step that set its last change's time took that hour in already.
            if before.is_none_or(|k| hour_of(k.last_at) != hour_of(at)) {
                self.touched.push((hour_of(at), lead));
            }
        }
        let last_at = before.map_or(at, |k| k.last_at.max(at));
        Ok(Known {
            standing,
            last_at,
            irregular,
        })
    }

    /// Writes the counters and the hours the leads changed in.
    pub fn flush(&mut self, tx: &Transaction<'_>) -> rusqlite::Result<()> {
        let mut counter = tx.prepare_cached(
            "INSERT INTO board_hours(funnel, scope, hour, stage, leads, budget_minor)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)
             ON CONFLICT(funnel, scope, hour, stage) DO UPDATE SET
                 leads = leads + excluded.leads, budget_minor = budget_minor + excluded.budget_minor
             RETURNING leads, budget_minor",
        )?;
        // A row that nets to nothing goes: a rebuild, summing in bigger batches, never
        // writes one, and the two must hold the same rows.
        let mut empty = tx.prepare_cached(
            "DELETE FROM board_hours WHERE funnel = ?1 AND scope = ?2 AND hour = ?3 AND stage = ?4",
        )?;
        // In key order: neighbouring rows share their pages.
        type Row<'a> = ((&'a str, String, i64, &'a str), (i64, i64));
        let mut counters: Vec<Row<'_>> = self
            .counters
            .drain()
            .filter(|(_, (leads, budget))| *leads != 0 || *budget != 0)
            .map(|((funnel, scope, hour, stage), sums)| {
                let key = (
                    self.names.name(funnel),
                    scope.column(),
                    hour,
                    self.names.name(stage),
                );
                (key, sums)
            })
            .collect();
        counters.sort_unstable();
        for ((funnel, scope, hour, stage), (leads, budget)) in counters {
            let (now_leads, now_budget): (i64, i64) = counter
                .query_row(params![funnel, scope, hour, stage, leads, budget], |r| {
                    Ok((r.get(0)?, r.get(1)?))
                })?;
            if now_leads == 0 && now_budget == 0 {
                empty.execute(params![funnel, scope, hour, stage])?;
            }
        }
        let mut touched =
            tx.prepare_cached("INSERT OR IGNORE INTO board_touched(hour, lead) VALUES (?1, ?2)")?;
        let mut changed = std::mem::take(&mut self.touched);
        changed.sort_unstable();
        changed.dedup();
        for (hour, lead) in changed {
            touched.execute(params![hour, lead.as_bytes().as_slice()])?;
        }
        Ok(())
    }
}

fn uuid(b: &[u8]) -> Uuid {
    Uuid::from_slice(b).unwrap_or_default()
}

/// The board's counters and the hours each lead changed in, from every lead's path in the
/// model: what a rebuild from zero builds here once caught up when it could not carry them
/// from its first batch on (it was resumed after a restart, or a batch was rolled back).
/// Exactly what the batches would have written for every stream the domain writes (one
/// registration, first): a lead that steps back in business time leaves the counters from
/// then on, and the hours it changed in before stay touched. A stream with rows before its
/// registration, or registered twice, the batches would count otherwise (and inconsistently:
/// their step back subtracts what they never added); no command writes one. Each lead's last
/// change and step back are in its row already: the batches keep them.
pub fn rebuild(tx: &Transaction<'_>) -> rusqlite::Result<()> {
    let started = std::time::Instant::now();
    tx.execute_batch("DELETE FROM board_hours; DELETE FROM board_touched;")?;
    // Each lead folded as its path is read, then dropped: no memory for every path at once.
    let mut board = BoardHours::default();
    let mut leads = 0u64;
    crate::audit::each_of_every_path(tx, &mut |path| {
        leads += 1;
        let steps = history(&mut board.names, &path, u64::MAX);
        let mut known: Option<Known> = None;
        for (i, (at, standing)) in steps.iter().enumerate() {
            let earlier = |_: &mut BoardHours| Ok(steps[..i].to_vec());
            known = Some(board.step(path.lead, known.as_ref(), standing.clone(), *at, earlier)?);
        }
        Ok(())
    })?;
    let folded = started.elapsed();
    board.flush(tx)?;
    tracing::info!(
        leads,
        reading_and_folding_ms = folded.as_millis() as u64,
        writing_ms = (started.elapsed() - folded).as_millis() as u64,
        "built the board by hour from the paths"
    );
    Ok(())
}

/// A lead's standing after each of its events before revision `until`, in log order, with
/// the event's business time: what the counters took in of it.
pub(crate) fn history(names: &mut Names, path: &LeadPath, until: u64) -> Vec<(i64, Standing)> {
    // The three lists are each in revision order (log order): merged, an event's rows of
    // every kind are taken together, its stage first, then its responsible, then its budget,
    // and its business time is that of the first of them.
    let (moves, assignments, budgets) = (&path.moves, &path.assignments, &path.budgets);
    let (mut m, mut a, mut b) = (0, 0, 0);
    let mut standing = Standing {
        funnel: names.number(&path.cohort.funnel),
        created_by: path.cohort.created_by,
        ..Standing::default()
    };
    let mut out = Vec::with_capacity(moves.len() + assignments.len() + budgets.len());
    loop {
        let next = [
            moves.get(m).map(|x| (x.revision, x.at)),
            assignments.get(a).map(|x| (x.revision, x.at)),
            budgets.get(b).map(|x| (x.revision, x.at)),
        ]
        .into_iter()
        .flatten()
        .min_by_key(|(revision, _)| *revision);
        let Some((revision, at)) = next.filter(|(revision, _)| *revision < until) else {
            break;
        };
        while let Some(x) = moves.get(m).filter(|x| x.revision == revision) {
            standing.stage = names.number(&x.to);
            m += 1;
        }
        while let Some(x) = assignments.get(a).filter(|x| x.revision == revision) {
            standing.responsible = Some(x.user);
            a += 1;
        }
        while let Some(x) = budgets.get(b).filter(|x| x.revision == revision) {
            standing.budget_minor = x.budget_minor.unwrap_or(0);
            b += 1;
        }
        out.push((at, standing.clone()));
    }
    out
}

/// One lead's path from the model (in the same transaction, so with this batch's rows).
pub fn path_of(conn: &Connection, lead: Uuid) -> rusqlite::Result<LeadPath> {
    let key = lead.as_bytes().as_slice();
    let (cohort, moves, budgets) = conn
        .prepare_cached(&format!(
            "SELECT {COHORT_COLUMNS}, moves, budgets FROM transition_leads WHERE lead = ?1"
        ))?
        .query_row([key], |r| {
            Ok((
                CohortRow::read(r, 0)?,
                decode_rows(r, 9)?,
                decode_rows(r, 10)?,
            ))
        })?;
    Ok(LeadPath {
        lead,
        cohort,
        moves,
        assignments: assignments_of(conn, lead)?,
        budgets,
    })
}

/// Who was responsible for `lead` from when, as stored, in revision order.
pub(crate) fn assignments_of(
    conn: &Connection,
    lead: Uuid,
) -> rusqlite::Result<Vec<AssignmentRow>> {
    conn.prepare_cached(&format!(
        "SELECT {ASSIGNMENT_COLUMNS} FROM assignments WHERE lead = ?1 ORDER BY revision"
    ))?
    .query_map([lead.as_bytes().as_slice()], |r| AssignmentRow::read(r, 0))?
    .collect()
}

/// The kanban header of `funnel` as it stood at business time `as_of` (µs), in `scope` (its
/// funnel and owner only): the hours before `as_of`'s, then the leads that changed in that
/// hour and the irregular ones, folded. The same answer as [`crate::reports::board_at`] over every
/// lead, without reading every lead.
pub fn board_at(
    conn: &Connection,
    catalog: &leadflow_domain::Catalog,
    funnel: &leadflow_domain::FunnelId,
    hide_closed: bool,
    owner: Option<Uuid>,
    as_of: i64,
) -> rusqlite::Result<Option<Board>> {
    if catalog.funnel(funnel).is_none() {
        return Ok(None);
    }
    let counts = counts_at(conn, funnel.as_str(), owner, as_of)?;
    Ok(crate::reports::board_of(
        catalog,
        funnel,
        hide_closed,
        &counts,
    ))
}

/// How many leads of `funnel` were in `stages` (any when empty) at business time `as_of`: the
/// registry's total as of then, under no filter but those.
pub fn leads_at(
    conn: &Connection,
    funnel: &str,
    stages: &[String],
    as_of: i64,
) -> rusqlite::Result<i64> {
    Ok(counts_at(conn, funnel, None, as_of)?
        .iter()
        .filter(|(stage, _)| stages.is_empty() || stages.contains(stage))
        .map(|(_, (leads, _))| leads)
        .sum())
}

/// The leads and budget sum per stage of `funnel` at business time `as_of`, everyone's or
/// (`owner`) a manager's.
fn counts_at(
    conn: &Connection,
    funnel: &str,
    owner: Option<Uuid>,
    as_of: i64,
) -> rusqlite::Result<HashMap<String, (i64, i64)>> {
    let hour = hour_of(as_of);
    let scopes: Vec<(String, i64)> = match owner {
        None => vec![(String::new(), 1)],
        Some(u) => vec![
            (format!("r:{u}"), 1),
            (format!("c:{u}"), 1),
            (format!("b:{u}"), -1),
        ],
    };
    let mut counts: HashMap<String, (i64, i64)> = HashMap::new();
    let mut sum = conn.prepare_cached(
        "SELECT stage, sum(leads), sum(budget_minor) FROM board_hours
         WHERE funnel = ?1 AND scope = ?2 AND hour < ?3 GROUP BY stage",
    )?;
    for (scope, sign) in &scopes {
        let mut rows = sum.query(params![funnel, scope, hour])?;
        while let Some(r) = rows.next()? {
            let c = counts.entry(r.get(0)?).or_default();
            c.0 += sign * r.get::<_, i64>(1)?;
            c.1 += sign * r.get::<_, i64>(2)?;
        }
    }
    // The hour's changes and the irregular leads, folded one by one.
    let scope = Scope {
        funnel: Some(funnel.to_owned()),
        owner,
        ..Scope::default()
    };
    let hour_start = hour * BUCKET_MICROS - 1;
    let mut fold = |lead: Uuid, regular: bool| -> rusqlite::Result<()> {
        let path = path_of(conn, lead)?;
        let mut add = |t: i64, sign: i64| {
            if let Some(s) = state_at(&path, t).filter(|s| scope.covers_state(&path, s)) {
                let c = counts.entry(s.stage.clone()).or_default();
                c.0 += sign;
                c.1 += sign * s.budget_minor.unwrap_or(0);
            }
        };
        add(as_of, 1);
        if regular {
            add(hour_start, -1);
        }
        Ok(())
    };
    let touched: Vec<Vec<u8>> = conn
        .prepare_cached(
            "SELECT t.lead FROM board_touched t JOIN transition_leads l ON l.lead = t.lead
             WHERE t.hour = ?1 AND NOT l.irregular",
        )?
        .query_map([hour], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    for lead in touched {
        fold(uuid(&lead), true)?;
    }
    let irregular: Vec<Vec<u8>> = conn
        .prepare_cached("SELECT lead FROM transition_leads WHERE irregular AND funnel = ?1")?
        .query_map([funnel], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    for lead in irregular {
        fold(uuid(&lead), false)?;
    }
    Ok(counts)
}
