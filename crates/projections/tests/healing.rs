//! Read models heal by themselves after a transient failure: a real `SQLITE_FULL` (the
//! model's database capped with `PRAGMA max_page_count` under the running model, then
//! uncapped) makes it retry from its checkpoint and catch up with exactly the rows of a model
//! that never failed, while the others go on; a constraint violation still stops it at that
//! event for the operator.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{TimeZone, Utc};
use rusqlite::Transaction;
use uuid::Uuid;

use leadflow_domain::commands::{RegisterLead, ResponsibleChoice};
use leadflow_domain::details::LeadDetails;
use leadflow_domain::values::{Comment, Name};
use leadflow_domain::{Actor, Catalog, LeadCommand, LeadId, Role, UserId};
use leadflow_engine::{CommandMeta, Engine, EngineConfig, FixedClock, SequentialIds};
use leadflow_projections::history::HistoryProjection;
use leadflow_projections::leads::LeadsProjection;
use leadflow_projections::runner::{Control, ControlError, Generation, ReadError};
use leadflow_projections::{
    Envelope, Projection, ProjectionError, ProjectionState, ProjectionStatus, ReadSide,
};
use leadflow_store::{EventStore, Position};
use leadflow_store_embedded::EmbeddedStore;

const WAIT: Duration = Duration::from_secs(20);

/// The leads model, with its database capped at its current size while `full` is set (every
/// new page then fails with SQLITE_FULL, as on a full disk, and each batch needs new pages), and a unique-key violation on the
/// events of `violate`'s stream.
struct Leads {
    inner: LeadsProjection,
    full: Arc<AtomicBool>,
    /// The stream whose events violate a unique key, while set (clearing it is the fix).
    violate: Arc<Mutex<Option<String>>>,
    /// While set, a batch waits before it is applied (a long batch, to act on meanwhile).
    hold: Arc<AtomicBool>,
    /// Set once a batch waits on `hold`.
    held: Arc<AtomicBool>,
}

impl Projection for Leads {
    fn name(&self) -> &'static str {
        self.inner.name()
    }
    fn fresh(&self) -> Box<dyn Projection> {
        Box::new(Leads {
            inner: LeadsProjection::default(),
            full: self.full.clone(),
            violate: self.violate.clone(),
            hold: self.hold.clone(),
            held: self.held.clone(),
        })
    }
    fn version(&self) -> u32 {
        self.inner.version()
    }
    fn schema(&self) -> &'static str {
        self.inner.schema()
    }
    fn apply(&mut self, tx: &Transaction<'_>, events: &[Envelope]) -> Result<(), ProjectionError> {
        if self.hold.load(Ordering::SeqCst) {
            // Tells the test a batch is held here.
            self.held.store(true, Ordering::SeqCst);
            while self.hold.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(5));
            }
        }
        if self.full.load(Ordering::SeqCst) {
            let pages: i64 = tx.query_row("PRAGMA page_count", [], |r| r.get(0))?;
            tx.query_row(&format!("PRAGMA max_page_count = {pages}"), [], |_| Ok(()))?;
            // A batch small enough for the free room of the file's pages would still fit:
            // a megabyte first, which cannot (rolled back with the batch).
            tx.execute_batch(
                "CREATE TABLE IF NOT EXISTS filler(b BLOB);
                 INSERT INTO filler VALUES (zeroblob(1048576));",
            )?;
        } else {
            tx.query_row("PRAGMA max_page_count = 4294967294", [], |_| Ok(()))?;
        }
        if let Some(stream) = self.violate.lock().unwrap().as_ref() {
            if events.iter().any(|e| &e.stream == stream) {
                tx.execute(
                    "INSERT INTO projection_state(name, version, position, state) VALUES ('leads', 1, 0, 'ok')",
                    [],
                )?;
            }
        }
        self.inner.apply(tx, events)
    }
    fn set_rebuilding(&mut self, rebuilding: bool) {
        self.inner.set_rebuilding(rebuilding)
    }
    fn finish_rebuild(&mut self, tx: &Transaction<'_>) -> Result<(), ProjectionError> {
        self.inner.finish_rebuild(tx)
    }
}

struct World {
    dir: tempfile::TempDir,
    store: Arc<dyn EventStore>,
    engine: Engine,
}

