//! The funnel audit over GraphQL (issue 11, SPEC 8): `funnelAudit` and its drill-down
//! `funnelAuditLeads`, computed from the `transitions` read model. A manager's audit covers
//! their own leads only (those they created or hold); supervisors and admins see every lead.

use std::sync::Arc;

use async_graphql::{Context, Enum, InputObject, Object, Result, SimpleObject, ID};
use chrono::{DateTime, Utc};

use leadflow_domain::{Catalog, Stage as DomainStage, UserId};
use leadflow_projections::audit::{self as a, AuditDefinition, Bucket, DrillDown};
use leadflow_store::Position;

use crate::error::ApiError;
use crate::query::{cursor, page_size};
use crate::types::{LogPosition, Quality, Stage};
use crate::{actor, consistent, AppState};

/// A step of the funnel audit, in funnel order.
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
pub enum AuditStep {
    /// Qualification finished forward (to Distribution, or straight to Handoff).
    QualificationDone,
    Distribution,
    Handoff,
    AwaitingSale,
    NeedSatisfied,
}

const ALL_STEPS: [AuditStep; 5] = [
    AuditStep::QualificationDone,
    AuditStep::Distribution,
    AuditStep::Handoff,
    AuditStep::AwaitingSale,
    AuditStep::NeedSatisfied,
];

impl AuditStep {
    fn index(self) -> usize {
        ALL_STEPS
            .iter()
            .position(|s| *s == self)
            .expect("every step")
    }
}

#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
#[graphql(remote = "leadflow_projections::audit::StepMode")]
pub enum AuditStepMode {
    /// Each step reached after the one before it (the default).
    Ordered,
    /// Each step reached straight from the one before it: a lead's way ends at its first move
    /// back, loss or reopening.
    Strict,
    /// Each step counted whenever it was reached.
    Any,
}

#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
#[graphql(remote = "leadflow_projections::audit::GroupBy")]
pub enum AuditGroupBy {
    None,
    Source,
    Channel,
    Funnel,
    /// The responsible manager (by `managerBasis`).
    Manager,
    /// The responsible manager's department.
    Department,
    /// ISO week of registration (UTC).
    Week,
    /// Month of registration (UTC).
    Month,
}

#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
#[graphql(remote = "leadflow_projections::audit::ManagerBasis")]
pub enum ManagerBasis {
    /// The manager responsible at registration.
    Registration,
    /// The manager responsible at `asOf` (the default).
    AsOf,
}

#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
#[graphql(remote = "leadflow_projections::audit::Exclusion")]
pub enum AuditExclusion {
    EverDisqualified,
    EverReopened,
    EverJumped,
}

/// A step reached within `days` of the step before it (of the registration for the first).
#[derive(InputObject, Clone, Copy, Debug)]
pub struct StepWindow {
    pub step: AuditStep,
    pub days: i32,
}

/// What a funnel audit is asked: the cohort, the moment, the steps' rules and the grouping.
#[derive(InputObject, Clone, Debug)]
pub struct FunnelAuditInput {
    /// The cohort: leads registered at or after this time ...
    pub from: DateTime<Utc>,
    /// ... and before this one.
    pub to: DateTime<Utc>,
    /// Only what happened up to this business time counts. Default: now (give it to rerun an
    /// audit byte for byte).
    pub as_of: Option<DateTime<Utc>>,
    /// Only what the log held at this position counts: what would have been reported then,
    /// when later imports added events with earlier business times.
    pub as_of_position: Option<LogPosition>,
    pub funnel: Option<String>,
    pub source: Option<String>,
    pub channel: Option<String>,
    /// The quality as registered.
    pub quality: Option<Quality>,
    pub advertising: Option<bool>,
    /// The responsible manager (by `managerBasis`).
    pub manager: Option<ID>,
    /// The responsible manager's department.
    pub department: Option<String>,
    #[graphql(default_with = "ManagerBasis::AsOf")]
    pub manager_basis: ManagerBasis,
    #[graphql(default_with = "AuditStepMode::Ordered")]
    pub mode: AuditStepMode,
    #[graphql(default)]
    pub exclude: Vec<AuditExclusion>,
    #[graphql(default)]
    pub windows: Vec<StepWindow>,
    #[graphql(default_with = "AuditGroupBy::None")]
    pub group_by: AuditGroupBy,
}

