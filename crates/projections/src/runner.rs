//! The projection runner. Each projection runs on its own thread with its own database file.
//! Feeder threads read the global log, decode it once and hand batches to the projections at
//! about the same checkpoint (all of them, usually), so reading and decoding overlap with the
//! SQLite writes; a projection far behind the others (rebuilding, say) gets its own feeder,
//! and a failed one drops out, so neither holds the others back.
//! A batch's rows and the projection's checkpoint commit in one SQLite transaction; an event
//! the projection cannot apply rolls the batch back and stops that projection with a status
//! naming the event and the error, unless the failure is transient (the disk full, an I/O
//! error, the database busy, the store unreachable): then the projection leaves its feeder,
//! waits with capped exponential backoff and resumes from its checkpoint on a feeder of its
//! own, by itself, with nothing lost or applied twice (the failed batch rolled back). A new
//! version of a projection's SQL drops its tables and rebuilds it from the start of the log.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use futures::{FutureExt, StreamExt};
use rusqlite::{params, Connection, OptionalExtension};
use tokio::runtime::Handle;
use tokio::sync::watch;

use leadflow_store::{EventStore, Position};

use crate::{Envelope, Projection, ProjectionError};

/// Events applied per transaction, at most, once live.
const BATCH: usize = 4000;

/// Events per transaction while catching up: fewer commits, and fewer leads whose events
/// straddle two batches (each straddle is one more load and save of its card).
const CATCH_UP_BATCH: usize = 16_000;

/// WAL pages between automatic checkpoints while rebuilding from zero, should the switch to
/// a rollback journal fail (SQLite's default is 1,000): hot pages are copied into the
/// database once per checkpoint instead of once per few batches.
const REBUILD_AUTOCHECKPOINT: u32 = 32_768;

/// While rebuilding, the writer reads its database through a memory map: the bulk index
/// builds at the end scan the tables once per index, and a map spares copying every page.
const REBUILD_MMAP: u64 = 1 << 40;

/// How long a rebuilding writer waits for readers before a commit gives up. In rollback
/// mode a commit waits until no read transaction is open; the API's reads are short.
const REBUILD_BUSY_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProjectionState {
    Starting,
    CatchingUp,
    Live,
    /// A transient failure: waiting to apply again from the checkpoint.
    Retrying,
    Failed,
    Stopped,
}

impl ProjectionState {
    /// The name ops see (`/health`, `projections status`).
    pub fn label(self) -> &'static str {
        match self {
            Self::Starting => "starting",
            Self::CatchingUp => "catching up",
            Self::Live => "live",
            Self::Retrying => "retrying",
            Self::Failed => "failed",
            Self::Stopped => "stopped",
        }
    }

    /// Whether the model is not following the log by itself right now.
    pub fn is_unhealthy(self) -> bool {
        matches!(self, Self::Retrying | Self::Failed)
    }
}

/// The first wait after a transient failure; each further attempt doubles it, up to
/// [`RETRY_MAX`].
pub const RETRY_FIRST: Duration = Duration::from_millis(250);
pub const RETRY_MAX: Duration = Duration::from_secs(30);

/// How long to wait before attempt `n` (1-based) after a transient failure.
pub fn retry_delay(attempt: u32) -> Duration {
    RETRY_FIRST
        .saturating_mul(1 << attempt.saturating_sub(1).min(16))
        .min(RETRY_MAX)
}

#[derive(Clone, Debug)]
pub struct ProjectionStatus {
    pub name: &'static str,
    pub version: u32,
    pub checkpoint: Position,
    pub head: Position,
    pub state: ProjectionState,
    /// Events applied per second over the last second or so.
    pub events_per_sec: f64,
    /// For a failed projection: the event it could not apply and why; for a retrying one,
    /// the last transient error.
    pub error: Option<String>,
    /// Transient failures in a row (0 once a batch commits again).
    pub attempts: u32,
    /// When a retrying projection tries again.
    pub next_attempt: Option<chrono::DateTime<chrono::Utc>>,
}

impl ProjectionStatus {
    pub fn lag(&self) -> u64 {
        self.head.0.saturating_sub(self.checkpoint.0)
    }
}

struct Running {
    status: Arc<Mutex<ProjectionStatus>>,
    checkpoint: watch::Receiver<Position>,
    path: PathBuf,
}

/// The running read side: every projection's thread, status and read connections.
pub struct ReadSide {
    /// Held while running: two processes applying the same batches would double them.
    _lock: std::fs::File,
    store: Arc<dyn EventStore>,
    handles: Vec<Running>,
    shutdown: watch::Sender<bool>,
    /// Every thread, feeders a retrying worker starts later included.
    threads: Arc<Mutex<Vec<JoinHandle<()>>>>,
    readers: Mutex<HashMap<&'static str, Vec<Connection>>>,
}