fn world() -> World {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn EventStore> =
        Arc::new(EmbeddedStore::open(dir.path().join("events.db")).unwrap());
    let catalog = Arc::new(Catalog::default_catalog());
    let clock = Arc::new(FixedClock::at(
        Utc.with_ymd_and_hms(2026, 3, 2, 9, 0, 0).unwrap(),
    ));
    let engine = Engine::new(
        store.clone(),
        catalog.clone(),
        clock,
        Arc::new(SequentialIds::default()),
        EngineConfig::default(),
    );
    World { dir, store, engine }
}

impl World {
    /// A read side on `<dir>/read` that fills up while the flag returned with it is set,
    /// caught up with leads `1..n` registered first; and the position they reached.
    async fn filling(&self, n: u128) -> (ReadSide, Arc<AtomicBool>, std::path::PathBuf, Position) {
        let full = Arc::new(AtomicBool::new(false));
        let dir = self.dir.path().join("read");
        let reads = self.reads(&dir, &full, None);
        let before = self.register(1, n).await;
        reads.wait_for(before, WAIT).await.unwrap();
        (reads, full, dir, before)
    }

    fn reads(&self, dir: &Path, full: &Arc<AtomicBool>, violate: Option<LeadId>) -> ReadSide {
        let violate = Arc::new(Mutex::new(violate.map(|id| format!("lead-{id}"))));
        self.reads_with(dir, full, &violate)
    }

    /// [`World::reads`], the violating stream settable while it runs.
    fn reads_with(
        &self,
        dir: &Path,
        full: &Arc<AtomicBool>,
        violate: &Arc<Mutex<Option<String>>>,
    ) -> ReadSide {
        let no = || Arc::new(AtomicBool::new(false));
        self.reads_held(dir, full, violate, (&no(), &no()))
    }

    /// [`World::reads_with`], its batches held while `hold` is set (`held` says one is).
    fn reads_held(
        &self,
        dir: &Path,
        full: &Arc<AtomicBool>,
        violate: &Arc<Mutex<Option<String>>>,
        (hold, held): (&Arc<AtomicBool>, &Arc<AtomicBool>),
    ) -> ReadSide {
        let leads = Leads {
            inner: LeadsProjection::default(),
            full: full.clone(),
            violate: violate.clone(),
            hold: hold.clone(),
            held: held.clone(),
        };
        let projections: Vec<Box<dyn Projection>> =
            vec![Box::new(leads), Box::new(HistoryProjection::new())];
        ReadSide::start(dir, self.store.clone(), projections).unwrap()
    }

    /// Registers leads `from..to`, each with a long comment (pages to write); the last position.
    async fn register(&self, from: u128, to: u128) -> Position {
        let ivan = Actor {
            user: UserId::named("ivan.manager"),
            role: Role::Manager,
        };
        let mut last = Position::START;
        for n in from..to {
            let id = LeadId::from_uuid(Uuid::from_u128(n));
            let command = LeadCommand::Register(RegisterLead {
                lead_id: id,
                funnel: None,
                responsible: ResponsibleChoice::Creator,
                details: LeadDetails {
                    comment: Some(
                        Comment::parse("comment", &"Подробности заявки. ".repeat(40)).unwrap(),
                    ),
                    ..LeadDetails::titled(Name::parse("title", &format!("Lead {n}")).unwrap())
                },
            });
            last = self
                .engine
                .execute(id, command, CommandMeta::by(ivan))
                .await
                .unwrap()
                .position
                .unwrap();
        }
        last
    }
}

async fn status_of(reads: &ReadSide, name: &str) -> ProjectionStatus {
    reads
        .status()
        .await
        .into_iter()
        .find(|s| s.name == name)
        .unwrap()
}

