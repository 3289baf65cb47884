//! The funnel conversion audit (issue 11, SPEC 8), first part: a cohort's way through the
//! funnel's steps, exact as of a business time and a log position, computed from the
//! `transitions` model. Every answer carries its definition (a canonical form and its
//! SHA-256) and the log position it was computed at; the same definition at the same position
//! gives byte-identical output.
//!
//! The steps are Qualification done, Distribution, Handoff, AwaitingSale and NeedSatisfied. A
//! lead reaches a step by entering its stage or by moving forward past it: qualifying straight
//! to Handoff passes Distribution by design (the lead had its manager; SPEC 3.3), a
//! conversion or a jump passes what it skips and counts as reached by a jump. In the
//! `ordered` mode a step counts only once the one before it was reached; in `any` order,
//! whenever it was reached. Ties between one lead's events are broken by log position.

use std::collections::BTreeMap;

use chrono::{DateTime, SecondsFormat, Utc};
use rusqlite::{params, Connection};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::{from_micros, micros};

/// The steps, in funnel order.
pub const STEPS: [&str; 5] = [
    "QualificationDone",
    "Distribution",
    "Handoff",
    "AwaitingSale",
    "NeedSatisfied",
];

/// How steps must follow each other.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum StepMode {
    /// Each step reached after the one before it.
    Ordered,
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
    /// The calendar month of registration (UTC), `2026-03`.
    Month,
}

/// An audit's inputs: everything its answer depends on besides the log.
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
    /// then"); `None`: the log as far as the model has it.
    pub as_of_position: Option<u64>,
    pub funnel: Option<String>,
    pub source: Option<String>,
    pub channel: Option<String>,
    pub mode: StepMode,
    pub group_by: GroupBy,
}

fn utc<S: serde::Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&t.to_rfc3339_opts(SecondsFormat::Micros, true))
}

