//! The funnel conversion audit (issue 11, SPEC 8): a cohort's way through the funnel's
//! steps, exact as of a business time and a log position. Every answer carries its definition
//! (a canonical form and its SHA-256) and the log position it was computed at; the same
//! definition at the same position gives byte-identical output.
//!
//! The audit is computed over each lead's path (its cohort row, the stages it entered, who was
//! responsible from when), which comes from one of two places that give the same rows: the
//! `transitions` model (the fast way: read in key order, each path whole as soon as its rows
//! are read and dropped once counted, [`funnel_audit`], [`drill_down_in_model`],
//! [`fold_paths`]; or kept, [`load_paths`]) or the log itself ([`PathsFromLog`], decoded
//! through the codec without any key: nothing personal is needed).
//!
//! The steps are Qualification done, Distribution, Handoff, AwaitingSale and NeedSatisfied. A
//! lead reaches a step by entering its stage or by moving forward past it: qualifying straight
//! to Handoff passes Distribution by design (the lead had its manager; SPEC 3.3), a
//! conversion or a jump passes what it skips and counts as reached by a jump. Modes:
//! `ordered` counts a step once the one before it was reached; `strict` also ends a lead's
//! way at its first move that is not straight on (back to an earlier stage, lost, reopened);
//! `any` counts a step whenever it was reached. Ties between one lead's events are broken by
//! log position, never by time.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, SecondsFormat, Utc};
use rusqlite::Connection;
use serde::Serialize;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::rows::{
    decode_rows, rank, row_of, steps_of, AssignmentRow, BudgetRow, CohortRow, MoveRow, Row,
    ASSIGNMENT_COLUMNS, COHORT_COLUMNS, ROW_EVENT_TYPES,
};
use crate::{from_micros, micros, Envelope};

/// The steps, in funnel order.
pub const STEPS: [&str; 5] = [
    "QualificationDone",
    "Distribution",
    "Handoff",
    "AwaitingSale",
    "NeedSatisfied",
];

const DAY_MICROS: i64 = 86_400_000_000;

/// How steps must follow each other.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum StepMode {
    /// Each step reached after the one before it.
    Ordered,
    /// Each step reached straight from the one before it, with no other stage in between.
    Strict,
    /// Each step counted whenever it was reached.
    Any,
}

/// What the groups are.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum GroupBy {
    None,
    Source,
    Channel,
    Funnel,
    /// The responsible manager (by [`ManagerBasis`]): the user id, '' when unassigned.
    Manager,
    /// The responsible manager's department, as the catalog has it: '' when unassigned.
    Department,
    /// The ISO week of registration (UTC), `2026-W09`.
    Week,
    /// The calendar month of registration (UTC), `2026-03`.
    Month,
}

/// Which manager a lead is counted under when grouping or filtering by manager or department.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum ManagerBasis {
    /// The one responsible at registration.
    Registration,
    /// The one responsible at `asOf`.
    AsOf,
}

/// A lead left out of the cohort for something in its way up to the audit's time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Exclusion {
    EverDisqualified,
    EverReopened,
    EverJumped,
}

/// An audit's inputs: everything its answer depends on besides the log (and, for grouping by
/// department, the catalog's departments).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditDefinition {
    /// The cohort: leads registered in `[from, to)` (business time).
    #[serde(serialize_with = "utc")]
    pub from: DateTime<Utc>,
    #[serde(serialize_with = "utc")]
    pub to: DateTime<Utc>,
    /// Only events with a business time up to this count.
    #[serde(serialize_with = "utc")]
    pub as_of: DateTime<Utc>,
    /// Only events recorded up to this log position count ("what we would have reported
    /// then"); `None`: the log as far as it is read.
    pub as_of_position: Option<u64>,
    pub funnel: Option<String>,
    pub source: Option<String>,
    pub channel: Option<String>,
    /// The quality as registered (`Hot`, `Warm`, ...).
    pub quality: Option<String>,
    pub advertising: Option<bool>,
    /// The responsible manager (by `manager_basis`).
    pub manager: Option<Uuid>,
    /// The responsible manager's department.
    pub department: Option<String>,
    pub manager_basis: ManagerBasis,
    pub mode: StepMode,
    /// Leads left out (counted apart as `excluded`).
    pub exclude: Vec<Exclusion>,
    /// Per step: reached within this many days of the step before it (of the registration
    /// for the first), or it does not count.
    pub windows_days: [Option<u32>; 5],
    pub group_by: GroupBy,
    /// Only the leads of this manager's scope (created by them, or theirs now): a manager's
    /// audit. `None`: every lead.
    pub scope: Option<Uuid>,
}

fn utc<S: serde::Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&t.to_rfc3339_opts(SecondsFormat::Micros, true))
}

impl AuditDefinition {
    /// The cohort registered in `[from, to)` as of `as_of`, every other input at its default:
    /// no filter, ordered, no exclusion, no window, one group, every lead.
    pub fn new(from: DateTime<Utc>, to: DateTime<Utc>, as_of: DateTime<Utc>) -> Self {
        Self {
            from,
            to,
            as_of,
            as_of_position: None,
            funnel: None,
            source: None,
            channel: None,
            quality: None,
            advertising: None,
            manager: None,
            department: None,
            manager_basis: ManagerBasis::AsOf,
            mode: StepMode::Ordered,
            exclude: Vec::new(),
            windows_days: [None; 5],
            group_by: GroupBy::None,
            scope: None,
        }
    }

    /// What is wrong with it, if anything: an empty period, a window over 100 years.
    pub fn validate(&self) -> Result<(), String> {
        if self.from >= self.to {
            return Err(format!(
                "the period is empty: from {} is not before to {}",
                self.from, self.to
            ));
        }
        if let Some(days) = self.windows_days.iter().flatten().find(|d| **d > 36_500) {
            return Err(format!("a window of {days} days is over 100 years"));
        }
        Ok(())
    }

    /// The canonical form: JSON with fields in a fixed order, times in UTC to the µs and the
    /// exclusions sorted.
    pub fn canonical(&self) -> String {
        let mut d = self.clone();
        d.exclude.sort();
        d.exclude.dedup();
        serde_json::to_string(&d).expect("a definition serializes")
    }

    /// SHA-256 of the canonical form, hex.
    pub fn hash(&self) -> String {
        Sha256::digest(self.canonical().as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }
}

/// One step of one group.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StepCount {
    pub step: &'static str,
    pub reached: u64,
    /// Of those, reached by a jump (the jump command, or a conversion over it).
    pub by_jump: u64,
    /// In this step's stage at the time (neither converted further nor lost): right-censored.
    pub open: u64,
    /// `reached` over the previous step's (over `registered` for the first), in per mille.
    pub step_conversion_permille: u64,
    /// `reached` over `registered`, in per mille.
    pub overall_conversion_permille: u64,
    /// Time from the step before (the registration for the first) to this one, over the leads
    /// that reached both in that order: median and 90th percentile (nearest rank), seconds.
    pub median_seconds: Option<i64>,
    pub p90_seconds: Option<i64>,
}

/// A group's losses: leads whose stage at the time is a closed one other than NeedSatisfied.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Loss {
    pub stage: String,
    /// The disqualification reason's code; '' for NeedAbsent.
    pub reason: String,
    pub leads: u64,
}

impl Loss {
    /// The losses counted per (stage, reason), in that order.
    pub(crate) fn listed(counted: BTreeMap<(String, String), u64>) -> Vec<Loss> {
        counted
            .into_iter()
            .map(|((stage, reason), leads)| Loss {
                stage,
                reason,
                leads,
            })
            .collect()
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditGroup {
    pub key: String,
    /// The cohort's leads counted (those excluded are not among them).
    pub registered: u64,
    /// Left out by the definition's exclusions.
    pub excluded: u64,
    /// Open in Qualification at the time (registered, or reopened, and not qualified since):
    /// right-censored before the first step.
    pub open_in_qualification: u64,
    pub steps: Vec<StepCount>,
    pub losses: Vec<Loss>,
}

/// An audit's answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Audit {
    pub definition: String,
    pub definition_hash: String,
    /// The log position the answer was computed at: how far the model (or the log) was read,
    /// or `asOfPosition` when that is lower.
    pub position: u64,
    pub groups: Vec<AuditGroup>,
}

impl Audit {
    /// The answer as JSON, byte-identical for the same definition at the same position.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("an audit serializes")
    }
}

/// One lead's way, as the `transitions` model (or the log) has it, in log order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeadPath {
    pub lead: Uuid,
    pub cohort: CohortRow,
    pub moves: Vec<MoveRow>,
    pub assignments: Vec<AssignmentRow>,
    /// Only when asked for ([`load_paths_with`]'s `budgets`); the audit does not read them.
    pub budgets: Vec<BudgetRow>,
}

/// Each user's department, from the catalog: what grouping and filtering by department read.
pub type Departments = BTreeMap<Uuid, String>;

/// The funnel's own names for the steps (the default funnel's when `funnel` names none):
/// `Qualification: done`, then the stages' names.
pub fn step_names(catalog: &leadflow_domain::Catalog, funnel: Option<&str>) -> [String; 5] {
    use leadflow_domain::Stage;
    let id = funnel
        .and_then(|f| leadflow_domain::FunnelId::parse(f).ok())
        .unwrap_or_else(|| catalog.default_funnel.clone());
    let name = |stage: Stage| {
        catalog
            .funnel(&id)
            .and_then(|f| f.stages.iter().find(|s| s.stage == stage))
            .map_or_else(|| stage.to_string(), |s| s.name.clone())
    };
    [
        format!("{}: done", name(Stage::Qualification)),
        name(Stage::Distribution),
        name(Stage::Handoff),
        name(Stage::AwaitingSale),
        name(Stage::NeedSatisfied),
    ]
}