impl FunnelAuditInput {
    /// The library's definition, checked: a manager's audit is scoped to their leads.
    fn definition(
        self,
        catalog: &Catalog,
        scope: Option<UserId>,
        now: DateTime<Utc>,
    ) -> Result<AuditDefinition, ApiError> {
        let mut windows = [None; 5];
        for w in &self.windows {
            let days = u32::try_from(w.days).map_err(|_| {
                ApiError::BadUserInput(format!(
                    "the window of {:?} is {} days: it cannot be negative",
                    w.step, w.days
                ))
            })?;
            if windows[w.step.index()].replace(days).is_some() {
                return Err(ApiError::BadUserInput(format!(
                    "{:?} has two windows",
                    w.step
                )));
            }
        }
        let funnel = self
            .funnel
            .map(|f| crate::query::funnel_of_pub(catalog, Some(f)))
            .transpose()?;
        let manager = self
            .manager
            .map(|m| UserId::parse(&m).map(|u| u.as_uuid()))
            .transpose()?;
        let definition = AuditDefinition {
            as_of_position: self.as_of_position.map(|p| p.0 .0),
            funnel: funnel.map(|f| f.to_string()),
            source: self.source,
            channel: self.channel,
            quality: self
                .quality
                .map(|q| format!("{:?}", leadflow_domain::details::Quality::from(q))),
            advertising: self.advertising,
            manager,
            department: self.department,
            manager_basis: self.manager_basis.into(),
            mode: self.mode.into(),
            exclude: self.exclude.into_iter().map(Into::into).collect(),
            windows_days: windows,
            group_by: self.group_by.into(),
            scope: scope.map(|u| u.as_uuid()),
            ..AuditDefinition::new(self.from, self.to, self.as_of.unwrap_or(now))
        };
        definition.validate().map_err(ApiError::BadUserInput)?;
        Ok(definition)
    }
}

/// One step of one group.
#[derive(SimpleObject, Clone, Debug)]
pub struct AuditStepCount {
    pub step: AuditStep,
    /// The funnel's own name for it.
    pub name: String,
    pub reached: u64,
    /// Of those, reached by a jump (the jump command, or a conversion over the step).
    pub by_jump: u64,
    /// In the step's stage at `asOf`, neither further nor lost: right-censored, not a loss.
    pub open: u64,
    /// Reached over the previous step's reached (over registered for the first), in per mille.
    pub step_conversion_permille: u64,
    /// Reached over registered, in per mille.
    pub overall_conversion_permille: u64,
    /// Time from the step before (the registration for the first), over the leads that
    /// reached both: median and 90th percentile (nearest rank), in seconds.
    pub median_seconds: Option<i64>,
    pub p90_seconds: Option<i64>,
}

#[derive(SimpleObject, Clone, Debug)]
pub struct AuditLoss {
    pub stage: Stage,
    /// The disqualification reason's code ('' for NeedAbsent) and its name.
    pub reason: String,
    pub reason_name: String,
    pub leads: u64,
}

#[derive(SimpleObject, Clone, Debug)]
pub struct AuditGroup {
    /// The group's key (a code, a user id, `2026-W09`, `2026-03`; '' for none or unknown).
    pub key: String,
    /// The key as people read it: a source's, a manager's or a department's name.
    pub label: String,
    /// The cohort's leads counted (not those excluded).
    pub registered: u64,
    /// Left out by `exclude`.
    pub excluded: u64,
    /// Still in Qualification at `asOf`: right-censored before the first step.
    pub open_in_qualification: u64,
    pub steps: Vec<AuditStepCount>,
    pub losses: Vec<AuditLoss>,
}

/// A funnel audit's answer: exact, reproducible (the same definition at the same position
/// gives the same answer), with what was asked and where in the log it was computed.
#[derive(SimpleObject, Clone, Debug)]
pub struct FunnelAudit {
    /// The definition in canonical form (JSON).
    pub definition: String,
    /// SHA-256 of `definition`.
    pub definition_hash: String,
    /// The log position the answer stands at.
    pub position: LogPosition,
    pub groups: Vec<AuditGroup>,
}

