//! `leadflow privacy migrate` (issue 20): an embedded log written before sealing, copied into a
//! new one with every personal field sealed under its subject's key, verified against the old
//! one event by event, swapped in, and the old file destroyed.
//!
//! The copy keeps positions, event ids, streams, revisions, recording times and every
//! non-personal field; an event written at an older version comes out at the current one (the
//! upcaster's output, the same event the old one decodes to). Subjects with a key already (a
//! log sealed from some point on) keep it; a subject erased before its data was sealed gets a
//! key that is destroyed before the swap, so that data reads as erased, as it did.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;

use anyhow::{bail, Context};
use uuid::Uuid;

use leadflow_app::Keyring;
use leadflow_codec::envelope::{self, Body, Keys as _, Opened};
use leadflow_codec::seal::{self, MasterKey, Opening, SubjectKey};
use leadflow_codec::{EventMetadata, Stored, StreamRef};
use leadflow_domain::{LeadAggregate, LeadEvent, LeadId, SubjectEvent, SubjectId};
use leadflow_store::{EventStore, NewKey, Position, RecordedEvent};
use leadflow_store_embedded::copy::{self, StoreCopy};
use leadflow_store_embedded::EmbeddedStore;

const BATCH: usize = 10_000;

/// What a migration did.
#[derive(Debug, Default)]
pub struct Migrated {
    pub events: u64,
    /// Events whose personal fields it sealed.
    pub sealed: u64,
    /// Subjects it minted a key for.
    pub keys: u64,
    /// Subjects erased in the log before their data was sealed: their new keys are destroyed.
    pub erased: u64,
}

/// Copies `store` (an embedded store file no process has open) into a sealed copy beside it,
/// verifies it and swaps it in. With nothing to seal, it changes nothing.
pub async fn migrate(
    store: &Path,
    master: MasterKey,
    progress: impl Fn(u64, u64),
) -> anyhow::Result<Migrated> {
    // A replacement cut short by a crash is finished first.
    copy::finish_replace(store)?;
    let target = store.with_extension("db.sealed");
    if target.exists() {
        // A copy cut short: it was never swapped in, so it goes.
        std::fs::remove_file(&target)?;
        for suffix in ["-wal", "-shm", ".lock"] {
            let mut side = target.as_os_str().to_owned();
            side.push(suffix);
            let _ = std::fs::remove_file(side);
        }
    }
    let out = copy_sealed(store, &target, master.clone(), progress).await?;
    if out.sealed == 0 {
        std::fs::remove_file(&target)?;
        return Ok(out);
    }
    verify(store, &target, master)
        .await
        .context("the sealed copy differs from the log; the log is left as it was")?;
    copy::replace(store, &target)?;
    Ok(out)
}

/// Copies `store` into a new store at `target`, sealing every plain personal field on the way.
async fn copy_sealed(
    store: &Path,
    target: &Path,
    master: MasterKey,
    progress: impl Fn(u64, u64),
) -> anyhow::Result<Migrated> {
    let old: Arc<dyn EventStore> = Arc::new(EmbeddedStore::open_reader(store)?);
    let head = old.head().await?.0;
    // The keys the log has already (sealed from some point on) come from the old file.
    let keyring = Arc::new(Keyring::new(old, Some(master)));
    let mut copy = StoreCopy::start(store, target)?;
    let mut sealer = Sealer {
        keyring: keyring.clone(),
        subjects: HashMap::new(),
        erased_in_log: HashSet::new(),
        minted: HashSet::new(),
        out: Migrated::default(),
    };
    loop {
        let events = copy.next(BATCH)?;
        let Some(last) = events.last().map(|e| e.position.0) else {
            break;
        };
        let (events, keys) = sealer.seal(events).await?;
        copy.write(&events, &keys)?;
        progress(last, head);
    }
    let erased: Vec<Uuid> = sealer
        .erased_in_log
        .iter()
        .filter(|s| sealer.minted.contains(s))
        .copied()
        .collect();
    copy.destroy_keys(&erased, chrono::Utc::now().timestamp_micros())?;
    copy.finish()?;
    // Nothing may hold the old file open when it is swapped out (dropped on return).
    let mut out = sealer.out;
    out.erased = erased.len() as u64;
    Ok(out)
}

struct Sealer {
    keyring: Arc<Keyring>,
    /// Each lead's data subject, from its registration.
    subjects: HashMap<LeadId, Uuid>,
    erased_in_log: HashSet<Uuid>,
    /// Subjects keyed by this migration.
    minted: HashSet<Uuid>,
    out: Migrated,
}

