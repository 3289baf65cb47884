//! The catalog's rules as given/when/then rows: given the events of a catalog stream (and the
//! default catalog for the other kinds), when an actor sends a command, then these events or
//! this rejection.

use chrono::{TimeZone, Utc};

use leadflow_domain::catalog::seed;
use leadflow_domain::catalog::*;
use leadflow_domain::values::{Currency, Email, Name, Short};

use leadflow_domain::*;

fn admin() -> Actor {
    seed::actor()
}

fn supervisor() -> Actor {
    Actor {
        user: UserId::named("olga.supervisor"),
        role: Role::Supervisor,
    }
}

/// The events of `part`'s stream in the seed.
fn seeded(part: CatalogPart) -> Vec<CatalogEvent> {
    seed::events()
        .into_iter()
        .find(|(p, _)| *p == part)
        .map(|(_, e)| e)
        .unwrap_or_default()
}

struct Spec {
    given: Vec<CatalogEvent>,
    catalog: Catalog,
}

fn given(part: CatalogPart) -> Spec {
    Spec {
        given: seeded(part),
        catalog: Catalog::default_catalog(),
    }
}

impl Spec {
    fn and(mut self, events: impl IntoIterator<Item = CatalogEvent>) -> Self {
        self.given.extend(events);
        self
    }

    fn when(
        &self,
        actor: Actor,
        command: CatalogCommand,
    ) -> Result<Vec<CatalogEvent>, CatalogRejection> {
        let state = CatalogAggregate::fold(&self.given);
        let ctx = Context {
            now: Utc.with_ymd_and_hms(2026, 12, 5, 10, 0, 0).unwrap(),
            actor,
            catalog: &self.catalog,
        };
        CatalogAggregate::decide(state.as_ref(), &command, &ctx)
    }
}

fn short(s: &str) -> Short {
    Short::parse("name", s).unwrap()
}

fn login(s: &str) -> Login {
    Login::parse(s).unwrap()
}

fn new_user(name: &str, role: Role) -> CreateUser {
    CreateUser {
        login: login(name),
        display_name: Name::parse("display name", "Elena Orlova").unwrap(),
        role,
        department: DepartmentId::parse("sales").unwrap(),
        office: None,
        email: Some(Email::parse("elena@example.com").unwrap()),
        locale: Locale::En,
    }
}

fn record(c: &CreateUser) -> UserRecord {
    UserRecord {
        user_id: c.login.user_id(),
        login: c.login.clone(),
        display_name: c.display_name.clone(),
        role: c.role,
        department: c.department.clone(),
        office: c.office.clone(),
        email: c.email.clone(),
        locale: c.locale,
    }
}

// --- users -------------------------------------------------------------------------------------

#[test]
fn an_admin_creates_a_user() {
    let c = new_user("elena.manager", Role::Manager);
    assert_eq!(
        given(CatalogPart::Users).when(admin(), CatalogCommand::CreateUser(c.clone())),
        Ok(vec![UserCreated { user: record(&c) }.into()])
    );
}

#[test]
fn only_admins_change_the_catalog() {
    let c = new_user("elena.manager", Role::Manager);
    assert_eq!(
        given(CatalogPart::Users).when(supervisor(), CatalogCommand::CreateUser(c)),
        Err(CatalogRejection::NotAdmin)
    );
}

#[test]
fn a_login_is_taken_once() {
    let c = new_user("ivan.manager", Role::Manager);
    assert!(matches!(
        given(CatalogPart::Users).when(admin(), CatalogCommand::CreateUser(c)),
        Err(CatalogRejection::AlreadyExists { kind: "user", .. })
    ));
}

#[test]
fn a_user_is_placed_in_a_known_department_and_office() {
    let mut c = new_user("elena.manager", Role::Manager);
    c.department = DepartmentId::parse("nowhere").unwrap();
    assert!(matches!(
        given(CatalogPart::Users).when(admin(), CatalogCommand::CreateUser(c)),
        Err(CatalogRejection::Unknown {
            kind: "department",
            ..
        })
    ));
    let mut c = new_user("elena.manager", Role::Manager);
    c.office = Some(OfficeId::parse("kazan").unwrap());
    assert!(matches!(
        given(CatalogPart::Users).when(admin(), CatalogCommand::CreateUser(c)),
        Err(CatalogRejection::Unknown { kind: "office", .. })
    ));
}

