//! The composition root: the product wired in one place. `leadflow serve`, the testkit's
//! `spawn_app()` and the bench build it here, so each new part (process managers, the audit)
//! plugs in once.
//!
//! It opens nothing itself: the caller brings the event store (embedded, EventStoreDB, or the
//! embedded node in tests), the token keys and where the read models live.

pub mod retention;

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use leadflow_domain::{Catalog, NodeName};
use leadflow_engine::{Engine, EngineConfig, EngineError, LiveCatalog, SystemClock, V7Ids};
pub use leadflow_engine::{KeyError, Keyring};
use leadflow_graphql::AppState;
use leadflow_projections::{all_projections_with, ProjectionError, ReadSide};
use leadflow_server::{Auth, Origins, ServerState};
use leadflow_store::EventStore;

/// How the product is wired.
pub struct Config {
    pub store: Arc<dyn EventStore>,
    /// Follow the log for catalog changes other processes make (on a shared EventStoreDB; the
    /// embedded store has one writing process, this one).
    pub follow_catalog: bool,
    /// Where the read models live (`<data>/read`).
    pub read_dir: PathBuf,
    pub auth: Auth,
    /// Browser origins besides the server's own.
    pub origins: Origins,
    /// How long a query waits for its `consistency` position.
    pub consistency_timeout: Duration,
    /// The data subjects' keys personal fields are sealed with (issue 20); `None` writes them
    /// in plain text and cannot read sealed ones (tests of other things only).
    pub keyring: Option<Arc<Keyring>>,
    /// What `/health/ready` demands.
    pub readiness: leadflow_server::metrics::Readiness,
    /// The event store's files, whose size `/metrics` shows (none for a remote store).
    pub store_files: Vec<PathBuf>,
    /// This process, as the ops actions it carries out record it (`serve` sets `host:port`).
    pub node: NodeName,
}

impl Config {
    /// The defaults around a store, a read-model folder and token keys: same-origin only, a
    /// 5 s consistency wait, no catalog follower.
    pub fn new(store: Arc<dyn EventStore>, read_dir: impl Into<PathBuf>, auth: Auth) -> Self {
        Self {
            store,
            follow_catalog: false,
            read_dir: read_dir.into(),
            auth,
            origins: Origins::none(),
            consistency_timeout: Duration::from_secs(5),
            keyring: None,
            readiness: Default::default(),
            store_files: Vec::new(),
            node: node_name(None),
        }
    }
}

/// This machine's name followed by `:role` (`crm-1:8080` for a `serve` on port 8080,
/// `crm-1:cli` for a command run with no server): where an ops action was carried out. Each
/// `serve` keeps its own read models, so the record must say whose. The host name is the
/// kernel's, reduced to the characters a [`NodeName`] takes; `localhost` where there is none.
pub fn node_name(role: Option<&str>) -> NodeName {
    let host: String = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::env::var("HOSTNAME"))
        .unwrap_or_default()
        .trim()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || ".-_".contains(*c))
        .take(80)
        .collect();
    let host = if host.is_empty() { "localhost" } else { &host };
    let name = match role {
        Some(role) => format!("{host}:{role}"),
        None => host.to_owned(),
    };
    NodeName::parse(&name)
        .unwrap_or_else(|_| NodeName::parse(host).expect("a host name is a node name"))
}

/// Why the product could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot load the catalog: {0}")]
    Catalog(#[from] EngineError),
    #[error(transparent)]
    ReadSide(#[from] ProjectionError),
}

/// The write side over `store`: the engine with the system clock and time-ordered ids, its
/// catalog seeded into a new store (once) and loaded. With `follow`, it also follows the log
/// for catalog changes made by other processes over the same store.
pub async fn open_engine(
    store: Arc<dyn EventStore>,
    keyring: Option<Arc<Keyring>>,
    follow: bool,
) -> Result<Arc<Engine>, EngineError> {
    let head = store.head().await?;
    let engine = Arc::new(Engine::new(
        store,
        Arc::new(Catalog::empty()),
        Arc::new(SystemClock),
        Arc::new(V7Ids),
        EngineConfig {
            keyring,
            ..EngineConfig::default()
        },
    ));
    engine.seed_catalog().await?;
    if follow {
        tokio::spawn(engine.clone().follow_catalog(head));
    }
    Ok(engine)
}

/// The write side of a read-only server over `store` (a replay): it writes nothing, not even
/// a catalog seed, refuses every command and opens no personal field.
pub async fn open_read_only_engine(store: Arc<dyn EventStore>) -> Result<Arc<Engine>, EngineError> {
    let engine = Arc::new(Engine::new(
        store.clone(),
        Arc::new(Catalog::default_catalog()),
        Arc::new(SystemClock),
        Arc::new(V7Ids),
        EngineConfig {
            keyring: Some(Arc::new(Keyring::withholding(store))),
            read_only: true,
            ..EngineConfig::default()
        },
    ));
    engine.load_catalog().await?;
    Ok(engine)
}

/// Every read model of the product over `store`, in `dir`, opening personal fields with
/// `keys`. Must run inside a tokio runtime.
pub fn read_side(
    dir: &Path,
    store: Arc<dyn EventStore>,
    keys: Option<Arc<Keyring>>,
) -> Result<ReadSide, ProjectionError> {
    let blind = keys.as_ref().and_then(|k| k.blind_index().ok());
    ReadSide::start_with_keys(dir, store, keys, all_projections_with(blind))
}

/// The product, running: the engine, the read side and the API over one store.
pub struct App {
    pub store: Arc<dyn EventStore>,
    /// The catalog as it stands.
    pub catalog: Arc<LiveCatalog>,
    pub engine: Arc<Engine>,
    pub reads: Arc<ReadSide>,
    pub auth: Auth,
    state: ServerState,
}

impl App {
    /// Wires the product, loads (or seeds) its catalog and starts its read side.
    pub async fn build(config: Config) -> Result<Self, StartError> {
        let engine = open_engine(
            config.store.clone(),
            config.keyring.clone(),
            config.follow_catalog,
        )
        .await?;
        Ok(Self::with_engine(config, engine)?)
    }

    /// [`App::build`] around an engine from [`open_engine`] the caller already used (`serve
    /// --demo` writes the demo data set before the read models start, so they build it in one
    /// rebuild).
    pub fn with_engine(config: Config, engine: Arc<Engine>) -> Result<Self, ProjectionError> {
        let catalog = engine.live_catalog().clone();
        let reads = Arc::new(read_side(
            &config.read_dir,
            config.store.clone(),
            engine.keyring().cloned(),
        )?);
        let app = AppState::new(engine.clone(), reads.clone(), config.consistency_timeout)
            .on_node(config.node);
        let state = ServerState {
            schema: leadflow_graphql::schema(app.clone()),
            app,
            auth: config.auth.clone(),
            origins: config.origins,
            readiness: config.readiness,
            store_files: config.store_files,
        };
        Ok(Self {
            store: config.store,
            catalog,
            engine,
            reads,
            auth: config.auth,
            state,
        })
    }

    /// The HTTP API (GraphQL, GraphiQL, subscriptions, health), without a socket.
    pub fn router(&self) -> axum::Router {
        leadflow_server::app(self.state.clone())
    }

    /// Serves the API on `listener` until `shutdown` completes.
    pub async fn serve(
        &self,
        listener: tokio::net::TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        leadflow_server::run(listener, self.router(), shutdown).await
    }

    /// Stops the read side's threads (after their current batch).
    pub fn shutdown(&self) {
        self.reads.shutdown();
    }
}
