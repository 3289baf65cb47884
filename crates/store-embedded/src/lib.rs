//! The embedded event store, the zero-set-up default: one SQLite file in WAL mode with a
//! gap-free global log. One writer thread group-commits concurrent appends (one transaction,
//! one fsync, then every caller is answered); reads run on their own connections on tokio's
//! blocking pool. Live subscriptions follow the writer's head through a watch channel.
//!
//! Not here: anything about leads (the port moves raw envelopes), and multi-process writers
//! (a lock file makes a second process's open fail instead).

pub mod copy;
mod schema;
mod writer;

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use async_trait::async_trait;
use futures::stream::{self, BoxStream, StreamExt};
use rusqlite::{params, Connection, OpenFlags};
use tokio::sync::{oneshot, watch};
use uuid::Uuid;

use leadflow_store::{
    AppendResult, ContentType, EventStore, ExpectedRevision, NewEvent, NewKey, Position,
    RecordedEvent, StoreError, StoredKey, StreamName,
};

pub use schema::{apply_writer_pragmas, APPLICATION_ID, FORMAT_VERSION, SCHEMA};
use writer::{AppendRequest, Request, Writer};

/// The largest append accepted, in bytes of data and metadata (EventStoreDB's default is 1 MiB;
/// imports batch many leads, so allow more).
pub const MAX_APPEND_BYTES: usize = 16 * 1024 * 1024;
/// Events a subscription reads per round trip while catching up.
const SUBSCRIPTION_BATCH: usize = 1024;

/// A handle on one store file; cheap to clone, closes when the last clone is dropped.
#[derive(Clone)]
pub struct EmbeddedStore {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    /// Opened by [`EmbeddedStore::open_reader`]: every connection is read-only.
    read_only: bool,
    sender: Option<Sender<Request>>,
    writer: Option<JoinHandle<()>>,
    head: watch::Receiver<Position>,
    readers: Mutex<Vec<Connection>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Closing the channel ends the writer once it has answered what is queued; joining it
        // releases the file lock before a reopen.
        self.sender.take();
        if let Some(writer) = self.writer.take() {
            let _ = writer.join();
        }
    }
}

