//! A store file copied into a new one event by event, each event rewritten on the way by the
//! caller (`leadflow privacy migrate` seals personal fields written before sealing), and the
//! new file swapped in for the old.
//!
//! The copy keeps what a reader can see of the log: every event at its own position, in its
//! stream at its revision, with its id, type, recording time and content type; the streams'
//! table and the keys' table come over as they are. Only the payload and the metadata are the
//! caller's. The old file is locked for the whole copy, so no writer appends behind its back.

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};

use rusqlite::{params, Connection};
use uuid::Uuid;

use leadflow_store::{ContentType, NewKey, Position, RecordedEvent, StoreError};

use crate::{internal, limit, lock_file, row_to_event, schema, EVENT_COLUMNS};

/// A copy under way: the old file attached read-only to the new one.
pub struct StoreCopy {
    conn: Connection,
    streams: HashMap<String, i64>,
    after: Position,
    target: PathBuf,
    _locks: (File, File),
}

impl StoreCopy {
    /// Starts copying the store at `from` into a new store at `to`, which must not exist. No
    /// other process may have `from` open.
    pub fn start(from: &Path, to: &Path) -> Result<Self, StoreError> {
        let open_err = |path: &Path, reason: String| StoreError::Open {
            path: path.display().to_string(),
            reason,
        };
        if !from.is_file() {
            return Err(open_err(from, "there is no store file".to_owned()));
        }
        if to.exists() {
            return Err(open_err(to, "the copy's file exists already".to_owned()));
        }
        let from_lock = lock_file(from).map_err(|e| open_err(from, e))?;
        let to_lock = lock_file(to).map_err(|e| open_err(to, e))?;
        // The old file as a store, checked (and its WAL, if any, replayed) first.
        {
            let old = Connection::open(from).map_err(|e| open_err(from, schema::describe(&e)))?;
            schema::check_or_create(&old, &from.display().to_string())?;
        }
        let conn = Connection::open(to).map_err(|e| open_err(to, schema::describe(&e)))?;
        schema::check_or_create(&conn, &to.display().to_string())?;
        schema::apply_writer_pragmas(&conn).map_err(|e| open_err(to, schema::describe(&e)))?;
        // One fsync per batch is plenty for a copy that is verified before it is used.
        conn.execute_batch("PRAGMA synchronous=NORMAL")
            .map_err(internal)?;
        conn.execute("ATTACH DATABASE ?1 AS old", [from.display().to_string()])
            .map_err(internal)?;
        conn.execute_batch(
            "BEGIN;
             INSERT INTO streams(id, name) SELECT id, name FROM old.streams;
             INSERT INTO subject_keys(subject, wrapped, destroyed_at)
                 SELECT subject, wrapped, destroyed_at FROM old.subject_keys;
             COMMIT;",
        )
        .map_err(internal)?;
        let streams = {
            let mut stmt = conn
                .prepare("SELECT name, id FROM streams")
                .map_err(internal)?;
            let rows = stmt
                .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))
                .map_err(internal)?;
            rows.collect::<rusqlite::Result<HashMap<_, _>>>()
                .map_err(internal)?
        };
        Ok(Self {
            conn,
            streams,
            after: Position::START,
            target: to.to_path_buf(),
            _locks: (from_lock, to_lock),
        })
    }

    /// The old file's next events after the last batch read, up to `max`; none at the end.
    pub fn next(&mut self, max: usize) -> Result<Vec<RecordedEvent>, StoreError> {
        let events = read_all_sync_from(&self.conn, self.after, max).map_err(internal)?;
        if let Some(last) = events.last() {
            self.after = last.position;
        }
        Ok(events)
    }

    /// Writes `events` to the new file as they are (each at its position, in its stream at
    /// its revision) with `keys`, in one transaction.
    pub fn write(&mut self, events: &[RecordedEvent], keys: &[NewKey]) -> Result<(), StoreError> {
        let tx = self.conn.transaction().map_err(internal)?;
        {
            let mut insert = tx
                .prepare_cached(
                    "INSERT INTO events(position, stream_id, revision, event_id, event_type, data,
                         metadata, recorded_at, is_binary)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                )
                .map_err(internal)?;
            for e in events {
                let stream = self.streams.get(&e.stream).ok_or_else(|| {
                    StoreError::Internal(format!("stream {} is not in the streams table", e.stream))
                })?;
                insert
                    .execute(params![
                        e.position.0 as i64,
                        stream,
                        e.revision as i64,
                        e.id.as_bytes().as_slice(),
                        e.event_type,
                        e.data,
                        e.metadata,
                        e.recorded_at_micros,
                        e.content_type == ContentType::Binary,
                    ])
                    .map_err(internal)?;
            }
            let mut put = tx
                .prepare_cached("INSERT INTO subject_keys(subject, wrapped) VALUES (?1, ?2)")
                .map_err(internal)?;
            for key in keys {
                put.execute(params![key.subject.as_bytes().as_slice(), key.wrapped])
                    .map_err(|_| StoreError::SubjectKeyTaken {
                        subject: key.subject,
                    })?;
            }
        }
        tx.commit().map_err(internal)
    }

    /// Marks `subjects`' keys in the new file destroyed (the log erased them before their data
    /// was sealed).
    pub fn destroy_keys(&mut self, subjects: &[Uuid], at_micros: i64) -> Result<(), StoreError> {
        let tx = self.conn.transaction().map_err(internal)?;
        {
            let mut destroy = tx
                .prepare_cached(
                    "UPDATE subject_keys SET wrapped = NULL, destroyed_at = ?2 WHERE subject = ?1",
                )
                .map_err(internal)?;
            for subject in subjects {
                destroy
                    .execute(params![subject.as_bytes().as_slice(), at_micros])
                    .map_err(internal)?;
            }
        }
        tx.commit().map_err(internal)
    }

    /// Ends the copy: the new file fsynced, its WAL folded in and removed. Returns its path.
    pub fn finish(self) -> Result<PathBuf, StoreError> {
        self.conn
            .execute_batch("DETACH DATABASE old; PRAGMA wal_checkpoint(TRUNCATE);")
            .map_err(internal)?;
        let target = self.target.clone();
        self.conn.close().map_err(|(_, e)| internal(e))?;
        File::open(&target)
            .and_then(|f| f.sync_all())
            .map_err(|e| StoreError::Internal(format!("cannot sync the copy: {e}")))?;
        remove_sidecars(&target);
        Ok(target)
    }
}

