//! The single writer thread and its group commit. Appends queue on a channel; the thread takes
//! every queued append (up to a bound), runs them in one transaction, each under its own
//! savepoint so one refused append does not undo the others, commits with one fsync, and only
//! then answers each caller. Positions are assigned here, in commit order, so the global log is
//! gap-free and readers (on their own connections, under WAL) never see a hole.

use std::collections::HashMap;
use std::sync::mpsc::{Receiver, TryRecvError};
use std::time::{SystemTime, UNIX_EPOCH};

use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use tokio::sync::{oneshot, watch};
use uuid::Uuid;

use leadflow_store::{
    AppendResult, ExpectedRevision, NewEvent, NewKey, Position, StoreError, StreamName,
};

use crate::schema::describe;

/// At most this many appends share a transaction.
const MAX_GROUP_APPENDS: usize = 1024;
/// ... and at most this many events, to bound one commit's latency.
const MAX_GROUP_EVENTS: usize = 8192;
/// The writer remembers this many streams' ids and revisions before starting over.
const STREAM_CACHE_CAPACITY: usize = 250_000;

pub struct AppendRequest {
    pub stream: StreamName,
    pub expected: ExpectedRevision,
    pub events: Vec<NewEvent>,
    /// Stored in the same transaction as the events (issue 20).
    pub keys: Vec<NewKey>,
    pub reply: oneshot::Sender<Result<AppendResult, StoreError>>,
}

/// What the writer thread is asked to do.
pub enum Request {
    Append(AppendRequest),
    /// Store a subject's key with no event (the node's key streams): refused like an append's.
    PutKey {
        key: NewKey,
        reply: oneshot::Sender<Result<(), StoreError>>,
    },
    /// Destroy a subject's key: its bytes overwritten (`secure_delete`), then the WAL
    /// checkpointed and truncated so no older copy of the page stays in it.
    DestroyKey {
        subject: Uuid,
        reply: oneshot::Sender<Result<(), StoreError>>,
    },
}

/// A stream as the writer knows it: its row id (None before its first event) and last revision.
#[derive(Clone, Copy, Debug)]
struct StreamState {
    id: Option<i64>,
    last: Option<u64>,
}

pub struct Writer {
    conn: Connection,
    head: u64,
    streams: HashMap<String, StreamState>,
    head_tx: watch::Sender<Position>,
}

impl Writer {
    pub fn new(conn: Connection, head: u64, head_tx: watch::Sender<Position>) -> Self {
        Self {
            conn,
            head,
            streams: HashMap::new(),
            head_tx,
        }
    }

    /// Runs until every sender is gone, then returns (closing the connection).
    pub fn run(mut self, rx: Receiver<Request>) {
        let mut waiting = None;
        loop {
            let first = match waiting.take() {
                Some(request) => request,
                None => match rx.recv() {
                    Ok(request) => request,
                    Err(_) => return,
                },
            };
            let first = match first {
                Request::Append(append) => append,
                Request::DestroyKey { subject, reply } => {
                    let _ = reply.send(self.destroy_key(subject));
                    continue;
                }
                Request::PutKey { key, reply } => {
                    let _ = reply.send(self.put_key(&key));
                    continue;
                }
            };
            let mut events = first.events.len();
            let mut group = vec![first];
            while group.len() < MAX_GROUP_APPENDS && events < MAX_GROUP_EVENTS {
                match rx.try_recv() {
                    Ok(Request::Append(next)) => {
                        events += next.events.len();
                        group.push(next);
                    }
                    Ok(other) => {
                        waiting = Some(other);
                        break;
                    }
                    Err(TryRecvError::Empty | TryRecvError::Disconnected) => break,
                }
            }
            // What `/metrics` shows of group commit: appends and events per transaction.
            metrics::histogram!("leadflow_append_group_appends").record(group.len() as f64);
            metrics::histogram!("leadflow_append_group_events").record(events as f64);
            let results = self.commit_group(&group);
            for (request, result) in group.into_iter().zip(results) {
                // The caller may have gone away (timeout, cancelled task); the append stands.
                let _ = request.reply.send(result);
            }
        }
    }

    fn put_key(&mut self, key: &NewKey) -> Result<(), StoreError> {
        let failed = |e: rusqlite::Error| StoreError::Internal(describe(&e));
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(failed)?;
        match store_keys(&tx, "", std::slice::from_ref(key)) {
            Ok(()) => tx.commit().map_err(failed),
            Err(AppendError::Refused(e)) => Err(e),
            Err(AppendError::Sqlite(e)) => Err(failed(e)),
        }
    }