/// Each user's department, as the catalog has it now: what grouping and filtering by
/// department read.
pub fn departments(catalog: &leadflow_domain::Catalog) -> Departments {
    catalog
        .users
        .iter()
        .map(|u| (u.id.as_uuid(), u.department.to_string()))
        .collect()
}

/// The catalog's names for the group keys of `group_by` (sources, channels, funnels,
/// managers, departments); keys it does not name read as themselves.
pub fn group_labels(
    catalog: &leadflow_domain::Catalog,
    group_by: GroupBy,
) -> BTreeMap<String, String> {
    match group_by {
        GroupBy::Source => catalog
            .sources
            .iter()
            .map(|s| (s.code.to_string(), s.name.clone()))
            .collect(),
        GroupBy::Channel => catalog
            .channels
            .iter()
            .map(|c| (c.code.to_string(), c.name.clone()))
            .collect(),
        GroupBy::Funnel => catalog
            .funnels
            .iter()
            .map(|f| (f.id.to_string(), f.name.clone()))
            .collect(),
        GroupBy::Manager => catalog
            .users
            .iter()
            .map(|u| (u.id.to_string(), u.display_name.clone()))
            .collect(),
        GroupBy::Department => catalog
            .departments
            .iter()
            .map(|d| (d.id.to_string(), d.name.clone()))
            .collect(),
        GroupBy::None | GroupBy::Week | GroupBy::Month => BTreeMap::new(),
    }
}

/// The paths of the cohort `definition` names, from the `transitions` model, and the position
/// they stand at (the model's checkpoint, or `asOfPosition` when lower). Only the cohort's
/// registration period, the position, the funnel and a superset of the scope are applied
/// here; [`audit_paths`] applies the rest.
pub fn load_paths(
    conn: &Connection,
    definition: &AuditDefinition,
) -> rusqlite::Result<(u64, Vec<LeadPath>)> {
    load_paths_with(conn, definition, false)
}

/// [`load_paths`], with each lead's budgets when `budgets` (what the state as of a time
/// reads; the audit does not).
///
/// A large model is read in parts, one per core (at most four), each a range of lead ids of
/// as many leads, on a connection of its own: reading rows is most of an audit's time. Every
/// part reads only rows recorded by the position the first connection saw, which no later
/// write changes, so the parts agree whatever each one's snapshot.
pub fn load_paths_with(
    conn: &Connection,
    definition: &AuditDefinition,
    budgets: bool,
) -> rusqlite::Result<(u64, Vec<LeadPath>)> {
    load_in_parts(conn, definition, budgets, PARALLEL_READ_MIN)
}

/// [`load_paths_with`], in parts when the model has at least `parts_from` leads.
fn load_in_parts(
    conn: &Connection,
    definition: &AuditDefinition,
    budgets: bool,
    parts_from: i64,
) -> rusqlite::Result<(u64, Vec<LeadPath>)> {
    let (position, parts) = in_parts(conn, definition, parts_from, &|c, position, range, room| {
        load_part(c, definition, budgets, position, range, room)
    })?;
    let mut parts = parts.into_iter();
    let mut paths = parts.next().unwrap_or_default();
    for part in parts {
        paths.extend(part);
    }
    Ok((position, paths))
}

/// Folds the paths of the cohort `definition` names (as [`load_paths_with`] reads them, each
/// dropped once folded) into one `A` per part of the model, the parts in lead order, and
/// the position they stand at (`step` is told it too): what the audit, its drill-down and
/// the reports keep of each lead instead of every path (1 GB at a million leads).
pub fn fold_paths<A: Send>(
    conn: &Connection,
    definition: &AuditDefinition,
    budgets: bool,
    init: &(dyn Fn() -> A + Sync),
    step: &(dyn Fn(&mut A, u64, LeadPath) + Sync),
) -> rusqlite::Result<(u64, Vec<A>)> {
    fold_paths_in_parts(conn, definition, budgets, init, step, PARALLEL_READ_MIN)
}

/// [`fold_paths`], in parts when the model has at least `parts_from` leads.
pub(crate) fn fold_paths_in_parts<A: Send>(
    conn: &Connection,
    definition: &AuditDefinition,
    budgets: bool,
    init: &(dyn Fn() -> A + Sync),
    step: &(dyn Fn(&mut A, u64, LeadPath) + Sync),
    parts_from: i64,
) -> rusqlite::Result<(u64, Vec<A>)> {
    in_parts(conn, definition, parts_from, &|c, position, range, _| {
        let mut folded = init();
        each_path(c, definition, budgets, position, range, &mut |path| {
            step(&mut folded, position, path);
            Ok(())
        })?;
        Ok(folded)
    })
}

/// The position an audit of `definition` reads the model up to: its checkpoint, or
/// `asOfPosition` when lower.
fn position_of(conn: &Connection, definition: &AuditDefinition) -> u64 {
    let checkpoint: i64 = conn
        .query_row(
            "SELECT position FROM projection_state WHERE name = 'transitions'",
            [],
            |r| r.get(0),
        )
        .unwrap_or(0);
    definition
        .as_of_position
        .map_or(checkpoint as u64, |p| p.min(checkpoint as u64))
}

/// The bounds of a part of the model: lead ids from the first (inclusive) to the second
/// (exclusive), unbounded where `None`.
type Range<'a> = (Option<&'a [u8]>, Option<&'a [u8]>);

