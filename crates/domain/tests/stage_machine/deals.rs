//! Deal won and deal lost, on the deal the lead has open.

use super::*;

#[test]
fn a_won_deal_satisfies_the_need() {
    let lead = LeadSpec::new()
        .given(awaiting_sale())
        .when(deal_won(deal(1)))
        .then([
            DealWon { deal_id: deal(1) }.into(),
            maturity_changed(Maturity::ReadyForSale, Maturity::Satisfied),
            stage_changed(
                Stage::AwaitingSale,
                Stage::NeedSatisfied,
                Transition::DealWon,
            ),
        ]);
    assert!(lead.stage.is_closed());
}

#[test]
fn a_lost_deal_sends_the_lead_back_to_distribution_with_interest_shown() {
    let lead = LeadSpec::new()
        .given(awaiting_sale())
        .when(deal_lost(deal(1)))
        .then([
            DealLost {
                deal_id: deal(1),
                reason: Some(comment("chose a cheaper supplier")),
            }
            .into(),
            maturity_changed(Maturity::ReadyForSale, Maturity::InterestShown),
            stage_changed(
                Stage::AwaitingSale,
                Stage::Distribution,
                Transition::DealLost,
            ),
            task_opened(2, SystemTaskKind::Distribution, None, system_task_due()),
        ]);
    assert_eq!(lead.deal, None);
    assert_eq!(lead.maturity, Maturity::InterestShown);
}

#[test]
fn a_lead_that_lost_its_deal_opens_a_new_one_next_time() {
    let back_in_handoff = continue_from(awaiting_sale())
        .run(deal_lost(deal(1)))
        .run(start_handoff())
        .events();
    LeadSpec::new()
        .given(back_in_handoff)
        .when(complete(task(3), place_order()))
        .then_matches(|events| {
            events.last()
                == Some(
                    &DealOpened {
                        deal_id: deal(2),
                        kind: SaleKind::Order,
                        budget: None,
                        sales_direction: None,
                    }
                    .into(),
                )
        });
}

#[test]
fn recording_the_outcome_of_another_deal_is_rejected() {
    LeadSpec::new()
        .given(awaiting_sale())
        .when(deal_won(deal(5)))
        .then_rejects(Rejection::DealMismatch {
            open: deal(1),
            given: deal(5),
        })
        .saying(&format!(
            "deal {} is not the lead's open deal {}",
            deal(5),
            deal(1)
        ));
    LeadSpec::new()
        .given(awaiting_sale())
        .when(deal_lost(deal(5)))
        .then_rejects(Rejection::DealMismatch {
            open: deal(1),
            given: deal(5),
        });
}

#[test]
fn deal_outcomes_are_only_recorded_while_awaiting_sale() {
    LeadSpec::new()
        .given(in_handoff())
        .when(deal_won(deal(1)))
        .then_rejects(Rejection::NotAllowedInStage {
            command: CommandName::RecordDealWon,
            stage: Stage::Handoff,
        })
        .saying("cannot record a won deal for a lead in stage Handoff");
    LeadSpec::new()
        .given(need_satisfied())
        .when(deal_lost(deal(1)))
        .then_rejects(Rejection::NotAllowedInStage {
            command: CommandName::RecordDealLost,
            stage: Stage::NeedSatisfied,
        })
        .saying("cannot record a lost deal for a lead in stage NeedSatisfied");
}
