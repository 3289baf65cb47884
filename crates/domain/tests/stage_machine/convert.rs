//! ConvertLead: any combination of contact, account and deal; with a deal to AwaitingSale
//! recording the stages skipped; who may convert.

use super::*;

#[test]
fn converting_to_a_contact_only_links_it_and_keeps_the_stage() {
    let lead = LeadSpec::new()
        .given(registered())
        .when(ConvertLead {
            contact: Some(Target::CreateFromLead),
            ..convert()
        })
        .then([LeadConverted {
            contact: Some(created_contact()),
            account: None,
            deal: None,
            skipped: vec![],
            by_role: Role::Manager,
        }
        .into()]);
    assert_eq!(lead.stage, Stage::Qualification);
    assert_eq!(lead.contact, Some(ContactId::for_lead(lead_id())));
}

#[test]
fn converting_to_an_account_only_links_it_and_keeps_the_stage() {
    let lead = LeadSpec::new()
        .given(in_distribution())
        .when(ConvertLead {
            account: Some(Target::Link(existing_account())),
            ..convert()
        })
        .then([LeadConverted {
            contact: None,
            account: Some(AccountLink {
                account_id: existing_account(),
                created: false,
                name: None,
            }),
            deal: None,
            skipped: vec![],
            by_role: Role::Manager,
        }
        .into()]);
    assert_eq!(lead.stage, Stage::Distribution);
    assert_eq!(lead.open_tasks.len(), 1, "the distribution activity stays");
}

#[test]
fn converting_to_contact_account_and_deal_goes_to_awaiting_sale_recording_the_skipped_stages() {
    let details = LeadDetails {
        account_name: Some(name("Romashka LLC")),
        ..contact_details()
    };
    let terms = sale_terms();
    let lead = LeadSpec::new()
        .given(
            history()
                .run(RegisterLead {
                    details,
                    ..register()
                })
                .events(),
        )
        .when(ConvertLead {
            contact: Some(Target::CreateFromLead),
            account: Some(Target::CreateFromLead),
            deal: Some(Some(terms.clone())),
        })
        .then([
            LeadConverted {
                contact: Some(created_contact()),
                account: Some(created_account()),
                deal: Some(deal(1)),
                skipped: vec![Stage::Distribution, Stage::Handoff],
                by_role: Role::Manager,
            }
            .into(),
            maturity_changed(Maturity::Unknown, Maturity::ReadyForSale),
            stage_changed(
                Stage::Qualification,
                Stage::AwaitingSale,
                Transition::Converted,
            ),
            DealOpened {
                deal_id: deal(1),
                kind: SaleKind::Sale,
                budget: Some(terms.budget.clone()),
                sales_direction: Some(terms.sales_direction.clone()),
            }
            .into(),
        ]);
    assert_eq!(lead.stage, Stage::AwaitingSale);
    assert_eq!(lead.details.budget, Some(terms.budget));
}

#[test]
fn any_combination_of_targets_converts_and_only_a_deal_moves_the_lead() {
    let details = LeadDetails {
        account_name: Some(name("Romashka LLC")),
        ..contact_details()
    };
    let given = history()
        .run(RegisterLead {
            details,
            ..register()
        })
        .events();
    let contacts = [
        None,
        Some(Target::CreateFromLead),
        Some(Target::Link(existing_contact())),
    ];
    let accounts = [
        None,
        Some(Target::CreateFromLead),
        Some(Target::Link(existing_account())),
    ];
    for contact in contacts {
        for account in accounts {
            for deal_terms in [None, Some(Some(sale_terms()))] {
                let with_deal = deal_terms.is_some();
                let command = ConvertLead {
                    contact,
                    account,
                    deal: deal_terms,
                };
                let outcome = LeadSpec::new().given(given.clone()).when(command.clone());
                if contact.is_none() && account.is_none() && !with_deal {
                    outcome.then_rejects(Rejection::NothingToConvert);
                    continue;
                }
                let lead = outcome.then_matches(|events| {
                    matches!(&events[0], LeadEvent::LeadConverted(c)
                        if c.contact.is_some() == contact.is_some()
                        && c.account.is_some() == account.is_some()
                        && c.deal.is_some() == with_deal)
                });
                let expected_stage = if with_deal {
                    Stage::AwaitingSale
                } else {
                    Stage::Qualification
                };
                assert_eq!(lead.stage, expected_stage, "{command:?}");
                if let Some(Target::Link(id)) = contact {
                    assert_eq!(lead.contact, Some(id));
                }
                if let Some(Target::CreateFromLead) = account {
                    assert_eq!(lead.account, Some(AccountId::for_lead(lead_id())));
                }
            }
        }
    }
}

