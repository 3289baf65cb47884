//! The reports over the `transitions` model (issue 11, SPEC 5): the conversion funnel kept
//! live, time in stage, SLA breaches and manager activity; and every lead's state as of a
//! time, which the board and the standard reports read when asked `asOf`. Each takes the same
//! scope (funnel, registration period, a manager's own leads) and a business time and log
//! position it stands at.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use compact_str::CompactString;
use rusqlite::{params, Connection};
use uuid::Uuid;

use leadflow_domain::{Catalog, FunnelId, Stage};

use crate::audit::{self, percentile, AuditDefinition, LeadPath, Loss, StepCount, STEPS};
use crate::micros;
use crate::query::{Board, BoardColumn, ReportDimension, ReportRow};
use crate::rows::{decode_rows, CommandRow};

/// Which leads a report covers: the filters every report takes.
#[derive(Clone, Debug, Default)]
pub struct Scope {
    pub funnel: Option<String>,
    /// Registered at or after (µs).
    pub registered_from: Option<i64>,
    /// Registered before (µs).
    pub registered_to: Option<i64>,
    /// A manager's scope: the leads they created or are responsible for.
    pub owner: Option<Uuid>,
}

impl Scope {
    /// The audit's definition of this scope's cohort as of `as_of` (ordered mode, no
    /// grouping): its registration period, funnel and owner.
    fn definition(&self, as_of: DateTime<Utc>) -> AuditDefinition {
        let from = self
            .registered_from
            .map_or(DateTime::<Utc>::MIN_UTC, crate::from_micros);
        let to = self
            .registered_to
            .map_or(DateTime::<Utc>::MAX_UTC, crate::from_micros);
        AuditDefinition {
            funnel: self.funnel.clone(),
            scope: self.owner,
            ..AuditDefinition::new(from, to, as_of)
        }
    }

    /// Whether `path`, standing as `state` at the time asked about, is in the scope.
    pub(crate) fn covers_state(&self, path: &LeadPath, state: &LeadState) -> bool {
        self.covers(path, state.responsible)
    }

    /// Whether `path` is in the scope, with `responsible` its responsible at the time asked
    /// about: a manager's board as of a time is the one they saw then.
    fn covers(&self, path: &LeadPath, responsible: Option<Uuid>) -> bool {
        let c = &path.cohort;
        self.funnel.as_deref().is_none_or(|f| f == c.funnel)
            && self.registered_from.is_none_or(|f| c.registered_at >= f)
            && self.registered_to.is_none_or(|t| c.registered_at < t)
            && self
                .owner
                .is_none_or(|o| c.created_by == o || responsible == Some(o))
    }
}

/// The model's checkpoint: the position every answer from it stands at.
pub fn checkpoint(conn: &Connection) -> rusqlite::Result<u64> {
    conn.query_row(
        "SELECT position FROM projection_state WHERE name = 'transitions'",
        [],
        |r| r.get::<_, i64>(0),
    )
    .map(|p| p as u64)
}

/// The paths of `scope` (its funnel, period, and for a manager the leads they created or ever
/// held) registered by `as_of` and recorded by the checkpoint, with budgets, all in memory:
/// for tests and tools. The reports fold them as they are read instead ([`states_in`],
/// [`time_in_stage_in`], [`sla_breaches_in`]).
pub fn paths_in(
    conn: &Connection,
    as_of: DateTime<Utc>,
    scope: &Scope,
) -> rusqlite::Result<(u64, Vec<LeadPath>)> {
    audit::load_paths_with(conn, &scope.definition(as_of), true)
}

/// Every path registered by `as_of` and recorded by the checkpoint, with budgets.
pub fn paths_at(conn: &Connection, as_of: DateTime<Utc>) -> rusqlite::Result<(u64, Vec<LeadPath>)> {
    let definition =
        AuditDefinition::new(DateTime::<Utc>::MIN_UTC, DateTime::<Utc>::MAX_UTC, as_of);
    audit::load_paths_with(conn, &definition, true)
}

/// One lead as it stood at a time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeadState {
    pub lead: Uuid,
    pub funnel: String,
    pub source: String,
    pub stage: String,
    /// The disqualification reason when the stage is Disqualified, '' otherwise.
    pub reason: String,
    pub responsible: Option<Uuid>,
    pub created_by: Uuid,
    pub budget_minor: Option<i64>,
    pub registered_at: i64,
    /// When it entered the stage it is in.
    pub since: i64,
}

