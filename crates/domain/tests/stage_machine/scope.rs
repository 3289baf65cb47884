//! Scope (SPEC 3.7): a manager acts only on the leads they are responsible for or created;
//! anyone else's lead is refused as if it did not exist. Supervisors and admins act on every
//! lead.

use super::*;

#[test]
fn a_manager_who_neither_created_nor_is_responsible_for_a_lead_is_refused_whatever_its_stage() {
    for given in [registered(), in_distribution(), in_handoff()] {
        LeadSpec::new()
            .given(given)
            .by("pavel.manager")
            .when(LeadCommand::Qualify(QualifyLead::default()))
            .then_rejects(Rejection::OutOfScope {
                command: CommandName::QualifyLead,
            })
            .saying("cannot qualify a lead outside the actor's scope");
    }
}

#[test]
fn the_creator_keeps_acting_on_a_lead_maria_is_responsible_for() {
    LeadSpec::new()
        .given(in_distribution_with_responsible())
        .by("ivan.manager")
        .when(LeadCommand::Disqualify(disqualify("no-budget")))
        .then_matches(|events| !events.is_empty());
}

#[test]
fn maria_as_responsible_acts_on_a_lead_ivan_created() {
    LeadSpec::new()
        .given(in_distribution_with_responsible())
        .by("maria.manager")
        .when(LeadCommand::Disqualify(disqualify("no-budget")))
        .then_matches(|events| !events.is_empty());
}

#[test]
fn supervisors_and_admins_act_on_every_lead() {
    for user in ["olga.supervisor", "admin"] {
        LeadSpec::new()
            .given(registered())
            .by(user)
            .when(LeadCommand::Qualify(QualifyLead::default()))
            .then_matches(|events| !events.is_empty());
    }
}