impl Sealer {
    /// `events` with their personal fields sealed, and the keys minted for them.
    async fn seal(
        &mut self,
        events: Vec<RecordedEvent>,
    ) -> anyhow::Result<(Vec<RecordedEvent>, Vec<NewKey>)> {
        // First the subjects this batch needs, their keys fetched in one round trip.
        let mut plain = Vec::new();
        for (i, e) in events.iter().enumerate() {
            self.out.events += 1;
            if let Some((lead_id, event, meta)) = self.plain_lead_event(e)? {
                let subject = match &event {
                    LeadEvent::LeadRegistered(r) => {
                        let subject = r.subject.as_uuid();
                        self.subjects.insert(lead_id, subject);
                        subject
                    }
                    _ => *self
                        .subjects
                        .entry(lead_id)
                        .or_insert_with(|| SubjectId::for_lead(lead_id).as_uuid()),
                };
                plain.push((i, event, meta, subject));
            }
        }
        let wanted: Vec<Uuid> = plain.iter().map(|p| p.3).collect();
        self.keyring.load_many(&wanted, false).await?;
        let mut keys: HashMap<Uuid, Arc<SubjectKey>> = HashMap::new();
        let mut new_keys = Vec::new();
        for &subject in &wanted {
            if keys.contains_key(&subject) {
                continue;
            }
            let key = match self.keyring.opening(subject) {
                Some(Opening::Key(key)) => key,
                // Erased since: sealed under a key no one keeps, it reads as erased.
                Some(Opening::Erased) => Arc::new(SubjectKey::generate()?),
                None => {
                    let sealing = self.keyring.mint(subject)?;
                    self.keyring.stored(&sealing);
                    new_keys.extend(sealing.new.clone());
                    self.minted.insert(subject);
                    self.out.keys += 1;
                    sealing.key
                }
            };
            keys.insert(subject, key);
        }
        let mut events = events;
        for (i, event, meta, subject) in plain {
            let e = &mut events[i];
            let event_type = LeadAggregate::event_type(&event);
            let mut value = LeadAggregate::encode_value(&event);
            seal::seal_fields(&mut value, event_type, &keys[&subject], subject, e.id)?;
            e.data = serde_json::to_vec(&value)?;
            e.metadata = EventMetadata {
                version: LeadAggregate::version(&event),
                subject: Some(subject),
                ..meta
            }
            .encode();
            self.out.sealed += 1;
        }
        Ok((events, new_keys))
    }

    /// `e` decoded, if it is a lead event with personal fields in plain text. Remembers the
    /// erasures the log records on the way.
    fn plain_lead_event(
        &mut self,
        e: &RecordedEvent,
    ) -> anyhow::Result<Option<(LeadId, LeadEvent, EventMetadata)>> {
        let Ok(stream) = StreamRef::parse(&e.stream) else {
            return Ok(None);
        };
        match stream {
            StreamRef::Lead(_) if seal::has_personal_fields(&e.event_type) => {}
            StreamRef::Subject(_) => {
                if let Body::Subject {
                    event: SubjectEvent::PersonalDataErased(erased),
                    ..
                } = envelope::decode(e.clone())?.body
                {
                    self.erased_in_log.insert(erased.subject.as_uuid());
                }
                return Ok(None);
            }
            _ => return Ok(None),
        }
        let meta = EventMetadata::decode(&e.metadata)
            .with_context(|| format!("the metadata of the event at {}", e.position.0))?;
        if meta.subject.is_some() {
            return Ok(None);
        }
        match envelope::decode(e.clone())?.body {
            Body::Lead { lead_id, event, .. } => Ok(Some((lead_id, event, meta))),
            _ => Ok(None),
        }
    }
}