/// `path` as it stood at business time `as_of` (events up to the paths' position only: the
/// loader has already left the later ones out).
pub fn state_at(path: &LeadPath, as_of: i64) -> Option<LeadState> {
    if path.cohort.registered_at > as_of {
        return None;
    }
    let last = path.moves.iter().rfind(|m| m.at <= as_of)?;
    Some(LeadState {
        lead: path.lead,
        funnel: path.cohort.funnel.to_string(),
        source: path.cohort.source.to_string(),
        stage: last.to.to_string(),
        reason: if last.to == "Disqualified" {
            last.reason.to_string()
        } else {
            String::new()
        },
        responsible: path
            .assignments
            .iter()
            .rfind(|a| a.at <= as_of)
            .map(|a| a.user),
        created_by: path.cohort.created_by,
        budget_minor: path
            .budgets
            .iter()
            .rfind(|b| b.at <= as_of)
            .and_then(|b| b.budget_minor),
        registered_at: path.cohort.registered_at,
        since: last.at,
    })
}

/// Every lead of `scope` as it stood at `as_of`.
pub fn states_at(paths: &[LeadPath], as_of: i64, scope: &Scope) -> Vec<LeadState> {
    paths
        .iter()
        .filter_map(|p| state_of(p, as_of, scope))
        .collect()
}

fn state_of(path: &LeadPath, as_of: i64, scope: &Scope) -> Option<LeadState> {
    state_at(path, as_of).filter(|s| scope.covers(path, s.responsible))
}

/// [`states_at`] of the leads of `scope` registered by `as_of`, read from the `transitions`
/// model, each lead's path dropped once its state is taken; and the position they stand at.
pub fn states_in(
    conn: &Connection,
    as_of: DateTime<Utc>,
    scope: &Scope,
) -> rusqlite::Result<(u64, Vec<LeadState>)> {
    states_in_parts(conn, as_of, scope, &audit::fold_paths)
}

/// How a report reads the model's paths: [`audit::fold_paths`], or (in tests) the same in
/// parts from a given size.
pub(crate) type Fold<'a, A> = &'a dyn Fn(
    &Connection,
    &AuditDefinition,
    bool,
    &(dyn Fn() -> A + Sync),
    &(dyn Fn(&mut A, u64, LeadPath) + Sync),
) -> rusqlite::Result<(u64, Vec<A>)>;

pub(crate) fn states_in_parts(
    conn: &Connection,
    as_of: DateTime<Utc>,
    scope: &Scope,
    fold: Fold<'_, Vec<LeadState>>,
) -> rusqlite::Result<(u64, Vec<LeadState>)> {
    let at = micros(as_of);
    let (position, parts) = fold(
        conn,
        &scope.definition(as_of),
        true,
        &Vec::new,
        &|states, _, path| {
            states.extend(state_of(&path, at, scope));
        },
    )?;
    Ok((position, parts.into_iter().flatten().collect()))
}

/// The registry's historical columns of `states`, for [`crate::query::leads_page_as_of`].
pub fn rows_at(states: &[LeadState]) -> Vec<crate::query::RowAt> {
    states
        .iter()
        .map(|s| crate::query::RowAt {
            lead_id: leadflow_domain::LeadId::from_uuid(s.lead).to_string(),
            stage: s.stage.clone(),
            responsible: s
                .responsible
                .map(|u| leadflow_domain::UserId::from_uuid(u).to_string())
                .unwrap_or_default(),
            budget_minor: s.budget_minor.unwrap_or(-1),
            disqualification_reason: s.reason.clone(),
        })
        .collect()
}

/// The kanban header of `funnel` as it stood: the same shape as [`crate::query::board`].
pub fn board_at(
    catalog: &Catalog,
    funnel: &FunnelId,
    hide_closed: bool,
    states: &[LeadState],
) -> Option<Board> {
    let mut counts: HashMap<String, (i64, i64)> = HashMap::new();
    for l in states.iter().filter(|l| l.funnel == funnel.as_str()) {
        let c = counts.entry(l.stage.clone()).or_default();
        c.0 += 1;
        c.1 += l.budget_minor.unwrap_or(0);
    }
    board_of(catalog, funnel, hide_closed, &counts)
}