/// What `part` makes of each part of the model, in lead order, and the position every part
/// reads up to (the model's checkpoint, or `asOfPosition` when lower). The model is read in
/// one part per core (at most four) when it has at least `parts_from` leads, each on a
/// connection of its own; `part` is also told about how many leads its part holds (the first
/// part: the whole model's), so it can take room for their paths at once.
fn in_parts<R: Send>(
    conn: &Connection,
    definition: &AuditDefinition,
    parts_from: i64,
    part: &(dyn Fn(&Connection, u64, Range<'_>, usize) -> rusqlite::Result<R> + Sync),
) -> rusqlite::Result<(u64, Vec<R>)> {
    let position = position_of(conn, definition);
    let (leads, bounds) = split_leads(conn, parts_from)?;
    let every = usize::try_from(leads).unwrap_or(0);
    // The other parts' connections, opened first: a generation switched away from may be gone
    // from the disk (this one still reads it), and then the model is read in one part.
    let own = conn
        .path()
        .filter(|file| !file.is_empty() && !bounds.is_empty())
        .and_then(|file| {
            bounds
                .iter()
                .map(|_| crate::open_read_only(std::path::Path::new(file)))
                .collect::<rusqlite::Result<Vec<_>>>()
                .ok()
        });
    let Some(own) = own else {
        return Ok((position, vec![part(conn, position, (None, None), every)?]));
    };
    let share = every / (bounds.len() + 1);
    // Part k reads the lead ids from bound k - 1 (inclusive) to bound k (exclusive), the first
    // and the last unbounded on their outer side.
    let lows: Vec<Option<&[u8]>> = std::iter::once(None)
        .chain(bounds.iter().map(|b| Some(b.as_slice())))
        .collect();
    let highs: Vec<Option<&[u8]>> = bounds
        .iter()
        .map(|b| Some(b.as_slice()))
        .chain(std::iter::once(None))
        .collect();
    let parts = std::thread::scope(|scope| -> rusqlite::Result<Vec<R>> {
        let others: Vec<_> = own
            .into_iter()
            .enumerate()
            .map(|(k, own)| {
                let range = (lows[k + 1], highs[k + 1]);
                scope.spawn(move || part(&own, position, range, share))
            })
            .collect();
        let mut parts = vec![part(conn, position, (lows[0], highs[0]), every)?];
        for other in others {
            parts.push(other.join().expect("a part of the audit's read panicked")?);
        }
        Ok(parts)
    })?;
    Ok((position, parts))
}

/// Gives `f` every lead's path in the model (budgets included), in lead order, read on
/// `conn` alone: what a rebuild folds, inside its own transaction, once caught up. Each path
/// is dropped once `f` is done with it.
pub(crate) fn each_of_every_path(
    conn: &Connection,
    f: &mut dyn FnMut(LeadPath) -> rusqlite::Result<()>,
) -> rusqlite::Result<()> {
    let everything = AuditDefinition::new(
        DateTime::<Utc>::MIN_UTC,
        DateTime::<Utc>::MAX_UTC,
        DateTime::<Utc>::MAX_UTC,
    );
    let position = position_of(conn, &everything);
    each_path(conn, &everything, true, position, (None, None), f)
}

/// Below this many leads a model is read in one part.
const PARALLEL_READ_MIN: i64 = 20_000;

/// About how many leads the model holds (0 when not known), and the lead ids that split
/// them into one part per core, in order (none for a small model or a single core).
///
/// Counting them exactly, and walking to each bound, read the whole table: an eighth of an
/// audit's time at a million leads. So the count is the one `ANALYZE` recorded when the model
/// was last built (counted only where there is none), and the bounds split the ids' range
/// evenly, which splits the leads evenly for random ids and, for time-ordered ones, as evenly
/// as leads came in over time.
fn split_leads(conn: &Connection, parts_from: i64) -> rusqlite::Result<(i64, Vec<Vec<u8>>)> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get().min(4)) as u128;
    if cores < 2 {
        return Ok((0, Vec::new()));
    }
    // Each index's statistics start with its row count: the key's is the table's (a partial
    // index holds fewer).
    let analyzed: Option<i64> = conn
        .query_row(
            "SELECT max(CAST(stat AS INTEGER)) FROM sqlite_stat1
             WHERE tbl = 'transition_leads' AND idx IS NOT NULL",
            [],
            |r| r.get::<_, Option<i64>>(0),
        )
        .ok()
        .flatten();
    let leads = match analyzed {
        Some(leads) => leads,
        None => conn.query_row("SELECT count(*) FROM transition_leads", [], |r| r.get(0))?,
    };
    if leads < parts_from {
        return Ok((leads, Vec::new()));
    }
    let range: (Option<Vec<u8>>, Option<Vec<u8>>) = conn.query_row(
        "SELECT min(lead), max(lead) FROM transition_leads",
        [],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    let (Some(low), Some(high)) = range else {
        return Ok((leads, Vec::new()));
    };
    let as_number = |id: &[u8]| Uuid::from_slice(id).map_or(0, |u| u.as_u128());
    let (low, high) = (as_number(&low), as_number(&high));
    let bounds = (1..cores)
        .map(|k| {
            let at = low + (high - low) / cores * k;
            Uuid::from_u128(at).as_bytes().to_vec()
        })
        .collect();
    Ok((leads, bounds))
}

/// The paths of the cohort with lead ids in `[low, high)` (unbounded where `None`), in lead
/// order; room for `expected` of them taken at once.
fn load_part(
    conn: &Connection,
    definition: &AuditDefinition,
    budgets: bool,
    position: u64,
    (low, high): Range<'_>,
    expected: usize,
) -> rusqlite::Result<Vec<LeadPath>> {
    let mut paths = Vec::with_capacity(expected);
    each_path(conn, definition, budgets, position, (low, high), &mut |p| {
        paths.push(p);
        Ok(())
    })?;
    Ok(paths)
}

/// Gives `f` each path of the cohort with lead ids in `[low, high)` (unbounded where `None`),
/// in lead order, whole, as soon as it is read: what is done with a path and then dropped
/// needs no memory for the others.
fn each_path(
    conn: &Connection,
    definition: &AuditDefinition,
    budgets: bool,
    position: u64,
    (low, high): Range<'_>,
    f: &mut dyn FnMut(LeadPath) -> rusqlite::Result<()>,
) -> rusqlite::Result<()> {
    let scope = definition.scope.map(|u| u.as_bytes().to_vec());
    // The range as a condition on `lead`, written only where bounded so the key serves it.
    let range_of = |column: &str| {
        let mut sql = String::new();
        if low.is_some() {
            sql.push_str(&format!(" AND {column} >= :low"));
        }
        if high.is_some() {
            sql.push_str(&format!(" AND {column} < :high"));
        }
        sql
    };
    let to = micros(definition.to).min(micros(definition.as_of).saturating_add(1));
    let values: [(&str, &dyn rusqlite::ToSql); 7] = [
        (":from", &micros(definition.from)),
        (":to", &to),
        (":position", &(position as i64)),
        (":funnel", &definition.funnel),
        (":scope", &scope),
        (":low", &low),
        (":high", &high),
    ];
    // Each value the statement names (a range bound is in it only when set).
    let bind = |stmt: &mut rusqlite::Statement<'_>| -> rusqlite::Result<()> {
        for (name, value) in values {
            if let Some(i) = stmt.parameter_index(name)? {
                stmt.raw_bind_parameter(i, value)?;
            }
        }
        Ok(())
    };
    // The funnel, and for a manager's scope the leads they created or ever held (a superset
    // of theirs at any time): what the evaluation filters exactly after, read no further.
    let cohort = format!(
        "l.registered_at >= :from AND l.registered_at < :to AND l.position <= :position
        AND (:funnel IS NULL OR l.funnel = :funnel)
        AND (:scope IS NULL OR l.created_by = :scope
             OR EXISTS (SELECT 1 FROM assignments s WHERE s.lead = l.lead AND s.user = :scope)){}",
        range_of("l.lead")
    );
    // The lead's row holds its moves and budgets; only its assignments are rows of their own.
    let mut cohort = conn.prepare(&format!(
        "SELECT lead, {COHORT_COLUMNS}, moves, {} FROM transition_leads l WHERE {cohort}
         ORDER BY lead",
        if budgets { "budgets" } else { "NULL" }
    ))?;
    bind(&mut cohort)?;
    // The assignments are read in their key's order (lead, then revision), the cohort's order
    // too, at once and merged with the cohort: a row goes to the lead at hand, or to a later
    // one, or to none of the cohort. One pass over the table, instead of a look-up per lead.
    let mut assignments = conn.prepare(&format!(
        "SELECT lead, {ASSIGNMENT_COLUMNS} FROM assignments WHERE position <= :position{}
         ORDER BY lead, revision",
        range_of("lead")
    ))?;
    bind(&mut assignments)?;
    let mut assignments = Cursor::new(&mut assignments, AssignmentRow::read);
    let mut leads = cohort.raw_query();
    while let Some(r) = leads.next()? {
        let lead = Uuid::from_slice(r.get_ref(0)?.as_blob().map_err(rusqlite::Error::from)?)
            .unwrap_or_default();
        let cohort = CohortRow::read(r, 1)?;
        let mut moves: Vec<MoveRow> = decode_rows(r, 10)?;
        moves.retain(|m| m.position <= position);
        let budgets = if budgets {
            let mut rows: Vec<BudgetRow> = decode_rows(r, 11)?;
            rows.retain(|b| b.position <= position);
            rows
        } else {
            Vec::new()
        };
        f(LeadPath {
            lead,
            cohort,
            moves,
            assignments: assignments.rows_of(lead)?,
            budgets,
        })?;
    }
    Ok(())
}

/// One of a model's tables read in lead order beside the cohort.
struct Cursor<'s, T> {
    rows: rusqlite::Rows<'s>,
    read: fn(&rusqlite::Row<'_>, usize) -> rusqlite::Result<T>,
    /// The row read last, of a lead after the one asked for.
    ahead: Option<(Uuid, T)>,
    /// Gathers a lead's rows, which its path then takes in one allocation of their exact size:
    /// vectors grown row by row (room for four, then doubling) took memory the kernel zeroes
    /// on first touch, a third of an audit's time at a million leads.
    gathered: Vec<T>,
    done: bool,
}

impl<'s, T> Cursor<'s, T> {
    fn new(
        stmt: &'s mut rusqlite::Statement<'_>,
        read: fn(&rusqlite::Row<'_>, usize) -> rusqlite::Result<T>,
    ) -> Self {
        Self {
            rows: stmt.raw_query(),
            read,
            ahead: None,
            gathered: Vec::new(),
            done: false,
        }
    }

    /// The rows of `lead`, in revision order; the rows of leads before it are passed over.
    fn rows_of(&mut self, lead: Uuid) -> rusqlite::Result<Vec<T>> {
        loop {
            match self.ahead.take() {
                Some((l, row)) if l == lead => self.gathered.push(row),
                Some((l, row)) if l > lead => {
                    self.ahead = Some((l, row));
                    break;
                }
                Some(_) => {}
                None if self.done => break,
                None => match self.rows.next()? {
                    None => self.done = true,
                    Some(r) => {
                        let blob = r.get_ref(0)?.as_blob().map_err(rusqlite::Error::from)?;
                        let l = Uuid::from_slice(blob).unwrap_or_default();
                        // A row of a lead before this one belongs to none of the cohort.
                        if l >= lead {
                            self.ahead = Some((l, (self.read)(r, 1)?));
                        }
                    }
                },
            }
        }
        let mut rows = Vec::with_capacity(self.gathered.len());
        rows.append(&mut self.gathered);
        Ok(rows)
    }
}

/// The audit of `definition` over the `transitions` model's connection.
///
/// Each part of the model is evaluated as it is read, a lead's path dropped once counted, so
/// the audit needs memory for its counts, not for every path (1 GB at a million leads).
pub fn funnel_audit(
    conn: &Connection,
    definition: &AuditDefinition,
    departments: &Departments,
) -> rusqlite::Result<Audit> {
    funnel_audit_in_parts(conn, definition, departments, PARALLEL_READ_MIN)
}

/// [`funnel_audit`], in parts when the model has at least `parts_from` leads.
fn funnel_audit_in_parts(
    conn: &Connection,
    definition: &AuditDefinition,
    departments: &Departments,
    parts_from: i64,
) -> rusqlite::Result<Audit> {
    let (position, parts) = fold_paths_in_parts(
        conn,
        definition,
        false,
        &Tallies::default,
        &|tallies, position, path| {
            if let Some(o) = evaluate(definition, position, departments, &path) {
                tallies.add(o);
            }
        },
        parts_from,
    )?;
    let mut tallies = Tallies::default();
    for part in parts {
        tallies.merge(part);
    }
    Ok(tallies.finish(definition, position))
}

/// The paths the log gives, event by event: the from-log path of the audit. It keeps the same
/// rows as the `transitions` model, through the same mapping ([`row_of`]).
#[derive(Default)]
pub struct PathsFromLog {
    paths: BTreeMap<Uuid, LeadPath>,
    pending: HashMap<Uuid, compact_str::CompactString>,
    position: u64,
}

impl PathsFromLog {
    pub fn new() -> Self {
        Self::default()
    }

    /// Takes in the next event of the log.
    pub fn apply(&mut self, env: &Envelope) {
        self.apply_row(env.position.0, row_of(env));
    }

    /// Takes in the next event of the log as [`row_of`] maps it, recorded at `position`.
    pub fn apply_row(&mut self, position: u64, row: Option<(Uuid, Row)>) {
        self.position = position;
        let Some((lead, row)) = row else {
            return;
        };
        match row {
            Row::Registered {
                cohort,
                entered,
                assigned,
                budget,
            } => {
                self.paths.insert(
                    lead,
                    LeadPath {
                        lead,
                        cohort,
                        moves: vec![entered],
                        assignments: assigned.into_iter().collect(),
                        budgets: budget.into_iter().collect(),
                    },
                );
            }
            Row::Reason(reason) => {
                self.pending.insert(lead, reason);
            }
            Row::Moved(mut m) => {
                if m.to == "Disqualified" {
                    m.reason = self.pending.remove(&lead).unwrap_or_default();
                }
                if let Some(p) = self.paths.get_mut(&lead) {
                    p.moves.push(m);
                }
            }
            Row::Assigned(a) => {
                if let Some(p) = self.paths.get_mut(&lead) {
                    p.assignments.push(a);
                }
            }
            Row::Budget(b) => {
                if let Some(p) = self.paths.get_mut(&lead) {
                    p.budgets.push(b);
                }
            }
        }
    }

