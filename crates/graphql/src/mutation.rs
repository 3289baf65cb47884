//! One mutation per command. Each takes an `idempotencyKey` (a retry with the same key is a
//! no-op returning the first result) and returns the changed lead and the log position to
//! pass as `consistency` to later queries.

use async_graphql::{Context, Enum, InputObject, Object, Result, SimpleObject, ID};
use chrono::{DateTime, Utc};

use leadflow_domain::commands::*;
use leadflow_domain::events::HandoffResult;
use leadflow_domain::{LeadCommand, LeadId, ReasonCode, StageKey};
use leadflow_engine::{CommandMeta, OutcomeKind};

use crate::error::ApiError;
use crate::inputs::*;
use crate::types::{LeadCard, LogPosition};
use crate::{actor, AppState};

/// What a mutation did.
#[derive(SimpleObject)]
pub struct LeadPayload {
    pub lead: LeadCard,
    /// Where the command's last event sits in the log; null when it changed nothing.
    pub position: Option<LogPosition>,
    /// True when this was a retry of an already recorded command (same idempotency key).
    pub replayed: bool,
}

const MAX_KEY: usize = 200;

async fn execute(
    ctx: &Context<'_>,
    lead: LeadId,
    command: LeadCommand,
    key: Option<String>,
) -> Result<LeadPayload> {
    let actor = actor(ctx)?;
    if key
        .as_ref()
        .is_some_and(|k| k.is_empty() || k.len() > MAX_KEY)
    {
        return Err(
            ApiError::BadUserInput(format!("idempotencyKey must be 1-{MAX_KEY} bytes")).into(),
        );
    }
    let state = ctx.data_unchecked::<AppState>();
    let meta = CommandMeta {
        idempotency_key: key,
        ..CommandMeta::by(actor)
    };
    let name = command.name();
    let out = state
        .engine
        .execute(lead, command, meta)
        .await
        .map_err(ApiError::from)?;
    let lead = out
        .state
        .ok_or_else(|| ApiError::Internal("the command left no lead".into()))?;
    // A replay is answered without deciding again: someone else's idempotency key must not
    // show their lead (SPEC 3.7). A fresh decision checked the scope before anything else.
    if out.kind == OutcomeKind::Replayed && !lead.in_scope_of(&actor) {
        return Err(
            ApiError::from(leadflow_domain::Rejection::OutOfScope { command: name }).into(),
        );
    }
    Ok(LeadPayload {
        lead: LeadCard {
            lead,
            created_at: None,
            updated_at: None,
        },
        position: out.position.map(LogPosition),
        replayed: out.kind == OutcomeKind::Replayed,
    })
}

#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
#[graphql(name = "DistributionDecision")]
pub enum DistributionDecisionGql {
    StartHandoff,
    ContinueNurturing,
    NeedAbsent,
}

#[derive(InputObject, Clone, Debug)]
pub struct DistributeInput {
    pub decision: DistributionDecisionGql,
    /// StartHandoff: notify the responsible.
    #[graphql(default)]
    pub remind: bool,
    /// ContinueNurturing: when to look again (required).
    pub next_check_at: Option<DateTime<Utc>>,
    pub strategy: Option<String>,
    pub comment: Option<String>,
}

#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
#[graphql(name = "HandoffResult")]
pub enum HandoffResultGql {
    PlaceOrder,
    TransferToSale,
    ReturnToDistribution,
    Postponed,
    NoInterest,
}

#[derive(InputObject, Clone, Debug)]
pub struct HandoffResultInput {
    pub task_id: ID,
    pub result: HandoffResultGql,
    /// Required for TRANSFER_TO_SALE.
    pub comment: Option<String>,
    /// Required for POSTPONED: when the new handoff task is due.
    pub until: Option<DateTime<Utc>>,
}

#[derive(InputObject, Clone, Debug)]
pub struct HandoffDetailsInput {
    pub task_id: ID,
    pub budget: MoneyInput,
    pub sales_direction: String,
    pub meeting_at: DateTime<Utc>,
    pub decision_at: DateTime<Utc>,
    pub need_type: Option<String>,
    pub comment: Option<String>,
}