impl AuditDefinition {
    /// The canonical form: JSON with fields in a fixed order and times in UTC to the µs.
    pub fn canonical(&self) -> String {
        serde_json::to_string(self).expect("a definition serializes")
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

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditGroup {
    pub key: String,
    pub registered: u64,
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
    /// The log position the answer was computed at: the model's checkpoint, or
    /// `asOfPosition` when that is lower.
    pub position: u64,
    pub groups: Vec<AuditGroup>,
}

impl Audit {
    /// The answer as JSON, byte-identical for the same definition at the same position.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("an audit serializes")
    }
}

/// Where a stage stands among the steps: Qualification is 0, and step `k` is rank `k + 1`
/// (rank 1, Qualification done, is leaving Qualification forward).
fn rank(stage: &str) -> Option<usize> {
    match stage {
        "Qualification" => Some(0),
        "Distribution" => Some(2),
        "Handoff" => Some(3),
        "AwaitingSale" => Some(4),
        "NeedSatisfied" => Some(5),
        _ => None,
    }
}

/// The steps (indexes into [`STEPS`]) a move from `from` to `to` reaches: going forward,
/// every step after `from` up to and including `to`'s; otherwise (back, or in from a closed
/// stage or the registration) `to`'s own step, if it is one.
fn steps_of(from: &str, to: &str) -> Vec<usize> {
    let Some(t) = rank(to) else {
        return Vec::new();
    };
    match rank(from) {
        Some(f) if t > f => (f + 1..=t).map(|r| r - 1).collect(),
        _ if t >= 1 => vec![t - 1],
        _ => Vec::new(),
    }
}

/// The audit of `definition` over the `transitions` model's connection.
pub fn funnel_audit(conn: &Connection, definition: &AuditDefinition) -> rusqlite::Result<Audit> {
    let checkpoint: i64 = conn
        .query_row(
            "SELECT position FROM projection_state WHERE name = 'transitions'",
            [],
            |r| r.get(0),
        )
        .unwrap_or(0);
    let position = definition
        .as_of_position
        .map_or(checkpoint as u64, |p| p.min(checkpoint as u64));
    let as_of = micros(definition.as_of);
    // The cohort, with the group each lead falls in.
    let mut cohort = conn.prepare(
        "SELECT lead, funnel, source, channel, registered_at FROM transition_leads
         WHERE registered_at >= ?1 AND registered_at < ?2 AND registered_at <= ?3
           AND position <= ?4
           AND (?5 IS NULL OR funnel = ?5) AND (?6 IS NULL OR source = ?6)
           AND (?7 IS NULL OR channel = ?7)
         ORDER BY lead",
    )?;
    let leads: Vec<(Vec<u8>, String)> = cohort
        .query_map(
            params![
                micros(definition.from),
                micros(definition.to),
                as_of,
                position as i64,
                definition.funnel,
                definition.source,
                definition.channel,
            ],
            |r| {
                let (funnel, source, channel, at): (String, String, String, i64) =
                    (r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?);
                let key = match definition.group_by {
                    GroupBy::None => String::new(),
                    GroupBy::Source => source,
                    GroupBy::Channel => channel,
                    GroupBy::Funnel => funnel,
                    GroupBy::Month => from_micros(at).format("%Y-%m").to_string(),
                };
                Ok((r.get(0)?, key))
            },
        )?
        .collect::<rusqlite::Result<_>>()?;
    let mut moves = conn.prepare_cached(
        "SELECT from_stage, to_stage, jump, reason FROM transitions
         WHERE lead = ?1 AND at <= ?2 AND position <= ?3 ORDER BY position",
    )?;
    #[derive(Default)]
    struct Tally {
        registered: u64,
        open_in_qualification: u64,
        reached: [u64; 5],
        by_jump: [u64; 5],
        open: [u64; 5],
        losses: BTreeMap<(String, String), u64>,
    }
    let mut groups: BTreeMap<String, Tally> = BTreeMap::new();
    for (lead, key) in leads {
        let rows: Vec<(String, String, bool, String)> = moves
            .query_map(params![lead, as_of, position as i64], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
            })?
            .collect::<rusqlite::Result<_>>()?;
        let tally = groups.entry(key).or_default();
        tally.registered += 1;
        // The first time each step was reached, and whether by a jump.
        let mut reached: [Option<bool>; 5] = [None; 5];
        for (from, to, jump, _) in &rows {
            for step in steps_of(from, to) {
                let in_order = match definition.mode {
                    StepMode::Any => true,
                    StepMode::Ordered => step == 0 || reached[step - 1].is_some(),
                };
                if in_order && reached[step].is_none() {
                    // A step passed over on the way is reached by a jump only when the move
                    // was one; the designed skip of Distribution is not.
                    reached[step] = Some(*jump);
                }
            }
        }
        for (step, how) in reached.iter().enumerate() {
            if let Some(jump) = how {
                tally.reached[step] += 1;
                tally.by_jump[step] += u64::from(*jump);
            }
        }
        let now = rows.last().map(|r| r.1.as_str()).unwrap_or("");
        match now {
            "Disqualified" | "NeedAbsent" => {
                let reason = rows.last().map(|r| r.3.clone()).unwrap_or_default();
                *tally.losses.entry((now.to_owned(), reason)).or_default() += 1;
            }
            "Qualification" => tally.open_in_qualification += 1,
            other => {
                // Distribution, Handoff, AwaitingSale: open in that step.
                if let Some(r @ 2..=4) = rank(other) {
                    tally.open[r - 1] += 1;
                }
            }
        }
    }
    let permille = |n: u64, d: u64| (n * 1000).checked_div(d).unwrap_or(0);
    let groups = groups
        .into_iter()
        .map(|(key, t)| AuditGroup {
            steps: (0..STEPS.len())
                .map(|i| StepCount {
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
                })
                .collect(),
            losses: t
                .losses
                .into_iter()
                .map(|((stage, reason), leads)| Loss {
                    stage,
                    reason,
                    leads,
                })
                .collect(),
            key,
            registered: t.registered,
            open_in_qualification: t.open_in_qualification,
        })
        .collect();
    Ok(Audit {
        definition: definition.canonical(),
        definition_hash: definition.hash(),
        position,
        groups,
    })
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
}