/// The board of `funnel` from each column's (stage's) lead count and budget sum: its columns
/// in order (closed ones unless `hide_closed`) and the header.
pub(crate) fn board_of(
    catalog: &Catalog,
    funnel: &FunnelId,
    hide_closed: bool,
    counts: &HashMap<String, (i64, i64)>,
) -> Option<Board> {
    let f = catalog.funnel(funnel)?;
    let columns: Vec<BoardColumn> = f
        .stages
        .iter()
        .filter(|s| !(hide_closed && s.stage.is_closed()))
        .map(|s| {
            let (leads, budget_minor) = counts.get(&s.stage.to_string()).copied().unwrap_or((0, 0));
            BoardColumn {
                stage: s.stage,
                key: s.key.to_string(),
                name: s.name.clone(),
                colour: s.colour.clone(),
                leads,
                budget_minor,
            }
        })
        .collect();
    Some(Board {
        funnel: funnel.clone(),
        total_leads: columns.iter().map(|c| c.leads).sum(),
        total_budget_minor: columns.iter().map(|c| c.budget_minor).sum(),
        columns,
    })
}

/// A standard report as it stood: the same rows and order as [`crate::query::report`].
pub fn report_at(dimension: ReportDimension, states: &[LeadState]) -> Vec<ReportRow> {
    let mut rows: BTreeMap<Option<String>, (i64, i64)> = BTreeMap::new();
    for s in states {
        let key = match dimension {
            ReportDimension::Manager => s.responsible.map(|u| u.to_string()),
            ReportDimension::Stage => Some(s.stage.clone()),
            ReportDimension::Source => Some(s.source.clone()).filter(|k| !k.is_empty()),
            ReportDimension::DisqualificationReason => {
                if s.stage != Stage::Disqualified.to_string() {
                    continue;
                }
                Some(s.reason.clone()).filter(|k| !k.is_empty())
            }
        };
        let row = rows.entry(key).or_default();
        row.0 += 1;
        row.1 += s.budget_minor.unwrap_or(0).max(0);
    }
    let mut rows: Vec<ReportRow> = rows
        .into_iter()
        .map(|(key, (leads, budget_minor))| ReportRow {
            key,
            leads,
            budget_minor,
        })
        .collect();
    rows.sort_by(|a, b| b.leads.cmp(&a.leads).then_with(|| a.key.cmp(&b.key)));
    rows
}

/// The conversion funnel as the model keeps it live: the audit's counts in its default
/// (ordered) mode over every lead of the scope, without its timings, at the checkpoint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Conversion {
    pub position: u64,
    pub registered: u64,
    pub open_in_qualification: u64,
    /// The audit's five steps; the live report has no timings (`median_seconds` and
    /// `p90_seconds` are `None`).
    pub steps: Vec<StepCount>,
    pub losses: Vec<Loss>,
}

/// The live conversion funnel of `scope` from each lead's way as it stands.
pub fn conversion(conn: &Connection, scope: &Scope) -> rusqlite::Result<Conversion> {
    let position = checkpoint(conn)?;
    let mut stmt = conn.prepare_cached(
        "SELECT reached, by_jump, stage, reason, count(*)
         FROM transition_leads
         WHERE (?1 IS NULL OR funnel = ?1)
           AND (?2 IS NULL OR registered_at >= ?2)
           AND (?3 IS NULL OR registered_at < ?3)
           AND (?4 IS NULL OR created_by = ?4 OR responsible_now = ?4)
         GROUP BY reached, by_jump, stage, reason",
    )?;
    let owner = scope.owner.map(|o| o.as_bytes().to_vec());
    let mut registered = 0;
    let mut open_in_qualification = 0;
    let mut reached = [0u64; 5];
    let mut by_jump = [0u64; 5];
    let mut open = [0u64; 5];
    let mut losses: BTreeMap<(String, String), u64> = BTreeMap::new();
    let mut rows = stmt.query(params![
        scope.funnel,
        scope.registered_from,
        scope.registered_to,
        owner
    ])?;
    while let Some(r) = rows.next()? {
        let (mask, jumps, stage, reason, n): (u8, u8, String, String, i64) =
            (r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?);
        let n = n as u64;
        registered += n;
        for s in 0..STEPS.len() {
            if mask & (1 << s) != 0 {
                reached[s] += n;
                if jumps & (1 << s) != 0 {
                    by_jump[s] += n;
                }
            }
        }
        match stage.as_str() {
            "Disqualified" | "NeedAbsent" => *losses.entry((stage, reason)).or_default() += n,
            "Distribution" => open[1] += n,
            "Handoff" => open[2] += n,
            "AwaitingSale" => open[3] += n,
            "NeedSatisfied" => {}
            _ => open_in_qualification += n,
        }
    }
    let permille = |n: u64, d: u64| (n * 1000).checked_div(d).unwrap_or(0);
    Ok(Conversion {
        position,
        registered,
        open_in_qualification,
        steps: (0..STEPS.len())
            .map(|i| StepCount {
                step: STEPS[i],
                reached: reached[i],
                by_jump: by_jump[i],
                open: open[i],
                step_conversion_permille: permille(
                    reached[i],
                    if i == 0 { registered } else { reached[i - 1] },
                ),
                overall_conversion_permille: permille(reached[i], registered),
                median_seconds: None,
                p90_seconds: None,
            })
            .collect(),
        losses: Loss::listed(losses),
    })
}