#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
pub enum TargetMode {
    /// Create it from the lead's data (or link the client the lead already has).
    Create,
    /// Link an existing record by id.
    Link,
}

#[derive(InputObject, Clone, Debug)]
pub struct TargetInput {
    pub mode: TargetMode,
    pub id: Option<ID>,
}

#[derive(InputObject, Clone, Debug, Default)]
pub struct ConvertInput {
    pub contact: Option<TargetInput>,
    pub account: Option<TargetInput>,
    /// Open a deal (and go to AwaitingSale).
    #[graphql(default)]
    pub open_deal: bool,
    /// The deal's terms; defaults to the lead's budget and sales direction.
    pub deal: Option<SaleTermsInput>,
}

fn target<Id>(
    t: &Option<TargetInput>,
    wrap: impl Fn(uuid::Uuid) -> Id,
    kind: &str,
) -> Parsed<Option<Target<Id>>> {
    t.as_ref()
        .map(|t| match (t.mode, &t.id) {
            (TargetMode::Create, _) => Ok(Target::CreateFromLead),
            (TargetMode::Link, Some(id)) => uuid_of(kind, id).map(|u| Target::Link(wrap(u))),
            (TargetMode::Link, None) => Err(ApiError::BadUserInput(format!(
                "linking a {kind} needs its id"
            ))),
        })
        .transpose()
}

/// The lead's mutations.
#[derive(Default)]
pub struct LeadMutation;

// Every resolver authenticates before it looks at its arguments: without a token a request
// learns nothing about how its input would be judged (UNAUTHENTICATED, never BAD_USER_INPUT),
// as the crate promises for every field. (A plain comment: a doc comment here would become the
// type's description in the SDL.)
#[Object]
impl LeadMutation {
    /// Registers a new lead. With an idempotency key, the lead id derives from it, so a retried
    /// registration lands on the same lead.
    async fn register_lead(
        &self,
        ctx: &Context<'_>,
        input: RegisterLeadInput,
        idempotency_key: Option<String>,
    ) -> Result<LeadPayload> {
        actor(ctx)?;
        let state = ctx.data_unchecked::<AppState>();
        let details = input.details()?;
        let responsible = match (&input.responsible_id, input.unassigned) {
            (Some(_), true) => {
                return Err(ApiError::BadUserInput(
                    "give responsibleId or unassigned, not both".into(),
                )
                .into())
            }
            (Some(id), false) => ResponsibleChoice::User(user_id(id)?),
            (None, true) => ResponsibleChoice::Unassigned,
            (None, false) => ResponsibleChoice::Creator,
        };
        let funnel = input
            .funnel
            .as_deref()
            .map(leadflow_domain::FunnelId::parse)
            .transpose()
            .map_err(ApiError::from)?;
        let lead_id = state.engine.new_lead_id(idempotency_key.as_deref());
        let cmd = LeadCommand::Register(RegisterLead {
            lead_id,
            funnel,
            responsible,
            details,
        });
        execute(ctx, lead_id, cmd, idempotency_key).await
    }

    /// Changes details; the event lists only what changed.
    async fn update_lead_details(
        &self,
        ctx: &Context<'_>,
        lead: ID,
        input: LeadDetailsInput,
        idempotency_key: Option<String>,
    ) -> Result<LeadPayload> {
        actor(ctx)?;
        let cmd = LeadCommand::UpdateDetails(UpdateLeadDetails {
            changes: input.changes()?,
        });
        execute(ctx, lead_id(&lead)?, cmd, idempotency_key).await
    }

    async fn qualify_lead(
        &self,
        ctx: &Context<'_>,
        lead: ID,
        link_contact: Option<ID>,
        link_account: Option<ID>,
        idempotency_key: Option<String>,
    ) -> Result<LeadPayload> {
        actor(ctx)?;
        let cmd = LeadCommand::Qualify(QualifyLead {
            link_contact: link_contact
                .as_ref()
                .map(|id| uuid_of("contact", id))
                .transpose()?
                .map(leadflow_domain::ContactId::from_uuid),
            link_account: link_account
                .as_ref()
                .map(|id| uuid_of("account", id))
                .transpose()?
                .map(leadflow_domain::AccountId::from_uuid),
        });
        execute(ctx, lead_id(&lead)?, cmd, idempotency_key).await
    }

