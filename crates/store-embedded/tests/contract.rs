//! The event-store contract suite on the embedded store, each test on a fresh file.

use std::sync::Arc;

use async_trait::async_trait;
use leadflow_store::contract::Harness;
use leadflow_store::EventStore;
use leadflow_store_embedded::EmbeddedStore;

struct FileHarness {
    dir: tempfile::TempDir,
}

#[async_trait]
impl Harness for FileHarness {
    async fn open(&self) -> Arc<dyn EventStore> {
        Arc::new(
            EmbeddedStore::open(self.dir.path().join("events.db")).expect("open embedded store"),
        )
    }
}

leadflow_store::event_store_contract_tests!(FileHarness {
    dir: tempfile::tempdir().unwrap()
});
