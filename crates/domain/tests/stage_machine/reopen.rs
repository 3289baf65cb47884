//! ReopenLead: supervisors only, from a closed stage back to Qualification.

use super::*;

#[test]
fn a_supervisor_reopens_a_disqualified_lead_into_qualification_clearing_the_disqualification() {
    let lead = LeadSpec::new()
        .given(disqualified())
        .by("olga.supervisor")
        .when(reopen())
        .then([
            LeadReopened {
                from: Stage::Disqualified,
                comment: Some(comment("they are back with a new budget")),
            }
            .into(),
            stage_changed(
                Stage::Disqualified,
                Stage::Qualification,
                Transition::Reopened,
            ),
        ]);
    assert_eq!(lead.stage, Stage::Qualification);
    assert_eq!(lead.disqualification, None);
}

#[test]
fn every_closed_stage_can_be_reopened_by_an_admin() {
    for history in [disqualified(), closed_as_need_absent(), need_satisfied()] {
        let lead = LeadSpec::new()
            .given(history)
            .by("admin")
            .when(reopen())
            .then_matches(|events| events.len() == 2);
        assert_eq!(lead.stage, Stage::Qualification);
        assert_eq!(lead.deal, None);
        assert!(lead.open_tasks.is_empty());
    }
}

#[test]
fn a_manager_may_not_reopen() {
    LeadSpec::new()
        .given(disqualified())
        .by("ivan.manager")
        .when(reopen())
        .then_rejects(Rejection::SupervisorOnly {
            command: CommandName::ReopenLead,
            role: Role::Manager,
        })
        .saying("only supervisors and admins may reopen, not a Manager");
}

#[test]
fn only_closed_leads_can_be_reopened() {
    for (stage, history) in one_lead_per_stage() {
        if stage.is_closed() {
            continue;
        }
        LeadSpec::new()
            .given(history)
            .by("olga.supervisor")
            .when(reopen())
            .then_rejects(Rejection::NotAllowedInStage {
                command: CommandName::ReopenLead,
                stage,
            })
            .saying(&format!("cannot reopen a lead in stage {stage}"));
    }
}
