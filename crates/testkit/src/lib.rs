//! `spawn_app()`: the whole product as `leadflow serve` wires it (embedded store in a temporary
//! directory, or with [`Backend::EsdbNode`] the EventStoreDB adapter against the embedded node, engine with the default catalog, system clock and v7 ids, the read side, the
//! GraphQL schema and the axum router), served on 127.0.0.1 port 0 on a tokio task that stops
//! when the [`TestApp`] is dropped. Tests talk to it only over real HTTP and WebSocket, through
//! the helpers here; the only shortcut is [`TestApp::head`], the event log's head, which the
//! "no change" checks compare.
//!
//! Not here: assertions about behaviour (they live in the tests) and fixed clocks (the e2e
//! suite runs on the system clock, as production does). `TEST_LOG=1` shows the server's logs.
//!
//! Tests must run on a multi-thread runtime (`#[tokio::test(flavor = "multi_thread")]`): the
//! projection threads drive their subscriptions through the test's runtime.

pub mod api;
pub mod ws;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use reqwest::header::{AUTHORIZATION, CONTENT_TYPE};
use serde_json::{json, Value};
use tokio::sync::oneshot;

use leadflow_domain::UserId;
use leadflow_esdb_node::RunningNode;
use leadflow_projections::ReadSide;
use leadflow_server::Auth;
use leadflow_store::EventStore;
use leadflow_store_embedded::EmbeddedStore;
use leadflow_store_esdb::EsdbStore;

pub use api::{ApiFailure, Board, Card, History, LeadPage, Money, Payload, ReportRow};
pub use ws::GraphQlWs;

/// The token secret of every test app (at least 32 bytes, as `Auth` wants).
const SECRET: &[u8] = b"leadflow-e2e-secret-leadflow-e2e-secret";

/// Where the app keeps its events.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Backend {
    /// The embedded store's file, as `leadflow serve` by default.
    #[default]
    Embedded,
    /// EventStoreDB: the `leadflow-store-esdb` adapter (the official `eventstore` client)
    /// against the embedded node serving the EventStoreDB gRPC protocol on port 0, as
    /// `leadflow serve --store esdb://...` against `leadflow node`.
    EsdbNode,
}

/// How an app differs from `leadflow serve`'s defaults.
#[derive(Clone, Debug)]
pub struct Settings {
    /// How long a query waits for its `consistency` position.
    pub consistency_timeout: Duration,
    pub backend: Backend,
    /// What `/health/ready` allows a read model to lag, in events.
    pub ready_max_lag: u64,
}

impl Default for Settings {
    fn default() -> Self {
        // As `leadflow serve`.
        Self {
            consistency_timeout: Duration::from_secs(5),
            backend: Backend::Embedded,
            ready_max_lag: leadflow_server::metrics::Readiness::default().max_lag,
        }
    }
}

/// A running server over its own temporary data directory.
pub struct TestApp {
    pub address: SocketAddr,
    pub catalog: Arc<leadflow_codec::LiveCatalog>,
    /// The log's head when the app had started (the catalog seeded, nothing else): what a
    /// test compares with to see that nothing was appended since.
    pub start: u64,
    /// The node name the server records its ops actions under (`host:port`, as `serve`).
    node: leadflow_domain::NodeName,
    auth: Auth,
    client: reqwest::Client,
    store: Arc<dyn EventStore>,
    engine: Arc<leadflow_engine::Engine>,
    reads: Arc<ReadSide>,
    shutdown: Option<oneshot::Sender<()>>,
    /// The EventStoreDB node the app talks to, on that backend (it stops when dropped).
    _node: Option<RunningNode>,
    // Dropped last: the store and the read models live in it.
    _dir: tempfile::TempDir,
}

/// An HTTP answer as it came: status and body.
#[derive(Clone, Debug)]
pub struct RawResponse {
    pub status: u16,
    pub content_type: Option<String>,
    pub body: String,
}

