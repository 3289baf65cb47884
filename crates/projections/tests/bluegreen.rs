//! Blue/green rebuilds of the read models: a rebuild beside the live model under a steady
//! stream of commands and queries (no query fails, none sees a half-built model, the switch
//! happens once, the new model equals one built from scratch at the same position, for every
//! model), `verify` catching a planted difference, and `rollback` restoring the previous
//! generation; a server stopped at any moment of a rebuild, the middle of a switch included,
//! serving what its manifest names when started again.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{TimeZone, Utc};
use uuid::Uuid;

use leadflow_domain::commands::{RegisterLead, ResponsibleChoice};
use leadflow_domain::details::LeadDetails;
use leadflow_domain::values::Name;
use leadflow_domain::{Actor, Catalog, LeadCommand, LeadId, Role, UserId};
use leadflow_engine::{CommandMeta, Engine, EngineConfig, FixedClock, SequentialIds};
use leadflow_projections::runner::generations::{live_path, path_of, Manifest};
use leadflow_projections::runner::RebuildError;
use leadflow_projections::{all_projections, ProjectionState, ReadSide, LEADS};
use leadflow_store::{EventStore, Position};
use leadflow_store_embedded::EmbeddedStore;

const WAIT: Duration = Duration::from_secs(60);
const MODELS: [&str; 3] = ["leads", "history", "transitions"];

struct World {
    dir: tempfile::TempDir,
    store: Arc<dyn EventStore>,
    engine: Arc<Engine>,
}

fn world() -> World {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn EventStore> =
        Arc::new(EmbeddedStore::open(dir.path().join("events.db")).unwrap());
    let clock = Arc::new(FixedClock::at(
        Utc.with_ymd_and_hms(2026, 3, 2, 9, 0, 0).unwrap(),
    ));
    let engine = Arc::new(Engine::new(
        store.clone(),
        Arc::new(Catalog::default_catalog()),
        clock,
        Arc::new(SequentialIds::default()),
        EngineConfig::default(),
    ));
    World { dir, store, engine }
}

async fn register(engine: &Engine, n: u128) -> Position {
    let ivan = Actor {
        user: UserId::named("ivan.manager"),
        role: Role::Manager,
    };
    let id = LeadId::from_uuid(Uuid::from_u128(n));
    let command = LeadCommand::Register(RegisterLead {
        lead_id: id,
        funnel: None,
        responsible: ResponsibleChoice::Creator,
        details: LeadDetails::titled(Name::parse("title", &format!("Lead {n}")).unwrap()),
    });
    engine
        .execute(id, command, CommandMeta::by(ivan))
        .await
        .unwrap()
        .position
        .unwrap()
}

fn dump(path: &std::path::Path) -> Vec<String> {
    leadflow_projections::dump_tables(path).unwrap()
}

