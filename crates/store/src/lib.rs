//! The event-store port: streams of raw envelopes (type, id, JSON data and metadata) with
//! per-stream revisions and one global, ordered log. It knows nothing of leads; the engine and
//! the projections own the codec. Every backend passes the same [`contract`] suite.
//!
//! Semantics, shared by every backend:
//! - An append goes to one stream with an [`ExpectedRevision`]; it is atomic.
//! - Event ids are part of an append: appending the very same ids to the same stream again is
//!   an idempotent no-op that returns the original revisions and positions; a batch where only
//!   some ids are known is refused. As in EventStoreDB, ids are checked per stream.
//! - Positions in the global log strictly increase in commit order, so a reader that tails the
//!   log from its last position never misses an event.
//! - Each data subject's key (wrapped by the master key: a store never holds one in the clear)
//!   is kept apart from the events it seals, and is durable no later than the first of them
//!   ([`EventStore::append_with_keys`]); destroying it is for good ([`EventStore::destroy_key`]).

use std::fmt;

use async_trait::async_trait;
use futures::stream::BoxStream;
use uuid::Uuid;

pub mod contract;
pub mod pace;

/// A stream's name (`lead-<uuid>`): 1-200 bytes, no control characters, and not starting with
/// `$`, which EventStoreDB reserves for system streams.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StreamName(String);

impl StreamName {
    pub const MAX_LEN: usize = 200;

    pub fn parse(raw: impl Into<String>) -> Result<Self, StoreError> {
        let raw = raw.into();
        let reason = if raw.is_empty() {
            Some("is empty")
        } else if raw.len() > Self::MAX_LEN {
            Some("is longer than 200 bytes")
        } else if raw.starts_with('$') {
            Some("starts with '$', reserved for system streams")
        } else if raw.chars().any(char::is_control) {
            Some("contains control characters")
        } else {
            None
        };
        match reason {
            Some(reason) => Err(StoreError::InvalidStreamName { name: raw, reason }),
            None => Ok(Self(raw)),
        }
    }

    /// A name that may start with `$`: the system streams and metastreams (`$$<stream>`) an
    /// EventStoreDB node keeps. Application code never needs it.
    pub fn system(raw: impl Into<String>) -> Result<Self, StoreError> {
        let raw = raw.into();
        if raw.starts_with('$') && raw.len() > 1 {
            // Checked as an ordinary name with the `$` taken off.
            Self::parse(raw.trim_start_matches('$').to_owned()).map_err(|e| match e {
                StoreError::InvalidStreamName { reason, .. } => StoreError::InvalidStreamName {
                    name: raw.clone(),
                    reason,
                },
                other => other,
            })?;
            return Ok(Self(raw));
        }
        Self::parse(raw)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for StreamName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What the writer believes about the stream's current revision.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExpectedRevision {
    /// Append whatever the stream holds.
    Any,
    /// The stream must not exist yet.
    NoStream,
    /// The stream must exist.
    StreamExists,
    /// The stream's last event must have this revision.
    Exact(u64),
}

impl fmt::Display for ExpectedRevision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Any => f.write_str("any"),
            Self::NoStream => f.write_str("no stream"),
            Self::StreamExists => f.write_str("stream exists"),
            Self::Exact(r) => write!(f, "revision {r}"),
        }
    }
}

/// A place in the global log. `Position::START` lies before the first event; reading or
/// subscribing "after" a position excludes it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Position(pub u64);

impl Position {
    pub const START: Position = Position(0);
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// What an event's payload is.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum ContentType {
    /// JSON: everything leadflow writes (EventStoreDB's `application/json`, which its
    /// server-side projections read).
    #[default]
    Json,
    /// Opaque bytes (`application/octet-stream`): what other EventStoreDB clients may write
    /// through the node.
    Binary,
}

/// An event to append.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewEvent {
    pub id: Uuid,
    pub event_type: String,
    /// The payload, JSON unless `content_type` says otherwise.
    pub data: Vec<u8>,
    /// The envelope metadata (actor, times, correlation), JSON.
    pub metadata: Vec<u8>,
    pub content_type: ContentType,
}

/// Where an append landed: the revisions of its first and last events and the global position
/// of its last (what a reader waits for to see all of it). The first event's position is not
/// given: nothing needs it, and EventStoreDB answers an append with the last one only, so it
/// would cost a read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AppendResult {
    pub first_revision: u64,
    pub last_revision: u64,
    pub last_position: Position,
}

/// An event as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordedEvent {
    pub stream: String,
    pub revision: u64,
    pub position: Position,
    pub id: Uuid,
    pub event_type: String,
    pub data: Vec<u8>,
    pub metadata: Vec<u8>,
    pub content_type: ContentType,
    /// When the store committed it (microseconds since the Unix epoch); business time lives in
    /// the metadata.
    pub recorded_at_micros: i64,
}

/// A data subject's key to store with an append: wrapped by the master key.
#[derive(Clone, PartialEq, Eq)]
pub struct NewKey {
    pub subject: Uuid,
    pub wrapped: Vec<u8>,
}

impl fmt::Debug for NewKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NewKey({})", self.subject)
    }
}

/// What a store holds for a data subject's key.
#[derive(Clone, PartialEq, Eq)]
pub enum StoredKey {
    /// The key, wrapped by the master key.
    Present(Vec<u8>),
    /// Destroyed on purpose (the subject was erased): its bytes are gone.
    Destroyed,
    /// No key was ever stored for the subject.
    Absent,
}