#[test]
fn converting_a_deal_from_distribution_skips_handoff_and_cancels_the_activity() {
    LeadSpec::new()
        .given(in_distribution())
        .when(ConvertLead {
            deal: Some(Some(sale_terms())),
            ..convert()
        })
        .then_matches(|events| {
            matches!(&events[0], LeadEvent::LeadConverted(c)
                if c.skipped == [Stage::Handoff] && c.deal == Some(deal(1)))
                && events.contains(&task_cancelled(
                    1,
                    SystemTaskKind::Distribution,
                    Stage::Distribution,
                ))
        });
}

#[test]
fn converting_an_already_created_contact_links_it_instead_of_creating_it_again() {
    LeadSpec::new()
        .given(in_handoff())
        .when(ConvertLead {
            contact: Some(Target::CreateFromLead),
            deal: Some(Some(sale_terms())),
            ..convert()
        })
        .then([
            LeadConverted {
                contact: Some(ContactLink {
                    contact_id: ContactId::for_lead(lead_id()),
                    created: false,
                    name: None,
                }),
                account: None,
                deal: Some(deal(1)),
                skipped: vec![],
                by_role: Role::Manager,
            }
            .into(),
            maturity_changed(Maturity::Unknown, Maturity::ReadyForSale),
            task_cancelled(1, SystemTaskKind::Handoff, Stage::Handoff),
            stage_changed(Stage::Handoff, Stage::AwaitingSale, Transition::Converted),
            DealOpened {
                deal_id: deal(1),
                kind: SaleKind::Sale,
                budget: Some(sale_terms().budget),
                sales_direction: Some(sale_terms().sales_direction),
            }
            .into(),
        ]);
}

#[test]
fn converting_an_existing_client_links_it_and_opens_only_the_deal() {
    LeadSpec::new()
        .given(registered())
        .when(ConvertLead {
            contact: Some(Target::Link(existing_contact())),
            account: Some(Target::Link(existing_account())),
            deal: Some(Some(sale_terms())),
        })
        .then([
            LeadConverted {
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
                deal: Some(deal(1)),
                skipped: vec![Stage::Distribution, Stage::Handoff],
                by_role: Role::Manager,
            }
            .into(),
            maturity_changed(Maturity::Unknown, Maturity::ReadyForSale),
            stage_changed(
                Stage::Qualification,
                Stage::AwaitingSale,
                Transition::Converted,
            ),
            DealOpened {
                deal_id: deal(1),
                kind: SaleKind::Sale,
                budget: Some(sale_terms().budget),
                sales_direction: Some(sale_terms().sales_direction),
            }
            .into(),
        ]);
}

