//! What the registry's historical columns held over business time (issue 11: `leads(asOf:)`),
//! kept by the `leads` model beside each lead's row: stage and disqualification reason,
//! responsible, budget, maturity and quality, one span per stretch of time they held still.
//!
//! An event of the lead at business time t splits the span holding t and sets what the event
//! changed on every span from t on. The value in force at a time T is then that of the last
//! event in log order at or before T: what the `transitions` model folds (its moves,
//! assignments and budgets; [`crate::reports::state_at`]), an import of the past included.

use rusqlite::{params, Transaction};

use leadflow_domain::details::{DetailChange, Quality};
use leadflow_domain::events::LeadEvent;
use leadflow_domain::{Lead, Maturity, Stage, UserId};

use crate::rows::{row_of, Row};
use crate::Envelope;

/// A span still holding ends here.
pub const OPEN: i64 = i64::MAX;

/// The historical columns of a lead, as the registry shows them. Typed, so that taking them
/// after every event of a catch-up neither formats nor allocates; the table holds their names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Was {
    pub stage: Stage,
    /// '' unless disqualified.
    pub reason: String,
    pub responsible: Option<UserId>,
    /// -1 for none.
    pub budget_minor: i64,
    pub maturity: Maturity,
    pub quality: Quality,
}

impl Was {
    pub fn of(lead: &Lead) -> Self {
        Self {
            stage: lead.stage,
            reason: lead
                .disqualification
                .as_ref()
                .map_or(String::new(), |q| q.reason.as_str().to_owned()),
            responsible: lead.responsible,
            budget_minor: lead.details.budget.as_ref().map_or(-1, |m| m.minor()),
            maturity: lead.maturity,
            quality: lead.details.quality,
        }
    }

    /// Whether `self` holds `other`'s values in the columns of `changed`.
    fn agrees(&self, changed: Changed, other: &Was) -> bool {
        (!changed.stage || (self.stage == other.stage && self.reason == other.reason))
            && (!changed.responsible || self.responsible == other.responsible)
            && (!changed.budget || self.budget_minor == other.budget_minor)
            && (!changed.maturity || self.maturity == other.maturity)
            && (!changed.quality || self.quality == other.quality)
    }

    /// Takes `other`'s values in the columns of `changed`.
    fn take(&mut self, changed: Changed, other: &Was) {
        if changed.stage {
            self.stage = other.stage;
            self.reason.clone_from(&other.reason);
        }
        if changed.responsible {
            self.responsible = other.responsible;
        }
        if changed.budget {
            self.budget_minor = other.budget_minor;
        }
        if changed.maturity {
            self.maturity = other.maturity;
        }
        if changed.quality {
            self.quality = other.quality;
        }
    }
}

/// [`Was`] from `from` (µs, inclusive) to `to` (exclusive; [`OPEN`] while it holds).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Span {
    pub from: i64,
    pub to: i64,
    pub was: Was,
}

/// Which historical columns an event sets.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Changed {
    stage: bool,
    responsible: bool,
    budget: bool,
    maturity: bool,
    quality: bool,
}

impl Changed {
    const ALL: Self = Self {
        stage: true,
        responsible: true,
        budget: true,
        maturity: true,
        quality: true,
    };

    fn any(self) -> bool {
        self != Self::default()
    }

