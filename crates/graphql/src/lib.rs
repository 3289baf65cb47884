//! The GraphQL API (async-graphql, no web framework): every write-side command as a mutation,
//! the read models as queries, live board and card updates as subscriptions. The caller (the
//! server) puts the authenticated [`Actor`] into each request's data; without one, every
//! field answers `UNAUTHENTICATED`.

pub mod audit;
pub mod catalog;
pub mod depth;
pub mod error;
pub mod inputs;
pub mod mutation;
pub mod ops;
pub mod privacy;
pub mod query;
pub mod reports;
pub mod subscription;
mod timing;
pub mod types;

use std::sync::Arc;
use std::time::Duration;

use async_graphql::{Context, MergedObject, Schema};

use leadflow_domain::{Actor, Catalog};
use leadflow_engine::{Engine, LiveCatalog};
use leadflow_projections::ReadSide;

pub use error::ApiError;
use types::LogPosition;

pub use depth::{MAX_DEPTH, MAX_INTROSPECTION_DEPTH};

/// The complexity limit of a whole request (introspection included: the standard query costs
/// a few hundred).
pub const MAX_COMPLEXITY: usize = 2000;

#[derive(Clone)]
pub struct AppState {
    pub engine: Arc<Engine>,
    pub reads: Arc<ReadSide>,
    /// The catalog as it stands (the engine's).
    pub live: Arc<LiveCatalog>,
    /// How long a query waits for `consistency`.
    pub consistency_timeout: Duration,
    /// This process, as the ops actions it carries out record it.
    pub node: leadflow_domain::NodeName,
}

impl AppState {
    /// The state around an engine and a read side.
    pub fn new(engine: Arc<Engine>, reads: Arc<ReadSide>, consistency_timeout: Duration) -> Self {
        Self {
            live: engine.live_catalog().clone(),
            engine,
            reads,
            consistency_timeout,
            node: leadflow_domain::NodeName::parse("localhost").expect("a node name"),
        }
    }

    /// The same state, recording the ops actions it carries out as done on `node`.
    pub fn on_node(self, node: leadflow_domain::NodeName) -> Self {
        Self { node, ..self }
    }

    /// The catalog now.
    pub fn catalog(&self) -> Arc<Catalog> {
        self.live.current()
    }

    /// The actor a valid token names, as the catalog has them now: the catalog's role (a role
    /// change applies at once). A user the catalog does not know or has dismissed is refused,
    /// with the reason.
    pub fn admit(&self, token_actor: Actor) -> Result<Actor, String> {
        let catalog = self.catalog();
        match catalog.user(token_actor.user) {
            None => Err(format!(
                "the token names user {}, whom the catalog does not know",
                token_actor.user
            )),
            Some(u) if !u.active => Err(format!("user {} is dismissed", u.name)),
            Some(u) => Ok(Actor {
                user: u.id,
                role: u.role,
            }),
        }
    }
}

/// The catalog as it stands, for resolvers.
pub fn catalog_of(ctx: &Context<'_>) -> Arc<Catalog> {
    ctx.data_unchecked::<AppState>().catalog()
}

/// The queries: the leads (board, table, card, history, reports), the catalog, the read
/// models' status. One object per area, merged into this root.
#[derive(MergedObject, Default)]
pub struct Query(
    query::LeadQuery,
    audit::AuditQuery,
    reports::ReportsQuery,
    catalog::CatalogQuery,
    ops::OpsQuery,
    privacy::PrivacyQuery,
);

/// The mutations: the lead's commands, the catalog's and personal data's (admins only),
/// merged.
#[derive(MergedObject, Default)]
pub struct Mutation(
    mutation::LeadMutation,
    catalog::CatalogMutation,
    privacy::PrivacyMutation,
    ops::OpsMutation,
    ops::RebuildMutation,
);

pub type ApiSchema = Schema<Query, Mutation, subscription::Subscription>;

/// The schema with its data and limits.
pub fn schema(state: AppState) -> ApiSchema {
    Schema::build(
        Query::default(),
        Mutation::default(),
        subscription::Subscription,
    )
    .data(state)
    .extension(depth::DepthLimits)
    .extension(timing::Timing)
    .limit_complexity(MAX_COMPLEXITY)
    .finish()
}

/// The SDL, as checked in under `schemas/graphql/schema.graphql`.
pub fn sdl() -> String {
    Schema::build(
        Query::default(),
        Mutation::default(),
        subscription::Subscription,
    )
    .finish()
    .sdl_with_options(async_graphql::SDLExportOptions::new().include_specified_by())
}

/// The request's authenticated actor, admitted again by the catalog as it stands: a WebSocket
/// opened before its user was dismissed or demoted gets no further than a new request would.
pub fn actor(ctx: &Context<'_>) -> Result<Actor, ApiError> {
    let token = ctx
        .data_opt::<Actor>()
        .copied()
        .ok_or(ApiError::Unauthenticated)?;
    ctx.data_unchecked::<AppState>()
        .admit(token)
        .map_err(|_| ApiError::Unauthenticated)
}

/// The leads `actor` may see (SPEC 3.7): `None` for every lead (supervisors and admins), or
/// the manager whose leads (responsible for or created) these are.
pub fn owner_scope(actor: &Actor) -> Option<String> {
    (!actor.role.is_supervising()).then(|| actor.user.to_string())
}

/// Waits until the read models have applied the log up to `position`.
pub async fn consistent(state: &AppState, position: Option<LogPosition>) -> Result<(), ApiError> {
    match position {
        None => Ok(()),
        Some(LogPosition(p)) => state
            .reads
            .wait_for(p, state.consistency_timeout)
            .await
            .map_err(ApiError::from),
    }
}