    async fn disqualify_lead(
        &self,
        ctx: &Context<'_>,
        lead: ID,
        reason: String,
        comment: Option<String>,
        idempotency_key: Option<String>,
    ) -> Result<LeadPayload> {
        actor(ctx)?;
        let cmd = LeadCommand::Disqualify(DisqualifyLead {
            reason: ReasonCode::parse(&reason).map_err(ApiError::from)?,
            comment: comment_of("comment", &comment)?,
        });
        execute(ctx, lead_id(&lead)?, cmd, idempotency_key).await
    }

    async fn assign_responsible(
        &self,
        ctx: &Context<'_>,
        lead: ID,
        to: ID,
        #[graphql(default)] remind: bool,
        idempotency_key: Option<String>,
    ) -> Result<LeadPayload> {
        actor(ctx)?;
        let cmd = LeadCommand::AssignResponsible(AssignResponsible {
            to: user_id(&to)?,
            remind,
        });
        execute(ctx, lead_id(&lead)?, cmd, idempotency_key).await
    }

    async fn distribute_lead(
        &self,
        ctx: &Context<'_>,
        lead: ID,
        input: DistributeInput,
        idempotency_key: Option<String>,
    ) -> Result<LeadPayload> {
        actor(ctx)?;
        let decision = match input.decision {
            DistributionDecisionGql::StartHandoff => DistributionDecision::StartHandoff {
                remind: input.remind,
            },
            DistributionDecisionGql::ContinueNurturing => DistributionDecision::ContinueNurturing {
                next_check_at: input.next_check_at.ok_or_else(|| {
                    ApiError::BadUserInput("CONTINUE_NURTURING needs nextCheckAt".into())
                })?,
                strategy: comment_of("strategy", &input.strategy)?,
            },
            DistributionDecisionGql::NeedAbsent => DistributionDecision::NeedAbsent {
                comment: comment_of("comment", &input.comment)?,
            },
        };
        execute(
            ctx,
            lead_id(&lead)?,
            LeadCommand::Distribute(decision),
            idempotency_key,
        )
        .await
    }

    async fn complete_handoff_task(
        &self,
        ctx: &Context<'_>,
        lead: ID,
        input: HandoffResultInput,
        idempotency_key: Option<String>,
    ) -> Result<LeadPayload> {
        actor(ctx)?;
        let comment = comment_of("comment", &input.comment)?;
        let result = match input.result {
            HandoffResultGql::PlaceOrder => HandoffResult::PlaceOrder { comment },
            HandoffResultGql::TransferToSale => HandoffResult::TransferToSale {
                comment: comment.ok_or_else(|| {
                    ApiError::BadUserInput("TRANSFER_TO_SALE needs a comment".into())
                })?,
            },
            HandoffResultGql::ReturnToDistribution => {
                HandoffResult::ReturnToDistribution { comment }
            }
            HandoffResultGql::Postponed => HandoffResult::Postponed {
                until: input
                    .until
                    .ok_or_else(|| ApiError::BadUserInput("POSTPONED needs until".into()))?,
                comment,
            },
            HandoffResultGql::NoInterest => HandoffResult::NoInterest { comment },
        };
        let task_id = leadflow_domain::TaskId::from_uuid(uuid_of("task", &input.task_id)?);
        execute(
            ctx,
            lead_id(&lead)?,
            LeadCommand::CompleteHandoffTask(CompleteHandoffTask { task_id, result }),
            idempotency_key,
        )
        .await
    }

    async fn submit_handoff_details(
        &self,
        ctx: &Context<'_>,
        lead: ID,
        input: HandoffDetailsInput,
        idempotency_key: Option<String>,
    ) -> Result<LeadPayload> {
        actor(ctx)?;
        let cmd = LeadCommand::SubmitHandoffDetails(SubmitHandoffDetails {
            task_id: leadflow_domain::TaskId::from_uuid(uuid_of("task", &input.task_id)?),
            budget: money(&input.budget)?,
            sales_direction: short("salesDirection", &input.sales_direction)?,
            meeting_at: input.meeting_at,
            decision_at: input.decision_at,
            need_type: opt_text("needType", &input.need_type)?,
            comment: comment_of("comment", &input.comment)?,
        });
        execute(ctx, lead_id(&lead)?, cmd, idempotency_key).await
    }

