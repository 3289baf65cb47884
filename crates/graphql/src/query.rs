//! The lead area's queries: board, registry table, lead card, history feed, reports.
//! Every query takes an optional `consistency` position and first waits (bounded) until the
//! read models have applied the log up to it: read-your-writes after a mutation.

use std::collections::HashMap;
use std::sync::Arc;

use async_graphql::connection::{Connection, Edge};
use async_graphql::{ComplexObject, Context, Enum, InputObject, Object, Result, SimpleObject, ID};
use chrono::{DateTime, Utc};

use leadflow_codec::lead_stream;
use leadflow_domain::{Catalog, FunnelId};
use leadflow_projections::query::{self as q, Cursor, Page, ReportDimension, ReportFilter};

use crate::error::ApiError;
use crate::inputs::{lead_id, sorts, LeadFilterInput, LeadOrderBy, StageFilter};
use crate::types::{
    user, Column, HistoryEntry, LeadCard, LeadSummary, LogPosition, Money, ReportRow,
};
use crate::{actor, consistent, AppState};

#[derive(SimpleObject, Clone, Debug)]
pub struct Totals {
    pub total_count: i64,
}

pub type LeadConnection = Connection<String, LeadSummary, Totals>;
pub type HistoryConnection = Connection<String, HistoryEntry, Totals>;

const MAX_PAGE: i32 = 500;

pub fn page_size(first: Option<i32>) -> Result<usize, ApiError> {
    match first.unwrap_or(50) {
        n @ 1..=MAX_PAGE => Ok(n as usize),
        n => Err(ApiError::BadUserInput(format!(
            "first must be between 1 and {MAX_PAGE}, not {n}"
        ))),
    }
}

pub fn cursor(after: Option<String>) -> Result<Option<Cursor>, ApiError> {
    after
        .map(|a| {
            Cursor::decode(&a)
                .ok_or_else(|| ApiError::BadUserInput(format!("invalid cursor {a:?}")))
        })
        .transpose()
}

/// The cursor of a page sorted by `sort` (each sort key, then the lead id). The read model
/// ignores a cursor of another shape and starts over at the first page, so a client that
/// changed `orderBy` between pages would page forever: refuse it instead.
fn cursor_for(after: Option<String>, sort: &[q::Sort]) -> Result<Option<Cursor>, ApiError> {
    let after = cursor(after)?;
    if after.as_ref().is_some_and(|c| c.0.len() != sort.len() + 1) {
        return Err(ApiError::BadUserInput(
            "the cursor belongs to a page with another orderBy".to_owned(),
        ));
    }
    Ok(after)
}

fn lead_connection(page: Page<q::LeadRow>, has_previous: bool) -> LeadConnection {
    let mut c = Connection::with_additional_fields(
        has_previous,
        page.has_next,
        Totals {
            total_count: page.total_count,
        },
    );
    c.edges.extend(
        page.rows
            .into_iter()
            .map(|(row, cur)| Edge::new(cur.encode(), LeadSummary(row))),
    );
    c
}

pub fn funnel_of_pub(catalog: &Catalog, raw: Option<String>) -> Result<FunnelId, ApiError> {
    funnel_of(catalog, raw)
}

fn funnel_of(catalog: &Catalog, raw: Option<String>) -> Result<FunnelId, ApiError> {
    let id = match raw {
        Some(raw) => FunnelId::parse(&raw)?,
        None => catalog.default_funnel.clone(),
    };
    catalog
        .funnel(&id)
        .ok_or_else(|| ApiError::NotFound(format!("unknown funnel {id}")))?;
    Ok(id)
}

/// The kanban of a funnel: its columns in order with counts and budget sums, and the header.
#[derive(SimpleObject, Clone, Debug)]
pub struct Board {
    pub funnel: String,
    pub columns: Vec<BoardColumnGql>,
    pub total_count: i64,
    pub total_budget: Money,
}

#[derive(SimpleObject, Clone, Debug)]
#[graphql(complex, name = "BoardColumn")]
pub struct BoardColumnGql {
    #[graphql(flatten)]
    pub column: Column,
    #[graphql(skip)]
    pub funnel: String,
}

