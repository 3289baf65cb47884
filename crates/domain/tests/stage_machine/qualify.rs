//! QualifyLead: the contact data it needs, the contact and account it creates or links, and
//! where it sends the lead (Handoff with a responsible, Distribution without).

use super::*;

#[test]
fn qualifying_with_a_responsible_creates_the_contact_and_skips_to_handoff_with_its_task() {
    let lead = LeadSpec::new().given(registered()).when(qualify()).then([
        LeadQualified {
            contact: Some(created_contact()),
            account: None,
        }
        .into(),
        stage_changed(Stage::Qualification, Stage::Handoff, Transition::Qualified),
        task_opened(1, SystemTaskKind::Handoff, Some(ivan()), system_task_due()),
    ]);
    assert_eq!(lead.contact, Some(ContactId::for_lead(lead_id())));
    assert_eq!(lead.stage, Stage::Handoff);
}

#[test]
fn qualifying_without_a_responsible_sends_the_lead_to_distribution_with_a_distribution_activity() {
    let lead = LeadSpec::new()
        .given(registered_unassigned())
        .when(qualify())
        .then([
            LeadQualified {
                contact: Some(created_contact()),
                account: None,
            }
            .into(),
            stage_changed(
                Stage::Qualification,
                Stage::Distribution,
                Transition::Qualified,
            ),
            task_opened(1, SystemTaskKind::Distribution, None, system_task_due()),
        ]);
    assert_eq!(lead.stage, Stage::Distribution);
    assert_eq!(lead.open_tasks.len(), 1);
}

#[test]
fn qualifying_creates_the_contact_and_the_account_the_lead_names() {
    let details = LeadDetails {
        account_name: Some(name("Romashka LLC")),
        ..contact_details()
    };
    let lead = LeadSpec::new()
        .given(
            history()
                .run(RegisterLead {
                    details,
                    ..register()
                })
                .events(),
        )
        .when(qualify())
        .then_matches(|events| {
            events[0]
                == LeadQualified {
                    contact: Some(created_contact()),
                    account: Some(created_account()),
                }
                .into()
        });
    assert_eq!(lead.account, Some(AccountId::for_lead(lead_id())));
}

#[test]
fn qualifying_links_an_existing_contact_and_account_instead_of_creating_them() {
    let details = LeadDetails {
        account_name: Some(name("Romashka LLC")),
        ..contact_details()
    };
    let lead = LeadSpec::new()
        .given(
            history()
                .run(RegisterLead {
                    details,
                    ..register()
                })
                .events(),
        )
        .when(QualifyLead {
            link_contact: Some(existing_contact()),
            link_account: Some(existing_account()),
        })
        .then_matches(|events| {
            events[0]
                == LeadQualified {
                    contact: Some(ContactLink {
                        contact_id: existing_contact(),
                        created: false,
                        name: None,
                    }),
                    account: Some(AccountLink {
                        account_id: existing_account(),
                        created: false,
                        name: None,
                    }),
                }
                .into()
        });
    assert_eq!(lead.contact, Some(existing_contact()));
    assert_eq!(lead.account, Some(existing_account()));
}

#[test]
fn an_account_name_is_enough_to_qualify() {
    let details = LeadDetails {
        account_name: Some(name("Romashka LLC")),
        ..bare_details()
    };
    LeadSpec::new()
        .given(
            history()
                .run(RegisterLead {
                    details,
                    ..register()
                })
                .events(),
        )
        .when(qualify())
        .then([
            LeadQualified {
                contact: None,
                account: Some(created_account()),
            }
            .into(),
            stage_changed(Stage::Qualification, Stage::Handoff, Transition::Qualified),
            task_opened(1, SystemTaskKind::Handoff, Some(ivan()), system_task_due()),
        ]);
}

#[test]
fn an_email_is_as_good_as_a_phone_to_qualify() {
    let details = LeadDetails {
        phones: vec![],
        emails: vec![email()],
        ..contact_details()
    };
    LeadSpec::new()
        .given(
            history()
                .run(RegisterLead {
                    details,
                    ..register()
                })
                .events(),
        )
        .when(qualify())
        .then_matches(|events| events.len() == 3);
}

#[test]
fn qualifying_without_contact_data_is_rejected() {
    LeadSpec::new()
        .given(
            history()
                .run(RegisterLead {
                    details: bare_details(),
                    ..register()
                })
                .events(),
        )
        .when(qualify())
        .then_rejects(Rejection::QualificationNeedsContactData {
            stage: Stage::Qualification,
        })
        .saying(
            "cannot qualify a lead in stage Qualification without a contact \
             (name and phone or e-mail) or an account name",
        );
}

#[test]
fn a_contact_name_without_a_phone_or_email_is_not_enough_to_qualify() {
    let details = LeadDetails {
        phones: vec![],
        ..contact_details()
    };
    LeadSpec::new()
        .given(
            history()
                .run(RegisterLead {
                    details,
                    ..register()
                })
                .events(),
        )
        .when(qualify())
        .then_rejects(Rejection::QualificationNeedsContactData {
            stage: Stage::Qualification,
        });
}

#[test]
fn a_phone_without_a_contact_name_is_not_enough_to_qualify() {
    let details = LeadDetails {
        contact_name: None,
        ..contact_details()
    };
    LeadSpec::new()
        .given(
            history()
                .run(RegisterLead {
                    details,
                    ..register()
                })
                .events(),
        )
        .when(qualify())
        .then_rejects(Rejection::QualificationNeedsContactData {
            stage: Stage::Qualification,
        });
}

#[test]
fn linking_an_existing_contact_makes_a_lead_without_contact_data_qualifiable() {
    LeadSpec::new()
        .given(
            history()
                .run(RegisterLead {
                    details: bare_details(),
                    ..register()
                })
                .events(),
        )
        .when(QualifyLead {
            link_contact: Some(existing_contact()),
            link_account: None,
        })
        .then_matches(|events| {
            events[0]
                == LeadQualified {
                    contact: Some(ContactLink {
                        contact_id: existing_contact(),
                        created: false,
                        name: None,
                    }),
                    account: None,
                }
                .into()
        });
}

#[test]
fn a_contact_linked_by_an_earlier_conversion_is_not_created_again_at_qualification() {
    let converted = continue_from(registered())
        .run(ConvertLead {
            contact: Some(Target::Link(existing_contact())),
            ..convert()
        })
        .events();
    let lead = LeadSpec::new()
        .given(converted)
        .when(qualify())
        .then_matches(|events| {
            events[0]
                == LeadQualified {
                    contact: None,
                    account: None,
                }
                .into()
        });
    assert_eq!(lead.contact, Some(existing_contact()));
}

#[test]
fn qualifying_outside_qualification_is_rejected() {
    LeadSpec::new()
        .given(in_distribution())
        .when(qualify())
        .then_rejects(Rejection::NotAllowedInStage {
            command: CommandName::QualifyLead,
            stage: Stage::Distribution,
        })
        .saying("cannot qualify a lead in stage Distribution");
}
