//! The `transitions` read model (issue 11): every stage each lead entered, with its business
//! time, log position, actor, whether it was a jump and the disqualification reason; each
//! lead's cohort as registered; who was responsible from when. The funnel audit scans these
//! rows instead of decoding the log. Nothing in it is personal: a jump's free-text reason and
//! a lost deal's comment are left out.

use rusqlite::{params, OptionalExtension, Transaction};

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
        for env in events {
            let Body::Lead {
                lead_id,
                event,
                meta,
            } = &env.body
            else {
                continue;
            };
            let lead = lead_id.as_uuid();
            let lead = lead.as_bytes().as_slice();
            let (position, at) = (env.position.0 as i64, micros(meta.occurred_at));
            let actor = meta.actor.user_id.as_uuid();
            match event {
                LeadEvent::LeadRegistered(r) => {
                    let d = &r.details;
                    lead_row.execute(params![
                        lead,
                        r.funnel.as_str(),
                        d.source.as_ref().map_or("", |s| s.as_str()),
                        d.channel.as_ref().map_or("", |c| c.as_str()),
                        r.created_by.as_uuid().as_bytes().as_slice(),
                        r.responsible.map(|u| u.as_uuid().as_bytes().to_vec()),
                        format!("{:?}", d.quality),
                        d.advertising,
                        at,
                        position,
                    ])?;
                    transition.execute(params![
                        lead,
                        env.revision as i64,
                        position,
                        at,
                        "",
                        r.stage.to_string(),
                        "registered",
                        false,
                        "",
                        actor.as_bytes().as_slice(),
                    ])?;
                    if let Some(user) = r.responsible {
                        assignment.execute(params![
                            lead,
                            env.revision as i64,
                            position,
                            at,
                            user.as_uuid().as_bytes().as_slice(),
                        ])?;
                    }
                }
                LeadEvent::LeadDisqualified(d) => {
                    hold_reason.execute(params![lead, d.reason.as_str()])?;
                }
                LeadEvent::LeadStageChanged(c) => {
                    let reason: String = if c.to == Stage::Disqualified {
                        take_reason
                            .query_row([lead], |r| r.get(0))
                            .optional()?
                            .unwrap_or_default()
                    } else {
                        String::new()
                    };
                    transition.execute(params![
                        lead,
                        env.revision as i64,
                        position,
                        at,
                        c.from.to_string(),
                        c.to.to_string(),
                        via_name(&c.via),
                        is_jump(c.from, c.to, &c.via),
                        reason,
                        actor.as_bytes().as_slice(),
                    ])?;
                }
                LeadEvent::ResponsibleAssigned(a) => {
                    assignment.execute(params![
                        lead,
                        env.revision as i64,
                        position,
                        at,
                        a.to.as_uuid().as_bytes().as_slice(),
                    ])?;
                }
                _ => {}
            }
        }
        Ok(())
    }
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