/// Why a read could not be served.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("projection {name} has failed: {error}")]
    Failed { name: &'static str, error: String },
    #[error("the read model {name} did not reach position {position} within {waited_ms} ms{why}")]
    Timeout {
        name: &'static str,
        position: Position,
        waited_ms: u64,
        /// What keeps it behind, if known (`: it is retrying after ...`).
        why: String,
    },
    #[error("unknown read model {0}")]
    Unknown(String),
    #[error("read model database: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("read task failed: {0}")]
    Task(String),
}

impl ReadSide {
    /// Opens (or creates, or rebuilds) each projection's database under `dir` and starts its
    /// thread. Must be called from within a tokio runtime.
    pub fn start(
        dir: &Path,
        store: Arc<dyn EventStore>,
        projections: Vec<Box<dyn Projection>>,
    ) -> Result<Self, ProjectionError> {
        std::fs::create_dir_all(dir).map_err(|e| ProjectionError::Apply {
            position: Position::START,
            reason: format!("cannot create {}: {e}", dir.display()),
        })?;
        let lock = lock_dir(dir)?;
        let runtime = Handle::current();
        let (shutdown, _) = watch::channel(false);
        let mut handles = Vec::new();
        let threads = Arc::new(Mutex::new(Vec::new()));
        // (checkpoint, the worker's inbox) per projection, for grouping them onto feeders.
        let mut inboxes = Vec::new();
        for projection in projections {
            let path = dir.join(format!("{}.db", projection.name()));
            let mut conn = open_writer(&path)?;
            let (checkpoint, rebuilding) = prepare(&mut conn, projection.as_ref())?;
            let mut projection = projection;
            projection.set_rebuilding(rebuilding);
            if rebuilding {
                rebuild_journal(&conn, projection.name())?;
            }
            let status = Arc::new(Mutex::new(ProjectionStatus {
                name: projection.name(),
                version: projection.version(),
                checkpoint,
                head: Position::START,
                state: ProjectionState::Starting,
                events_per_sec: 0.0,
                error: None,
                attempts: 0,
                next_attempt: None,
            }));
            let (cp_tx, cp_rx) = watch::channel(checkpoint);
            let (inbox, rx) = std::sync::mpsc::sync_channel(READ_AHEAD);
            let worker = Worker {
                rebuilding,
                projection,
                conn,
                store: store.clone(),
                runtime: runtime.clone(),
                status: status.clone(),
                checkpoint: cp_tx,
                shutdown: shutdown.subscribe(),
                threads: threads.clone(),
            };
            let name = worker.projection.name();
            threads.lock().expect("threads lock").push(spawn(
                format!("projection-{name}"),
                checkpoint,
                move || worker.run(checkpoint, rx),
            )?);
            inboxes.push((checkpoint, name, inbox, status.clone()));
            handles.push(Running {
                status,
                checkpoint: cp_rx,
                path,
            });
        }
        // Projections at about the same checkpoint share one reader of the log: it is read
        // and decoded once for all of them. One far behind (rebuilding, say) gets its own, so
        // it holds none of the others back.
        let members = inboxes
            .into_iter()
            .map(|(checkpoint, name, inbox, status)| Member {
                name,
                checkpoint,
                inbox,
                status,
            })
            .collect();
        let groups = group_by_checkpoint(members, |m| m.checkpoint);
        for (from, members) in groups {
            let names: Vec<&str> = members.iter().map(|m| m.name).collect();
            let feeder = Feeder {
                store: store.clone(),
                runtime: runtime.clone(),
                shutdown: shutdown.subscribe(),
                stop: None,
                members,
            };
            threads.lock().expect("threads lock").push(spawn(
                format!("feed-{}", names.join("+")),
                from,
                move || feeder.run(from),
            )?);
        }
        Ok(Self {
            _lock: lock,
            store,
            handles,
            shutdown,
            threads,
            readers: Mutex::new(HashMap::new()),
        })
    }

    /// Every projection's status, with the log's current head.
    pub async fn status(&self) -> Vec<ProjectionStatus> {
        let head = self.store.head().await.unwrap_or_default();
        self.handles
            .iter()
            .map(|h| {
                let mut s = h.status.lock().expect("status lock").clone();
                s.head = head;
                if s.state == ProjectionState::Live && s.checkpoint < head {
                    s.state = ProjectionState::CatchingUp;
                }
                s
            })
            .collect()
    }

    /// Waits until every projection has applied the log up to `position` (read-your-writes).
    pub async fn wait_for(&self, position: Position, timeout: Duration) -> Result<(), ReadError> {
        let started = Instant::now();
        for h in &self.handles {
            let mut rx = h.checkpoint.clone();
            let remaining = timeout.saturating_sub(started.elapsed());
            let reached = tokio::time::timeout(remaining, async {
                loop {
                    if *rx.borrow_and_update() >= position {
                        return Ok(());
                    }
                    let status = h.status.lock().expect("status lock").clone();
                    if status.state == ProjectionState::Failed {
                        return Err(ReadError::Failed {
                            name: status.name,
                            error: status.error.unwrap_or_default(),
                        });
                    }
                    if rx.changed().await.is_err() {
                        let status = h.status.lock().expect("status lock").clone();
                        return Err(ReadError::Failed {
                            name: status.name,
                            error: status.error.unwrap_or_else(|| "stopped".to_owned()),
                        });
                    }
                }
            })
            .await;
            match reached {
                Ok(result) => result?,
                Err(_) => {
                    let status = h.status.lock().expect("status lock").clone();
                    let why = match (status.state, status.error) {
                        (ProjectionState::Retrying, Some(error)) => format!(
                            ": it is at {} and retrying after a transient failure (attempt {}): {error}",
                            status.checkpoint, status.attempts
                        ),
                        _ => String::new(),
                    };
                    return Err(ReadError::Timeout {
                        name: status.name,
                        position,
                        waited_ms: timeout.as_millis() as u64,
                        why,
                    });
                }
            }
        }
        Ok(())
    }