#[test]
fn an_update_writes_the_whole_user_and_an_update_to_the_same_values_writes_nothing() {
    let c = new_user("elena.manager", Role::Manager);
    let spec = given(CatalogPart::Users).and([UserCreated { user: record(&c) }.into()]);
    let mut update = UpdateUser::of(c.login.user_id());
    update.role = Some(Role::Supervisor);
    update.department = Some(DepartmentId::parse("partners").unwrap());
    let mut after = record(&c);
    after.role = Role::Supervisor;
    after.department = DepartmentId::parse("partners").unwrap();
    assert_eq!(
        spec.when(admin(), CatalogCommand::UpdateUser(update)),
        Ok(vec![UserUpdated { user: after }.into()])
    );
    let mut same = UpdateUser::of(c.login.user_id());
    same.role = Some(Role::Manager);
    assert_eq!(
        spec.when(admin(), CatalogCommand::UpdateUser(same)),
        Ok(vec![])
    );
}

#[test]
fn updating_an_unknown_user_is_refused() {
    let update = UpdateUser::of(UserId::named("nobody"));
    assert!(matches!(
        given(CatalogPart::Users).when(admin(), CatalogCommand::UpdateUser(update)),
        Err(CatalogRejection::Unknown { kind: "user", .. })
    ));
}

#[test]
fn dismiss_and_restore() {
    let ivan = UserId::named("ivan.manager");
    let spec = given(CatalogPart::Users);
    assert_eq!(
        spec.when(admin(), CatalogCommand::DismissUser { user: ivan }),
        Ok(vec![UserDismissed { user_id: ivan }.into()])
    );
    assert_eq!(
        spec.when(admin(), CatalogCommand::RestoreUser { user: ivan }),
        Err(CatalogRejection::NotDismissed { user: ivan })
    );
    let dismissed = spec.and([UserDismissed { user_id: ivan }.into()]);
    assert_eq!(
        dismissed.when(admin(), CatalogCommand::DismissUser { user: ivan }),
        Err(CatalogRejection::AlreadyDismissed { user: ivan })
    );
    assert_eq!(
        dismissed.when(admin(), CatalogCommand::RestoreUser { user: ivan }),
        Ok(vec![UserRestored { user_id: ivan }.into()])
    );
}

#[test]
fn the_last_admin_is_neither_dismissed_nor_demoted() {
    let admin_id = UserId::named(seed::ADMIN);
    let spec = given(CatalogPart::Users);
    assert_eq!(
        spec.when(admin(), CatalogCommand::DismissUser { user: admin_id }),
        Err(CatalogRejection::LastAdmin)
    );
    let mut demote = UpdateUser::of(admin_id);
    demote.role = Some(Role::Manager);
    assert_eq!(
        spec.when(admin(), CatalogCommand::UpdateUser(demote.clone())),
        Err(CatalogRejection::LastAdmin)
    );
    // With a second admin, either may go.
    let second = new_user("second.admin", Role::Admin);
    let two = spec.and([UserCreated {
        user: record(&second),
    }
    .into()]);
    assert!(two
        .when(admin(), CatalogCommand::UpdateUser(demote))
        .is_ok());
}

// --- departments and offices -------------------------------------------------------------------

#[test]
fn a_department_is_headed_by_an_active_supervisor() {
    let spec = given(CatalogPart::Org);
    let define = |supervisor: &str| {
        CatalogCommand::CreateDepartment(DefineDepartment {
            department: DepartmentId::parse("export").unwrap(),
            name: short("Export sales"),
            supervisor: Some(UserId::named(supervisor)),
        })
    };
    assert_eq!(
        spec.when(admin(), define("sergey.supervisor")),
        Ok(vec![DepartmentDefined {
            department: DepartmentId::parse("export").unwrap(),
            name: short("Export sales"),
            supervisor: Some(UserId::named("sergey.supervisor")),
        }
        .into()])
    );
    assert_eq!(
        spec.when(admin(), define("ivan.manager")),
        Err(CatalogRejection::NotASupervisor {
            user: UserId::named("ivan.manager")
        })
    );
    assert!(matches!(
        spec.when(admin(), define("nobody")),
        Err(CatalogRejection::Unknown { kind: "user", .. })
    ));
}