    /// The position of the last event taken in.
    pub fn position(&self) -> u64 {
        self.position
    }

    /// Every lead's path, in lead order.
    pub fn into_paths(self) -> Vec<LeadPath> {
        self.paths.into_values().collect()
    }
}

/// Events read from the log per batch by [`paths_from_log`].
const LOG_BATCH: usize = 8192;

/// Every lead's path straight from the log, up to `until` (or its head), decoded through the
/// codec without keys; `progress` hears the position after each batch. With the position read
/// up to, the same [`audit_paths`] takes them as it takes the model's.
///
/// The next batch is read while this one decodes, and a batch decodes in one chunk per core
/// (at most four); the paths take the events in log order all the same.
pub async fn paths_from_log(
    log: &dyn leadflow_store::EventStore,
    until: Option<u64>,
    mut progress: impl FnMut(u64, u64),
) -> Result<(u64, Vec<LeadPath>), String> {
    let head = log.head().await.map_err(|e| e.to_string())?.0;
    let until = until.map_or(head, |u| u.min(head));
    if until == 0 {
        return Ok((until, PathsFromLog::new().into_paths()));
    }
    // The rows go to a thread of their own, in log order, which folds them into the paths
    // while the next batch is read and decoded: the fold is the one part that cannot be
    // split, so it waits for nothing else.
    let (rows, taken) = std::sync::mpsc::sync_channel::<Vec<LogRow>>(2);
    let folder = std::thread::spawn(move || {
        let mut paths = PathsFromLog::new();
        for batch in taken {
            for (position, row) in batch {
                paths.apply_row(position, row);
            }
        }
        paths.into_paths()
    });
    let read = read_into(log, until, rows, &mut progress).await;
    let paths = folder
        .join()
        .map_err(|_| "the thread folding the paths panicked".to_owned())?;
    read.map(|()| (until, paths))
}

/// An event's position and the row it adds, with its lead, if any.
type LogRow = (u64, Option<(Uuid, Row)>);

/// The reading half of [`paths_from_log`]: the log up to `until`, decoded and mapped to rows
/// batch by batch, each sent to `rows` in log order.
async fn read_into(
    log: &dyn leadflow_store::EventStore,
    until: u64,
    rows: std::sync::mpsc::SyncSender<Vec<LogRow>>,
    progress: &mut impl FnMut(u64, u64),
) -> Result<(), String> {
    let mut batch = log
        .read_all(leadflow_store::Position::START, LOG_BATCH)
        .await
        .map_err(|e| e.to_string())?;
    loop {
        batch.retain(|e| e.position.0 <= until);
        let Some(last) = batch.last().map(|e| e.position) else {
            break;
        };
        let more = last.0 < until;
        let (next, decoded) = tokio::join!(
            biased;
            async {
                if more {
                    log.read_all(last, LOG_BATCH).await.map_err(|e| e.to_string())
                } else {
                    Ok(Vec::new())
                }
            },
            async {
                // Each chunk maps its events to rows too: only the small rows come back.
                crate::in_chunks("decode-audit", std::mem::take(&mut batch), |e| {
                    let position = e.position.0;
                    if !ROW_EVENT_TYPES.contains(&e.event_type.as_str()) {
                        // It adds no row, whatever it holds: left undecoded.
                        return Ok((position, None));
                    }
                    match leadflow_codec::decode_with_keys(e, &leadflow_codec::WithoutPersonalData) {
                        Ok(leadflow_codec::Opened::Envelope(env)) => Ok((position, row_of(&env))),
                        Ok(leadflow_codec::Opened::NeedsKey { subject, .. }) => Err(format!(
                            "a key for {subject} was asked of keys that answer all"
                        )),
                        Err(e) => Err(e.to_string()),
                    }
                })
            }
        );
        let decoded: Vec<_> = decoded.into_iter().collect::<Result<_, _>>()?;
        rows.send(decoded)
            .map_err(|_| "the thread folding the paths stopped".to_owned())?;
        progress(last.0, until);
        if !more {
            break;
        }
        batch = next?;
    }
    Ok(())
}

/// Where a lead stands at the audit's time.
#[derive(Clone, Debug, PartialEq, Eq)]
enum End {
    InQualification,
    /// Open in the step of this index (Distribution, Handoff, AwaitingSale).
    Open(usize),
    Won,
    Lost {
        stage: String,
        reason: String,
    },
}

/// One lead of the cohort, audited.
struct Outcome {
    lead: Uuid,
    key: String,
    excluded: bool,
    /// When each step was first reached (business time) and whether by a jump.
    reached: [Option<(i64, bool)>; 5],
    registered_at: i64,
    end: End,
}

/// The lead `path` as `definition` audits it at `position`; `None` when it is not in the
/// cohort.
fn evaluate(
    definition: &AuditDefinition,
    position: u64,
    departments: &Departments,
    path: &LeadPath,
) -> Option<Outcome> {
    let c = &path.cohort;
    let as_of = micros(definition.as_of);
    let counts = |at: i64, p: u64| at <= as_of && p <= position;
    if !(c.registered_at >= micros(definition.from)
        && c.registered_at < micros(definition.to)
        && counts(c.registered_at, c.position))
    {
        return None;
    }
    let same = |want: &Option<String>, have: &str| want.as_deref().is_none_or(|w| w == have);
    if !(same(&definition.funnel, &c.funnel)
        && same(&definition.source, &c.source)
        && same(&definition.channel, &c.channel)
        && same(&definition.quality, &c.quality)
        && definition.advertising.is_none_or(|a| a == c.advertising))
    {
        return None;
    }
    if let Some(user) = definition.scope {
        let now = path
            .assignments
            .iter()
            .rfind(|a| a.position <= position)
            .map(|a| a.user);
        if c.created_by != user && now != Some(user) {
            return None;
        }
    }
    let manager = match definition.manager_basis {
        ManagerBasis::Registration => c.responsible,
        ManagerBasis::AsOf => path
            .assignments
            .iter()
            .rfind(|a| counts(a.at, a.position))
            .map(|a| a.user),
    };
    let department = manager.and_then(|m| departments.get(&m)).cloned();
    if definition.manager.is_some_and(|m| manager != Some(m))
        || definition
            .department
            .as_ref()
            .is_some_and(|d| department.as_ref() != Some(d))
    {
        return None;
    }
    let key = match definition.group_by {
        GroupBy::None => String::new(),
        GroupBy::Source => c.source.to_string(),
        GroupBy::Channel => c.channel.to_string(),
        GroupBy::Funnel => c.funnel.to_string(),
        GroupBy::Manager => manager.map(|m| m.to_string()).unwrap_or_default(),
        GroupBy::Department => department.unwrap_or_default(),
        GroupBy::Week => from_micros(c.registered_at).format("%G-W%V").to_string(),
        GroupBy::Month => from_micros(c.registered_at).format("%Y-%m").to_string(),
    };
    let moves: Vec<&MoveRow> = path
        .moves
        .iter()
        .filter(|m| counts(m.at, m.position))
        .collect();
    let excluded = definition.exclude.iter().any(|x| match x {
        Exclusion::EverDisqualified => moves.iter().any(|m| m.to == "Disqualified"),
        Exclusion::EverReopened => moves.iter().any(|m| m.via == "reopened"),
        Exclusion::EverJumped => moves.iter().any(|m| m.jump),
    });
    let mut reached: [Option<(i64, bool)>; 5] = [None; 5];
    // Whether step `s`, reached at `at`, is within its window of the step before it.
    let in_window = |reached: &[Option<(i64, bool)>; 5], s: usize, at: i64| {
        let Some(days) = definition.windows_days[s] else {
            return true;
        };
        let before = if s == 0 {
            Some(c.registered_at)
        } else {
            reached[s - 1].map(|r| r.0)
        };
        before.is_some_and(|b| at - b <= i64::from(days) * DAY_MICROS)
    };
    let mut strict_ended = false;
    for m in &moves {
        let steps = steps_of(&m.from, &m.to);
        match definition.mode {
            StepMode::Strict => {
                if strict_ended || (m.from.is_empty() && steps.is_empty()) {
                    continue;
                }
                let frontier = reached.iter().take_while(|r| r.is_some()).count();
                if steps.first() != Some(&frontier) {
                    strict_ended = true;
                    continue;
                }
                for s in steps {
                    if !in_window(&reached, s, m.at) {
                        strict_ended = true;
                        break;
                    }
                    reached[s] = Some((m.at, m.jump));
                }
            }
            StepMode::Ordered | StepMode::Any => {
                for s in steps {
                    let in_order =
                        definition.mode == StepMode::Any || s == 0 || reached[s - 1].is_some();
                    // A step passed over on the way is reached by a jump only when the move
                    // was one; the designed skip of Distribution is not.
                    if in_order && reached[s].is_none() && in_window(&reached, s, m.at) {
                        reached[s] = Some((m.at, m.jump));
                    }
                }
            }
        }
    }
    let last = moves.last();
    let end = match last.map(|m| m.to.as_str()).unwrap_or("") {
        "Disqualified" | "NeedAbsent" => End::Lost {
            stage: last.map(|m| m.to.to_string()).unwrap_or_default(),
            reason: last.map(|m| m.reason.to_string()).unwrap_or_default(),
        },
        "NeedSatisfied" => End::Won,
        other => match rank(other) {
            Some(r @ 2..=4) => End::Open(r - 1),
            _ => End::InQualification,
        },
    };
    Some(Outcome {
        lead: path.lead,
        key,
        excluded,
        reached,
        registered_at: c.registered_at,
        end,
    })
}

/// The nearest-rank percentile `p` (0-100) of sorted `values`.
pub(crate) fn percentile(sorted: &[i64], p: usize) -> Option<i64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (p * sorted.len()).div_ceil(100).max(1);
    Some(sorted[rank - 1])
}