#[ComplexObject]
impl BoardColumnGql {
    /// The column's cards, most recently changed first.
    async fn cards(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
    ) -> Result<LeadConnection> {
        let owner = crate::owner_scope(&actor(ctx)?);
        let state = ctx.data_unchecked::<AppState>();
        let mut filter = LeadFilterInput {
            stage: Some(StageFilter {
                eq: Some(self.column.stage),
                in_: None,
            }),
            ..Default::default()
        }
        .to_filter(Some(self.funnel.clone()), state.catalog().base_currency())?;
        filter.owner = owner;
        let sort = sorts(&[])?;
        let (n, after) = (page_size(first)?, cursor_for(after, &sort)?);
        let has_previous = after.is_some();
        let page = state
            .reads
            .read(leadflow_projections::LEADS, move |c| {
                q::leads_page(c, &filter, &sort, n, after.as_ref())
            })
            .await
            .map_err(ApiError::from)?;
        Ok(lead_connection(page, has_previous))
    }
}

/// The board as `actor` may see it: every lead, or a manager's own.
pub async fn load_board(
    state: &AppState,
    funnel: FunnelId,
    hide_closed: bool,
    actor: &leadflow_domain::Actor,
) -> Result<Board, ApiError> {
    let catalog = state.catalog();
    let currency = catalog.base_currency().to_string();
    let owner = crate::owner_scope(actor);
    let board = state
        .reads
        .read(leadflow_projections::LEADS, move |c| {
            q::board(c, &catalog, &funnel, hide_closed, owner.as_deref())
        })
        .await?
        .ok_or_else(|| ApiError::NotFound("unknown funnel".to_owned()))?;
    Ok(present_board(board, &currency))
}

/// A read model's board as the API shows it, in `currency`.
fn present_board(board: q::Board, currency: &str) -> Board {
    let funnel = board.funnel.to_string();
    Board {
        columns: board
            .columns
            .iter()
            .map(|c| BoardColumnGql {
                column: Column::new(c, currency),
                funnel: funnel.clone(),
            })
            .collect(),
        funnel,
        total_count: board.total_leads,
        total_budget: Money::from_minor(board.total_budget_minor, currency),
    }
}

/// A report filter as a scope: the funnel checked against the catalog, the period checked, a
/// manager limited to their own leads.
pub(crate) fn scope_of(
    catalog: &Catalog,
    filter: ReportFilterInput,
    actor: &leadflow_domain::Actor,
) -> Result<leadflow_projections::reports::Scope, ApiError> {
    if let (Some(f), Some(t)) = (filter.registered_from, filter.registered_to) {
        if f > t {
            return Err(ApiError::BadUserInput(
                "`registeredFrom` is after `registeredTo`".to_owned(),
            ));
        }
    }
    let funnel = filter
        .funnel
        .map(|f| funnel_of(catalog, Some(f)))
        .transpose()?;
    Ok(leadflow_projections::reports::Scope {
        funnel: funnel.map(|f| f.to_string()),
        registered_from: filter.registered_from.map(leadflow_projections::micros),
        registered_to: filter.registered_to.map(leadflow_projections::micros),
        owner: (!actor.role.is_supervising()).then(|| actor.user.as_uuid()),
    })
}

/// The board of `funnel` as it stood at `as_of`, from the `transitions` model's counters by
/// hour.
pub async fn load_board_at(
    state: &AppState,
    funnel: FunnelId,
    hide_closed: bool,
    actor: &leadflow_domain::Actor,
    as_of: DateTime<Utc>,
) -> Result<Board, ApiError> {
    let catalog = state.catalog();
    let currency = catalog.base_currency().to_string();
    let owner = (!actor.role.is_supervising()).then(|| actor.user.as_uuid());
    let board = state
        .reads
        .read(leadflow_projections::TRANSITIONS, move |c| {
            leadflow_projections::board_hours::board_at(
                c,
                &catalog,
                &funnel,
                hide_closed,
                owner,
                leadflow_projections::micros(as_of),
            )
        })
        .await?
        .ok_or_else(|| ApiError::NotFound("unknown funnel".to_owned()))?;
    Ok(present_board(board, &currency))
}