/// The old file's events after `after`, as [`crate::read_all_sync`] reads a store's own.
fn read_all_sync_from(
    conn: &Connection,
    after: Position,
    max: usize,
) -> rusqlite::Result<Vec<RecordedEvent>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {EVENT_COLUMNS} FROM old.events e JOIN old.streams s ON s.id = e.stream_id
         WHERE e.position > ?1 ORDER BY e.position LIMIT {}",
        limit(max)
    ))?;
    let rows = stmt.query_map(params![after.0 as i64], row_to_event)?;
    rows.collect()
}

/// `path` with `suffix` appended to its file name.
fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// Removes the lock file, and the WAL and shared-memory files SQLite leaves when no
/// connection is open (none should be left once a file is closed cleanly).
fn remove_sidecars(path: &Path) {
    for suffix in ["-wal", "-shm", ".lock"] {
        let _ = std::fs::remove_file(with_suffix(path, suffix));
    }
}

/// Puts the store file `copy` in the place of `store`, at once (a reader opens either the old
/// file or the new, never neither), then overwrites the old file's bytes with zeros and
/// removes it. Where the file system keeps old blocks elsewhere (copy-on-write file systems,
/// SSD wear levelling, snapshots), only full-disk encryption or a fresh volume is sure to
/// forget them; `docs/privacy.md` says so.
///
/// Safe to run again after a crash at any point: a left-over `<store>.old` that is still the
/// live file is only unlinked; one that is not is destroyed.
pub fn replace(store: &Path, copy: &Path) -> std::io::Result<()> {
    let old = with_suffix(store, ".old");
    finish_replace(store)?;
    // Closed files leave no write-ahead log behind, only what read-only readers created
    // (empty); one with frames in it means a file is still open, and nothing is swapped.
    for file in [store, copy] {
        let wal = with_suffix(file, "-wal");
        if std::fs::metadata(&wal).is_ok_and(|m| m.len() > 0) {
            return Err(std::io::Error::other(format!(
                "{} is not empty: is the store still open?",
                wal.display()
            )));
        }
        for suffix in ["-wal", "-shm"] {
            let _ = std::fs::remove_file(with_suffix(file, suffix));
        }
    }
    // The old file keeps a second name while the new one takes the first.
    std::fs::hard_link(store, &old)?;
    std::fs::rename(copy, store)?;
    if let Some(dir) = store.parent().filter(|p| !p.as_os_str().is_empty()) {
        File::open(dir)?.sync_all()?;
    }
    finish_replace(store)
}

/// Destroys `<store>.old` unless it is `store` itself (a replacement cut short before the
/// swap), in which case only that second name goes.
pub fn finish_replace(store: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::MetadataExt;
    let old = with_suffix(store, ".old");
    let Ok(meta) = std::fs::metadata(&old) else {
        return Ok(());
    };
    let live = std::fs::metadata(store).ok();
    if live.is_some_and(|l| l.ino() == meta.ino() && l.dev() == meta.dev()) {
        return std::fs::remove_file(&old);
    }
    overwrite(&old, meta.len())?;
    std::fs::remove_file(&old)?;
    for suffix in ["-wal", "-shm"] {
        let side = with_suffix(&old, suffix);
        if let Ok(m) = std::fs::metadata(&side) {
            overwrite(&side, m.len())?;
            std::fs::remove_file(&side)?;
        }
    }
    Ok(())
}

fn overwrite(path: &Path, len: u64) -> std::io::Result<()> {
    use std::io::Write;
    let mut file = File::options().write(true).open(path)?;
    let zeros = vec![0u8; 1 << 20];
    let mut left = len;
    while left > 0 {
        let n = left.min(zeros.len() as u64) as usize;
        file.write_all(&zeros[..n])?;
        left -= n as u64;
    }
    file.sync_all()
}
