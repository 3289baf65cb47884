//! AssignResponsible: in working stages and AwaitingSale; the same user again changes nothing.

use super::*;

#[test]
fn assigning_a_responsible_records_the_previous_one() {
    let lead = LeadSpec::new()
        .given(registered())
        .when(AssignResponsible {
            to: maria(),
            remind: true,
        })
        .then([ResponsibleAssigned {
            from: Some(ivan()),
            to: maria(),
            remind: true,
        }
        .into()]);
    assert_eq!(lead.responsible, Some(maria()));
}

#[test]
fn a_lead_without_a_responsible_gets_one() {
    LeadSpec::new()
        .given(in_distribution())
        .by("olga.supervisor")
        .when(assign(maria()))
        .then([ResponsibleAssigned {
            from: None,
            to: maria(),
            remind: false,
        }
        .into()]);
}

#[test]
fn the_responsible_may_change_in_every_working_stage_and_while_awaiting_sale() {
    for history in [registered(), in_handoff(), awaiting_sale()] {
        LeadSpec::new()
            .given(history)
            .when(assign(maria()))
            .then([ResponsibleAssigned {
                from: Some(ivan()),
                to: maria(),
                remind: false,
            }
            .into()]);
    }
}

#[test]
fn assigning_the_current_responsible_again_changes_nothing() {
    LeadSpec::new()
        .given(registered())
        .when(AssignResponsible {
            to: ivan(),
            remind: true,
        })
        .then_nothing();
}

#[test]
fn assigning_an_unknown_or_dismissed_user_is_rejected() {
    LeadSpec::new()
        .given(registered())
        .when(assign(stranger()))
        .then_rejects(Rejection::UnknownUser { user: stranger() })
        .saying(&format!("unknown user {}", stranger()));
    LeadSpec::new()
        .given(registered())
        .when(assign(boris()))
        .then_rejects(Rejection::InactiveUser { user: boris() });
}

#[test]
fn closed_leads_cannot_be_reassigned() {
    LeadSpec::new()
        .given(closed_as_need_absent())
        .when(assign(ivan()))
        .then_rejects(Rejection::NotAllowedInStage {
            command: CommandName::AssignResponsible,
            stage: Stage::NeedAbsent,
        })
        .saying("cannot reassign a lead in stage NeedAbsent");
}
