//! The ops stream's rules (issue 12) as given/when/then rows: given the actions recorded,
//! when an actor records another, then this event or this rejection.

use chrono::{TimeZone, Utc};

use leadflow_domain::ops::*;
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

fn when(
    given: &[OpsEvent],
    actor: Actor,
    command: OpsCommand,
) -> Result<Vec<OpsEvent>, OpsRejection> {
    let catalog = Catalog::default_catalog();
    let ctx = Context {
        now: Utc.with_ymd_and_hms(2026, 12, 6, 10, 0, 0).unwrap(),
        actor,
        catalog: &catalog,
    };
    let state = OpsAggregate::fold(given);
    OpsAggregate::decide(state.as_ref(), &command, &ctx)
}

fn leads() -> ReadModelName {
    ReadModelName::parse("leads").unwrap()
}

fn why(reason: OpsReason, ticket: Option<&str>) -> Why {
    Why {
        reason,
        ticket: ticket.map(|t| TicketRef::parse(t).unwrap()),
    }
}

fn node() -> NodeName {
    NodeName::parse("crm-1:8080").unwrap()
}

fn command(action: OpsAction) -> OpsCommand {
    OpsCommand {
        models: vec![leads()],
        action,
        generation: Generation::Live,
        node: node(),
        why: why(OpsReason::BadEvent, Some("INC-7")),
    }
}

#[test]
fn each_action_of_an_admin_is_one_event_with_who_and_why() {
    let admin = actor(Role::Admin);
    let rows: Vec<(OpsAction, OpsEvent)> = vec![
        (
            OpsAction::Pause,
            ReadModelPaused {
                model: leads(),
                by: admin.user,
                node: Some(node()),
                generation: Generation::Live,
                why: why(OpsReason::BadEvent, Some("INC-7")),
            }
            .into(),
        ),
        (
            OpsAction::Resume,
            ReadModelResumed {
                model: leads(),
                by: admin.user,
                node: Some(node()),
                generation: Generation::Live,
                why: why(OpsReason::BadEvent, Some("INC-7")),
            }
            .into(),
        ),
        (
            OpsAction::Retry { position: Some(41) },
            ReadModelRetried {
                model: leads(),
                by: admin.user,
                node: Some(node()),
                generation: Generation::Live,
                position: Some(41),
                why: why(OpsReason::BadEvent, Some("INC-7")),
            }
            .into(),
        ),
        (
            OpsAction::Skip { position: 41 },
            ReadModelEventSkipped {
                model: leads(),
                by: admin.user,
                node: Some(node()),
                generation: Generation::Live,
                position: 41,
                why: why(OpsReason::BadEvent, Some("INC-7")),
            }
            .into(),
        ),
        (
            OpsAction::Rebuild { verify: true },
            ReadModelRebuildStarted {
                model: leads(),
                by: admin.user,
                node: Some(node()),
                verify: true,
                why: why(OpsReason::BadEvent, Some("INC-7")),
            }
            .into(),
        ),
        (
            OpsAction::Rollback,
            ReadModelRolledBack {
                model: leads(),
                by: admin.user,
                node: Some(node()),
                why: why(OpsReason::BadEvent, Some("INC-7")),
            }
            .into(),
        ),
    ];
    let mut given = Vec::new();
    for (action, event) in rows {
        assert_eq!(
            when(&given, admin, command(action.clone())),
            Ok(vec![event.clone()]),
            "{action:?}"
        );
        given.push(event);
    }
    // Nothing is deduplicated: an operator pausing twice did so twice.
    let state = OpsAggregate::fold(&given).unwrap();
    assert_eq!(state.actions, 6);
}

#[test]
fn nobody_but_an_admin_acts_on_a_read_model() {
    for role in [Role::Manager, Role::Supervisor] {
        for action in [OpsAction::Pause, OpsAction::Rebuild { verify: false }] {
            assert_eq!(
                when(&[], actor(role), command(action)),
                Err(OpsRejection::NotAdmin)
            );
        }
    }
}

