//! The catalog through the engine over the real embedded store: the seed is written once, a
//! catalog change is decided on its stream and seen by the next lead command, an engine that
//! follows the log sees what another engine changed, and the catalog reads back from the store
//! without writing.

use std::sync::Arc;
use std::time::Duration;

use chrono::{TimeZone, Utc};

use leadflow_domain::catalog::{seed, CreateUser, Locale};
use leadflow_domain::commands::{AssignResponsible, RegisterLead, ResponsibleChoice};
use leadflow_domain::details::LeadDetails;
use leadflow_domain::ids::Login;
use leadflow_domain::values::Name;
use leadflow_domain::{
    Actor, Catalog, CatalogCommand, CatalogRejection, DepartmentId, LeadCommand, LeadId, Rejection,
    Role, UserId,
};
use leadflow_engine::{
    read_catalog, CommandMeta, Engine, EngineConfig, EngineError, FixedClock, OutcomeKind,
    SequentialIds,
};
use leadflow_store::EventStore;
use leadflow_store_embedded::EmbeddedStore;

fn engine(store: Arc<dyn EventStore>, ids_from: u64) -> Arc<Engine> {
    Arc::new(Engine::new(
        store,
        Arc::new(Catalog::empty()),
        Arc::new(FixedClock::at(
            Utc.with_ymd_and_hms(2026, 12, 5, 9, 0, 0).unwrap(),
        )),
        Arc::new(SequentialIds::after(ids_from)),
        EngineConfig::default(),
    ))
}

fn admin() -> CommandMeta {
    CommandMeta::by(seed::actor())
}

fn create(login: &str) -> CatalogCommand {
    CatalogCommand::CreateUser(CreateUser {
        login: Login::parse(login).unwrap(),
        display_name: Name::parse("display name", "New Person").unwrap(),
        role: Role::Manager,
        department: DepartmentId::parse("sales").unwrap(),
        office: None,
        email: None,
        locale: Locale::Ru,
    })
}

#[tokio::test]
async fn a_new_store_is_seeded_once_and_the_seed_is_the_default_catalog() {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn EventStore> =
        Arc::new(EmbeddedStore::open(dir.path().join("events.db")).unwrap());
    assert_eq!(read_catalog(store.as_ref()).await.unwrap(), None);

    let first = engine(store.clone(), 0);
    let report = first.seed_catalog().await.unwrap();
    assert_eq!(report.appended, seed::commands().len());
    let head = store.head().await.unwrap();
    assert_eq!(*first.catalog(), Catalog::default_catalog());

    // A second start (a new engine, a cold cache) adds nothing.
    let second = engine(store.clone(), 1 << 32);
    assert_eq!(second.seed_catalog().await.unwrap().appended, 0);
    assert_eq!(store.head().await.unwrap(), head);
    assert_eq!(*second.catalog(), Catalog::default_catalog());
    assert_eq!(
        read_catalog(store.as_ref()).await.unwrap(),
        Some(Catalog::default_catalog())
    );
}

#[tokio::test]
async fn a_lead_command_after_a_catalog_change_sees_it() {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn EventStore> =
        Arc::new(EmbeddedStore::open(dir.path().join("events.db")).unwrap());
    let engine = engine(store.clone(), 0);
    engine.seed_catalog().await.unwrap();
    let olga = Actor {
        user: UserId::named("olga.supervisor"),
        role: Role::Supervisor,
    };
    let lead = LeadId::from_uuid(uuid::Uuid::from_u128(5));
    engine
        .execute(
            lead,
            LeadCommand::Register(RegisterLead {
                lead_id: lead,
                funnel: None,
                responsible: ResponsibleChoice::Creator,
                details: LeadDetails::titled(Name::parse("title", "Pumps").unwrap()),
            }),
            CommandMeta::by(olga),
        )
        .await
        .unwrap();
    let assign = |to| LeadCommand::AssignResponsible(AssignResponsible { to, remind: false });
    let newcomer = UserId::named("new.person");
    let err = engine
        .execute(lead, assign(newcomer), CommandMeta::by(olga))
        .await
        .unwrap_err();
    assert!(
        matches!(err, EngineError::Rejected(Rejection::UnknownUser { .. })),
        "{err}"
    );

    let created = engine
        .execute_catalog(create("new.person"), admin())
        .await
        .unwrap();
    assert_eq!(created.kind, OutcomeKind::Appended);
    engine
        .execute(lead, assign(newcomer), CommandMeta::by(olga))
        .await
        .unwrap();

    // Dismissed: no new leads for them.
    engine
        .execute_catalog(CatalogCommand::DismissUser { user: newcomer }, admin())
        .await
        .unwrap();
    let err = engine
        .execute(
            lead,
            assign(UserId::named("ivan.manager")),
            CommandMeta::by(olga),
        )
        .await;
    assert!(err.is_ok());
    let err = engine
        .execute(lead, assign(newcomer), CommandMeta::by(olga))
        .await
        .unwrap_err();
    assert!(
        matches!(err, EngineError::Rejected(Rejection::InactiveUser { .. })),
        "{err}"
    );

    // A catalog command by a non-admin is refused with its rule and appends nothing.
    let head = store.head().await.unwrap();
    let err = engine
        .execute_catalog(create("another.person"), CommandMeta::by(olga))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            EngineError::CatalogRejected(CatalogRejection::NotAdmin)
        ),
        "{err}"
    );
    assert_eq!(store.head().await.unwrap(), head);
}

#[tokio::test]
async fn an_engine_following_the_log_sees_another_engines_catalog_change() {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn EventStore> =
        Arc::new(EmbeddedStore::open(dir.path().join("events.db")).unwrap());
    let writer = engine(store.clone(), 0);
    writer.seed_catalog().await.unwrap();
    let follower = engine(store.clone(), 1 << 32);
    let head = store.head().await.unwrap();
    follower.seed_catalog().await.unwrap();
    let following = tokio::spawn(follower.clone().follow_catalog(head));

    writer
        .execute_catalog(create("remote.person"), admin())
        .await
        .unwrap();
    let seen = async {
        while follower
            .catalog()
            .user(UserId::named("remote.person"))
            .is_none()
        {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(10), seen)
        .await
        .expect("the follower sees the new user");
    following.abort();
}