/// Polls the read side's status until `check` holds for every model.
async fn until(
    reads: &ReadSide,
    what: &str,
    check: impl Fn(&leadflow_projections::ProjectionStatus) -> bool,
) {
    let deadline = Instant::now() + WAIT;
    loop {
        let status = reads.status().await;
        if status.iter().all(&check) {
            return;
        }
        assert!(Instant::now() < deadline, "never {what}: {status:#?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Builds every model from scratch in a directory of its own, up to the log's head, and
/// compares each with the live generation of `dir`.
async fn equals_a_fresh_build(w: &World, dir: &std::path::Path) {
    let fresh = tempfile::tempdir().unwrap();
    let head = w.store.head().await.unwrap();
    let reads = ReadSide::start(fresh.path(), w.store.clone(), all_projections()).unwrap();
    reads.wait_for(head, WAIT).await.unwrap();
    reads.shutdown();
    for model in MODELS {
        assert_eq!(
            dump(&live_path(dir, model)),
            dump(&path_of(fresh.path(), model, 0)),
            "{model} differs from a build from scratch"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rebuild_beside_live_under_load_switches_once_to_a_model_equal_to_a_fresh_build() {
    let w = world();
    let dir = w.dir.path().join("read");
    let reads = Arc::new(ReadSide::start(&dir, w.store.clone(), all_projections()).unwrap());
    let mut last = Position::START;
    for n in 1..=400 {
        last = register(&w.engine, n).await;
    }
    reads.wait_for(last, WAIT).await.unwrap();

    // Commands and queries all along: each query waits for the last acknowledged command
    // and counts the leads; the count never goes down (a half-built model would show fewer).
    let stop = Arc::new(AtomicBool::new(false));
    let written = Arc::new(std::sync::Mutex::new(last));
    let writer = {
        let (engine, stop, written) = (w.engine.clone(), stop.clone(), written.clone());
        tokio::spawn(async move {
            let mut n = 1000;
            while !stop.load(Ordering::SeqCst) {
                let at = register(&engine, n).await;
                *written.lock().unwrap() = at;
                n += 1;
            }
            n - 1000
        })
    };
    let reader = {
        let (reads, stop, written) = (reads.clone(), stop.clone(), written.clone());
        tokio::spawn(async move {
            let (mut seen, mut queries) = (0i64, 0u64);
            while !stop.load(Ordering::SeqCst) {
                let at = *written.lock().unwrap();
                reads.wait_for(at, WAIT).await.expect("a consistency wait");
                let count: i64 = reads
                    .read(LEADS, |c| {
                        c.query_row("SELECT count(*) FROM leads", [], |r| r.get(0))
                    })
                    .await
                    .expect("a query");
                assert!(count >= seen, "the count went back from {seen} to {count}");
                seen = count;
                queries += 1;
            }
            queries
        })
    };

    reads.rebuild(&[], true).await.unwrap();
    assert!(matches!(
        reads.rebuild(&["leads"], false).await,
        Err(RebuildError::UnderWay("leads"))
    ));
    until(&reads, "switched", |s| {
        s.generation == 1 && s.rebuild.is_none()
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::SeqCst);
    let commands = writer.await.unwrap();
    let queries = reader.await.unwrap();
    assert!(
        commands > 0 && queries > 0,
        "{commands} commands, {queries} queries"
    );
    let status = reads.status().await;
    for s in &status {
        assert_eq!(s.refused, None, "{s:?}");
    }
    // The manifest is written just after each swap.
    let deadline = Instant::now() + WAIT;
    let manifest = loop {
        let manifest = Manifest::load(&dir).unwrap();
        if MODELS.iter().all(|m| manifest.get(m).live == 1) {
            break manifest;
        }
        assert!(Instant::now() < deadline, "{manifest:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    for model in MODELS {
        let gens = manifest.get(model);
        assert_eq!(
            (gens.live, gens.previous, gens.building),
            (1, Some(0), None)
        );
        assert!(
            path_of(&dir, model, 0).exists(),
            "the old generation is kept"
        );
    }
    let head = w.store.head().await.unwrap();
    reads.wait_for(head, WAIT).await.unwrap();
    let count: i64 = reads
        .read(LEADS, |c| {
            c.query_row("SELECT count(*) FROM leads", [], |r| r.get(0))
        })
        .await
        .unwrap();
    assert_eq!(count, 400 + commands as i64);
    equals_a_fresh_build(&w, &dir).await;

    // The next switch removes the generation before the previous one (just after the swap).
    reads.rebuild(&["leads"], false).await.unwrap();
    until(&reads, "switched again", |s| {
        s.name != "leads" || (s.generation == 2 && s.rebuild.is_none())
    })
    .await;
    let deadline = Instant::now() + WAIT;
    while path_of(&dir, "leads", 0).exists() {
        assert!(Instant::now() < deadline, "generation 0 never removed");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(path_of(&dir, "leads", 1).exists());
    reads.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_refuses_a_planted_difference_and_rollback_restores_the_previous_generation() {
    let w = world();
    let dir = w.dir.path().join("read");
    let reads = ReadSide::start(&dir, w.store.clone(), all_projections()).unwrap();
    assert!(matches!(
        reads.rollback("leads").await,
        Err(RebuildError::NoPrevious("leads"))
    ));
    let mut last = Position::START;
    for n in 1..=50 {
        last = register(&w.engine, n).await;
    }
    reads.wait_for(last, WAIT).await.unwrap();
    reads.rebuild(&["leads"], false).await.unwrap();
    until(&reads, "switched", |s| {
        s.name != "leads" || (s.generation == 1 && s.rebuild.is_none())
    })
    .await;

    // A difference planted in the live generation (as a bug of an earlier version would
    // leave it): the verified rebuild is not switched in, and says where it differs.
    rusqlite::Connection::open(path_of(&dir, "leads", 1))
        .unwrap()
        .execute(
            "UPDATE leads SET title = 'tampered' WHERE row_id = (SELECT min(row_id) FROM leads)",
            [],
        )
        .unwrap();
    reads.rebuild(&["leads"], true).await.unwrap();
    until(&reads, "refused", |s| {
        s.name != "leads" || s.refused.is_some()
    })
    .await;
    let leads = reads
        .status()
        .await
        .into_iter()
        .find(|s| s.name == "leads")
        .unwrap();
    let why = leads.refused.unwrap();
    assert!(why.contains("leads: 50 rows live, 50 rebuilt"), "{why}");
    // The rows are named by their key, never shown: they may hold personal data.
    assert!(!why.contains("tampered"), "{why}");
    assert_eq!(leads.generation, 1);
    assert!(leads.rebuild.is_none());
    assert_eq!(Manifest::load(&dir).unwrap().get("leads").building, None);
    // The live model goes on following the log.
    let later = register(&w.engine, 51).await;
    reads.wait_for(later, WAIT).await.unwrap();

    // Rollback: the previous generation catches up and takes over.
    reads.rollback("leads").await.unwrap();
    until(&reads, "rolled back", |s| {
        s.name != "leads" || (s.generation == 0 && s.rebuild.is_none())
    })
    .await;
    // The manifest is written just after the swap.
    let deadline = Instant::now() + WAIT;
    loop {
        let gens = Manifest::load(&dir).unwrap().get("leads");
        if (gens.live, gens.previous) == (0, Some(1)) {
            break;
        }
        assert!(Instant::now() < deadline, "the manifest says {gens:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let latest = register(&w.engine, 52).await;
    reads.wait_for(latest, WAIT).await.unwrap();
    reads.shutdown();
    equals_a_fresh_build(&w, &dir).await;
}

/// Each life of the server on its own runtime, dropped at the end as a process's death drops
/// its tasks: a switch cut short never finishes behind the next start's back.
fn life() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// The model files in `dir`, by name and generation.
fn generation_files(dir: &std::path::Path) -> Vec<(String, u32)> {
    let mut files: Vec<(String, u32)> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| {
            let name = e.unwrap().file_name().into_string().unwrap();
            let stem = name.strip_suffix(".db")?;
            Some(match stem.split_once(".g") {
                Some((model, g)) => (model.to_owned(), g.parse().ok()?),
                None => (stem.to_owned(), 0),
            })
        })
        .collect();
    files.sort();
    files
}

/// The generations the manifest of `dir` names, as [`generation_files`] lists files.
fn named_generations(dir: &std::path::Path) -> Vec<(String, u32)> {
    let manifest = Manifest::load(dir).unwrap();
    let mut named: Vec<(String, u32)> = MODELS
        .iter()
        .flat_map(|m| {
            let g = manifest.get(m);
            [Some(g.live), g.building, g.previous]
                .into_iter()
                .flatten()
                .map(|n| ((*m).to_owned(), n))
        })
        .collect();
    named.sort();
    named
}

/// Each model serves the generation `manifest` names live, or the one it names being built (a
/// build resumed at the start may have switched in already since).
async fn serves_what_is_named(reads: &ReadSide, manifest: &Manifest, life: &str) {
    for s in reads.status().await {
        let named = manifest.get(s.name);
        assert!(
            s.generation == named.live || Some(s.generation) == named.building,
            "{life}: {} serves generation {}, its manifest names {named:?}",
            s.name,
            s.generation
        );
    }
}

#[test]
fn a_server_stopped_at_any_moment_of_a_rebuild_serves_what_its_manifest_names_when_started_again() {
    let first = life();
    let w = first.block_on(async { world() });
    let dir = w.dir.path().join("read");
    first.block_on(async {
        let reads = ReadSide::start(&dir, w.store.clone(), all_projections()).unwrap();
        let mut last = Position::START;
        for n in 1..=300 {
            last = register(&w.engine, n).await;
        }
        reads.wait_for(last, WAIT).await.unwrap();
        reads.shutdown();
    });
    first.shutdown_timeout(WAIT);

    // Where each life is stopped: as the rebuild starts, at the first sight of a switch (the
    // new generation serving, its manifest possibly not yet written, its worker possibly not
    // yet resumed), or some way into the build.
    let (mut mid_switch, mut before_manifest, mut watched) = (0, 0, 0);
    for round in 0..14u32 {
        let rt = life();
        let before = Manifest::load(&dir).unwrap();
        rt.block_on(async {
            let reads = ReadSide::start(&dir, w.store.clone(), all_projections()).unwrap();
            serves_what_is_named(&reads, &before, &format!("round {round}")).await;
            // The log moves on in every life.
            register(&w.engine, 1000 + u128::from(round)).await;
            match reads.rebuild(&[], false).await {
                Ok(()) | Err(RebuildError::UnderWay(_)) => {}
                Err(e) => panic!("round {round}: {e}"),
            }
            match round % 4 {
                0 => {}
                1 | 3 => {
                    watched += 1;
                    let deadline = Instant::now() + WAIT;
                    'watch: loop {
                        for s in reads.status().await {
                            if s.generation != before.get(s.name).live {
                                let written = Manifest::load(&dir).unwrap().get(s.name).live;
                                if written != s.generation {
                                    before_manifest += 1;
                                }
                                if written != s.generation || s.state == ProjectionState::Paused {
                                    mid_switch += 1;
                                }
                                break 'watch;
                            }
                        }
                        assert!(Instant::now() < deadline, "round {round}: no switch");
                        tokio::task::yield_now().await;
                    }
                }
                _ => tokio::time::sleep(Duration::from_millis(u64::from(round) * 3)).await,
            }
            reads.shutdown();
        });
        rt.shutdown_timeout(WAIT);
    }
    eprintln!(
        "stopped in the middle of a switch in {mid_switch} of {watched} lives, \
         {before_manifest} of them before its manifest was written"
    );
    // Polling catches the switch mid-way (its manifest is written and flushed to disk, then its
    // worker resumed) in every life on the development machine; at least once is required.
    assert!(mid_switch > 0, "never stopped in the middle of a switch");

    // The last life: what the manifest names serves, every build under way switches in, and
    // each model then equals one built from scratch; no file is left that the manifest does
    // not name.
    let last = life();
    let before = Manifest::load(&dir).unwrap();
    last.block_on(async {
        let reads = ReadSide::start(&dir, w.store.clone(), all_projections()).unwrap();
        serves_what_is_named(&reads, &before, "the last life").await;
        until(&reads, "switched", |s| s.rebuild.is_none()).await;
        let head = w.store.head().await.unwrap();
        reads.wait_for(head, WAIT).await.unwrap();
        let deadline = Instant::now() + WAIT;
        while generation_files(&dir) != named_generations(&dir) {
            assert!(
                Instant::now() < deadline,
                "files {:?}, named {:?}",
                generation_files(&dir),
                named_generations(&dir)
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        reads.shutdown();
        equals_a_fresh_build(&w, &dir).await;
    });
}