impl EmbeddedStore {
    /// Opens (creating if needed) the store at `path`. Fails with [`StoreError::Open`] for a
    /// foreign or corrupt file, a file of a newer format, or a store another process has open.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        let path = path.as_ref().to_path_buf();
        let shown = path.display().to_string();
        let open_err = |reason: String| StoreError::Open {
            path: shown.clone(),
            reason,
        };
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent)
                .map_err(|e| open_err(format!("cannot create its directory: {e}")))?;
        }
        let lock = lock_file(&path).map_err(open_err)?;
        let conn = Connection::open(&path).map_err(|e| open_err(schema::describe(&e)))?;
        schema::check_or_create(&conn, &shown)?;
        apply_writer_pragmas(&conn).map_err(|e| open_err(schema::describe(&e)))?;
        let head: i64 = conn
            .query_row("SELECT coalesce(max(position), 0) FROM events", [], |r| {
                r.get(0)
            })
            .map_err(|e| open_err(schema::describe(&e)))?;
        let (head_tx, head_rx) = watch::channel(Position(head as u64));
        let (sender, receiver) = std::sync::mpsc::channel();
        let writer = Writer::new(conn, head as u64, head_tx);
        let handle = std::thread::Builder::new()
            .name("leadflow-store-writer".to_owned())
            .spawn(move || {
                let _lock = lock;
                writer.run(receiver);
            })
            .map_err(|e| open_err(format!("cannot start the writer thread: {e}")))?;
        Ok(Self {
            inner: Arc::new(Inner {
                path,
                read_only: false,
                sender: Some(sender),
                writer: Some(handle),
                head: head_rx,
                readers: Mutex::new(Vec::new()),
            }),
        })
    }

    /// Opens the store at `path` to read it beside the process that has it open (WAL readers
    /// never block its writer): the CLI reads the catalog this way while `serve` runs. Appends
    /// are refused and subscriptions see no new events.
    pub fn open_reader(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        let path = path.as_ref().to_path_buf();
        let open_err = |reason: String| StoreError::Open {
            path: path.display().to_string(),
            reason,
        };
        if !path.is_file() {
            return Err(open_err("there is no store file".to_owned()));
        }
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(&path, flags)
            .map_err(|e| open_err(schema::describe(&e)))?;
        let head: i64 = conn
            .query_row("SELECT coalesce(max(position), 0) FROM events", [], |r| {
                r.get(0)
            })
            .map_err(|e| open_err(schema::describe(&e)))?;
        schema::apply_reader_pragmas(&conn).map_err(|e| open_err(schema::describe(&e)))?;
        let (_, head_rx) = watch::channel(Position(head as u64));
        Ok(Self {
            inner: Arc::new(Inner {
                path,
                read_only: true,
                sender: None,
                writer: None,
                head: head_rx,
                readers: Mutex::new(vec![conn]),
            }),
        })
    }

    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// The head of the log as it moves (for live readers beside [`EventStore::subscribe_all`]).
    pub fn watch_head(&self) -> watch::Receiver<Position> {
        self.inner.head.clone()
    }

    /// Up to `max` events of `stream`, newest first, from revision `from` (inclusive; `None`:
    /// the last event) down.
    pub async fn read_stream_backwards(
        &self,
        stream: &str,
        from: Option<u64>,
        max: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let name = stream.to_owned();
        let from = from.map_or(i64::MAX, |r| i64::try_from(r).unwrap_or(i64::MAX));
        self.read(move |conn| {
            let mut stmt = conn.prepare_cached(&format!(
                "SELECT {EVENT_COLUMNS} FROM events e JOIN streams s ON s.id = e.stream_id
                 WHERE s.name = ?1 AND e.revision <= ?2 ORDER BY e.revision DESC LIMIT {}",
                limit(max)
            ))?;
            let rows = stmt.query_map(params![name, from], row_to_event)?;
            rows.collect()
        })
        .await
    }

    /// The names of the streams that start with `prefix`, read now (an index range).
    pub fn stream_names_with_prefix(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        let mut upper = prefix.as_bytes().to_vec();
        let Some(last) = upper.pop() else {
            return Err(StoreError::Internal(
                "an empty prefix names every stream".to_owned(),
            ));
        };
        upper.push(last + 1);
        let upper = String::from_utf8(upper)
            .map_err(|_| StoreError::Internal(format!("prefix {prefix:?} must end in ASCII")))?;
        let prefix = prefix.to_owned();
        self.inner.with_reader(move |conn| {
            conn.prepare_cached("SELECT name FROM streams WHERE name >= ?1 AND name < ?2")?
                .query_map(params![prefix, upper], |r| r.get(0))?
                .collect()
        })
    }

    /// The last event of each of `streams` (`None` for one that holds none), read on one
    /// connection: what `leadflow node` checks before an append (a stream and its
    /// metastream). Two index lookups take microseconds, less than a trip to the blocking
    /// pool and back, so they run on the calling task.
    pub fn last_events(&self, streams: &[&str]) -> Result<Vec<Option<RecordedEvent>>, StoreError> {
        self.inner.with_reader(|conn| {
            let mut stmt = conn.prepare_cached(&format!(
                "SELECT {EVENT_COLUMNS} FROM events e JOIN streams s ON s.id = e.stream_id
                 WHERE s.name = ?1 ORDER BY e.revision DESC LIMIT 1"
            ))?;
            streams
                .iter()
                .map(|name| {
                    stmt.query_map(params![name], row_to_event)?
                        .next()
                        .transpose()
                })
                .collect()
        })
    }

    /// Up to `max` events of the global log, newest first, before position `before`
    /// (exclusive; `None`: from the head down).
    pub async fn read_all_backwards(
        &self,
        before: Option<Position>,
        max: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let before = before.map_or(i64::MAX, |p| i64::try_from(p.0).unwrap_or(i64::MAX));
        self.read(move |conn| {
            let mut stmt = conn.prepare_cached(&format!(
                "SELECT {EVENT_COLUMNS} FROM events e JOIN streams s ON s.id = e.stream_id
                 WHERE e.position < ?1 ORDER BY e.position DESC LIMIT {}",
                limit(max)
            ))?;
            let rows = stmt.query_map(params![before], row_to_event)?;
            rows.collect()
        })
        .await
    }

    fn send(&self, request: Request) -> Result<(), StoreError> {
        let sender = self.inner.sender.as_ref().ok_or_else(|| {
            StoreError::Unavailable("the store is closing or open for reading only".to_owned())
        })?;
        sender
            .send(request)
            .map_err(|_| StoreError::Unavailable("the writer has stopped".to_owned()))
    }

    /// Stores a subject's key with no event (for the node's key streams, which a remote writer
    /// fills before the events the key seals): kept if the subject holds the very same one,
    /// else [`StoreError::SubjectKeyTaken`].
    pub async fn put_key(&self, key: NewKey) -> Result<(), StoreError> {
        let (reply, answer) = oneshot::channel();
        self.send(Request::PutKey { key, reply })?;
        answer.await.map_err(|_| {
            StoreError::Unavailable("the writer stopped before answering".to_owned())
        })?
    }

    /// Runs `f` on a pooled read connection on the blocking pool.
    async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, StoreError> {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || inner.with_reader(f))
            .await
            .map_err(|e| StoreError::Internal(format!("read task failed: {e}")))?
    }
}

