//! The event-store contract suite, unchanged, on the EventStoreDB adapter: each test gets its
//! own node (the embedded node, speaking the EventStoreDB gRPC protocol) over a fresh file, and
//! every `open()` is a new client connection to it.

use std::sync::Arc;

use async_trait::async_trait;
use leadflow_esdb_node::RunningNode;
use leadflow_store::contract::Harness;
use leadflow_store::EventStore;
use leadflow_store_embedded::EmbeddedStore;
use leadflow_store_esdb::EsdbStore;

struct NodeHarness {
    node: RunningNode,
    _dir: tempfile::TempDir,
}

impl NodeHarness {
    async fn start() -> Self {
        let dir = tempfile::tempdir().expect("a temp dir");
        let store = EmbeddedStore::open(dir.path().join("events.db")).expect("the store");
        let node = RunningNode::start(store, "127.0.0.1:0".parse().unwrap())
            .await
            .expect("the node");
        Self { node, _dir: dir }
    }
}

#[async_trait]
impl Harness for NodeHarness {
    async fn open(&self) -> Arc<dyn EventStore> {
        Arc::new(EsdbStore::connect(&self.node.connection_string()).expect("a client"))
    }
}

leadflow_store::event_store_contract_tests!(NodeHarness::start().await);
