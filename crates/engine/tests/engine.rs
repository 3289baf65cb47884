//! The engine over the real embedded store: metadata, idempotency, conflicts and retries, the
//! aggregate cache, and bad input that appends nothing.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{TimeZone, Utc};
use futures::stream::BoxStream;
use uuid::Uuid;

use leadflow_codec::seal::{MasterKey, ERASED};
use leadflow_codec::{lead_stream, EventMetadata};
use leadflow_domain::commands::*;
use leadflow_domain::details::{DetailChange, LeadDetails};
use leadflow_domain::events::HandoffResult;
use leadflow_domain::values::{Comment, Currency, Email, Money, Name, Phone, Short, ValueError};
use leadflow_domain::{
    Actor, Catalog, FunnelId, LeadCommand, LeadId, Maturity, Rejection, Role, Stage, StageKey,
    SubjectId, UserId,
};
use leadflow_engine::{
    CommandMeta, Engine, EngineConfig, EngineError, FixedClock, Keyring, OutcomeKind, SequentialIds,
};
use leadflow_store::{
    AppendResult, EventStore, ExpectedRevision, NewEvent, NewKey, Position, RecordedEvent,
    StoreError, StoredKey, StreamName,
};
use leadflow_store_embedded::EmbeddedStore;

fn now() -> chrono::DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 2, 9, 30, 0).unwrap()
}

fn ivan() -> Actor {
    Actor {
        user: UserId::named("ivan.manager"),
        role: Role::Manager,
    }
}

fn olga() -> Actor {
    Actor {
        user: UserId::named("olga.supervisor"),
        role: Role::Supervisor,
    }
}

fn engine_on(store: Arc<dyn EventStore>, max_retries: u32) -> Engine {
    // Every engine of a test draws from its own id range, as v7 ids would in production.
    static ENGINES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let range = ENGINES.fetch_add(1, Ordering::SeqCst) << 32;
    Engine::new(
        store,
        Arc::new(Catalog::default_catalog()),
        Arc::new(FixedClock::at(now())),
        Arc::new(SequentialIds::after(range)),
        EngineConfig {
            max_retries,
            ..EngineConfig::default()
        },
    )
}

struct Fixture {
    _dir: tempfile::TempDir,
    store: Arc<dyn EventStore>,
    engine: Engine,
}

impl Fixture {
    /// Registers lead `id` as ivan.manager.
    async fn register(&self, id: LeadId, responsible: ResponsibleChoice) {
        self.engine
            .execute(id, register(id, responsible), CommandMeta::by(ivan()))
            .await
            .unwrap();
    }
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn EventStore> =
        Arc::new(EmbeddedStore::open(dir.path().join("events.db")).unwrap());
    let engine = engine_on(store.clone(), 8);
    Fixture {
        _dir: dir,
        store,
        engine,
    }
}

fn details() -> LeadDetails {
    LeadDetails {
        contact_name: Some(Name::parse("contact", "Ivan Petrov").unwrap()),
        phones: vec![Phone::parse("+7 916 123-45-67").unwrap()],
        ..LeadDetails::titled(Name::parse("title", "10 pumps for a dairy farm").unwrap())
    }
}

fn register(lead_id: LeadId, responsible: ResponsibleChoice) -> LeadCommand {
    LeadCommand::Register(RegisterLead {
        lead_id,
        funnel: None,
        responsible,
        details: details(),
    })
}

fn lead(n: u128) -> LeadId {
    LeadId::from_uuid(Uuid::from_u128(n))
}

async fn metadata_of(store: &dyn EventStore, id: LeadId) -> Vec<(String, EventMetadata, Uuid)> {
    store
        .read_stream(&lead_stream(id), 0, usize::MAX)
        .await
        .unwrap()
        .into_iter()
        .map(|e| {
            (
                e.event_type,
                EventMetadata::decode(&e.metadata).unwrap(),
                e.id,
            )
        })
        .collect()
}

