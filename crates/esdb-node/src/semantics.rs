//! What a node decides, over the embedded store: expected versions with idempotent retries,
//! soft delete (`$tb` in the metastream) and undelete, tombstones, and which revisions a
//! read shows. The rules and their order are those of `esdb-protocol.md` section 6.
//!
//! Node writes to one stream run one at a time (a lock per stream and its metastream, striped
//! over [`WRITE_LOCKS`]): a write checks the stream's state and then appends with the exact
//! revision it saw, so a writer beside the node (the engine, on the same store) can only make
//! that append fail, never slip in between unnoticed. Writes to different streams go to the
//! store side by side, where group commit makes one fsync of many.

use serde_json::{json, Value};
use tokio::sync::Mutex;
use tonic::Status;
use uuid::Uuid;

use leadflow_store::{
    ContentType, EventStore, ExpectedRevision, NewEvent, Position, RecordedEvent, StoreError,
    StreamName,
};
use leadflow_store_embedded::EmbeddedStore;

use crate::errors;

/// The event type of a tombstone, and the revision clients see it at.
pub const TOMBSTONE_TYPE: &str = "$streamDeleted";
pub const TOMBSTONE_REVISION: u64 = i64::MAX as u64;
/// `$tb` of a soft-deleted stream.
pub const DELETED_TB: u64 = i64::MAX as u64;
pub const METADATA_TYPE: &str = "$metadata";

/// The streams of data subjects' keys (issue 20), as the EventStoreDB adapter writes them:
/// `$leadflow-key-<subject>`, one event, the wrapped key. The node keeps them where the engine
/// beside it keeps them, in the store's key table, so both paths see the same keys; a
/// tombstone destroys the key there for good (overwritten, the log truncated), which is all
/// the scavenge such a stream needs.
pub const KEY_STREAM_PREFIX: &str = "$leadflow-key-";
/// The event type of a stored key, and the id it reads back with.
pub const KEY_TYPE: &str = "SubjectKey";

/// The subject of a key stream.
pub fn key_subject(stream: &str) -> Option<Uuid> {
    stream
        .strip_prefix(KEY_STREAM_PREFIX)
        .and_then(|s| Uuid::parse_str(s).ok())
}

/// A key as a key stream's only event (revision 0).
pub fn key_event(stream: &str, subject: Uuid, wrapped: Vec<u8>) -> RecordedEvent {
    RecordedEvent {
        stream: stream.to_owned(),
        revision: 0,
        position: Position::START,
        id: Uuid::new_v5(&subject, b"key"),
        event_type: KEY_TYPE.to_owned(),
        data: wrapped,
        metadata: Vec::new(),
        content_type: ContentType::Binary,
        recorded_at_micros: 0,
    }
}

/// The content type the node reports for a stored event: `application/json` if the write
/// said exactly that, else `application/octet-stream`.
pub fn content_type_of(e: &RecordedEvent) -> &'static str {
    match e.content_type {
        ContentType::Json => "application/json",
        ContentType::Binary => "application/octet-stream",
    }
}

/// An expected version, as clients send it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expected {
    Any,
    NoStream,
    StreamExists,
    Exact(u64),
}

impl Expected {
    /// The integer EventStoreDB's texts and trailers use.
    pub fn wire(self) -> i64 {
        match self {
            Self::Any => -2,
            Self::NoStream => -1,
            Self::StreamExists => -4,
            Self::Exact(n) => n as i64,
        }
    }
}

/// What a stream is now.
#[derive(Clone, Debug, Default)]
pub struct StreamState {
    /// The last revision in the store (a tombstone's own, stored one included).
    pub last: Option<u64>,
    pub tombstoned: bool,
    /// The metastream's latest document, if it has one.
    pub meta: Option<Value>,
    pub meta_exists: bool,
}

impl StreamState {
    /// Revisions below this are hidden (`$tb`).
    pub fn truncate_before(&self) -> Option<u64> {
        self.meta
            .as_ref()
            .and_then(|m| m.get("$tb"))
            .and_then(Value::as_u64)
    }

    pub fn soft_deleted(&self) -> bool {
        self.truncate_before() == Some(DELETED_TB)
    }

    /// Never written to, metadata included.
    pub fn never_existed(&self) -> bool {
        self.last.is_none() && !self.meta_exists
    }

    /// The last revision as clients see it (-1: none).
    pub fn wire_last(&self) -> i64 {
        self.last.map_or(-1, |l| l as i64)
    }
}

