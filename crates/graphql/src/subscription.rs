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