impl Inner {
    fn with_reader<T>(
        &self,
        f: impl FnOnce(&Connection) -> rusqlite::Result<T>,
    ) -> Result<T, StoreError> {
        let pooled = self
            .readers
            .lock()
            .map_err(|_| StoreError::Internal("reader pool poisoned".to_owned()))?
            .pop();
        let conn = match pooled {
            Some(conn) => conn,
            None => {
                let access = if self.read_only {
                    OpenFlags::SQLITE_OPEN_READ_ONLY
                } else {
                    OpenFlags::SQLITE_OPEN_READ_WRITE
                };
                let flags = access | OpenFlags::SQLITE_OPEN_NO_MUTEX;
                let conn = Connection::open_with_flags(&self.path, flags).map_err(internal)?;
                schema::apply_reader_pragmas(&conn).map_err(internal)?;
                conn
            }
        };
        let result = f(&conn).map_err(internal);
        if let Ok(mut pool) = self.readers.lock() {
            pool.push(conn);
        }
        result
    }
}

fn internal(e: rusqlite::Error) -> StoreError {
    StoreError::Internal(schema::describe(&e))
}

/// Takes an exclusive lock on `<path>.lock` for the writer's lifetime.
fn lock_file(path: &Path) -> Result<File, String> {
    let mut lock_path = path.as_os_str().to_owned();
    lock_path.push(".lock");
    let file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(|e| format!("cannot create the lock file: {e}"))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => {
            Err("the store is already open in another process".to_owned())
        }
        Err(std::fs::TryLockError::Error(e)) => Err(format!("cannot lock the store: {e}")),
    }
}

const EVENT_COLUMNS: &str = "s.name, e.revision, e.position, e.event_id, e.event_type, e.data, e.metadata, e.recorded_at, e.is_binary";

fn row_to_event(r: &rusqlite::Row<'_>) -> rusqlite::Result<RecordedEvent> {
    // Read in place: a catch-up reads millions of rows, and a copy of each id was one more
    // allocation per event.
    let id = r.get_ref(3)?.as_blob().map_err(rusqlite::Error::from)?;
    Ok(RecordedEvent {
        stream: r.get(0)?,
        revision: r.get::<_, i64>(1)? as u64,
        position: Position(r.get::<_, i64>(2)? as u64),
        id: Uuid::from_slice(id).map_err(|e| {
            rusqlite::Error::FromSqlConversionFailure(3, rusqlite::types::Type::Blob, Box::new(e))
        })?,
        event_type: r.get(4)?,
        data: r.get(5)?,
        metadata: r.get(6)?,
        content_type: if r.get::<_, bool>(8)? {
            ContentType::Binary
        } else {
            ContentType::Json
        },
        recorded_at_micros: r.get(7)?,
    })
}

