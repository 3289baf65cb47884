//! The plot of one lead: when it arrives, where it ends up, and the route of legs that gets
//! it there. Every final stage is reachable, along the detours real leads take: disqualified
//! by mistake and reopened by a supervisor, jumped forward or back with a reason, returned to
//! Distribution from Handoff, postponed, losing interest, reassigned, a lost deal and a second
//! try. The route is drawn up front from the lead's own random stream, so it depends on
//! (seed, lead index) only; `legs.rs` turns each leg into commands.

use chrono::{DateTime, Datelike, Duration, Utc, Weekday};
use rand::seq::IndexedRandom;
use rand::Rng;
use rand_chacha::ChaCha8Rng;

use leadflow_domain::commands::RegisterLead;
use leadflow_domain::{LeadCommand, Stage};

use crate::card;
use crate::legs::perform;
use crate::story::Story;
use crate::DemoError;

/// Business days the registrations are spread over.
pub const SPREAD_DAYS: i64 = 90;

/// How a lead reaches AwaitingSale.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SaleRoute {
    /// Handoff task result TransferToSale, then the handoff details.
    Transfer,
    PlaceOrder,
    /// ConvertLead with a deal, from whatever working stage the lead is in.
    Convert,
    /// JumpToStage into AwaitingSale with sale terms.
    Jump,
}

/// One step of the route; `legs.rs` says which commands each one sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Leg {
    /// An inbound inquiry is sorted (and a missed call called back); `junk` marks it NonTarget.
    Sort {
        junk: bool,
    },
    Touch,
    Reassign,
    Disqualify,
    Reopen,
    Qualify,
    JumpForward,
    JumpBack,
    Nurture,
    NeedAbsent,
    StartHandoff,
    Postpone,
    NoInterest,
    Reschedule,
    ReturnToDistribution,
    Sale(SaleRoute),
    Won,
    Lost,
}

/// Plays lead `story.index`: registers it and walks its route.
pub async fn play(story: &mut Story<'_>, start: DateTime<Utc>) -> Result<(), DemoError> {
    let day = arrival_day(&mut story.rng, start);
    story.now = start + Duration::days(day) + Duration::minutes(story.rng.random_range(0..600));
    let ending = ending(&mut story.rng, story.index, day);
    let registered_at = story.now;
    let card = card::draw(
        &mut story.rng,
        story.cast,
        story.team,
        story.seed,
        story.index,
        registered_at,
    );
    let route = route(&mut story.rng, ending, card.intake.is_unassigned());
    let register = LeadCommand::Register(RegisterLead {
        lead_id: story.lead_id,
        funnel: Some(story.team.funnel.clone()),
        responsible: card.responsible,
        details: card.details.clone(),
    });
    story.run(card.registrar, register).await?;
    for leg in route {
        perform(story, &card, leg).await?;
    }
    Ok(())
}

/// The day of arrival: uniform over the spread, with weekends quieter (most weekend draws
/// are drawn again).
fn arrival_day(rng: &mut ChaCha8Rng, start: DateTime<Utc>) -> i64 {
    let day = rng.random_range(0..SPREAD_DAYS);
    let weekday = (start + Duration::days(day)).weekday();
    if matches!(weekday, Weekday::Sat | Weekday::Sun) && rng.random_bool(0.7) {
        rng.random_range(0..SPREAD_DAYS)
    } else {
        day
    }
}

/// Where the lead ends up. The first seven leads take one final stage each, so even a tiny
/// data set shows every column; older leads are mostly settled, recent ones mostly open.
fn ending(rng: &mut ChaCha8Rng, index: u64, day: i64) -> Stage {
    if let Some(stage) = Stage::ALL.get(index as usize) {
        return *stage;
    }
    use Stage::*;
    let weights: [(Stage, u32); 7] = if day >= SPREAD_DAYS - 10 {
        [
            (Qualification, 30),
            (Distribution, 15),
            (Handoff, 30),
            (AwaitingSale, 10),
            (Disqualified, 12),
            (NeedAbsent, 1),
            (NeedSatisfied, 2),
        ]
    } else {
        [
            (Qualification, 4),
            (Distribution, 9),
            (Handoff, 9),
            (AwaitingSale, 12),
            (Disqualified, 26),
            (NeedAbsent, 8),
            (NeedSatisfied, 32),
        ]
    };
    weights.choose_weighted(rng, |w| w.1).expect("weights").0
}

fn sale_route(rng: &mut ChaCha8Rng) -> SaleRoute {
    use SaleRoute::*;
    [(Transfer, 50), (PlaceOrder, 20), (Convert, 15), (Jump, 15)]
        .choose_weighted(rng, |w| w.1)
        .expect("weights")
        .0
}