impl fmt::Debug for StoredKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            StoredKey::Present(_) => "Present(..)",
            StoredKey::Destroyed => "Destroyed",
            StoredKey::Absent => "Absent",
        })
    }
}

/// What can go wrong talking to an event store.
///
/// ### Handling
/// Each variant's doc says what the caller does.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// Another writer got there first: reload the stream, decide again, retry.
    #[error("wrong expected revision on stream {stream}: expected {expected}, actual {}", match actual { Some(r) => format!("revision {r}"), None => "no stream".to_owned() })]
    WrongExpectedRevision {
        stream: String,
        expected: ExpectedRevision,
        actual: Option<u64>,
    },
    /// Some of the batch's event ids are already recorded and some are new: a client bug.
    #[error("append to stream {stream} mixes already-recorded event ids with new ones (first known: {known})")]
    PartlyDuplicateBatch { stream: String, known: Uuid },
    /// An event id already recorded in another stream: a client bug (ids must be unique).
    #[error("event id {id} is already recorded in stream {other_stream}, not in {stream}")]
    EventIdInOtherStream {
        id: Uuid,
        stream: String,
        other_stream: String,
    },
    /// Fix the name.
    #[error("invalid stream name {name:?}: {reason}")]
    InvalidStreamName { name: String, reason: &'static str },
    /// An append must carry at least one event.
    #[error("an append must carry at least one event")]
    EmptyAppend,
    /// Split the batch.
    #[error("append of {size} bytes exceeds the maximum of {max} bytes")]
    AppendTooLarge { size: usize, max: usize },
    /// The store could not be opened; nothing was changed. Not retryable without a fix.
    #[error("cannot open event store {path}: {reason}")]
    Open { path: String, reason: String },
    /// The store is unreachable or closing; the append may or may not have happened. Retry with
    /// the same event ids (idempotent).
    #[error("event store unavailable: {0}")]
    Unavailable(String),
    /// A key of the append is for a subject that already has another key, or whose key was
    /// destroyed: nothing was written. Read the subject's key and seal again (a destroyed one
    /// means new data about that person starts a new subject).
    #[error("data subject {subject} already has a key, or had one destroyed")]
    SubjectKeyTaken { subject: Uuid },
    /// A bug or corruption; report it.
    #[error("event store internal error: {0}")]
    Internal(String),
}

/// The port every backend implements.
#[async_trait]
pub trait EventStore: Send + Sync + 'static {
    /// Appends `events` to `stream` if `expected` holds; acknowledged only once durable.
    async fn append(
        &self,
        stream: &StreamName,
        expected: ExpectedRevision,
        events: Vec<NewEvent>,
    ) -> Result<AppendResult, StoreError>;

    /// Reads up to `max` events of `stream` from revision `from` on, in order. A stream that
    /// does not exist reads as empty.
    async fn read_stream(
        &self,
        stream: &StreamName,
        from: u64,
        max: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError>;

    /// Reads up to `max` events of the global log with a position greater than `after`.
    async fn read_all(&self, after: Position, max: usize)
        -> Result<Vec<RecordedEvent>, StoreError>;

    /// The position of the last committed event (`Position::START` when empty).
    async fn head(&self) -> Result<Position, StoreError>;

    /// Every event after `after`: first those already committed (catch-up), then each new one
    /// as it commits (live), in log order, with no gap and no duplicate. Ends only on error.
    fn subscribe_all(
        &self,
        after: Position,
    ) -> BoxStream<'static, Result<RecordedEvent, StoreError>>;

    /// [`EventStore::subscribe_all`] for a reader that must not compete with the live work (a
    /// read model rebuilt beside the live one, on a thread of lower priority): a store that
    /// reads on threads of its own starts one for it here, which inherits the calling
    /// thread's CPU priority, instead of reading on a pool shared at the server's. By default
    /// the same as `subscribe_all` (a store across the network spends its CPU elsewhere).
    fn subscribe_all_inheriting_priority(
        &self,
        after: Position,
    ) -> BoxStream<'static, Result<RecordedEvent, StoreError>> {
        self.subscribe_all(after)
    }

    /// [`EventStore::append`], storing `keys` first or in the same transaction, so no event
    /// sealed with a key is ever durable without it. A key its subject already holds (the very
    /// same bytes) is kept; another one, or one for a destroyed subject, refuses the whole
    /// append with [`StoreError::SubjectKeyTaken`].
    async fn append_with_keys(
        &self,
        stream: &StreamName,
        expected: ExpectedRevision,
        events: Vec<NewEvent>,
        keys: Vec<NewKey>,
    ) -> Result<AppendResult, StoreError>;

    /// The key a subject has.
    async fn read_key(&self, subject: Uuid) -> Result<StoredKey, StoreError>;

    /// The keys of several subjects, in their order (a reader catching up needs many).
    async fn read_keys(&self, subjects: &[Uuid]) -> Result<Vec<StoredKey>, StoreError> {
        let mut keys = Vec::with_capacity(subjects.len());
        for subject in subjects {
            keys.push(self.read_key(*subject).await?);
        }
        Ok(keys)
    }

    /// Destroys a subject's key for good, so nothing it sealed opens again: its bytes are
    /// overwritten and removed from every file the store keeps. Destroying a destroyed key,
    /// or one never stored (later keys for the subject are refused), is allowed.
    async fn destroy_key(&self, subject: Uuid) -> Result<(), StoreError>;
}