/// A `LIMIT` as SQL text. It is written into the statement, never bound: SQLite's planner
/// reads a bound `LIMIT` of an `ORDER BY` query, which marks the statement to be compiled
/// again at every new binding, so a cached statement was parsed and planned anew on every
/// call (a quarter of the CPU of commands through `leadflow node`). The few distinct limits
/// each keep their own cached statement.
pub(crate) fn limit(max: usize) -> i64 {
    i64::try_from(max).unwrap_or(i64::MAX)
}

fn read_all_sync(
    conn: &Connection,
    after: Position,
    max: usize,
) -> rusqlite::Result<Vec<RecordedEvent>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {EVENT_COLUMNS} FROM events e JOIN streams s ON s.id = e.stream_id
         WHERE e.position > ?1 ORDER BY e.position LIMIT {}",
        limit(max)
    ))?;
    let rows = stmt.query_map(params![after.0 as i64], row_to_event)?;
    // A rebuild's reads give the CPU up at short intervals (see `pace`).
    rows.inspect(|_| leadflow_store::pace::tick()).collect()
}

#[async_trait]
impl EventStore for EmbeddedStore {
    async fn append(
        &self,
        stream: &StreamName,
        expected: ExpectedRevision,
        events: Vec<NewEvent>,
    ) -> Result<AppendResult, StoreError> {
        self.append_with_keys(stream, expected, events, Vec::new())
            .await
    }

    async fn append_with_keys(
        &self,
        stream: &StreamName,
        expected: ExpectedRevision,
        events: Vec<NewEvent>,
        keys: Vec<NewKey>,
    ) -> Result<AppendResult, StoreError> {
        if events.is_empty() {
            return Err(StoreError::EmptyAppend);
        }
        let size: usize = events
            .iter()
            .map(|e| e.data.len() + e.metadata.len() + e.event_type.len())
            .sum();
        if size > MAX_APPEND_BYTES {
            return Err(StoreError::AppendTooLarge {
                size,
                max: MAX_APPEND_BYTES,
            });
        }
        let (reply, answer) = oneshot::channel();
        self.send(Request::Append(AppendRequest {
            stream: stream.clone(),
            expected,
            events,
            keys,
            reply,
        }))?;
        answer.await.map_err(|_| {
            StoreError::Unavailable("the writer stopped before answering".to_owned())
        })?
    }

    async fn read_key(&self, subject: Uuid) -> Result<StoredKey, StoreError> {
        let mut keys = self.read_keys(&[subject]).await?;
        Ok(keys.pop().unwrap_or(StoredKey::Absent))
    }

    async fn read_keys(&self, subjects: &[Uuid]) -> Result<Vec<StoredKey>, StoreError> {
        let subjects = subjects.to_vec();
        self.read(move |conn| {
            let mut found = std::collections::HashMap::with_capacity(subjects.len());
            for chunk in subjects.chunks(500) {
                let marks = vec!["?"; chunk.len()].join(",");
                let mut stmt = conn.prepare(&format!(
                    "SELECT subject, wrapped FROM subject_keys WHERE subject IN ({marks})"
                ))?;
                let ids: Vec<&[u8]> = chunk.iter().map(|s| s.as_bytes().as_slice()).collect();
                let rows = stmt.query_map(rusqlite::params_from_iter(ids), |r| {
                    Ok((r.get::<_, Vec<u8>>(0)?, r.get::<_, Option<Vec<u8>>>(1)?))
                })?;
                for row in rows {
                    let (subject, wrapped) = row?;
                    found.insert(subject, wrapped);
                }
            }
            Ok(subjects
                .iter()
                .map(|s| match found.get(s.as_bytes().as_slice()) {
                    None => StoredKey::Absent,
                    Some(None) => StoredKey::Destroyed,
                    Some(Some(wrapped)) => StoredKey::Present(wrapped.clone()),
                })
                .collect())
        })
        .await
    }

    async fn destroy_key(&self, subject: Uuid) -> Result<(), StoreError> {
        let (reply, answer) = oneshot::channel();
        self.send(Request::DestroyKey { subject, reply })?;
        answer.await.map_err(|_| {
            StoreError::Unavailable("the writer stopped before answering".to_owned())
        })?
    }