#[test]
fn departments_and_offices_are_created_once_and_updated_when_known() {
    let spec = given(CatalogPart::Org);
    let sales = DefineDepartment {
        department: DepartmentId::parse("sales").unwrap(),
        name: short("Sales"),
        supervisor: None,
    };
    assert!(matches!(
        spec.when(admin(), CatalogCommand::CreateDepartment(sales.clone())),
        Err(CatalogRejection::AlreadyExists {
            kind: "department",
            ..
        })
    ));
    // A rename keeps the head it does not name; clearing the head is a change of its own.
    let rename = UpdateDepartment {
        department: sales.department.clone(),
        name: Some(short("Direct sales")),
        supervisor: None,
    };
    assert_eq!(
        spec.when(admin(), CatalogCommand::UpdateDepartment(rename)),
        Ok(vec![DepartmentDefined {
            department: sales.department.clone(),
            name: short("Direct sales"),
            supervisor: Some(UserId::named("olga.supervisor")),
        }
        .into()])
    );
    let headless = UpdateDepartment {
        department: sales.department.clone(),
        name: None,
        supervisor: Some(None),
    };
    assert_eq!(
        spec.when(admin(), CatalogCommand::UpdateDepartment(headless))
            .map(|e| e.len()),
        Ok(1)
    );
    let kazan = DefineOffice {
        office: OfficeId::parse("kazan").unwrap(),
        name: short("Kazan"),
    };
    assert!(matches!(
        spec.when(admin(), CatalogCommand::UpdateOffice(kazan.clone())),
        Err(CatalogRejection::Unknown { kind: "office", .. })
    ));
    assert_eq!(
        spec.when(admin(), CatalogCommand::CreateOffice(kazan.clone())),
        Ok(vec![OfficeDefined {
            office: kazan.office,
            name: kazan.name
        }
        .into()])
    );
}

// --- funnels -----------------------------------------------------------------------------------

fn columns() -> Vec<StageInput> {
    Stage::ALL
        .into_iter()
        .map(|stage| StageInput {
            key: StageKey::parse(&format!("s-{}", stage.to_string().to_lowercase())).unwrap(),
            name: short(&stage.to_string()),
            colour: "#AABBCC".to_owned(),
            stage,
            sla_hours: None,
        })
        .collect()
}

#[test]
fn a_funnel_maps_every_process_stage_once() {
    let spec = given(CatalogPart::Funnels);
    let create = |stages| {
        CatalogCommand::CreateFunnel(DefineFunnel {
            funnel: FunnelId::parse("export").unwrap(),
            name: short("Export"),
            stages,
        })
    };
    let events = spec.when(admin(), create(columns())).unwrap();
    let CatalogEvent::FunnelDefined(f) = &events[0] else {
        panic!("{events:?}")
    };
    assert_eq!(f.stages.len(), 7);
    assert_eq!(
        f.stages[0].colour, "#aabbcc",
        "colours are stored lower-case"
    );

    let mut missing = columns();
    missing.pop();
    assert!(matches!(
        spec.when(admin(), create(missing)),
        Err(CatalogRejection::FunnelColumns { .. })
    ));
    let mut twice = columns();
    twice[1].key = twice[0].key.clone();
    assert!(matches!(
        spec.when(admin(), create(twice)),
        Err(CatalogRejection::FunnelColumns { .. })
    ));
    // An SLA on a working stage is kept; on a closed stage, or out of 1..=8784 hours, refused.
    let mut timed = columns();
    timed[1].sla_hours = Some(4);
    let events = spec.when(admin(), create(timed)).unwrap();
    let CatalogEvent::FunnelDefined(f) = &events[0] else {
        panic!("{events:?}")
    };
    assert_eq!(f.stages[1].sla_hours, Some(4));
    for (stage, hours) in [
        (Stage::Disqualified, 24),
        (Stage::Handoff, 0),
        (Stage::Handoff, 9000),
    ] {
        let mut bad = columns();
        let at = bad.iter().position(|s| s.stage == stage).unwrap();
        bad[at].sla_hours = Some(hours);
        assert!(
            matches!(
                spec.when(admin(), create(bad)),
                Err(CatalogRejection::FunnelColumns { .. })
            ),
            "{stage} {hours} h"
        );
    }
    let mut grey = columns();
    grey[0].colour = "grey".to_owned();
    assert_eq!(
        spec.when(admin(), create(grey)),
        Err(CatalogRejection::InvalidColour {
            colour: "grey".to_owned()
        })
    );
    assert!(matches!(
        spec.when(
            admin(),
            CatalogCommand::CreateFunnel(DefineFunnel {
                funnel: FunnelId::parse("default").unwrap(),
                name: short("Again"),
                stages: columns(),
            })
        ),
        Err(CatalogRejection::AlreadyExists { kind: "funnel", .. })
    ));
}

