//! Each leg of a route as the commands a CRM's users would send: who acts (an actor the
//! domain allows: the responsible for task results, a supervisor for distribution, jumps and
//! reopens, the creator's side for conversions), how much business time passes first, and
//! the data they type. Task and deal ids are read from the lead's current state.

use chrono::Duration;
use rand::seq::IndexedRandom;
use rand::Rng;

use leadflow_domain::commands::*;
use leadflow_domain::details::{DetailChange, HandoffDetails, Quality};
use leadflow_domain::events::{HandoffResult, SystemTaskKind};
use leadflow_domain::{LeadCommand, Stage, TaskId};

use crate::card::{rub, text, Card, Intake};
use crate::people;
use crate::sale;
use crate::script::Leg;
use crate::story::Story;
use crate::texts::{self, pick};
use crate::DemoError;

pub fn hours(h: i64) -> Duration {
    Duration::hours(h)
}

pub fn days(d: i64) -> Duration {
    Duration::days(d)
}

/// An optional comment, as people sometimes leave the field empty.
pub fn comment(
    s: &mut Story,
    p: f64,
    lines: &[&'static str],
) -> Option<leadflow_domain::values::Comment> {
    s.rng
        .random_bool(p)
        .then(|| text("comment", pick(&mut s.rng, lines)))
}

pub fn open_task(s: &Story, kind: SystemTaskKind, what: &'static str) -> Result<TaskId, DemoError> {
    s.lead()
        .open_task(kind)
        .map(|t| t.id)
        .ok_or(DemoError::Script {
            lead: s.index,
            what,
        })
}

/// Sends `leg`'s commands.
pub async fn perform(s: &mut Story<'_>, card: &Card, leg: Leg) -> Result<(), DemoError> {
    use LeadCommand as C;
    match leg {
        Leg::Sort { junk } => {
            s.wait(Duration::minutes(10), hours(4));
            let quality = match (junk, s.rng.random_bool(0.85)) {
                (true, _) => Quality::NonTarget,
                (false, true) => Quality::Target,
                (false, false) => Quality::Repeat,
            };
            let mut changes = vec![DetailChange::Quality(quality)];
            if card.intake == Intake::MissedCall && !junk {
                // The call-back: now the lead has a name and a subject.
                let title = format!("Перезвон: {}", texts::offer_title(&mut s.rng, card.offer));
                changes.push(DetailChange::Title(text("title", &title)));
                let name = text("contact", &card.person.full_name);
                changes.push(DetailChange::ContactName(Some(name)));
                changes.push(DetailChange::Comment(comment(
                    s,
                    1.0,
                    texts::CALLBACK_NOTES,
                )));
            }
            let actor = s.team.supervisor;
            s.run(actor, C::UpdateDetails(UpdateLeadDetails { changes }))
                .await
        }
        Leg::Touch => touch(s, card).await,
        Leg::Reassign => {
            s.wait(hours(1), days(2));
            reassign(s).await
        }
        Leg::Disqualify => {
            s.wait(hours(1), days(5));
            let lead = s.lead();
            let reasons: &[&str] = match lead.stage {
                _ if lead.details.quality == Quality::NonTarget => &["spam"],
                Stage::Qualification => &[
                    "duplicate",
                    "wrong-contact",
                    "unreachable",
                    "out-of-region",
                    "no-need",
                ],
                Stage::Distribution => &[
                    "out-of-region",
                    "no-budget",
                    "not-decision-maker",
                    "unreachable",
                    "timing",
                ],
                _ => &[
                    "competitor",
                    "price",
                    "no-budget",
                    "timing",
                    "not-decision-maker",
                    "product-mismatch",
                    "no-need",
                ],
            };
            let reason = *reasons.choose(&mut s.rng).expect("reasons");
            let cmd = DisqualifyLead {
                reason: leadflow_domain::ReasonCode::parse(reason).expect("a catalog reason"),
                comment: comment(s, 0.85, texts::disqualify_comment(reason)),
            };
            let actor = s.responsible_or_supervisor();
            s.run(actor, C::Disqualify(cmd)).await
        }
        Leg::Reopen => {
            s.wait(days(3), days(30));
            let cmd = ReopenLead {
                comment: comment(s, 0.8, texts::REOPEN),
            };
            s.run(s.team.supervisor, C::Reopen(cmd)).await
        }
        Leg::Qualify => {
            s.wait(Duration::minutes(30), days(2));
            let actor = s.responsible_or_supervisor();
            s.run(actor, C::Qualify(QualifyLead::default())).await
        }
        Leg::JumpForward | Leg::JumpBack => {
            let (to, lines, actor) = if leg == Leg::JumpForward {
                s.wait(Duration::minutes(10), days(1));
                (
                    Stage::Handoff,
                    texts::JUMP_FORWARD,
                    s.responsible_or_supervisor(),
                )
            } else {
                s.wait(days(1), days(5));
                (Stage::Qualification, texts::JUMP_BACK, s.team.supervisor)
            };
            let cmd = JumpToStage {
                stage: s.team.key(to),
                reason: text("reason", pick(&mut s.rng, lines)),
                sale: None,
            };
            s.run(actor, C::JumpToStage(cmd)).await
        }
        Leg::Nurture => {
            s.wait(hours(1), days(2));
            let next_check_at = s.later(days(5), days(30));
            let strategy = comment(s, 0.8, texts::NURTURING);
            let cmd = DistributionDecision::ContinueNurturing {
                next_check_at,
                strategy,
            };
            s.run(s.team.supervisor, C::Distribute(cmd)).await?;
            s.now = next_check_at;
            Ok(())
        }
        Leg::NeedAbsent => {
            s.wait(hours(1), days(3));
            let cmd = DistributionDecision::NeedAbsent {
                comment: comment(s, 0.8, texts::NEED_ABSENT),
            };
            s.run(s.team.supervisor, C::Distribute(cmd)).await
        }
        Leg::StartHandoff => {
            s.wait(hours(2), days(3));
            if s.lead().responsible.is_none() || s.rng.random_bool(0.3) {
                reassign(s).await?;
                s.wait(Duration::minutes(1), Duration::minutes(30));
            }
            let remind = s.rng.random_bool(0.5);
            let cmd = DistributionDecision::StartHandoff { remind };
            s.run(s.team.supervisor, C::Distribute(cmd)).await
        }
        Leg::Postpone => {
            s.wait(hours(2), days(2));
            let until = s.later(days(1), days(7));
            let result = HandoffResult::Postponed {
                until,
                comment: comment(s, 0.8, texts::POSTPONED),
            };
            handoff_result(s, result).await?;
            s.now = until;
            Ok(())
        }
        Leg::NoInterest => {
            s.wait(hours(2), days(3));
            let result = HandoffResult::NoInterest {
                comment: comment(s, 0.7, texts::NO_INTEREST),
            };
            handoff_result(s, result).await
        }
        Leg::Reschedule => {
            s.wait(days(5), days(20));
            let due_at = s.later(hours(1), days(2));
            let actor = s.responsible_or_supervisor();
            let cmd = ScheduleHandoffTask { due_at };
            s.run(actor, C::ScheduleHandoffTask(cmd)).await?;
            s.now = due_at;
            Ok(())
        }
        Leg::ReturnToDistribution => {
            s.wait(hours(1), days(3));
            let result = HandoffResult::ReturnToDistribution {
                comment: comment(s, 0.9, texts::RETURN_TO_DISTRIBUTION),
            };
            handoff_result(s, result).await
        }
        Leg::Sale(route) => sale::sale(s, card, route).await,
        Leg::Won | Leg::Lost => {
            s.wait(days(5), days(45));
            let deal_id = s
                .lead()
                .deal
                .as_ref()
                .map(|d| d.id)
                .ok_or(DemoError::Script {
                    lead: s.index,
                    what: "an open deal to close",
                })?;
            let actor = s.responsible_or_supervisor();
            let cmd = if leg == Leg::Won {
                C::RecordDealWon(RecordDealWon { deal_id })
            } else {
                let reason = comment(s, 0.8, texts::DEAL_LOST);
                C::RecordDealLost(RecordDealLost { deal_id, reason })
            };
            s.run(actor, cmd).await
        }
    }
}

/// The responsible records `result` on the open handoff task.
pub async fn handoff_result(s: &mut Story<'_>, result: HandoffResult) -> Result<(), DemoError> {
    let task_id = open_task(s, SystemTaskKind::Handoff, "an open handoff task")?;
    let actor = s.responsible_or_supervisor();
    let cmd = CompleteHandoffTask { task_id, result };
    s.run(actor, LeadCommand::CompleteHandoffTask(cmd)).await
}

/// A supervisor hands the lead to another manager of the team.
pub async fn reassign(s: &mut Story<'_>) -> Result<(), DemoError> {
    let current = s.lead().responsible;
    let others: Vec<_> = s
        .team
        .managers
        .iter()
        .filter(|m| Some(m.user) != current)
        .collect();
    let to = others
        .choose(&mut s.rng)
        .expect("a team has two managers")
        .user;
    let remind = s.rng.random_bool(0.5);
    let cmd = AssignResponsible { to, remind };
    s.run(s.team.supervisor, LeadCommand::AssignResponsible(cmd))
        .await
}

/// Someone edits the card: a refined budget, a second phone or an e-mail, the need type, a
/// note; in AwaitingSale the meeting moves. Changes that would change nothing are dropped
/// (an update that records nothing is not recorded, so a second run could not replay it).
async fn touch(s: &mut Story<'_>, card: &Card) -> Result<(), DemoError> {
    s.wait(hours(1), days(3));
    let lead = s.lead().clone();
    let mut changes = Vec::new();
    if lead.stage == Stage::AwaitingSale {
        let moved = s.later(days(1), days(14));
        changes.push(DetailChange::MeetingAt(Some(moved)));
        changes.push(DetailChange::Comment(comment(s, 1.0, texts::MEETING_MOVED)));
    } else {
        match s.rng.random_range(0..4) {
            0 => {
                let mut phones = lead.details.phones.clone();
                phones.push(people::phone(&mut s.rng, card.area_code, true));
                changes.push(DetailChange::Phones(phones));
            }
            1 => {
                let host = card.company.as_ref().map(|c| c.host.as_str());
                let email = people::email(&mut s.rng, &card.person, host);
                changes.push(DetailChange::Emails(vec![email]));
            }
            2 => {
                let need = text("need type", card.offer.need_type);
                changes.push(DetailChange::NeedType(Some(need)));
            }
            _ => changes.push(DetailChange::Comment(comment(
                s,
                1.0,
                texts::CALLBACK_NOTES,
            ))),
        }
    }
    changes.retain(|c| {
        let (mut details, mut handoff): (_, HandoffDetails) =
            (lead.details.clone(), lead.handoff.clone());
        c.apply(&mut details, &mut handoff);
        details != lead.details || handoff != lead.handoff
    });
    if changes.is_empty() || s.rng.random_bool(0.3) {
        changes.push(DetailChange::Budget(Some(rub(sale::new_budget(s, card)))));
    }
    let actor = s.responsible_or_supervisor();
    s.run(
        actor,
        LeadCommand::UpdateDetails(UpdateLeadDetails { changes }),
    )
    .await
}