#[tokio::test]
async fn a_command_appends_its_events_with_the_full_envelope() {
    let f = fixture();
    let id = lead(1);
    let out = f
        .engine
        .execute(
            id,
            register(id, ResponsibleChoice::Creator),
            CommandMeta::by(ivan()).with_key("reg-1"),
        )
        .await
        .unwrap();
    assert_eq!(out.kind, OutcomeKind::Appended);
    assert_eq!(out.revision, Some(0));
    let stored = metadata_of(f.store.as_ref(), id).await;
    assert_eq!(stored.len(), 1);
    let (event_type, meta, event_id) = &stored[0];
    assert_eq!(event_type, "LeadRegistered");
    assert_eq!(meta.actor.user_id, ivan().user);
    assert_eq!(meta.actor.role, Role::Manager);
    assert_eq!(meta.occurred_at, now());
    assert_eq!(meta.command_id, out.command_id);
    assert_eq!(
        meta.correlation_id, out.command_id,
        "a command starts its own correlation"
    );
    assert_eq!(meta.causation_id, out.command_id);
    assert_eq!(meta.version, 2);
    assert_eq!(meta.subject, None, "no keyring: nothing sealed");
    assert_eq!(
        *event_id,
        Uuid::new_v5(&out.command_id, &0u32.to_be_bytes()),
        "event ids derive from the command id"
    );
    let lead = out.state.unwrap();
    assert_eq!(
        (lead.stage, lead.responsible),
        (Stage::Qualification, Some(ivan().user))
    );
}

#[tokio::test]
async fn the_same_idempotency_key_derives_the_same_event_ids_anywhere() {
    let (a, b) = (fixture(), fixture());
    let id = lead(2);
    let meta = CommandMeta::by(ivan()).with_key("web-form-4711");
    a.engine
        .execute(id, register(id, ResponsibleChoice::Creator), meta.clone())
        .await
        .unwrap();
    b.engine
        .execute(id, register(id, ResponsibleChoice::Creator), meta)
        .await
        .unwrap();
    let ids = |v: Vec<(String, EventMetadata, Uuid)>| {
        v.into_iter().map(|(_, _, id)| id).collect::<Vec<_>>()
    };
    assert_eq!(
        ids(metadata_of(a.store.as_ref(), id).await),
        ids(metadata_of(b.store.as_ref(), id).await)
    );
}

#[tokio::test]
async fn a_retried_command_returns_the_first_result_and_appends_nothing() {
    let f = fixture();
    let id = lead(3);
    f.register(id, ResponsibleChoice::Creator).await;
    let qualify = LeadCommand::Qualify(QualifyLead::default());
    let meta = CommandMeta::by(ivan()).with_key("qualify-once");
    let first = f
        .engine
        .execute(id, qualify.clone(), meta.clone())
        .await
        .unwrap();
    let head = f.store.head().await.unwrap();

    let again = f
        .engine
        .execute(id, qualify.clone(), meta.clone())
        .await
        .unwrap();
    assert_eq!(again.kind, OutcomeKind::Replayed);
    assert_eq!(
        (again.revision, again.position),
        (first.revision, first.position)
    );
    assert_eq!(again.command_id, first.command_id);
    assert_eq!(
        f.store.head().await.unwrap(),
        head,
        "a retry appends nothing"
    );

    // After the lead moved on, the retry still answers with the lead as the command left it.
    let assign = AssignResponsible {
        to: UserId::named("maria.manager"),
        remind: false,
    };
    f.engine
        .execute(
            id,
            LeadCommand::AssignResponsible(assign),
            CommandMeta::by(olga()),
        )
        .await
        .unwrap();
    let late = f
        .engine
        .execute(id, qualify.clone(), meta.clone())
        .await
        .unwrap();
    assert_eq!(late.kind, OutcomeKind::Replayed);
    assert_eq!(
        late.state, first.state,
        "the first result, not the lead as it is now"
    );
    let head = f.store.head().await.unwrap();

    // A cold engine (a restart) finds the command in the stream's metadata.
    let cold = engine_on(f.store.clone(), 8);
    let replayed = cold.execute(id, qualify, meta).await.unwrap();
    assert_eq!(replayed.kind, OutcomeKind::Replayed);
    assert_eq!(replayed.position, first.position);
    assert_eq!(
        f.store.head().await.unwrap(),
        head,
        "no retry appended anything"
    );
}