/// An event to append, as a client proposed it.
#[derive(Clone, Debug)]
pub struct Proposed {
    pub id: Uuid,
    pub event_type: String,
    pub data: Vec<u8>,
    pub custom_metadata: Vec<u8>,
    pub content_type: ContentType,
}

/// How an append ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AppendOutcome {
    /// `current`: the stream's last revision after the write (None: still no events);
    /// `position`: the position of the last written event (None for an empty write).
    Success {
        current: Option<u64>,
        position: Option<u64>,
    },
    WrongExpectedVersion {
        current: Option<u64>,
        expected: Expected,
    },
}

pub struct Db {
    pub store: EmbeddedStore,
    pub max_append_size: usize,
    /// Write locks, by the hash of the stream a write concerns (its owner, for a metastream).
    writes: Vec<Mutex<()>>,
    /// Set when the node stops: long-lived calls (subscriptions, batch-append streams) end.
    closing: tokio::sync::watch::Sender<bool>,
    /// The streams whose metastream was ever written (so possibly soft-deleted, or with a
    /// `$tb`), owners' names; `None` when that could not be read at start: then every append
    /// takes the full check.
    with_metadata: Option<std::sync::RwLock<std::collections::HashSet<String>>>,
}

fn name(raw: &str) -> Result<StreamName, Status> {
    StreamName::system(raw).map_err(|e| Status::invalid_argument(e.to_string()))
}

/// Stripes of write locks: enough that concurrent writers to different streams rarely share one.
pub const WRITE_LOCKS: usize = 1024;

pub fn metastream(stream: &str) -> String {
    format!("$${stream}")
}

impl Db {
    /// The lock of the stream `stream` (or of its owner, for a metastream `$$owner`).
    fn write_lock(&self, stream: &str) -> &Mutex<()> {
        use std::hash::{Hash, Hasher};
        let owner = stream.strip_prefix("$$").unwrap_or(stream);
        let mut h = std::collections::hash_map::DefaultHasher::new();
        owner.hash(&mut h);
        &self.writes[(h.finish() % WRITE_LOCKS as u64) as usize]
    }

    pub fn new(store: EmbeddedStore, max_append_size: usize) -> Self {
        let with_metadata = match store.stream_names_with_prefix("$$") {
            Ok(names) => Some(std::sync::RwLock::new(
                names
                    .into_iter()
                    .map(|n| n.trim_start_matches("$$").to_owned())
                    .collect(),
            )),
            Err(e) => {
                tracing::warn!(error = %e, "cannot list the metastreams: every append takes the full check");
                None
            }
        };
        Self {
            store,
            max_append_size,
            writes: (0..WRITE_LOCKS).map(|_| Mutex::new(())).collect(),
            closing: tokio::sync::watch::Sender::new(false),
            with_metadata,
        }
    }

    /// Whether `stream` may have metadata (a metastream): unknown counts as yes.
    fn may_have_metadata(&self, stream: &str) -> bool {
        self.with_metadata
            .as_ref()
            .is_none_or(|set| set.read().map_or(true, |set| set.contains(stream)))
    }

    /// `owner`'s metastream is about to be written: its appends take the full check from now
    /// on. Called under the owner's write lock, before the write.
    fn note_metadata(&self, owner: &str) {
        if let Some(set) = &self.with_metadata {
            if let Ok(mut set) = set.write() {
                set.insert(owner.to_owned());
            }
        }
    }

    /// An append that needs no look at the stream first: an ordinary stream whose metadata
    /// was never written (so not soft-deleted) under an exact expectation or none-yet, which
    /// the store checks itself. `None`: anything else, or anything but a success (a
    /// tombstone, a conflict, a retry), which the full check then settles and answers.
    async fn append_plain(
        &self,
        stream: &str,
        expected: Expected,
        events: &[Proposed],
    ) -> Result<Option<AppendOutcome>, Status> {
        let store_expected = match expected {
            Expected::Exact(n) => ExpectedRevision::Exact(n),
            Expected::NoStream => ExpectedRevision::NoStream,
            Expected::Any | Expected::StreamExists => return Ok(None),
        };
        if events.is_empty() || stream.starts_with("$$") || self.may_have_metadata(stream) {
            return Ok(None);
        }
        let new: Vec<NewEvent> = events.iter().map(to_new).collect();
        match self.store.append(&name(stream)?, store_expected, new).await {
            Ok(r) => Ok(Some(AppendOutcome::Success {
                current: Some(r.last_revision),
                position: Some(r.last_position.0),
            })),
            Err(
                StoreError::WrongExpectedRevision { .. } | StoreError::PartlyDuplicateBatch { .. },
            ) => Ok(None),
            Err(e) => Err(errors::store(e)),
        }
    }

