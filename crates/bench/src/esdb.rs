//! The EventStoreDB figures: the same workloads through the `leadflow-store-esdb` adapter
//! (the official `eventstore` client over gRPC) against the embedded node, each beside the
//! embedded store doing the same work in the same run. The "limit" here is the embedded
//! store: the ratio says what the protocol hop costs.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use leadflow_esdb_node::RunningNode;
use leadflow_projections::{all_projections, ReadSide};
use leadflow_store::EventStore;
use leadflow_store_embedded::EmbeddedStore;
use leadflow_store_esdb::EsdbStore;

use crate::{dataset, engine, walk_leads, Figure, WRITERS};

/// Leads walked down the path by the 64 writers, on each backend.
const LEADS: u64 = 2_000;

/// The catch-up over `$all` runs on a data set of at most this many leads.
const CATCH_UP_LEADS: u64 = 100_000;

async fn node_on(store: EmbeddedStore) -> anyhow::Result<(RunningNode, Arc<dyn EventStore>)> {
    let node = RunningNode::start(store, "127.0.0.1:0".parse()?).await?;
    let client: Arc<dyn EventStore> = Arc::new(EsdbStore::connect(&node.connection_string())?);
    Ok((node, client))
}

/// 64 concurrent writers walking 2,000 leads down the Creatio path: through the adapter
/// against the node, and on the embedded store directly.
pub async fn commands_per_sec(dir: &Path) -> anyhow::Result<Figure> {
    let embedded = EmbeddedStore::open(dir.join("esdb-embedded.db"))?;
    let local = walk_leads(engine(Arc::new(embedded)), LEADS).await?;

    let (node, client) = node_on(EmbeddedStore::open(dir.join("esdb-node.db"))?).await?;
    let remote = walk_leads(engine(client), LEADS).await?;
    node.stop().await;
    Ok(Figure {
        name: "esdb_commands_per_sec",
        value: remote,
        unit: "commands/s",
        limit: local,
        limit_what: format!(
            "the same {WRITERS} writers and {LEADS} leads on the embedded store directly, same run; goal: at least half of it"
        ),
        goal: Some(0.5 * local),
        higher_is_better: true,
    })
}

/// Every read model rebuilt from zero over the node's `$all` (through the adapter), beside the
/// same rebuild reading the embedded store directly.
pub async fn catch_up(root: &Path, leads: u64) -> anyhow::Result<Figure> {
    let leads = leads.min(CATCH_UP_LEADS);
    let data = dataset::ensure(root, leads).await?;
    let store = EmbeddedStore::open(data.join("events.db"))?;
    let scratch = tempfile::tempdir_in(root)?;

    let local: Arc<dyn EventStore> = Arc::new(store.clone());
    let head = local.head().await?;
    let local_secs = rebuild(&scratch.path().join("embedded"), local, head).await?;

    let (node, client) = node_on(store).await?;
    let remote_secs = rebuild(&scratch.path().join("esdb"), client, head).await?;
    node.stop().await;
    let events = head.0 as f64;
    eprintln!(
        "  catch-up of {} events: embedded {local_secs:.1} s, over the node {remote_secs:.1} s",
        head.0
    );
    Ok(Figure {
        name: "esdb_catch_up",
        value: events / remote_secs,
        unit: "events/s",
        limit: events / local_secs,
        limit_what: format!(
            "the same rebuild of {} events ({leads} leads) reading the embedded store directly, same run; goal: at least 80 % of it",
            head.0
        ),
        goal: Some(0.8 * events / local_secs),
        higher_is_better: true,
    })
}

async fn rebuild(
    read: &Path,
    store: Arc<dyn EventStore>,
    head: leadflow_store::Position,
) -> anyhow::Result<f64> {
    let started = Instant::now();
    let reads = ReadSide::start(read, store, all_projections())?;
    reads.wait_for(head, Duration::from_secs(3600)).await?;
    let secs = started.elapsed().as_secs_f64();
    reads.shutdown();
    Ok(secs)
}