/// The card, if the lead exists and `actor` may see it (otherwise the same `None`).
pub async fn load_card(
    state: &AppState,
    id: leadflow_domain::LeadId,
    actor: &leadflow_domain::Actor,
) -> Result<Option<LeadCard>, ApiError> {
    let found = state
        .reads
        .read(leadflow_projections::LEADS, move |c| q::card(c, id))
        .await?;
    let found = found.filter(|(lead, _, _)| lead.in_scope_of(actor));
    Ok(found.map(|(lead, created, updated)| LeadCard {
        lead,
        created_at: Some(leadflow_projections::from_micros(created)),
        updated_at: Some(leadflow_projections::from_micros(updated)),
    }))
}

#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
pub enum ReportKind {
    ByManager,
    ByStage,
    BySource,
    DisqualificationReasons,
}

#[derive(InputObject, Clone, Debug, Default)]
pub struct ReportFilterInput {
    pub funnel: Option<String>,
    /// Leads registered at or after this time.
    pub registered_from: Option<DateTime<Utc>>,
    /// Leads registered before this time.
    pub registered_to: Option<DateTime<Utc>>,
}

/// The lead area's queries: board, registry table, card, history feed, reports.
#[derive(Default)]
pub struct LeadQuery;

#[Object]
impl LeadQuery {
    /// The kanban header of a funnel (the registry's default funnel when none is named).
    /// With `asOf`, the board as it stood then, computed from the log's history (the
    /// `transitions` model): each lead's stage, responsible and budget at that time; the
    /// columns and names are the catalog's now, and a manager counts the leads that were
    /// theirs then (the board they saw).
    async fn board(
        &self,
        ctx: &Context<'_>,
        funnel: Option<String>,
        #[graphql(default)] hide_closed: bool,
        as_of: Option<DateTime<Utc>>,
        consistency: Option<LogPosition>,
    ) -> Result<Board> {
        let actor = actor(ctx)?;
        let state = ctx.data_unchecked::<AppState>();
        consistent(state, consistency).await?;
        let funnel = funnel_of(&state.catalog(), funnel)?;
        match as_of {
            None => Ok(load_board(state, funnel, hide_closed, &actor).await?),
            Some(t) => Ok(load_board_at(state, funnel, hide_closed, &actor, t).await?),
        }
    }

    /// The registry table: filter on any column, sort by any columns, cursor pages.
    ///
    /// With `asOf`, the table as it stood then, computed from the log's history: the leads
    /// registered by that time, with their **stage, responsible, budget, maturity, quality
    /// and disqualification reason as they were** (every filter and sort applies to those);
    /// the other fields (title, contact, source, ...) are as they are now. A manager sees the
    /// leads that were theirs then and still are.
    #[allow(clippy::too_many_arguments)]
    async fn leads(
        &self,
        ctx: &Context<'_>,
        funnel: Option<String>,
        filter: Option<LeadFilterInput>,
        #[graphql(default)] order_by: Vec<LeadOrderBy>,
        first: Option<i32>,
        after: Option<String>,
        as_of: Option<DateTime<Utc>>,
        consistency: Option<LogPosition>,
    ) -> Result<LeadConnection> {
        let actor = actor(ctx)?;
        let owner = crate::owner_scope(&actor);
        let state = ctx.data_unchecked::<AppState>();
        consistent(state, consistency).await?;
        let funnel = funnel_of(&state.catalog(), funnel)?;
        let mut filter = filter
            .unwrap_or_default()
            .to_filter(Some(funnel.to_string()), state.catalog().base_currency())?;
        filter.owner = owner;
        let sort = sorts(&order_by)?;
        let (n, after) = (page_size(first)?, cursor_for(after, &sort)?);
        let has_previous = after.is_some();
        let page = match as_of {
            None => state
                .reads
                .read(leadflow_projections::LEADS, move |c| {
                    q::leads_page(c, &filter, &sort, n, after.as_ref())
                })
                .await
                .map_err(ApiError::from)?,
            Some(t) => {
                let at = leadflow_projections::micros(t);
                // The total from the board as of then where it holds it; counted otherwise.
                let total = match q::counted_by_board(&filter) {
                    Some((funnel, stages)) => {
                        let (funnel, stages) = (funnel.to_owned(), stages.to_vec());
                        let total = state
                            .reads
                            .read(leadflow_projections::TRANSITIONS, move |c| {
                                let tx = c.transaction()?;
                                let leads = leadflow_projections::board_hours::leads_at(
                                    &tx, &funnel, &stages, at,
                                )?;
                                let position = leadflow_projections::reports::checkpoint(&tx)?;
                                Ok(q::KnownTotal { leads, position })
                            })
                            .await
                            .map_err(ApiError::from)?;
                        Some(total)
                    }
                    None => None,
                };
                state
                    .reads
                    .read(leadflow_projections::LEADS, move |c| {
                        q::leads_page_as_of(c, at, total, &filter, &sort, n, after.as_ref())
                    })
                    .await
                    .map_err(ApiError::from)?
            }
        };
        Ok(lead_connection(page, has_previous))
    }

