//! RegisterLead: where a new lead starts, who is responsible, and what the catalog refuses.

use super::*;

#[test]
fn registering_starts_the_lead_in_qualification_of_the_default_funnel_with_the_creator_responsible()
{
    LeadSpec::new()
        .by("ivan.manager")
        .when(register())
        .then([registered_event(
            Some(ivan()),
            taken_by_ivan_now(contact_details()),
        )]);
}

#[test]
fn registering_into_a_named_funnel_starts_in_its_first_stage() {
    let lead = LeadSpec::new()
        .when(RegisterLead {
            funnel: Some(funnel("partners")),
            ..register()
        })
        .then_matches(|events| {
            matches!(events, [LeadEvent::LeadRegistered(e)]
                if e.funnel == funnel("partners") && e.stage == Stage::Qualification)
        });
    assert_eq!(lead.stage, Stage::Qualification);
    assert_eq!(lead.maturity, Maturity::Unknown);
}

#[test]
fn registering_for_another_user_makes_them_responsible() {
    LeadSpec::new()
        .when(RegisterLead {
            responsible: ResponsibleChoice::User(maria()),
            ..register()
        })
        .then([registered_event(
            Some(maria()),
            taken_by_ivan_now(contact_details()),
        )]);
}

#[test]
fn a_lead_may_be_registered_without_a_responsible() {
    let lead = LeadSpec::new()
        .when(register_unassigned())
        .then([registered_event(None, taken_by_ivan_now(contact_details()))]);
    assert_eq!(lead.responsible, None);
    assert_eq!(lead.created_by, ivan());
}

#[test]
fn registering_keeps_who_took_the_inquiry_when_intake_names_them() {
    let details = LeadDetails {
        taken_by: Some(maria()),
        taken_at: Some(in_hours(-3)),
        ..contact_details()
    };
    LeadSpec::new()
        .when(RegisterLead {
            details: details.clone(),
            ..register()
        })
        .then([registered_event(Some(ivan()), details)]);
}

#[test]
fn a_source_not_counted_in_statistics_makes_the_lead_non_advertising() {
    let details = LeadDetails {
        source: Some(source("internal")),
        ..contact_details()
    };
    let lead = LeadSpec::new()
        .when(RegisterLead {
            details,
            ..register()
        })
        .then_matches(|events| events.len() == 1);
    assert!(!lead.details.advertising);
}

#[test]
fn a_counted_source_keeps_the_lead_advertising() {
    let details = LeadDetails {
        source: Some(source("website")),
        ..contact_details()
    };
    let lead = LeadSpec::new()
        .when(RegisterLead {
            details,
            ..register()
        })
        .then_matches(|events| events.len() == 1);
    assert!(lead.details.advertising);
}

#[test]
fn registering_into_an_unknown_funnel_is_rejected() {
    LeadSpec::new()
        .when(RegisterLead {
            funnel: Some(funnel("wholesale")),
            ..register()
        })
        .then_rejects(Rejection::UnknownFunnel {
            funnel: funnel("wholesale"),
        })
        .saying("unknown funnel wholesale");
}

#[test]
fn registering_for_an_unknown_user_is_rejected() {
    LeadSpec::new()
        .when(RegisterLead {
            responsible: ResponsibleChoice::User(stranger()),
            ..register()
        })
        .then_rejects(Rejection::UnknownUser { user: stranger() })
        .saying(&format!("unknown user {}", stranger()));
}

#[test]
fn registering_for_a_dismissed_user_is_rejected() {
    LeadSpec::new()
        .when(RegisterLead {
            responsible: ResponsibleChoice::User(boris()),
            ..register()
        })
        .then_rejects(Rejection::InactiveUser { user: boris() })
        .saying(&format!(
            "user {} is dismissed and cannot take leads",
            boris()
        ));
}

#[test]
fn a_dismissed_user_cannot_register_a_lead_for_themselves() {
    LeadSpec::new()
        .by("boris.dismissed")
        .when(register())
        .then_rejects(Rejection::InactiveUser { user: boris() });
}

#[test]
fn an_integration_outside_the_catalog_registers_leads_without_a_responsible() {
    let web_form = user("integration.web-form");
    LeadSpec::new()
        .as_user(web_form, Role::Manager)
        .when(register_unassigned())
        .then_matches(|events| {
            matches!(events, [LeadEvent::LeadRegistered(e)]
                if e.created_by == web_form && e.responsible.is_none())
        });
}

#[test]
fn registering_a_budget_outside_the_base_currency_is_rejected() {
    LeadSpec::new()
        .when(RegisterLead {
            details: LeadDetails {
                budget: Some(usd(2_000)),
                ..contact_details()
            },
            ..register()
        })
        .then_rejects(Rejection::NotBaseCurrency {
            expected: Currency::rub(),
            given: Currency::parse("USD").unwrap(),
        })
        .saying("amounts must be in the base currency RUB, not USD");
}

#[test]
fn registering_from_an_unknown_source_is_rejected() {
    LeadSpec::new()
        .when(RegisterLead {
            details: LeadDetails {
                source: Some(source("billboard")),
                ..contact_details()
            },
            ..register()
        })
        .then_rejects(Rejection::UnknownCatalogCode {
            kind: "source",
            code: "billboard".to_owned(),
        })
        .saying("unknown source billboard");
}

#[test]
fn registering_through_an_unknown_channel_or_department_is_rejected() {
    use leadflow_domain::{ChannelCode, DepartmentId};
    let unknown_channel = LeadDetails {
        channel: Some(ChannelCode::parse("pigeon").unwrap()),
        ..contact_details()
    };
    LeadSpec::new()
        .when(RegisterLead {
            details: unknown_channel,
            ..register()
        })
        .then_rejects(Rejection::UnknownCatalogCode {
            kind: "channel",
            code: "pigeon".to_owned(),
        })
        .saying("unknown channel pigeon");
    let unknown_department = LeadDetails {
        department: Some(DepartmentId::parse("retail").unwrap()),
        ..contact_details()
    };
    LeadSpec::new()
        .when(RegisterLead {
            details: unknown_department,
            ..register()
        })
        .then_rejects(Rejection::UnknownCatalogCode {
            kind: "department",
            code: "retail".to_owned(),
        })
        .saying("unknown department retail");
}

#[test]
fn registering_with_an_unknown_taker_is_rejected() {
    LeadSpec::new()
        .when(RegisterLead {
            details: LeadDetails {
                taken_by: Some(stranger()),
                ..contact_details()
            },
            ..register()
        })
        .then_rejects(Rejection::UnknownUser { user: stranger() });
}

#[test]
fn registering_twice_is_rejected() {
    LeadSpec::new()
        .given(registered())
        .when(register())
        .then_rejects(Rejection::AlreadyRegistered { lead: lead_id() })
        .saying(&format!("lead {} is already registered", lead_id()));
}

#[test]
fn every_other_command_on_an_unregistered_lead_is_rejected() {
    for command in one_command_of_each_kind().into_iter().skip(1) {
        let name = command.name();
        LeadSpec::new()
            .when(command)
            .then_rejects(Rejection::NotRegistered { command: name })
            .saying(&format!(
                "cannot {} a lead that is not registered",
                name.verb()
            ));
    }
}

#[test]
fn qualifying_an_unregistered_lead_names_the_command() {
    LeadSpec::new()
        .when(qualify())
        .then_rejects(Rejection::NotRegistered {
            command: CommandName::QualifyLead,
        })
        .saying("cannot qualify a lead that is not registered");
}