/// The audit of `definition` over `paths` (in lead order) read up to `position`.
pub fn audit_paths(
    definition: &AuditDefinition,
    position: u64,
    departments: &Departments,
    paths: &[LeadPath],
) -> Audit {
    let mut tallies = Tallies::default();
    for o in paths
        .iter()
        .filter_map(|p| evaluate(definition, position, departments, p))
    {
        tallies.add(o);
    }
    tallies.finish(definition, position)
}

/// An audit's counts per group, as the leads' outcomes come in, in any order and in any
/// number of parts: what they add up to does not depend on either.
#[derive(Default)]
struct Tallies(BTreeMap<String, Tally>);

#[derive(Default)]
struct Tally {
    registered: u64,
    excluded: u64,
    open_in_qualification: u64,
    reached: [u64; 5],
    by_jump: [u64; 5],
    open: [u64; 5],
    seconds: [Vec<i64>; 5],
    losses: BTreeMap<(String, String), u64>,
}

impl Tallies {
    fn add(&mut self, o: Outcome) {
        let tally = self.0.entry(o.key).or_default();
        if o.excluded {
            tally.excluded += 1;
            return;
        }
        tally.registered += 1;
        for (s, how) in o.reached.iter().enumerate() {
            let Some((at, jump)) = how else { continue };
            tally.reached[s] += 1;
            tally.by_jump[s] += u64::from(*jump);
            let before = if s == 0 {
                Some(o.registered_at)
            } else {
                o.reached[s - 1].map(|r| r.0)
            };
            if let Some(b) = before.filter(|b| b <= at) {
                tally.seconds[s].push((at - b) / 1_000_000);
            }
        }
        match o.end {
            End::Lost { stage, reason } => *tally.losses.entry((stage, reason)).or_default() += 1,
            End::InQualification => tally.open_in_qualification += 1,
            End::Open(s) => tally.open[s] += 1,
            End::Won => {}
        }
    }

    fn merge(&mut self, other: Tallies) {
        for (key, o) in other.0 {
            let t = self.0.entry(key).or_default();
            t.registered += o.registered;
            t.excluded += o.excluded;
            t.open_in_qualification += o.open_in_qualification;
            for s in 0..STEPS.len() {
                t.reached[s] += o.reached[s];
                t.by_jump[s] += o.by_jump[s];
                t.open[s] += o.open[s];
                t.seconds[s].extend_from_slice(&o.seconds[s]);
            }
            for (loss, leads) in o.losses {
                *t.losses.entry(loss).or_default() += leads;
            }
        }
    }

    fn finish(self, definition: &AuditDefinition, position: u64) -> Audit {
        let permille = |n: u64, d: u64| (n * 1000).checked_div(d).unwrap_or(0);
        let groups = self
            .0
            .into_iter()
            .map(|(key, mut t)| AuditGroup {
                steps: (0..STEPS.len())
                    .map(|i| {
                        t.seconds[i].sort_unstable();
                        StepCount {
                            step: STEPS[i],
                            reached: t.reached[i],
                            by_jump: t.by_jump[i],
                            open: t.open[i],
                            step_conversion_permille: permille(
                                t.reached[i],
                                if i == 0 {
                                    t.registered
                                } else {
                                    t.reached[i - 1]
                                },
                            ),
                            overall_conversion_permille: permille(t.reached[i], t.registered),
                            median_seconds: percentile(&t.seconds[i], 50),
                            p90_seconds: percentile(&t.seconds[i], 90),
                        }
                    })
                    .collect(),
                losses: Loss::listed(t.losses),
                key,
                registered: t.registered,
                excluded: t.excluded,
                open_in_qualification: t.open_in_qualification,
            })
            .collect();
        Audit {
            definition: definition.canonical(),
            definition_hash: definition.hash(),
            position,
            groups,
        }
    }
}

/// The count of an audit group whose leads a drill-down lists.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Bucket {
    Registered,
    Excluded,
    /// Reached the step of this index.
    Reached(usize),
    ReachedByJump(usize),
    /// Open in the step of this index.
    Open(usize),
    OpenInQualification,
    /// Lost in `stage` for `reason` ('' for NeedAbsent).
    Lost {
        stage: String,
        reason: String,
    },
}

/// A page of a drill-down: lead ids in id order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LeadPage {
    pub leads: Vec<Uuid>,
    pub total_count: u64,
    pub has_next: bool,
    pub position: u64,
}

/// Which leads a drill-down lists: those behind `bucket` of the group `key`, `first` of them
/// after the lead `after`, in id order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DrillDown {
    pub key: String,
    pub bucket: Bucket,
    pub after: Option<Uuid>,
    pub first: usize,
}

/// The page of leads `page` asks for, of the audit of `definition` over `paths` (in lead
/// order, as [`load_paths`] gives them).
pub fn drill_down(
    definition: &AuditDefinition,
    position: u64,
    departments: &Departments,
    paths: &[LeadPath],
    page: &DrillDown,
) -> LeadPage {
    let mut paging = Paging::of(page);
    for path in paths {
        paging.take(definition, position, departments, path);
    }
    paging.page(position)
}

/// [`drill_down`] over the `transitions` model's connection, each lead's path dropped once
/// looked at: memory for one page, not for every path (1 GB at a million leads).
pub fn drill_down_in_model(
    conn: &Connection,
    definition: &AuditDefinition,
    departments: &Departments,
    page: &DrillDown,
) -> rusqlite::Result<LeadPage> {
    drill_down_in_parts(conn, definition, departments, page, PARALLEL_READ_MIN)
}

/// [`drill_down_in_model`], in parts when the model has at least `parts_from` leads.
fn drill_down_in_parts(
    conn: &Connection,
    definition: &AuditDefinition,
    departments: &Departments,
    page: &DrillDown,
    parts_from: i64,
) -> rusqlite::Result<LeadPage> {
    let (position, parts) = fold_paths_in_parts(
        conn,
        definition,
        false,
        &|| Paging::of(page),
        &|paging, position, path| paging.take(definition, position, departments, &path),
        parts_from,
    )?;
    let mut parts = parts.into_iter();
    let mut paging = parts.next().unwrap_or_else(|| Paging::of(page));
    for part in parts {
        paging.merge(part);
    }
    Ok(paging.page(position))
}

/// A drill-down's page gathered as the leads come, in id order: every lead behind the count
/// is counted, the first `first` after the cursor kept.
struct Paging<'a> {
    page: &'a DrillDown,
    total_count: u64,
    leads: Vec<Uuid>,
    has_next: bool,
}

impl<'a> Paging<'a> {
    fn of(page: &'a DrillDown) -> Self {
        Self {
            page,
            total_count: 0,
            leads: Vec::new(),
            has_next: false,
        }
    }

    /// Looks at the next lead's path.
    fn take(
        &mut self,
        definition: &AuditDefinition,
        position: u64,
        departments: &Departments,
        path: &LeadPath,
    ) {
        let Some(o) = evaluate(definition, position, departments, path) else {
            return;
        };
        if o.key == self.page.key && in_bucket(&o, &self.page.bucket) {
            self.add(o.lead);
        }
    }

    fn add(&mut self, lead: Uuid) {
        self.total_count += 1;
        if self.page.after.is_some_and(|a| lead <= a) {
            return;
        }
        if self.leads.len() < self.page.first {
            self.leads.push(lead);
        } else {
            self.has_next = true;
        }
    }

    /// Adds what a later part of the model (higher lead ids) gathered.
    fn merge(&mut self, later: Paging<'_>) {
        self.total_count += later.total_count;
        for lead in later.leads {
            if self.leads.len() < self.page.first {
                self.leads.push(lead);
            } else {
                self.has_next = true;
            }
        }
        self.has_next |= later.has_next;
    }

    fn page(self, position: u64) -> LeadPage {
        LeadPage {
            leads: self.leads,
            total_count: self.total_count,
            has_next: self.has_next,
            position,
        }
    }
}