/// The working stages: time in a closed stage is no one's work.
fn working(stage: &str) -> bool {
    matches!(
        stage,
        "Qualification" | "Distribution" | "Handoff" | "AwaitingSale"
    )
}

/// One stay of a lead in a working stage: from its entry to its exit (or `as_of`, open).
#[derive(Clone, Debug, PartialEq, Eq)]
struct Stay {
    lead: Uuid,
    funnel: String,
    stage: String,
    /// Who was responsible when it left (or at `as_of`, still in it).
    manager: Option<Uuid>,
    seconds: i64,
    open: bool,
}

/// Every stay in a working stage of `path`, if it is in `scope`, as of `as_of`.
fn stays_of(path: &LeadPath, as_of: i64, scope: &Scope) -> Vec<Stay> {
    let mut out = Vec::new();
    let moves: Vec<_> = path.moves.iter().filter(|m| m.at <= as_of).collect();
    let responsible_at = |position: u64| {
        path.assignments
            .iter()
            .rfind(|a| a.at <= as_of && a.position <= position)
            .map(|a| a.user)
    };
    if moves.is_empty() || !scope.covers(path, responsible_at(u64::MAX)) {
        return out;
    }
    for (i, m) in moves.iter().enumerate() {
        if !working(&m.to) {
            continue;
        }
        let (end, position, open) = match moves.get(i + 1) {
            Some(next) => (next.at, next.position, false),
            None => (as_of, u64::MAX, true),
        };
        out.push(Stay {
            lead: path.lead,
            funnel: path.cohort.funnel.to_string(),
            stage: m.to.to_string(),
            manager: responsible_at(position),
            seconds: (end - m.at).max(0) / 1_000_000,
            open,
        });
    }
    out
}

/// Time in a stage: completed stays' median and p90 (nearest rank), and how many leads are in
/// it still; per stage (`manager` `None`), and per stage and manager.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StageTime {
    pub stage: String,
    /// `None` on the stage's row over every manager; `Some(None)`: unassigned.
    pub manager: Option<Option<Uuid>>,
    pub stays: u64,
    pub median_seconds: Option<i64>,
    pub p90_seconds: Option<i64>,
    pub open: u64,
}

/// What a report counts lead by lead: each part of the model counts its own leads, and the
/// parts' counts merge.
pub(crate) trait Tally: Send {
    fn add(&mut self, path: &LeadPath, as_of: i64, scope: &Scope);
    /// Adds a later part's counts.
    fn merge(&mut self, later: Self);
}

/// The leads of `scope` registered by `as_of` counted into `T`s, one per part of the model
/// as `fold` reads it, merged in lead order; and the position they stand at.
fn tally_in_parts<T: Tally>(
    conn: &Connection,
    as_of: DateTime<Utc>,
    scope: &Scope,
    new: &(dyn Fn() -> T + Sync),
    fold: Fold<'_, T>,
) -> rusqlite::Result<(u64, T)> {
    let at = micros(as_of);
    let (position, parts) = fold(
        conn,
        &scope.definition(as_of),
        false,
        new,
        &|tally, _, path| tally.add(&path, at, scope),
    )?;
    let mut tally = new();
    for part in parts {
        tally.merge(part);
    }
    Ok((position, tally))
}

/// Time in stage over `paths` (from [`paths_in`]) as of `as_of`, in stage order, each stage's
/// row first, then its managers'.
pub fn time_in_stage(paths: &[LeadPath], as_of: DateTime<Utc>, scope: &Scope) -> Vec<StageTime> {
    let mut tally = StageTally::default();
    for path in paths {
        tally.add(path, micros(as_of), scope);
    }
    tally.finish(scope)
}

/// [`time_in_stage`] of the leads of `scope` registered by `as_of`, read from the
/// `transitions` model, each lead's path dropped once counted; and the position it stands at.
pub fn time_in_stage_in(
    conn: &Connection,
    as_of: DateTime<Utc>,
    scope: &Scope,
) -> rusqlite::Result<(u64, Vec<StageTime>)> {
    time_in_stage_in_parts(conn, as_of, scope, &audit::fold_paths)
}

