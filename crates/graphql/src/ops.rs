//! The ops area: the read models' status for everyone signed in, and, for admins only, what
//! an operator does to a read model: pause, resume, retry the event it stopped at, skip that
//! event into its dead letters (with a reason), and list the dead letters. Each action is
//! recorded in the log once done (`ops-readmodels`: who, when, why as a code and a ticket),
//! and `opsActions` lists them.

use async_graphql::{Context, Enum, Object, Result, SimpleObject};
use chrono::{DateTime, Utc};

use leadflow_domain::ops::{Generation, OpsAction, OpsCommand, OpsScope, ReadModelName, Why};
use leadflow_domain::{Actor, Aggregate, OpsAggregate, OpsEvent, Role, TicketRef};
use leadflow_engine::CommandMeta;
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

    /// What operators did to the read models, as the log records it (who, when, why), the
    /// latest `last` (at most 1,000) in log order, of one model or of all. Admins only.
    async fn ops_actions(
        &self,
        ctx: &Context<'_>,
        model: Option<String>,
        #[graphql(default = 50)] last: i32,
    ) -> Result<Vec<OpsActionGql>> {
        admin(ctx, "list what operators did")?;
        if !(1..=1000).contains(&last) {
            return Err(ApiError::BadUserInput("last must be within 1..=1000".to_owned()).into());
        }
        let state = ctx.data_unchecked::<AppState>();
        let store = state.engine.store();
        let stream = leadflow_codec::ops_stream(OpsScope::ReadModels);
        let mut kept = std::collections::VecDeque::new();
        let mut from = 0;
        loop {
            let page = store
                .read_stream(&stream, from, 1000)
                .await
                .map_err(|e| ApiError::Internal(e.to_string()))?;
            let Some(end) = page.last().map(|e| e.revision + 1) else {
                break;
            };
            for recorded in page {
                let envelope = leadflow_codec::decode(recorded)
                    .map_err(|e| ApiError::Internal(e.to_string()))?;
                let leadflow_codec::Body::Ops { event, meta, .. } = envelope.body else {
                    continue;
                };
                if model
                    .as_deref()
                    .is_some_and(|m| m != event.model().as_str())
                {
                    continue;
                }
                kept.push_back(OpsActionGql::of(
                    envelope.position,
                    meta.occurred_at,
                    &event,
                ));
                if kept.len() > last as usize {
                    kept.pop_front();
                }
            }
            from = end;
        }
        Ok(kept.into())
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
    /// how far behind it falls) until resumed. With `generation: BUILDING`, pauses the
    /// generation a rebuild is building instead (at a busy hour, say): the live one goes on,
    /// and the new one switches in only after it is resumed and has caught up. The same
    /// argument takes resume, retry and skip to that generation.
    async fn pause_projection(
        &self,
        ctx: &Context<'_>,
        name: String,
        reason: OpsReasonCode,
        ticket: Option<String>,
        #[graphql(default)] generation: ProjectionGeneration,
    ) -> Result<ProjectionStatusGql> {
        operate(ctx, &name, generation, Control::Pause, (reason, ticket)).await
    }

    /// Follows the log again from where the pause left it.
    async fn resume_projection(
        &self,
        ctx: &Context<'_>,
        name: String,
        reason: OpsReasonCode,
        ticket: Option<String>,
        #[graphql(default)] generation: ProjectionGeneration,
    ) -> Result<ProjectionStatusGql> {
        operate(ctx, &name, generation, Control::Resume, (reason, ticket)).await
    }

    /// Applies again the event a failed read model stopped at (after a fix).
    async fn retry_projection(
        &self,
        ctx: &Context<'_>,
        name: String,
        reason: OpsReasonCode,
        ticket: Option<String>,
        #[graphql(default)] generation: ProjectionGeneration,
    ) -> Result<ProjectionStatusGql> {
        operate(ctx, &name, generation, Control::Retry, (reason, ticket)).await
    }

    /// Records the event a failed read model stopped at in its dead letters, with the reason
    /// (a code, and the ticket it is handled under), and goes on after it. `position` must be
    /// that event's (its status's `stoppedAt`).
    async fn skip_event(
        &self,
        ctx: &Context<'_>,
        projection: String,
        position: LogPosition,
        reason: OpsReasonCode,
        ticket: Option<String>,
        #[graphql(default)] generation: ProjectionGeneration,
    ) -> Result<ProjectionStatusGql> {
        let by = admin(ctx, "skip an event")?;
        let why = why_of((reason, ticket))?;
        let control = Control::Skip {
            position: position.0,
            reason: describe(&why),
            by: by.user.to_string(),
        };
        operate(
            ctx,
            &projection,
            generation,
            control,
            (reason, why.ticket.map(|t| t.as_str().to_owned())),
        )
        .await
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
        reason: OpsReasonCode,
        ticket: Option<String>,
    ) -> Result<Vec<ProjectionStatusGql>> {
        let by = admin(ctx, "rebuild a read model")?;
        let why = why_of((reason, ticket))?;
        let state = ctx.data_unchecked::<AppState>();
        let names: Vec<&str> = name.iter().map(String::as_str).collect();
        let models: Vec<ReadModelName> = match &name {
            Some(name) => vec![model_name(name)?],
            None => state
                .reads
                .status()
                .await
                .iter()
                .map(|s| model_name(s.name))
                .collect::<Result<_, _>>()?,
        };
        let command = checked(
            ctx,
            by,
            models,
            (OpsAction::Rebuild { verify }, Generation::Live),
            why,
        )?;
        state
            .reads
            .rebuild(&names, verify)
            .await
            .map_err(ApiError::from)?;
        record(ctx, by, command).await?;
        Ok(statuses(ctx).await)
    }

    /// Goes back to the generation that served before the last switch: it catches up from
    /// where it stopped and takes over in one moment.
    async fn rollback_projection(
        &self,
        ctx: &Context<'_>,
        name: String,
        reason: OpsReasonCode,
        ticket: Option<String>,
    ) -> Result<ProjectionStatusGql> {
        let by = admin(ctx, "roll back a read model")?;
        let why = why_of((reason, ticket))?;
        let command = checked(
            ctx,
            by,
            vec![model_name(&name)?],
            (OpsAction::Rollback, Generation::Live),
            why,
        )?;
        let state = ctx.data_unchecked::<AppState>();
        state.reads.rollback(&name).await.map_err(ApiError::from)?;
        record(ctx, by, command).await?;
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

/// Carries out `control` on a generation of the read model `name`, then records it in the log.
async fn operate(
    ctx: &Context<'_>,
    name: &str,
    generation: ProjectionGeneration,
    control: Control,
    why: (OpsReasonCode, Option<String>),
) -> Result<ProjectionStatusGql> {
    let generation = Generation::from(generation);
    let by = admin(ctx, &format!("{} a read model", control.label()))?;
    let why = why_of(why)?;
    let model = model_name(name)?;
    let state = ctx.data_unchecked::<AppState>();
    let action = match &control {
        Control::Pause => OpsAction::Pause,
        Control::Resume => OpsAction::Resume,
        Control::Skip { position, .. } => OpsAction::Skip {
            position: position.0,
        },
        // The event it retries is the worker's answer: a status read before could be stale.
        Control::Retry => OpsAction::Retry { position: None },
        Control::RunTo(_) | Control::Hold => {
            return Err(ApiError::BadUserInput("not an operator's action".to_owned()).into())
        }
    };
    let mut command = checked(ctx, by, vec![model], (action, generation), why)?;
    let about = state
        .reads
        .control_generation(name, generation, control)
        .await
        .map_err(ApiError::from)?;
    if let OpsAction::Retry { position } = &mut command.action {
        *position = about.map(|p| p.0);
    }
    record(ctx, by, command).await?;
    statuses(ctx)
        .await
        .into_iter()
        .find(|s| s.name == name)
        .ok_or_else(|| ApiError::NotFound(format!("unknown read model {name}")).into())
}

/// The command recording an action, judged by the domain before anything is done: what it
/// refuses changes nothing.
fn checked(
    ctx: &Context<'_>,
    by: Actor,
    models: Vec<ReadModelName>,
    (action, generation): (OpsAction, Generation),
    why: Why,
) -> Result<OpsCommand, ApiError> {
    let state = ctx.data_unchecked::<AppState>();
    let command = OpsCommand {
        models,
        action,
        generation,
        node: state.node.clone(),
        why,
    };
    let catalog = state.catalog();
    let decided = leadflow_domain::Context {
        now: state.engine.now(),
        actor: by,
        catalog: &catalog,
    };
    OpsAggregate::decide(None, &command, &decided)
        .map_err(|e| ApiError::from(leadflow_engine::EngineError::from(e)))?;
    Ok(command)
}

/// Records a done action in the ops stream (who, when, why). The action stands whatever
/// happens here: a failure says it was done and not recorded. A server over a replay, whose
/// log takes nothing, records nothing.
async fn record(ctx: &Context<'_>, by: Actor, command: OpsCommand) -> Result<(), ApiError> {
    let state = ctx.data_unchecked::<AppState>();
    let models: Vec<&str> = command.models.iter().map(ReadModelName::as_str).collect();
    tracing::info!(projection = ?models, action = command.action.label(), generation = command.generation.as_str(), reason = %command.why.reason, by = %by.user, "ops action");
    if state.engine.is_read_only() {
        tracing::info!("not recorded: this server's log is a replay and takes nothing");
        return Ok(());
    }
    state
        .engine
        .execute_ops(command, CommandMeta::by(by))
        .await
        .map(|_| ())
        .map_err(|e| {
            tracing::error!(error = %e, "an ops action was done but not recorded in the log");
            ApiError::Internal(format!("done, but recording it in the log failed: {e}"))
        })
}

/// Why an operator acts: a code from a fixed list, never free text (the log keeps it).
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
#[graphql(remote = "leadflow_domain::OpsReason")]
pub enum OpsReasonCode {
    /// Something is wrong in production and this is part of handling it.
    Incident,
    /// An event the model cannot apply (a bug, bad data).
    BadEvent,
    /// A fix for what stopped the model is deployed.
    FixDeployed,
    /// Planned work.
    Maintenance,
    /// A new version of the product or of a model's SQL.
    Upgrade,
    /// Checking a model against a rebuild of it.
    Verification,
    Other,
}

/// Which generation of a read model an action is on.
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug, Default)]
#[graphql(remote = "leadflow_domain::ops::Generation")]
pub enum ProjectionGeneration {
    /// The one serving queries.
    #[default]
    Live,
    /// The one a rebuild is building beside it, until it switches in.
    Building,
}