    /// Runs `f` on a read connection of projection `name`, on the blocking pool. Everything `f`
    /// reads comes from one snapshot of the database if it runs in one transaction.
    pub async fn read<T: Send + 'static>(
        self: &Arc<Self>,
        name: &'static str,
        f: impl FnOnce(&mut Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, ReadError> {
        let this = self.clone();
        tokio::task::spawn_blocking(move || {
            let path = this
                .handles
                .iter()
                .find(|h| h.status.lock().expect("status lock").name == name)
                .map(|h| h.path.clone());
            let path = path.ok_or_else(|| ReadError::Unknown(name.to_owned()))?;
            let pooled = this
                .readers
                .lock()
                .expect("reader pool")
                .get_mut(name)
                .and_then(Vec::pop);
            let mut conn = match pooled {
                Some(c) => c,
                None => open_reader(&path)?,
            };
            let result = f(&mut conn);
            this.readers
                .lock()
                .expect("reader pool")
                .entry(name)
                .or_default()
                .push(conn);
            Ok(result?)
        })
        .await
        .map_err(|e| ReadError::Task(e.to_string()))?
    }

    /// The checkpoint of projection `name` as it moves (for live queries).
    pub fn watch(&self, name: &str) -> Option<watch::Receiver<Position>> {
        self.handles
            .iter()
            .find(|h| h.status.lock().expect("status lock").name == name)
            .map(|h| h.checkpoint.clone())
    }

    /// The log the read models follow, for readers that need what no model keeps (the
    /// history feed's payloads): the read side's own reader, not the write side's.
    pub fn log(&self) -> &Arc<dyn EventStore> {
        &self.store
    }

    /// Stops every projection after its current batch and waits for the threads.
    pub fn shutdown(&self) {
        let _ = self.shutdown.send(true);
        // A worker may start a feeder until it sees the signal: join until none is left.
        loop {
            let threads = std::mem::take(&mut *self.threads.lock().expect("threads lock"));
            if threads.is_empty() {
                break;
            }
            for t in threads {
                let _ = t.join();
            }
        }
    }
}

impl Drop for ReadSide {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// An exclusive lock on `<dir>/read.lock` for as long as the read side runs.
fn lock_dir(dir: &Path) -> Result<std::fs::File, ProjectionError> {
    let fail = |reason: String| ProjectionError::Apply {
        position: Position::START,
        reason,
    };
    let file = std::fs::File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(dir.join("read.lock"))
        .map_err(|e| {
            fail(format!(
                "cannot create {}: {e}",
                dir.join("read.lock").display()
            ))
        })?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(fail(format!(
            "the read models in {} are being run by another process",
            dir.display()
        ))),
        Err(std::fs::TryLockError::Error(e)) => {
            Err(fail(format!("cannot lock {}: {e}", dir.display())))
        }
    }
}

fn open_writer(path: &Path) -> Result<Connection, ProjectionError> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(Duration::from_secs(5))?;
    // A rebuild killed midway left the file on a rollback journal; opening rolls it back.
    wal(&conn, path)?;
    // Read models are rebuildable from the log and their checkpoint commits with their rows,
    // so NORMAL (durable across a process kill, not an OS crash) is enough.
    conn.execute_batch(
        "PRAGMA synchronous=NORMAL; PRAGMA cache_size=-131072; PRAGMA temp_store=MEMORY; PRAGMA threads=2;",
    )?;
    conn.busy_timeout(Duration::from_secs(5))?;
    Ok(conn)
}

