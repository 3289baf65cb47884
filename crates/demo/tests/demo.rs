//! The demo generator over the real embedded store: every stage and every detour shows up,
//! the data set depends on the seed alone (not on the store, the wall clock or the
//! concurrency), and a second run appends nothing.
//!
//! The engines here run on the wall clock and v7 ids on purpose: if the generator leaned on
//! either, two runs would differ and the determinism tests would fail.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use chrono::Duration;
use uuid::Uuid;

use leadflow_codec::{lead, EventMetadata};
use leadflow_demo::{generate, DemoConfig, DemoReport};
use leadflow_domain::events::{
    DistributionDecision, HandoffResult, LeadEvent, SystemTaskKind, Transition,
};
use leadflow_domain::{evolve, Catalog, Lead, Stage};
use leadflow_engine::{Engine, EngineConfig, SystemClock, V7Ids};
use leadflow_store::{EventStore, Position, RecordedEvent};
use leadflow_store_embedded::EmbeddedStore;

struct Fixture {
    _dir: tempfile::TempDir,
    store: Arc<dyn EventStore>,
    engine: Engine,
}

fn engine_on(store: Arc<dyn EventStore>) -> Engine {
    Engine::new(
        store,
        Arc::new(Catalog::default_catalog()),
        Arc::new(SystemClock),
        Arc::new(V7Ids),
        EngineConfig::default(),
    )
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn EventStore> =
        Arc::new(EmbeddedStore::open(dir.path().join("events.db")).unwrap());
    let engine = engine_on(store.clone());
    Fixture {
        _dir: dir,
        store,
        engine,
    }
}

fn config(leads: u64, seed: u64, concurrency: usize) -> DemoConfig {
    DemoConfig {
        leads,
        seed,
        concurrency,
        ..DemoConfig::default()
    }
}

async fn run(engine: &Engine, config: &DemoConfig) -> DemoReport {
    generate(engine, config, |_| {})
        .await
        .unwrap_or_else(|e| panic!("the demo failed: {e}"))
}

async fn log(store: &dyn EventStore) -> Vec<RecordedEvent> {
    let mut all = Vec::new();
    let mut after = Position::START;
    loop {
        let batch = store.read_all(after, 10_000).await.unwrap();
        let Some(last) = batch.last() else {
            return all;
        };
        after = last.position;
        all.extend(batch);
    }
}

/// Stream -> its events as (id, type, data, metadata): what must not depend on the run.
type Streams = BTreeMap<String, Vec<(Uuid, String, Vec<u8>, Vec<u8>)>>;

fn by_stream(log: &[RecordedEvent]) -> Streams {
    let mut streams = Streams::new();
    for e in log {
        let events = streams.entry(e.stream.clone()).or_default();
        assert_eq!(
            events.len() as u64,
            e.revision,
            "stream {} is dense",
            e.stream
        );
        events.push((
            e.id,
            e.event_type.clone(),
            e.data.clone(),
            e.metadata.clone(),
        ));
    }
    streams
}

fn decode(e: &RecordedEvent) -> (EventMetadata, LeadEvent) {
    let meta = EventMetadata::decode(&e.metadata).unwrap();
    let event = lead::decode(&e.event_type, meta.version, &e.data).unwrap();
    (meta, event)
}