    /// The lead card.
    async fn lead(
        &self,
        ctx: &Context<'_>,
        id: ID,
        consistency: Option<LogPosition>,
    ) -> Result<Option<LeadCard>> {
        let actor = actor(ctx)?;
        let state = ctx.data_unchecked::<AppState>();
        consistent(state, consistency).await?;
        Ok(load_card(state, lead_id(&id)?, &actor).await?)
    }

    /// Every event of a lead, newest first, with actor, business time and a readable summary.
    async fn lead_history(
        &self,
        ctx: &Context<'_>,
        lead: ID,
        first: Option<i32>,
        after: Option<String>,
        consistency: Option<LogPosition>,
    ) -> Result<HistoryConnection> {
        let actor = actor(ctx)?;
        let state = ctx.data_unchecked::<AppState>();
        consistent(state, consistency).await?;
        let id = lead_id(&lead)?;
        let n = page_size(first)?;
        // Another manager's lead has a history as empty as a lead that does not exist.
        if crate::owner_scope(&actor).is_some() && load_card(state, id, &actor).await?.is_none() {
            return Ok(Connection::with_additional_fields(
                false,
                false,
                Totals { total_count: 0 },
            ));
        }
        let before = match cursor(after)? {
            None => None,
            Some(Cursor(values)) => match values.as_slice() {
                [leadflow_projections::query::CursorValue::Integer(p)] => Some(*p),
                _ => return Err(ApiError::BadUserInput("invalid cursor".into()).into()),
            },
        };
        // The feed is the lead's own stream, read from the log and written out against the
        // history model's catalog and erasures (`history::feed`). Sealed fields are opened, or
        // read as erased; a replay's read-only copy holds no keys, and everything personal in
        // it reads as erased.
        let recorded = state
            .reads
            .log()
            .read_stream(&lead_stream(id), 0, usize::MAX)
            .await
            .map_err(|e| ApiError::Internal(format!("reading the lead's events: {e}")))?;
        let read_only = state.engine.is_read_only();
        let mut stream = Vec::with_capacity(recorded.len());
        for mut e in recorded {
            if let Some(keys) = state.engine.keyring().filter(|_| !read_only) {
                e.data = keys.open_recorded(&e).await.map_err(|err| {
                    ApiError::Internal(format!("opening the lead's events: {err}"))
                })?;
            }
            let decoded = if read_only {
                leadflow_codec::decode_with_keys(e, &leadflow_codec::WithoutPersonalData)
            } else {
                leadflow_codec::decode_with_keys(e, &leadflow_codec::NoKeys)
            }
            .map_err(|err| ApiError::Internal(format!("decoding the lead's events: {err}")))?;
            match decoded {
                leadflow_codec::Opened::Envelope(env) => stream.push(env),
                leadflow_codec::Opened::NeedsKey { subject, .. } => {
                    return Err(ApiError::Internal(format!(
                        "the personal data key of subject {subject} is not at hand"
                    ))
                    .into())
                }
            }
        }
        let ahead = ctx.look_ahead();
        let wants_data = ahead.field("edges").field("node").field("data").exists()
            || ahead.field("nodes").field("data").exists();
        let mut payloads: HashMap<i64, String> = if wants_data {
            stream
                .iter()
                .map(|e| {
                    (
                        e.revision as i64,
                        String::from_utf8_lossy(&e.data).into_owned(),
                    )
                })
                .collect()
        } else {
            HashMap::new()
        };
        let page = state
            .reads
            .read(leadflow_projections::HISTORY, move |c| {
                leadflow_projections::history::feed(c, stream, n, before)
            })
            .await
            .map_err(ApiError::from)?;
        let mut c = Connection::with_additional_fields(
            before.is_some(),
            page.has_next,
            Totals {
                total_count: page.total_count,
            },
        );
        let catalog = state.catalog();
        c.edges.extend(page.rows.into_iter().map(|(row, cur)| {
            let data = payloads.remove(&row.revision).unwrap_or_default();
            Edge::new(cur.encode(), HistoryEntry::new(&catalog, row, data))
        }));
        Ok(c)
    }

