//! An embedded node that speaks the EventStoreDB / KurrentDB gRPC protocol over the embedded
//! store, so unmodified EventStoreDB clients (and our own EventStoreDB adapter) can be run and
//! tested on a machine where no KurrentDB server can be installed.
//!
//! The subset is the one of `../shared/design/esdb-protocol.md`: server features, append and
//! batch append, stream and `$all` reads (both directions, filters), catch-up subscriptions
//! with checkpoints and caught-up, soft delete with `$tb` and undelete, tombstones, stream
//! metadata through `$$<stream>`, gossip, and an empty persistent-subscriptions list.
//!
//! Layout: [`semantics`] holds the write and read rules over the store (what a real node
//! decides), [`streams`] and [`subscribe`] the `Streams` service, [`misc`] the small services,
//! [`convert`] and [`errors`] the wire shapes and the exact error statuses.

// Every handler answers `tonic::Status` (the generated service traits fix it); boxing it in
// the helpers only to unbox it at the boundary would buy nothing.
#![allow(clippy::result_large_err)]

mod convert;
mod errors;
mod misc;
pub mod semantics;
mod streams;
mod subscribe;

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;

use leadflow_store_embedded::EmbeddedStore;

/// The protocol as generated from `proto/` (see its README).
#[allow(clippy::all, clippy::pedantic, missing_docs, unreachable_pub)]
pub mod proto {
    pub mod event_store {
        pub mod client {
            tonic::include_proto!("event_store.client");
            pub mod streams {
                tonic::include_proto!("event_store.client.streams");
            }
            pub mod server_features {
                tonic::include_proto!("event_store.client.server_features");
            }
            pub mod gossip {
                tonic::include_proto!("event_store.client.gossip");
            }
            pub mod persistent_subscriptions {
                tonic::include_proto!("event_store.client.persistent_subscriptions");
            }
        }
    }
    pub mod google {
        pub mod rpc {
            tonic::include_proto!("google.rpc");
        }
    }
}

/// The server version the node reports: new enough for every feature the subset has
/// (last stream position, log positions, caught-up), and without the v2 append protocol.
pub const SERVER_VERSION: &str = "24.10.0";

/// The largest append the node accepts, in bytes of payload and metadata (EventStoreDB's
/// default).
pub const MAX_APPEND_SIZE: usize = 1_048_576;

/// Where clients are told the node is (gossip), and the append size limit.
#[derive(Clone, Debug)]
pub struct NodeOptions {
    pub advertise_host: String,
    pub advertise_port: u16,
    pub max_append_size: usize,
}

impl NodeOptions {
    pub fn for_address(addr: SocketAddr) -> Self {
        Self {
            advertise_host: addr.ip().to_string(),
            advertise_port: addr.port(),
            max_append_size: MAX_APPEND_SIZE,
        }
    }
}

/// Serves the node on `listener` until `shutdown` resolves.
pub async fn serve(
    store: EmbeddedStore,
    listener: TcpListener,
    options: NodeOptions,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), tonic::transport::Error> {
    let db = Arc::new(semantics::Db::new(store, options.max_append_size));
    serve_db(db, listener, options, shutdown).await
}

async fn serve_db(
    db: Arc<semantics::Db>,
    listener: TcpListener,
    options: NodeOptions,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), tonic::transport::Error> {
    use proto::event_store::client::{gossip, persistent_subscriptions, server_features, streams};
    if let Err(e) = db.seed().await {
        tracing::warn!(error = %e.message(), "could not write the node's first system event");
    }
    // No Nagle: a small response held back for the client's delayed ACK costs ~40 ms a call.
    let incoming = tokio_stream::StreamExt::map(
        tokio_stream::wrappers::TcpListenerStream::new(listener),
        |conn| {
            conn.inspect(|c| {
                let _ = c.set_nodelay(true);
            })
        },
    );
    tonic::transport::Server::builder()
        .add_service(
            streams::streams_server::StreamsServer::new(crate::streams::Service::new(db.clone()))
                .max_decoding_message_size(17 * 1024 * 1024)
                .max_encoding_message_size(17 * 1024 * 1024),
        )
        .add_service(server_features::server_features_server::ServerFeaturesServer::new(
            misc::Features,
        ))
        .add_service(gossip::gossip_server::GossipServer::new(misc::Gossip::new(&options)))
        .add_service(
            persistent_subscriptions::persistent_subscriptions_server::PersistentSubscriptionsServer::new(
                misc::Persistent,
            ),
        )
        .serve_with_incoming_shutdown(incoming, shutdown)
        .await
}

/// A node running in the background (tests, `leadflow serve --node`): stops when dropped.
pub struct RunningNode {
    pub addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<Result<(), tonic::transport::Error>>>,
    /// The node's state, held by the server and by its calls in flight; gone once all ended.
    db: std::sync::Weak<semantics::Db>,
}

impl RunningNode {
    /// Binds `addr` (port 0 for an ephemeral one) and serves the node there.
    pub async fn start(store: EmbeddedStore, addr: SocketAddr) -> std::io::Result<Self> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let db = Arc::new(semantics::Db::new(store, MAX_APPEND_SIZE));
        let weak = Arc::downgrade(&db);
        let task = tokio::spawn(serve_db(
            db,
            listener,
            NodeOptions::for_address(addr),
            async move {
                let _ = stopped.await;
            },
        ));
        Ok(Self {
            addr,
            stop: Some(stop),
            task: Some(task),
            db: weak,
        })
    }

    /// A connection string for this node (plaintext, no discovery delay).
    pub fn connection_string(&self) -> String {
        format!(
            "esdb://{}:{}?tls=false&discoveryInterval=0",
            self.addr.ip(),
            self.addr.port()
        )
    }

    /// Stops serving: lets open calls finish for up to two seconds (a client that keeps a
    /// subscription open would hold a graceful shutdown forever), then drops them, and returns
    /// once every call has let go of the store (so its file can be opened again at once).
    pub async fn stop(mut self) {
        if let Some(db) = self.db.upgrade() {
            db.close();
        }
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(mut task) = self.task.take() {
            if tokio::time::timeout(std::time::Duration::from_secs(2), &mut task)
                .await
                .is_err()
            {
                task.abort();
                let _ = task.await;
            }
        }
        // Calls in flight notice their dropped connections and end; the last one to end
        // closes the store.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while self.db.strong_count() > 0 && std::time::Instant::now() < deadline {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        if self.db.strong_count() > 0 {
            tracing::warn!("the node stopped, but calls still hold its store");
        }
    }
}

impl Drop for RunningNode {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}