    /// Ends the long-lived calls: the node is stopping.
    pub fn close(&self) {
        self.closing.send_replace(true);
    }

    /// Resolves once the node is stopping.
    pub async fn closed(&self) {
        let mut closing = self.closing.subscribe();
        let _ = closing.wait_for(|c| *c).await;
    }

    /// A fresh node's log starts with a system event, as a real node's does (some clients'
    /// tests expect `$all` to begin with one).
    pub async fn seed(&self) -> Result<(), Status> {
        if self.store.head().await.map_err(errors::store)? > Position::START {
            return Ok(());
        }
        let event = NewEvent {
            id: Uuid::new_v4(),
            event_type: "$settings".to_owned(),
            data: b"{}".to_vec(),
            metadata: Vec::new(),
            content_type: ContentType::Json,
        };
        self.store
            .append(&name("$settings")?, ExpectedRevision::Any, vec![event])
            .await
            .map_err(errors::store)?;
        Ok(())
    }

    pub async fn last_event(&self, stream: &str) -> Result<Option<RecordedEvent>, Status> {
        Ok(self
            .store
            .read_stream_backwards(stream, None, 1)
            .await
            .map_err(errors::store)?
            .pop())
    }

    pub async fn state(&self, stream: &str) -> Result<StreamState, Status> {
        if let Some(subject) = key_subject(stream) {
            let key = self.store.read_key(subject).await.map_err(errors::store)?;
            return Ok(StreamState {
                last: (key != leadflow_store::StoredKey::Absent).then_some(0),
                tombstoned: key == leadflow_store::StoredKey::Destroyed,
                ..StreamState::default()
            });
        }
        let (last, meta) = if stream.starts_with("$$") {
            (self.last_event(stream).await?, None)
        } else {
            // The stream's last event and its metastream's, in one read.
            let mut both = self
                .store
                .last_events(&[stream, &metastream(stream)])
                .map_err(errors::store)?;
            let meta = both.pop().flatten();
            (both.pop().flatten(), meta)
        };
        Ok(StreamState {
            last: last.as_ref().map(|e| e.revision),
            tombstoned: last.is_some_and(|e| e.event_type == TOMBSTONE_TYPE),
            meta_exists: meta.is_some(),
            meta: meta.and_then(|m| serde_json::from_slice(&m.data).ok()),
        })
    }