/// While rebuilding from zero, a rollback journal instead of the WAL. A rebuild mostly adds
/// pages, and new pages need no journal: each is written once, straight into the database,
/// where the WAL writes it, reads it back and writes it again at the checkpoint (a third of
/// the rebuild's CPU went to that). A kill mid-batch is as safe as with the WAL: the next
/// open rolls the hot journal back, and the batch is applied again from the checkpoint.
/// Readers and the commit exclude each other meanwhile, which a model still rebuilding can
/// afford. If the switch is refused (another process has the file open), the rebuild runs
/// on the WAL with rarer checkpoints.
fn rebuild_journal(conn: &Connection, name: &str) -> Result<(), ProjectionError> {
    // Leaving the WAL needs the file to itself: a reader elsewhere refuses the switch, with
    // the old mode as the answer or with SQLITE_BUSY.
    let mode = conn
        .query_row("PRAGMA journal_mode=TRUNCATE", [], |r| {
            r.get::<_, String>(0)
        })
        .unwrap_or_else(|e| e.to_string());
    if !mode.eq_ignore_ascii_case("truncate") {
        tracing::info!(
            projection = name,
            refused = mode,
            "the database is open elsewhere: rebuilding on the WAL"
        );
        conn.execute_batch(&format!(
            "PRAGMA wal_autocheckpoint={REBUILD_AUTOCHECKPOINT}"
        ))?;
    }
    conn.busy_timeout(REBUILD_BUSY_TIMEOUT)?;
    conn.execute_batch(&format!("PRAGMA mmap_size={REBUILD_MMAP}"))?;
    Ok(())
}

/// Back to the WAL once rebuilt, so that readers and the live writer never wait on each
/// other.
fn live_journal(conn: &Connection, name: &str) -> Result<(), ProjectionError> {
    wal(conn, Path::new(&format!("the {name} read model")))?;
    conn.busy_timeout(Duration::from_secs(5))?;
    conn.execute_batch(
        "PRAGMA mmap_size=0; PRAGMA wal_autocheckpoint=1000; PRAGMA wal_checkpoint(TRUNCATE);",
    )?;
    Ok(())
}

