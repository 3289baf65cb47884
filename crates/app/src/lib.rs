//! The composition root: the product wired in one place. `leadflow serve`, the testkit's
//! `spawn_app()` and the bench build it here, so each new part (process managers, the audit)
//! plugs in once.
//!
//! It opens nothing itself: the caller brings the event store (embedded, EventStoreDB, or the
//! embedded node in tests), the token keys and where the read models live.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use leadflow_domain::Catalog;
use leadflow_engine::{Engine, EngineConfig, SystemClock, V7Ids};
use leadflow_graphql::AppState;
use leadflow_projections::{all_projections, ProjectionError, ReadSide};
use leadflow_server::{Auth, Origins, ServerState};
use leadflow_store::EventStore;

/// How the product is wired.
pub struct Config {
    pub store: Arc<dyn EventStore>,
    pub catalog: Arc<Catalog>,
    /// Where the read models live (`<data>/read`).
    pub read_dir: PathBuf,
    pub auth: Auth,
    /// Browser origins besides the server's own.
    pub origins: Origins,
    /// How long a query waits for its `consistency` position.
    pub consistency_timeout: Duration,
}

impl Config {
    /// The defaults around a store, a read-model folder and token keys: the default catalog,
    /// same-origin only, a 5 s consistency wait.
    pub fn new(store: Arc<dyn EventStore>, read_dir: impl Into<PathBuf>, auth: Auth) -> Self {
        Self {
            store,
            catalog: Arc::new(Catalog::default_catalog()),
            read_dir: read_dir.into(),
            auth,
            origins: Origins::none(),
            consistency_timeout: Duration::from_secs(5),
        }
    }
}

/// The write side over `store`: the engine with the system clock and time-ordered ids.
pub fn engine(store: Arc<dyn EventStore>, catalog: Arc<Catalog>) -> Arc<Engine> {
    Arc::new(Engine::new(
        store,
        catalog,
        Arc::new(SystemClock),
        Arc::new(V7Ids),
        EngineConfig::default(),
    ))
}

/// Every read model of the product over `store`, in `dir`. Must run inside a tokio runtime.
pub fn read_side(
    dir: &Path,
    store: Arc<dyn EventStore>,
    catalog: Arc<Catalog>,
) -> Result<ReadSide, ProjectionError> {
    ReadSide::start(dir, store, all_projections(catalog))
}

/// The product, running: the engine, the read side and the API over one store.
pub struct App {
    pub store: Arc<dyn EventStore>,
    pub catalog: Arc<Catalog>,
    pub engine: Arc<Engine>,
    pub reads: Arc<ReadSide>,
    pub auth: Auth,
    state: ServerState,
}

impl App {
    /// Wires the product and starts its read side. Must run inside a tokio runtime.
    pub fn build(config: Config) -> Result<Self, ProjectionError> {
        let engine = engine(config.store.clone(), config.catalog.clone());
        Self::with_engine(config, engine)
    }

    /// [`App::build`] around an engine the caller already used (`serve --demo` writes the
    /// demo data set before the read models start, so they build it in one rebuild).
    pub fn with_engine(config: Config, engine: Arc<Engine>) -> Result<Self, ProjectionError> {
        let reads = Arc::new(read_side(
            &config.read_dir,
            config.store.clone(),
            config.catalog.clone(),
        )?);
        let app = AppState {
            engine: engine.clone(),
            reads: reads.clone(),
            catalog: config.catalog.clone(),
            consistency_timeout: config.consistency_timeout,
        };
        let state = ServerState {
            schema: leadflow_graphql::schema(app.clone()),
            app,
            auth: config.auth.clone(),
            origins: config.origins,
        };
        Ok(Self {
            store: config.store,
            catalog: config.catalog,
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