#[tokio::test]
async fn three_hundred_leads_reach_every_stage_along_every_path() {
    let f = fixture();
    let progress = AtomicU64::new(0);
    let config = config(300, 42, 32);
    let report = generate(&f.engine, &config, |done| {
        progress.fetch_max(done, Ordering::Relaxed);
    })
    .await
    .unwrap_or_else(|e| panic!("the demo failed: {e}"));
    assert_eq!(report.leads, 300);
    assert_eq!(progress.load(Ordering::Relaxed), 300);
    assert_eq!(report.replayed, 0);
    for stage in Stage::ALL {
        assert!(
            report.by_stage[&stage] > 0,
            "no lead ended in {stage}: {report:?}"
        );
    }

    // The report tells the truth: fold the store's log and count again.
    let log = log(f.store.as_ref()).await;
    assert_eq!(report.events, log.len() as u64);
    let mut leads: BTreeMap<String, Option<Lead>> = BTreeMap::new();
    let mut commands: BTreeMap<Uuid, Vec<String>> = BTreeMap::new();
    let mut seen = BTreeSet::new();
    let mut reasons = BTreeSet::new();
    let mut last_time = BTreeMap::new();
    let (start, end) = (config.start, config.start + Duration::days(90));
    for e in &log {
        let (meta, event) = decode(e);
        // Business time never runs backwards within a lead.
        let previous = last_time.insert(e.stream.clone(), meta.occurred_at);
        assert!(
            previous.is_none_or(|p| p <= meta.occurred_at),
            "{}",
            e.stream
        );
        let lead = leads.entry(e.stream.clone()).or_default();
        let label = match &event {
            LeadEvent::LeadRegistered(r) => {
                assert!(start <= meta.occurred_at && meta.occurred_at < end);
                seen.insert(format!("funnel {}", r.funnel));
                format!("registered with a responsible: {}", r.responsible.is_some())
            }
            LeadEvent::LeadStageChanged(c) => match &c.via {
                Transition::Jump { .. } => format!("jump {} -> {}", c.from, c.to),
                via => format!("{via:?}"),
            },
            LeadEvent::LeadDistributed(d) => match &d.decision {
                DistributionDecision::StartHandoff { .. } => "StartHandoff".into(),
                DistributionDecision::ContinueNurturing { .. } => "ContinueNurturing".into(),
                DistributionDecision::NeedAbsent { .. } => "NeedAbsent decision".into(),
            },
            LeadEvent::SystemTaskCompleted(t) => match &t.result {
                Some(HandoffResult::Postponed { .. }) => "Postponed".into(),
                Some(HandoffResult::NoInterest { .. }) => "NoInterest".into(),
                _ => "task completed".into(),
            },
            LeadEvent::SystemTaskOpened(t) if t.kind == SystemTaskKind::Handoff => {
                "handoff task".into()
            }
            LeadEvent::LeadDisqualified(d) => {
                reasons.insert(d.reason.clone());
                let from = lead.as_ref().unwrap().stage;
                format!("disqualified in {from}")
            }
            other => other.event_type().to_owned(),
        };
        commands
            .entry(meta.command_id)
            .or_default()
            .push(label.clone());
        seen.insert(label);
        *lead = evolve(lead.take(), &event);
    }
    // A command that only opened a handoff task is a ScheduleHandoffTask.
    if commands.values().any(|c| c == &["handoff task"]) {
        seen.insert("ScheduleHandoffTask".into());
    }
    let mut folded: BTreeMap<Stage, u64> = Stage::ALL.iter().map(|s| (*s, 0)).collect();
    for lead in leads.values() {
        *folded.entry(lead.as_ref().unwrap().stage).or_default() += 1;
    }
    assert_eq!(folded, report.by_stage);
    for path in [
        "funnel default",
        "funnel partners",
        "registered with a responsible: true",
        "registered with a responsible: false",
        "LeadDetailsUpdated",
        "ResponsibleAssigned",
        "ContinueNurturing",
        "StartHandoff",
        "NeedAbsent decision",
        "Postponed",
        "NoInterest",
        "ReturnToDistribution",
        "TransferToSale",
        "PlaceOrder",
        "HandoffDetailsRecorded",
        "ScheduleHandoffTask",
        "disqualified in Qualification",
        "disqualified in Distribution",
        "disqualified in Handoff",
        "Converted",
        "jump Handoff -> AwaitingSale",
        "jump Qualification -> Handoff",
        "jump Handoff -> Qualification",
        "DealWon",
        "DealLost",
        "Reopened",
    ] {
        assert!(seen.contains(path), "no {path:?} in the data set: {seen:?}");
    }
    assert!(
        reasons.len() >= 10,
        "few disqualification reasons: {reasons:?}"
    );
}

#[tokio::test]
async fn a_second_run_on_the_same_store_appends_nothing() {
    let f = fixture();
    let config = config(80, 5, 8);
    let first = run(&f.engine, &config).await;
    let head = f.store.head().await.unwrap();
    assert!(first.accepted > 80);

    let again = run(&f.engine, &config).await;
    // After a restart the engine finds the commands in the streams, not in its cache.
    let cold = run(&engine_on(f.store.clone()), &config).await;
    for second in [again, cold] {
        assert_eq!(f.store.head().await.unwrap(), head, "nothing was appended");
        assert_eq!((second.accepted, second.events), (0, 0));
        assert_eq!(second.replayed, first.accepted);
        assert_eq!(second.by_stage, first.by_stage);
    }
}

#[tokio::test]
async fn a_larger_run_extends_a_smaller_one() {
    let (small, fresh) = (fixture(), fixture());
    let partial = run(&small.engine, &config(30, 9, 4)).await;
    let rest = run(&small.engine, &config(60, 9, 4)).await;
    let whole = run(&fresh.engine, &config(60, 9, 4)).await;
    assert_eq!(rest.replayed, partial.accepted);
    assert_eq!(partial.accepted + rest.accepted, whole.accepted);
    assert_eq!(
        by_stream(&log(small.store.as_ref()).await),
        by_stream(&log(fresh.store.as_ref()).await)
    );
}

#[tokio::test]
async fn the_same_seed_gives_the_same_events_in_any_store() {
    let (a, b, other) = (fixture(), fixture(), fixture());
    run(&a.engine, &config(120, 7, 1)).await;
    run(&b.engine, &config(120, 7, 1)).await;
    run(&other.engine, &config(120, 8, 1)).await;
    let (a, b, other) = (
        log(a.store.as_ref()).await,
        log(b.store.as_ref()).await,
        log(other.store.as_ref()).await,
    );
    let content = |log: &[RecordedEvent]| {
        log.iter()
            .map(|e| {
                let meta = (e.event_type.clone(), e.data.clone(), e.metadata.clone());
                (e.stream.clone(), e.revision, e.position, e.id, meta)
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(content(&a), content(&b), "one seed, one data set");
    let ids = |log: &[RecordedEvent]| log.iter().map(|e| e.id).collect::<BTreeSet<_>>();
    assert!(
        ids(&a).is_disjoint(&ids(&other)),
        "another seed, other leads"
    );
    assert_ne!(
        by_stream(&a).into_values().collect::<Vec<_>>(),
        by_stream(&other).into_values().collect::<Vec<_>>()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_concurrency_changes_the_interleaving_but_no_stream() {
    let (one, many) = (fixture(), fixture());
    let serial = run(&one.engine, &config(150, 11, 1)).await;
    let parallel = run(&many.engine, &config(150, 11, 16)).await;
    assert_eq!(serial, parallel);
    assert_eq!(
        by_stream(&log(one.store.as_ref()).await),
        by_stream(&log(many.store.as_ref()).await)
    );
}