    /// Appends `events` to `stream` under `expected` (section 6's order of checks).
    pub async fn append(
        &self,
        stream: &str,
        expected: Expected,
        events: Vec<Proposed>,
    ) -> Result<AppendOutcome, Status> {
        let size: usize = events
            .iter()
            .map(|e| e.data.len() + e.custom_metadata.len())
            .sum();
        if size > self.max_append_size {
            return Err(errors::too_large(self.max_append_size));
        }
        if let Some(subject) = key_subject(stream) {
            return self.append_key(stream, subject, expected, events).await;
        }
        let _one_at_a_time = self.write_lock(stream).lock().await;
        if let Some(done) = self.append_plain(stream, expected, &events).await? {
            return Ok(done);
        }
        // A write to a soft-deleted stream's metastream undeletes it: `$tb` moves to the
        // stream's next revision unless the write is a delete itself.
        let mut events = events;
        if let Some(owner) = stream.strip_prefix("$$") {
            self.note_metadata(owner);
            let st = self.state(owner).await?;
            if st.soft_deleted() {
                let next = st.last.map_or(0, |l| l + 1);
                for e in &mut events {
                    if let Ok(Value::Object(mut doc)) = serde_json::from_slice::<Value>(&e.data) {
                        if doc.get("$tb").and_then(Value::as_u64) != Some(DELETED_TB) {
                            doc.insert("$tb".to_owned(), json!(next));
                            e.data = serde_json::to_vec(&doc).expect("JSON");
                        }
                    }
                }
            }
        }
        for _ in 0..8 {
            let st = self.state(stream).await?;
            if st.tombstoned {
                return Err(errors::stream_deleted(stream));
            }
            let soft = st.soft_deleted();
            if events.is_empty() {
                return self.check_only(stream, expected, &st).await;
            }
            let wrong = AppendOutcome::WrongExpectedVersion {
                current: st.last,
                expected,
            };
            let store_expected = match expected {
                Expected::Any => ExpectedRevision::Any,
                Expected::StreamExists => {
                    if soft {
                        return Err(errors::stream_deleted(stream));
                    }
                    if st.last.is_none() && !st.meta_exists {
                        return Ok(wrong);
                    }
                    st.last
                        .map_or(ExpectedRevision::NoStream, ExpectedRevision::Exact)
                }
                Expected::NoStream => ExpectedRevision::NoStream,
                Expected::Exact(n) => ExpectedRevision::Exact(n),
            };
            let new: Vec<NewEvent> = events.iter().map(to_new).collect();
            match self.store.append(&name(stream)?, store_expected, new).await {
                Ok(r) => {
                    if soft && r.first_revision == st.last.map_or(0, |l| l + 1) {
                        self.undelete(stream, &st, r.first_revision).await?;
                    }
                    return Ok(AppendOutcome::Success {
                        current: Some(r.last_revision),
                        position: Some(r.last_position.0),
                    });
                }
                Err(StoreError::WrongExpectedRevision { actual, .. }) => {
                    if actual != st.last {
                        continue; // someone wrote beside the node: look again
                    }
                    if expected == Expected::NoStream && soft {
                        // A soft-deleted stream takes a NoStream write at its next revision.
                        let new: Vec<NewEvent> = events.iter().map(to_new).collect();
                        let exact = st
                            .last
                            .map_or(ExpectedRevision::NoStream, ExpectedRevision::Exact);
                        match self.store.append(&name(stream)?, exact, new).await {
                            Ok(r) => {
                                self.undelete(stream, &st, r.first_revision).await?;
                                return Ok(AppendOutcome::Success {
                                    current: Some(r.last_revision),
                                    position: Some(r.last_position.0),
                                });
                            }
                            Err(StoreError::WrongExpectedRevision { .. }) => continue,
                            Err(e) => return Err(errors::store(e)),
                        }
                    }
                    return Ok(wrong);
                }
                Err(StoreError::PartlyDuplicateBatch { .. }) => return Ok(wrong),
                Err(e) => return Err(errors::store(e)),
            }
        }
        Err(Status::unavailable(format!(
            "stream {stream} kept changing under the append; try again"
        )))
    }

    /// An append of no events: a version check, which also undeletes a soft-deleted stream.
    async fn check_only(
        &self,
        stream: &str,
        expected: Expected,
        st: &StreamState,
    ) -> Result<AppendOutcome, Status> {
        let soft = st.soft_deleted();
        let ok = match expected {
            Expected::Any => true,
            Expected::NoStream => st.last.is_none() || soft,
            Expected::StreamExists => {
                if soft {
                    return Err(errors::stream_deleted(stream));
                }
                st.last.is_some() || st.meta_exists
            }
            Expected::Exact(n) => st.last == Some(n),
        };
        if !ok {
            return Ok(AppendOutcome::WrongExpectedVersion {
                current: st.last,
                expected,
            });
        }
        if soft {
            self.undelete(stream, st, st.last.map_or(0, |l| l + 1))
                .await?;
        }
        Ok(AppendOutcome::Success {
            current: st.last,
            position: None,
        })
    }

    /// Rewrites the metastream of a soft-deleted stream so reads show revisions from
    /// `first_visible` on.
    async fn undelete(
        &self,
        stream: &str,
        st: &StreamState,
        first_visible: u64,
    ) -> Result<(), Status> {
        let mut doc = match &st.meta {
            Some(Value::Object(m)) => m.clone(),
            _ => Default::default(),
        };
        doc.insert("$tb".to_owned(), json!(first_visible));
        self.write_meta(stream, Value::Object(doc))
            .await
            .map(|_| ())
    }

    async fn write_meta(&self, stream: &str, doc: Value) -> Result<u64, Status> {
        self.note_metadata(stream);
        let event = NewEvent {
            id: Uuid::new_v4(),
            event_type: METADATA_TYPE.to_owned(),
            data: serde_json::to_vec(&doc).expect("JSON"),
            metadata: Vec::new(),
            content_type: ContentType::Json,
        };
        let r = self
            .store
            .append(
                &name(&metastream(stream))?,
                ExpectedRevision::Any,
                vec![event],
            )
            .await
            .map_err(errors::store)?;
        Ok(r.last_position.0)
    }