#[tokio::test]
async fn an_idempotency_key_reused_for_another_command_is_refused() {
    let f = fixture();
    let id = lead(12);
    f.register(id, ResponsibleChoice::Creator).await;
    let meta = CommandMeta::by(ivan()).with_key("form-77");
    f.engine
        .execute(
            id,
            LeadCommand::Qualify(QualifyLead::default()),
            meta.clone(),
        )
        .await
        .unwrap();
    let head = f.store.head().await.unwrap();
    let reassign = LeadCommand::AssignResponsible(AssignResponsible {
        to: UserId::named("maria.manager"),
        remind: false,
    });
    for engine in [&f.engine, &engine_on(f.store.clone(), 8)] {
        let err = engine
            .execute(id, reassign.clone(), meta.clone())
            .await
            .unwrap_err();
        assert!(
            matches!(&err, EngineError::IdempotencyKeyReused { recorded, .. } if *recorded == "QualifyLead")
                && err.to_string().contains("already used for QualifyLead"),
            "{err:?}"
        );
    }
    assert_eq!(f.store.head().await.unwrap(), head);
}

#[tokio::test]
async fn a_rejected_command_appends_nothing() {
    let f = fixture();
    let id = lead(4);
    let bare = LeadDetails::titled(Name::parse("title", "Someone called").unwrap());
    let reg = LeadCommand::Register(RegisterLead {
        lead_id: id,
        funnel: None,
        responsible: Default::default(),
        details: bare,
    });
    f.engine
        .execute(id, reg, CommandMeta::by(ivan()))
        .await
        .unwrap();
    let head = f.store.head().await.unwrap();
    let err = f
        .engine
        .execute(
            id,
            LeadCommand::Qualify(QualifyLead::default()),
            CommandMeta::by(ivan()),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            EngineError::Rejected(Rejection::QualificationNeedsContactData {
                stage: Stage::Qualification
            })
        ),
        "{err:?}"
    );
    assert_eq!(f.store.head().await.unwrap(), head);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_commands_on_one_lead_are_retried_not_lost() {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn EventStore> =
        Arc::new(EmbeddedStore::open(dir.path().join("events.db")).unwrap());
    let engine = Arc::new(engine_on(store.clone(), 64));
    let id = lead(5);
    engine
        .execute(
            id,
            register(id, ResponsibleChoice::Creator),
            CommandMeta::by(ivan()),
        )
        .await
        .unwrap();
    let tasks: Vec<_> = (0..24)
        .map(|i| {
            let engine = engine.clone();
            tokio::spawn(async move {
                let change = DetailChange::Comment(Some(
                    Comment::parse("comment", &format!("note {i}")).unwrap(),
                ));
                let cmd = LeadCommand::UpdateDetails(UpdateLeadDetails {
                    changes: vec![change],
                });
                engine
                    .execute(id, cmd, CommandMeta::by(ivan()))
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut revisions = Vec::new();
    for t in tasks {
        let out = t.await.unwrap();
        assert_eq!(out.kind, OutcomeKind::Appended);
        revisions.push(out.revision.unwrap());
    }
    revisions.sort();
    assert_eq!(
        revisions,
        (1..=24).collect::<Vec<u64>>(),
        "every command landed, one revision each"
    );
    let cold = engine_on(store, 8).load(id).await.unwrap().unwrap();
    let last = engine.load(id).await.unwrap().unwrap();
    assert_eq!(cold, last, "the cache agrees with the stream");
}

#[tokio::test]
async fn a_stale_cache_catches_up_after_a_conflict() {
    let f = fixture();
    let other = engine_on(f.store.clone(), 8);
    let id = lead(6);
    f.register(id, ResponsibleChoice::Unassigned).await;
    // Another node assigns the lead; this engine's cache does not know.
    let assign = AssignResponsible {
        to: UserId::named("maria.manager"),
        remind: false,
    };
    other
        .execute(
            id,
            LeadCommand::AssignResponsible(assign),
            CommandMeta::by(olga()),
        )
        .await
        .unwrap();
    let out = f
        .engine
        .execute(
            id,
            LeadCommand::Qualify(QualifyLead::default()),
            CommandMeta::by(ivan()),
        )
        .await
        .unwrap();
    let lead = out.state.unwrap();
    assert_eq!(lead.responsible, Some(UserId::named("maria.manager")));
    assert_eq!(
        lead.stage,
        Stage::Handoff,
        "decided on the caught-up state: responsible set, so Handoff"
    );
}

/// A store whose every append loses the race, to show the engine gives up after its bound.
struct AlwaysConflicting {
    inner: EmbeddedStore,
    appends: AtomicU32,
}

#[async_trait]
impl EventStore for AlwaysConflicting {
    async fn append(
        &self,
        stream: &StreamName,
        expected: ExpectedRevision,
        _: Vec<NewEvent>,
    ) -> Result<AppendResult, StoreError> {
        self.appends.fetch_add(1, Ordering::SeqCst);
        Err(StoreError::WrongExpectedRevision {
            stream: stream.to_string(),
            expected,
            actual: Some(99),
        })
    }
    async fn append_with_keys(
        &self,
        stream: &StreamName,
        expected: ExpectedRevision,
        events: Vec<NewEvent>,
        _: Vec<NewKey>,
    ) -> Result<AppendResult, StoreError> {
        self.append(stream, expected, events).await
    }
    async fn read_key(&self, subject: Uuid) -> Result<StoredKey, StoreError> {
        self.inner.read_key(subject).await
    }
    async fn destroy_key(&self, subject: Uuid) -> Result<(), StoreError> {
        self.inner.destroy_key(subject).await
    }
    async fn read_stream(
        &self,
        s: &StreamName,
        from: u64,
        max: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        self.inner.read_stream(s, from, max).await
    }
    async fn read_all(
        &self,
        after: Position,
        max: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        self.inner.read_all(after, max).await
    }
    async fn head(&self) -> Result<Position, StoreError> {
        self.inner.head().await
    }
    fn subscribe_all(
        &self,
        after: Position,
    ) -> BoxStream<'static, Result<RecordedEvent, StoreError>> {
        self.inner.subscribe_all(after)
    }
}

#[tokio::test]
async fn conflicts_are_retried_a_bounded_number_of_times_then_reported() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(AlwaysConflicting {
        inner: EmbeddedStore::open(dir.path().join("events.db")).unwrap(),
        appends: AtomicU32::new(0),
    });
    let engine = engine_on(store.clone(), 3);
    let id = lead(7);
    let err = engine
        .execute(
            id,
            register(id, ResponsibleChoice::Creator),
            CommandMeta::by(ivan()),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, EngineError::Conflict { attempts: 4, .. }),
        "{err:?}"
    );
    assert_eq!(store.appends.load(Ordering::SeqCst), 4);
}

#[tokio::test]
async fn registering_under_another_leads_id_is_refused() {
    let f = fixture();
    let err = f
        .engine
        .execute(
            lead(8),
            register(lead(9), ResponsibleChoice::Creator),
            CommandMeta::by(ivan()),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, EngineError::MisaddressedRegistration { named, sent_to } if named == lead(9) && sent_to == lead(8)),
        "{err:?}"
    );
    assert_eq!(f.store.head().await.unwrap(), Position::START);
}

