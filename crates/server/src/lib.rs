//! The HTTP edge (axum): `POST /graphql` with bearer-token auth, `GET /graphql/ws` for
//! subscriptions (graphql-ws), GraphiQL at `/`, `/health`; CORS for the configured origins and
//! gzip / brotli responses. It knows HTTP and nothing of the domain beyond the actor it
//! authenticates. No page it serves carries a token.

pub mod auth;
pub mod metrics;
pub mod origins;

use std::future::Future;

use async_graphql::http::ALL_WEBSOCKET_PROTOCOLS;
use async_graphql::{Data, ServerError};
use async_graphql_axum::{GraphQLProtocol, GraphQLWebSocket};
use axum::body::Bytes;
use axum::extract::{State, WebSocketUpgrade};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use tokio::net::TcpListener;
use tower_http::compression::CompressionLayer;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::limit::RequestBodyLimitLayer;

use leadflow_graphql::{ApiSchema, AppState};

pub use auth::Auth;
pub use origins::Origins;

/// The largest request body accepted.
pub const MAX_BODY_BYTES: usize = 256 * 1024;

#[derive(Clone)]
pub struct ServerState {
    pub schema: ApiSchema,
    pub app: AppState,
    pub auth: Auth,
    /// The browser origins besides the server's own that may call the API.
    pub origins: Origins,
    /// What `/health/ready` demands.
    pub readiness: metrics::Readiness,
    /// The event store's files, whose size `/metrics` shows (none for a remote store).
    pub store_files: Vec<std::path::PathBuf>,
}

/// The router, without a socket (tests can call it directly).
pub fn app(state: ServerState) -> Router {
    let origins = state.origins.clone();
    let cors = CorsLayer::new()
        .allow_origin(AllowOrigin::predicate(move |origin, _| {
            origins.allows(origin)
        }))
        .allow_methods([Method::GET, Method::POST])
        .allow_headers([header::AUTHORIZATION, header::CONTENT_TYPE])
        .max_age(std::time::Duration::from_secs(600));
    Router::new()
        .route("/", get(graphiql))
        .route("/graphql", get(graphiql).post(graphql))
        .route("/graphql/ws", get(subscriptions))
        .route("/health", get(health))
        .route("/health/live", get(live))
        .route("/health/ready", get(ready))
        .route("/metrics", get(prometheus))
        .layer(RequestBodyLimitLayer::new(MAX_BODY_BYTES))
        .layer(axum::middleware::from_fn(refuse_declared_oversize))
        .layer(CompressionLayer::new())
        .layer(cors)
        .with_state(state)
}

/// How much of a refused body is read and dropped before answering 413.
const LINGER_BYTES: usize = 4 * 1024 * 1024;