#[test]
fn renaming_a_funnel_keeps_its_columns_and_the_default_is_a_known_funnel() {
    let spec = given(CatalogPart::Funnels);
    let default = FunnelId::parse("default").unwrap();
    let events = spec
        .when(
            admin(),
            CatalogCommand::UpdateFunnel(UpdateFunnel {
                funnel: default.clone(),
                name: Some(short("Direct sales")),
                stages: None,
            }),
        )
        .unwrap();
    let CatalogEvent::FunnelDefined(f) = &events[0] else {
        panic!("{events:?}")
    };
    assert_eq!(f.name.as_str(), "Direct sales");
    assert_eq!(
        f.stages,
        Catalog::default_catalog().funnel(&default).unwrap().stages
    );
    assert_eq!(
        spec.when(
            admin(),
            CatalogCommand::SetDefaultFunnel { funnel: default }
        ),
        Ok(vec![]),
        "already the default"
    );
    assert!(matches!(
        spec.when(
            admin(),
            CatalogCommand::SetDefaultFunnel {
                funnel: FunnelId::parse("nope").unwrap()
            }
        ),
        Err(CatalogRejection::Unknown { kind: "funnel", .. })
    ));
}

// --- sources and lists -------------------------------------------------------------------------

#[test]
fn sources_and_list_entries() {
    let spec = given(CatalogPart::Lists);
    let source = DefineSource {
        code: SourceCode::parse("podcast").unwrap(),
        name: short("Podcast"),
        group: Some(short("Media")),
        tags: vec![short("audio")],
        counted_in_statistics: false,
    };
    let events = spec
        .when(admin(), CatalogCommand::CreateSource(source.clone()))
        .unwrap();
    let after = given(CatalogPart::Lists).and(events.clone());
    assert!(matches!(
        after.when(admin(), CatalogCommand::CreateSource(source.clone())),
        Err(CatalogRejection::AlreadyExists { kind: "source", .. })
    ));
    // An update keeps what it does not name: renaming leaves the source uncounted.
    let rename = UpdateSource {
        code: source.code.clone(),
        name: Some(short("Podcasts")),
        group: None,
        tags: None,
        counted_in_statistics: None,
    };
    let renamed = after
        .when(admin(), CatalogCommand::UpdateSource(rename.clone()))
        .unwrap();
    let CatalogEvent::SourceDefined(e) = &renamed[0] else {
        panic!("{renamed:?}")
    };
    assert!(!e.counted_in_statistics);
    assert_eq!(e.tags, vec![short("audio")]);
    let same = UpdateSource {
        name: Some(short("Podcast")),
        ..rename
    };
    assert_eq!(
        after.when(admin(), CatalogCommand::UpdateSource(same)),
        Ok(vec![])
    );
    let folded = CatalogAggregate::fold(&after.given).unwrap();
    let podcast = folded
        .source(&SourceCode::parse("podcast").unwrap())
        .unwrap();
    assert!(!podcast.counted_in_statistics);
    assert_eq!(podcast.group.as_deref(), Some("Media"));

    for list in ListKind::ALL {
        let entry = DefineEntry {
            list,
            code: EntryCode::parse("fresh").unwrap(),
            name: short("Fresh"),
        };
        assert_eq!(
            spec.when(admin(), CatalogCommand::CreateEntry(entry.clone())),
            Ok(vec![ListEntryDefined {
                list,
                code: entry.code.clone(),
                name: entry.name.clone()
            }
            .into()]),
            "{list:?}"
        );
        assert!(matches!(
            spec.when(admin(), CatalogCommand::UpdateEntry(entry)),
            Err(CatalogRejection::Unknown { .. })
        ));
        let folded = CatalogAggregate::fold(&spec.given).unwrap();
        let first = folded.list(list).first().map(|(c, _)| c.to_string());
        if let Some(code) = first {
            let rename = DefineEntry {
                list,
                code: EntryCode::parse(&code).unwrap(),
                name: short("Renamed"),
            };
            assert_eq!(
                spec.when(admin(), CatalogCommand::UpdateEntry(rename))
                    .map(|e| e.len()),
                Ok(1)
            );
        }
    }
}

// --- settings ----------------------------------------------------------------------------------