fn why_of((reason, ticket): (OpsReasonCode, Option<String>)) -> Result<Why, ApiError> {
    let ticket = ticket
        .map(|t| TicketRef::parse(&t).map_err(|e| ApiError::BadUserInput(e.to_string())))
        .transpose()?;
    Ok(Why {
        reason: reason.into(),
        ticket,
    })
}

/// A dead letter's reason as its table keeps it: the code, then the ticket.
fn describe(why: &Why) -> String {
    match &why.ticket {
        Some(ticket) => format!("{} {}", why.reason, ticket.as_str()),
        None => why.reason.to_string(),
    }
}

fn model_name(name: &str) -> Result<ReadModelName, ApiError> {
    ReadModelName::parse(name).map_err(|e| ApiError::BadUserInput(e.to_string()))
}

/// An operator's action on a read model, as the log records it.
#[derive(SimpleObject)]
#[graphql(name = "OpsAction")]
pub struct OpsActionGql {
    /// Where it is in the log.
    pub position: LogPosition,
    pub at: DateTime<Utc>,
    /// The admin who acted.
    pub by: String,
    /// The server that carried it out (`host:port`; each keeps its own read models). Null for
    /// actions recorded before nodes were named.
    pub node: Option<String>,
    pub model: String,
    /// The generation a pause, resume, retry or skip was on; `LIVE` for a rebuild or rollback.
    pub generation: ProjectionGeneration,
    /// `ReadModelPaused`, `ReadModelEventSkipped`, ...
    pub action: String,
    pub reason: OpsReasonCode,
    pub ticket: Option<String>,
    /// The event retried or skipped.
    pub event_position: Option<LogPosition>,
    /// Whether a rebuild was to be verified before its switch.
    pub verify: Option<bool>,
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
            | ControlError::NoReason
            | ControlError::NoBuild { .. } => Self::BadUserInput(message),
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

impl OpsActionGql {
    fn of(position: leadflow_store::Position, at: DateTime<Utc>, event: &OpsEvent) -> Self {
        let why = event.why();
        let (event_position, verify) = match event {
            OpsEvent::ReadModelRetried(e) => (e.position, None),
            OpsEvent::ReadModelEventSkipped(e) => (Some(e.position), None),
            OpsEvent::ReadModelRebuildStarted(e) => (None, Some(e.verify)),
            _ => (None, None),
        };
        Self {
            position: LogPosition(position),
            at,
            by: event.by().to_string(),
            node: event.node().map(ToString::to_string),
            model: event.model().to_string(),
            generation: event.generation().into(),
            action: event.event_type().to_owned(),
            reason: why.reason.into(),
            ticket: why.ticket.as_ref().map(|t| t.as_str().to_owned()),
            event_position: event_position.map(|p| LogPosition(leadflow_store::Position(p))),
            verify,
        }
    }
}
