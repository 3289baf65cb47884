//! The node stopped and restarted under live subscriptions: the engine's and the read side's
//! client connections come back, the projections resume from their checkpoints, and their
//! tables end exactly as a rebuild from zero over the same log makes them (nothing lost, nothing
//! applied twice).

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use leadflow_domain::Catalog;
use leadflow_engine::{Engine, EngineConfig, SystemClock, V7Ids};
use leadflow_esdb_node::RunningNode;
use leadflow_projections::{all_projections, dump_tables, ReadSide};
use leadflow_store::EventStore;
use leadflow_store_embedded::EmbeddedStore;
use leadflow_store_esdb::EsdbStore;

async fn start_node(file: &Path, addr: std::net::SocketAddr) -> RunningNode {
    // The port was just freed by the node before: retry the bind for a moment.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let store = EmbeddedStore::open(file).expect("open the node's store");
        match RunningNode::start(store, addr).await {
            Ok(node) => return node,
            Err(e) if Instant::now() < deadline => {
                eprintln!("bind {addr}: {e}; retrying");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("cannot restart the node on {addr}: {e}"),
        }
    }
}

async fn demo(engine: &Engine, leads: u64) {
    let config = leadflow_demo::DemoConfig {
        leads,
        seed: 7,
        concurrency: 4,
        ..Default::default()
    };
    // Commands refused while the node was away are retried by running the demo again: the
    // demo is idempotent (same seed, same idempotency keys).
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match leadflow_demo::generate(engine, &config, |_| {}).await {
            Ok(_) => return,
            Err(e) if Instant::now() < deadline => {
                eprintln!("demo: {e}; again");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => panic!("the demo keeps failing: {e}"),
        }
    }
}

async fn caught_up(reads: &ReadSide, store: &dyn EventStore) {
    let head = store.head().await.expect("the head");
    reads
        .wait_for(head, Duration::from_secs(60))
        .await
        .expect("the projections reach the head");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn projections_resume_from_their_checkpoints_across_a_node_restart() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("events.db");
    let node = start_node(&file, "127.0.0.1:0".parse().unwrap()).await;
    let addr = node.addr;
    let connection = node.connection_string();

    let catalog = Arc::new(Catalog::default_catalog());
    let store: Arc<dyn EventStore> = Arc::new(EsdbStore::connect(&connection).unwrap());
    let engine = Engine::new(
        store.clone(),
        catalog.clone(),
        Arc::new(SystemClock),
        Arc::new(V7Ids),
        EngineConfig::default(),
    );
    let reads =
        ReadSide::start(&dir.path().join("read"), store.clone(), all_projections()).unwrap();

    demo(&engine, 30).await;
    caught_up(&reads, store.as_ref()).await;
    let before = store.head().await.unwrap();

    // Down for longer than the client's discovery attempts, under two live subscriptions.
    node.stop().await;
    assert!(store.head().await.is_err(), "the node is really down");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let node = start_node(&file, addr).await;

    demo(&engine, 60).await;
    caught_up(&reads, store.as_ref()).await;
    let after = store.head().await.unwrap();
    assert!(
        after > before,
        "new events after the restart: {before} -> {after}"
    );
    for s in reads.status().await {
        assert_eq!(s.checkpoint, after, "{} is at the head", s.name);
        assert!(s.error.is_none(), "{}: {:?}", s.name, s.error);
    }
    reads.shutdown();
    node.stop().await;

    // A rebuild from zero over the same log, straight from the file.
    let log: Arc<dyn EventStore> = Arc::new(EmbeddedStore::open(&file).unwrap());
    let rebuilt = dir.path().join("rebuilt");
    let fresh = ReadSide::start(&rebuilt, log.clone(), all_projections()).unwrap();
    caught_up(&fresh, log.as_ref()).await;
    fresh.shutdown();
    for db in ["leads.db", "history.db", "transitions.db"] {
        let (resumed, rebuilt) = (
            dump_tables(&dir.path().join("read").join(db)).unwrap(),
            dump_tables(&rebuilt.join(db)).unwrap(),
        );
        assert!(!resumed.is_empty() || db == "history.db", "{db}");
        assert_eq!(
            resumed, rebuilt,
            "{db}: resumed across the restart == rebuilt"
        );
    }
}