    /// What `env` (an event of a lead) sets: the columns the `transitions` model keeps a row
    /// for when it does (a move, an assignment, a budget, even to the value held already),
    /// maturity and quality when it sets them, and whatever else its fold changed.
    pub fn by(env: &Envelope, before: Option<&Was>, after: &Was) -> Self {
        let row = row_of(env).map(|(_, row)| row);
        let mut changed = match &row {
            Some(Row::Registered { .. }) => return Self::ALL,
            Some(Row::Moved(_)) => Self {
                stage: true,
                ..Self::default()
            },
            Some(Row::Assigned(_)) => Self {
                responsible: true,
                ..Self::default()
            },
            Some(Row::Budget(_)) => Self {
                budget: true,
                ..Self::default()
            },
            _ => Self::default(),
        };
        if let crate::Body::Lead { event, .. } = &env.body {
            match event {
                LeadEvent::MaturityChanged(_) => changed.maturity = true,
                LeadEvent::LeadDetailsUpdated(u) => {
                    changed.quality |= u
                        .changes
                        .iter()
                        .any(|c| matches!(c, DetailChange::Quality(_)));
                }
                _ => {}
            }
        }
        let Some(before) = before else {
            return Self::ALL;
        };
        // A disqualification's reason is the move's that follows it (the same command), as
        // the `transitions` model pairs them: alone it sets nothing.
        if matches!(row, Some(Row::Reason(_))) {
            return changed;
        }
        changed.stage |= before.stage != after.stage || before.reason != after.reason;
        changed.responsible |= before.responsible != after.responsible;
        changed.budget |= before.budget_minor != after.budget_minor;
        changed.maturity |= before.maturity != after.maturity;
        changed.quality |= before.quality != after.quality;
        changed
    }
}

/// An event at business time `at` set `changed` to `after`'s values: the span holding `at` is
/// split there and every span from `at` on takes them. A lead's first event opens its first
/// span. Neighbours left equal merge, so the spans are the same however the events were
/// batched.
pub fn record(spans: &mut Vec<Span>, at: i64, changed: Changed, after: &Was) {
    if !changed.any() {
        return;
    }
    if spans.is_empty() {
        spans.push(Span {
            from: at,
            to: OPEN,
            was: after.clone(),
        });
        return;
    }
    if spans
        .iter()
        .filter(|s| s.to > at)
        .all(|s| s.was.agrees(changed, after))
    {
        return;
    }
    if let Some(i) = spans.iter().rposition(|s| s.from < at && at < s.to) {
        let mut tail = spans[i].clone();
        tail.from = at;
        spans[i].to = at;
        spans.insert(i + 1, tail);
    }
    for s in spans.iter_mut().filter(|s| s.from >= at) {
        s.was.take(changed, after);
    }
    spans.dedup_by(|later, earlier| {
        let same = later.was == earlier.was;
        if same {
            earlier.to = later.to;
        }
        same
    });
}

/// The spans of the lead stored under `rowid`, in time order.
pub fn load(tx: &Transaction<'_>, rowid: i64) -> rusqlite::Result<Vec<Span>> {
    tx.prepare_cached(
        "SELECT from_at, to_at, stage, disqualification_reason, responsible, budget_minor,
             maturity, quality
         FROM lead_spans WHERE row_id = ?1 ORDER BY from_at",
    )?
    .query_map([rowid], |r| {
        Ok(Span {
            from: r.get(0)?,
            to: r.get(1)?,
            was: Was {
                stage: named(r, 2, Stage::parse)?,
                reason: r.get(3)?,
                responsible: named(r, 4, |id| match id {
                    "" => Some(None),
                    id => UserId::parse(id).ok().map(Some),
                })?,
                budget_minor: r.get(5)?,
                maturity: named(r, 6, Maturity::parse)?,
                quality: named(r, 7, Quality::parse)?,
            },
        })
    })?
    .collect()
}

/// Column `i` of `row` read with `parse`: a value the model did not write is an error, never
/// a guess.
fn named<T>(
    row: &rusqlite::Row<'_>,
    i: usize,
    parse: impl FnOnce(&str) -> Option<T>,
) -> rusqlite::Result<T> {
    let text = row.get_ref(i)?.as_str()?;
    parse(text).ok_or_else(|| {
        rusqlite::Error::FromSqlConversionFailure(
            i,
            rusqlite::types::Type::Text,
            format!("{text:?} is not a value this model writes").into(),
        )
    })
}