/// A body whose declared length is over the limit gets 413, but only after the server has
/// read (and dropped) what the client is sending, up to [`LINGER_BYTES`] and two seconds:
/// closing a socket with unread data resets it, and the client then loses the 413 it has
/// not read yet and sees a broken connection instead. Bodies without a declared length are
/// cut off by the `RequestBodyLimitLayer` as they stream.
async fn refuse_declared_oversize(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    let Some(declared) = declared.filter(|n| *n > MAX_BODY_BYTES as u64) else {
        return next.run(request).await;
    };
    let mut body = request.into_body().into_data_stream();
    let drain = async {
        let mut read = 0usize;
        while let Some(Ok(chunk)) = futures::StreamExt::next(&mut body).await {
            read += chunk.len();
            if read > LINGER_BYTES {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(std::time::Duration::from_secs(2), drain).await;
    let mut response = error_response(
        StatusCode::PAYLOAD_TOO_LARGE,
        "BAD_USER_INPUT",
        format!("the request body of {declared} bytes is over the limit of {MAX_BODY_BYTES} bytes"),
    );
    response.headers_mut().insert(
        header::CONNECTION,
        header::HeaderValue::from_static("close"),
    );
    response
}

/// Serves `router` on `listener` until `shutdown` completes.
pub async fn run(
    listener: TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let upkeep = tokio::spawn(metrics::upkeep(metrics::handle()));
    let served = axum::serve(listener, router)
        .with_graceful_shutdown(shutdown)
        .await;
    upkeep.abort();
    served
}

fn error_response(status: StatusCode, code: &str, message: String) -> Response {
    let body =
        serde_json::json!({ "errors": [{ "message": message, "extensions": { "code": code } }] });
    (status, Json(body)).into_response()
}

async fn graphql(State(s): State<ServerState>, headers: HeaderMap, body: Bytes) -> Response {
    let request: async_graphql::Request = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            return error_response(
                StatusCode::BAD_REQUEST,
                "BAD_USER_INPUT",
                format!("the request body is not a GraphQL request: {e}"),
            )
        }
    };
    let mut request = request;
    if let Some(value) = headers.get(header::AUTHORIZATION) {
        match value
            .to_str()
            .map_err(|_| auth::AuthError::Malformed)
            .and_then(|v| s.auth.from_header(v))
            .and_then(|actor| s.app.admit(actor).map_err(auth::AuthError::Refused))
        {
            Ok(actor) => request = request.data(actor),
            Err(e) => {
                return error_response(StatusCode::UNAUTHORIZED, "UNAUTHENTICATED", e.to_string())
            }
        }
    }
    let mut response = s.schema.execute(request).await;
    // Errors raised by our resolvers carry a code; the rest come from parsing and validating
    // the query (syntax, unknown enum values, depth and complexity limits): bad input.
    for error in &mut response.errors {
        ensure_code(error);
    }
    // Read models stopped (failed, retrying, paused) answer what they had: say which.
    let stale = s.app.reads.stale();
    if !stale.is_empty() {
        response.extensions.insert(
            "staleReadModels".to_owned(),
            async_graphql::Value::List(
                stale
                    .into_iter()
                    .map(|n| async_graphql::Value::String(n.to_owned()))
                    .collect(),
            ),
        );
    }
    Json(response).into_response()
}

fn ensure_code(error: &mut ServerError) {
    let has_code = error
        .extensions
        .as_ref()
        .is_some_and(|e| e.get("code").is_some());
    if !has_code {
        error
            .extensions
            .get_or_insert_with(Default::default)
            .set("code", "BAD_USER_INPUT");
    }
}

async fn subscriptions(
    State(s): State<ServerState>,
    headers: HeaderMap,
    protocol: GraphQLProtocol,
    upgrade: WebSocketUpgrade,
) -> Response {
    let origin = headers.get(header::ORIGIN);
    if !s.origins.allows_socket(origin, headers.get(header::HOST)) {
        let origin = origin.and_then(|o| o.to_str().ok()).unwrap_or("?");
        return error_response(
            StatusCode::FORBIDDEN,
            "FORBIDDEN",
            format!("the origin {origin:?} may not open a WebSocket here (see --cors-origin)"),
        );
    }
    upgrade
        .protocols(ALL_WEBSOCKET_PROTOCOLS)
        .on_upgrade(move |socket| {
            let auth = s.auth.clone();
            let app = s.app.clone();
            GraphQLWebSocket::new(socket, s.schema.clone(), protocol)
                .on_connection_init(move |payload| async move {
                    // graphql-ws clients send the token in the connection_init payload.
                    let header = payload
                        .get("Authorization")
                        .or_else(|| payload.get("authorization"))
                        .and_then(|v| v.as_str())
                        .map(str::to_owned);
                    let mut data = Data::default();
                    if let Some(h) = header {
                        let actor = auth
                            .from_header(&h)
                            .and_then(|a| app.admit(a).map_err(auth::AuthError::Refused))
                            .map_err(|e| async_graphql::Error::new(e.to_string()))?;
                        data.insert(actor);
                    }
                    Ok(data)
                })
                .serve()
        })
}

/// GraphiQL, pinned with Subresource Integrity. The page carries no token: it starts signed
/// out, or takes one from the URL fragment (`/#token=...`, never sent to a server) and clears it.
const GRAPHIQL: &str = include_str!("graphiql.html");

async fn graphiql() -> Response {
    (
        [
            (header::CACHE_CONTROL, "no-store"),
            (header::REFERRER_POLICY, "no-referrer"),
        ],
        Html(GRAPHIQL),
    )
        .into_response()
}

/// `ok` (200) while every read model follows the log by itself; `degraded` (503) while one is
/// retrying after a transient failure or has stopped at an event, with its error, attempts and
/// next attempt.
async fn health(State(s): State<ServerState>) -> Response {
    let status = s.app.reads.status().await;
    let healthy = status.iter().all(|p| !p.state.is_unhealthy());
    let body = serde_json::json!({
        "status": if healthy { "ok" } else { "degraded" },
        "projections": status.iter().map(|p| serde_json::json!({
            "name": p.name, "version": p.version, "checkpoint": p.checkpoint.0,
            "head": p.head.0, "lag": p.lag(), "state": p.describe(),
            "eventsPerSec": p.events_per_sec, "error": p.error, "attempts": p.attempts,
            "nextAttempt": p.next_attempt.map(|t| t.to_rfc3339()),
            "rebuildProgress": p.rebuild_progress(), "etaSeconds": p.eta_seconds(),
            "stoppedAt": p.stopped_at.as_ref().map(|s| s.position.0.to_string()),
            "stoppedAtType": p.stopped_at.as_ref().map(|s| s.event_type.clone()),
            "generation": p.generation,
            "rebuild": p.rebuild.as_ref().map(|b| serde_json::json!({
                "generation": b.generation, "state": b.describe(), "checkpoint": b.checkpoint.0,
                "rebuildProgress": b.rebuild_progress(), "eventsPerSec": b.events_per_sec,
                "etaSeconds": b.eta_seconds(), "error": b.error,
            })),
            "refused": p.refused,
        })).collect::<Vec<_>>(),
    });
    let code = if healthy {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, Json(body)).into_response()
}

/// The process answers: 200 whenever it can answer at all (a liveness probe restarts it
/// otherwise). Read models behind or failed do not make it dead; see `/health/ready`.
async fn live() -> Response {
    (
        StatusCode::OK,
        Json(serde_json::json!({ "status": "live" })),
    )
        .into_response()
}

/// 200 while every read model follows the log by itself within the configured lag (so a load
/// balancer may send it queries), 503 with the reasons otherwise.
async fn ready(State(s): State<ServerState>) -> Response {
    let status = s.app.reads.status().await;
    let reasons = s.readiness.unready(&status);
    let (code, word) = if reasons.is_empty() {
        (StatusCode::OK, "ready")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "unready")
    };
    let body = serde_json::json!({
        "status": word,
        "maxLag": s.readiness.max_lag,
        "reasons": reasons,
    });
    (code, Json(body)).into_response()
}

/// The Prometheus text exposition of every metric (see [`metrics`]).
async fn prometheus(State(s): State<ServerState>) -> Response {
    let status = s.app.reads.status().await;
    let text = metrics::render(&metrics::handle(), &status, &s.store_files);
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
        .into_response()
}