/// Compares the copy with the log, event by event: the same positions, streams, revisions,
/// ids, types, times and content types; an event that sealed nothing is byte for byte the
/// same; a sealed one opens (with the copy's keys) to the event the old one decodes to, and
/// the same metadata but for its version and subject.
async fn verify(store: &Path, copy: &Path, master: MasterKey) -> anyhow::Result<()> {
    let old = EmbeddedStore::open_reader(store)?;
    let new: Arc<dyn EventStore> = Arc::new(EmbeddedStore::open_reader(copy)?);
    let keyring = Keyring::new(new.clone(), Some(master));
    let (old_head, new_head) = (old.head().await?, new.head().await?);
    if old_head != new_head {
        bail!(
            "the log ends at {} and the copy at {}",
            old_head.0,
            new_head.0
        );
    }
    let mut after = Position::START;
    loop {
        let (a, b) = (
            old.read_all(after, BATCH).await?,
            new.read_all(after, BATCH).await?,
        );
        if a.len() != b.len() {
            bail!("after {} the log and the copy differ in length", after.0);
        }
        let Some(last) = a.last().map(|e| e.position) else {
            return Ok(());
        };
        let subjects: Vec<Uuid> = b
            .iter()
            .filter_map(|e| EventMetadata::decode(&e.metadata).ok()?.subject)
            .collect();
        keyring.load_many(&subjects, true).await?;
        for (x, y) in a.into_iter().zip(b) {
            let at = x.position.0;
            let same_frame = x.position == y.position
                && x.stream == y.stream
                && x.revision == y.revision
                && x.id == y.id
                && x.event_type == y.event_type
                && x.content_type == y.content_type
                && x.recorded_at_micros == y.recorded_at_micros;
            if !same_frame {
                bail!("the event at {at} is not where it was, or not what it was");
            }
            if x.data == y.data && x.metadata == y.metadata {
                continue;
            }
            let (mx, my) = (
                EventMetadata::decode(&x.metadata)?,
                EventMetadata::decode(&y.metadata)?,
            );
            let Some(subject) = my.subject else {
                bail!("the event at {at} was changed without being sealed");
            };
            let unsealed = EventMetadata {
                version: mx.version,
                subject: None,
                ..my.clone()
            };
            if mx.subject.is_some() || unsealed != mx {
                bail!("the metadata of the event at {at} changed");
            }
            let before = match envelope::decode(x)?.body {
                Body::Lead { event, .. } => event,
                _ => bail!("the event at {at} is not a lead's"),
            };
            let after = match envelope::decode_with_keys(y, &keyring)? {
                Opened::Envelope(envelope::Envelope {
                    body: Body::Lead { event, .. },
                    ..
                }) => event,
                _ => bail!("the sealed event at {at} does not open"),
            };
            let expected = match keyring.opening(subject) {
                Some(Opening::Erased) => before.without_personal_data(),
                _ => before,
            };
            if after != expected {
                bail!("the event at {at} opens to another event than it was");
            }
        }
        after = last;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A log written without keys: a small demo, one person erased.
    async fn plain_log(path: &Path) {
        let store = Arc::new(EmbeddedStore::open(path).unwrap());
        let engine = leadflow_app::open_engine(store, None, false).await.unwrap();
        leadflow_demo::generate(
            &engine,
            &leadflow_demo::DemoConfig {
                leads: 6,
                concurrency: 2,
                ..leadflow_demo::DemoConfig::default()
            },
            |_| {},
        )
        .await
        .unwrap();
    }

    fn tamper(copy: &Path, sql: &str) {
        let conn = rusqlite::Connection::open(copy).unwrap();
        assert!(conn.execute(sql, []).unwrap() > 0, "{sql}");
        conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)")
            .unwrap();
    }

    /// The compare before the swap catches a copy that moved an event, changed a plain event,
    /// or changed a sealed event's metadata or a non-personal field under the seal.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_compare_refuses_a_copy_that_differs_from_the_log() {
        let dir = tempfile::tempdir().unwrap();
        let store = dir.path().join("events.db");
        plain_log(&store).await;
        let master = MasterKey::generate().unwrap();
        let tampered: [(&str, &str); 4] = [
            ("moved", "UPDATE events SET recorded_at = recorded_at + 1 WHERE position = 3"),
            (
                "changed without a seal",
                "UPDATE events SET data = CAST(json_set(data, '$.x', 1) AS BLOB)
                 WHERE position = (SELECT min(position) FROM events WHERE event_type = 'UserCreated')",
            ),
            (
                "metadata",
                "UPDATE events SET metadata = CAST(json_set(metadata, '$.occurredAt', '2020-01-01T00:00:00Z') AS BLOB)
                 WHERE position = (SELECT min(position) FROM events WHERE event_type = 'LeadRegistered')",
            ),
            (
                "a field under the seal",
                "UPDATE events SET data = CAST(json_set(data, '$.funnel', 'elsewhere') AS BLOB)
                 WHERE position = (SELECT min(position) FROM events WHERE event_type = 'LeadRegistered')",
            ),
        ];
        for (i, (what, sql)) in tampered.iter().enumerate() {
            let copy = dir.path().join(format!("copy-{i}.db"));
            let out = copy_sealed(&store, &copy, master.clone(), |_, _| {})
                .await
                .unwrap();
            assert!(out.sealed > 0);
            verify(&store, &copy, master.clone())
                .await
                .unwrap_or_else(|e| panic!("the untouched copy matches: {e:#}"));
            tamper(&copy, sql);
            assert!(
                verify(&store, &copy, master.clone()).await.is_err(),
                "{what} went unnoticed"
            );
        }
    }
}