#[test]
fn converting_to_a_deal_on_the_lead_s_own_terms() {
    let with_terms = continue_from(registered())
        .run(update([
            DetailChange::Budget(Some(rub(80_000))),
            DetailChange::SalesDirection(Some(short("desks"))),
        ]))
        .events();
    LeadSpec::new()
        .given(with_terms)
        .when(ConvertLead {
            deal: Some(None),
            ..convert()
        })
        .then_matches(|events| {
            events.last()
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
fn converting_to_a_deal_needs_a_budget_and_a_sales_direction() {
    let budget_only = continue_from(registered())
        .run(update([DetailChange::Budget(Some(rub(80_000)))]))
        .events();
    LeadSpec::new()
        .given(budget_only)
        .when(ConvertLead {
            deal: Some(None),
            ..convert()
        })
        .then_rejects(Rejection::SaleTermsRequired {
            command: CommandName::ConvertLead,
            stage: Stage::Qualification,
        })
        .saying(
            "cannot convert a lead in stage Qualification without a budget and a sales direction",
        );
}

#[test]
fn converting_to_a_deal_in_another_currency_is_rejected() {
    LeadSpec::new()
        .given(registered())
        .when(ConvertLead {
            deal: Some(Some(SaleTerms {
                budget: usd(100),
                sales_direction: short("desks"),
            })),
            ..convert()
        })
        .then_rejects(Rejection::NotBaseCurrency {
            expected: Currency::rub(),
            given: Currency::parse("USD").unwrap(),
        });
}

#[test]
fn converting_with_no_target_is_rejected() {
    LeadSpec::new()
        .given(registered())
        .when(convert())
        .then_rejects(Rejection::NothingToConvert)
        .saying("a conversion needs at least one target: contact, account or deal");
}

#[test]
fn creating_a_contact_or_account_the_lead_does_not_name_is_rejected() {
    let nameless = history()
        .run(RegisterLead {
            details: bare_details(),
            ..register()
        })
        .events();
    LeadSpec::new()
        .given(nameless.clone())
        .when(ConvertLead {
            contact: Some(Target::CreateFromLead),
            ..convert()
        })
        .then_rejects(Rejection::NoContactToCreate)
        .saying("cannot create a contact from a lead without a contact name");
    LeadSpec::new()
        .given(nameless)
        .when(ConvertLead {
            account: Some(Target::CreateFromLead),
            ..convert()
        })
        .then_rejects(Rejection::NoAccountToCreate)
        .saying("cannot create an account from a lead without an account name");
}

#[test]
fn the_supervisor_of_the_creators_department_may_convert() {
    LeadSpec::new()
        .given(registered())
        .by("olga.supervisor")
        .when(ConvertLead {
            contact: Some(Target::CreateFromLead),
            ..convert()
        })
        .then_matches(|events| {
            matches!(events, [LeadEvent::LeadConverted(c)] if c.by_role == Role::Supervisor)
        });
}

#[test]
fn an_admin_may_convert_any_lead() {
    LeadSpec::new()
        .given(registered())
        .by("admin")
        .when(ConvertLead {
            contact: Some(Target::CreateFromLead),
            ..convert()
        })
        .then_matches(
            |events| matches!(events, [LeadEvent::LeadConverted(c)] if c.by_role == Role::Admin),
        );
}

#[test]
fn a_supervisor_of_another_department_may_not_convert() {
    LeadSpec::new()
        .given(registered())
        .by("sergey.supervisor")
        .when(ConvertLead {
            contact: Some(Target::CreateFromLead),
            ..convert()
        })
        .then_rejects(Rejection::NotAllowedToConvert { user: sergey() })
        .saying(&format!(
            "only the creator, their supervisor or an admin may convert a lead, not user {}",
            sergey()
        ));
}

#[test]
fn a_manager_who_did_not_create_the_lead_may_not_convert_it_even_as_responsible() {
    let maria_responsible = history()
        .run(RegisterLead {
            responsible: ResponsibleChoice::User(maria()),
            ..register()
        })
        .events();
    LeadSpec::new()
        .given(maria_responsible)
        .by("maria.manager")
        .when(ConvertLead {
            contact: Some(Target::CreateFromLead),
            ..convert()
        })
        .then_rejects(Rejection::NotAllowedToConvert { user: maria() });
}

#[test]
fn any_supervisor_may_convert_a_lead_an_integration_registered() {
    let from_web_form = history()
        .as_user(user("integration.web-form"), Role::Manager)
        .run(register_unassigned())
        .events();
    LeadSpec::new()
        .given(from_web_form)
        .by("sergey.supervisor")
        .when(ConvertLead {
            contact: Some(Target::CreateFromLead),
            ..convert()
        })
        .then_matches(|events| events.len() == 1);
}

#[test]
fn the_settings_decide_who_may_convert() {
    use leadflow_domain::catalog::ConvertPolicy;
    let maria_responsible = history()
        .run(RegisterLead {
            responsible: ResponsibleChoice::User(maria()),
            ..register()
        })
        .events();
    let contact_only = || ConvertLead {
        contact: Some(Target::CreateFromLead),
        ..convert()
    };
    // The responsible too, when the settings say so.
    LeadSpec::new()
        .given(maria_responsible.clone())
        .by("maria.manager")
        .with_catalog(|c| {
            c.settings.who_may_convert = ConvertPolicy::CreatorResponsibleAndSupervisor
        })
        .when(contact_only())
        .then_matches(|events| events.len() == 1);
    // Supervisors only: not even the creator.
    LeadSpec::new()
        .given(maria_responsible.clone())
        .by("ivan.manager")
        .with_catalog(|c| c.settings.who_may_convert = ConvertPolicy::SupervisorsOnly)
        .when(contact_only())
        .then_rejects(Rejection::NotAllowedToConvert { user: ivan() });
    LeadSpec::new()
        .given(maria_responsible.clone())
        .by("olga.supervisor")
        .with_catalog(|c| c.settings.who_may_convert = ConvertPolicy::SupervisorsOnly)
        .when(contact_only())
        .then_matches(|events| events.len() == 1);
    // Admins only.
    LeadSpec::new()
        .given(maria_responsible.clone())
        .by("olga.supervisor")
        .with_catalog(|c| c.settings.who_may_convert = ConvertPolicy::AdminsOnly)
        .when(contact_only())
        .then_rejects(Rejection::NotAllowedToConvert { user: olga() });
    LeadSpec::new()
        .given(maria_responsible)
        .by("admin")
        .with_catalog(|c| c.settings.who_may_convert = ConvertPolicy::AdminsOnly)
        .when(contact_only())
        .then_matches(|events| events.len() == 1);
}

#[test]
fn converting_is_rejected_outside_the_working_stages() {
    LeadSpec::new()
        .given(awaiting_sale())
        .when(ConvertLead {
            contact: Some(Target::CreateFromLead),
            ..convert()
        })
        .then_rejects(Rejection::NotAllowedInStage {
            command: CommandName::ConvertLead,
            stage: Stage::AwaitingSale,
        })
        .saying("cannot convert a lead in stage AwaitingSale");
}