/// Polls until `check` holds for the named model's status; panics with the last one if not.
async fn until(reads: &ReadSide, name: &str, check: impl Fn(&ProjectionStatus) -> bool) {
    let deadline = Instant::now() + WAIT;
    loop {
        let status = status_of(reads, name).await;
        if check(&status) {
            return;
        }
        assert!(Instant::now() < deadline, "never came: {status:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn dump(path: &Path) -> Vec<String> {
    leadflow_projections::dump_tables(path).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_read_model_retries_and_heals_with_the_rows_of_one_that_never_failed() {
    let w = world();
    let (reads, full, dir, _) = w.filling(21).await;

    full.store(true, Ordering::SeqCst);
    let during = w.register(21, 61).await;
    until(&reads, "leads", |s| {
        s.state == ProjectionState::Retrying && s.attempts >= 2
    })
    .await;
    let retrying = status_of(&reads, "leads").await;
    let error = retrying.error.clone().unwrap();
    assert!(error.contains("full"), "{error}");
    assert!(retrying.next_attempt.is_some(), "{retrying:?}");
    assert!(retrying.checkpoint < during, "{retrying:?}");
    // The others go on meanwhile.
    until(&reads, "history", |s| {
        s.checkpoint == during && s.state == ProjectionState::Live
    })
    .await;
    // A consistency wait the retrying model cannot meet times out naming it and why.
    let err = reads
        .wait_for(during, Duration::from_millis(300))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("read model leads") && err.contains("retrying") && err.contains("full"),
        "{err}"
    );

    full.store(false, Ordering::SeqCst);
    reads.wait_for(during, WAIT).await.unwrap();
    let healed = status_of(&reads, "leads").await;
    assert_eq!(healed.state, ProjectionState::Live, "{healed:?}");
    assert_eq!((healed.attempts, healed.error.clone()), (0, None));
    let after = w.register(61, 66).await;
    reads.wait_for(after, WAIT).await.unwrap();
    reads.shutdown();

    let reference = w.dir.path().join("reference");
    let never_failed = w.reads(&reference, &Arc::new(AtomicBool::new(false)), None);
    never_failed.wait_for(after, WAIT).await.unwrap();
    never_failed.shutdown();
    assert_eq!(
        dump(&dir.join("leads.db")),
        dump(&reference.join("leads.db"))
    );
    assert_eq!(
        dump(&dir.join("history.db")),
        dump(&reference.join("history.db"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_is_answered_while_a_model_backs_off_and_a_pause_outlives_a_restart() {
    let w = world();
    let (reads, full, dir, before) = w.filling(6).await;

    // Backing off before its fifth attempt (2 s away): a retry tries again now.
    full.store(true, Ordering::SeqCst);
    let during = w.register(6, 12).await;
    until(&reads, "leads", |s| {
        s.state == ProjectionState::Retrying && s.attempts == 4
    })
    .await;
    let due = status_of(&reads, "leads").await.next_attempt.unwrap();
    assert_eq!(reads.control("leads", Control::Retry).await, Ok(None));
    until(&reads, "leads", |s| s.attempts == 5).await;
    assert!(
        chrono::Utc::now() < due,
        "the retry waited for the backoff to end"
    );
    // What does not apply to a model backing off is refused, and changes nothing.
    let skip = Control::Skip {
        position: during,
        reason: "no".to_owned(),
        by: "admin".to_owned(),
    };
    assert!(matches!(
        reads.control("leads", skip).await,
        Err(ControlError::NotApplicable { .. })
    ));
    assert!(control_dead_letters(&reads).await.is_empty());

    // A pause while backing off pauses now, and outlives a restart.
    reads.control("leads", Control::Pause).await.unwrap();
    let paused = status_of(&reads, "leads").await;
    assert_eq!(paused.state, ProjectionState::Paused, "{paused:?}");
    reads.shutdown();
    drop(reads);
    full.store(false, Ordering::SeqCst);
    let reads = w.reads(&dir, &full, None);
    let later = w.register(12, 15).await;
    until(&reads, "history", |s| s.checkpoint == later).await;
    let still = status_of(&reads, "leads").await;
    assert_eq!(still.state, ProjectionState::Paused, "{still:?}");
    assert_eq!(still.checkpoint, before);

    // Resumed, it catches up; resumed for good: the next restart follows the log.
    reads.control("leads", Control::Resume).await.unwrap();
    reads.wait_for(later, WAIT).await.unwrap();
    reads.shutdown();
    drop(reads);
    let reads = w.reads(&dir, &full, None);
    let last = w.register(15, 16).await;
    reads.wait_for(last, WAIT).await.unwrap();
    reads.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_constraint_violation_stops_the_model_at_that_event_and_is_never_retried() {
    let w = world();
    let bad = LeadId::from_uuid(Uuid::from_u128(5));
    let reads = w.reads(
        &w.dir.path().join("read"),
        &Arc::new(AtomicBool::new(false)),
        Some(bad),
    );
    let before = w.register(1, 5).await;
    reads.wait_for(before, WAIT).await.unwrap();
    let at = w.register(5, 6).await;
    let after = w.register(6, 8).await;

    until(&reads, "leads", |s| s.state == ProjectionState::Failed).await;
    until(&reads, "history", |s| s.checkpoint == after).await;
    // Still stopped at that event a while later: not retried.
    tokio::time::sleep(Duration::from_millis(800)).await;
    let leads = status_of(&reads, "leads").await;
    assert_eq!(leads.state, ProjectionState::Failed, "{leads:?}");
    assert_eq!(leads.attempts, 0);
    assert_eq!(
        leads.checkpoint, before,
        "stopped before the violating event {at}"
    );
    let error = leads.error.unwrap();
    assert!(error.contains("UNIQUE constraint failed"), "{error}");
    reads.shutdown();
}

fn skip(position: Position, reason: &str) -> Control {
    Control::Skip {
        position,
        reason: reason.to_owned(),
        by: "admin".to_owned(),
    }
}

fn stream_of(n: u128) -> String {
    format!("lead-{}", LeadId::from_uuid(Uuid::from_u128(n)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poison_event_stops_its_model_until_an_operator_retries_or_skips_it() {
    let w = world();
    let dir = w.dir.path().join("read");
    let full = Arc::new(AtomicBool::new(false));
    let violate = Arc::new(Mutex::new(Some(stream_of(5))));
    let reads = w.reads_with(&dir, &full, &violate);
    let before = w.register(1, 5).await;
    reads.wait_for(before, WAIT).await.unwrap();
    let at = w.register(5, 6).await;
    let after = w.register(6, 8).await;

    // Stopped exactly at the poison event, saying where and what; the others go on.
    until(&reads, "leads", |s| s.state == ProjectionState::Failed).await;
    until(&reads, "history", |s| s.checkpoint == after).await;
    let stopped = status_of(&reads, "leads").await;
    assert_eq!(stopped.checkpoint, before);
    let poison = stopped.stopped_at.clone().expect("where it stopped");
    assert_eq!(poison.position, at);
    assert_eq!(poison.event_type, "LeadRegistered");
    assert_eq!(poison.stream, stream_of(5));
    assert!(stopped.error.unwrap().contains(&format!("position {at}")));

    // What does not apply is refused, and changes nothing.
    assert!(matches!(
        reads.control("leads", skip(after, "wrong event")).await,
        Err(ControlError::WrongPosition { .. })
    ));
    assert_eq!(
        reads.control("leads", skip(at, "  ")).await,
        Err(ControlError::NoReason)
    );
    assert!(matches!(
        reads.control("leads", Control::Resume).await,
        Err(ControlError::NotApplicable { .. })
    ));
    assert!(matches!(
        reads.control("nope", Control::Retry).await,
        Err(ControlError::Unknown(_))
    ));
    assert!(control_dead_letters(&reads).await.is_empty());

    // A retry before the fix stops at the same event again; the answer names it.
    assert_eq!(reads.control("leads", Control::Retry).await, Ok(Some(at)));
    until(&reads, "leads", |s| {
        s.state == ProjectionState::Failed && s.stopped_at.as_ref().map(|p| p.position) == Some(at)
    })
    .await;

    // A skip records the event with its reason and goes on after it.
    reads
        .control("leads", skip(at, "INC-42: registered twice by the import"))
        .await
        .unwrap();
    reads.wait_for(after, WAIT).await.unwrap();
    let letters = control_dead_letters(&reads).await;
    assert_eq!(letters.len(), 1, "{letters:?}");
    assert_eq!(letters[0].position, at);
    assert_eq!(letters[0].event_type, "LeadRegistered");
    assert_eq!(letters[0].reason, "INC-42: registered twice by the import");
    assert_eq!(letters[0].by, "admin");
    assert!(letters[0].error.contains("UNIQUE constraint failed"));

    // A retry after the fix applies the event it stopped at.
    *violate.lock().unwrap() = Some(stream_of(9));
    let nine = w.register(8, 10).await;
    until(&reads, "leads", |s| s.state == ProjectionState::Failed).await;
    *violate.lock().unwrap() = None;
    reads.control("leads", Control::Retry).await.unwrap();
    reads.wait_for(nine, WAIT).await.unwrap();
    assert_eq!(control_dead_letters(&reads).await.len(), 1);

    // Paused: it applies nothing, a consistency wait says why, the others go on; resumed, it
    // catches up.
    reads.control("leads", Control::Pause).await.unwrap();
    until(&reads, "leads", |s| s.state == ProjectionState::Paused).await;
    let later = w.register(10, 12).await;
    until(&reads, "history", |s| s.checkpoint == later).await;
    assert_eq!(status_of(&reads, "leads").await.checkpoint, nine);
    match reads.wait_for(later, Duration::from_millis(200)).await {
        Err(ReadError::Timeout { name, why, .. }) => {
            assert_eq!(name, "leads");
            assert!(why.contains("paused"), "{why}");
        }
        other => panic!("a paused model met a wait: {other:?}"),
    }
    reads.control("leads", Control::Resume).await.unwrap();
    reads.wait_for(later, WAIT).await.unwrap();
    reads.shutdown();
    drop(reads);

    // A rebuild from zero skips exactly the dead letters: the poison is still poison.
    *violate.lock().unwrap() = Some(stream_of(5));
    rusqlite::Connection::open(dir.join("leads.db"))
        .unwrap()
        .execute("UPDATE projection_state SET version = 0", [])
        .unwrap();
    let reads = w.reads_with(&dir, &full, &violate);
    reads.wait_for(later, WAIT).await.unwrap();
    until(&reads, "leads", |s| {
        s.state == ProjectionState::Live && !s.rebuilding
    })
    .await;
    assert_eq!(control_dead_letters(&reads).await.len(), 1);
    reads.shutdown();
}

async fn control_dead_letters(reads: &ReadSide) -> Vec<leadflow_projections::runner::DeadLetter> {
    reads.dead_letters("leads").await.unwrap()
}

/// The generation a rebuild is building, as the model's status shows it.
fn building(status: &ProjectionStatus) -> Option<&ProjectionStatus> {
    status.rebuild.as_deref()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_generation_being_built_is_retried_skipped_and_paused_on_its_own_while_live_serves() {
    let w = world();
    let dir = w.dir.path().join("read");
    let full = Arc::new(AtomicBool::new(false));
    let violate = Arc::new(Mutex::new(None));
    let hold = Arc::new(AtomicBool::new(false));
    let held = Arc::new(AtomicBool::new(false));
    let reads = Arc::new(w.reads_held(&dir, &full, &violate, (&hold, &held)));
    let first = w.register(1, 8).await;
    reads.wait_for(first, WAIT).await.unwrap();
    let on_building = |control| {
        let reads = reads.clone();
        async move {
            reads
                .control_generation("leads", Generation::Building, control)
                .await
        }
    };
    assert_eq!(
        on_building(Control::Pause).await,
        Err(ControlError::NoBuild { name: "leads" }),
        "no generation is being built"
    );

    // A new generation stops at an event only it cannot apply (the live one applied it
    // long ago) and waits for the operator; the live one goes on serving and following.
    *violate.lock().unwrap() = Some(stream_of(5));
    reads.rebuild(&["leads"], false).await.unwrap();
    until(&reads, "leads", |s| {
        building(s).is_some_and(|b| b.state == ProjectionState::Failed)
    })
    .await;
    let more = w.register(8, 10).await;
    reads.wait_for(more, WAIT).await.unwrap();
    let status = status_of(&reads, "leads").await;
    assert_eq!(status.state, ProjectionState::Live);
    let generation = status.generation;
    let stopped = building(&status).unwrap().stopped_at.clone().unwrap();
    assert_eq!(stopped.stream, stream_of(5));
    assert_eq!(stopped.event_type, "LeadRegistered");

    // Retried before a fix, it stops at the same event again.
    on_building(Control::Retry).await.unwrap();
    until(&reads, "leads", |s| {
        building(s).is_some_and(|b| {
            b.state == ProjectionState::Failed
                && b.stopped_at.as_ref().map(|p| p.position) == Some(stopped.position)
        })
    })
    .await;

    // Skipped there, it goes on; paused during its next (long) batch, it holds and is not
    // switched in, though it has caught up.
    hold.store(true, Ordering::SeqCst);
    on_building(skip(stopped.position, "bad_event INC-9"))
        .await
        .unwrap();
    // Paused while it applies the batch that takes it to the head.
    let deadline = Instant::now() + WAIT;
    while !held.load(Ordering::SeqCst) {
        assert!(
            Instant::now() < deadline,
            "the new generation never took a batch"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let pause = tokio::spawn(on_building(Control::Pause));
    tokio::time::sleep(Duration::from_millis(200)).await;
    hold.store(false, Ordering::SeqCst);
    pause.await.unwrap().unwrap();
    until(&reads, "leads", |s| {
        building(s).is_some_and(|b| b.state == ProjectionState::Paused)
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let status = status_of(&reads, "leads").await;
    assert_eq!(
        building(&status).unwrap().checkpoint,
        more,
        "paused once caught up with the log"
    );
    assert_eq!(status.generation, generation, "not switched while paused");
    assert_eq!(status.state, ProjectionState::Live);
    assert!(reads.dead_letters("leads").await.unwrap().is_empty());

    // Resumed, it catches up and takes over, its dead letter with it.
    on_building(Control::Resume).await.unwrap();
    until(&reads, "leads", |s| {
        s.generation != generation && building(s).is_none()
    })
    .await;
    reads.wait_for(more, WAIT).await.unwrap();
    let letters = reads.dead_letters("leads").await.unwrap();
    assert_eq!(letters.len(), 1, "{letters:?}");
    assert_eq!(letters[0].position, stopped.position);
    assert_eq!(letters[0].reason, "bad_event INC-9");
    reads.shutdown();
}

/// The nice value of each of this process's threads named `name` (Linux keeps the first 15
/// bytes of a thread's name).
#[cfg(target_os = "linux")]
fn nice_of_threads(name: &str) -> Vec<i32> {
    let mut nice = Vec::new();
    for task in std::fs::read_dir("/proc/self/task").unwrap().flatten() {
        let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
        if comm.trim_end() != name {
            continue;
        }
        let Ok(stat) = std::fs::read_to_string(task.path().join("stat")) else {
            continue; // gone meanwhile
        };
        // The fields after the name in parentheses: state is the 3rd of stat(5), nice the 19th.
        let after = &stat[stat.rfind(')').unwrap() + 2..];
        nice.push(after.split(' ').nth(16).unwrap().parse().unwrap());
    }
    nice
}

#[cfg(target_os = "linux")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_generation_built_beside_live_runs_at_a_lower_priority_until_it_serves() {
    let w = world();
    let dir = w.dir.path().join("read");
    let full = Arc::new(AtomicBool::new(false));
    let violate = Arc::new(Mutex::new(None));
    let hold = Arc::new(AtomicBool::new(false));
    let held = Arc::new(AtomicBool::new(false));
    let reads = w.reads_held(&dir, &full, &violate, (&hold, &held));
    let first = w.register(1, 30).await;
    reads.wait_for(first, WAIT).await.unwrap();

    // The new generation's batch held mid-apply: on its build thread, beside the live worker.
    // (Let go however the test ends: a held batch would hold up the shutdown.)
    struct LetGo(Arc<AtomicBool>);
    impl Drop for LetGo {
        fn drop(&mut self) {
            self.0.store(false, Ordering::SeqCst);
        }
    }
    let _let_go = LetGo(hold.clone());
    hold.store(true, Ordering::SeqCst);
    reads.rebuild(&["leads"], false).await.unwrap();
    while !held.load(Ordering::SeqCst) {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let building = nice_of_threads("build-leads-g1");
    assert!(!building.is_empty(), "no build thread");
    assert!(building.iter().all(|n| *n == 10), "{building:?}");
    // Its own feeder (the live models share another one; other tests may have theirs).
    let feeding = nice_of_threads("feed-leads");
    assert!(feeding.contains(&10), "{feeding:?}");
    // And the store reads the log for it on a thread of its own, at its priority.
    let reading = nice_of_threads("log-reader");
    assert!(reading.contains(&10), "{reading:?}");
    let workers = nice_of_threads("projection-lead");
    assert!(!workers.is_empty(), "no worker thread");
    assert!(workers.iter().all(|n| *n == 0), "the live one: {workers:?}");

    // Switched in, it follows the log on its worker's thread, at the priority it started with.
    hold.store(false, Ordering::SeqCst);
    until(&reads, "leads", |s| {
        s.generation == 1 && s.rebuild.is_none()
    })
    .await;
    // Live at the head of a quiet log, with no batch to say so.
    until(&reads, "leads", |s| s.state == ProjectionState::Live).await;
    let next = w.register(30, 31).await;
    reads.wait_for(next, WAIT).await.unwrap();
    let workers = nice_of_threads("projection-lead");
    assert!(workers.iter().all(|n| *n == 0), "{workers:?}");
    reads.shutdown();
}