/// Whether the lead `o` tells of counts in `bucket`.
fn in_bucket(o: &Outcome, bucket: &Bucket) -> bool {
    match bucket {
        Bucket::Excluded => o.excluded,
        _ if o.excluded => false,
        Bucket::Registered => true,
        Bucket::Reached(s) => o.reached.get(*s).is_some_and(|r| r.is_some()),
        Bucket::ReachedByJump(s) => o.reached.get(*s).is_some_and(|r| r.is_some_and(|r| r.1)),
        Bucket::Open(s) => o.end == End::Open(*s),
        Bucket::OpenInQualification => o.end == End::InQualification,
        Bucket::Lost { stage, reason } => {
            matches!(&o.end, End::Lost { stage: s, reason: r } if s == stage && r == reason)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_move_reaches_its_stage_and_every_step_it_passes_forward() {
        for (from, to, steps) in [
            ("", "Qualification", vec![]),
            ("Qualification", "Distribution", vec![0, 1]),
            ("Qualification", "Handoff", vec![0, 1, 2]),
            ("Qualification", "AwaitingSale", vec![0, 1, 2, 3]),
            ("Distribution", "Handoff", vec![2]),
            ("Handoff", "AwaitingSale", vec![3]),
            ("AwaitingSale", "NeedSatisfied", vec![4]),
            ("AwaitingSale", "Distribution", vec![1]),
            ("Handoff", "Disqualified", vec![]),
            ("Disqualified", "Qualification", vec![]),
            ("Handoff", "Distribution", vec![1]),
        ] {
            assert_eq!(steps_of(from, to), steps, "{from} -> {to}");
        }
    }

    use chrono::TimeZone;

    const HOUR: i64 = 3_600_000_000;

    /// Hand-built paths with known answers: times in hours after the cohort's start, positions
    /// in the order the moves are written unless given.
    struct Log {
        position: u64,
        paths: Vec<LeadPath>,
    }

    /// A model read in parts (one per core, each on its own connection) gives the paths read
    /// in one: every lead once, in order, with all its rows, for any cohort.
    #[test]
    fn a_model_read_in_parts_reads_as_in_one() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("transitions.db");
        let conn = Connection::open(&file).unwrap();
        conn.execute_batch(include_str!("../../../projections/transitions.v7.sql"))
            .unwrap();
        conn.execute_batch(
            "CREATE TABLE projection_state (name TEXT PRIMARY KEY, position INTEGER);
             INSERT INTO projection_state VALUES ('transitions', 900);",
        )
        .unwrap();
        let stages = ["Qualification", "Distribution", "Handoff", "AwaitingSale"];
        let mut position = 0i64;
        for i in 0..97u128 {
            // Ids spread over the key space, as version 4 ids are, and some in a run, as
            // version 7 ids are.
            let lead = Uuid::from_u128(
                i.wrapping_mul(0x9e37_79b9_7f4a_7c15_f39c_c060_5ced_c835) ^ (i % 3),
            );
            let lead = lead.as_bytes().as_slice();
            let registered = 1_000 + i as i64 * 10;
            position += 1;
            let cohort_position = position;
            let mut moves = Vec::new();
            for (r, to) in stages.iter().take(1 + (i % 4) as usize).enumerate() {
                position += 1;
                moves.push(MoveRow {
                    revision: r as u64,
                    position: position as u64,
                    // Hours apart, more for some leads: stays of different lengths.
                    at: registered + r as i64 * 3_600_000_000 * (1 + (i % 3) as i64),
                    from: "".into(),
                    to: (*to).into(),
                    via: "qualified".into(),
                    jump: false,
                    reason: "".into(),
                    actor: user(2),
                });
            }
            if i % 5 == 0 {
                position += 1;
                conn.execute(
                    "INSERT INTO assignments VALUES (?1, 9, ?2, ?3, ?4)",
                    rusqlite::params![
                        lead,
                        position,
                        registered + 9,
                        user(3).as_bytes().as_slice()
                    ],
                )
                .unwrap();
            }
            let mut budgets = Vec::new();
            if i % 7 == 0 {
                position += 1;
                budgets.push(BudgetRow {
                    revision: 8,
                    position: position as u64,
                    at: registered + 8,
                    budget_minor: Some(500),
                });
            }
            conn.execute(
                "INSERT INTO transition_leads VALUES (?1, 'default', 'web', '', ?2, NULL, 'Hot', 0,
                     ?3, ?4, 0, 0, '', '', NULL, NULL, 0, 0, ?5, ?6, ?7)",
                rusqlite::params![
                    lead,
                    user(1).as_bytes().as_slice(),
                    registered,
                    cohort_position,
                    crate::rows::encode_rows(&moves),
                    crate::rows::encode_rows(&budgets),
                    crate::rows::encode_rows::<crate::rows::CommandRow>(&[]),
                ],
            )
            .unwrap();
        }
        let everyone = AuditDefinition::new(
            DateTime::<Utc>::MIN_UTC,
            DateTime::<Utc>::MAX_UTC,
            DateTime::<Utc>::MAX_UTC,
        );
        let cohorts = [
            everyone.clone(),
            AuditDefinition {
                as_of_position: Some(200),
                ..everyone.clone()
            },
            AuditDefinition {
                scope: Some(user(3)),
                ..everyone.clone()
            },
            AuditDefinition::new(
                crate::from_micros(1_200),
                crate::from_micros(1_600),
                DateTime::<Utc>::MAX_UTC,
            ),
        ];
        // Counted, then with the count `ANALYZE` records (as a rebuild leaves it), once stale.
        for analyzed in [false, true] {
            if analyzed {
                conn.execute_batch(
                    "ANALYZE; DELETE FROM transition_leads WHERE registered_at % 110 = 0",
                )
                .unwrap();
            }
            let reader = crate::open_read_only(&file).unwrap();
            for definition in &cohorts {
                for budgets in [false, true] {
                    let whole = load_in_parts(&reader, definition, budgets, i64::MAX).unwrap();
                    let parts = load_in_parts(&reader, definition, budgets, 1).unwrap();
                    assert!(!whole.1.is_empty());
                    assert_eq!(parts, whole, "{definition:?}");
                }
                // The audit counted part by part as the paths are read, none of them kept,
                // is the audit of the paths read whole.
                let none = Departments::new();
                let (position, whole) =
                    load_in_parts(&reader, definition, false, i64::MAX).unwrap();
                let expected = audit_paths(definition, position, &none, &whole).to_json();
                for parts_from in [i64::MAX, 1] {
                    let streamed =
                        funnel_audit_in_parts(&reader, definition, &none, parts_from).unwrap();
                    assert_eq!(streamed.to_json(), expected, "{definition:?}");
                }
                // So is a drill-down, page by page: each lead looked at and dropped, in one
                // part and in several.
                let buckets = [
                    Bucket::Registered,
                    Bucket::Reached(1),
                    Bucket::Open(1),
                    Bucket::OpenInQualification,
                ];
                for bucket in buckets {
                    let mut after = None;
                    loop {
                        let page = DrillDown {
                            key: String::new(),
                            bucket: bucket.clone(),
                            after,
                            first: 7,
                        };
                        let expected = drill_down(definition, position, &none, &whole, &page);
                        if bucket == Bucket::Registered {
                            assert!(expected.total_count > 0, "{definition:?}");
                        }
                        for parts_from in [i64::MAX, 1] {
                            let streamed =
                                drill_down_in_parts(&reader, definition, &none, &page, parts_from)
                                    .unwrap();
                            assert_eq!(streamed, expected, "{definition:?} {page:?}");
                        }
                        if !expected.has_next {
                            break;
                        }
                        after = expected.leads.last().copied();
                    }
                }
            }
            // The reports that fold each lead's path as it is read (and drop it) give what they
            // give over the paths read whole, in one part and in several.
            use crate::reports::{self as r, Scope};
            let thresholds = BTreeMap::from([
                (("default".to_owned(), "Qualification".to_owned()), 1),
                (("default".to_owned(), "Handoff".to_owned()), 2),
            ]);
            let later = crate::from_micros(1_500);
            let default_funnel = Scope {
                funnel: Some("default".to_owned()),
                ..Scope::default()
            };
            let hours = crate::from_micros(1_000 + 4 * 3_600_000_000);
            for (as_of, scope) in [
                (DateTime::<Utc>::MAX_UTC, Scope::default()),
                (hours, default_funnel),
                (later, Scope::default()),
                (
                    later,
                    Scope {
                        owner: Some(user(3)),
                        registered_from: Some(1_100),
                        ..Scope::default()
                    },
                ),
            ] {
                let (position, whole) = r::paths_in(&reader, as_of, &scope).unwrap();
                let states = r::states_at(&whole, crate::micros(as_of), &scope);
                let times = r::time_in_stage(&whole, as_of, &scope);
                let breaches = r::sla_breaches(&whole, &thresholds, as_of, &scope);
                assert!(!states.is_empty() && !times.is_empty(), "{scope:?}");
                assert!(
                    breaches.iter().any(|b| b.stays > 0 || b.open > 0),
                    "{scope:?}"
                );
                if as_of == hours {
                    // Ended stays of different lengths, some over the threshold, and leads
                    // over it still in the stage.
                    assert!(times.iter().any(|t| t.median_seconds != t.p90_seconds));
                    assert!(breaches
                        .iter()
                        .any(|b| b.breached > 0 && b.breached < b.stays));
                    assert!(breaches.iter().any(|b| b.open_breached > 0));
                }
                for parts_from in [i64::MAX, 1] {
                    assert_eq!(
                        r::states_in_parts(&reader, as_of, &scope, &from(parts_from)).unwrap(),
                        (position, states.clone())
                    );
                    assert_eq!(
                        r::time_in_stage_in_parts(&reader, as_of, &scope, &from(parts_from))
                            .unwrap(),
                        (position, times.clone())
                    );
                    assert_eq!(
                        r::sla_breaches_in_parts(
                            &reader,
                            &thresholds,
                            as_of,
                            &scope,
                            &from(parts_from)
                        )
                        .unwrap(),
                        (position, breaches.clone())
                    );
                }
            }
            if std::thread::available_parallelism().map_or(1, |n| n.get()) > 1 {
                // Several parts were read, not one that fell back.
                let (_, parts) =
                    fold_paths_in_parts(&reader, &everyone, false, &|| (), &|_, _, _| (), 1)
                        .unwrap();
                assert!(parts.len() > 1);
                let (leads, bounds) = split_leads(&reader, 1).unwrap();
                assert_eq!(leads, 97, "the count ANALYZE recorded, stale or not");
                assert!(!bounds.is_empty());
            }
        }
    }

    fn t0() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, 2, 0, 0, 0).unwrap()
    }

    /// How a report reads the model: in parts once it has `parts_from` leads.
    #[allow(clippy::type_complexity)]
    fn from<A: Send>(
        parts_from: i64,
    ) -> impl Fn(
        &Connection,
        &AuditDefinition,
        bool,
        &(dyn Fn() -> A + Sync),
        &(dyn Fn(&mut A, u64, LeadPath) + Sync),
    ) -> rusqlite::Result<(u64, Vec<A>)> {
        move |c, d, b, i, s| fold_paths_in_parts(c, d, b, i, s, parts_from)
    }

    fn user(n: u8) -> Uuid {
        Uuid::from_bytes([n; 16])
    }

    impl Log {
        fn new() -> Self {
            Self {
                position: 0,
                paths: Vec::new(),
            }
        }

        /// A lead registered `hours` after the start by user 1 for user `manager`, moving
        /// through `moves` (hours, to, via, jump, reason).
        fn lead(
            &mut self,
            n: u8,
            hours: i64,
            manager: u8,
            moves: &[(i64, &str, &str, bool, &str)],
        ) {
            self.position += 1;
            let registered_at = micros(t0()) + hours * HOUR;
            let mut path = LeadPath {
                lead: Uuid::from_bytes([n; 16]),
                cohort: CohortRow {
                    funnel: "default".into(),
                    source: if n.is_multiple_of(2) {
                        "website"
                    } else {
                        "call"
                    }
                    .into(),
                    channel: Default::default(),
                    created_by: user(1),
                    responsible: Some(user(manager)),
                    quality: "Unsorted".into(),
                    advertising: false,
                    registered_at,
                    position: self.position,
                },
                moves: vec![MoveRow {
                    revision: 0,
                    position: self.position,
                    at: registered_at,
                    from: Default::default(),
                    to: "Qualification".into(),
                    via: "registered".into(),
                    jump: false,
                    reason: Default::default(),
                    actor: user(1),
                }],
                assignments: vec![AssignmentRow {
                    revision: 0,
                    position: self.position,
                    at: registered_at,
                    user: user(manager),
                }],
                budgets: Vec::new(),
            };
            for (i, (h, to, via, jump, reason)) in moves.iter().enumerate() {
                self.position += 1;
                let from = path.moves.last().unwrap().to.clone();
                path.moves.push(MoveRow {
                    revision: i as u64 + 1,
                    position: self.position,
                    at: micros(t0()) + h * HOUR,
                    from,
                    to: (*to).into(),
                    via: (*via).into(),
                    jump: *jump,
                    reason: (*reason).into(),
                    actor: user(1),
                });
            }
            self.paths.push(path);
            self.paths.sort_by_key(|p| p.lead);
        }

        fn audit(&self, d: &AuditDefinition) -> Audit {
            let position = d
                .as_of_position
                .map_or(self.position, |p| p.min(self.position));
            audit_paths(d, position, &Departments::new(), &self.paths)
        }
    }

    fn definition() -> AuditDefinition {
        AuditDefinition::new(
            t0(),
            t0() + chrono::Duration::days(7),
            t0() + chrono::Duration::days(30),
        )
    }

    /// The five leads every mode is checked on.
    fn five() -> Log {
        let mut log = Log::new();
        // a: straight through, won.
        log.lead(
            1,
            0,
            2,
            &[
                (1, "Distribution", "qualified", false, ""),
                (5, "Handoff", "startHandoff", false, ""),
                (29, "AwaitingSale", "transferToSale", false, ""),
                (53, "NeedSatisfied", "dealWon", false, ""),
            ],
        );
        // b: qualified straight to Handoff, the deal lost and won again.
        log.lead(
            2,
            0,
            2,
            &[
                (2, "Handoff", "qualified", false, ""),
                (3, "AwaitingSale", "transferToSale", false, ""),
                (10, "Distribution", "dealLost", false, ""),
                (12, "Handoff", "startHandoff", false, ""),
                (13, "AwaitingSale", "transferToSale", false, ""),
                (20, "NeedSatisfied", "dealWon", false, ""),
            ],
        );
        // c: converted from Qualification, open in AwaitingSale.
        log.lead(3, 0, 3, &[(1, "AwaitingSale", "converted", true, "")]);
        // d: disqualified, reopened, qualified two days later: open in Distribution.
        log.lead(
            4,
            0,
            3,
            &[
                (1, "Disqualified", "disqualified", false, "no-budget"),
                (2, "Qualification", "reopened", false, ""),
                (50, "Distribution", "qualified", false, ""),
            ],
        );
        // e: never touched: open in Qualification. f: lost for good.
        log.lead(5, 0, 3, &[]);
        log.lead(
            6,
            1,
            2,
            &[(3, "Disqualified", "disqualified", false, "spam")],
        );
        log
    }

    fn reached(a: &Audit) -> Vec<u64> {
        a.groups[0].steps.iter().map(|s| s.reached).collect()
    }

    #[test]
    fn each_mode_counts_the_steps_it_defines() {
        let log = five();
        let ordered = log.audit(&definition());
        let g = &ordered.groups[0];
        assert_eq!(
            (g.registered, g.excluded, g.open_in_qualification),
            (6, 0, 1)
        );
        assert_eq!(
            reached(&ordered),
            vec![4, 4, 3, 3, 2],
            "{}",
            ordered.to_json()
        );
        assert_eq!(
            g.steps.iter().map(|s| s.by_jump).collect::<Vec<_>>(),
            vec![1, 1, 1, 1, 0]
        );
        assert_eq!(
            g.steps.iter().map(|s| s.open).collect::<Vec<_>>(),
            vec![0, 1, 0, 1, 0]
        );
        assert_eq!(
            g.losses,
            vec![Loss {
                stage: "Disqualified".into(),
                reason: "spam".into(),
                leads: 1
            }]
        );
        // Strict: b's lost deal sends it back, so its second win does not count; d's way
        // ended at its disqualification.
        let strict = log.audit(&AuditDefinition {
            mode: StepMode::Strict,
            ..definition()
        });
        assert_eq!(
            reached(&strict),
            vec![3, 3, 3, 3, 1],
            "{}",
            strict.to_json()
        );
        // Any order counts what ordered counts here (every step after its previous one).
        let any = log.audit(&AuditDefinition {
            mode: StepMode::Any,
            ..definition()
        });
        assert_eq!(reached(&any), reached(&ordered));
        assert_ne!(any.definition_hash, ordered.definition_hash);
    }

    #[test]
    fn exclusions_leave_leads_out_and_count_them_apart() {
        let log = five();
        for (exclude, excluded, first_step) in [
            (vec![Exclusion::EverDisqualified], 2, 3),
            (vec![Exclusion::EverReopened], 1, 3),
            (vec![Exclusion::EverJumped], 1, 3),
            (
                vec![Exclusion::EverJumped, Exclusion::EverDisqualified],
                3,
                2,
            ),
        ] {
            let a = log.audit(&AuditDefinition {
                exclude: exclude.clone(),
                ..definition()
            });
            let g = &a.groups[0];
            assert_eq!(
                (g.registered, g.excluded),
                (6 - excluded, excluded),
                "{exclude:?}"
            );
            assert_eq!(g.steps[0].reached, first_step, "{exclude:?}");
        }
        // The canonical form does not depend on how the exclusions were listed.
        let one = AuditDefinition {
            exclude: vec![Exclusion::EverJumped, Exclusion::EverDisqualified],
            ..definition()
        };
        let other = AuditDefinition {
            exclude: vec![
                Exclusion::EverDisqualified,
                Exclusion::EverJumped,
                Exclusion::EverJumped,
            ],
            ..definition()
        };
        assert_eq!(one.hash(), other.hash());
    }

    #[test]
    fn a_window_drops_a_step_reached_too_late_and_everything_after_it() {
        let log = five();
        // Qualification done within a day of registration: d (two days) misses it.
        let mut windows = [None; 5];
        windows[0] = Some(1);
        let a = log.audit(&AuditDefinition {
            windows_days: windows,
            ..definition()
        });
        assert_eq!(reached(&a), vec![3, 3, 3, 3, 2]);
        // AwaitingSale within a day of Handoff: a took 24 h (in), b 1 h (in).
        let mut windows = [None; 5];
        windows[3] = Some(1);
        assert_eq!(
            reached(&log.audit(&AuditDefinition {
                windows_days: windows,
                ..definition()
            })),
            vec![4, 4, 3, 3, 2]
        );
        // NeedSatisfied within a day of AwaitingSale: a (24 h) is in, b's first AwaitingSale
        // was 17 h before its win: in as well. Zero days: neither.
        let mut windows = [None; 5];
        windows[4] = Some(0);
        assert_eq!(
            reached(&log.audit(&AuditDefinition {
                windows_days: windows,
                ..definition()
            })),
            vec![4, 4, 3, 3, 0]
        );
        let mut too_long = [None; 5];
        too_long[1] = Some(40_000);
        assert!(AuditDefinition {
            windows_days: too_long,
            ..definition()
        }
        .validate()
        .is_err());
    }

    #[test]
    fn times_between_steps_are_the_median_and_p90_by_nearest_rank() {
        let a = five().audit(&definition());
        let first = &a.groups[0].steps[0];
        // Qualification done after 1 h (a, c), 2 h (b), 50 h (d).
        assert_eq!(
            (first.median_seconds, first.p90_seconds),
            (Some(3600), Some(180_000))
        );
        let won = &a.groups[0].steps[4];
        // NeedSatisfied after AwaitingSale: a 24 h, b 17 h (from its first AwaitingSale).
        assert_eq!(
            (won.median_seconds, won.p90_seconds),
            (Some(61_200), Some(86_400))
        );
        assert_eq!(percentile(&[], 50), None);
        assert_eq!(percentile(&[7], 90), Some(7));
        assert_eq!(percentile(&[1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 90), Some(9));
    }

    #[test]
    fn as_of_a_time_and_as_of_a_position_differ_on_a_late_import() {
        let mut log = five();
        // g: imported after everything else, with a business time of the first day.
        log.lead(7, 0, 2, &[(1, "Distribution", "qualified", false, "")]);
        let before_import = log
            .paths
            .iter()
            .filter(|p| p.lead != Uuid::from_bytes([7; 16]))
            .map(|p| p.moves.last().unwrap().position)
            .max()
            .unwrap();
        let now = log.audit(&definition());
        assert_eq!(now.groups[0].registered, 7);
        let then = log.audit(&AuditDefinition {
            as_of_position: Some(before_import),
            ..definition()
        });
        assert_eq!(then.groups[0].registered, 6);
        assert_eq!(then.position, before_import);
        // As of hour 1: what had happened by then, whenever it was recorded.
        let early = log.audit(&AuditDefinition {
            as_of: t0() + chrono::Duration::hours(1),
            ..definition()
        });
        let g = &early.groups[0];
        assert_eq!(g.registered, 7, "f registered at hour 1 counts");
        assert_eq!(reached(&early), vec![3, 3, 1, 1, 0], "{}", early.to_json());
        assert_eq!(g.losses.len(), 1, "d disqualified at hour 1");
    }

    #[test]
    fn same_time_moves_follow_the_log_order() {
        let mut log = Log::new();
        log.lead(
            1,
            0,
            2,
            &[
                (1, "Distribution", "qualified", false, ""),
                (1, "Handoff", "startHandoff", false, ""),
                (1, "Disqualified", "disqualified", false, "spam"),
            ],
        );
        let a = log.audit(&definition());
        assert_eq!(reached(&a), vec![1, 1, 1, 0, 0]);
        assert_eq!(a.groups[0].losses[0].reason, "spam");
        assert_eq!(a.groups[0].steps[1].median_seconds, Some(0));
    }

    #[test]
    fn groups_filters_and_the_scope_pick_their_leads() {
        let log = five();
        let by_manager = log.audit(&AuditDefinition {
            group_by: GroupBy::Manager,
            ..definition()
        });
        let keys: Vec<(&str, u64)> = by_manager
            .groups
            .iter()
            .map(|g| (g.key.as_str(), g.registered))
            .collect();
        assert_eq!(
            keys,
            vec![
                (user(2).to_string().as_str(), 3),
                (user(3).to_string().as_str(), 3)
            ]
        );
        let by_source = log.audit(&AuditDefinition {
            group_by: GroupBy::Source,
            ..definition()
        });
        assert_eq!(
            by_source
                .groups
                .iter()
                .map(|g| g.key.as_str())
                .collect::<Vec<_>>(),
            vec!["call", "website"]
        );
        let by_week = log.audit(&AuditDefinition {
            group_by: GroupBy::Week,
            ..definition()
        });
        assert_eq!(by_week.groups[0].key, "2026-W10");
        let mut departments = Departments::new();
        departments.insert(user(2), "sales".into());
        let d = AuditDefinition {
            department: Some("sales".into()),
            group_by: GroupBy::Department,
            ..definition()
        };
        let a = audit_paths(&d, log.position, &departments, &log.paths);
        assert_eq!(
            (
                a.groups.len(),
                a.groups[0].key.as_str(),
                a.groups[0].registered
            ),
            (1, "sales", 3)
        );
        // A manager's scope: what they created or hold now. User 3 holds c, d and e.
        let mine = log.audit(&AuditDefinition {
            scope: Some(user(3)),
            ..definition()
        });
        assert_eq!(mine.groups[0].registered, 3);
        let nobody = log.audit(&AuditDefinition {
            scope: Some(user(9)),
            ..definition()
        });
        assert!(nobody.groups.is_empty());
        let source = log.audit(&AuditDefinition {
            source: Some("call".into()),
            ..definition()
        });
        assert_eq!(source.groups[0].registered, 3);
    }

    #[test]
    fn a_drill_down_lists_the_leads_behind_a_count_in_pages() {
        let log = five();
        let d = definition();
        let page = |bucket: Bucket, after: Option<Uuid>, first: usize| {
            drill_down(
                &d,
                log.position,
                &Departments::new(),
                &log.paths,
                &DrillDown {
                    key: String::new(),
                    bucket,
                    after,
                    first,
                },
            )
        };
        let ids = |ns: &[u8]| {
            ns.iter()
                .map(|n| Uuid::from_bytes([*n; 16]))
                .collect::<Vec<_>>()
        };
        assert_eq!(page(Bucket::Reached(0), None, 10).leads, ids(&[1, 2, 3, 4]));
        let first = page(Bucket::Reached(0), None, 3);
        assert_eq!(
            (first.leads.len(), first.total_count, first.has_next),
            (3, 4, true)
        );
        let next = page(Bucket::Reached(0), first.leads.last().copied(), 3);
        assert_eq!((next.leads, next.has_next), (ids(&[4]), false));
        assert_eq!(page(Bucket::ReachedByJump(3), None, 10).leads, ids(&[3]));
        assert_eq!(page(Bucket::Open(1), None, 10).leads, ids(&[4]));
        assert_eq!(page(Bucket::OpenInQualification, None, 10).leads, ids(&[5]));
        let lost = Bucket::Lost {
            stage: "Disqualified".into(),
            reason: "spam".into(),
        };
        assert_eq!(page(lost, None, 10).leads, ids(&[6]));
        // Each count of the audit is its drill-down's total.
        let a = log.audit(&d);
        for (s, step) in a.groups[0].steps.iter().enumerate() {
            assert_eq!(page(Bucket::Reached(s), None, 1).total_count, step.reached);
            assert_eq!(page(Bucket::Open(s), None, 1).total_count, step.open);
        }
    }
}