#[test]
fn a_skip_names_the_event_and_an_action_its_models() {
    assert_eq!(
        when(
            &[],
            actor(Role::Admin),
            command(OpsAction::Skip { position: 0 })
        ),
        Err(OpsRejection::NoPosition)
    );
    // A model that failed at no event (finishing a rebuild) is retried all the same.
    assert!(when(
        &[],
        actor(Role::Admin),
        command(OpsAction::Retry { position: None })
    )
    .is_ok());
    let none = OpsCommand {
        models: Vec::new(),
        ..command(OpsAction::Pause)
    };
    assert_eq!(
        when(&[], actor(Role::Admin), none),
        Err(OpsRejection::NoModel)
    );
}

#[test]
fn a_rebuild_of_every_model_is_one_event_per_model_in_one_command() {
    let admin = actor(Role::Admin);
    let names = ["leads", "history", "transitions"];
    let all = OpsCommand {
        models: names
            .iter()
            .map(|n| ReadModelName::parse(n).unwrap())
            .collect(),
        ..command(OpsAction::Rebuild { verify: false })
    };
    let events = when(&[], admin, all).unwrap();
    let recorded: Vec<&str> = events.iter().map(|e| e.model().as_str()).collect();
    assert_eq!(recorded, names);
    assert!(events.iter().all(
        |e| matches!(e, OpsEvent::ReadModelRebuildStarted(r) if r.by == admin.user && !r.verify)
    ));
}

#[test]
fn a_generation_being_built_is_paused_and_skipped_on_its_own_and_the_record_says_so() {
    let admin = actor(Role::Admin);
    let on_building = |action| OpsCommand {
        generation: Generation::Building,
        ..command(action)
    };
    let rows: Vec<(OpsAction, Result<Generation, OpsRejection>)> = vec![
        (OpsAction::Pause, Ok(Generation::Building)),
        (OpsAction::Resume, Ok(Generation::Building)),
        (
            OpsAction::Retry { position: Some(9) },
            Ok(Generation::Building),
        ),
        (OpsAction::Skip { position: 9 }, Ok(Generation::Building)),
        (
            OpsAction::Rebuild { verify: false },
            Err(OpsRejection::NotOnBuilding),
        ),
        (OpsAction::Rollback, Err(OpsRejection::NotOnBuilding)),
    ];
    for (action, then) in rows {
        let events = when(&[], admin, on_building(action.clone()));
        let generation = events.map(|events| {
            assert_eq!(events.len(), 1);
            assert_eq!(events[0].node(), Some(&node()), "{action:?}");
            events[0].generation()
        });
        assert_eq!(generation, then, "{action:?}");
    }
}

#[test]
fn a_node_name_is_a_host_and_port_or_an_address() {
    for good in [
        "crm-1:8080",
        "10.0.0.7:8080",
        "[::1]:8080",
        "crm-1.example.org:cli",
    ] {
        assert!(NodeName::parse(good).is_ok(), "{good}");
    }
    for bad in ["", "crm 1", "crm/1", "crm;1", &"x".repeat(101)] {
        assert!(NodeName::parse(bad).is_err(), "{bad}");
    }
}

#[test]
fn a_model_name_is_a_code_and_a_reason_a_code_from_the_list() {
    for good in ["leads", "board_hours", "t2"] {
        assert!(ReadModelName::parse(good).is_ok(), "{good}");
    }
    for bad in ["", "Leads", "2leads", "leads; drop", &"x".repeat(41)] {
        assert!(ReadModelName::parse(bad).is_err(), "{bad}");
    }
    for reason in OpsReason::ALL {
        assert_eq!(OpsReason::parse(reason.code()), Some(reason));
        let json = serde_json::to_value(reason).unwrap();
        assert_eq!(json, reason.code(), "stored as its code");
    }
    assert_eq!(OpsReason::parse("because"), None);
}
