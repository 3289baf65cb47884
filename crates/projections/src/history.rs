//! The `history` read model: one row per lead event with its actor, business time and a
//! readable summary, for the feed on the lead card. The summaries name users, funnels and
//! stages as the catalog stood at the event's position: the model keeps the catalog events it
//! has seen and folds them itself, in log order (from the default catalog, which is what a new
//! store's first events write).

use rusqlite::{params, Transaction};

use leadflow_codec::seal;
use leadflow_domain::{Catalog, CatalogEvent, SubjectEvent, SubjectId};

use crate::summary::summarize;
use crate::{micros, Body, Envelope, Projection, ProjectionError};

/// The `history` read model: one row per event, the lead's feed.
pub const HISTORY: crate::Model = crate::Model("history");

#[derive(Default)]
pub struct HistoryProjection {
    /// The catalog as of the checkpoint; loaded from `catalog_events` on the first batch, and
    /// again after a batch that failed (its rows rolled back).
    catalog: Option<Catalog>,
}

impl HistoryProjection {
    pub fn new() -> Self {
        Self::default()
    }

    fn load(tx: &Transaction<'_>) -> Result<Catalog, ProjectionError> {
        let mut stmt = tx.prepare(
            "SELECT position, event_type, version, data FROM catalog_events ORDER BY position",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, u32>(2)?,
                r.get::<_, Vec<u8>>(3)?,
            ))
        })?;
        let mut catalog = Catalog::default_catalog();
        for row in rows {
            let (position, event_type, version, data) = row?;
            let event =
                leadflow_codec::catalog::decode(&event_type, version, &data).map_err(|e| {
                    ProjectionError::Apply {
                        position: leadflow_store::Position(position as u64),
                        reason: format!("the stored catalog event does not decode: {e}"),
                    }
                })?;
            catalog = fold(catalog, &event);
        }
        Ok(catalog)
    }
}

fn fold(catalog: Catalog, event: &CatalogEvent) -> Catalog {
    leadflow_domain::catalog::evolve(Some(catalog), event).expect("evolve keeps a catalog")
}

impl Projection for HistoryProjection {
    fn name(&self) -> &'static str {
        HISTORY.name()
    }

    fn fresh(&self) -> Box<dyn Projection> {
        Box::new(Self::new())
    }

    fn version(&self) -> u32 {
        5
    }

    fn schema(&self) -> &'static str {
        include_str!("../../../projections/history.v5.sql")
    }

    fn apply(&mut self, tx: &Transaction<'_>, events: &[Envelope]) -> Result<(), ProjectionError> {
        let mut insert = tx.prepare_cached(
            "INSERT INTO history(position, lead_id, revision, event_type, actor_user, actor_role, occurred_at, summary, subject, erased_summary)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
        )?;
        let mut erase = tx.prepare_cached(
            "UPDATE history SET summary = erased_summary, subject = NULL, erased_summary = NULL
             WHERE subject = ?1",
        )?;
        let mut catalog = match self.catalog.take() {
            Some(c) => c,
            None => Self::load(tx)?,
        };
        let mut keep = tx.prepare_cached(
            "INSERT OR REPLACE INTO catalog_events(position, event_type, version, data) VALUES (?1, ?2, ?3, ?4)",
        )?;
        for env in events {
            if let Body::Subject {
                event: SubjectEvent::PersonalDataErased(e),
                ..
            } = &env.body
            {
                erase.execute([e.subject.as_uuid().as_bytes().as_slice()])?;
                continue;
            }
            if let Body::Catalog { event, meta, .. } = &env.body {
                keep.execute(params![
                    env.position.0 as i64,
                    event.event_type(),
                    meta.version,
                    env.data,
                ])?;
                catalog = fold(catalog, event);
                continue;
            }
            let Body::Lead {
                lead_id,
                event,
                meta,
            } = &env.body
            else {
                continue;
            };
            let summary = summarize(&catalog, event);
            // The summary as it reads once the event's subject is erased, kept only when it
            // differs (the event shows personal data).
            let erased = seal::has_personal_fields(event.event_type())
                .then(|| summarize(&catalog, &event.without_personal_data()))
                .filter(|erased| *erased != summary);
            let subject = erased.as_ref().map(|_| {
                meta.subject
                    .unwrap_or_else(|| SubjectId::for_lead(*lead_id).as_uuid())
            });
            insert.execute(params![
                env.position.0 as i64,
                lead_id.as_uuid().as_bytes(),
                env.revision as i64,
                event.event_type(),
                meta.actor.user_id.as_uuid().as_bytes(),
                format!("{:?}", meta.actor.role),
                micros(meta.occurred_at),
                summary,
                subject.map(|s| s.as_bytes().to_vec()),
                erased,
            ])?;
        }
        // Kept only once the batch went through: after an error the next batch reloads it.
        self.catalog = Some(catalog);
        Ok(())
    }
}
