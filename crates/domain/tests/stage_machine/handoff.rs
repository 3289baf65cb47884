//! The handoff task and its five results, the handoff details follow-up, and
//! ScheduleHandoffTask.

use super::*;

#[test]
fn placing_an_order_sends_the_lead_to_awaiting_sale_with_an_order_deal() {
    let lead = LeadSpec::new()
        .given(in_handoff())
        .when(complete(task(1), place_order()))
        .then([
            task_completed(1, SystemTaskKind::Handoff, Some(place_order())),
            maturity_changed(Maturity::Unknown, Maturity::ReadyForSale),
            stage_changed(Stage::Handoff, Stage::AwaitingSale, Transition::PlaceOrder),
            DealOpened {
                deal_id: deal(1),
                kind: SaleKind::Order,
                budget: None,
                sales_direction: None,
            }
            .into(),
        ]);
    assert_eq!(lead.maturity, Maturity::ReadyForSale);
    assert_eq!(
        lead.deal.map(|d| (d.id, d.kind)),
        Some((deal(1), SaleKind::Order))
    );
}

#[test]
fn an_order_deal_carries_the_budget_the_lead_already_has() {
    let with_budget = continue_from(in_handoff())
        .run(update([DetailChange::Budget(Some(rub(40_000)))]))
        .events();
    LeadSpec::new()
        .given(with_budget)
        .when(complete(task(1), place_order()))
        .then_matches(|events| {
            events.last()
                == Some(
                    &DealOpened {
                        deal_id: deal(1),
                        kind: SaleKind::Order,
                        budget: Some(rub(40_000)),
                        sales_direction: None,
                    }
                    .into(),
                )
        });
}

#[test]
fn transferring_to_sale_opens_the_handoff_details_task_for_the_responsible() {
    let lead = LeadSpec::new()
        .given(in_handoff())
        .when(complete(task(1), transfer_to_sale()))
        .then([
            task_completed(1, SystemTaskKind::Handoff, Some(transfer_to_sale())),
            task_opened(
                2,
                SystemTaskKind::HandoffDetails,
                Some(ivan()),
                system_task_due(),
            ),
        ]);
    assert_eq!(lead.stage, Stage::Handoff);
    assert_eq!(lead.maturity, Maturity::Unknown);
}

#[test]
fn submitting_the_handoff_details_sends_the_lead_to_awaiting_sale_with_a_sale_deal() {
    let terms = sale_terms();
    let lead = LeadSpec::new()
        .given(awaiting_handoff_details())
        .when(submit_details(task(2)))
        .then([
            task_completed(2, SystemTaskKind::HandoffDetails, None),
            HandoffDetailsRecorded {
                budget: terms.budget.clone(),
                sales_direction: terms.sales_direction.clone(),
                meeting_at: Some(in_hours(48)),
                decision_at: Some(in_hours(24 * 14)),
                need_type: Some(short("office chairs")),
                comment: Some(comment("decides with the CFO")),
            }
            .into(),
            maturity_changed(Maturity::Unknown, Maturity::ReadyForSale),
            stage_changed(
                Stage::Handoff,
                Stage::AwaitingSale,
                Transition::TransferToSale,
            ),
            DealOpened {
                deal_id: deal(1),
                kind: SaleKind::Sale,
                budget: Some(terms.budget.clone()),
                sales_direction: Some(terms.sales_direction.clone()),
            }
            .into(),
        ]);
    assert_eq!(lead.details.budget, Some(terms.budget));
    assert_eq!(lead.handoff.sales_direction, Some(terms.sales_direction));
    assert_eq!(lead.handoff.meeting_at, Some(in_hours(48)));
    assert_eq!(lead.details.need_type, Some(short("office chairs")));
    assert!(lead.open_tasks.is_empty());
}

#[test]
fn submitting_handoff_details_in_another_currency_is_rejected() {
    LeadSpec::new()
        .given(awaiting_handoff_details())
        .when(SubmitHandoffDetails {
            budget: usd(1_500),
            ..submit_details(task(2))
        })
        .then_rejects(Rejection::NotBaseCurrency {
            expected: Currency::rub(),
            given: Currency::parse("USD").unwrap(),
        });
}

#[test]
fn submitting_handoff_details_without_the_follow_up_task_is_rejected() {
    LeadSpec::new()
        .given(in_handoff())
        .when(submit_details(task(1)))
        .then_rejects(Rejection::NoOpenTask {
            stage: Stage::Handoff,
            kind: "handoff details",
        })
        .saying("the lead in stage Handoff has no open handoff details task");
}

#[test]
fn submitting_handoff_details_for_another_task_is_rejected() {
    LeadSpec::new()
        .given(awaiting_handoff_details())
        .when(submit_details(task(9)))
        .then_rejects(Rejection::TaskMismatch {
            kind: "handoff details",
            open: task(2),
            given: task(9),
        })
        .saying(&format!(
            "task {} is not the lead's open handoff details task {}",
            task(9),
            task(2)
        ));
}

#[test]
fn returning_to_distribution_shows_interest_and_reopens_the_distribution_activity() {
    let lead = LeadSpec::new()
        .given(in_handoff())
        .when(complete(task(1), return_to_distribution()))
        .then([
            task_completed(1, SystemTaskKind::Handoff, Some(return_to_distribution())),
            maturity_changed(Maturity::Unknown, Maturity::InterestShown),
            stage_changed(
                Stage::Handoff,
                Stage::Distribution,
                Transition::ReturnToDistribution,
            ),
            task_opened(2, SystemTaskKind::Distribution, None, system_task_due()),
        ]);
    assert_eq!(lead.maturity, Maturity::InterestShown);
}