    /// Checks `expected` as an append of one fresh event would; `Err` carries the error the
    /// client gets.
    fn check_delete(
        &self,
        stream: &str,
        expected: Expected,
        st: &StreamState,
    ) -> Result<(), Status> {
        let soft = st.soft_deleted();
        let ok = match expected {
            Expected::Any => true,
            Expected::NoStream => st.last.is_none(),
            Expected::StreamExists => {
                if soft {
                    return Err(errors::stream_deleted(stream));
                }
                st.last.is_some()
            }
            Expected::Exact(n) => st.last == Some(n),
        };
        if ok {
            Ok(())
        } else {
            Err(errors::delete_wrong_version(
                stream,
                expected,
                st.wire_last(),
            ))
        }
    }

    /// Soft delete: `$tb` = i64::MAX in the metastream (earlier metadata dropped). Returns the
    /// position of that metadata event.
    pub async fn delete(&self, stream: &str, expected: Expected) -> Result<u64, Status> {
        let _one_at_a_time = self.write_lock(stream).lock().await;
        let st = self.state(stream).await?;
        if st.tombstoned {
            return Err(errors::stream_deleted(stream));
        }
        if st.never_existed() {
            return Err(errors::delete_wrong_version(stream, expected, -1));
        }
        self.check_delete(stream, expected, &st)?;
        self.write_meta(stream, json!({ "$tb": DELETED_TB })).await
    }

    /// A key stream's one event goes to the key table.
    async fn append_key(
        &self,
        stream: &str,
        subject: Uuid,
        expected: Expected,
        events: Vec<Proposed>,
    ) -> Result<AppendOutcome, Status> {
        let [event] = <[Proposed; 1]>::try_from(events).map_err(|_| {
            Status::invalid_argument("a key stream holds exactly one event, the wrapped key")
        })?;
        let key = leadflow_store::NewKey {
            subject,
            wrapped: event.data,
        };
        match self.store.put_key(key).await {
            Ok(()) => Ok(AppendOutcome::Success {
                current: Some(0),
                position: Some(self.store.head().await.map_err(errors::store)?.0),
            }),
            Err(StoreError::SubjectKeyTaken { .. }) => {
                if self.state(stream).await?.tombstoned {
                    return Err(errors::stream_deleted(stream));
                }
                Ok(AppendOutcome::WrongExpectedVersion {
                    current: Some(0),
                    expected,
                })
            }
            Err(e) => Err(errors::store(e)),
        }
    }

    /// Tombstone: a `$streamDeleted` event closes the stream for good.
    pub async fn tombstone(&self, stream: &str, expected: Expected) -> Result<u64, Status> {
        if let Some(subject) = key_subject(stream) {
            if self.state(stream).await?.tombstoned {
                return Err(errors::stream_deleted(stream));
            }
            self.store
                .destroy_key(subject)
                .await
                .map_err(errors::store)?;
            return Ok(self.store.head().await.map_err(errors::store)?.0);
        }
        let _one_at_a_time = self.write_lock(stream).lock().await;
        let st = self.state(stream).await?;
        if st.tombstoned {
            return Err(errors::stream_deleted(stream));
        }
        if st.never_existed() {
            if !matches!(expected, Expected::Any | Expected::NoStream) {
                return Err(errors::delete_wrong_version(stream, expected, -1));
            }
        } else {
            self.check_delete(stream, expected, &st)?;
        }
        let event = NewEvent {
            id: Uuid::new_v4(),
            event_type: TOMBSTONE_TYPE.to_owned(),
            data: Vec::new(),
            metadata: Vec::new(),
            content_type: ContentType::Binary,
        };
        let exact = st
            .last
            .map_or(ExpectedRevision::NoStream, ExpectedRevision::Exact);
        let r = self
            .store
            .append(&name(stream)?, exact, vec![event])
            .await
            .map_err(errors::store)?;
        Ok(r.last_position.0)
    }
}

fn to_new(p: &Proposed) -> NewEvent {
    NewEvent {
        id: p.id,
        event_type: p.event_type.clone(),
        data: p.data.clone(),
        metadata: p.custom_metadata.clone(),
        content_type: p.content_type,
    }
}
