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
//!
//! Modules by reason to change: [`status`] (what ops see), [`pipeline`] (feeders and workers),
//! [`versions`] (schema versions and rebuilds), [`sqlite`] (connections and journal modes);
//! this file is the read side's API.

pub mod control;
mod pipeline;
mod sqlite;
pub mod status;
mod versions;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rusqlite::Connection;
use tokio::runtime::Handle;
use tokio::sync::watch;

use leadflow_keyring::Keyring;
use leadflow_store::{EventStore, Position};

use crate::{Projection, ProjectionError};

pub use control::{Control, ControlError, DeadLetter, StoppedAt};
use pipeline::{group_by_checkpoint, skipped_by_all, spawn, Feeder, Member, Worker, READ_AHEAD};
use sqlite::{open_reader, open_writer, rebuild_journal};
pub use status::{retry_delay, ProjectionState, ProjectionStatus, RETRY_FIRST, RETRY_MAX};
use versions::prepare;

struct Running {
    status: Arc<Mutex<ProjectionStatus>>,
    checkpoint: watch::Receiver<Position>,
    path: PathBuf,
    /// Where operators' instructions go.
    control: std::sync::mpsc::Sender<control::Request>,
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
        Self::start_with_keys(dir, store, None, projections)
    }

    /// [`ReadSide::start`], opening sealed personal fields with `keys` (issue 20); without
    /// them, a projection that meets a sealed event waits there, its status saying why.
    pub fn start_with_keys(
        dir: &Path,
        store: Arc<dyn EventStore>,
        keys: Option<Arc<Keyring>>,
        projections: Vec<Box<dyn Projection>>,
    ) -> Result<Self, ProjectionError> {
        std::fs::create_dir_all(dir).map_err(|e| ProjectionError::Setup {
            what: format!("create {}", dir.display()),
            reason: e.to_string(),
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
            let skips = control::skipped(&conn)?;
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
                rebuilding,
                stopped_at: None,
            }));
            let (cp_tx, cp_rx) = watch::channel(checkpoint);
            let (inbox, rx) = std::sync::mpsc::sync_channel(READ_AHEAD);
            let (control, orders) = std::sync::mpsc::channel();
            let worker = Worker {
                control: orders,
                skips: skips.clone(),
                stopped_at: None,
                rebuilding,
                projection,
                conn,
                store: store.clone(),
                keys: keys.clone(),
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
            inboxes.push((checkpoint, name, inbox, status.clone(), skips));
            handles.push(Running {
                status,
                checkpoint: cp_rx,
                path,
                control,
            });
        }
        // Projections at about the same checkpoint share one reader of the log: it is read
        // and decoded once for all of them. One far behind (rebuilding, say) gets its own, so
        // it holds none of the others back.
        let members = inboxes
            .into_iter()
            .map(|(checkpoint, name, inbox, status, skips)| Member {
                name,
                checkpoint,
                inbox,
                status,
                skips,
            })
            .collect();
        let groups = group_by_checkpoint(members, |m| m.checkpoint);
        for (from, members) in groups {
            let names: Vec<&str> = members.iter().map(|m| m.name).collect();
            let feeder = Feeder {
                skips: skipped_by_all(&members),
                store: store.clone(),
                keys: keys.clone(),
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

    /// The read models not following the log by themselves right now (failed, retrying or
    /// paused): what answers read from them may be stale. Reads no store, so every request
    /// can afford it.
    pub fn stale(&self) -> Vec<&'static str> {
        self.handles
            .iter()
            .filter_map(|h| {
                let s = h.status.lock().expect("status lock");
                (s.state.is_unhealthy() || s.state == ProjectionState::Paused).then_some(s.name)
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
                        (ProjectionState::Paused, _) => {
                            format!(": it is paused at {}", status.checkpoint)
                        }
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

    /// Runs `f` on a read connection of `model`, on the blocking pool. Everything `f` reads
    /// comes from one snapshot of the database if it runs in one transaction.
    pub async fn read<T: Send + 'static>(
        self: &Arc<Self>,
        model: crate::Model,
        f: impl FnOnce(&mut Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, ReadError> {
        let name = model.name();
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

    /// Tells the read model `name` what to do (pause, resume, retry, skip) and waits for it to
    /// be done or refused.
    pub async fn control(&self, name: &str, control: Control) -> Result<(), ControlError> {
        let running = self
            .handles
            .iter()
            .find(|h| h.status.lock().expect("status lock").name == name)
            .ok_or_else(|| ControlError::Unknown(name.to_owned()))?;
        let model = running.status.lock().expect("status lock").name;
        let (reply, answer) = tokio::sync::oneshot::channel();
        running
            .control
            .send(control::Request { control, reply })
            .map_err(|_| ControlError::Stopped { name: model })?;
        answer
            .await
            .map_err(|_| ControlError::Stopped { name: model })?
    }

    /// The events the read model `name` skipped, in log order.
    pub async fn dead_letters(&self, name: &str) -> Result<Vec<DeadLetter>, ReadError> {
        let path = self
            .handles
            .iter()
            .find(|h| h.status.lock().expect("status lock").name == name)
            .map(|h| h.path.clone())
            .ok_or_else(|| ReadError::Unknown(name.to_owned()))?;
        tokio::task::spawn_blocking(move || {
            let conn = open_reader(&path)?;
            Ok(control::dead_letters(&conn)?)
        })
        .await
        .map_err(|e| ReadError::Task(e.to_string()))?
    }

    /// The checkpoint of `model` as it moves (for live queries).
    pub fn watch(&self, model: crate::Model) -> Option<watch::Receiver<Position>> {
        self.handles
            .iter()
            .find(|h| h.status.lock().expect("status lock").name == model.name())
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
    let path = dir.join("read.lock");
    let file = std::fs::File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| ProjectionError::Setup {
            what: format!("create {}", path.display()),
            reason: e.to_string(),
        })?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(ProjectionError::Locked {
            dir: dir.to_path_buf(),
        }),
        Err(std::fs::TryLockError::Error(e)) => Err(ProjectionError::Setup {
            what: format!("lock {}", path.display()),
            reason: e.to_string(),
        }),
    }
}