/// The laws of the audit over paths (issue 11): the order in which different leads' events
/// interleave in the log changes no answer, and the same question gives the same bytes.
#[cfg(test)]
mod laws {
    use super::*;
    use chrono::TimeZone;
    use proptest::prelude::*;

    const STAGES: [&str; 7] = [
        "Qualification",
        "Distribution",
        "Handoff",
        "AwaitingSale",
        "NeedSatisfied",
        "Disqualified",
        "NeedAbsent",
    ];

    /// Each lead's moves (stage, hours after the one before, a jump), placed in the log in the
    /// order `turns` names the leads (each lead's own events keep their order).
    fn paths(leads: &[Vec<(usize, i64, bool)>], turns: &[usize]) -> Vec<LeadPath> {
        let hour = 3_600_000_000;
        let t0 = micros(Utc.with_ymd_and_hms(2026, 2, 1, 0, 0, 0).unwrap());
        let mut positions: Vec<Vec<u64>> = vec![Vec::new(); leads.len()];
        for (i, lead) in turns.iter().enumerate() {
            positions[*lead].push(i as u64 + 1);
        }
        leads
            .iter()
            .enumerate()
            .map(|(n, moves)| {
                let id = Uuid::from_u128(n as u128 + 1);
                let user = Uuid::from_u128(100 + (n as u128 % 3));
                let mut at = t0 + n as i64 * 5 * hour;
                let mut path = LeadPath {
                    lead: id,
                    cohort: CohortRow {
                        funnel: "default".into(),
                        source: ["website", "call", ""][n % 3].into(),
                        channel: Default::default(),
                        created_by: user,
                        responsible: Some(user),
                        quality: "Unsorted".into(),
                        advertising: n % 2 == 0,
                        registered_at: at,
                        position: positions[n][0],
                    },
                    moves: vec![MoveRow {
                        revision: 0,
                        position: positions[n][0],
                        at,
                        from: Default::default(),
                        to: "Qualification".into(),
                        via: "registered".into(),
                        jump: false,
                        reason: Default::default(),
                        actor: user,
                    }],
                    assignments: Vec::new(),
                    budgets: Vec::new(),
                };
                for (k, (stage, hours, jump)) in moves.iter().enumerate() {
                    at += hours * hour;
                    let from = path.moves.last().unwrap().to.clone();
                    let to = STAGES[*stage].to_owned();
                    path.moves.push(MoveRow {
                        revision: k as u64 + 1,
                        position: positions[n][k + 1],
                        at,
                        reason: if to == "Disqualified" {
                            "spam".into()
                        } else {
                            Default::default()
                        },
                        from,
                        to: to.into(),
                        via: if *jump { "jump" } else { "qualified" }.into(),
                        jump: *jump,
                        actor: user,
                    });
                }
                path
            })
            .collect()
    }

