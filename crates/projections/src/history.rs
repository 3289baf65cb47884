//! The `history` read model: one row per lead event with its actor, business time and a
//! readable summary, for the feed on the lead card.

use std::sync::Arc;

use rusqlite::{params, Transaction};

use leadflow_codec::LiveCatalog;

use crate::summary::summarize;
use crate::{micros, Body, Envelope, Projection, ProjectionError};

/// The `history` read model: one row per event, the lead's feed.
pub const HISTORY: crate::Model = crate::Model("history");

pub struct HistoryProjection {
    /// Names users, funnels and stages in the summaries as the catalog has them when the event
    /// is projected.
    catalog: Arc<LiveCatalog>,
}

impl HistoryProjection {
    pub fn new(catalog: Arc<LiveCatalog>) -> Self {
        Self { catalog }
    }
}

impl Projection for HistoryProjection {
    fn name(&self) -> &'static str {
        HISTORY.name()
    }

    fn version(&self) -> u32 {
        3
    }

    fn schema(&self) -> &'static str {
        include_str!("../../../projections/history.v3.sql")
    }

    fn apply(&mut self, tx: &Transaction<'_>, events: &[Envelope]) -> Result<(), ProjectionError> {
        let mut insert = tx.prepare_cached(
            "INSERT INTO history(position, lead_id, revision, event_type, actor_user, actor_role, occurred_at, summary)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        )?;
        let catalog = self.catalog.current();
        for env in events {
            let Body::Lead {
                lead_id,
                event,
                meta,
            } = &env.body
            else {
                continue;
            };
            insert.execute(params![
                env.position.0 as i64,
                lead_id.as_uuid().as_bytes(),
                env.revision as i64,
                event.event_type(),
                meta.actor.user_id.as_uuid().as_bytes(),
                format!("{:?}", meta.actor.role),
                micros(meta.occurred_at),
                summarize(&catalog, event),
            ])?;
        }
        Ok(())
    }
}
