//! The read side over the real embedded store and engine: what the models show along the
//! Creatio path, resuming from checkpoints, poison events, version rebuilds, and the law that
//! a rebuild from zero equals the incremental run.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use chrono::{TimeZone, Utc};
use proptest::prelude::*;
use rusqlite::Connection;
use uuid::Uuid;

use leadflow_domain::commands::*;
use leadflow_domain::details::{DetailChange, LeadDetails};
use leadflow_domain::events::HandoffResult;
use leadflow_domain::values::{Comment, Currency, Money, Name, Phone, Short};
use leadflow_domain::{
    Actor, Catalog, FunnelId, LeadCommand, LeadId, ReasonCode, Role, Stage, UserId,
};
use leadflow_engine::{Clock, CommandMeta, Engine, EngineConfig, FixedClock, SequentialIds};
use leadflow_projections::query::{
    self, LeadFilter, ReportDimension, ReportFilter, Sort, SortField,
};
use leadflow_projections::{all_projections, Projection, ProjectionState, ReadSide};
use leadflow_store::{EventStore, ExpectedRevision, NewEvent, Position, StreamName};
use leadflow_store_embedded::EmbeddedStore;

const WAIT: Duration = Duration::from_secs(10);

fn catalog() -> Arc<Catalog> {
    Arc::new(Catalog::default_catalog())
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

struct World {
    dir: tempfile::TempDir,
    store: Arc<dyn EventStore>,
    engine: Engine,
    clock: Arc<FixedClock>,
}

fn world() -> World {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn EventStore> =
        Arc::new(EmbeddedStore::open(dir.path().join("events.db")).unwrap());
    let clock = Arc::new(FixedClock::at(
        Utc.with_ymd_and_hms(2026, 3, 2, 9, 0, 0).unwrap(),
    ));
    let engine = Engine::new(
        store.clone(),
        catalog(),
        clock.clone(),
        Arc::new(SequentialIds::default()),
        EngineConfig::default(),
    );
    World {
        dir,
        store,
        engine,
        clock,
    }
}

fn read_side(store: &Arc<dyn EventStore>, dir: &Path) -> Arc<ReadSide> {
    Arc::new(ReadSide::start(dir, store.clone(), all_projections()).unwrap())
}

fn lead(n: u128) -> LeadId {
    LeadId::from_uuid(Uuid::from_u128(n))
}

fn register(
    id: LeadId,
    title: &str,
    budget: Option<i64>,
    responsible: ResponsibleChoice,
) -> LeadCommand {
    LeadCommand::Register(RegisterLead {
        lead_id: id,
        funnel: None,
        responsible,
        details: LeadDetails {
            contact_name: Some(Name::parse("contact", "Anna Smirnova").unwrap()),
            phones: vec![Phone::parse("+79031234567").unwrap()],
            budget: budget.map(|b| Money::from_minor(b, Currency::rub()).unwrap()),
            source: Some(leadflow_domain::SourceCode::parse("website").unwrap()),
            ..LeadDetails::titled(Name::parse("title", title).unwrap())
        },
    })
}

async fn run(engine: &Engine, id: LeadId, cmd: LeadCommand, actor: Actor) -> Position {
    engine
        .execute(id, cmd, CommandMeta::by(actor))
        .await
        .unwrap()
        .position
        .unwrap()
}

fn default_funnel() -> FunnelId {
    FunnelId::parse("default").unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_read_models_follow_a_lead_along_the_creatio_path() {
    let w = world();
    let reads = read_side(&w.store, &w.dir.path().join("read"));
    let (a, b) = (lead(1), lead(2));
    run(
        &w.engine,
        a,
        register(
            a,
            "Pumps for Vologda",
            Some(100_000),
            ResponsibleChoice::Creator,
        ),
        ivan(),
    )
    .await;
    let pos = run(
        &w.engine,
        b,
        register(
            b,
            "Boilers for Tver",
            Some(250_000),
            ResponsibleChoice::Unassigned,
        ),
        ivan(),
    )
    .await;
    reads.wait_for(pos, WAIT).await.unwrap();

    let cat = catalog();
    let board = reads
        .read(leadflow_projections::LEADS, move |c| {
            query::board(c, &cat, &default_funnel(), false, None)
        })
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        board.columns.len(),
        7,
        "every stage of the funnel, closed ones included"
    );
    assert_eq!(
        (
            board.columns[0].stage,
            board.columns[0].leads,
            board.columns[0].budget_minor
        ),
        (Stage::Qualification, 2, 350_000)
    );
    assert_eq!((board.total_leads, board.total_budget_minor), (2, 350_000));

    // Qualify a -> Handoff; b -> Distribution.
    run(
        &w.engine,
        a,
        LeadCommand::Qualify(QualifyLead::default()),
        ivan(),
    )
    .await;
    let pos = run(
        &w.engine,
        b,
        LeadCommand::Qualify(QualifyLead::default()),
        ivan(),
    )
    .await;
    reads.wait_for(pos, WAIT).await.unwrap();
    let cat = catalog();
    let board = reads
        .read(leadflow_projections::LEADS, move |c| {
            query::board(c, &cat, &default_funnel(), true, None)
        })
        .await
        .unwrap()
        .unwrap();
    assert_eq!(board.columns.len(), 4, "closed stages hidden on request");
    let count = |s: Stage| {
        board
            .columns
            .iter()
            .find(|c| c.stage == s)
            .map(|c| (c.leads, c.budget_minor))
            .unwrap()
    };
    assert_eq!(count(Stage::Qualification), (0, 0));
    assert_eq!(count(Stage::Handoff), (1, 100_000));
    assert_eq!(count(Stage::Distribution), (1, 250_000));

    // Disqualify b with a reason; the reasons report names it.
    let reason = ReasonCode::parse("no-budget").unwrap();
    let dq = LeadCommand::Disqualify(DisqualifyLead {
        reason,
        comment: Some(Comment::parse("c", "cut").unwrap()),
    });
    let pos = run(&w.engine, b, dq, olga()).await;
    reads.wait_for(pos, WAIT).await.unwrap();
    let reasons = reads
        .read(leadflow_projections::LEADS, |c| {
            query::report(
                c,
                ReportDimension::DisqualificationReason,
                &ReportFilter::default(),
            )
        })
        .await
        .unwrap();
    assert_eq!(reasons.len(), 1);
    assert_eq!(
        (reasons[0].key.as_deref(), reasons[0].leads),
        (Some("no-budget"), 1)
    );
    let by_stage = reads
        .read(leadflow_projections::LEADS, |c| {
            query::report(c, ReportDimension::Stage, &ReportFilter::default())
        })
        .await
        .unwrap();
    assert_eq!(by_stage.iter().map(|r| r.leads).sum::<i64>(), 2);

    // The table: filter by stage, text, budget; sort by budget descending.
    let filter = LeadFilter {
        funnel: Some("default".into()),
        text: Some("vologda".into()),
        ..Default::default()
    };
    let page = reads
        .read(leadflow_projections::LEADS, move |c| {
            query::leads_page(c, &filter, &[], 10, None)
        })
        .await
        .unwrap();
    assert_eq!((page.total_count, page.rows.len()), (1, 1));
    assert_eq!(page.rows[0].0.stage, "Handoff");
    // Under three characters there are no trigrams: the filter scans instead.
    let filter = LeadFilter {
        text: Some("Tv".into()),
        ..Default::default()
    };
    let page = reads
        .read(leadflow_projections::LEADS, move |c| {
            query::leads_page(c, &filter, &[], 10, None)
        })
        .await
        .unwrap();
    assert_eq!(
        page.rows
            .iter()
            .map(|r| r.0.title.as_str())
            .collect::<Vec<_>>(),
        ["Boilers for Tver"]
    );
    let filter = LeadFilter {
        budget_min: Some(200_000),
        ..Default::default()
    };
    let page = reads
        .read(leadflow_projections::LEADS, move |c| {
            query::leads_page(c, &filter, &[], 10, None)
        })
        .await
        .unwrap();
    assert_eq!(
        page.rows
            .iter()
            .map(|r| r.0.title.as_str())
            .collect::<Vec<_>>(),
        ["Boilers for Tver"]
    );
    let sort = [Sort {
        field: SortField::Budget,
        descending: true,
    }];
    let page = reads
        .read(leadflow_projections::LEADS, move |c| {
            query::leads_page(c, &LeadFilter::default(), &sort, 1, None)
        })
        .await
        .unwrap();
    assert!(page.has_next);
    assert_eq!(page.rows[0].0.title, "Boilers for Tver");
    let after = page.rows[0].1.clone();
    let next = reads
        .read(leadflow_projections::LEADS, move |c| {
            query::leads_page(c, &LeadFilter::default(), &sort, 1, Some(&after))
        })
        .await
        .unwrap();
    assert_eq!(next.rows[0].0.title, "Pumps for Vologda");
    assert!(!next.has_next);

    // The card and the feed.
    let card = reads
        .read(leadflow_projections::LEADS, move |c| query::card(c, a))
        .await
        .unwrap()
        .unwrap()
        .0;
    assert_eq!((card.stage, card.open_tasks.len()), (Stage::Handoff, 1));
    // The feed: the lead's stream, read from the log and written out by the history model.
    let stream = || async {
        w.store
            .read_stream(&leadflow_codec::lead_stream(b), 0, usize::MAX)
            .await
            .unwrap()
            .into_iter()
            .map(|e| leadflow_codec::decode(e).unwrap())
            .collect::<Vec<_>>()
    };
    let events = stream().await;
    let feed = reads
        .read(leadflow_projections::HISTORY, move |c| {
            leadflow_projections::history::feed(c, events, 50, None)
        })
        .await
        .unwrap();
    // Paged, it is the same feed, page after page.
    let (mut paged, mut before) = (Vec::new(), None);
    loop {
        let events = stream().await;
        let page = reads
            .read(leadflow_projections::HISTORY, move |c| {
                leadflow_projections::history::feed(c, events, 2, before)
            })
            .await
            .unwrap();
        assert_eq!(page.total_count, feed.total_count);
        paged.extend(page.rows.iter().map(|r| r.0.clone()));
        if !page.has_next {
            break;
        }
        before = Some(page.rows.last().unwrap().0.position);
    }
    assert_eq!(
        paged,
        feed.rows.iter().map(|r| r.0.clone()).collect::<Vec<_>>()
    );
    let summaries: Vec<&str> = feed.rows.iter().map(|r| r.0.summary.as_str()).collect();
    assert_eq!(feed.total_count as usize, summaries.len());
    assert!(
        summaries[0].starts_with("Stage Distribution → Disqualified"),
        "newest first: {summaries:?}"
    );
    assert!(
        summaries
            .iter()
            .any(|s| s.starts_with("Disqualified: No budget: cut")),
        "{summaries:?}"
    );
    assert!(
        summaries
            .last()
            .unwrap()
            .starts_with("Registered “Boilers for Tver”"),
        "{summaries:?}"
    );
    assert!(feed
        .rows
        .iter()
        .all(|r| r.0.actor_user == ivan().user.to_string()
            || r.0.actor_user == olga().user.to_string()));

    let status = reads.status().await;
    assert!(
        status
            .iter()
            .all(|s| s.state == ProjectionState::Live && s.lag() == 0),
        "{status:?}"
    );
}

fn dump(path: &Path) -> Vec<String> {
    leadflow_projections::dump_tables(path).unwrap()
}

/// The leads model's search index, checked whole by SQLite and asked for a few substrings:
/// the rows each finds.
fn searches(dir: &Path) -> Vec<(String, Vec<i64>)> {
    let conn = rusqlite::Connection::open(dir.join("leads.db")).unwrap();
    conn.execute_batch("INSERT INTO lead_search(lead_search) VALUES ('integrity-check')")
        .expect("the search index is intact");
    ["Lead", "ead 3", "Lead 5", "erased"]
        .into_iter()
        .map(|term| {
            let rows = conn
                .prepare("SELECT rowid FROM lead_search WHERE lead_search MATCH ?1 ORDER BY rowid")
                .unwrap()
                .query_map([format!("\"{term}\"")], |r| r.get(0))
                .unwrap()
                .collect::<rusqlite::Result<_>>()
                .unwrap();
            (term.to_owned(), rows)
        })
        .collect()
}

fn dumps(dir: &Path) -> (Vec<String>, Vec<String>, Vec<String>) {
    (
        dump(&dir.join("leads.db")),
        dump(&dir.join("history.db")),
        dump(&dir.join("transitions.db")),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_read_side_resumes_from_its_checkpoints_with_nothing_lost_or_doubled() {
    let w = world();
    let dir = w.dir.path().join("read");
    let mut last = Position::START;
    {
        let reads = read_side(&w.store, &dir);
        for i in 0..20 {
            let id = lead(100 + i);
            last = run(
                &w.engine,
                id,
                register(
                    id,
                    &format!("Lead {i}"),
                    Some(1000 * i as i64),
                    ResponsibleChoice::Creator,
                ),
                ivan(),
            )
            .await;
        }
        reads.wait_for(last, WAIT).await.unwrap();
        reads.shutdown();
    }
    for i in 0..20 {
        let id = lead(100 + i);
        last = run(
            &w.engine,
            id,
            LeadCommand::Qualify(QualifyLead::default()),
            ivan(),
        )
        .await;
    }
    let reads = read_side(&w.store, &dir);
    reads.wait_for(last, WAIT).await.unwrap();
    reads.shutdown();
    let fresh = w.dir.path().join("fresh");
    let rebuilt = read_side(&w.store, &fresh);
    rebuilt.wait_for(last, WAIT).await.unwrap();
    rebuilt.shutdown();
    assert_eq!(dumps(&dir), dumps(&fresh));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_a_projection_cannot_apply_stops_it_and_the_others_go_on() {
    let w = world();
    let reads = read_side(&w.store, &w.dir.path().join("read"));
    let id = lead(7);
    run(
        &w.engine,
        id,
        register(id, "Fine", None, ResponsibleChoice::Creator),
        ivan(),
    )
    .await;
    // A details update for a lead that was never registered: the history can record it, the
    // lead card cannot fold it.
    let orphan = lead(8);
    let meta = serde_json::json!({
        "actor": {"userId": ivan().user, "role": "Manager"}, "occurredAt": "2026-03-02T09:00:00Z",
        "correlationId": Uuid::nil(), "causationId": Uuid::nil(), "commandId": Uuid::nil(), "version": 1
    });
    let poison = NewEvent {
        id: Uuid::from_u128(99),
        event_type: "LeadDetailsUpdated".into(),
        data: br#"{"changes":[{"field":"advertising","value":false}]}"#.to_vec(),
        metadata: serde_json::to_vec(&meta).unwrap(),
        content_type: leadflow_store::ContentType::Json,
    };
    let stream = StreamName::parse(format!("lead-{orphan}")).unwrap();
    let poisoned_at = w
        .store
        .append(&stream, ExpectedRevision::Any, vec![poison])
        .await
        .unwrap()
        .last_position;
    let after = run(
        &w.engine,
        id,
        LeadCommand::Qualify(QualifyLead::default()),
        ivan(),
    )
    .await;

    let err = reads.wait_for(after, WAIT).await.unwrap_err();
    assert!(err.to_string().contains("leads"), "{err}");
    let status = reads.status().await;
    let leads = status.iter().find(|s| s.name == "leads").unwrap();
    assert_eq!(leads.state, ProjectionState::Failed);
    assert!(
        leads.checkpoint < poisoned_at,
        "the poison event is not skipped"
    );
    let error = leads.error.as_deref().unwrap();
    assert!(
        error.contains(&format!("position {poisoned_at}")) && error.contains("not registered"),
        "{error}"
    );
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let status = reads.status().await;
        let history = status.iter().find(|s| s.name == "history").unwrap();
        if history.checkpoint == after {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the other projection goes on: {history:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The leads projection under a newer version number, to show a version bump rebuilds.
#[derive(Default)]
struct LeadsV2(leadflow_projections::leads::LeadsProjection);

impl Projection for LeadsV2 {
    fn name(&self) -> &'static str {
        "leads"
    }
    fn fresh(&self) -> Box<dyn Projection> {
        Box::new(Self::default())
    }
    fn version(&self) -> u32 {
        self.0.version() + 1
    }
    fn schema(&self) -> &'static str {
        self.0.schema()
    }
    fn apply(
        &mut self,
        tx: &rusqlite::Transaction<'_>,
        events: &[leadflow_projections::Envelope],
    ) -> Result<(), leadflow_projections::ProjectionError> {
        self.0.apply(tx, events)
    }
    fn set_rebuilding(&mut self, rebuilding: bool) {
        self.0.set_rebuilding(rebuilding)
    }
    fn finish_rebuild(
        &mut self,
        tx: &rusqlite::Transaction<'_>,
    ) -> Result<(), leadflow_projections::ProjectionError> {
        self.0.finish_rebuild(tx)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_projection_version_rebuilds_from_zero() {
    let w = world();
    let dir = w.dir.path().join("read");
    let mut last = Position::START;
    for i in 0..5 {
        let id = lead(200 + i);
        last = run(
            &w.engine,
            id,
            register(
                id,
                &format!("Lead {i}"),
                Some(500),
                ResponsibleChoice::Creator,
            ),
            ivan(),
        )
        .await;
    }
    let v1 = read_side(&w.store, &dir);
    v1.wait_for(last, WAIT).await.unwrap();
    v1.shutdown();
    drop(v1);
    let before = dump(&dir.join("leads.db"));
    // Tamper with a counter: a rebuild must not keep it.
    Connection::open(dir.join("leads.db"))
        .unwrap()
        .execute("UPDATE board SET leads = 999", [])
        .unwrap();
    // Another process looking at the old model changes nothing: the new version builds in
    // a file of its own.
    let observer = Connection::open(dir.join("leads.db")).unwrap();
    let _: i64 = observer
        .query_row("SELECT count(*) FROM leads", [], |r| r.get(0))
        .unwrap();
    // The history, already at the head, runs beside the rebuild.
    let history = Box::new(leadflow_projections::history::HistoryProjection::new());
    let v2 = Arc::new(
        ReadSide::start(
            &dir,
            w.store.clone(),
            vec![Box::<LeadsV2>::default(), history],
        )
        .unwrap(),
    );
    v2.wait_for(last, WAIT).await.unwrap();
    let status = v2.status().await;
    assert_eq!(
        (status[0].version, status[0].checkpoint),
        (
            leadflow_projections::leads::LeadsProjection::default().version() + 1,
            last
        )
    );
    let rebuilt = leadflow_projections::runner::generations::live_path(&dir, "leads");
    assert_eq!(rebuilt, dir.join("leads.g1.db"), "a new generation");
    let tampered = dump(&dir.join("leads.db"));
    assert_ne!(tampered, before, "the old generation is kept as it was");
    assert_eq!(dump(&rebuilt), before);
    drop(observer);
    // Rebuilt, the model is on the WAL, where readers never wait for the writer.
    let mode: String = Connection::open(&rebuilt)
        .unwrap()
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
    // Both follow the log on from there.
    let id = lead(299);
    let next = run(
        &w.engine,
        id,
        register(
            id,
            "After the rebuild",
            Some(700),
            ResponsibleChoice::Creator,
        ),
        ivan(),
    )
    .await;
    v2.wait_for(next, WAIT).await.unwrap();
    let status = v2.status().await;
    assert!(status.iter().all(|s| s.checkpoint == next), "{status:?}");
    v2.shutdown();
    assert_ne!(dump(&rebuilt), before);
    assert_eq!(
        dump(&dir.join("leads.db")),
        tampered,
        "the old generation is never touched"
    );
    drop(v2);

    // The binary rolled back: the old version's generation serves again and catches up
    // from where it stopped (its tampered counter shows it was not rebuilt).
    let v1 = read_side(&w.store, &dir);
    v1.wait_for(next, WAIT).await.unwrap();
    assert_eq!(
        leadflow_projections::runner::generations::live_path(&dir, "leads"),
        dir.join("leads.db")
    );
    let status = v1.status().await;
    let leads = status.iter().find(|s| s.name == "leads").unwrap();
    assert_eq!((leads.generation, leads.checkpoint), (0, next));
    v1.shutdown();
    let board: i64 = Connection::open(dir.join("leads.db"))
        .unwrap()
        .query_row("SELECT max(leads) FROM board", [], |r| r.get(0))
        .unwrap();
    assert!(board >= 999, "rebuilt instead of resumed");
}

/// A random but reasonable command for lead `id` by a random actor.
fn command(id: LeadId, pick: u8, n: u8) -> (LeadCommand, Actor) {
    let text = |s: String| Comment::parse("t", &s).unwrap();
    match pick % 9 {
        0 => (LeadCommand::Qualify(QualifyLead::default()), ivan()),
        1 => (
            LeadCommand::AssignResponsible(AssignResponsible {
                to: UserId::named(if n.is_multiple_of(2) {
                    "maria.manager"
                } else {
                    "ivan.manager"
                }),
                remind: false,
            }),
            olga(),
        ),
        2 => (
            LeadCommand::Distribute(DistributionDecision::StartHandoff { remind: true }),
            olga(),
        ),
        3 => (
            LeadCommand::Disqualify(DisqualifyLead {
                reason: ReasonCode::parse(if n.is_multiple_of(2) { "spam" } else { "price" })
                    .unwrap(),
                comment: None,
            }),
            olga(),
        ),
        4 => (
            LeadCommand::UpdateDetails(UpdateLeadDetails {
                changes: vec![DetailChange::Budget(Some(
                    Money::from_minor(n as i64 * 1000, Currency::rub()).unwrap(),
                ))],
            }),
            ivan(),
        ),
        5 => (LeadCommand::Reopen(ReopenLead { comment: None }), olga()),
        6 => (
            LeadCommand::JumpToStage(JumpToStage {
                stage: leadflow_domain::StageKey::parse(
                    ["qualification", "distribution", "handoff", "awaiting-sale"][n as usize % 4],
                )
                .unwrap(),
                reason: text(format!("jump {n}")),
                sale: Some(SaleTerms {
                    budget: Money::from_minor(777, Currency::rub()).unwrap(),
                    sales_direction: Short::parse("d", "Pumps").unwrap(),
                }),
            }),
            olga(),
        ),
        7 => (
            LeadCommand::RecordDealLost(RecordDealLost {
                deal_id: leadflow_domain::DealId::for_lead(id, 1),
                reason: None,
            }),
            ivan(),
        ),
        _ => (
            LeadCommand::CompleteHandoffTask(CompleteHandoffTask {
                task_id: leadflow_domain::TaskId::for_lead(id, n as u32 % 4 + 1),
                result: HandoffResult::ReturnToDistribution { comment: None },
            }),
            ivan(),
        ),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 8, ..ProptestConfig::default() })]

    /// Rebuilding every read model from zero gives exactly the rows the incremental run
    /// produced, wherever the incremental run happened to cut its batches; and a manager's
    /// board is the supervisor's restricted to that manager's leads.
    #[test]
    fn rebuild_from_zero_equals_the_incremental_run(
        steps in prop::collection::vec((0u8..6, any::<u8>(), any::<u8>(), any::<bool>()), 10..60)
    ) {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        let (incremental, rebuilt) = rt.block_on(async {
            let w = world();
            let live_dir = w.dir.path().join("live");
            let live = read_side(&w.store, &live_dir);
            let mut last = Position::START;
            for i in 0..6u128 {
                let id = lead(300 + i);
                let responsible = if i % 2 == 0 { ResponsibleChoice::Creator } else { ResponsibleChoice::Unassigned };
                last = run(&w.engine, id, register(id, &format!("Lead {i}"), Some(i as i64 * 100), responsible), ivan()).await;
            }
            for (which, pick, n, sync) in steps {
                let id = lead(300 + which as u128);
                let (cmd, actor) = command(id, pick, n);
                if let Ok(out) = w.engine.execute(id, cmd, CommandMeta::by(actor)).await {
                    last = out.position.unwrap_or(last);
                }
                if sync {
                    live.wait_for(last, WAIT).await.unwrap();
                }
            }
            live.wait_for(last, WAIT).await.unwrap();
            // A manager's board and table total equal the whole registry restricted to the
            // leads they are responsible for or created (SPEC 3.7).
            for user in ["ivan.manager", "maria.manager"] {
                let owner = UserId::named(user).to_string();
                let (scoped, restricted, total, rows) = live.read(leadflow_projections::LEADS, move |c| {
                    let board = query::board(c, &catalog(), &default_funnel(), false, Some(&owner))?.unwrap();
                    let scoped: Vec<(String, i64, i64)> = board.columns.iter()
                        .filter(|col| col.leads != 0)
                        .map(|col| (col.stage.to_string(), col.leads, col.budget_minor))
                        .collect();
                    let mut restricted: Vec<(String, i64, i64)> = c.prepare(
                        "SELECT stage, count(*), sum(max(budget_minor, 0)) FROM leads
                         WHERE funnel = 'default' AND (responsible = ?1 OR created_by = ?1) GROUP BY stage")?
                        .query_map([&owner], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
                        .collect::<rusqlite::Result<_>>()?;
                    restricted.sort_by_key(|(stage, _, _)| board.columns.iter().position(|col| col.stage.to_string() == *stage));
                    let filter = LeadFilter { funnel: Some("default".into()), owner: Some(owner.clone()), ..Default::default() };
                    let page = query::leads_page(c, &filter, &[], 100, None)?;
                    let rows: i64 = restricted.iter().map(|r| r.1).sum();
                    // Totals the counters serve (one responsible, with or without the scope,
                    // with or without stages) equal a count of the rows.
                    for (stages, scoped_too) in [(vec![], false), (vec![], true), (vec!["Qualification".to_owned(), "Distribution".to_owned()], true)] {
                        let filter = LeadFilter {
                            funnel: Some("default".into()),
                            responsible: vec![owner.clone()],
                            stages: stages.clone(),
                            owner: scoped_too.then(|| owner.clone()),
                            ..Default::default()
                        };
                        let served = query::leads_page(c, &filter, &[], 1, None)?.total_count;
                        let counted: i64 = c.query_row(
                            &format!(
                                "SELECT count(*) FROM leads WHERE funnel = 'default' AND responsible = ?1 {}",
                                if stages.is_empty() { "" } else { "AND stage IN ('Qualification', 'Distribution')" }
                            ),
                            [&owner],
                            |r| r.get(0),
                        )?;
                        assert_eq!(served, counted, "{user}'s leads as responsible, stages {stages:?}");
                    }
                    // Totals under a budget range (budget counters plus the edge buckets) equal
                    // a count of the rows, for everyone, a manager's scope and one responsible.
                    for (min, max) in [(Some(150), None), (None, Some(250)), (Some(100), Some(300)), (Some(0), Some(0)), (Some(101), Some(399)), (Some(17), Some(17)), (Some(400), Some(100))] {
                        for (scoped, responsible) in [(false, false), (true, false), (false, true), (true, true)] {
                            let filter = LeadFilter {
                                funnel: Some("default".into()),
                                budget_min: min,
                                budget_max: max,
                                owner: scoped.then(|| owner.clone()),
                                responsible: if responsible { vec![owner.clone()] } else { vec![] },
                                ..Default::default()
                            };
                            let served = query::leads_page(c, &filter, &[], 1, None)?.total_count;
                            let counted: i64 = c.query_row(
                                "SELECT count(*) FROM leads WHERE funnel = 'default' AND budget_minor >= max(coalesce(?1, 0), 0)
                                   AND budget_minor <= coalesce(?2, 9223372036854775807)
                                   AND (NOT ?3 OR responsible = ?5 OR created_by = ?5) AND (NOT ?4 OR responsible = ?5)",
                                rusqlite::params![min, max, scoped, responsible, owner],
                                |r| r.get(0),
                            )?;
                            assert_eq!(served, counted, "{user}: budget {min:?}..={max:?}, scoped {scoped}, responsible {responsible}");
                        }
                    }
                    Ok((scoped, restricted, page.total_count, rows))
                }).await.unwrap();
                assert_eq!(&scoped, &restricted, "{}'s board", user);
                assert_eq!(total, rows, "{}'s table total", user);
            }
            live.shutdown();
            let fresh_dir = w.dir.path().join("fresh");
            let fresh = read_side(&w.store, &fresh_dir);
            fresh.wait_for(last, WAIT).await.unwrap();
            fresh.shutdown();
            ((dumps(&live_dir), searches(&live_dir)), (dumps(&fresh_dir), searches(&fresh_dir)))
        });
        prop_assert_eq!(incremental, rebuilt);
    }
}

/// Registers `n` leads from number `first` (titled `Lead <i>`) while the read models run, and
/// stops them once the last is in.
async fn register_with_models_running(w: &World, dir: &Path, first: u128, n: u128) {
    let reads = read_side(&w.store, dir);
    let mut last = Position::START;
    for i in 0..n {
        let id = lead(first + i);
        let title = format!("Lead {i}");
        let cmd = register(id, &title, Some(100), ResponsibleChoice::Creator);
        last = run(&w.engine, id, cmd, ivan()).await;
    }
    reads.wait_for(last, WAIT).await.unwrap();
    reads.shutdown();
}

/// Waits until no model of `reads` is rebuilding any more.
async fn until_rebuilt(reads: &ReadSide) {
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let status = reads.status().await;
        if status.iter().all(|s| !s.rebuilding) {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the rebuild never finished: {status:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A rebuild killed while finishing (its last batch at the head; its indexes and the board by
/// hour not built yet) finishes as soon as it starts again, with no new event to wait for.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rebuild_killed_while_finishing_finishes_at_the_next_start() {
    let w = world();
    let dir = w.dir.path().join("read");
    register_with_models_running(&w, &dir, 900, 5).await;
    let file = dir.join("transitions.db");
    let built = dump(&file);
    // As the kill left it: still rebuilding at the head, nothing of the finish done.
    rusqlite::Connection::open(&file)
        .unwrap()
        .execute_batch(
            "UPDATE projection_state SET deferred = '';
             DELETE FROM board_hours; DELETE FROM board_touched;",
        )
        .unwrap();
    assert_ne!(dump(&file), built);
    let reads = read_side(&w.store, &dir);
    until_rebuilt(&reads).await;
    reads.shutdown();
    assert_eq!(dump(&file), built);
}

/// A leads rebuild resumed at the head after a restart (its search index's builder, a thread
/// of the process that was killed, gone with it) builds the index from the stored cards: the
/// same rows found as before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resumed_rebuild_builds_its_search_index_from_the_cards() {
    let w = world();
    let dir = w.dir.path().join("read");
    register_with_models_running(&w, &dir, 950, 8).await;
    let found = searches(&dir);
    assert_eq!(
        found[0].1.len(),
        8,
        "every lead found by its title: {found:?}"
    );
    // As a kill before the end left it: still rebuilding at the head, the index empty.
    rusqlite::Connection::open(dir.join("leads.db"))
        .unwrap()
        .execute_batch("UPDATE projection_state SET deferred = ''; DELETE FROM lead_search;")
        .unwrap();
    assert!(searches(&dir)[0].1.is_empty());
    let reads = read_side(&w.store, &dir);
    until_rebuilt(&reads).await;
    reads.shutdown();
    assert_eq!(searches(&dir), found);
}

/// A rebuild from zero leaves the board by hour out batch by batch and builds it from every
/// lead's path at its end: the rows equal the batches', with leads that stepped back in
/// business time (imports of the past) among them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rebuilt_board_by_hour_equals_the_batches_with_steps_back_in_time() {
    let World {
        dir,
        store,
        engine,
        clock,
    } = world();
    let live = read_side(&store, &dir.path().join("read"));
    let mut last = Position::START;
    for i in 0..4u128 {
        let id = lead(700 + i);
        let responsible = if i % 2 == 0 {
            ResponsibleChoice::Creator
        } else {
            ResponsibleChoice::Unassigned
        };
        last = run(
            &engine,
            id,
            register(id, "Lead", Some(100), responsible),
            ivan(),
        )
        .await;
    }
    // Each round moves every lead a few hours on; the third starts three days back.
    for round in 0..5u8 {
        if round == 2 {
            clock.set(clock.now() - chrono::Duration::days(3));
        }
        for i in 0..4u128 {
            clock.advance(chrono::Duration::hours(2));
            let id = lead(700 + i);
            let (cmd, actor) = command(id, round * 3 + i as u8, round);
            if let Ok(out) = engine.execute(id, cmd, CommandMeta::by(actor)).await {
                last = out.position.unwrap_or(last);
            }
        }
        live.wait_for(last, WAIT).await.unwrap();
    }
    let irregular: i64 = live
        .read(leadflow_projections::TRANSITIONS, |c| {
            c.query_row(
                "SELECT count(*) FROM transition_leads WHERE irregular",
                [],
                |r| r.get(0),
            )
        })
        .await
        .unwrap();
    assert!(irregular > 0, "some lead stepped back in business time");
    live.shutdown();
    let fresh_dir = dir.path().join("fresh");
    let fresh = read_side(&store, &fresh_dir);
    fresh.wait_for(last, WAIT).await.unwrap();
    fresh.shutdown();
    assert_eq!(
        dump(&dir.path().join("read").join("transitions.db")),
        dump(&fresh_dir.join("transitions.db"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_runner_on_the_same_read_models_is_refused() {
    let w = world();
    let dir = w.dir.path().join("read");
    let first = read_side(&w.store, &dir);
    let second = ReadSide::start(&dir, w.store.clone(), all_projections());
    let error = second.err().expect("a second runner must not start");
    assert!(
        matches!(&error, leadflow_projections::ProjectionError::Locked { dir: d } if *d == dir),
        "a held lock is its own error, not an event that cannot apply: {error:?}"
    );
    assert!(error.to_string().contains("another process"), "{error}");
    first.shutdown();
    drop(first);
    read_side(&w.store, &dir).shutdown();
}

fn disqualify_for(reason: &str) -> LeadCommand {
    LeadCommand::Disqualify(DisqualifyLead {
        reason: ReasonCode::parse(reason).unwrap(),
        comment: None,
    })
}

fn assign_to(user: &str) -> LeadCommand {
    LeadCommand::AssignResponsible(AssignResponsible {
        to: UserId::named(user),
        remind: false,
    })
}

fn jump_to(stage: &str, why: &str) -> LeadCommand {
    LeadCommand::JumpToStage(JumpToStage {
        stage: leadflow_domain::StageKey::parse(stage).unwrap(),
        reason: Comment::parse("reason", why).unwrap(),
        sale: None,
    })
}

/// The `transitions` model (issue 11): every stage each lead entered, in order, with where
/// and when, the jump flag and the disqualification reason; the cohort as registered; who was
/// responsible from when. A jump's free-text reason is not kept.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transitions_record_each_stage_a_lead_entered_with_its_reason_and_jumps() {
    let w = world();
    let reads = read_side(&w.store, &w.dir.path().join("read"));
    let (a, b) = (lead(1), lead(2));
    run(
        &w.engine,
        a,
        register(a, "Pumps", Some(100_000), ResponsibleChoice::Creator),
        ivan(),
    )
    .await;
    run(
        &w.engine,
        b,
        register(b, "Boilers", None, ResponsibleChoice::Unassigned),
        ivan(),
    )
    .await;
    run(
        &w.engine,
        a,
        LeadCommand::Qualify(QualifyLead::default()),
        ivan(),
    )
    .await;
    run(&w.engine, a, disqualify_for("no-budget"), ivan()).await;
    run(
        &w.engine,
        a,
        LeadCommand::Reopen(ReopenLead { comment: None }),
        olga(),
    )
    .await;
    run(&w.engine, b, assign_to("maria.manager"), olga()).await;
    let pos = run(
        &w.engine,
        b,
        jump_to("handoff", "Secret jump reason"),
        olga(),
    )
    .await;
    reads.wait_for(pos, WAIT).await.unwrap();
    reads.shutdown();

    let conn = Connection::open(w.dir.path().join("read").join("transitions.db")).unwrap();
    let rows = |id: LeadId| -> Vec<(String, String, String, bool, String)> {
        let path = leadflow_projections::board_hours::path_of(&conn, id.as_uuid()).unwrap();
        path.moves
            .iter()
            .map(|m| {
                (
                    m.from.to_string(),
                    m.to.to_string(),
                    m.via.to_string(),
                    m.jump,
                    m.reason.to_string(),
                )
            })
            .collect()
    };
    let row = |from: &str, to: &str, via: &str, jump: bool, reason: &str| {
        (
            from.to_owned(),
            to.to_owned(),
            via.to_owned(),
            jump,
            reason.to_owned(),
        )
    };
    assert_eq!(
        rows(a),
        vec![
            row("", "Qualification", "registered", false, ""),
            row("Qualification", "Handoff", "qualified", false, ""),
            row(
                "Handoff",
                "Disqualified",
                "disqualified",
                false,
                "no-budget"
            ),
            row("Disqualified", "Qualification", "reopened", false, ""),
        ]
    );
    assert_eq!(
        rows(b),
        vec![
            row("", "Qualification", "registered", false, ""),
            row("Qualification", "Handoff", "jump", true, ""),
        ]
    );
    let (funnel, responsible): (String, Option<Vec<u8>>) = conn
        .query_row(
            "SELECT funnel, responsible FROM transition_leads WHERE lead = ?1",
            [b.as_uuid().as_bytes().as_slice()],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!((funnel.as_str(), responsible), ("default", None));
    let assigned: Vec<Vec<u8>> = conn
        .prepare("SELECT user FROM assignments WHERE lead = ?1 ORDER BY position")
        .unwrap()
        .query_map([b.as_uuid().as_bytes().as_slice()], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(
        assigned,
        vec![UserId::named("maria.manager").as_uuid().as_bytes().to_vec()]
    );
    let pending: i64 = conn
        .query_row("SELECT count(*) FROM pending_reasons", [], |r| r.get(0))
        .unwrap();
    assert_eq!(pending, 0, "every reason reached its stage change");
    assert!(!dump(&w.dir.path().join("read").join("transitions.db"))
        .join("\n")
        .contains("Secret jump reason"));
}

/// The funnel audit (issue 11) over `transitions`, on a log with known answers: qualifying
/// straight to Handoff passes Distribution (not a jump), a jump passes its steps by a jump,
/// a reopened lead is open in Qualification and no longer lost, same-time events are ordered
/// by position; `asOfPosition` answers what the log held then; reruns are byte-identical and
/// the definition's hash names what was asked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_funnel_audit_counts_steps_jumps_losses_and_open_leads_exactly() {
    use leadflow_projections::audit::{
        audit_paths, funnel_audit, paths_from_log, AuditDefinition, Departments, GroupBy,
    };
    let w = world();
    let reads = read_side(&w.store, &w.dir.path().join("read"));
    let (a, b, c) = (lead(1), lead(2), lead(3));
    run(
        &w.engine,
        a,
        register(a, "Pumps", None, ResponsibleChoice::Creator),
        ivan(),
    )
    .await;
    run(
        &w.engine,
        a,
        LeadCommand::Qualify(QualifyLead::default()),
        ivan(),
    )
    .await;
    let disqualified = run(&w.engine, a, disqualify_for("no-budget"), ivan()).await;
    run(
        &w.engine,
        b,
        register(b, "Boilers", None, ResponsibleChoice::Unassigned),
        ivan(),
    )
    .await;
    run(&w.engine, b, assign_to("maria.manager"), olga()).await;
    run(&w.engine, b, jump_to("handoff", "asked"), olga()).await;
    run(
        &w.engine,
        c,
        register(c, "Racks", None, ResponsibleChoice::Unassigned),
        ivan(),
    )
    .await;
    run(
        &w.engine,
        c,
        LeadCommand::Qualify(QualifyLead::default()),
        ivan(),
    )
    .await;
    let last = run(
        &w.engine,
        a,
        LeadCommand::Reopen(ReopenLead { comment: None }),
        olga(),
    )
    .await;
    reads.wait_for(last, WAIT).await.unwrap();
    reads.shutdown();

    let conn = Connection::open(w.dir.path().join("read").join("transitions.db")).unwrap();
    let at = Utc.with_ymd_and_hms(2026, 3, 2, 9, 0, 0).unwrap();
    let definition = AuditDefinition::new(
        Utc.with_ymd_and_hms(2026, 3, 1, 0, 0, 0).unwrap(),
        Utc.with_ymd_and_hms(2026, 4, 1, 0, 0, 0).unwrap(),
        at,
    );
    let none = Departments::new();
    let audit = funnel_audit(&conn, &definition, &none).unwrap();
    assert_eq!(audit.position, last.0);
    let [group] = audit.groups.as_slice() else {
        panic!("one group: {audit:?}")
    };
    assert_eq!((group.registered, group.open_in_qualification), (3, 1));
    let steps: Vec<(u64, u64, u64)> = group
        .steps
        .iter()
        .map(|s| (s.reached, s.by_jump, s.open))
        .collect();
    assert_eq!(
        steps,
        vec![(3, 1, 0), (3, 1, 1), (2, 1, 1), (0, 0, 0), (0, 0, 0)],
        "{}",
        audit.to_json()
    );
    assert_eq!(group.steps[2].step_conversion_permille, 666);
    assert!(group.losses.is_empty(), "a reopened lead is not lost");

    // What the log held when `a` had just been disqualified: `a` alone, lost for its reason.
    let then = AuditDefinition {
        as_of_position: Some(disqualified.0),
        ..definition.clone()
    };
    let earlier = funnel_audit(&conn, &then, &none).unwrap();
    assert_eq!(earlier.position, disqualified.0);
    let group = &earlier.groups[0];
    assert_eq!(group.registered, 1);
    assert_eq!(
        (
            group.losses[0].stage.as_str(),
            group.losses[0].reason.as_str(),
            group.losses[0].leads
        ),
        ("Disqualified", "no-budget", 1)
    );
    assert_ne!(earlier.definition_hash, audit.definition_hash);

    // Before the registrations' time: nothing counts.
    let before = funnel_audit(
        &conn,
        &AuditDefinition {
            as_of: at - chrono::Duration::seconds(1),
            ..definition.clone()
        },
        &none,
    )
    .unwrap();
    assert!(before.groups.is_empty(), "{}", before.to_json());

    // Grouped by source, and byte for byte the same on a rerun.
    let by_source = AuditDefinition {
        group_by: GroupBy::Source,
        ..definition.clone()
    };
    let once = funnel_audit(&conn, &by_source, &none).unwrap().to_json();
    assert_eq!(
        once,
        funnel_audit(&conn, &by_source, &none).unwrap().to_json()
    );
    // Straight from the log, byte for byte the same answer, at the head and at a position.
    for d in [&by_source, &definition, &then] {
        let (position, paths) = paths_from_log(w.store.as_ref(), d.as_of_position, |_, _| {})
            .await
            .unwrap();
        assert_eq!(
            audit_paths(d, position, &none, &paths).to_json(),
            funnel_audit(&conn, d, &none).unwrap().to_json()
        );
    }
    assert!(once.contains("\"key\": \"website\""), "{once}");
    assert_eq!(definition.hash(), definition.clone().hash());
    assert_eq!(definition.hash().len(), 64);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 6, ..ProptestConfig::default() })]

    /// The reports as of a time equal what the live models showed at that time, and at now
    /// what they show now (issue 11): the board, the standard reports and the conversion
    /// funnel (the audit at now equals the live report), for everyone and for each manager;
    /// and manager activity counts every command that wrote events once.
    #[test]
    fn the_reports_as_of_a_time_equal_the_live_ones_then(
        steps in prop::collection::vec((0u8..6, any::<u8>(), any::<u8>(), 1i64..30), 10..50),
        cut in 0usize..50,
        back in prop::option::of(0usize..50),
    ) {
        use leadflow_projections::audit::{AuditDefinition, Departments, GroupBy};
        use leadflow_projections::reports::{self as r, Scope};
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        rt.block_on(async {
            let dir = tempfile::tempdir().unwrap();
            let store: Arc<dyn EventStore> =
                Arc::new(EmbeddedStore::open(dir.path().join("events.db")).unwrap());
            let clock = Arc::new(FixedClock::at(Utc.with_ymd_and_hms(2026, 3, 2, 9, 0, 0).unwrap()));
            let engine = Engine::new(store.clone(), catalog(), clock.clone(),
                Arc::new(SequentialIds::default()), EngineConfig::default());
            let live = read_side(&store, &dir.path().join("read"));
            let mut last = Position::START;
            let mut commands = 0u64;
            for i in 0..6u128 {
                let id = lead(500 + i);
                let responsible = if i % 2 == 0 { ResponsibleChoice::Creator } else { ResponsibleChoice::Unassigned };
                last = run(&engine, id, register(id, &format!("Lead {i}"), Some(i as i64 * 100), responsible), ivan()).await;
                commands += 1;
            }
            let owners = [None, Some(UserId::named("ivan.manager")), Some(UserId::named("maria.manager"))];
            let dims = [ReportDimension::Stage, ReportDimension::Manager, ReportDimension::DisqualificationReason];
            type Page = (i64, Vec<(String, String, Option<String>, Option<i64>, Option<String>)>);
            type Seen = (Vec<Option<query::Board>>, Vec<Vec<query::ReportRow>>, Vec<Page>);
            // The registry table under a few filters and sorts: the historical columns.
            let tables = || {
                let ivan = UserId::named("ivan.manager").to_string();
                let by_budget = vec![Sort { field: SortField::Budget, descending: true }];
                vec![
                    (LeadFilter { funnel: Some("default".into()), ..Default::default() }, by_budget.clone()),
                    (LeadFilter { stages: vec!["Qualification".into(), "Distribution".into()], ..Default::default() }, vec![]),
                    (LeadFilter { owner: Some(ivan.clone()), ..Default::default() }, by_budget.clone()),
                    (LeadFilter { budget_min: Some(100), responsible: vec![ivan], ..Default::default() }, vec![Sort { field: SortField::Stage, descending: false }]),
                ]
            };
            let page = |p: query::Page<query::LeadRow>| -> Page {
                (p.total_count, p.rows.into_iter().map(|(r, _)| (r.lead_id, r.stage, r.responsible, r.budget_minor, r.disqualification_reason)).collect())
            };
            let seen = |live: Arc<ReadSide>| async move {
                live.read(leadflow_projections::LEADS, move |c| {
                    let boards = owners.iter().map(|o| {
                        query::board(c, &catalog(), &default_funnel(), false, o.map(|u| u.to_string()).as_deref())
                    }).collect::<rusqlite::Result<Vec<_>>>()?;
                    let mut reports = Vec::new();
                    for o in owners {
                        for d in dims {
                            let filter = ReportFilter { owner: o.map(|u| u.to_string()), ..Default::default() };
                            reports.push(query::report(c, d, &filter)?);
                        }
                    }
                    let mut pages = Vec::new();
                    for (filter, sort) in tables() {
                        pages.push(page(query::leads_page(c, &filter, &sort, 100, None)?));
                    }
                    Ok((boards, reports, pages))
                }).await.unwrap()
            };
            // The registry table as of `t` from the spans of the `leads` model (the total from
            // the board by hour where it can), beside the same from every lead folded from the
            // `transitions` model: the two must agree, whatever the order of business times.
            let tables_at = |live: Arc<ReadSide>, t: chrono::DateTime<Utc>| async move {
                let at = leadflow_projections::micros(t);
                let (rows, totals) = live.read(leadflow_projections::TRANSITIONS, move |c| {
                    let (_, paths) = r::paths_at(c, t)?;
                    let rows = r::rows_at(&r::states_at(&paths, at, &Scope::default()));
                    let position = r::checkpoint(c)?;
                    let totals = tables().iter().map(|(filter, _)| match query::counted_by_board(filter) {
                        Some((funnel, stages)) => leadflow_projections::board_hours::leads_at(c, funnel, stages, at)
                            .map(|leads| Some(query::KnownTotal { leads, position })),
                        None => Ok(None),
                    }).collect::<rusqlite::Result<Vec<_>>>()?;
                    Ok((rows, totals))
                }).await.unwrap();
                live.read(leadflow_projections::LEADS, move |c| {
                    let mut pages = Vec::new();
                    for ((filter, sort), total) in tables().into_iter().zip(totals) {
                        let spans = page(query::leads_page_as_of(c, at, total, &filter, &sort, 100, None)?);
                        let folded = page(query::leads_page_from_states(c, &rows, &filter, &sort, 100, None)?);
                        assert_eq!(spans, folded, "as of {t}: {filter:?} {sort:?}");
                        pages.push(spans);
                    }
                    Ok(pages)
                }).await.unwrap()
            };
            let as_of = |live: Arc<ReadSide>, t: chrono::DateTime<Utc>| async move {
                let found = live.read(leadflow_projections::TRANSITIONS, move |c| {
                    let (_, paths) = r::paths_at(c, t)?;
                    let at = leadflow_projections::micros(t);
                    let scope = |o: Option<UserId>| Scope { owner: o.map(|u| u.as_uuid()), ..Scope::default() };
                    let boards = owners.iter().map(|o| {
                        let states = r::states_at(&paths, at, &Scope { funnel: Some("default".into()), ..scope(*o) });
                        r::board_at(&catalog(), &default_funnel(), false, &states)
                    }).collect::<Vec<_>>();
                    let mut reports = Vec::new();
                    for o in owners {
                        for d in dims {
                            reports.push(r::report_at(d, &r::states_at(&paths, at, &scope(o))));
                        }
                    }
                    Ok((boards, reports))
                }).await.unwrap();
                let (boards, reports) = found;
                (boards, reports, tables_at(live, t).await)
            };
            let mut then: Option<(chrono::DateTime<Utc>, Seen)> = None;
            // A step back in business time (an import of the past) at step `back`, if any: the
            // board by hour must then fold that lead whole.
            let monotonic = back.is_none_or(|b| b >= steps.len());
            let fast_and_slow = |live: Arc<ReadSide>, t: chrono::DateTime<Utc>| async move {
                live.read(leadflow_projections::TRANSITIONS, move |c| {
                    let (_, paths) = r::paths_at(c, t)?;
                    let at = leadflow_projections::micros(t);
                    let mut pairs = Vec::new();
                    for o in owners {
                        let scope = Scope { funnel: Some("default".into()), owner: o.map(|u| u.as_uuid()), ..Scope::default() };
                        let slow = r::board_at(&catalog(), &default_funnel(), false, &r::states_at(&paths, at, &scope));
                        let fast = leadflow_projections::board_hours::board_at(c, &catalog(), &default_funnel(), false, o.map(|u| u.as_uuid()), at)?;
                        pairs.push((fast, slow));
                    }
                    Ok(pairs)
                }).await.unwrap()
            };
            let mut moments = Vec::new();
            for (k, (which, pick, n, hours)) in steps.iter().copied().enumerate() {
                if back == Some(k) {
                    clock.set(clock.now() - chrono::Duration::days(3));
                } else {
                    clock.advance(chrono::Duration::hours(hours));
                }
                moments.push(clock.now());
                let id = lead(500 + which as u128);
                let (cmd, actor) = command(id, pick, n);
                if let Ok(out) = engine.execute(id, cmd, CommandMeta::by(actor)).await {
                    if let Some(p) = out.position {
                        last = p;
                        commands += 1;
                    }
                }
                if k == cut {
                    live.wait_for(last, WAIT).await.unwrap();
                    then = Some((clock.now(), seen(live.clone()).await));
                }
            }
            live.wait_for(last, WAIT).await.unwrap();
            let now = clock.now();
            // The board by hour equals the board folded from every lead, at every moment (and a
            // day before the first, and after the last).
            moments.push(moments[0] - chrono::Duration::days(1));
            moments.push(now + chrono::Duration::days(2));
            for t in moments {
                for (fast, slow) in fast_and_slow(live.clone(), t).await {
                    assert_eq!(fast, slow, "as of {t}");
                }
                tables_at(live.clone(), t).await;
            }
            if monotonic {
                // As of a past time: what the live models showed then.
                if let Some((t, shown)) = then {
                    assert_eq!(as_of(live.clone(), t).await, shown, "as of {t}");
                }
                // As of now: what they show now.
                assert_eq!(as_of(live.clone(), now).await, seen(live.clone()).await, "as of now");
            }
            // The audit at now (past every event, whatever the clock did) equals the live
            // conversion report, in every scope.
            let horizon = now + chrono::Duration::days(10);
            for o in owners {
                let scope = Scope { owner: o.map(|u| u.as_uuid()), ..Scope::default() };
                let (kept, audited) = live.read(leadflow_projections::TRANSITIONS, move |c| {
                    Ok((r::conversion(c, &scope)?, r::conversion_at(c, horizon, &scope)?))
                }).await.unwrap();
                let (position, mut audited) = audited;
                for s in &mut audited.steps {
                    s.median_seconds = None;
                    s.p90_seconds = None;
                }
                assert_eq!(kept.position, position);
                assert_eq!(kept.into_group(), audited, "{o:?}");
            }
            // The audit from the log, read without keys, equals the audit from the model.
            let (position, from_log) = leadflow_projections::audit::paths_from_log(store.as_ref(), None, |_, _| {}).await.unwrap();
            assert_eq!(position, last.0);
            for group_by in [GroupBy::None, GroupBy::Manager, GroupBy::Week] {
                let definition = AuditDefinition { group_by, ..AuditDefinition::new(
                    Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap(),
                    Utc.with_ymd_and_hms(2027, 1, 1, 0, 0, 0).unwrap(),
                    horizon,
                ) };
                let d = definition.clone();
                let model = live.read(leadflow_projections::TRANSITIONS, move |c| {
                    leadflow_projections::audit::funnel_audit(c, &d, &Departments::new())
                }).await.unwrap();
                let log = leadflow_projections::audit::audit_paths(&definition, position, &Departments::new(), &from_log);
                assert_eq!(model.to_json(), log.to_json(), "{group_by:?}");
            }
            // Manager activity: each command that wrote events, once.
            let counted: u64 = live.read(leadflow_projections::TRANSITIONS, move |c| {
                r::manager_activity(c, None, None, horizon, &Scope::default())
            }).await.unwrap().iter().map(|a| a.commands).sum();
            assert_eq!(counted, commands);
            live.shutdown();
            // A rebuild from zero, which builds the board by hour from the paths at its end,
            // holds exactly the rows the batches wrote, a step back in business time included.
            let fresh_dir = dir.path().join("fresh");
            let fresh = read_side(&store, &fresh_dir);
            fresh.wait_for(last, WAIT).await.unwrap();
            fresh.shutdown();
            assert_eq!(dump(&dir.path().join("read").join("transitions.db")), dump(&fresh_dir.join("transitions.db")));
        });
    }
}