#[test]
fn settings_are_patched_and_checked() {
    let spec = given(CatalogPart::Settings);
    let current = Catalog::default_catalog().settings;
    assert_eq!(
        spec.when(
            admin(),
            CatalogCommand::ChangeSettings(SettingsPatch::default())
        ),
        Ok(vec![])
    );
    let patch = SettingsPatch {
        who_may_convert: Some(ConvertPolicy::SupervisorsOnly),
        ..SettingsPatch::default()
    };
    let mut after = current.clone();
    after.who_may_convert = ConvertPolicy::SupervisorsOnly;
    assert_eq!(
        spec.when(admin(), CatalogCommand::ChangeSettings(patch)),
        Ok(vec![SettingsChanged { settings: after }.into()]),
        "the rest stays as the stream has it"
    );
    let rules = |edit: fn(&mut Vec<AutomationRule>)| {
        let mut r = current.automation.clone();
        edit(&mut r);
        CatalogCommand::ChangeSettings(SettingsPatch {
            automation: Some(r),
            ..SettingsPatch::default()
        })
    };
    for (why, command) in [
        ("twice", rules(|r| r.push(r[0].clone()))),
        (
            "dropped",
            rules(|r| {
                r.pop();
            }),
        ),
        (
            "unknown trigger",
            rules(|r| r[0].key = EntryCode::parse("on-full-moon").unwrap()),
        ),
        ("no text", rules(|r| r[0].text_en = " ".to_owned())),
    ] {
        assert!(
            matches!(
                spec.when(admin(), command),
                Err(CatalogRejection::InvalidSettings { .. })
            ),
            "{why}"
        );
    }
    let disabled = spec.when(admin(), rules(|r| r[1].enabled = false)).unwrap();
    assert_eq!(disabled.len(), 1, "a rule is switched off, not dropped");
    let long = SettingsPatch {
        non_target_call_seconds: Some(7200),
        ..SettingsPatch::default()
    };
    assert!(matches!(
        spec.when(admin(), CatalogCommand::ChangeSettings(long)),
        Err(CatalogRejection::InvalidSettings { .. })
    ));
}

#[test]
fn retention_is_off_until_an_admin_sets_it_and_is_bounded() {
    let spec = given(CatalogPart::Settings);
    assert_eq!(Settings::default().retention_months, 0, "off by default");
    let months = |m| {
        CatalogCommand::ChangeSettings(SettingsPatch {
            retention_months: Some(m),
            ..SettingsPatch::default()
        })
    };
    let set = spec.when(admin(), months(36)).unwrap();
    let [CatalogEvent::SettingsChanged(e)] = set.as_slice() else {
        panic!("one settings change: {set:?}");
    };
    assert_eq!(e.settings.retention_months, 36);
    assert!(matches!(
        spec.when(admin(), months(MAX_RETENTION_MONTHS + 1)),
        Err(CatalogRejection::InvalidSettings { .. })
    ));
    assert!(
        spec.when(admin(), months(0)).unwrap().is_empty(),
        "turning off what is off changes nothing"
    );
    // Older settings payloads carry no retention and read as off; off is not written.
    let json = serde_json::to_value(Settings::default()).unwrap();
    assert!(json.get("retentionMonths").is_none(), "{json}");
}

#[test]
fn a_department_head_keeps_a_role_that_may_head_it() {
    let spec = given(CatalogPart::Users);
    let olga = UserId::named("olga.supervisor");
    let mut demote = UpdateUser::of(olga);
    demote.role = Some(Role::Manager);
    assert_eq!(
        spec.when(admin(), CatalogCommand::UpdateUser(demote)),
        Err(CatalogRejection::HeadsDepartment {
            user: olga,
            department: "sales".to_owned()
        })
    );
    assert!(matches!(
        spec.when(admin(), CatalogCommand::DismissUser { user: olga }),
        Err(CatalogRejection::HeadsDepartment { .. })
    ));
}

#[test]
fn seed_keys_name_what_each_command_does() {
    let keys: std::collections::HashSet<String> =
        seed::commands().iter().map(seed::seed_key).collect();
    assert_eq!(
        keys.len(),
        seed::commands().len(),
        "one key per seed command"
    );
    assert!(keys.contains("catalog-seed/CreateUser/admin"), "{keys:?}");
}

// --- the catalog as lead commands see it ------------------------------------------------------

#[test]
fn the_seed_folds_into_the_default_catalog_with_its_admin() {
    let c = Catalog::default_catalog();
    let admin = c.user(UserId::named(seed::ADMIN)).unwrap();
    assert_eq!(admin.role, Role::Admin);
    assert!(!c.user(UserId::named("boris.dismissed")).unwrap().active);
    assert_eq!(
        c.department(&DepartmentId::parse("sales").unwrap())
            .unwrap()
            .supervisor,
        Some(UserId::named("olga.supervisor"))
    );
    assert_eq!(c.funnels.len(), 2);
    assert_eq!(c.sources.len(), 7);
    assert_eq!(c.channels.len(), 6);
    assert_eq!(c.base_currency(), &Currency::rub());
    // Every part's events belong to it.
    for (part, events) in seed::events() {
        assert!(events.iter().all(|e| e.part() == part), "{part}");
    }
}