/// The legs from registration to `ending`. Invariant the legs rely on: whenever the lead
/// is in Handoff at the start of a leg it has an open handoff task, except right after
/// NoInterest, which is followed by Reschedule unless the story ends there.
pub fn route(rng: &mut ChaCha8Rng, ending: Stage, unassigned: bool) -> Vec<Leg> {
    use Leg::*;
    let mut r = Vec::new();
    let junk_at = (ending == Stage::Disqualified).then(|| {
        let distribution = if unassigned { 20 } else { 0 };
        [
            (Stage::Qualification, 45),
            (Stage::Distribution, distribution),
            (Stage::Handoff, 35),
        ]
        .choose_weighted(rng, |w| w.1)
        .expect("weights")
        .0
    });
    let junk_now = |stage| junk_at == Some(stage);

    // Qualification.
    if unassigned {
        let junk = junk_now(Stage::Qualification) && rng.random_bool(0.5);
        r.push(Sort { junk });
    }
    if rng.random_bool(0.25) {
        r.push(Touch);
    }
    if ending == Stage::Qualification {
        if rng.random_bool(0.3) {
            r.extend([Disqualify, Reopen]);
        }
        return r;
    }
    if junk_now(Stage::Qualification) {
        r.push(Disqualify);
        return r;
    }
    if rng.random_bool(0.07) {
        // Disqualified by mistake; a supervisor reopens it.
        r.extend([Disqualify, Reopen]);
    }
    let to_sale = matches!(ending, Stage::AwaitingSale | Stage::NeedSatisfied);
    if to_sale && rng.random_bool(0.12) {
        // Converted straight from Qualification: the conversion records the skipped stages.
        r.push(Sale(SaleRoute::Convert));
        sale_tail(rng, &mut r, ending);
        return r;
    }
    if !unassigned && rng.random_bool(0.1) {
        r.push(JumpForward);
    } else {
        r.push(Qualify);
    }

    // Distribution, for leads that arrived without a responsible.
    if unassigned {
        let nurture = if ending == Stage::Distribution {
            rng.random_range(0..=2)
        } else {
            usize::from(rng.random_bool(0.2))
        };
        r.extend(std::iter::repeat_n(Nurture, nurture));
        match ending {
            Stage::Distribution => return r,
            Stage::NeedAbsent => {
                r.push(NeedAbsent);
                return r;
            }
            _ if junk_now(Stage::Distribution) => {
                r.push(Disqualify);
                return r;
            }
            _ => r.push(StartHandoff),
        }
    }

    // Handoff.
    let settle_here = ending == Stage::Handoff;
    if rng.random_bool(0.12) {
        r.push(Reassign);
    }
    if rng.random_bool(0.25) {
        r.push(Touch);
    }
    if rng.random_bool(if settle_here { 0.3 } else { 0.2 }) {
        r.push(Postpone);
    }
    if rng.random_bool(0.08) {
        r.extend([NoInterest, Reschedule]);
    }
    if !settle_here && rng.random_bool(0.05) {
        r.extend([JumpBack, Qualify]);
    }
    if !matches!(ending, Stage::Distribution | Stage::NeedAbsent) && rng.random_bool(0.1) {
        r.push(ReturnToDistribution);
        if rng.random_bool(0.4) {
            r.push(Nurture);
        }
        r.push(StartHandoff);
    }
    match ending {
        Stage::Handoff => match rng.random_range(0..4) {
            0 => {}
            1 => r.push(Postpone),
            2 => r.extend([NoInterest, Reschedule]),
            _ => r.push(NoInterest),
        },
        Stage::Disqualified => r.push(Disqualify),
        Stage::Distribution | Stage::NeedAbsent => {
            if ending == Stage::Distribution && rng.random_bool(0.4) {
                r.extend([Sale(sale_route(rng)), Lost]);
            } else {
                r.push(ReturnToDistribution);
            }
            if rng.random_bool(0.5) {
                r.push(Nurture);
            }
            if ending == Stage::NeedAbsent {
                r.push(NeedAbsent);
            }
        }
        _ => {
            r.push(Sale(sale_route(rng)));
            sale_tail(rng, &mut r, ending);
        }
    }
    r
}

/// AwaitingSale until the deal's outcome; a won story may lose a first deal and try again.
fn sale_tail(rng: &mut ChaCha8Rng, r: &mut Vec<Leg>, ending: Stage) {
    use Leg::*;
    if rng.random_bool(0.2) {
        r.push(Touch);
    }
    if rng.random_bool(0.05) {
        r.push(Reassign);
    }
    if ending == Stage::NeedSatisfied {
        if rng.random_bool(0.15) {
            r.extend([Lost, StartHandoff, Sale(sale_route(rng))]);
        }
        r.push(Won);
    }
}