    fn definitions() -> Vec<AuditDefinition> {
        let at = |m| Utc.with_ymd_and_hms(2026, m, 1, 0, 0, 0).unwrap();
        let base = AuditDefinition::new(at(1), at(6), at(5));
        let mut windowed = base.clone();
        windowed.windows_days = [Some(2), None, Some(3), None, None];
        vec![
            base.clone(),
            AuditDefinition {
                mode: StepMode::Strict,
                group_by: GroupBy::Source,
                ..base.clone()
            },
            AuditDefinition {
                mode: StepMode::Any,
                group_by: GroupBy::Week,
                ..base.clone()
            },
            AuditDefinition {
                exclude: vec![Exclusion::EverJumped],
                group_by: GroupBy::Manager,
                ..base.clone()
            },
            AuditDefinition {
                as_of: at(2) + chrono::Duration::days(3),
                ..windowed
            },
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

        #[test]
        fn the_interleaving_of_leads_in_the_log_changes_no_audit(
            leads in prop::collection::vec(prop::collection::vec((0usize..7, 0i64..400, any::<bool>()), 0..8), 1..10),
            seed in any::<u64>(),
        ) {
            // Lead by lead, then the same events shuffled across leads.
            let mut turns: Vec<usize> = leads.iter().enumerate().flat_map(|(n, m)| std::iter::repeat_n(n, m.len() + 1)).collect();
            let one = paths(&leads, &turns);
            let mut state = seed | 1;
            for i in (1..turns.len()).rev() {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                turns.swap(i, (state % (i as u64 + 1)) as usize);
            }
            let other = paths(&leads, &turns);
            let position = turns.len() as u64;
            let none = Departments::new();
            for definition in definitions() {
                let a = audit_paths(&definition, position, &none, &one).to_json();
                let b = audit_paths(&definition, position, &none, &other).to_json();
                prop_assert_eq!(&a, &b);
                // And the same question twice: the same bytes.
                prop_assert_eq!(a, audit_paths(&definition, position, &none, &one).to_json());
            }
        }
    }
}
