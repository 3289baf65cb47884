//! Live updates over WebSocket (graphql-ws): a funnel's board and one lead's card, pushed
//! whenever the leads read model moves past a change.

use std::time::Duration;

use async_graphql::{Context, Result, Subscription, ID};
use futures::Stream;

use crate::inputs::lead_id;
use crate::query::{funnel_of_pub, load_board, load_card, Board};
use crate::types::LeadCard;
use crate::{actor, AppState};

/// The read model is polled at most this often while it moves.
const DEBOUNCE: Duration = Duration::from_millis(50);

pub struct Subscription;

#[Subscription]
impl Subscription {
    /// The board of a funnel: now, then each time it changes.
    async fn board_changed(
        &self,
        ctx: &Context<'_>,
        funnel: Option<String>,
        #[graphql(default)] hide_closed: bool,
    ) -> Result<impl Stream<Item = Board>> {
        let actor = actor(ctx)?;
        let state = ctx.data_unchecked::<AppState>().clone();
        let funnel = funnel_of_pub(&state.catalog(), funnel)?;
        let watch = state
            .reads
            .watch(leadflow_projections::LEADS)
            .ok_or_else(|| crate::error::ApiError::Internal("no leads read model".into()))?;
        Ok(futures::stream::unfold(
            (state, watch, None::<String>, true),
            move |(state, mut watch, last, first)| {
                let funnel = funnel.clone();
                async move {
                    loop {
                        if !first || last.is_some() {
                            watch.changed().await.ok()?;
                            tokio::time::sleep(DEBOUNCE).await;
                        }
                        // A user dismissed meanwhile gets nothing more: the stream ends.
                        let actor = state.admit(actor).ok()?;
                        let board = load_board(&state, funnel.clone(), hide_closed, &actor)
                            .await
                            .ok()?;
                        let fingerprint = format!("{board:?}");
                        if last.as_deref() != Some(fingerprint.as_str()) {
                            return Some((board, (state, watch, Some(fingerprint), false)));
                        }
                    }
                }
            },
        ))
    }

    /// The read models' status, now and then every `everyMs` milliseconds (250 to 60,000;
    /// 1,000 by default): progress of rebuilds, lag, events/s, failures. Admins only; one
    /// model when `name` is given.
    async fn projection_progress(
        &self,
        ctx: &Context<'_>,
        name: Option<String>,
        #[graphql(default = 1000)] every_ms: u64,
    ) -> Result<impl Stream<Item = Vec<crate::types::ProjectionStatusGql>>> {
        let actor = actor(ctx)?;
        if actor.role != leadflow_domain::Role::Admin {
            return Err(crate::error::ApiError::Forbidden(
                "only an admin may follow the read models' progress".to_owned(),
            )
            .into());
        }
        if !(250..=60_000).contains(&every_ms) {
            return Err(crate::error::ApiError::BadUserInput(format!(
                "everyMs must be between 250 and 60000, not {every_ms}"
            ))
            .into());
        }
        let state = ctx.data_unchecked::<AppState>().clone();
        if let Some(n) = &name {
            if state.reads.status().await.iter().all(|s| s.name != n) {
                return Err(
                    crate::error::ApiError::NotFound(format!("unknown read model {n}")).into(),
                );
            }
        }
        let every = Duration::from_millis(every_ms);
        Ok(futures::stream::unfold(
            (state, true),
            move |(state, first)| {
                let name = name.clone();
                async move {
                    if !first {
                        tokio::time::sleep(every).await;
                    }
                    // An admin dismissed or demoted meanwhile gets nothing more.
                    let actor = state.admit(actor).ok()?;
                    if actor.role != leadflow_domain::Role::Admin {
                        return None;
                    }
                    let status = state
                        .reads
                        .status()
                        .await
                        .into_iter()
                        .filter(|s| name.as_deref().is_none_or(|n| s.name == n))
                        .map(Into::into)
                        .collect();
                    Some((status, (state, false)))
                }
            },
        ))
    }

    /// One lead's card: now, then each time it changes.
    async fn lead_changed(
        &self,
        ctx: &Context<'_>,
        id: ID,
    ) -> Result<impl Stream<Item = LeadCard>> {
        let actor = actor(ctx)?;
        let state = ctx.data_unchecked::<AppState>().clone();
        let id = lead_id(&id)?;
        let watch = state
            .reads
            .watch(leadflow_projections::LEADS)
            .ok_or_else(|| crate::error::ApiError::Internal("no leads read model".into()))?;
        Ok(futures::stream::unfold(
            (state, watch, None::<String>),
            move |(state, mut watch, last)| async move {
                loop {
                    if last.is_some() {
                        watch.changed().await.ok()?;
                        tokio::time::sleep(DEBOUNCE).await;
                    }
                    let actor = state.admit(actor).ok()?;
                    // Out of the actor's scope (or not there yet): nothing until it is.
                    match load_card(&state, id, &actor).await.ok()? {
                        Some(card) => {
                            let fingerprint = format!("{:?}{:?}", card.lead, card.updated_at);
                            if last.as_deref() != Some(fingerprint.as_str()) {
                                return Some((card, (state, watch, Some(fingerprint))));
                            }
                        }
                        None => {
                            watch.changed().await.ok()?;
                        }
                    }
                }
            },
        ))
    }
}