/// Puts the database on the WAL. Entering it needs a moment with no read transaction open
/// elsewhere; the switch is retried for a while.
fn wal(conn: &Connection, what: &Path) -> Result<(), ProjectionError> {
    let started = Instant::now();
    loop {
        // Busy: someone reads; wait. Anything else (the disk full, say) is the caller's to
        // classify.
        let mode = match conn.query_row("PRAGMA journal_mode=WAL", [], |r| r.get::<_, String>(0)) {
            Ok(mode) => mode,
            Err(e)
                if matches!(
                    e.sqlite_error_code(),
                    Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
                ) =>
            {
                e.to_string()
            }
            Err(e) => return Err(ProjectionError::Sqlite(e)),
        };
        if mode.eq_ignore_ascii_case("wal") {
            return Ok(());
        }
        if started.elapsed() > REBUILD_BUSY_TIMEOUT {
            return Err(ProjectionError::Apply {
                position: Position::START,
                reason: format!(
                    "cannot put {} on the WAL (journal mode: {mode}): the database stays busy",
                    what.display()
                ),
            });
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn open_reader(path: &Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open(path)?;
    conn.execute_batch("PRAGMA query_only=1; PRAGMA cache_size=-65536; PRAGMA temp_store=MEMORY;")?;
    conn.busy_timeout(Duration::from_secs(5))?;
    Ok(conn)
}

/// Creates the projection's tables, or drops and recreates them when its version changed.
/// Returns the checkpoint to resume from and whether the projection is rebuilding from zero.
///
/// A rebuild runs without the model's secondary indexes (their SQL waits in
/// `projection_state.deferred`, so a rebuild killed midway still restores them) and builds
/// them once caught up: one bulk index build is far cheaper than millions of index inserts.
fn prepare(conn: &mut Connection, p: &dyn Projection) -> Result<(Position, bool), ProjectionError> {
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS projection_state (
             name TEXT PRIMARY KEY, version INTEGER NOT NULL, position INTEGER NOT NULL,
             state TEXT NOT NULL, error TEXT, deferred TEXT)",
    )?;
    let has_deferred: bool = conn
        .prepare("SELECT 1 FROM pragma_table_info('projection_state') WHERE name = 'deferred'")?
        .exists([])?;
    if !has_deferred {
        conn.execute_batch("ALTER TABLE projection_state ADD COLUMN deferred TEXT")?;
    }
    let found: Option<(u32, i64, Option<String>)> = conn
        .query_row(
            "SELECT version, position, deferred FROM projection_state WHERE name = ?1",
            [p.name()],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .optional()?;
    if let Some((version, position, deferred)) = found {
        if version == p.version() {
            return Ok((Position(position as u64), deferred.is_some()));
        }
        tracing::info!(
            projection = p.name(),
            from = version,
            to = p.version(),
            "new projection version, rebuilding"
        );
    }
    let tx = conn.transaction()?;
    // Virtual tables first: dropping one drops its shadow tables too.
    for kind in ["sql LIKE 'CREATE VIRTUAL TABLE%'", "1 = 1"] {
        let tables: Vec<String> = tx
            .prepare(&format!(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name <> 'projection_state'
                 AND name NOT LIKE 'sqlite_%' AND {kind}"
            ))?
            .query_map([], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        for table in tables {
            tx.execute_batch(&format!("DROP TABLE IF EXISTS \"{table}\""))?;
        }
    }
    tx.execute_batch(p.schema())?;
    let indexes: Vec<(String, String)> = tx
        .prepare("SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL AND tbl_name <> 'projection_state'")?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<rusqlite::Result<_>>()?;
    for (name, _) in &indexes {
        tx.execute_batch(&format!("DROP INDEX \"{name}\""))?;
    }
    let deferred: Vec<String> = indexes.into_iter().map(|(_, sql)| sql).collect();
    tx.execute(
        "INSERT OR REPLACE INTO projection_state(name, version, position, state, error, deferred)
         VALUES (?1, ?2, 0, 'rebuilding', NULL, ?3)",
        params![p.name(), p.version(), deferred.join(";\n")],
    )?;
    tx.commit()?;
    Ok((Position::START, true))
}

/// Ends a rebuild: the deferred indexes, whatever the projection builds in bulk, and the
/// normal state, in one transaction.
fn finish_rebuild(conn: &mut Connection, p: &mut dyn Projection) -> Result<(), ProjectionError> {
    let started = std::time::Instant::now();
    let tx = conn.transaction()?;
    let deferred: Option<String> = tx.query_row(
        "SELECT deferred FROM projection_state WHERE name = ?1",
        [p.name()],
        |r| r.get(0),
    )?;
    if let Some(sql) = deferred.filter(|s| !s.is_empty()) {
        tx.execute_batch(&sql)?;
    }
    let indexed = started.elapsed();
    p.finish_rebuild(&tx)?;
    let built = started.elapsed();
    tx.execute(
        "UPDATE projection_state SET deferred = NULL WHERE name = ?1",
        [p.name()],
    )?;
    tx.commit()?;
    live_journal(conn, p.name())?;
    p.set_rebuilding(false);
    tracing::info!(
        projection = p.name(),
        indexes_ms = indexed.as_millis() as u64,
        bulk_ms = (built - indexed).as_millis() as u64,
        commit_ms = (started.elapsed() - built).as_millis() as u64,
        "rebuild finished, indexes built"
    );
    Ok(())
}

/// Where a worker's time went while rebuilding, logged once caught up.
#[derive(Default)]
struct Spent {
    events: u64,
    waiting: Duration,
    working: Duration,
    applying: Duration,
    /// Commits include SQLite's automatic WAL checkpoints.
    committing: Duration,
}

struct Worker {
    /// Rebuilding from zero without secondary indexes, until caught up.
    rebuilding: bool,
    projection: Box<dyn Projection>,
    conn: Connection,
    store: Arc<dyn EventStore>,
    runtime: Handle,
    status: Arc<Mutex<ProjectionStatus>>,
    checkpoint: watch::Sender<Position>,
    shutdown: watch::Receiver<bool>,
    /// The read side's threads, for the feeders this worker starts after a transient failure.
    threads: Arc<Mutex<Vec<JoinHandle<()>>>>,
}

/// What a feeder hands its workers: a batch of decoded consecutive events, or the event that
/// does not decode (which stops the projection: position and reason).
type Fed = Result<Arc<[Envelope]>, (Position, String)>;

/// Batches queued between a feeder and a worker: enough to keep the worker busy while the
/// feeder reads and decodes the next ones, few enough to bound memory.
const READ_AHEAD: usize = 3;

/// Projections whose checkpoints are at most this far apart share a feeder (the ones ahead
/// skip what they have already applied).
const SHARE_WINDOW: u64 = 10_000;

fn spawn(
    name: String,
    position: Position,
    f: impl FnOnce() + Send + 'static,
) -> Result<JoinHandle<()>, ProjectionError> {
    std::thread::Builder::new()
        .name(name)
        .spawn(f)
        .map_err(|e| ProjectionError::Apply {
            position,
            reason: format!("cannot start thread: {e}"),
        })
}

/// Groups items whose positions lie within [`SHARE_WINDOW`] of their group's lowest, each
/// group with the position to read it from.
fn group_by_checkpoint<T>(
    mut items: Vec<T>,
    at: impl Fn(&T) -> Position,
) -> Vec<(Position, Vec<T>)> {
    items.sort_by_key(|i| at(i));
    let mut groups: Vec<(Position, Vec<T>)> = Vec::new();
    for item in items {
        let position = at(&item);
        match groups.last_mut() {
            Some((from, group)) if position.0 - from.0 <= SHARE_WINDOW => group.push(item),
            _ => groups.push((position, vec![item])),
        }
    }
    groups
}

/// A worker fed by a feeder.
struct Member {
    name: &'static str,
    checkpoint: Position,
    inbox: std::sync::mpsc::SyncSender<Fed>,
    /// Where a lost store connection shows (the worker clears it once it applies again).
    status: Arc<Mutex<ProjectionStatus>>,
}

/// Reads the log on its own thread, decodes it once and hands full batches to each of its
/// workers, so reading and decoding overlap with the workers' SQLite writes. A worker that
/// stops (failed, or shut down) drops out; the feeder ends when none is left or at shutdown.
struct Feeder {
    store: Arc<dyn EventStore>,
    runtime: Handle,
    shutdown: watch::Receiver<bool>,
    /// A worker's own feeder ends when the worker drops the sender (it failed again, or
    /// stopped), even with no event to send.
    stop: Option<watch::Receiver<()>>,
    members: Vec<Member>,
}

impl Feeder {
    /// Clears what [`Feeder::store_failed`] showed.
    fn store_recovered(&self) {
        for m in &self.members {
            let mut s = m.status.lock().expect("status lock");
            let ours = s
                .error
                .as_deref()
                .is_some_and(|e| e.starts_with("event store: "));
            if s.state == ProjectionState::Retrying && ours {
                tracing::info!(projection = m.name, "the event store answers again");
                s.state = ProjectionState::CatchingUp;
                s.error = None;
                s.attempts = 0;
                s.next_attempt = None;
            }
        }
    }

    /// The store failed under the subscription: every member shows it while the feeder waits
    /// (capped exponential backoff) to subscribe again. False if shut down meanwhile.
    fn store_failed(&mut self, attempts: u32, error: String) -> bool {
        let delay = retry_delay(attempts);
        tracing::warn!(
            attempt = attempts,
            retry_in_ms = delay.as_millis() as u64,
            error = %error,
            "the event store failed under the projections' subscription, subscribing again"
        );
        let next = chrono::Duration::from_std(delay)
            .ok()
            .map(|d| chrono::Utc::now() + d);
        for m in &self.members {
            let mut s = m.status.lock().expect("status lock");
            if s.state != ProjectionState::Failed {
                s.state = ProjectionState::Retrying;
                s.error = Some(format!("event store: {error}"));
                s.attempts = attempts;
                s.next_attempt = next;
            }
        }
        let mut shutdown = self.shutdown.clone();
        let stopped = self.runtime.block_on(async {
            tokio::time::timeout(delay, shutdown.wait_for(|stop| *stop))
                .await
                .is_ok()
        });
        !stopped
    }

    fn run(mut self, mut position: Position) {
        let _context = self.runtime.enter();
        let names = self
            .members
            .iter()
            .map(|m| m.name)
            .collect::<Vec<_>>()
            .join("+");
        let mut failures = 0u32;
        'subscribe: loop {
            if failures > 0 {
                // Reachable again? Then the members no longer show the failure.
                match self.runtime.block_on(self.store.head()) {
                    Ok(_) => self.store_recovered(),
                    Err(e) => {
                        failures += 1;
                        if !self.store_failed(failures, e.to_string()) {
                            return;
                        }
                        continue 'subscribe;
                    }
                }
            }
            let mut sub = self.store.subscribe_all(position);
            loop {
                let mut shutdown = self.shutdown.clone();
                let mut stop = self.stop.clone();
                let first = self.runtime.block_on(async {
                    let stopped = async {
                        match &mut stop {
                            Some(stop) => while stop.changed().await.is_ok() {},
                            None => std::future::pending::<()>().await,
                        }
                    };
                    tokio::select! {
                        item = sub.next() => Some(item),
                        _ = shutdown.wait_for(|stop| *stop) => None,
                        _ = stopped => None,
                    }
                });
                let first = match first {
                    None => return,
                    Some(Some(Ok(event))) => event,
                    Some(None) => {
                        failures += 1;
                        let why = format!("the subscription of {names} ended");
                        if !self.store_failed(failures, why) {
                            return;
                        }
                        continue 'subscribe;
                    }
                    Some(Some(Err(e))) => {
                        failures += 1;
                        if !self.store_failed(failures, e.to_string()) {
                            return;
                        }
                        continue 'subscribe;
                    }
                };
                failures = 0;
                // While behind the head, wait for full batches (fewer, larger transactions);
                // once live, hand over whatever has arrived.
                let head = self.runtime.block_on(self.store.head()).unwrap_or_default();
                let behind = head > first.position;
                let mut batch = vec![first];
                let mut broken = false;
                let size = if behind { CATCH_UP_BATCH } else { BATCH };
                while batch.len() < size {
                    let next = match sub.next().now_or_never() {
                        Some(next) => next,
                        None if behind => self.runtime.block_on(sub.next()),
                        None => break,
                    };
                    match next {
                        Some(Ok(event)) => {
                            let reached = event.position >= head;
                            batch.push(event);
                            if behind && reached {
                                break;
                            }
                        }
                        Some(Err(_)) | None => {
                            broken = true;
                            break;
                        }
                    }
                }
                let last = batch.last().map_or(position, |e| e.position);
                let fed: Fed = match batch
                    .into_iter()
                    .map(leadflow_codec::decode)
                    .collect::<Result<Vec<_>, _>>()
                {
                    Ok(envelopes) => Ok(envelopes.into()),
                    Err(poison) => Err((poison.position, poison.reason)),
                };
                let poisoned = fed.is_err();
                // A member that hung up has stopped; the others go on.
                self.members.retain(|m| {
                    let behind_it = m.checkpoint < last;
                    !behind_it || m.inbox.send(fed.clone()).is_ok()
                });
                if self.members.is_empty() || poisoned {
                    return;
                }
                position = last;
                if broken {
                    continue 'subscribe;
                }
            }
        }
    }
}

/// How a worker's draining ended.
enum Drained {
    /// Shut down.
    Stopped,
    /// Stopped for the operator at an event (the status says which and why).
    Failed,
    /// A transient failure at the checkpoint; nothing of the failed batch was committed.
    Transient(ProjectionError),
}

impl Worker {
    fn run(mut self, mut position: Position, rx: std::sync::mpsc::Receiver<Fed>) {
        let runtime = self.runtime.clone();
        let _context = runtime.enter();
        let mut rx = rx;
        // The sender that ends this worker's own feeder, once it has one.
        let mut own: Option<watch::Sender<()>> = None;
        let mut attempts = 0u32;
        loop {
            match self.drain(&mut position, &rx, &mut attempts) {
                Drained::Stopped => break,
                Drained::Failed => return,
                Drained::Transient(error) => {
                    // Leave the feeder: a shared one goes on for the others, an own one ends.
                    drop(rx);
                    drop(own.take());
                    attempts += 1;
                    let delay = retry_delay(attempts);
                    self.retrying(position, &error, attempts, delay);
                    let mut shutdown = self.shutdown.clone();
                    let stopped = self.runtime.block_on(async {
                        tokio::time::timeout(delay, shutdown.wait_for(|stop| *stop))
                            .await
                            .is_ok()
                    });
                    if stopped {
                        break;
                    }
                    rx = match self.own_feeder(position) {
                        Ok((rx, stop)) => {
                            own = Some(stop);
                            rx
                        }
                        Err(e) => {
                            self.fail(position, &e);
                            return;
                        }
                    };
                }
            }
        }
        self.status.lock().expect("status lock").state = ProjectionState::Stopped;
    }

    /// A feeder of this worker's own, from `position`: after a transient failure the shared
    /// one has moved on.
    /// Its batches, and the sender whose drop ends it.
    fn own_feeder(
        &self,
        position: Position,
    ) -> Result<(std::sync::mpsc::Receiver<Fed>, watch::Sender<()>), ProjectionError> {
        let (inbox, rx) = std::sync::mpsc::sync_channel(READ_AHEAD);
        let (stop, stopped) = watch::channel(());
        let name = self.projection.name();
        let feeder = Feeder {
            store: self.store.clone(),
            runtime: self.runtime.clone(),
            shutdown: self.shutdown.clone(),
            stop: Some(stopped),
            members: vec![Member {
                name,
                checkpoint: position,
                inbox,
                status: self.status.clone(),
            }],
        };
        let thread = spawn(format!("feed-{name}"), position, move || {
            feeder.run(position)
        })?;
        self.threads.lock().expect("threads lock").push(thread);
        Ok((rx, stop))
    }

    /// Publishes a transient failure and when the next attempt comes.
    fn retrying(
        &self,
        position: Position,
        error: &ProjectionError,
        attempts: u32,
        delay: Duration,
    ) {
        let name = self.projection.name();
        let message = error.to_string();
        tracing::warn!(
            projection = name,
            checkpoint = %position,
            attempt = attempts,
            retry_in_ms = delay.as_millis() as u64,
            error = %message,
            "transient failure, retrying from the checkpoint"
        );
        let mut s = self.status.lock().expect("status lock");
        s.state = ProjectionState::Retrying;
        s.error = Some(message);
        s.attempts = attempts;
        s.checkpoint = position;
        s.next_attempt = chrono::Duration::from_std(delay)
            .ok()
            .map(|d| chrono::Utc::now() + d);
    }

    /// Ends a rebuild once the checkpoint is at the head; whether it did.
    fn finish_if_caught_up(
        &mut self,
        position: Position,
        spent: &Spent,
    ) -> Result<bool, ProjectionError> {
        if !self.rebuilding
            || !self
                .runtime
                .block_on(self.store.head())
                .is_ok_and(|head| position >= head)
        {
            return Ok(false);
        }
        let finishing = Instant::now();
        finish_rebuild(&mut self.conn, self.projection.as_mut())?;
        self.rebuilding = false;
        tracing::info!(
            projection = self.projection.name(),
            events = spent.events,
            waiting_ms = spent.waiting.as_millis() as u64,
            applying_ms = spent.applying.as_millis() as u64,
            committing_ms = spent.committing.as_millis() as u64,
            other_ms = spent
                .working
                .saturating_sub(spent.applying + spent.committing)
                .as_millis() as u64,
            finishing_ms = finishing.elapsed().as_millis() as u64,
            "caught up from zero"
        );
        Ok(true)
    }

    /// Stops for the operator on a permanent failure; hands a transient one back for a retry.
    fn failed(&mut self, position: Position, error: ProjectionError) -> Drained {
        if error.is_transient() {
            Drained::Transient(error)
        } else {
            self.fail(position, &error);
            Drained::Failed
        }
    }

    /// Applies what the feeder hands over until shutdown or failure.
    fn drain(
        &mut self,
        position: &mut Position,
        rx: &std::sync::mpsc::Receiver<Fed>,
        attempts: &mut u32,
    ) -> Drained {
        let mut window = (Instant::now(), 0u64);
        let mut spent = Spent::default();
        // A retry of a rebuild that failed while finishing has no event left to apply: once
        // finished, it is caught up, and says so.
        if *attempts > 0 {
            match self.finish_if_caught_up(*position, &spent) {
                Ok(true) => {
                    *attempts = 0;
                    self.publish(*position, &mut window);
                    let _ = self.checkpoint.send(*position);
                }
                Ok(false) => {}
                Err(e) => return self.failed(*position, e),
            }
        }
        loop {
            if *self.shutdown.borrow() {
                return Drained::Stopped;
            }
            let waited = Instant::now();
            let Ok(fed) = rx.recv() else {
                return Drained::Stopped;
            };
            spent.waiting += waited.elapsed();
            let working = Instant::now();
            let from = *position;
            let applied = fed
                .map_err(|(position, reason)| ProjectionError::Decode { position, reason })
                .and_then(|batch| {
                    // A shared feeder may start below this projection's checkpoint.
                    let fresh = &batch[batch.partition_point(|e| e.position <= from)..];
                    let Some(last) = fresh.last().map(|e| e.position) else {
                        return Ok((from, 0));
                    };
                    self.apply(fresh, &mut spent)?;
                    Ok((last, fresh.len() as u64))
                });
            let (last, n) = match applied {
                Ok(done) => done,
                Err(e) => return self.failed(*position, e),
            };
            window.1 += n;
            spent.events += n;
            spent.working += working.elapsed();
            *position = last;
            if n > 0 {
                *attempts = 0;
            }
            if let Err(e) = self.finish_if_caught_up(*position, &spent) {
                // The batch is committed: publish it before retrying the finish.
                self.publish(*position, &mut window);
                let _ = self.checkpoint.send(*position);
                return self.failed(*position, e);
            }
            // Status first: whoever the checkpoint wakes may read it.
            self.publish(*position, &mut window);
            let _ = self.checkpoint.send(*position);
        }
    }

    fn apply(&mut self, envelopes: &[Envelope], spent: &mut Spent) -> Result<(), ProjectionError> {
        let last = envelopes.last().map(|e| e.position).unwrap_or_default();
        let started = Instant::now();
        let tx = self.conn.transaction()?;
        self.projection.apply(&tx, envelopes)?;
        tx.execute(
            "UPDATE projection_state SET position = ?2, state = 'ok', error = NULL WHERE name = ?1",
            params![self.projection.name(), last.0 as i64],
        )?;
        let committing = Instant::now();
        spent.applying += committing - started;
        tx.commit()?;
        spent.committing += committing.elapsed();
        Ok(())
    }

    fn publish(&self, position: Position, window: &mut (Instant, u64)) {
        let head = self.runtime.block_on(self.store.head()).unwrap_or(position);
        let mut s = self.status.lock().expect("status lock");
        if s.state == ProjectionState::Retrying {
            tracing::info!(
                projection = self.projection.name(),
                checkpoint = %position,
                attempts = s.attempts,
                "recovered from a transient failure"
            );
            s.error = None;
            s.attempts = 0;
            s.next_attempt = None;
        }
        s.checkpoint = position;
        s.head = head;
        s.state = if position >= head {
            ProjectionState::Live
        } else {
            ProjectionState::CatchingUp
        };
        let elapsed = window.0.elapsed();
        if elapsed >= Duration::from_secs(1) {
            s.events_per_sec = window.1 as f64 / elapsed.as_secs_f64();
            *window = (Instant::now(), 0);
        }
    }

    fn fail(&mut self, position: Position, error: &ProjectionError) {
        let name = self.projection.name();
        let message = error.to_string();
        tracing::error!(projection = name, checkpoint = %position, error = %message, "projection stopped");
        let _ = self.conn.execute(
            "UPDATE projection_state SET state = 'failed', error = ?2 WHERE name = ?1",
            params![name, message],
        );
        let mut s = self.status.lock().expect("status lock");
        s.state = ProjectionState::Failed;
        s.error = Some(message);
        s.checkpoint = position;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn projections_near_one_checkpoint_share_a_feeder_and_one_far_behind_gets_its_own() {
        let at = |p: &u64| Position(*p);
        assert_eq!(
            group_by_checkpoint(vec![0u64, 0], at),
            vec![(Position(0), vec![0, 0])]
        );
        let live = 5_000_000;
        assert_eq!(
            group_by_checkpoint(vec![live + 3, 0, live], at),
            vec![
                (Position(0), vec![0]),
                (Position(live), vec![live, live + 3])
            ]
        );
        assert_eq!(
            group_by_checkpoint(vec![SHARE_WINDOW + 1, 0], at),
            vec![
                (Position(0), vec![0]),
                (Position(SHARE_WINDOW + 1), vec![SHARE_WINDOW + 1])
            ]
        );
        assert!(group_by_checkpoint(Vec::<u64>::new(), at).is_empty());
    }
}
