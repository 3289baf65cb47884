//! The ops area: the read models' status for everyone signed in, and, for admins only, what
//! an operator does to a read model: pause, resume, retry the event it stopped at, skip that
//! event into its dead letters (with a reason), and list the dead letters.

use async_graphql::{Context, Object, Result, SimpleObject};
use chrono::{DateTime, Utc};

use leadflow_domain::{Actor, Role};
use leadflow_projections::runner::{Control, ControlError, DeadLetter, RebuildError};

use crate::error::ApiError;
use crate::types::{LogPosition, ProjectionStatusGql};
use crate::{actor, AppState};

/// The ops area's queries.
#[derive(Default)]
pub struct OpsQuery;

#[Object]
impl OpsQuery {
    /// Every projection: checkpoint, head of the log, lag, events/s, state.
    async fn projections(&self, ctx: &Context<'_>) -> Result<Vec<ProjectionStatusGql>> {
        actor(ctx)?;
        Ok(statuses(ctx).await)
    }

    /// The events a read model skipped on an operator's word, in log order. Admins only.
    async fn dead_letters(
        &self,
        ctx: &Context<'_>,
        projection: String,
    ) -> Result<Vec<DeadLetterGql>> {
        admin(ctx, "list dead letters")?;
        let state = ctx.data_unchecked::<AppState>();
        let letters = state
            .reads
            .dead_letters(&projection)
            .await
            .map_err(|e| match e {
                leadflow_projections::runner::ReadError::Unknown(name) => {
                    ApiError::NotFound(format!("unknown read model {name}"))
                }
                other => other.into(),
            })?;
        Ok(letters.into_iter().map(Into::into).collect())
    }
}

/// The ops area's mutations, admins only.
#[derive(Default)]
pub struct OpsMutation;

/// Rebuilds and rollbacks, admins only.
#[derive(Default)]
pub struct RebuildMutation;

#[Object]
impl OpsMutation {
    /// Stops the read model after its current batch; it keeps serving what it has (and says
    /// how far behind it falls) until resumed.
    async fn pause_projection(
        &self,
        ctx: &Context<'_>,
        name: String,
    ) -> Result<ProjectionStatusGql> {
        operate(ctx, &name, Control::Pause).await
    }

    /// Follows the log again from where the pause left it.
    async fn resume_projection(
        &self,
        ctx: &Context<'_>,
        name: String,
    ) -> Result<ProjectionStatusGql> {
        operate(ctx, &name, Control::Resume).await
    }

    /// Applies again the event a failed read model stopped at (after a fix).
    async fn retry_projection(
        &self,
        ctx: &Context<'_>,
        name: String,
    ) -> Result<ProjectionStatusGql> {
        operate(ctx, &name, Control::Retry).await
    }

    /// Records the event a failed read model stopped at in its dead letters, with the reason,
    /// and goes on after it. `position` must be that event's (its status's `stoppedAt`).
    async fn skip_event(
        &self,
        ctx: &Context<'_>,
        projection: String,
        position: LogPosition,
        reason: String,
    ) -> Result<ProjectionStatusGql> {
        let by = admin(ctx, "skip an event")?;
        if reason.chars().count() > 500 {
            return Err(ApiError::BadUserInput(
                "the reason is longer than 500 characters".to_owned(),
            )
            .into());
        }
        let control = Control::Skip {
            position: position.0,
            reason,
            by: by.user.to_string(),
        };
        operate(ctx, &projection, control).await
    }
}

#[Object]
impl RebuildMutation {
    /// Rebuilds a read model (every one when `name` is null) from the start of the log into
    /// a new generation beside the live one, which keeps serving and following the log; once
    /// the new one has caught up it takes over in one moment. With `verify`, it takes over
    /// only if it equals the live one at one log position (else `refused` says where they
    /// differ). The previous generation is kept for `rollbackProjection`.
    async fn rebuild_projection(
        &self,
        ctx: &Context<'_>,
        name: Option<String>,
        #[graphql(default = false)] verify: bool,
    ) -> Result<Vec<ProjectionStatusGql>> {
        let by = admin(ctx, "rebuild a read model")?;
        let state = ctx.data_unchecked::<AppState>();
        let names: Vec<&str> = name.iter().map(String::as_str).collect();
        state
            .reads
            .rebuild(&names, verify)
            .await
            .map_err(ApiError::from)?;
        tracing::info!(projection = ?name, verify, by = %by.user, action = "rebuild", "ops action");
        Ok(statuses(ctx).await)
    }