#[test]
fn postponing_keeps_the_lead_in_handoff_with_a_new_task_due_then() {
    let until = in_hours(72);
    let lead = LeadSpec::new()
        .given(in_handoff())
        .when(complete(task(1), postponed(until)))
        .then([
            task_completed(1, SystemTaskKind::Handoff, Some(postponed(until))),
            task_opened(2, SystemTaskKind::Handoff, Some(ivan()), until),
        ]);
    assert_eq!(lead.stage, Stage::Handoff);
}

#[test]
fn postponing_into_the_past_is_rejected() {
    LeadSpec::new()
        .given(in_handoff())
        .when(complete(task(1), postponed(in_hours(-2))))
        .then_rejects(Rejection::TimeInPast);
}

#[test]
fn no_interest_closes_the_task_and_keeps_the_lead_in_handoff() {
    let lead = LeadSpec::new()
        .given(in_handoff())
        .when(complete(task(1), no_interest()))
        .then([
            task_completed(1, SystemTaskKind::Handoff, Some(no_interest())),
            maturity_changed(Maturity::Unknown, Maturity::NoInterest),
        ]);
    assert_eq!(lead.stage, Stage::Handoff);
    assert_eq!(lead.maturity, Maturity::NoInterest);
    assert!(lead.open_tasks.is_empty());
}

#[test]
fn after_no_interest_work_resumes_with_a_scheduled_handoff_task() {
    let due = in_hours(24 * 30);
    LeadSpec::new()
        .given(handoff_without_interest())
        .when(schedule_handoff_task(due))
        .then([task_opened(2, SystemTaskKind::Handoff, Some(ivan()), due)]);
}

#[test]
fn after_no_interest_another_result_can_still_be_chosen_by_jumping() {
    LeadSpec::new()
        .given(handoff_without_interest())
        .when(jump("distribution"))
        .then([
            jumped(Stage::Handoff, Stage::Distribution),
            task_opened(2, SystemTaskKind::Distribution, None, system_task_due()),
        ]);
}

#[test]
fn after_no_interest_there_is_no_handoff_task_to_complete() {
    LeadSpec::new()
        .given(handoff_without_interest())
        .when(complete(task(1), place_order()))
        .then_rejects(Rejection::NoOpenTask {
            stage: Stage::Handoff,
            kind: "handoff",
        })
        .saying("the lead in stage Handoff has no open handoff task");
}

#[test]
fn scheduling_a_handoff_task_while_one_is_open_is_rejected() {
    LeadSpec::new()
        .given(in_handoff())
        .when(schedule_handoff_task(in_hours(5)))
        .then_rejects(Rejection::HandoffTaskAlreadyOpen {
            stage: Stage::Handoff,
            task: task(1),
        })
        .saying(&format!(
            "the lead in stage Handoff already has an open handoff task {}",
            task(1)
        ));
}

#[test]
fn scheduling_a_handoff_task_while_details_are_awaited_is_rejected() {
    LeadSpec::new()
        .given(awaiting_handoff_details())
        .when(schedule_handoff_task(in_hours(5)))
        .then_rejects(Rejection::HandoffDetailsPending { task: task(2) })
        .saying(&format!(
            "cannot schedule a handoff task while handoff details are awaited on task {}",
            task(2)
        ));
}

#[test]
fn scheduling_a_handoff_task_in_the_past_is_rejected() {
    LeadSpec::new()
        .given(handoff_without_interest())
        .when(schedule_handoff_task(in_hours(-1)))
        .then_rejects(Rejection::TimeInPast);
}

#[test]
fn completing_a_task_other_than_the_open_handoff_task_is_rejected() {
    LeadSpec::new()
        .given(in_handoff())
        .when(complete(task(7), place_order()))
        .then_rejects(Rejection::TaskMismatch {
            kind: "handoff",
            open: task(1),
            given: task(7),
        })
        .saying(&format!(
            "task {} is not the lead's open handoff task {}",
            task(7),
            task(1)
        ));
}

#[test]
fn the_handoff_details_task_is_not_a_handoff_task() {
    LeadSpec::new()
        .given(awaiting_handoff_details())
        .when(complete(task(2), place_order()))
        .then_rejects(Rejection::NoOpenTask {
            stage: Stage::Handoff,
            kind: "handoff",
        });
}

#[test]
fn handoff_commands_are_rejected_outside_handoff() {
    LeadSpec::new()
        .given(in_distribution())
        .when(complete(task(1), place_order()))
        .then_rejects(Rejection::NotAllowedInStage {
            command: CommandName::CompleteHandoffTask,
            stage: Stage::Distribution,
        })
        .saying("cannot record a handoff task result on a lead in stage Distribution");
    LeadSpec::new()
        .given(registered())
        .when(submit_details(task(1)))
        .then_rejects(Rejection::NotAllowedInStage {
            command: CommandName::SubmitHandoffDetails,
            stage: Stage::Qualification,
        })
        .saying("cannot submit handoff details for a lead in stage Qualification");
    LeadSpec::new()
        .given(registered())
        .when(schedule_handoff_task(in_hours(1)))
        .then_rejects(Rejection::NotAllowedInStage {
            command: CommandName::ScheduleHandoffTask,
            stage: Stage::Qualification,
        })
        .saying("cannot schedule a handoff task for a lead in stage Qualification");
}