pub(crate) fn time_in_stage_in_parts(
    conn: &Connection,
    as_of: DateTime<Utc>,
    scope: &Scope,
    fold: Fold<'_, StageTally>,
) -> rusqlite::Result<(u64, Vec<StageTime>)> {
    let (position, tally) = tally_in_parts(conn, as_of, scope, &StageTally::default, fold)?;
    Ok((position, tally.finish(scope)))
}

/// A row of time in stage: the stage's order and the manager (`None`: every manager;
/// `Some(None)`: unassigned).
type StageRow = (usize, Option<Option<Uuid>>);

/// Time in stage counted lead by lead: per row, the ended stays' seconds and the open stays;
/// and each stage's name by its order.
#[derive(Default)]
pub(crate) struct StageTally {
    by: BTreeMap<StageRow, (Vec<i64>, u64)>,
    names: BTreeMap<usize, String>,
}

impl Tally for StageTally {
    fn add(&mut self, path: &LeadPath, as_of: i64, scope: &Scope) {
        let order = |stage: &str| {
            Stage::ALL
                .iter()
                .position(|s| s.to_string() == stage)
                .unwrap_or(usize::MAX)
        };
        for s in stays_of(path, as_of, scope) {
            let o = order(&s.stage);
            self.names.entry(o).or_insert(s.stage);
            for key in [(o, None), (o, Some(s.manager))] {
                let entry = self.by.entry(key).or_default();
                if s.open {
                    entry.1 += 1;
                } else {
                    entry.0.push(s.seconds);
                }
            }
        }
    }

    /// The seconds are sorted at the end: the order of the parts changes nothing.
    fn merge(&mut self, later: StageTally) {
        for (key, (seconds, open)) in later.by {
            let entry = self.by.entry(key).or_default();
            entry.0.extend(seconds);
            entry.1 += open;
        }
        for (o, name) in later.names {
            self.names.entry(o).or_insert(name);
        }
    }
}

impl StageTally {
    fn finish(self, scope: &Scope) -> Vec<StageTime> {
        // A manager sees their own rows beside each stage's; not the others who held their
        // leads.
        let mine = |m: &Option<Option<Uuid>>| match (scope.owner, m) {
            (Some(owner), Some(m)) => *m == Some(owner),
            _ => true,
        };
        let names = self.names;
        self.by
            .into_iter()
            .filter(|((_, manager), _)| mine(manager))
            .map(|((o, manager), (mut seconds, open))| {
                seconds.sort_unstable();
                StageTime {
                    stage: names[&o].clone(),
                    manager,
                    stays: seconds.len() as u64,
                    median_seconds: percentile(&seconds, 50),
                    p90_seconds: percentile(&seconds, 90),
                    open,
                }
            })
            .collect()
    }
}

/// The SLA thresholds the catalog sets, in hours per funnel and stage.
pub fn sla_thresholds(catalog: &Catalog) -> BTreeMap<(String, String), u32> {
    catalog
        .funnels
        .iter()
        .flat_map(|f| {
            f.stages.iter().filter_map(move |s| {
                s.sla_hours
                    .map(|h| ((f.id.to_string(), s.stage.to_string()), h))
            })
        })
        .collect()
}

/// SLA breaches of one funnel's stage: stays longer than its threshold, ended and still open,
/// and the leads over it now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SlaBreach {
    pub funnel: String,
    pub stage: String,
    pub threshold_hours: u32,
    /// Stays that ended, and of them those over the threshold.
    pub stays: u64,
    pub breached: u64,
    /// Leads in the stage at `as_of`, and of them those over the threshold, with their ids.
    pub open: u64,
    pub open_breached: u64,
    pub leads_over: Vec<Uuid>,
}

/// SLA breaches over `paths` as of `as_of`, for every funnel and stage with a threshold.
pub fn sla_breaches(
    paths: &[LeadPath],
    thresholds: &BTreeMap<(String, String), u32>,
    as_of: DateTime<Utc>,
    scope: &Scope,
) -> Vec<SlaBreach> {
    let mut tally = SlaTally::new(thresholds, scope);
    for path in paths {
        tally.add(path, micros(as_of), scope);
    }
    tally.finish()
}

/// [`sla_breaches`] of the leads of `scope` registered by `as_of`, read from the `transitions`
/// model, each lead's path dropped once counted; and the position it stands at.
pub fn sla_breaches_in(
    conn: &Connection,
    thresholds: &BTreeMap<(String, String), u32>,
    as_of: DateTime<Utc>,
    scope: &Scope,
) -> rusqlite::Result<(u64, Vec<SlaBreach>)> {
    sla_breaches_in_parts(conn, thresholds, as_of, scope, &audit::fold_paths)
}