#[test]
fn bad_values_are_typed_errors_at_the_edge() {
    assert!(matches!(
        Phone::parse("+7 12"),
        Err(ValueError::Phone { .. })
    ));
    assert!(matches!(
        Email::parse("ivan@"),
        Err(ValueError::Email { .. })
    ));
    assert!(matches!(
        Money::parse_decimal("12.345", Currency::rub()),
        Err(ValueError::Money { .. })
    ));
    assert!(matches!(
        Money::from_minor(-5, Currency::rub()),
        Err(ValueError::Money { .. })
    ));
    assert!(matches!(
        Name::parse("title", &"x".repeat(201)),
        Err(ValueError::TextTooLong { max: 200, .. })
    ));
    assert!(matches!(
        Currency::parse("rubles"),
        Err(ValueError::Currency { .. })
    ));
}

#[tokio::test]
async fn unknown_funnel_stage_or_user_is_a_typed_error_and_appends_nothing() {
    let f = fixture();
    let id = lead(10);
    let mut reg = RegisterLead {
        lead_id: id,
        funnel: Some(FunnelId::parse("nope").unwrap()),
        responsible: Default::default(),
        details: details(),
    };
    let err = f
        .engine
        .execute(
            id,
            LeadCommand::Register(reg.clone()),
            CommandMeta::by(ivan()),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, EngineError::Rejected(Rejection::UnknownFunnel { .. })),
        "{err:?}"
    );

    reg.funnel = None;
    reg.responsible = ResponsibleChoice::User(UserId::named("nobody"));
    let err = f
        .engine
        .execute(
            id,
            LeadCommand::Register(reg.clone()),
            CommandMeta::by(ivan()),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, EngineError::Rejected(Rejection::UnknownUser { .. })),
        "{err:?}"
    );
    assert_eq!(f.store.head().await.unwrap(), Position::START);

    reg.responsible = ResponsibleChoice::Creator;
    f.engine
        .execute(id, LeadCommand::Register(reg), CommandMeta::by(ivan()))
        .await
        .unwrap();
    let head = f.store.head().await.unwrap();
    let jump = JumpToStage {
        stage: StageKey::parse("limbo").unwrap(),
        reason: Comment::parse("reason", "testing").unwrap(),
        sale: None,
    };
    let err = f
        .engine
        .execute(id, LeadCommand::JumpToStage(jump), CommandMeta::by(ivan()))
        .await
        .unwrap_err();
    assert!(
        matches!(err, EngineError::Rejected(Rejection::UnknownStage { .. })),
        "{err:?}"
    );
    let assign = AssignResponsible {
        to: UserId::named("ghost"),
        remind: true,
    };
    let err = f
        .engine
        .execute(
            id,
            LeadCommand::AssignResponsible(assign),
            CommandMeta::by(ivan()),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, EngineError::Rejected(Rejection::UnknownUser { .. })),
        "{err:?}"
    );
    assert_eq!(f.store.head().await.unwrap(), head);
}

