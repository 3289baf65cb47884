//! The reports over the `transitions` read model (issue 11, SPEC 5): the conversion funnel
//! (live, or as of a time), time in stage, SLA breaches and manager activity. Each takes the
//! standard reports' filter, is scoped like them (a manager sees their own leads, and their own
//! activity), accepts `asOf`, and says the log position it stands at.

use std::sync::Arc;

use async_graphql::{Context, Object, Result, SimpleObject, ID};
use chrono::{DateTime, Utc};

use leadflow_domain::{Catalog, LeadId, Stage as DomainStage, UserId};
use leadflow_projections::audit as a;
use leadflow_projections::reports::{self as r, Scope};
use leadflow_store::Position;

use crate::audit::{present_group, AuditGroup};
use crate::error::ApiError;
use crate::query::{scope_of, ReportFilterInput};
use crate::types::{user, LogPosition, Stage};
use crate::{actor, consistent, AppState};

/// The conversion funnel: the funnel audit's counts in its default (ordered) mode over the
/// filter's leads.
#[derive(SimpleObject, Clone, Debug)]
pub struct ConversionFunnel {
    /// Null: live, kept as events come (no timings); else the audit as of this time.
    pub as_of: Option<DateTime<Utc>>,
    pub position: LogPosition,
    pub funnel: AuditGroup,
}

/// Time in one stage, over every manager (`manager` null) or one manager's.
#[derive(SimpleObject, Clone, Debug)]
pub struct StageTimeRow {
    pub stage: Stage,
    /// The funnel's name for it (the filter's funnel, else the default funnel).
    pub stage_name: String,
    /// True on the stage's row over every manager.
    pub all_managers: bool,
    /// Who was responsible when the lead left the stage (or is now, while it is in it); null
    /// on the stage's row and for unassigned leads.
    pub manager_id: Option<ID>,
    pub manager_name: Option<String>,
    /// Stays that ended, their median and 90th percentile (nearest rank), in seconds.
    pub stays: u64,
    pub median_seconds: Option<i64>,
    pub p90_seconds: Option<i64>,
    /// Leads in the stage at the time.
    pub open: u64,
}

#[derive(SimpleObject, Clone, Debug)]
pub struct TimeInStage {
    /// The business time it is computed at (now, when not asked).
    pub as_of: DateTime<Utc>,
    pub position: LogPosition,
    pub rows: Vec<StageTimeRow>,
}

/// One funnel stage's SLA (the catalog's threshold) against the stays in it.
#[derive(SimpleObject, Clone, Debug)]
pub struct SlaRow {
    pub funnel: String,
    pub stage: Stage,
    pub stage_name: String,
    pub threshold_hours: u32,
    /// Stays that ended, and of them those longer than the threshold.
    pub stays: u64,
    pub breached: u64,
    /// Leads in the stage at the time, and of them those over the threshold, with their ids.
    pub open: u64,
    pub open_breached: u64,
    pub leads_over: Vec<ID>,
}

#[derive(SimpleObject, Clone, Debug)]
pub struct SlaBreaches {
    pub as_of: DateTime<Utc>,
    pub position: LogPosition,
    pub rows: Vec<SlaRow>,
}

/// Commands one user gave on leads on one day (UTC), of one kind.
#[derive(SimpleObject, Clone, Debug)]
pub struct ActivityRow {
    /// `YYYY-MM-DD`.
    pub day: String,
    pub user_id: ID,
    pub user_name: String,
    /// The command's name (`QualifyLead`, `AddComment`, ...).
    pub command: String,
    pub count: u64,
}

#[derive(SimpleObject, Clone, Debug)]
pub struct ManagerActivity {
    pub as_of: DateTime<Utc>,
    pub position: LogPosition,
    pub rows: Vec<ActivityRow>,
}

#[derive(Default)]
pub struct ReportsQuery;

#[Object]
impl ReportsQuery {
    /// The conversion funnel (SPEC 5): registered, each step reached (by a jump among them),
    /// open, conversions and losses. Live from the model without `asOf`; with it, the funnel
    /// audit's answer as of that time (with timings). Equal at now, which a test checks.
    async fn conversion_funnel(
        &self,
        ctx: &Context<'_>,
        filter: Option<ReportFilterInput>,
        as_of: Option<DateTime<Utc>>,
        consistency: Option<LogPosition>,
    ) -> Result<ConversionFunnel> {
        let (state, scope) = prepare(ctx, filter, consistency).await?;
        let catalog = state.catalog();
        let steps = a::step_names(&catalog, scope.funnel.as_deref());
        let (position, group) = state
            .reads
            .read(leadflow_projections::TRANSITIONS, move |c| match as_of {
                None => r::conversion(c, &scope).map(|c| (c.position, c.into_group())),
                Some(t) => r::conversion_at(c, t, &scope),
            })
            .await
            .map_err(ApiError::from)?;
        Ok(ConversionFunnel {
            as_of,
            position: LogPosition(Position(position)),
            funnel: present_group(&catalog, &steps, "all".to_owned(), group),
        })
    }

