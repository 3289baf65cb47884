//! A data subject's personal data on request (issue 20, GDPR art. 15): every personal value
//! the log holds for the subject, opened with their key, with where it came from (the lead,
//! the event, its position and time, the field). The read side finds the subject's leads in
//! the `leads` model and reads their events from the log; nothing here decides or records
//! (the API records the export as an event of the subject's).

use serde::Serialize;
use uuid::Uuid;

use leadflow_codec::seal::{personal_values, ERASED};
use leadflow_codec::{lead_stream, EventMetadata};
use leadflow_domain::stage::Stage;
use leadflow_domain::{LeadId, SubjectId};
use leadflow_keyring::{KeyError, Keyring};
use leadflow_store::{EventStore, StoreError};

/// One personal value and where it came from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PersonalValue {
    pub lead: LeadId,
    pub event_type: String,
    pub position: u64,
    pub occurred_at: chrono::DateTime<chrono::Utc>,
    /// The field's path in the event (`details.phones[]`).
    pub field: String,
    pub value: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("event store: {0}")]
    Store(#[from] StoreError),
    #[error("personal data keys: {0}")]
    Keys(#[from] KeyError),
    #[error("cannot read event {position}: {reason}")]
    Corrupt { position: u64, reason: String },
}

/// The leads holding `subject`'s data, from the `leads` model.
pub fn leads_of(conn: &rusqlite::Connection, subject: SubjectId) -> rusqlite::Result<Vec<LeadId>> {
    let mut stmt = conn.prepare_cached(
        "SELECT l.lead_id FROM lead_subjects s JOIN leads l ON l.row_id = s.row_id
         WHERE s.subject = ?1 ORDER BY l.row_id",
    )?;
    let ids = stmt
        .query_map([subject.as_uuid().as_bytes().as_slice()], |r| {
            r.get::<_, String>(0)
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(ids.iter().filter_map(|id| LeadId::parse(id).ok()).collect())
}

/// The subjects the retention setting reaches (issue 20): every lead holding their data is
/// closed (Disqualified, NeedAbsent, NeedSatisfied) and its last event is older than `cutoff`,
/// in the order their first lead arrived. Subjects already erased are among them; the caller
/// leaves those out (only the keys know).
pub fn retention_candidates(
    conn: &rusqlite::Connection,
    cutoff: chrono::DateTime<chrono::Utc>,
) -> rusqlite::Result<Vec<SubjectId>> {
    let closed: Vec<String> = Stage::ALL
        .iter()
        .filter(|s| s.is_closed())
        .map(|s| format!("'{s}'"))
        .collect();
    let sql = format!(
        "SELECT s.subject FROM lead_subjects s JOIN leads l ON l.row_id = s.row_id
         GROUP BY s.subject
         HAVING SUM(l.stage NOT IN ({}) OR l.updated_at >= ?1) = 0
         ORDER BY MIN(s.row_id)",
        closed.join(", ")
    );
    let mut stmt = conn.prepare_cached(&sql)?;
    let subjects = stmt
        .query_map([cutoff.timestamp_micros()], |r| r.get::<_, Vec<u8>>(0))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(subjects
        .iter()
        .filter_map(|s| Uuid::from_slice(s).ok())
        .map(SubjectId::from_uuid)
        .collect())
}

/// The subjects whose leads hold a value with one of `tokens` (blind-index tokens), each with
/// those leads, in the order the leads arrived.
pub fn subjects_matching(
    conn: &rusqlite::Connection,
    tokens: &[[u8; 32]],
) -> rusqlite::Result<Vec<(SubjectId, Vec<LeadId>)>> {
    let mut found: Vec<(SubjectId, Vec<LeadId>)> = Vec::new();
    let mut stmt = conn.prepare_cached(
        "SELECT t.subject, l.lead_id FROM lead_tokens t JOIN leads l ON l.row_id = t.row_id
         WHERE t.token = ?1 ORDER BY l.row_id",
    )?;
    for token in tokens {
        let rows = stmt.query_map([token.as_slice()], |r| {
            Ok((r.get::<_, Vec<u8>>(0)?, r.get::<_, String>(1)?))
        })?;
        for row in rows {
            let (subject, lead) = row?;
            let (Ok(subject), Ok(lead)) = (Uuid::from_slice(&subject), LeadId::parse(&lead)) else {
                continue;
            };
            let subject = SubjectId::from_uuid(subject);
            match found.iter_mut().find(|(s, _)| *s == subject) {
                Some((_, leads)) if !leads.contains(&lead) => leads.push(lead),
                Some(_) => {}
                None => found.push((subject, vec![lead])),
            }
        }
    }
    Ok(found)
}

/// Every personal value of `subject` in `leads`' events, in log order. An erased subject has
/// none left to give (its values read `[erased]` and are left out).
pub async fn export(
    store: &dyn EventStore,
    keys: &Keyring,
    subject: SubjectId,
    leads: &[LeadId],
) -> Result<Vec<PersonalValue>, ExportError> {
    let wanted: Uuid = subject.as_uuid();
    let mut values = Vec::new();
    for lead in leads {
        let events = store
            .read_stream(&lead_stream(*lead), 0, usize::MAX)
            .await?;
        for event in events {
            let corrupt = |reason: String| ExportError::Corrupt {
                position: event.position.0,
                reason,
            };
            let meta =
                EventMetadata::decode(&event.metadata).map_err(|e| corrupt(e.to_string()))?;
            // Sealed under this subject, or written in the clear on a lead registered with it.
            let about = meta
                .subject
                .unwrap_or_else(|| SubjectId::for_lead(*lead).as_uuid());
            if about != wanted {
                continue;
            }
            let opened = keys.open_recorded(&event).await?;
            let payload: serde_json::Value =
                serde_json::from_slice(&opened).map_err(|e| corrupt(e.to_string()))?;
            for (field, value) in personal_values(&payload, &event.event_type) {
                if value != ERASED {
                    values.push(PersonalValue {
                        lead: *lead,
                        event_type: event.event_type.clone(),
                        position: event.position.0,
                        occurred_at: meta.occurred_at,
                        field: field.to_owned(),
                        value,
                    });
                }
            }
        }
    }
    Ok(values)
}