#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
pub enum AuditBucketKind {
    Registered,
    Excluded,
    Reached,
    ReachedByJump,
    Open,
    OpenInQualification,
    Lost,
}

/// Which count of an audit group to list the leads of: `step` for the step kinds, `stage` and
/// `reason` for a loss.
#[derive(InputObject, Clone, Debug)]
pub struct AuditBucket {
    pub kind: AuditBucketKind,
    pub step: Option<AuditStep>,
    pub stage: Option<Stage>,
    #[graphql(default)]
    pub reason: String,
}

impl AuditBucket {
    fn bucket(self) -> Result<Bucket, ApiError> {
        let step = || {
            self.step.map(AuditStep::index).ok_or_else(|| {
                ApiError::BadUserInput(format!("a {:?} bucket names its step", self.kind))
            })
        };
        Ok(match self.kind {
            AuditBucketKind::Registered => Bucket::Registered,
            AuditBucketKind::Excluded => Bucket::Excluded,
            AuditBucketKind::Reached => Bucket::Reached(step()?),
            AuditBucketKind::ReachedByJump => Bucket::ReachedByJump(step()?),
            AuditBucketKind::Open => Bucket::Open(step()?),
            AuditBucketKind::OpenInQualification => Bucket::OpenInQualification,
            AuditBucketKind::Lost => Bucket::Lost {
                stage: self
                    .stage
                    .map(|s| DomainStage::from(s).to_string())
                    .ok_or_else(|| {
                        ApiError::BadUserInput("a Lost bucket names its stage".to_owned())
                    })?,
                reason: self.reason.clone(),
            },
        })
    }
}

/// A page of the leads behind an audit count, in id order.
#[derive(SimpleObject, Clone, Debug)]
pub struct AuditLeadPage {
    pub lead_ids: Vec<ID>,
    pub total_count: u64,
    pub has_next_page: bool,
    /// Pass as `after` for the next page.
    pub end_cursor: Option<String>,
    pub position: LogPosition,
}

#[derive(Default)]
pub struct AuditQuery;

#[Object]
impl AuditQuery {
    /// The funnel conversion audit of a cohort (SPEC 8): per group, registered, each step
    /// reached (by a jump among them), still open, conversions, times between steps and losses,
    /// as of a business time and a log position. A manager's audit covers their own leads.
    async fn funnel_audit(
        &self,
        ctx: &Context<'_>,
        input: FunnelAuditInput,
        consistency: Option<LogPosition>,
    ) -> Result<FunnelAudit> {
        let (state, definition) = prepare(ctx, input, consistency).await?;
        let departments = a::departments(&state.catalog());
        let d = definition.clone();
        let audit = state
            .reads
            .read(leadflow_projections::TRANSITIONS, move |c| {
                a::funnel_audit(c, &d, &departments)
            })
            .await
            .map_err(ApiError::from)?;
        Ok(present(&state.catalog(), &definition, audit))
    }

    /// The leads behind one count of a funnel audit (the same input), a page at a time.
    #[allow(clippy::too_many_arguments)]
    async fn funnel_audit_leads(
        &self,
        ctx: &Context<'_>,
        input: FunnelAuditInput,
        #[graphql(default)] group: String,
        bucket: AuditBucket,
        first: Option<i32>,
        after: Option<String>,
        consistency: Option<LogPosition>,
    ) -> Result<AuditLeadPage> {
        let (state, definition) = prepare(ctx, input, consistency).await?;
        let bucket = bucket.bucket()?;
        let first = page_size(first)?;
        let after = match cursor(after)? {
            None => None,
            Some(c) => match c.0.as_slice() {
                [leadflow_projections::query::CursorValue::Text(t)] => Some(
                    leadflow_domain::LeadId::parse(t)
                        .map_err(|_| ApiError::BadUserInput("invalid cursor".to_owned()))?
                        .as_uuid(),
                ),
                _ => return Err(ApiError::BadUserInput("invalid cursor".to_owned()).into()),
            },
        };
        let departments = a::departments(&state.catalog());
        let page = state
            .reads
            .read(leadflow_projections::TRANSITIONS, move |c| {
                a::drill_down_in_model(
                    c,
                    &definition,
                    &departments,
                    &DrillDown {
                        key: group,
                        bucket,
                        after,
                        first,
                    },
                )
            })
            .await
            .map_err(ApiError::from)?;
        let end_cursor = page.leads.last().map(|l| {
            leadflow_projections::query::Cursor(vec![
                leadflow_projections::query::CursorValue::Text(
                    leadflow_domain::LeadId::from_uuid(*l).to_string(),
                ),
            ])
            .encode()
        });
        Ok(AuditLeadPage {
            lead_ids: page
                .leads
                .iter()
                .map(|l| ID(leadflow_domain::LeadId::from_uuid(*l).to_string()))
                .collect(),
            total_count: page.total_count,
            has_next_page: page.has_next,
            end_cursor,
            position: LogPosition(Position(page.position)),
        })
    }
}