    /// Time in stage (SPEC 5): per working stage and per manager, the median and 90th
    /// percentile of stays that ended by `asOf` (now by default), and the leads in it then.
    async fn time_in_stage(
        &self,
        ctx: &Context<'_>,
        filter: Option<ReportFilterInput>,
        as_of: Option<DateTime<Utc>>,
        consistency: Option<LogPosition>,
    ) -> Result<TimeInStage> {
        let (state, scope) = prepare(ctx, filter, consistency).await?;
        let as_of = as_of.unwrap_or_else(|| state.engine.now());
        let catalog = state.catalog();
        let names = stage_names(&catalog, scope.funnel.as_deref());
        let (position, rows) = state
            .reads
            .read(leadflow_projections::TRANSITIONS, move |c| {
                r::time_in_stage_in(c, as_of, &scope)
            })
            .await
            .map_err(ApiError::from)?;
        Ok(TimeInStage {
            as_of,
            position: LogPosition(Position(position)),
            rows: rows
                .into_iter()
                .map(|t| {
                    let stage = stage_of(&t.stage);
                    let manager = t.manager.flatten();
                    StageTimeRow {
                        stage: stage.into(),
                        stage_name: names(stage),
                        all_managers: t.manager.is_none(),
                        manager_id: manager.map(|m| ID(UserId::from_uuid(m).to_string())),
                        manager_name: manager.map(|m| user(&catalog, UserId::from_uuid(m)).name),
                        stays: t.stays,
                        median_seconds: t.median_seconds,
                        p90_seconds: t.p90_seconds,
                        open: t.open,
                    }
                })
                .collect(),
        })
    }

    /// SLA breaches (SPEC 5): per funnel and working stage with a threshold in the catalog,
    /// the stays over it that ended by `asOf` (now by default) and the leads over it then.
    async fn sla_breaches(
        &self,
        ctx: &Context<'_>,
        filter: Option<ReportFilterInput>,
        as_of: Option<DateTime<Utc>>,
        consistency: Option<LogPosition>,
    ) -> Result<SlaBreaches> {
        let (state, scope) = prepare(ctx, filter, consistency).await?;
        let as_of = as_of.unwrap_or_else(|| state.engine.now());
        let catalog = state.catalog();
        let thresholds = r::sla_thresholds(&catalog);
        let (position, rows) = state
            .reads
            .read(leadflow_projections::TRANSITIONS, move |c| {
                r::sla_breaches_in(c, &thresholds, as_of, &scope)
            })
            .await
            .map_err(ApiError::from)?;
        Ok(SlaBreaches {
            as_of,
            position: LogPosition(Position(position)),
            rows: rows
                .into_iter()
                .map(|b| {
                    let stage = stage_of(&b.stage);
                    SlaRow {
                        stage_name: stage_names(&catalog, Some(&b.funnel))(stage),
                        funnel: b.funnel,
                        stage: stage.into(),
                        threshold_hours: b.threshold_hours,
                        stays: b.stays,
                        breached: b.breached,
                        open: b.open,
                        open_breached: b.open_breached,
                        leads_over: b
                            .leads_over
                            .into_iter()
                            .map(|l| ID(LeadId::from_uuid(l).to_string()))
                            .collect(),
                    }
                })
                .collect(),
        })
    }

    /// Manager activity (SPEC 5): commands per user per day (UTC) by kind, given in
    /// `[from, to)` and by `asOf` (now by default), on the filter's leads. A manager sees
    /// their own.
    async fn manager_activity(
        &self,
        ctx: &Context<'_>,
        filter: Option<ReportFilterInput>,
        from: Option<DateTime<Utc>>,
        to: Option<DateTime<Utc>>,
        as_of: Option<DateTime<Utc>>,
        consistency: Option<LogPosition>,
    ) -> Result<ManagerActivity> {
        if let (Some(f), Some(t)) = (from, to) {
            if f > t {
                return Err(ApiError::BadUserInput("`from` is after `to`".to_owned()).into());
            }
        }
        let (state, scope) = prepare(ctx, filter, consistency).await?;
        let as_of = as_of.unwrap_or_else(|| state.engine.now());
        let catalog = state.catalog();
        let (position, rows) = state
            .reads
            .read(leadflow_projections::TRANSITIONS, move |c| {
                let position = r::checkpoint(c)?;
                Ok((position, r::manager_activity(c, from, to, as_of, &scope)?))
            })
            .await
            .map_err(ApiError::from)?;
        Ok(ManagerActivity {
            as_of,
            position: LogPosition(Position(position)),
            rows: rows
                .into_iter()
                .map(|a| ActivityRow {
                    day: a.day,
                    user_id: ID(UserId::from_uuid(a.user).to_string()),
                    user_name: user(&catalog, UserId::from_uuid(a.user)).name,
                    command: a.command,
                    count: a.commands,
                })
                .collect(),
        })
    }
}

/// The report filter as a scope: the funnel checked against the catalog, the period checked,
/// a manager limited to their own leads; after the `consistency` wait.
pub(crate) async fn prepare<'c>(
    ctx: &Context<'c>,
    filter: Option<ReportFilterInput>,
    consistency: Option<LogPosition>,
) -> Result<(&'c AppState, Scope), ApiError> {
    let actor = actor(ctx)?;
    let state = ctx.data_unchecked::<AppState>();
    consistent(state, consistency).await?;
    let scope = scope_of(&state.catalog(), filter.unwrap_or_default(), &actor)?;
    Ok((state, scope))
}

fn stage_of(name: &str) -> DomainStage {
    DomainStage::ALL
        .into_iter()
        .find(|s| s.to_string() == name)
        .unwrap_or(DomainStage::Qualification)
}

/// The funnel's names for its stages (the default funnel's when `funnel` is none).
fn stage_names(catalog: &Arc<Catalog>, funnel: Option<&str>) -> impl Fn(DomainStage) -> String {
    let id = funnel
        .and_then(|f| leadflow_domain::FunnelId::parse(f).ok())
        .unwrap_or_else(|| catalog.default_funnel.clone());
    let names: Vec<(DomainStage, String)> = catalog
        .funnel(&id)
        .map(|f| f.stages.iter().map(|s| (s.stage, s.name.clone())).collect())
        .unwrap_or_default();
    move |stage| {
        names
            .iter()
            .find(|(s, _)| *s == stage)
            .map_or_else(|| stage.to_string(), |(_, n)| n.clone())
    }
}
