//! JumpToStage: who may jump, where to, and what entering the target stage opens.

use super::*;

#[test]
fn the_responsible_may_jump_back_recorded_as_a_jump_with_its_reason() {
    let lead = LeadSpec::new()
        .given(in_handoff())
        .when(jump("qualification"))
        .then([
            task_cancelled(1, SystemTaskKind::Handoff, Stage::Handoff),
            jumped(Stage::Handoff, Stage::Qualification),
        ]);
    assert_eq!(lead.stage, Stage::Qualification);
    assert_eq!(lead.jumps, 1);
    assert!(lead.open_tasks.is_empty());
}

#[test]
fn jumping_into_handoff_opens_its_task() {
    LeadSpec::new()
        .given(registered())
        .when(jump("handoff"))
        .then([
            jumped(Stage::Qualification, Stage::Handoff),
            task_opened(1, SystemTaskKind::Handoff, Some(ivan()), system_task_due()),
        ]);
}

#[test]
fn jumping_into_distribution_opens_the_distribution_activity() {
    LeadSpec::new()
        .given(registered())
        .when(jump("distribution"))
        .then([
            jumped(Stage::Qualification, Stage::Distribution),
            task_opened(1, SystemTaskKind::Distribution, None, system_task_due()),
        ]);
}

#[test]
fn jumping_into_handoff_without_a_responsible_is_rejected() {
    LeadSpec::new()
        .given(in_distribution())
        .by("olga.supervisor")
        .when(jump("handoff"))
        .then_rejects(Rejection::ResponsibleRequired {
            stage: Stage::Distribution,
        });
}

#[test]
fn supervisors_and_admins_may_jump_any_lead() {
    for supervisor in ["olga.supervisor", "sergey.supervisor", "admin"] {
        LeadSpec::new()
            .given(in_handoff())
            .by(supervisor)
            .when(jump("distribution"))
            .then_matches(|events| events.contains(&jumped(Stage::Handoff, Stage::Distribution)));
    }
}

#[test]
fn a_manager_who_is_not_responsible_may_not_jump() {
    // The creator sees the lead (SPEC 3.7) but is not its responsible: maria is. (Anyone else
    // is refused before this rule: the lead is outside their scope, see scope.rs.)
    LeadSpec::new()
        .given(in_distribution_with_responsible())
        .by("ivan.manager")
        .when(jump("qualification"))
        .then_rejects(Rejection::NotAllowedToJump { user: ivan() })
        .saying(&format!(
            "only the responsible or a supervisor may jump a lead, not user {}",
            ivan()
        ));
}

#[test]
fn jumping_into_awaiting_sale_without_budget_and_sales_direction_is_rejected() {
    LeadSpec::new()
        .given(in_handoff())
        .when(jump("awaiting-sale"))
        .then_rejects(Rejection::SaleTermsRequired {
            command: CommandName::JumpToStage,
            stage: Stage::Handoff,
        })
        .saying("cannot jump a lead in stage Handoff without a budget and a sales direction");
}

#[test]
fn jumping_into_awaiting_sale_with_terms_opens_the_deal() {
    let terms = sale_terms();
    let lead = LeadSpec::new()
        .given(in_handoff())
        .when(JumpToStage {
            sale: Some(terms.clone()),
            ..jump("awaiting-sale")
        })
        .then([
            maturity_changed(Maturity::Unknown, Maturity::ReadyForSale),
            task_cancelled(1, SystemTaskKind::Handoff, Stage::Handoff),
            jumped(Stage::Handoff, Stage::AwaitingSale),
            DealOpened {
                deal_id: deal(1),
                kind: SaleKind::Sale,
                budget: Some(terms.budget.clone()),
                sales_direction: Some(terms.sales_direction.clone()),
            }
            .into(),
        ]);
    assert_eq!(lead.deal.map(|d| d.id), Some(deal(1)));
    assert_eq!(lead.jumps, 1);
}

#[test]
fn jumping_into_awaiting_sale_uses_the_lead_s_own_terms() {
    let with_terms = continue_from(registered())
        .run(update([
            DetailChange::Budget(Some(rub(80_000))),
            DetailChange::SalesDirection(Some(short("desks"))),
        ]))
        .events();
    LeadSpec::new()
        .given(with_terms)
        .when(jump("awaiting-sale"))
        .then_matches(|events| {
            events.contains(&jumped(Stage::Qualification, Stage::AwaitingSale))
                && events.last()
                    == Some(
                        &DealOpened {
                            deal_id: deal(1),
                            kind: SaleKind::Sale,
                            budget: Some(rub(80_000)),
                            sales_direction: Some(short("desks")),
                        }
                        .into(),
                    )
        });
}

#[test]
fn jumping_to_a_closed_stage_is_rejected() {
    for (key, stage) in [
        ("disqualified", Stage::Disqualified),
        ("need-absent", Stage::NeedAbsent),
        ("need-satisfied", Stage::NeedSatisfied),
    ] {
        LeadSpec::new()
            .given(in_handoff())
            .when(jump(key))
            .then_rejects(Rejection::JumpTargetClosed { to: stage })
            .saying(&format!(
                "cannot jump to stage {stage}: closed stages are reached only by their own commands"
            ));
    }
}

#[test]
fn jumping_to_a_stage_the_lead_s_funnel_does_not_have_is_rejected() {
    LeadSpec::new()
        .given(in_handoff())
        .when(jump("routing"))
        .then_rejects(Rejection::UnknownStage {
            funnel: funnel("default"),
            stage: stage_key("routing"),
        })
        .saying("funnel default has no stage routing");
}

#[test]
fn jumping_uses_the_stage_names_of_the_lead_s_funnel() {
    let partner_lead = history()
        .run(RegisterLead {
            funnel: Some(funnel("partners")),
            ..register()
        })
        .events();
    LeadSpec::new()
        .given(partner_lead.clone())
        .when(jump("routing"))
        .then_matches(|events| events[0] == jumped(Stage::Qualification, Stage::Distribution));
    LeadSpec::new()
        .given(partner_lead)
        .when(jump("distribution"))
        .then_rejects(Rejection::UnknownStage {
            funnel: funnel("partners"),
            stage: stage_key("distribution"),
        });
}

#[test]
fn jumping_to_the_current_stage_is_rejected() {
    LeadSpec::new()
        .given(in_handoff())
        .when(jump("handoff"))
        .then_rejects(Rejection::AlreadyInStage {
            stage: Stage::Handoff,
        })
        .saying("the lead is already in stage Handoff");
}

#[test]
fn a_lead_whose_funnel_left_the_catalog_cannot_jump() {
    LeadSpec::new()
        .given(in_handoff())
        .with_catalog(|catalog| catalog.funnels.retain(|f| f.id != funnel("default")))
        .when(jump("qualification"))
        .then_rejects(Rejection::UnknownFunnel {
            funnel: funnel("default"),
        });
}

#[test]
fn jumping_is_rejected_outside_the_working_stages() {
    for (stage, history) in one_lead_per_stage() {
        if stage.is_working() {
            continue;
        }
        LeadSpec::new()
            .given(history)
            .by("admin")
            .when(jump("qualification"))
            .then_rejects(Rejection::NotAllowedInStage {
                command: CommandName::JumpToStage,
                stage,
            })
            .saying(&format!("cannot jump a lead in stage {stage}"));
    }
}