/// Stores `now`, the lead's spans, where `stored` were: what is the same at the start is
/// left, the rest replaced (an event of the present rewrites the last span and adds one).
pub fn save(
    tx: &Transaction<'_>,
    rowid: i64,
    funnel: &str,
    stored: &[Span],
    now: &[Span],
) -> rusqlite::Result<()> {
    let same = stored.iter().zip(now).take_while(|(a, b)| a == b).count();
    if same == stored.len() && same == now.len() {
        return Ok(());
    }
    if let Some(first) = stored.get(same) {
        tx.prepare_cached("DELETE FROM lead_spans WHERE row_id = ?1 AND from_at >= ?2")?
            .execute(params![rowid, first.from])?;
    }
    let mut insert = tx.prepare_cached(
        "INSERT INTO lead_spans(row_id, from_at, to_at, funnel, stage, maturity, responsible,
             budget_minor, quality, disqualification_reason)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
    )?;
    for s in &now[same..] {
        let w = &s.was;
        insert.execute(params![
            rowid,
            s.from,
            s.to,
            funnel,
            w.stage.as_str(),
            w.maturity.as_str(),
            w.responsible.map(|u| u.to_string()).unwrap_or_default(),
            w.budget_minor,
            w.quality.as_str(),
            w.reason
        ])?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const Q: Stage = Stage::Qualification;
    const D: Stage = Stage::Distribution;

    fn user(login: &str) -> Option<UserId> {
        (!login.is_empty()).then(|| UserId::named(login))
    }

    fn was(stage: Stage, responsible: &str, budget: i64) -> Was {
        Was {
            stage,
            reason: String::new(),
            responsible: user(responsible),
            budget_minor: budget,
            maturity: Maturity::Unknown,
            quality: Quality::Unsorted,
        }
    }

    const STAGE: Changed = Changed {
        stage: true,
        responsible: false,
        budget: false,
        maturity: false,
        quality: false,
    };
    const RESPONSIBLE: Changed = Changed {
        stage: false,
        responsible: true,
        budget: false,
        maturity: false,
        quality: false,
    };

    fn held(spans: &[Span]) -> Vec<(i64, i64, Stage, Option<UserId>)> {
        spans
            .iter()
            .map(|s| (s.from, s.to, s.was.stage, s.was.responsible))
            .collect()
    }

    /// Given events (time, what they set, the values after), then the spans.
    #[test]
    fn spans_given_events() {
        type Row = (
            &'static str,
            Vec<(i64, Changed, Was)>,
            Vec<(i64, i64, Stage, &'static str)>,
        );
        let rows: Vec<Row> = vec![
            (
                "events in time order close the last span and open one",
                vec![
                    (10, Changed::ALL, was(Q, "", -1)),
                    (20, STAGE, was(D, "", -1)),
                    (30, RESPONSIBLE, was(D, "ivan", -1)),
                ],
                vec![(10, 20, Q, ""), (20, 30, D, ""), (30, OPEN, D, "ivan")],
            ),
            (
                "an event that sets what holds already adds no span",
                vec![
                    (10, Changed::ALL, was(Q, "ivan", -1)),
                    (20, RESPONSIBLE, was(Q, "ivan", -1)),
                ],
                vec![(10, OPEN, Q, "ivan")],
            ),
            (
                // Recorded last, at 20: the last event in log order at or before any time
                // from 20 on.
                "an import of the past sets its column from its time on and leaves the others",
                vec![
                    (10, Changed::ALL, was(Q, "", -1)),
                    (30, STAGE, was(D, "", -1)),
                    (40, RESPONSIBLE, was(D, "ivan", -1)),
                    (20, RESPONSIBLE, was(D, "maria", -1)),
                ],
                vec![
                    (10, 20, Q, ""),
                    (20, 30, Q, "maria"),
                    (30, OPEN, D, "maria"),
                ],
            ),
            (
                "spans left equal merge",
                vec![
                    (10, Changed::ALL, was(Q, "", -1)),
                    (20, STAGE, was(D, "", -1)),
                    (5, STAGE, was(Q, "", -1)),
                ],
                vec![(10, OPEN, Q, "")],
            ),
        ];
        for (name, events, then) in rows {
            let mut spans = Vec::new();
            for (at, changed, after) in &events {
                record(&mut spans, *at, *changed, after);
            }
            let then: Vec<_> = then
                .into_iter()
                .map(|(from, to, stage, responsible)| (from, to, stage, user(responsible)))
                .collect();
            assert_eq!(held(&spans), then, "{name}");
        }
    }
}
