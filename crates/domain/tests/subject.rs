//! A data subject's rules (issue 20) as given/when/then rows: given the events of its stream,
//! when an actor sends a command, then these events or this rejection.

use chrono::{TimeZone, Utc};

use leadflow_domain::subject::{PersonalDataErased, PersonalDataExported};
use leadflow_domain::*;

fn actor(role: Role) -> Actor {
    Actor {
        user: UserId::named(match role {
            Role::Admin => "admin",
            Role::Supervisor => "olga.supervisor",
            Role::Manager => "ivan.manager",
        }),
        role,
    }
}

fn anna() -> SubjectId {
    SubjectId::for_lead(LeadId::from_uuid(uuid::Uuid::from_u128(7)))
}

fn when(
    given: &[SubjectEvent],
    actor: Actor,
    command: SubjectCommand,
) -> Result<Vec<SubjectEvent>, SubjectRejection> {
    let catalog = Catalog::default_catalog();
    let ctx = Context {
        now: Utc.with_ymd_and_hms(2026, 12, 6, 10, 0, 0).unwrap(),
        actor,
        catalog: &catalog,
    };
    let state = SubjectAggregate::fold(given);
    SubjectAggregate::decide(state.as_ref(), &command, &ctx)
}

fn erase(reason: ErasureReason, ticket: Option<&str>) -> SubjectCommand {
    SubjectCommand::Erase {
        subject: anna(),
        reason,
        ticket: ticket.map(|t| TicketRef::parse(t).unwrap()),
    }
}

fn erased() -> SubjectEvent {
    PersonalDataErased {
        subject: anna(),
        by: actor(Role::Admin).user,
        reason_code: ErasureReason::Request,
        ticket: Some(TicketRef::parse("GDPR-2026-0042").unwrap()),
    }
    .into()
}

#[test]
fn an_admin_erases_a_subject_with_a_reason_code_and_a_ticket() {
    assert_eq!(
        when(
            &[],
            actor(Role::Admin),
            erase(ErasureReason::Request, Some("GDPR-2026-0042"))
        ),
        Ok(vec![erased()])
    );
}

#[test]
fn nobody_but_an_admin_erases_or_exports() {
    for role in [Role::Manager, Role::Supervisor] {
        assert_eq!(
            when(&[], actor(role), erase(ErasureReason::Request, None)),
            Err(SubjectRejection::NotAdmin)
        );
        assert_eq!(
            when(
                &[],
                actor(role),
                SubjectCommand::RecordExport {
                    subject: anna(),
                    values: 3,
                    ticket: None
                }
            ),
            Err(SubjectRejection::NotAdmin)
        );
    }
}

#[test]
fn erasing_an_erased_subject_again_changes_nothing() {
    for reason in ErasureReason::ALL {
        assert_eq!(
            when(&[erased()], actor(Role::Admin), erase(reason, None)),
            Ok(vec![])
        );
    }
}

#[test]
fn an_export_is_recorded_without_the_values_even_after_erasure() {
    let command = SubjectCommand::RecordExport {
        subject: anna(),
        values: 5,
        ticket: None,
    };
    let exported: SubjectEvent = PersonalDataExported {
        subject: anna(),
        by: actor(Role::Admin).user,
        values: 5,
        ticket: None,
    }
    .into();
    assert_eq!(
        when(&[], actor(Role::Admin), command.clone()),
        Ok(vec![exported.clone()])
    );
    assert_eq!(
        when(&[erased()], actor(Role::Admin), command),
        Ok(vec![exported])
    );
}

#[test]
fn a_ticket_is_a_reference_never_free_text() {
    for good in ["GDPR-2026-0042", "SR#1187", "jira:PRIV-12", "a"] {
        assert!(TicketRef::parse(good).is_ok(), "{good}");
    }
    for bad in [
        "",
        "Anna asked us on the phone",
        "Смирнова",
        &"x".repeat(65),
    ] {
        assert!(TicketRef::parse(bad).is_err(), "{bad}");
    }
    assert_eq!(
        ErasureReason::parse("retention"),
        Some(ErasureReason::Retention)
    );
    assert_eq!(ErasureReason::parse("because"), None);
}
