//! The `kurrentdb` client crate's own stream suite (`tests/api/streams.rs` and
//! `tests/common.rs` of its crates.io package, copied unmodified into the build's output
//! directory by `build.rs`), run against the embedded node on an ephemeral port.

#[allow(dead_code, unused, clippy::all, clippy::pedantic)]
mod common {
    include!(concat!(env!("OUT_DIR"), "/suites/kurrentdb/common.rs"));
}

#[allow(dead_code, unused, clippy::all, clippy::pedantic)]
mod api {
    pub mod streams {
        include!(concat!(env!("OUT_DIR"), "/suites/kurrentdb/streams.rs"));
    }
}

use leadflow_esdb_node::RunningNode;
use leadflow_store_embedded::EmbeddedStore;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_published_kurrentdb_stream_suite_passes_against_the_node() {
    // LEADFLOW_LOG=debug shows the suite's own progress lines.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("LEADFLOW_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_test_writer()
        .try_init();
    let dir = tempfile::tempdir().expect("a temp dir");
    let store = EmbeddedStore::open(dir.path().join("events.db")).expect("the store");
    let node = RunningNode::start(store, "127.0.0.1:0".parse().expect("an address"))
        .await
        .expect("the node");
    let settings: kurrentdb::ClientSettings = node
        .connection_string()
        .parse()
        .expect("a connection string");
    let client = kurrentdb::Client::new(settings).expect("a client");
    api::streams::tests(client)
        .await
        .expect("every check of the suite passes");
    node.stop().await;
}