    /// Leads by manager, by stage, by source, or disqualification reasons; filterable by funnel
    /// and registration period. With `asOf`, as things stood then, from the log's history:
    /// the stage, the responsible, the disqualification reason and the budget are historical;
    /// the source is the one the lead was registered with.
    async fn report(
        &self,
        ctx: &Context<'_>,
        kind: ReportKind,
        filter: Option<ReportFilterInput>,
        as_of: Option<DateTime<Utc>>,
        consistency: Option<LogPosition>,
    ) -> Result<Vec<ReportRow>> {
        let actor = actor(ctx)?;
        let owner = crate::owner_scope(&actor);
        let state = ctx.data_unchecked::<AppState>();
        consistent(state, consistency).await?;
        let filter = filter.unwrap_or_default();
        let scope = scope_of(&state.catalog(), filter.clone(), &actor)?;
        let funnel = filter
            .funnel
            .map(|f| funnel_of(&state.catalog(), Some(f)))
            .transpose()?;
        let dimension = match kind {
            ReportKind::ByManager => ReportDimension::Manager,
            ReportKind::ByStage => ReportDimension::Stage,
            ReportKind::BySource => ReportDimension::Source,
            ReportKind::DisqualificationReasons => ReportDimension::DisqualificationReason,
        };
        let rf = ReportFilter {
            funnel: funnel.as_ref().map(|f| f.to_string()),
            registered_from: filter.registered_from.map(leadflow_projections::micros),
            registered_to: filter.registered_to.map(leadflow_projections::micros),
            owner,
        };
        let rows = match as_of {
            None => state
                .reads
                .read(leadflow_projections::LEADS, move |c| {
                    q::report(c, dimension, &rf)
                })
                .await
                .map_err(ApiError::from)?,
            Some(t) => state
                .reads
                .read(leadflow_projections::TRANSITIONS, move |c| {
                    use leadflow_projections::reports as r;
                    let (_, states) = r::states_in(c, t, &scope)?;
                    Ok(r::report_at(dimension, &states))
                })
                .await
                .map_err(ApiError::from)?,
        };
        let catalog: Arc<Catalog> = state.catalog();
        let currency = catalog.base_currency().to_string();
        Ok(rows
            .into_iter()
            .map(|r| {
                let label = match (&r.key, kind) {
                    (None, _) => "none".to_owned(),
                    (Some(k), ReportKind::ByManager) => leadflow_domain::UserId::parse(k)
                        .map(|u| user(&catalog, u).name)
                        .unwrap_or_else(|_| k.clone()),
                    (Some(k), ReportKind::ByStage) => funnel
                        .as_ref()
                        .and_then(|f| catalog.funnel(f))
                        .and_then(|f| {
                            f.stages
                                .iter()
                                .find(|s| s.stage.to_string() == *k)
                                .map(|s| s.name.clone())
                        })
                        .unwrap_or_else(|| k.clone()),
                    (Some(k), ReportKind::BySource) => leadflow_domain::SourceCode::parse(k)
                        .ok()
                        .and_then(|s| catalog.source(&s).map(|s| s.name.clone()))
                        .unwrap_or_else(|| k.clone()),
                    (Some(k), ReportKind::DisqualificationReasons) => {
                        leadflow_domain::ReasonCode::parse(k)
                            .ok()
                            .and_then(|s| catalog.reason(&s).map(|s| s.name.clone()))
                            .unwrap_or_else(|| k.clone())
                    }
                };
                ReportRow {
                    key: r.key,
                    label,
                    count: r.leads,
                    budget: Money::from_minor(r.budget_minor, &currency),
                }
            })
            .collect())
    }
}