#[tokio::test]
async fn the_creatio_path_round_trips_through_the_store() {
    let f = fixture();
    let id = lead(11);
    let run = |cmd: LeadCommand, actor: Actor| {
        let engine = &f.engine;
        async move {
            engine
                .execute(id, cmd, CommandMeta::by(actor))
                .await
                .unwrap()
        }
    };
    run(register(id, ResponsibleChoice::Unassigned), ivan()).await;
    let out = run(LeadCommand::Qualify(QualifyLead::default()), ivan()).await;
    assert_eq!(out.state.as_ref().unwrap().stage, Stage::Distribution);
    run(
        LeadCommand::AssignResponsible(AssignResponsible {
            to: ivan().user,
            remind: true,
        }),
        olga(),
    )
    .await;
    let out = run(
        LeadCommand::Distribute(DistributionDecision::StartHandoff { remind: true }),
        olga(),
    )
    .await;
    let task = out.state.as_ref().unwrap().open_tasks[0].id;
    let transfer = HandoffResult::TransferToSale {
        comment: Comment::parse("comment", "ready to talk budget").unwrap(),
    };
    let out = run(
        LeadCommand::CompleteHandoffTask(CompleteHandoffTask {
            task_id: task,
            result: transfer,
        }),
        ivan(),
    )
    .await;
    let details_task = out.state.as_ref().unwrap().open_tasks[0].id;
    let submit = SubmitHandoffDetails {
        task_id: details_task,
        budget: Money::parse_decimal("1500000", Currency::rub()).unwrap(),
        sales_direction: Short::parse("sales direction", "Pumps").unwrap(),
        meeting_at: now() + chrono::Duration::days(2),
        decision_at: now() + chrono::Duration::days(14),
        need_type: None,
        comment: None,
    };
    let out = run(LeadCommand::SubmitHandoffDetails(submit), ivan()).await;
    let lead = out.state.unwrap();
    assert_eq!(
        (lead.stage, lead.maturity),
        (Stage::AwaitingSale, Maturity::ReadyForSale)
    );
    let deal = lead.deal.unwrap().id;
    let out = run(
        LeadCommand::RecordDealWon(RecordDealWon { deal_id: deal }),
        ivan(),
    )
    .await;
    let warm = out.state.unwrap();
    assert_eq!(
        (warm.stage, warm.maturity),
        (Stage::NeedSatisfied, Maturity::Satisfied)
    );
    let cold = engine_on(f.store.clone(), 8)
        .load(id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(cold, warm, "every event decodes back to the same state");
}

fn sealing_engine(store: Arc<dyn EventStore>, master: Option<MasterKey>) -> Engine {
    Engine::new(
        store.clone(),
        Arc::new(Catalog::default_catalog()),
        Arc::new(FixedClock::at(now())),
        Arc::new(leadflow_engine::V7Ids),
        EngineConfig {
            keyring: Some(Arc::new(Keyring::new(store, master))),
            ..EngineConfig::default()
        },
    )
}

/// Lead `n` registered by a sealing engine: the fixture, the master key, the engine, the id.
async fn registered_and_sealed(n: u128) -> (Fixture, MasterKey, Engine, LeadId) {
    let f = fixture();
    let master = MasterKey::generate().unwrap();
    let engine = sealing_engine(f.store.clone(), Some(master.clone()));
    let id = lead(n);
    engine
        .execute(
            id,
            register(id, ResponsibleChoice::Creator),
            CommandMeta::by(ivan()),
        )
        .await
        .unwrap();
    (f, master, engine, id)
}

#[tokio::test]
async fn personal_fields_are_sealed_under_the_subjects_key_and_open_for_a_fresh_engine() {
    let (f, master, engine, id) = registered_and_sealed(40).await;
    let comment = "Позвонить после обеда, Иван Петров";
    engine
        .execute(
            id,
            LeadCommand::Disqualify(DisqualifyLead {
                reason: leadflow_domain::ReasonCode::parse("spam").unwrap(),
                comment: Some(leadflow_domain::values::Comment::parse("c", comment).unwrap()),
            }),
            CommandMeta::by(ivan()),
        )
        .await
        .unwrap();
    let recorded = f.store.read_stream(&lead_stream(id), 0, 10).await.unwrap();
    let subject = SubjectId::for_lead(id).as_uuid();
    for e in &recorded {
        let text = String::from_utf8_lossy(&e.data);
        for plain in [
            "Ivan Petrov",
            "+79161234567",
            "dairy farm",
            "Позвонить",
            "Петров",
        ] {
            assert!(!text.contains(plain), "{plain} in {}: {text}", e.event_type);
        }
        // Sealed where there is a personal value; an event with none needs no key to read.
        let meta = EventMetadata::decode(&e.metadata).unwrap();
        let holds = ["LeadRegistered", "LeadDisqualified"].contains(&e.event_type.as_str());
        assert_eq!(meta.subject, holds.then_some(subject), "{}", e.event_type);
    }
    assert!(
        text_of(&recorded).contains("\"spam\""),
        "codes stay readable"
    );
    assert!(matches!(
        f.store.read_key(subject).await.unwrap(),
        StoredKey::Present(_)
    ));
    // Another engine over the same store and master key reads the lead back in plain text.
    let fresh = sealing_engine(f.store.clone(), Some(master));
    let back = fresh.load(id).await.unwrap().unwrap();
    assert_eq!(back.details.contact_name.unwrap().as_str(), "Ivan Petrov");
    assert_eq!(
        back.disqualification.unwrap().comment.unwrap().as_str(),
        comment
    );
    // Without the master key, or with another, the lead cannot be loaded: never "erased".
    for master in [None, Some(MasterKey::generate().unwrap())] {
        let blind = sealing_engine(f.store.clone(), master);
        let err = blind.load(id).await.unwrap_err();
        assert!(matches!(err, EngineError::Keys(_)), "{err}");
    }
}

#[tokio::test]
async fn new_data_about_an_erased_subject_is_sealed_under_its_successor() {
    let (f, master, engine, id) = registered_and_sealed(41).await;
    let subject = SubjectId::for_lead(id).as_uuid();
    engine.keyring().unwrap().destroy(subject).await.unwrap();
    // A fresh engine reads the erased lead, and a command on it still works.
    let fresh = sealing_engine(f.store.clone(), Some(master));
    let erased = fresh.load(id).await.unwrap().unwrap();
    assert_eq!(erased.details.title.as_str(), ERASED);
    assert_eq!(erased.details.phones[0].as_str(), ERASED);
    fresh
        .execute(
            id,
            LeadCommand::Disqualify(DisqualifyLead {
                reason: leadflow_domain::ReasonCode::parse("spam").unwrap(),
                comment: Some(leadflow_domain::values::Comment::parse("c", "new words").unwrap()),
            }),
            CommandMeta::by(ivan()),
        )
        .await
        .unwrap();
    let stream = f.store.read_stream(&lead_stream(id), 0, 10).await.unwrap();
    let disqualified = stream
        .iter()
        .find(|e| e.event_type == "LeadDisqualified")
        .unwrap();
    let meta = EventMetadata::decode(&disqualified.metadata).unwrap();
    assert_eq!(meta.subject, Some(leadflow_keyring_successor(subject)));
    let lead = fresh.load(id).await.unwrap().unwrap();
    assert_eq!(
        lead.disqualification.unwrap().comment.unwrap().as_str(),
        "new words"
    );
}

fn leadflow_keyring_successor(subject: Uuid) -> Uuid {
    Uuid::new_v5(&subject, b"successor")
}

fn text_of(events: &[RecordedEvent]) -> String {
    events
        .iter()
        .map(|e| String::from_utf8_lossy(&e.data).into_owned())
        .collect()
}