impl RawResponse {
    /// The body as JSON, if it is JSON.
    pub fn json(&self) -> Option<Value> {
        serde_json::from_str(&self.body).ok()
    }
}

/// The app as `leadflow serve` wires it.
pub async fn spawn_app() -> TestApp {
    spawn_app_with(Settings::default()).await
}

/// The app as `leadflow serve` wires it, on the given backend.
pub async fn spawn_app_on(backend: Backend) -> TestApp {
    spawn_app_with(Settings {
        backend,
        ..Settings::default()
    })
    .await
}

pub async fn spawn_app_with(settings: Settings) -> TestApp {
    init_logging();
    let dir = tempfile::tempdir().expect("create a temporary data dir");
    let embedded =
        EmbeddedStore::open(dir.path().join("events.db")).expect("open the embedded store");
    let (store, node): (Arc<dyn EventStore>, _) = match settings.backend {
        Backend::Embedded => (Arc::new(embedded), None),
        Backend::EsdbNode => {
            let node = RunningNode::start(embedded, "127.0.0.1:0".parse().expect("an address"))
                .await
                .expect("start the EventStoreDB node");
            let store = EsdbStore::connect(&node.connection_string())
                .expect("connect the EventStoreDB adapter");
            (Arc::new(store), Some(node))
        }
    };
    // Wired exactly as `leadflow serve` wires it.
    let auth = Auth::from_secret(SECRET);
    let follow_catalog = node.is_some();
    // Personal fields sealed, as `serve` seals them, under a master key of this test's own.
    let master = leadflow_codec::seal::MasterKey::generate().expect("a master key");
    let keyring = Arc::new(leadflow_app::Keyring::new(store.clone(), Some(master)));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind port 0");
    let address = listener.local_addr().expect("a bound address");
    let node_name = leadflow_app::node_name(Some(&address.port().to_string()));
    let app = leadflow_app::App::build(leadflow_app::Config {
        node: node_name.clone(),
        consistency_timeout: settings.consistency_timeout,
        follow_catalog,
        keyring: Some(keyring),
        readiness: leadflow_server::metrics::Readiness {
            max_lag: settings.ready_max_lag,
        },
        store_files: vec![
            dir.path().join("events.db"),
            dir.path().join("events.db-wal"),
        ],
        ..leadflow_app::Config::new(store.clone(), dir.path().join("read"), auth.clone())
    })
    .await
    .expect("start the app");
    let (catalog, reads, router) = (app.catalog.clone(), app.reads.clone(), app.router());
    let engine = app.engine.clone();
    let (shutdown, stop) = oneshot::channel::<()>();
    tokio::spawn(async move {
        let stopped = async {
            let _ = stop.await;
        };
        if let Err(e) = leadflow_server::run(listener, router, stopped).await {
            panic!("the test server failed: {e}");
        }
    });
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("an HTTP client");
    let start = store.head().await.expect("read the log's head").0;
    TestApp {
        address,
        catalog,
        start,
        node: node_name,
        auth,
        client,
        store,
        engine,
        reads,
        shutdown: Some(shutdown),
        _node: node,
        _dir: dir,
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        // Stop the projection threads while the runtime still runs (the server task keeps its
        // own handle on the read side until the runtime drops it).
        self.reads.shutdown();
    }
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.address)
    }

    /// The name this server records its ops actions under.
    pub fn node_name(&self) -> &str {
        self.node.as_str()
    }

    /// A bearer token for a user of the catalog, with the catalog's role, as `leadflow token
    /// issue --user NAME` gives it.
    pub fn token(&self, user_name: &str) -> String {
        let catalog = self.catalog.current();
        let user = catalog
            .users
            .iter()
            .find(|u| u.name == user_name)
            .unwrap_or_else(|| panic!("no catalog user named {user_name:?}"));
        self.auth
            .issue(user.id, user.role, Duration::from_secs(3600))
    }

    /// The id of a catalog user, as the API names users.
    pub fn user_id(&self, user_name: &str) -> String {
        UserId::named(user_name).to_string()
    }

    /// The events of one stream, as the store holds them (payloads sealed).
    pub async fn stream(&self, name: &str) -> Vec<leadflow_store::RecordedEvent> {
        let name = leadflow_store::StreamName::parse(name).expect("a stream name");
        self.store
            .read_stream(&name, 0, usize::MAX)
            .await
            .expect("read the stream")
    }

    /// The event log's head: how the tests see that a refused request changed nothing.
    /// The write side behind the API, for what only the command line reaches (a retention
    /// sweep).
    pub fn engine(&self) -> &Arc<leadflow_engine::Engine> {
        &self.engine
    }

    /// The read models behind the API.
    pub fn reads(&self) -> &Arc<ReadSide> {
        &self.reads
    }

    pub async fn head(&self) -> u64 {
        self.store.head().await.expect("read the log's head").0
    }

    /// `POST /graphql` with `{query, variables}` and, given a token, `Authorization: Bearer`.
    /// Returns the response body whatever the status.
    pub async fn graphql(&self, token: Option<&str>, query: &str, variables: Value) -> Value {
        let authorization = token.map(|t| format!("Bearer {t}"));
        let raw = self
            .graphql_raw(
                authorization.as_deref(),
                &json!({ "query": query, "variables": variables }),
            )
            .await;
        raw.json()
            .unwrap_or_else(|| panic!("a GraphQL answer that is not JSON: {raw:?}"))
    }

    /// `POST /graphql` with any `Authorization` header value and any JSON body.
    pub async fn graphql_raw(&self, authorization: Option<&str>, body: &Value) -> RawResponse {
        let mut request = self.client.post(self.url("/graphql")).json(body);
        if let Some(a) = authorization {
            request = request.header(AUTHORIZATION, a);
        }
        raw(request.send().await.expect("POST /graphql")).await
    }

    /// `POST /graphql` with raw bytes and a content type, and optionally a token.
    pub async fn post_raw(
        &self,
        token: Option<&str>,
        body: impl Into<Vec<u8>>,
        content_type: &str,
    ) -> RawResponse {
        let mut request = self
            .client
            .post(self.url("/graphql"))
            .header(CONTENT_TYPE, content_type)
            .body(body.into());
        if let Some(t) = token {
            request = request.header(AUTHORIZATION, format!("Bearer {t}"));
        }
        raw(request.send().await.expect("POST /graphql")).await
    }

    /// Appends raw bytes as one event of `stream`, past every check of the engine: how a
    /// test plants an event the read models cannot read (a poison). Its position.
    pub async fn append_raw(&self, stream: &str, event_type: &str, data: &[u8]) -> u64 {
        let name = leadflow_store::StreamName::parse(stream).expect("a stream name");
        let event = leadflow_store::NewEvent {
            id: uuid::Uuid::new_v4(),
            event_type: event_type.to_owned(),
            data: data.to_vec(),
            metadata: b"{}".to_vec(),
            content_type: leadflow_store::ContentType::Json,
        };
        self.store
            .append(&name, leadflow_store::ExpectedRevision::Any, vec![event])
            .await
            .expect("append the raw event")
            .last_position
            .0
    }

    /// `GET` any path.
    pub async fn get(&self, path: &str) -> RawResponse {
        raw(self.client.get(self.url(path)).send().await.expect("GET")).await
    }
}

async fn raw(response: reqwest::Response) -> RawResponse {
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body = response.text().await.unwrap_or_default();
    RawResponse {
        status,
        content_type,
        body,
    }
}

/// `TEST_LOG=1` (or any value but `0`) shows the server's logs, filtered by `LEADFLOW_LOG`
/// (default `info`).
fn init_logging() {
    let wanted = std::env::var("TEST_LOG").is_ok_and(|v| !v.is_empty() && v != "0");
    if wanted {
        let filter = tracing_subscriber::EnvFilter::try_from_env("LEADFLOW_LOG")
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
        let _ = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_test_writer()
            .try_init();
    }
}
