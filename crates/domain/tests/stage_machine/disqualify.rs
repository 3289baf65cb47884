//! DisqualifyLead: a catalog reason, the open system tasks cancelled, working stages only.

use super::*;

#[test]
fn disqualifying_records_the_catalog_reason_and_closes_the_lead() {
    let lead = LeadSpec::new()
        .given(registered())
        .when(disqualify("no-budget"))
        .then([
            LeadDisqualified {
                reason: reason("no-budget"),
                comment: Some(comment("no money until next year")),
            }
            .into(),
            stage_changed(
                Stage::Qualification,
                Stage::Disqualified,
                Transition::Disqualified,
            ),
        ]);
    let disqualification = lead.disqualification.expect("recorded on the lead");
    assert_eq!(disqualification.reason, reason("no-budget"));
}

#[test]
fn disqualifying_in_handoff_cancels_the_open_handoff_task() {
    LeadSpec::new()
        .given(in_handoff())
        .when(disqualify("competitor"))
        .then([
            LeadDisqualified {
                reason: reason("competitor"),
                comment: Some(comment("no money until next year")),
            }
            .into(),
            task_cancelled(1, SystemTaskKind::Handoff, Stage::Handoff),
            stage_changed(
                Stage::Handoff,
                Stage::Disqualified,
                Transition::Disqualified,
            ),
        ]);
}

#[test]
fn disqualifying_cancels_whatever_system_task_is_open() {
    for (history, n, kind, stage) in [
        (
            in_distribution(),
            1,
            SystemTaskKind::Distribution,
            Stage::Distribution,
        ),
        (
            awaiting_handoff_details(),
            2,
            SystemTaskKind::HandoffDetails,
            Stage::Handoff,
        ),
    ] {
        let lead = LeadSpec::new()
            .given(history)
            .when(disqualify("spam"))
            .then_matches(|events| events.contains(&task_cancelled(n, kind, stage)));
        assert!(lead.open_tasks.is_empty());
    }
}

#[test]
fn disqualifying_for_a_reason_outside_the_catalog_is_rejected() {
    LeadSpec::new()
        .given(registered())
        .when(disqualify("rude-customer"))
        .then_rejects(Rejection::UnknownReason {
            reason: reason("rude-customer"),
        })
        .saying("unknown disqualification reason rude-customer");
}

#[test]
fn only_working_leads_can_be_disqualified() {
    for (stage, history) in one_lead_per_stage() {
        if stage.is_working() {
            continue;
        }
        LeadSpec::new()
            .given(history)
            .when(disqualify("spam"))
            .then_rejects(Rejection::NotAllowedInStage {
                command: CommandName::DisqualifyLead,
                stage,
            })
            .saying(&format!("cannot disqualify a lead in stage {stage}"));
    }
}
