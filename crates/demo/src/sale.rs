//! The four ways into AwaitingSale (seed 002's TransferToSale with its handoff details,
//! PlaceOrder, a conversion with a deal, a jump with sale terms) and the deal's terms. Kept
//! apart from the other legs because it is where the money is: budgets and sales directions
//! come from the lead's offer here.

use chrono::Duration;
use rand::Rng;

use leadflow_domain::commands::*;
use leadflow_domain::details::DetailChange;
use leadflow_domain::events::{HandoffResult, SystemTaskKind};
use leadflow_domain::{LeadCommand, Stage};

use crate::card::{rub, text, Card};
use crate::legs::{comment, days, handoff_result, hours, open_task, reassign};
use crate::script::SaleRoute;
use crate::story::Story;
use crate::texts::{self, pick};
use crate::DemoError;

/// A budget about 5-25 % above `old` (a refined estimate), or the offer's when none was known.
pub fn new_budget(s: &mut Story, card: &Card) -> i64 {
    match s.lead().details.budget.as_ref().map(|m| m.minor()) {
        None => texts::budget_minor(&mut s.rng, card.offer),
        Some(old) => {
            let raised = old / 100 * s.rng.random_range(105..=125) / 100_000 * 100_000;
            raised.max(old + 100_000)
        }
    }
}

/// The deal's terms: the budget the lead carries (or the offer's), the offer's direction.
fn terms(s: &mut Story, card: &Card) -> SaleTerms {
    let budget = match s.lead().details.budget.clone() {
        Some(b) if s.rng.random_bool(0.6) => b,
        _ => rub(texts::budget_minor(&mut s.rng, card.offer)),
    };
    SaleTerms {
        budget,
        sales_direction: text("sales direction", card.offer.sales_direction),
    }
}

/// Takes the lead to AwaitingSale along `route`.
pub async fn sale(s: &mut Story<'_>, card: &Card, route: SaleRoute) -> Result<(), DemoError> {
    use LeadCommand as C;
    s.wait(days(1), days(10));
    if s.lead().responsible.is_none() {
        // Converted straight from an inbound inquiry: someone must own the deal.
        reassign(s).await?;
    }
    match route {
        SaleRoute::Transfer => {
            let result = HandoffResult::TransferToSale {
                comment: text("comment", pick(&mut s.rng, texts::TRANSFER_TO_SALE)),
            };
            handoff_result(s, result).await?;
            s.wait(hours(2), days(3));
            let task_id = open_task(s, SystemTaskKind::HandoffDetails, "a handoff details task")?;
            let SaleTerms {
                budget,
                sales_direction,
            } = terms(s, card);
            let meeting_at = s.later(days(1), days(10));
            let decision_at = meeting_at + days(s.rng.random_range(5..=30));
            let need_type = s
                .rng
                .random_bool(0.7)
                .then(|| text("need type", card.offer.need_type));
            let cmd = SubmitHandoffDetails {
                task_id,
                budget,
                sales_direction,
                meeting_at,
                decision_at,
                need_type,
                comment: comment(s, 0.6, texts::HANDOFF_DETAILS),
            };
            let actor = s.responsible_or_supervisor();
            s.run(actor, C::SubmitHandoffDetails(cmd)).await
        }
        SaleRoute::PlaceOrder => {
            if s.lead().details.budget.is_none() {
                // The order's amount goes on the card first, so the deal opens with it.
                let budget = DetailChange::Budget(Some(rub(new_budget(s, card))));
                let actor = s.responsible_or_supervisor();
                let cmd = UpdateLeadDetails {
                    changes: vec![budget],
                };
                s.run(actor, C::UpdateDetails(cmd)).await?;
                s.wait(Duration::minutes(5), hours(2));
            }
            let result = HandoffResult::PlaceOrder {
                comment: comment(s, 0.6, texts::PLACE_ORDER),
            };
            handoff_result(s, result).await
        }
        SaleRoute::Convert => {
            let lead = s.lead();
            let contact = (lead.contact.is_some() || lead.details.contact_name.is_some())
                .then_some(Target::CreateFromLead);
            let account = (lead.account.is_some() || lead.details.account_name.is_some())
                .then_some(Target::CreateFromLead);
            let actor = s.cast.converter(lead, s.team);
            let cmd = ConvertLead {
                contact,
                account,
                deal: Some(Some(terms(s, card))),
            };
            s.run(actor, C::Convert(cmd)).await
        }
        SaleRoute::Jump => {
            let actor = if s.rng.random_bool(0.6) {
                s.team.supervisor
            } else {
                s.responsible_or_supervisor()
            };
            let cmd = JumpToStage {
                stage: s.team.key(Stage::AwaitingSale),
                reason: text("reason", pick(&mut s.rng, texts::JUMP_TO_SALE)),
                sale: Some(terms(s, card)),
            };
            s.run(actor, C::JumpToStage(cmd)).await
        }
    }
}
