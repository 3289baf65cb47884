//! The `history` read model and the lead card's feed. The feed (every event of a lead, newest
//! first, with its actor, business time and a readable summary) is rendered from the lead's
//! own stream when asked for ([`feed`]): the log keeps each lead's events together and in
//! order, so a stored copy of them would be nine rows per lead to write on every rebuild, and a
//! second place holding personal data. The model keeps what the stream does not say: the
//! catalog events (the summaries name users, funnels and stages as the catalog stood at each
//! event's position, folded here in log order from the default catalog, which is what a new
//! store's first events write) and the subjects erased (an event written in plain text, before
//! its log was sealed, reads without its personal fields once its subject is erased).

use rusqlite::{params, Connection, Transaction};

use leadflow_domain::{Catalog, CatalogEvent, SubjectEvent, SubjectId};

use crate::query::{Cursor, CursorValue, HistoryRow, Page};
use crate::summary::summarize;
use crate::{micros, Body, Envelope, Projection, ProjectionError};

/// The `history` read model: what the lead's feed needs beside its stream.
pub const HISTORY: crate::Model = crate::Model("history");

#[derive(Default)]
pub struct HistoryProjection;

impl HistoryProjection {
    pub fn new() -> Self {
        Self
    }
}

/// The catalog events kept up to `until` (a position), decoded, in log order.
fn catalog_events(conn: &Connection, until: i64) -> rusqlite::Result<Vec<(i64, CatalogEvent)>> {
    let mut stmt = conn.prepare_cached(
        "SELECT position, event_type, version, data FROM catalog_events WHERE position <= ?1 ORDER BY position",
    )?;
    let rows = stmt.query_map([until], |r| {
        Ok((
            r.get::<_, i64>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, u32>(2)?,
            r.get::<_, Vec<u8>>(3)?,
        ))
    })?;
    let mut events = Vec::new();
    for row in rows {
        let (position, event_type, version, data) = row?;
        let event = leadflow_codec::catalog::decode(&event_type, version, &data).map_err(|e| {
            rusqlite::Error::ToSqlConversionFailure(
                format!("the catalog event at position {position} does not decode: {e}").into(),
            )
        })?;
        events.push((position, event));
    }
    Ok(events)
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
        6
    }

    fn schema(&self) -> &'static str {
        include_str!("../../../projections/history.v6.sql")
    }

    fn apply(&mut self, tx: &Transaction<'_>, events: &[Envelope]) -> Result<(), ProjectionError> {
        let mut keep = tx.prepare_cached(
            "INSERT OR REPLACE INTO catalog_events(position, event_type, version, data) VALUES (?1, ?2, ?3, ?4)",
        )?;
        let mut erased = tx.prepare_cached(
            "INSERT OR IGNORE INTO erased_subjects(subject, position) VALUES (?1, ?2)",
        )?;
        for env in events {
            match &env.body {
                Body::Catalog { event, meta, .. } => {
                    keep.execute(params![
                        env.position.0 as i64,
                        event.event_type(),
                        meta.version,
                        env.data,
                    ])?;
                }
                Body::Subject {
                    event: SubjectEvent::PersonalDataErased(e),
                    ..
                } => {
                    erased.execute(params![
                        e.subject.as_uuid().as_bytes().as_slice(),
                        env.position.0 as i64
                    ])?;
                }
                _ => {}
            }
        }
        Ok(())
    }
}