    fn destroy_key(&mut self, subject: Uuid) -> Result<(), StoreError> {
        let destroyed_at = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_micros() as i64)
            .unwrap_or(0);
        let failed = |e: rusqlite::Error| {
            tracing::error!(error = %describe(&e), "destroying a subject's key failed");
            StoreError::Unavailable(format!("destroying a key failed: {}", describe(&e)))
        };
        self.conn
            .execute(
                "INSERT INTO subject_keys(subject, wrapped, destroyed_at) VALUES (?1, NULL, ?2)
                 ON CONFLICT(subject) DO UPDATE SET wrapped = NULL,
                     destroyed_at = coalesce(destroyed_at, excluded.destroyed_at)",
                params![subject.as_bytes().as_slice(), destroyed_at],
            )
            .map_err(failed)?;
        // The key's old page lives on in the WAL until a checkpoint copies the overwritten
        // page back and the log is truncated. Readers on older snapshots can hold the
        // checkpoint back: wait for them (they are short), a few times.
        for attempt in 0..50 {
            let (busy, _, _): (i64, i64, i64) = self
                .conn
                .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?))
                })
                .map_err(failed)?;
            if busy == 0 {
                return Ok(());
            }
            std::thread::sleep(std::time::Duration::from_millis(10 * (attempt + 1)));
        }
        Err(StoreError::Unavailable(
            "the key is destroyed, but readers kept the log from being truncated; retry".to_owned(),
        ))
    }

    fn commit_group(&mut self, group: &[AppendRequest]) -> Vec<Result<AppendResult, StoreError>> {
        match self.try_commit_group(group) {
            Ok(results) => results,
            Err(e) => {
                // Nothing of the group is durable; forget what the cache learnt from it.
                self.streams.clear();
                tracing::error!(error = %describe(&e), appends = group.len(), "group commit failed");
                let reason = format!("commit failed: {}", describe(&e));
                group
                    .iter()
                    .map(|_| Err(StoreError::Unavailable(reason.clone())))
                    .collect()
            }
        }
    }

    fn try_commit_group(
        &mut self,
        group: &[AppendRequest],
    ) -> rusqlite::Result<Vec<Result<AppendResult, StoreError>>> {
        let recorded_at = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_micros() as i64)
            .unwrap_or(0);
        let mut tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let mut head = self.head;
        let mut staged: HashMap<String, StreamState> = HashMap::new();
        let mut results = Vec::with_capacity(group.len());
        for request in group {
            let sp = tx.savepoint()?;
            let known = staged
                .get(request.stream.as_str())
                .or_else(|| self.streams.get(request.stream.as_str()))
                .copied();
            match append_one(&sp, request, known, head, recorded_at) {
                Ok((result, state)) => {
                    sp.commit()?;
                    head = head.max(result.last_position.0);
                    staged.insert(request.stream.as_str().to_owned(), state);
                    results.push(Ok(result));
                }
                Err(AppendError::Refused(e)) => {
                    drop(sp);
                    results.push(Err(e));
                }
                Err(AppendError::Sqlite(e)) => {
                    drop(sp);
                    tracing::warn!(stream = %request.stream, error = %describe(&e), "append failed");
                    results.push(Err(StoreError::Internal(describe(&e))));
                }
            }
        }
        tx.commit()?;
        if self.streams.len() + staged.len() > STREAM_CACHE_CAPACITY {
            self.streams.clear();
        }
        self.streams.extend(staged);
        if head != self.head {
            self.head = head;
            self.head_tx.send_replace(Position(head));
        }
        Ok(results)
    }
}

enum AppendError {
    Refused(StoreError),
    Sqlite(rusqlite::Error),
}

impl From<rusqlite::Error> for AppendError {
    fn from(e: rusqlite::Error) -> Self {
        Self::Sqlite(e)
    }
}