pub(crate) fn sla_breaches_in_parts(
    conn: &Connection,
    thresholds: &BTreeMap<(String, String), u32>,
    as_of: DateTime<Utc>,
    scope: &Scope,
    fold: Fold<'_, SlaTally>,
) -> rusqlite::Result<(u64, Vec<SlaBreach>)> {
    let new = || SlaTally::new(thresholds, scope);
    let (position, tally) = tally_in_parts(conn, as_of, scope, &new, fold)?;
    Ok((position, tally.finish()))
}

/// SLA breaches counted lead by lead, per funnel and stage with a threshold.
pub(crate) struct SlaTally(BTreeMap<(String, String), SlaBreach>);

impl SlaTally {
    fn new(thresholds: &BTreeMap<(String, String), u32>, scope: &Scope) -> Self {
        Self(
            thresholds
                .iter()
                .filter(|((f, _), _)| scope.funnel.as_deref().is_none_or(|s| s == f))
                .map(|((f, s), h)| {
                    (
                        (f.clone(), s.clone()),
                        SlaBreach {
                            funnel: f.clone(),
                            stage: s.clone(),
                            threshold_hours: *h,
                            stays: 0,
                            breached: 0,
                            open: 0,
                            open_breached: 0,
                            leads_over: Vec::new(),
                        },
                    )
                })
                .collect(),
        )
    }
}

impl Tally for SlaTally {
    fn add(&mut self, path: &LeadPath, as_of: i64, scope: &Scope) {
        for s in stays_of(path, as_of, scope) {
            let Some(row) = self.0.get_mut(&(s.funnel, s.stage)) else {
                continue;
            };
            let over = s.seconds > i64::from(row.threshold_hours) * 3600;
            if s.open {
                row.open += 1;
                if over {
                    row.open_breached += 1;
                    row.leads_over.push(s.lead);
                }
            } else {
                row.stays += 1;
                row.breached += u64::from(over);
            }
        }
    }

    /// The leads over are sorted at the end.
    fn merge(&mut self, later: SlaTally) {
        for (key, theirs) in later.0 {
            if let Some(row) = self.0.get_mut(&key) {
                row.stays += theirs.stays;
                row.breached += theirs.breached;
                row.open += theirs.open;
                row.open_breached += theirs.open_breached;
                row.leads_over.extend(theirs.leads_over);
            }
        }
    }
}

impl SlaTally {
    fn finish(self) -> Vec<SlaBreach> {
        let order = |stage: &str| Stage::ALL.iter().position(|s| s.to_string() == stage);
        let mut rows: Vec<SlaBreach> = self.0.into_values().collect();
        rows.sort_by(|a, b| (&a.funnel, order(&a.stage)).cmp(&(&b.funnel, order(&b.stage))));
        for r in &mut rows {
            r.leads_over.sort();
        }
        rows
    }
}

/// Commands one user gave on leads on one day (UTC), by kind.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Activity {
    /// `YYYY-MM-DD`.
    pub day: String,
    pub user: Uuid,
    pub command: String,
    pub commands: u64,
}

/// Manager activity: commands per user per day by kind, given in `[from, to)` and by `as_of`,
/// on leads of `scope`'s funnel and registration period; a manager's scope is their own
/// commands. In (day, user, command) order.
pub fn manager_activity(
    conn: &Connection,
    from: Option<DateTime<Utc>>,
    to: Option<DateTime<Utc>>,
    as_of: DateTime<Utc>,
    scope: &Scope,
) -> rusqlite::Result<Vec<Activity>> {
    // Each lead of the scope's funnel and registration period once, its commands counted.
    let mut stmt = conn.prepare_cached(
        "SELECT commands FROM transition_leads
         WHERE (?1 IS NULL OR funnel = ?1)
           AND (?2 IS NULL OR registered_at >= ?2)
           AND (?3 IS NULL OR registered_at < ?3)",
    )?;
    let (as_of, from, to) = (micros(as_of), from.map(micros), to.map(micros));
    let mut counts: BTreeMap<(i64, Uuid, CompactString), u64> = BTreeMap::new();
    let mut rows = stmt.query(params![
        scope.funnel,
        scope.registered_from,
        scope.registered_to
    ])?;
    while let Some(r) = rows.next()? {
        let commands: Vec<CommandRow> = decode_rows(r, 0)?;
        for c in commands {
            if c.at > as_of
                || from.is_some_and(|f| c.at < f)
                || to.is_some_and(|t| c.at >= t)
                || scope.owner.is_some_and(|o| c.actor != o)
            {
                continue;
            }
            // The day in UTC of the command's whole second, as SQLite's `date(at / 1e6,
            // 'unixepoch')` has it (the division truncating toward zero).
            let day = (c.at / 1_000_000).div_euclid(86_400);
            *counts.entry((day, c.actor, c.command)).or_default() += 1;
        }
    }
    Ok(counts
        .into_iter()
        .map(|((day, user, command), commands)| Activity {
            day: day_name(day),
            user,
            command: command.into(),
            commands,
        })
        .collect())
}