/// A page of a lead's feed, newest first: `first` entries older than position `before`, out
/// of `stream`, the lead's events as read from the log and decoded (sealed fields opened, or
/// read as erased), in log order. Only the events this model has seen count (its checkpoint,
/// in the snapshot `conn` reads), so the feed, its total and the names in it agree with one
/// position of the log, as every other answer does.
pub fn feed(
    conn: &mut Connection,
    stream: Vec<Envelope>,
    first: usize,
    before: Option<i64>,
) -> rusqlite::Result<Page<HistoryRow>> {
    let tx = conn.transaction()?;
    let seen: i64 = tx
        .prepare_cached("SELECT position FROM projection_state WHERE name = ?1")?
        .query_row([HISTORY.name()], |r| r.get(0))?;
    let counted: Vec<Envelope> = stream
        .into_iter()
        .filter(|e| e.position.0 as i64 <= seen)
        .collect();
    let total_count = counted.len() as i64;
    let before = before.unwrap_or(i64::MAX);
    let mut page: Vec<Envelope> = counted
        .into_iter()
        .rev()
        .filter(|e| (e.position.0 as i64) < before)
        .take(first + 1)
        .collect();
    let has_next = page.len() > first;
    page.truncate(first);
    // The catalog as it stood at each entry: folded in log order up to the oldest entry, then
    // on from there as the entries go forward.
    page.reverse();
    let newest = page.last().map_or(0, |e| e.position.0 as i64);
    let mut changes = catalog_events(&tx, newest)?.into_iter().peekable();
    let mut catalog = Catalog::default_catalog();
    let mut erased = tx.prepare_cached("SELECT 1 FROM erased_subjects WHERE subject = ?1")?;
    let mut rows = Vec::with_capacity(page.len());
    for env in page {
        while let Some((_, change)) = changes.next_if(|(p, _)| *p < env.position.0 as i64) {
            catalog = fold(catalog, &change);
        }
        let Body::Lead {
            lead_id,
            event,
            meta,
        } = &env.body
        else {
            continue;
        };
        // Sealed fields of an erased subject read as erased already; a plain-text event reads
        // so once its subject is erased.
        let subject = meta
            .subject
            .unwrap_or_else(|| SubjectId::for_lead(*lead_id).as_uuid());
        let summary = if leadflow_codec::seal::has_personal_fields(event.event_type())
            && erased.exists([subject.as_bytes().as_slice()])?
        {
            summarize(&catalog, &event.without_personal_data())
        } else {
            summarize(&catalog, event)
        };
        rows.push((
            HistoryRow {
                position: env.position.0 as i64,
                revision: env.revision as i64,
                event_type: event.event_type().to_owned(),
                actor_user: meta.actor.user_id.as_uuid().to_string(),
                actor_role: format!("{:?}", meta.actor.role),
                occurred_at: micros(meta.occurred_at),
                summary,
            },
            Cursor(vec![CursorValue::Integer(env.position.0 as i64)]),
        ));
    }
    rows.reverse();
    Ok(Page {
        rows,
        total_count,
        has_next,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use leadflow_domain::subject::{ErasureReason, PersonalDataErased};
    use leadflow_domain::{LeadEvent, LeadId, UserId};
    use leadflow_store::Position;

    use crate::recorded::{golden, lead_event, meta};

    /// A recorded registration as lead `lead`'s event at `position`.
    fn registered(lead: LeadId, position: u64) -> Envelope {
        let payload = &golden("LeadRegistered")[0];
        let event = leadflow_codec::lead::decode("LeadRegistered", 1, payload.as_bytes()).unwrap();
        lead_event(lead, position, 0, event)
    }

    fn erasure(subject: SubjectId, position: u64) -> Envelope {
        Envelope {
            position: Position(position),
            stream: format!("subject-{}", subject.as_uuid()),
            revision: 0,
            data: Vec::new(),
            body: Body::Subject {
                subject,
                event: SubjectEvent::PersonalDataErased(PersonalDataErased {
                    subject,
                    by: UserId::named("admin"),
                    reason_code: ErasureReason::Request,
                    ticket: None,
                }),
                meta: meta(),
            },
        }
    }

    /// A history model that applied `events` up to `seen`.
    fn model(events: &[Envelope], seen: u64) -> Connection {
        let mut conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(HistoryProjection.schema()).unwrap();
        conn.execute_batch(
            "CREATE TABLE projection_state (name TEXT PRIMARY KEY, position INTEGER NOT NULL)",
        )
        .unwrap();
        let tx = conn.transaction().unwrap();
        HistoryProjection::new().apply(&tx, events).unwrap();
        tx.execute(
            "INSERT INTO projection_state VALUES ('history', ?1)",
            [seen as i64],
        )
        .unwrap();
        tx.commit().unwrap();
        conn
    }

    fn title_of(event: &Envelope) -> String {
        let Body::Lead {
            event: LeadEvent::LeadRegistered(e),
            ..
        } = &event.body
        else {
            unreachable!()
        };
        e.details.title.to_string()
    }

    #[test]
    fn the_feed_counts_only_what_the_model_has_seen_and_pages_newest_first() {
        let lead = LeadId::from_uuid(uuid::Uuid::from_u128(7));
        let stream: Vec<Envelope> = (0..5).map(|i| registered(lead, 10 + i)).collect();
        let mut conn = model(&[], 13);
        let page = feed(&mut conn, stream.clone(), 2, None).unwrap();
        assert_eq!(page.total_count, 4, "position 14 is past the checkpoint");
        let positions =
            |p: &Page<HistoryRow>| p.rows.iter().map(|r| r.0.position).collect::<Vec<_>>();
        assert_eq!(positions(&page), [13, 12]);
        assert!(page.has_next);
        let next = feed(&mut conn, stream, 2, Some(12)).unwrap();
        assert_eq!(positions(&next), [11, 10]);
        assert!(!next.has_next);
    }

    #[test]
    fn a_plain_text_event_reads_erased_once_its_subject_is_erased() {
        let lead = LeadId::from_uuid(uuid::Uuid::from_u128(7));
        let other = LeadId::from_uuid(uuid::Uuid::from_u128(8));
        let title = title_of(&registered(lead, 1));
        let mut conn = model(&[erasure(SubjectId::for_lead(lead), 3)], 3);
        let erased = feed(&mut conn, vec![registered(lead, 1)], 10, None).unwrap();
        assert!(
            !erased.rows[0].0.summary.contains(&title),
            "{:?}",
            erased.rows
        );
        assert!(erased.rows[0]
            .0
            .summary
            .contains(leadflow_codec::seal::ERASED));
        let kept = feed(&mut conn, vec![registered(other, 2)], 10, None).unwrap();
        assert!(kept.rows[0].0.summary.contains(&title), "{:?}", kept.rows);
    }
}