    /// Goes back to the generation that served before the last switch: it catches up from
    /// where it stopped and takes over in one moment.
    async fn rollback_projection(
        &self,
        ctx: &Context<'_>,
        name: String,
    ) -> Result<ProjectionStatusGql> {
        let by = admin(ctx, "roll back a read model")?;
        let state = ctx.data_unchecked::<AppState>();
        state.reads.rollback(&name).await.map_err(ApiError::from)?;
        tracing::info!(projection = name, by = %by.user, action = "rollback", "ops action");
        statuses(ctx)
            .await
            .into_iter()
            .find(|s| s.name == name)
            .ok_or_else(|| ApiError::NotFound(format!("unknown read model {name}")).into())
    }
}

impl From<RebuildError> for ApiError {
    fn from(e: RebuildError) -> Self {
        let message = e.to_string();
        match e {
            RebuildError::Unknown(_) => Self::NotFound(message),
            RebuildError::UnderWay(_)
            | RebuildError::NoPrevious(_)
            | RebuildError::OtherVersion { .. } => Self::BadUserInput(message),
            RebuildError::Failed { .. } => Self::Internal(message),
        }
    }
}

/// The actor, if an admin; what they tried to do names the refusal.
fn admin(ctx: &Context<'_>, what: &str) -> Result<Actor, ApiError> {
    let actor = actor(ctx)?;
    if actor.role != Role::Admin {
        return Err(ApiError::Forbidden(format!("only an admin may {what}")));
    }
    Ok(actor)
}

async fn operate(ctx: &Context<'_>, name: &str, control: Control) -> Result<ProjectionStatusGql> {
    let by = admin(ctx, &format!("{} a read model", control.label()))?;
    let action = control.label();
    let state = ctx.data_unchecked::<AppState>();
    state
        .reads
        .control(name, control)
        .await
        .map_err(ApiError::from)?;
    tracing::info!(projection = name, action, by = %by.user, "ops action");
    statuses(ctx)
        .await
        .into_iter()
        .find(|s| s.name == name)
        .ok_or_else(|| ApiError::NotFound(format!("unknown read model {name}")).into())
}

async fn statuses(ctx: &Context<'_>) -> Vec<ProjectionStatusGql> {
    let state = ctx.data_unchecked::<AppState>();
    state
        .reads
        .status()
        .await
        .into_iter()
        .map(Into::into)
        .collect()
}

impl From<ControlError> for ApiError {
    fn from(e: ControlError) -> Self {
        let message = e.to_string();
        match e {
            ControlError::Unknown(_) => Self::NotFound(message),
            ControlError::NotApplicable { .. }
            | ControlError::WrongPosition { .. }
            | ControlError::NoReason => Self::BadUserInput(message),
            ControlError::Stopped { .. } | ControlError::Failed { .. } => Self::Internal(message),
        }
    }
}

/// An event a read model skipped.
#[derive(SimpleObject)]
#[graphql(name = "DeadLetter")]
pub struct DeadLetterGql {
    pub position: LogPosition,
    pub stream: String,
    pub event_type: String,
    /// Why the model could not apply it.
    pub error: String,
    /// Why the operator skipped it.
    pub reason: String,
    /// The admin who skipped it.
    pub by: String,
    pub skipped_at: DateTime<Utc>,
}

impl From<DeadLetter> for DeadLetterGql {
    fn from(d: DeadLetter) -> Self {
        Self {
            position: LogPosition(d.position),
            stream: d.stream,
            event_type: d.event_type,
            error: d.error,
            reason: d.reason,
            by: d.by,
            skipped_at: d.skipped_at,
        }
    }
}