    async fn read_stream(
        &self,
        stream: &StreamName,
        from: u64,
        max: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let name = stream.as_str().to_owned();
        self.read(move |conn| {
            let mut stmt = conn.prepare_cached(&format!(
                "SELECT {EVENT_COLUMNS} FROM events e JOIN streams s ON s.id = e.stream_id
                 WHERE s.name = ?1 AND e.revision >= ?2 ORDER BY e.revision LIMIT {}",
                limit(max)
            ))?;
            let rows = stmt.query_map(
                params![name, i64::try_from(from).unwrap_or(i64::MAX)],
                row_to_event,
            )?;
            rows.collect()
        })
        .await
    }

    async fn read_all(
        &self,
        after: Position,
        max: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        self.read(move |conn| read_all_sync(conn, after, max)).await
    }

    async fn head(&self) -> Result<Position, StoreError> {
        Ok(*self.inner.head.borrow())
    }

    fn subscribe_all(
        &self,
        after: Position,
    ) -> BoxStream<'static, Result<RecordedEvent, StoreError>> {
        self.subscription(after, None)
    }

    /// The subscription's reads go to a thread started here, which inherits the caller's
    /// priority (a thread's nice value passes to the threads it starts), and ends with the
    /// subscription.
    fn subscribe_all_inheriting_priority(
        &self,
        after: Position,
    ) -> BoxStream<'static, Result<RecordedEvent, StoreError>> {
        let (ask, asked) = std::sync::mpsc::channel::<ReadAsked>();
        let inner = self.inner.clone();
        let started = std::thread::Builder::new()
            .name("log-reader".to_owned())
            .spawn(move || {
                for (after, reply) in asked {
                    let batch = inner
                        .with_reader(move |conn| read_all_sync(conn, after, SUBSCRIPTION_BATCH));
                    let _ = reply.send(batch);
                }
            });
        match started {
            Ok(_) => self.subscription(after, Some(ask)),
            Err(e) => {
                tracing::debug!(error = %e, "no thread for a subscription's reads: the pool reads");
                self.subscription(after, None)
            }
        }
    }
}

/// A read of the log's next batch after a position, asked of a subscription's own reader
/// thread, and where its answer goes.
type ReadAsked = (
    Position,
    oneshot::Sender<Result<Vec<RecordedEvent>, StoreError>>,
);

impl EmbeddedStore {
    /// The log after `after`, read on the blocking pool, or by the thread `reader` asks.
    fn subscription(
        &self,
        after: Position,
        reader: Option<std::sync::mpsc::Sender<ReadAsked>>,
    ) -> BoxStream<'static, Result<RecordedEvent, StoreError>> {
        struct State {
            store: EmbeddedStore,
            head: watch::Receiver<Position>,
            after: Position,
            buffer: std::collections::VecDeque<RecordedEvent>,
            failed: bool,
            reader: Option<std::sync::mpsc::Sender<ReadAsked>>,
        }
        let state = State {
            store: self.clone(),
            head: self.inner.head.clone(),
            after,
            buffer: Default::default(),
            failed: false,
            reader,
        };
        stream::unfold(state, |mut st| async move {
            loop {
                if st.failed {
                    return None;
                }
                if let Some(event) = st.buffer.pop_front() {
                    st.after = event.position;
                    return Some((Ok(event), st));
                }
                // Wait until the writer's head passes what we have seen (the live part).
                while *st.head.borrow_and_update() <= st.after {
                    if st.head.changed().await.is_err() {
                        return None;
                    }
                }
                let after = st.after;
                let read = match &st.reader {
                    Some(reader) => {
                        let (reply, answer) = oneshot::channel();
                        let gone = || StoreError::Internal("the log reader stopped".to_owned());
                        match reader.send((after, reply)) {
                            Ok(()) => answer.await.unwrap_or_else(|_| Err(gone())),
                            Err(_) => Err(gone()),
                        }
                    }
                    None => {
                        st.store
                            .read(move |conn| read_all_sync(conn, after, SUBSCRIPTION_BATCH))
                            .await
                    }
                };
                match read {
                    Ok(batch) => st.buffer.extend(batch),
                    Err(e) => {
                        st.failed = true;
                        return Some((Err(e), st));
                    }
                }
            }
        })
        .boxed()
    }
}