fn append_one(
    conn: &Connection,
    request: &AppendRequest,
    known: Option<StreamState>,
    head: u64,
    recorded_at: i64,
) -> Result<(AppendResult, StreamState), AppendError> {
    let stream = request.stream.as_str();
    let refused = |e| Err(AppendError::Refused(e));

    let state = match known {
        Some(state) => state,
        None => load_stream(conn, stream)?,
    };
    // Idempotency: if the first id is recorded in this stream, the whole batch must be the
    // same events, and the answer is the original result.
    if let Some(stream_id) = state.id {
        if let Some(revision) = find_event(conn, stream_id, request.events[0].id)? {
            return match same_events(conn, stream_id, revision, &request.events)? {
                Some(result) => Ok((result, state)),
                None => refused(StoreError::PartlyDuplicateBatch {
                    stream: stream.to_owned(),
                    known: request.events[0].id,
                }),
            };
        }
    }
    let ok = match request.expected {
        ExpectedRevision::Any => true,
        ExpectedRevision::NoStream => state.last.is_none(),
        ExpectedRevision::StreamExists => state.last.is_some(),
        ExpectedRevision::Exact(r) => state.last == Some(r),
    };
    if !ok {
        return refused(StoreError::WrongExpectedRevision {
            stream: stream.to_owned(),
            expected: request.expected,
            actual: state.last,
        });
    }
    let stream_id = match state.id {
        Some(id) => id,
        None => {
            conn.prepare_cached("INSERT INTO streams(name) VALUES (?1)")?
                .execute([stream])?;
            conn.last_insert_rowid()
        }
    };
    store_keys(conn, stream, &request.keys)?;
    let first_revision = state.last.map_or(0, |r| r + 1);
    let mut insert = conn.prepare_cached(
        "INSERT INTO events(position, stream_id, revision, event_id, event_type, data, metadata, recorded_at, is_binary)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    )?;
    for (i, event) in request.events.iter().enumerate() {
        let inserted = insert.execute(params![
            (head + 1 + i as u64) as i64,
            stream_id,
            (first_revision + i as u64) as i64,
            event.id.as_bytes().as_slice(),
            event.event_type,
            event.data,
            event.metadata,
            recorded_at,
            event.content_type == leadflow_store::ContentType::Binary,
        ]);
        if let Err(e) = inserted {
            if e.sqlite_error_code() == Some(rusqlite::ErrorCode::ConstraintViolation) {
                // A later id of the batch is already recorded (or repeated within the batch).
                return refused(StoreError::PartlyDuplicateBatch {
                    stream: stream.to_owned(),
                    known: event.id,
                });
            }
            return Err(e.into());
        }
    }
    let n = request.events.len() as u64;
    let result = AppendResult {
        first_revision,
        last_revision: first_revision + n - 1,
        last_position: Position(head + n),
    };
    Ok((
        result,
        StreamState {
            id: Some(stream_id),
            last: Some(first_revision + n - 1),
        },
    ))
}

/// Stores each key unless its subject holds the very same one; any other key, or a destroyed
/// one, refuses the append.
fn store_keys(conn: &Connection, stream: &str, keys: &[NewKey]) -> Result<(), AppendError> {
    for key in keys {
        let subject = key.subject.as_bytes().as_slice();
        let inserted = conn
            .prepare_cached(
                "INSERT INTO subject_keys(subject, wrapped) VALUES (?1, ?2) ON CONFLICT DO NOTHING",
            )?
            .execute(params![subject, key.wrapped])?;
        if inserted == 1 {
            continue;
        }
        let held: Option<Vec<u8>> = conn
            .prepare_cached("SELECT wrapped FROM subject_keys WHERE subject = ?1")?
            .query_row([subject], |r| r.get(0))?;
        if held.as_deref() != Some(key.wrapped.as_slice()) {
            tracing::debug!(%stream, subject = %key.subject, "append refused: the subject's key is taken");
            return Err(AppendError::Refused(StoreError::SubjectKeyTaken {
                subject: key.subject,
            }));
        }
    }
    Ok(())
}

fn find_event(conn: &Connection, stream_id: i64, id: Uuid) -> rusqlite::Result<Option<u64>> {
    conn.prepare_cached("SELECT revision FROM events WHERE stream_id = ?1 AND event_id = ?2")?
        .query_row(params![stream_id, id.as_bytes().as_slice()], |r| {
            r.get::<_, i64>(0)
        })
        .optional()
        .map(|r| r.map(|v| v as u64))
}

/// The original result if `events` are exactly the recorded events from `revision` on.
fn same_events(
    conn: &Connection,
    stream_id: i64,
    revision: u64,
    events: &[NewEvent],
) -> rusqlite::Result<Option<AppendResult>> {
    // The limit is written in, not bound (see `crate::limit`).
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT event_id, position FROM events WHERE stream_id = ?1 AND revision >= ?2 ORDER BY revision LIMIT {}",
        events.len()
    ))?;
    let rows = stmt
        .query_map(params![stream_id, revision as i64], |r| {
            Ok((r.get::<_, Vec<u8>>(0)?, r.get::<_, i64>(1)? as u64))
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let same = rows.len() == events.len()
        && rows
            .iter()
            .zip(events)
            .all(|((id, _), e)| id.as_slice() == e.id.as_bytes());
    Ok(same.then(|| AppendResult {
        first_revision: revision,
        last_revision: revision + events.len() as u64 - 1,
        last_position: Position(rows[rows.len() - 1].1),
    }))
}

fn load_stream(conn: &Connection, stream: &str) -> rusqlite::Result<StreamState> {
    let id: Option<i64> = conn
        .prepare_cached("SELECT id FROM streams WHERE name = ?1")?
        .query_row([stream], |r| r.get(0))
        .optional()?;
    match id {
        None => Ok(StreamState {
            id: None,
            last: None,
        }),
        Some(id) => Ok(StreamState {
            id: Some(id),
            last: last_revision(conn, id)?,
        }),
    }
}

fn last_revision(conn: &Connection, stream_id: i64) -> rusqlite::Result<Option<u64>> {
    conn.prepare_cached("SELECT max(revision) FROM events WHERE stream_id = ?1")?
        .query_row([stream_id], |r| r.get::<_, Option<i64>>(0))
        .map(|r| r.map(|v| v as u64))
}
