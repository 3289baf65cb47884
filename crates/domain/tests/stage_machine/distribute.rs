//! Distribute: StartHandoff, ContinueNurturing and NeedAbsent, and the distribution activity
//! each of them closes.

use super::*;

#[test]
fn starting_handoff_closes_the_distribution_activity_and_opens_the_handoff_task() {
    let lead = LeadSpec::new()
        .given(in_distribution_with_responsible())
        .by("olga.supervisor")
        .when(DistributionDecision::StartHandoff { remind: true })
        .then([
            task_completed(1, SystemTaskKind::Distribution, None),
            LeadDistributed {
                decision: DistributionDecision::StartHandoff { remind: true },
            }
            .into(),
            stage_changed(
                Stage::Distribution,
                Stage::Handoff,
                Transition::StartHandoff,
            ),
            task_opened(2, SystemTaskKind::Handoff, Some(maria()), system_task_due()),
        ]);
    assert_eq!(lead.stage, Stage::Handoff);
}

#[test]
fn starting_handoff_without_a_responsible_is_rejected() {
    LeadSpec::new()
        .given(in_distribution())
        .when(start_handoff())
        .then_rejects(Rejection::ResponsibleRequired {
            stage: Stage::Distribution,
        })
        .saying("cannot start handoff of a lead in stage Distribution without a responsible");
}

#[test]
fn continuing_nurturing_stays_in_distribution_with_a_new_activity_due_at_the_next_check() {
    let next_check = in_hours(24 * 7);
    let lead = LeadSpec::new()
        .given(in_distribution())
        .when(continue_nurturing(next_check))
        .then([
            task_completed(1, SystemTaskKind::Distribution, None),
            LeadDistributed {
                decision: continue_nurturing(next_check),
            }
            .into(),
            task_opened(2, SystemTaskKind::Distribution, None, next_check),
        ]);
    assert_eq!(lead.stage, Stage::Distribution);
    let nurturing = lead.nurturing.expect("the next check is recorded");
    assert_eq!(nurturing.next_check_at, next_check);
    assert_eq!(
        nurturing.strategy,
        Some(comment("send the spring catalogue, call after it"))
    );
}

#[test]
fn continuing_nurturing_with_a_check_date_in_the_past_is_rejected() {
    LeadSpec::new()
        .given(in_distribution())
        .when(continue_nurturing(in_hours(-1)))
        .then_rejects(Rejection::TimeInPast)
        .saying("the given time must be after the current time");
}

#[test]
fn deciding_the_need_is_absent_closes_the_lead() {
    let lead = LeadSpec::new()
        .given(in_distribution())
        .when(need_absent())
        .then([
            task_completed(1, SystemTaskKind::Distribution, None),
            LeadDistributed {
                decision: need_absent(),
            }
            .into(),
            stage_changed(
                Stage::Distribution,
                Stage::NeedAbsent,
                Transition::NeedAbsent,
            ),
        ]);
    assert!(lead.open_tasks.is_empty());
}

#[test]
fn leaving_distribution_forgets_the_nurturing_plan() {
    let nurtured = continue_from(in_distribution_with_responsible())
        .run(continue_nurturing(in_hours(48)))
        .events();
    let lead = LeadSpec::new()
        .given(nurtured)
        .when(start_handoff())
        .then_matches(|events| events.len() == 4);
    assert_eq!(lead.nurturing, None);
}

#[test]
fn distributing_outside_distribution_is_rejected() {
    LeadSpec::new()
        .given(in_handoff())
        .when(need_absent())
        .then_rejects(Rejection::NotAllowedInStage {
            command: CommandName::Distribute,
            stage: Stage::Handoff,
        })
        .saying("cannot distribute a lead in stage Handoff");
}