/// `YYYY-MM-DD` of the day `day` days after 1970-01-01.
fn day_name(day: i64) -> String {
    chrono::DateTime::from_timestamp(day * 86_400, 0)
        .map(|t| t.format("%Y-%m-%d").to_string())
        .unwrap_or_default()
}

impl Conversion {
    /// The live report as an audit group (key '', nothing excluded, no timings).
    pub fn into_group(self) -> audit::AuditGroup {
        audit::AuditGroup {
            key: String::new(),
            registered: self.registered,
            excluded: 0,
            open_in_qualification: self.open_in_qualification,
            steps: self.steps,
            losses: self.losses,
        }
    }
}

/// The conversion funnel as of `as_of` at the model's checkpoint: the audit in its default
/// (ordered) mode over the scope's cohort, one group.
pub fn conversion_at(
    conn: &Connection,
    as_of: DateTime<Utc>,
    scope: &Scope,
) -> rusqlite::Result<(u64, audit::AuditGroup)> {
    let audit = audit::funnel_audit(conn, &scope.definition(as_of), &audit::Departments::new())?;
    let group = audit.groups.into_iter().next().unwrap_or_else(|| {
        Conversion {
            position: audit.position,
            registered: 0,
            open_in_qualification: 0,
            steps: (0..STEPS.len())
                .map(|i| StepCount {
                    step: STEPS[i],
                    reached: 0,
                    by_jump: 0,
                    open: 0,
                    step_conversion_permille: 0,
                    overall_conversion_permille: 0,
                    median_seconds: None,
                    p90_seconds: None,
                })
                .collect(),
            losses: Vec::new(),
        }
        .into_group()
    });
    Ok((audit.position, group))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rows::{AssignmentRow, CohortRow, MoveRow};

    const HOUR: i64 = 3_600_000_000;

    fn user(n: u8) -> Uuid {
        Uuid::from_bytes([n; 16])
    }

    /// A lead registered at hour 0 by user 1, assigned to `manager` at `assigned_at`, moving
    /// through `moves` (hour, to).
    fn path(n: u8, manager: u8, assigned_at: i64, moves: &[(i64, &str)]) -> LeadPath {
        let mut all = vec![MoveRow {
            revision: 0,
            position: 1,
            at: 0,
            from: Default::default(),
            to: "Qualification".into(),
            via: "registered".into(),
            jump: false,
            reason: Default::default(),
            actor: user(1),
        }];
        for (i, (h, to)) in moves.iter().enumerate() {
            let from = all.last().unwrap().to.clone();
            all.push(MoveRow {
                revision: i as u64 + 1,
                position: i as u64 + 2,
                at: h * HOUR,
                from,
                to: (*to).into(),
                via: "qualified".into(),
                jump: false,
                reason: Default::default(),
                actor: user(1),
            });
        }
        LeadPath {
            lead: Uuid::from_bytes([n; 16]),
            cohort: CohortRow {
                funnel: "default".into(),
                source: Default::default(),
                channel: Default::default(),
                created_by: user(1),
                responsible: None,
                quality: "Unsorted".into(),
                advertising: false,
                registered_at: 0,
                position: 1,
            },
            moves: all,
            assignments: vec![AssignmentRow {
                revision: 1,
                position: 1,
                at: assigned_at * HOUR,
                user: user(manager),
            }],
            budgets: Vec::new(),
        }
    }

    fn at(hours: i64) -> DateTime<Utc> {
        crate::from_micros(hours * HOUR)
    }

    #[test]
    fn time_in_stage_takes_ended_stays_per_stage_and_manager_and_counts_open_ones() {
        let paths = [
            // Qualification 2 h, Distribution 3 h, Handoff since hour 5.
            path(1, 7, 0, &[(2, "Distribution"), (5, "Handoff")]),
            // Qualification 10 h, then lost: no time in a closed stage.
            path(2, 8, 0, &[(10, "Disqualified")]),
            // Still in Qualification.
            path(3, 7, 0, &[]),
        ];
        let rows = time_in_stage(&paths, at(20), &Scope::default());
        let row = |stage: &str, manager: Option<Option<Uuid>>| {
            rows.iter()
                .find(|r| r.stage == stage && r.manager == manager)
                .cloned()
                .unwrap_or_else(|| panic!("{stage} {manager:?} in {rows:#?}"))
        };
        let q = row("Qualification", None);
        assert_eq!(
            (q.stays, q.median_seconds, q.p90_seconds, q.open),
            (2, Some(7200), Some(36000), 1)
        );
        let q7 = row("Qualification", Some(Some(user(7))));
        assert_eq!((q7.stays, q7.median_seconds, q7.open), (1, Some(7200), 1));
        assert_eq!(row("Distribution", None).median_seconds, Some(3 * 3600));
        let h = row("Handoff", None);
        assert_eq!((h.stays, h.open), (0, 1));
        assert!(rows.iter().all(|r| r.stage != "Disqualified"));
        // As of hour 3, the Handoff move has not happened, and lead 2 is still qualifying.
        let then = time_in_stage(&paths, at(3), &Scope::default());
        let d = then
            .iter()
            .find(|r| r.stage == "Distribution" && r.manager.is_none())
            .unwrap();
        assert_eq!((d.stays, d.open), (0, 1));
        let q = then
            .iter()
            .find(|r| r.stage == "Qualification" && r.manager.is_none())
            .unwrap();
        assert_eq!((q.stays, q.open), (1, 2));
        // A manager's scope: the leads they are responsible for at the time.
        let mine = time_in_stage(
            &paths,
            at(20),
            &Scope {
                owner: Some(user(8)),
                ..Scope::default()
            },
        );
        assert!(mine.iter().all(|r| r.stage == "Qualification"), "{mine:#?}");
        assert_eq!(mine[0].stays, 1);
        // A lead user 7 qualified, then handed to user 8: user 8 sees the stage's row and
        // their own, not user 7's.
        let mut handed = path(4, 7, 0, &[(2, "Distribution")]);
        handed.assignments.push(AssignmentRow {
            revision: 2,
            position: 9,
            at: 3 * HOUR,
            user: user(8),
        });
        let theirs = time_in_stage(
            &[handed],
            at(20),
            &Scope {
                owner: Some(user(8)),
                ..Scope::default()
            },
        );
        assert!(!theirs.is_empty());
        assert!(
            theirs
                .iter()
                .all(|r| r.manager.is_none() || r.manager == Some(Some(user(8)))),
            "{theirs:#?}"
        );
    }

    #[test]
    fn sla_breaches_count_stays_over_the_threshold_and_list_the_leads_over_it_now() {
        let paths = [
            path(1, 7, 0, &[(2, "Distribution"), (9, "Handoff")]),
            path(2, 7, 0, &[(30, "Distribution")]),
            path(3, 7, 0, &[]),
            path(4, 7, 0, &[(1, "Distribution")]),
        ];
        let thresholds: BTreeMap<(String, String), u32> = [
            (("default".to_owned(), "Qualification".to_owned()), 24),
            (("default".to_owned(), "Distribution".to_owned()), 4),
        ]
        .into();
        let rows = sla_breaches(&paths, &thresholds, at(40), &Scope::default());
        assert_eq!(rows.len(), 2);
        let (q, d) = (&rows[0], &rows[1]);
        assert_eq!(q.stage, "Qualification");
        // Ended: 2 h, 30 h (over), 1 h; open: lead 3 for 40 h (over).
        assert_eq!((q.stays, q.breached, q.open, q.open_breached), (3, 1, 1, 1));
        assert_eq!(q.leads_over, vec![Uuid::from_bytes([3; 16])]);
        // Ended: 7 h (over); open: lead 2 for 10 h, lead 4 for 39 h (both over).
        assert_eq!((d.stays, d.breached, d.open, d.open_breached), (1, 1, 2, 2));
        assert_eq!(
            d.leads_over,
            vec![Uuid::from_bytes([2; 16]), Uuid::from_bytes([4; 16])]
        );
        // Exactly at the threshold is not over it.
        let at_limit = sla_breaches(&paths[3..], &thresholds, at(5), &Scope::default());
        assert_eq!(at_limit[1].open_breached, 0);
        // Another funnel's filter leaves these out.
        let other = Scope {
            funnel: Some("other".into()),
            ..Scope::default()
        };
        assert!(sla_breaches(&paths, &thresholds, at(40), &other).is_empty());
    }
}