/// The caller's definition, after the read models have caught up with `consistency` and with
/// `asOfPosition` (an audit at a position the model has not reached would be short).
async fn prepare<'c>(
    ctx: &Context<'c>,
    input: FunnelAuditInput,
    consistency: Option<LogPosition>,
) -> Result<(&'c AppState, AuditDefinition), ApiError> {
    let actor = actor(ctx)?;
    let state = ctx.data_unchecked::<AppState>();
    consistent(state, consistency).await?;
    let scope = (!actor.role.is_supervising()).then_some(actor.user);
    let now = state.engine.now();
    let definition = input.definition(&state.catalog(), scope, now)?;
    if let Some(p) = definition.as_of_position {
        let head = state
            .reads
            .log()
            .head()
            .await
            .map_err(|e| ApiError::Internal(format!("reading the log's head: {e}")))?;
        consistent(state, Some(LogPosition(Position(p.min(head.0))))).await?;
    }
    Ok((state, definition))
}

/// The library's answer with names for people: the funnel's stage names, sources', managers',
/// departments' and reasons' names.
fn present(catalog: &Arc<Catalog>, definition: &AuditDefinition, audit: a::Audit) -> FunnelAudit {
    let steps = a::step_names(catalog, definition.funnel.as_deref());
    let labels = a::group_labels(catalog, definition.group_by);
    let label = |key: &str| -> String {
        if key.is_empty() {
            return "none".to_owned();
        }
        labels.get(key).cloned().unwrap_or_else(|| key.to_owned())
    };
    FunnelAudit {
        definition: audit.definition,
        definition_hash: audit.definition_hash,
        position: LogPosition(Position(audit.position)),
        groups: audit
            .groups
            .into_iter()
            .map(|g| present_group(catalog, &steps, label(&g.key), g))
            .collect(),
    }
}

/// One group of the library's answer with names for people (the steps' and reasons').
pub(crate) fn present_group(
    catalog: &Catalog,
    steps: &[String; 5],
    label: String,
    g: a::AuditGroup,
) -> AuditGroup {
    AuditGroup {
        label,
        steps: g
            .steps
            .into_iter()
            .enumerate()
            .map(|(i, s)| AuditStepCount {
                step: ALL_STEPS[i],
                name: steps[i].clone(),
                reached: s.reached,
                by_jump: s.by_jump,
                open: s.open,
                step_conversion_permille: s.step_conversion_permille,
                overall_conversion_permille: s.overall_conversion_permille,
                median_seconds: s.median_seconds,
                p90_seconds: s.p90_seconds,
            })
            .collect(),
        losses: g
            .losses
            .into_iter()
            .map(|l| AuditLoss {
                stage: DomainStage::ALL
                    .into_iter()
                    .find(|s| s.to_string() == l.stage)
                    .unwrap_or(DomainStage::Disqualified)
                    .into(),
                reason_name: leadflow_domain::ReasonCode::parse(&l.reason)
                    .ok()
                    .and_then(|r| catalog.reason(&r).map(|r| r.name.clone()))
                    .unwrap_or_default(),
                reason: l.reason,
                leads: l.leads,
            })
            .collect(),
        key: g.key,
        registered: g.registered,
        excluded: g.excluded,
        open_in_qualification: g.open_in_qualification,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use leadflow_projections::audit::STEPS;

    #[test]
    fn the_steps_are_the_librarys_in_the_same_order() {
        assert_eq!(ALL_STEPS.len(), STEPS.len());
        for (step, name) in ALL_STEPS.iter().zip(STEPS) {
            assert_eq!(format!("{step:?}"), name);
        }
    }
}