    async fn schedule_handoff_task(
        &self,
        ctx: &Context<'_>,
        lead: ID,
        due_at: DateTime<Utc>,
        idempotency_key: Option<String>,
    ) -> Result<LeadPayload> {
        actor(ctx)?;
        execute(
            ctx,
            lead_id(&lead)?,
            LeadCommand::ScheduleHandoffTask(ScheduleHandoffTask { due_at }),
            idempotency_key,
        )
        .await
    }

    async fn convert_lead(
        &self,
        ctx: &Context<'_>,
        lead: ID,
        input: ConvertInput,
        idempotency_key: Option<String>,
    ) -> Result<LeadPayload> {
        actor(ctx)?;
        let deal = match (input.open_deal, &input.deal) {
            (false, None) => None,
            (_, Some(t)) => Some(Some(sale_terms(t)?)),
            (true, None) => Some(None),
        };
        let cmd = LeadCommand::Convert(ConvertLead {
            contact: target(
                &input.contact,
                leadflow_domain::ContactId::from_uuid,
                "contact",
            )?,
            account: target(
                &input.account,
                leadflow_domain::AccountId::from_uuid,
                "account",
            )?,
            deal,
        });
        execute(ctx, lead_id(&lead)?, cmd, idempotency_key).await
    }

    async fn record_deal_won(
        &self,
        ctx: &Context<'_>,
        lead: ID,
        deal: ID,
        idempotency_key: Option<String>,
    ) -> Result<LeadPayload> {
        actor(ctx)?;
        let deal_id = leadflow_domain::DealId::from_uuid(uuid_of("deal", &deal)?);
        execute(
            ctx,
            lead_id(&lead)?,
            LeadCommand::RecordDealWon(RecordDealWon { deal_id }),
            idempotency_key,
        )
        .await
    }

    async fn record_deal_lost(
        &self,
        ctx: &Context<'_>,
        lead: ID,
        deal: ID,
        reason: Option<String>,
        idempotency_key: Option<String>,
    ) -> Result<LeadPayload> {
        actor(ctx)?;
        let deal_id = leadflow_domain::DealId::from_uuid(uuid_of("deal", &deal)?);
        let cmd = LeadCommand::RecordDealLost(RecordDealLost {
            deal_id,
            reason: comment_of("reason", &reason)?,
        });
        execute(ctx, lead_id(&lead)?, cmd, idempotency_key).await
    }

    /// Moves a lead to another working stage or AwaitingSale by the funnel's stage key,
    /// recorded as a jump with its reason.
    async fn jump_to_stage(
        &self,
        ctx: &Context<'_>,
        lead: ID,
        stage: String,
        reason: String,
        sale: Option<SaleTermsInput>,
        idempotency_key: Option<String>,
    ) -> Result<LeadPayload> {
        actor(ctx)?;
        let cmd = LeadCommand::JumpToStage(JumpToStage {
            stage: StageKey::parse(&stage).map_err(ApiError::from)?,
            reason: text("reason", &reason)?,
            sale: sale.as_ref().map(sale_terms).transpose()?,
        });
        execute(ctx, lead_id(&lead)?, cmd, idempotency_key).await
    }

    /// Supervisors only: back to Qualification from a closed stage.
    async fn reopen_lead(
        &self,
        ctx: &Context<'_>,
        lead: ID,
        comment: Option<String>,
        idempotency_key: Option<String>,
    ) -> Result<LeadPayload> {
        actor(ctx)?;
        let cmd = LeadCommand::Reopen(ReopenLead {
            comment: comment_of("comment", &comment)?,
        });
        execute(ctx, lead_id(&lead)?, cmd, idempotency_key).await
    }
}

fn comment_of(
    field: &'static str,
    raw: &Option<String>,
) -> Parsed<Option<leadflow_domain::values::Comment>> {
    comment(field, raw)
}
