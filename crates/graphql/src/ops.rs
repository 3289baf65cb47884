//! The ops area's queries: the read models' status.

use async_graphql::{Context, Object, Result};

use crate::types::ProjectionStatusGql;
use crate::{actor, AppState};

/// The ops area's queries.
#[derive(Default)]
pub struct OpsQuery;

#[Object]
impl OpsQuery {
    /// Every projection: checkpoint, head of the log, lag, events/s, state.
    async fn projections(&self, ctx: &Context<'_>) -> Result<Vec<ProjectionStatusGql>> {
        actor(ctx)?;
        let state = ctx.data_unchecked::<AppState>();
        Ok(state
            .reads
            .status()
            .await
            .into_iter()
            .map(Into::into)
            .collect())
    }
}
