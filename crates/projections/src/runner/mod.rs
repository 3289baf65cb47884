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
//! own, by itself, with nothing lost or applied twice (the failed batch rolled back).
//!
//! Each model lives in generations of its own file ([`generations`]): a rebuild, or a new
//! version of a projection's SQL, builds a new generation beside the live one ([`bluegreen`])
//! and switches to it in one moment; the old one is kept for a rollback until the next switch.
//!
//! Modules by reason to change: [`status`] (what ops see), [`control`] (what ops do), [`pipeline`]
//! (feeders and workers), [`versions`] (schema versions), [`generations`] and [`bluegreen`]
//! (storage, rebuilds beside live, switch and rollback), [`sqlite`] (connections and journal
//! modes); this file is the read side's API.

mod bluegreen;
pub mod control;
pub mod generations;
mod pipeline;
pub(crate) mod sqlite;
pub use sqlite::open_read_only;
pub mod status;
mod versions;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rusqlite::Connection;
use tokio::runtime::Handle;
use tokio::sync::watch;

use leadflow_keyring::Keyring;
use leadflow_store::{EventStore, Position};

use crate::{Projection, ProjectionError};

pub use bluegreen::RebuildError;
pub use control::{Control, ControlError, DeadLetter, StoppedAt};
pub use generations::{Generations, TableDiff};
pub use leadflow_domain::ops::Generation;
use pipeline::{
    group_by_checkpoint, skipped_by_all, spawn, Feeder, Member, Publisher, Worker, READ_AHEAD,
};
use sqlite::{open_reader, open_writer, rebuild_journal};
pub use status::{retry_delay, ProjectionState, ProjectionStatus, RETRY_FIRST, RETRY_MAX};
use versions::prepare;

/// What every generation's worker shares: where models live, the log, keys, threads.
pub(crate) struct Shared {
    pub(crate) dir: PathBuf,
    pub(crate) store: Arc<dyn EventStore>,
    pub(crate) keys: Option<Arc<Keyring>>,
    pub(crate) runtime: Handle,
    /// The read side's end: every feeder and worker stops after its current batch.
    pub(crate) shutdown: watch::Sender<bool>,
    /// Every thread, feeders a retrying worker starts later included.
    pub(crate) threads: Arc<Mutex<Vec<JoinHandle<()>>>>,
    pub(crate) manifest: Mutex<generations::Manifest>,
    /// One rebuild, switch or rollback at a time.
    pub(crate) ops: tokio::sync::Mutex<()>,
}

/// One generation of a model, its worker running.
pub(crate) struct Slot {
    pub(crate) generation: u32,
    pub(crate) status: Arc<Mutex<ProjectionStatus>>,
    pub(crate) path: PathBuf,
    /// Where operators' instructions go.
    pub(crate) control: std::sync::mpsc::Sender<control::Request>,
    /// Whether this generation serves: only the serving one moves the public checkpoint.
    pub(crate) serving: Arc<AtomicBool>,
    /// Ends this generation's worker (after a switch away from it, or at shutdown).
    pub(crate) retire: watch::Sender<bool>,
}

/// A model: the generation that serves, the one being built beside it, if any.
pub(crate) struct Running {
    pub(crate) name: &'static str,
    pub(crate) live: RwLock<Slot>,
    pub(crate) building: Mutex<Option<Slot>>,
    /// The position the serving generation has applied, never going back: what
    /// `consistency` waits on and subscriptions follow, across switches.
    pub(crate) public: Arc<watch::Sender<Position>>,
    /// A projection of this model, for fresh ones ([`Projection::fresh`]).
    pub(crate) template: Mutex<Box<dyn Projection>>,
    /// Why the last rebuild was not switched in.
    pub(crate) refused: Mutex<Option<String>>,
    /// Set when a generation of this model applies an erasure (see `forget_previous`).
    pub(crate) erased: Arc<AtomicBool>,
}

impl Running {
    pub(crate) fn live_status(&self) -> ProjectionStatus {
        let live = self.live.read().expect("live lock");
        let status = live.status.lock().expect("status lock").clone();
        status
    }

    pub(crate) fn building_status(&self) -> Option<ProjectionStatus> {
        let building = self.building.lock().expect("building lock");
        building
            .as_ref()
            .map(|b| b.status.lock().expect("status lock").clone())
    }

    /// Moves the public checkpoint to `position`, if that is further.
    pub(crate) fn publish(&self, position: Position) {
        self.public.send_if_modified(|p| {
            let further = position > *p;
            if further {
                *p = position;
            }
            further
        });
    }
}

/// Opens generation `generation` of `name` and starts its worker (not its feeder: the caller
/// puts the returned member on one).
pub(crate) fn start_slot(
    shared: &Shared,
    name: &'static str,
    generation: u32,
    projection: Box<dyn Projection>,
    public: &Arc<watch::Sender<Position>>,
    serving: bool,
    erased: &Arc<AtomicBool>,
) -> Result<(Slot, Member), ProjectionError> {
    let path = generations::path_of(&shared.dir, name, generation);
    let mut conn = open_writer(&path)?;
    let (checkpoint, rebuilding) = prepare(&mut conn, projection.as_ref())?;
    let skips = control::skipped(&conn)?;
    let mut projection = projection;
    projection.set_rebuilding(rebuilding);
    if rebuilding {
        rebuild_journal(&conn, name)?;
    }
    let status = Arc::new(Mutex::new(ProjectionStatus {
        name,
        version: projection.version(),
        generation,
        checkpoint,
        head: Position::START,
        state: ProjectionState::Starting,
        events_per_sec: 0.0,
        error: None,
        attempts: 0,
        next_attempt: None,
        rebuilding,
        stopped_at: None,
        rebuild: None,
        refused: None,
    }));
    let serving = Arc::new(AtomicBool::new(serving));
    let (inbox, rx) = std::sync::mpsc::sync_channel(READ_AHEAD);
    let (control, orders) = std::sync::mpsc::channel();
    let (retire, retired) = watch::channel(*shared.shutdown.borrow());
    let worker = Worker {
        control: orders,
        skips: skips.clone(),
        stopped_at: None,
        run_to: None,
        purge_owed: false,
        rebuilding,
        projection,
        conn,
        store: shared.store.clone(),
        keys: shared.keys.clone(),
        runtime: shared.runtime.clone(),
        status: status.clone(),
        checkpoint: Publisher {
            public: public.clone(),
            serving: serving.clone(),
            erased: erased.clone(),
        },
        shutdown: retired,
        threads: shared.threads.clone(),
    };
    let thread = spawn(
        format!("projection-{name}-g{generation}"),
        checkpoint,
        move || worker.run(checkpoint, rx),
    )?;
    shared.threads.lock().expect("threads lock").push(thread);
    let member = Member {
        name,
        checkpoint,
        inbox,
        status: status.clone(),
        skips,
    };
    let slot = Slot {
        generation,
        status,
        path,
        control,
        serving,
        retire,
    };
    Ok((slot, member))
}

impl Shared {
    /// One feeder for `members`, reading the log from `from`.
    /// Starts a feeder of `members` from `from`; `background` when they are all generations
    /// built beside live ones (its thread then runs at a lower priority).
    pub(crate) fn feed(
        &self,
        members: Vec<Member>,
        from: Position,
        background: bool,
    ) -> Result<(), ProjectionError> {
        if members.is_empty() {
            return Ok(());
        }
        let names: Vec<&str> = members.iter().map(|m| m.name).collect();
        let feeder = Feeder {
            skips: skipped_by_all(&members),
            store: self.store.clone(),
            keys: self.keys.clone(),
            runtime: self.runtime.clone(),
            shutdown: self.shutdown.subscribe(),
            stop: None,
            members,
            background,
        };
        let thread = spawn(format!("feed-{}", names.join("+")), from, move || {
            feeder.run(from)
        })?;
        self.threads.lock().expect("threads lock").push(thread);
        Ok(())
    }
}

/// The running read side: every model's generations, status and read connections.
pub struct ReadSide {
    /// Held while running: two processes applying the same batches would double them.
    _lock: std::fs::File,
    shared: Arc<Shared>,
    handles: Vec<Arc<Running>>,
    /// Idle read connections, by the file they read.
    readers: Mutex<HashMap<PathBuf, Vec<Connection>>>,
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
        let (shutdown, _) = watch::channel(false);
        let shared = Arc::new(Shared {
            dir: dir.to_path_buf(),
            store,
            keys,
            runtime: Handle::current(),
            shutdown,
            threads: Arc::new(Mutex::new(Vec::new())),
            manifest: Mutex::new(generations::Manifest::load(dir)?),
            ops: tokio::sync::Mutex::new(()),
        });
        let mut handles = Vec::new();
        let mut members = Vec::new();
        let mut builds = Vec::new();
        for projection in projections {
            let name = projection.name();
            let gens = new_version_beside(&shared, projection.as_ref())?;
            let public = Arc::new(watch::channel(Position::START).0);
            let erased = Arc::new(AtomicBool::new(false));
            let (live, member) = start_slot(
                &shared,
                name,
                gens.live,
                projection.fresh(),
                &public,
                true,
                &erased,
            )?;
            public.send_replace(member.checkpoint);
            members.push(member);
            // A rebuild under way when the process stopped goes on from its checkpoint.
            let building = match gens.building {
                Some(generation) => {
                    let (slot, member) = start_slot(
                        &shared,
                        name,
                        generation,
                        projection.fresh(),
                        &public,
                        false,
                        &erased,
                    )?;
                    members.push(member);
                    Some(slot)
                }
                None => None,
            };
            let running = Arc::new(Running {
                name,
                live: RwLock::new(live),
                building: Mutex::new(building),
                public,
                template: Mutex::new(projection),
                refused: Mutex::new(None),
                erased,
            });
            if gens.building.is_some() {
                builds.push((running.clone(), gens.verify));
            }
            handles.push(running);
        }
        // Projections at about the same checkpoint share one reader of the log: it is read
        // and decoded once for all of them. One far behind (rebuilding, say) gets its own, so
        // it holds none of the others back.
        for (from, members) in group_by_checkpoint(members, |m| m.checkpoint) {
            shared.feed(members, from, false)?;
        }
        shared
            .runtime
            .spawn(bluegreen::forget_previous(shared.clone(), handles.clone()));
        for (running, verify) in builds {
            tracing::info!(
                projection = running.name,
                "resuming the rebuild beside the live model"
            );
            shared
                .runtime
                .spawn(bluegreen::watch_build(shared.clone(), running, verify));
        }
        Ok(Self {
            _lock: lock,
            shared,
            handles,
            readers: Mutex::new(HashMap::new()),
        })
    }

    pub(crate) fn running(&self, name: &str) -> Option<Arc<Running>> {
        self.handles.iter().find(|h| h.name == name).cloned()
    }

    /// Every projection's status, with the log's current head (and, while one is rebuilt
    /// beside it, the new generation's in `rebuild`).
    pub async fn status(&self) -> Vec<ProjectionStatus> {
        let head = self.shared.store.head().await.unwrap_or_default();
        let at_head = |mut s: ProjectionStatus| {
            s.head = head;
            if s.state == ProjectionState::Live && s.checkpoint < head {
                s.state = ProjectionState::CatchingUp;
            }
            // A model resumed (or switched in) at the head of a quiet log gets no batch to say
            // it is live: it is.
            if s.state == ProjectionState::CatchingUp && !s.rebuilding && s.checkpoint >= head {
                s.state = ProjectionState::Live;
            }
            s
        };
        self.handles
            .iter()
            .map(|h| {
                let mut s = at_head(h.live_status());
                s.rebuild = h.building_status().map(|b| Box::new(at_head(b)));
                s.refused = h.refused.lock().expect("refused lock").clone();
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
                let s = h.live_status();
                (s.state.is_unhealthy() || s.state == ProjectionState::Paused).then_some(s.name)
            })
            .collect()
    }

    /// Waits until every projection has applied the log up to `position` (read-your-writes).
    /// A switch to a new generation in between changes nothing: the public checkpoint never
    /// goes back.
    pub async fn wait_for(&self, position: Position, timeout: Duration) -> Result<(), ReadError> {
        let started = Instant::now();
        for h in &self.handles {
            let mut rx = h.public.subscribe();
            let remaining = timeout.saturating_sub(started.elapsed());
            let reached = tokio::time::timeout(remaining, async {
                loop {
                    if *rx.borrow_and_update() >= position {
                        return Ok(());
                    }
                    let status = h.live_status();
                    if status.state == ProjectionState::Failed {
                        return Err(ReadError::Failed {
                            name: status.name,
                            error: status.error.unwrap_or_default(),
                        });
                    }
                    // Failures show in the status, not in the checkpoint: look again now
                    // and then.
                    let _ = tokio::time::timeout(Duration::from_millis(250), rx.changed()).await;
                }
            })
            .await;
            match reached {
                Ok(result) => result?,
                Err(_) => {
                    let status = h.live_status();
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
    /// comes from one snapshot of the database if it runs in one transaction; a query that
    /// starts before a switch reads the old generation to its end, one after it the new.
    pub async fn read<T: Send + 'static>(
        self: &Arc<Self>,
        model: crate::Model,
        f: impl FnOnce(&mut Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, ReadError> {
        let name = model.name();
        let this = self.clone();
        tokio::task::spawn_blocking(move || {
            let running = this
                .running(name)
                .ok_or_else(|| ReadError::Unknown(name.to_owned()))?;
            let path = running.live.read().expect("live lock").path.clone();
            let pooled = {
                let mut pool = this.readers.lock().expect("reader pool");
                // Connections to generations switched away from: closed, so a removed file's
                // space is given back.
                if pool.len() > this.handles.len() {
                    let live: Vec<PathBuf> = this
                        .handles
                        .iter()
                        .map(|h| h.live.read().expect("live lock").path.clone())
                        .collect();
                    pool.retain(|p, _| live.contains(p));
                }
                pool.get_mut(&path).and_then(Vec::pop)
            };
            let mut conn = match pooled {
                Some(c) => c,
                None => open_reader(&path)?,
            };
            let result = f(&mut conn);
            // Back to the pool while its generation serves; closed once switched away from.
            let serving = running.live.read().expect("live lock").path == path;
            let mut pool = this.readers.lock().expect("reader pool");
            if serving {
                pool.entry(path).or_default().push(conn);
            } else {
                pool.remove(&path);
            }
            Ok(result?)
        })
        .await
        .map_err(|e| ReadError::Task(e.to_string()))?
    }

    /// The checkpoint of `model` as it moves (for live queries), across switches.
    pub fn watch(&self, model: crate::Model) -> Option<watch::Receiver<Position>> {
        self.running(model.name()).map(|h| h.public.subscribe())
    }

    /// Tells the read model `name` what to do (pause, resume, retry, skip) and waits for it to
    /// be done or refused; done, it names the event a retry or a skip was about.
    pub async fn control(&self, name: &str, control: Control) -> control::Answer {
        self.control_generation(name, Generation::Live, control)
            .await
    }

    /// [`Self::control`] of one generation of `name`: the live one, or the one a rebuild is
    /// building beside it (paused at a busy hour, or stopped at an event the new version
    /// cannot apply). An instruction waits for a switch or a comparison under way to end and
    /// is never interleaved with one, which hold and run both generations themselves.
    pub async fn control_generation(
        &self,
        name: &str,
        generation: Generation,
        control: Control,
    ) -> control::Answer {
        let running = self
            .running(name)
            .ok_or_else(|| ControlError::Unknown(name.to_owned()))?;
        let _one_at_a_time = self.shared.ops.lock().await;
        let sender = match generation {
            Generation::Live => running.live.read().expect("live lock").control.clone(),
            Generation::Building => running
                .building
                .lock()
                .expect("building lock")
                .as_ref()
                .map(|b| b.control.clone())
                .ok_or(ControlError::NoBuild { name: running.name })?,
        };
        let (reply, answer) = tokio::sync::oneshot::channel();
        let sent = sender.send(control::Request { control, reply });
        sent.map_err(|_| ControlError::Stopped { name: running.name })?;
        answer
            .await
            .map_err(|_| ControlError::Stopped { name: running.name })?
    }

    /// The events the read model `name` skipped, in log order.
    pub async fn dead_letters(&self, name: &str) -> Result<Vec<DeadLetter>, ReadError> {
        let running = self
            .running(name)
            .ok_or_else(|| ReadError::Unknown(name.to_owned()))?;
        let path = running.live.read().expect("live lock").path.clone();
        tokio::task::spawn_blocking(move || {
            let conn = open_reader(&path)?;
            Ok(control::dead_letters(&conn)?)
        })
        .await
        .map_err(|e| ReadError::Task(e.to_string()))?
    }

    /// The log the read models follow, for readers that need what no model keeps (the
    /// history feed's payloads): the read side's own reader, not the write side's.
    pub fn log(&self) -> &Arc<dyn EventStore> {
        &self.shared.store
    }

    /// Stops every projection after its current batch and waits for the threads.
    pub fn shutdown(&self) {
        // The workers first: a worker whose feeder ends before it is told to stop takes that
        // for a failure of the log's reader, and backs off to read again.
        for h in &self.handles {
            let _ = h.live.read().expect("live lock").retire.send(true);
            if let Some(b) = h.building.lock().expect("building lock").as_ref() {
                let _ = b.retire.send(true);
            }
        }
        let _ = self.shared.shutdown.send(true);
        // A worker may start a feeder until it sees the signal: join until none is left.
        loop {
            let threads = std::mem::take(&mut *self.shared.threads.lock().expect("threads lock"));
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

/// A model whose live generation holds another version of its SQL: the new version builds
/// in a new generation beside it. This build has no code to keep the old version following
/// the log, so the new generation serves at once, filling up as it goes (as a rebuild in
/// place would); the old file is kept whole as `previous`, so rolling the binary back finds
/// it as it was. Returns the generations to start.
fn new_version_beside(
    shared: &Shared,
    projection: &dyn Projection,
) -> Result<Generations, ProjectionError> {
    let name = projection.name();
    let mut manifest = shared.manifest.lock().expect("manifest lock");
    let gens = manifest.get(name);
    let live = generations::path_of(&shared.dir, name, gens.live);
    match versions::recorded_version(&live) {
        Some(found) if found != projection.version() => {
            // A binary rolled back finds its own version in the generation it left: that one
            // serves again, catching up from where it stopped.
            let kept = gens.previous.filter(|p| {
                Some(*p) != gens.building
                    && versions::recorded_version(&generations::path_of(&shared.dir, name, *p))
                        == Some(projection.version())
            });
            if let Some(kept) = kept {
                if let Some(building) = gens.building {
                    generations::remove(&shared.dir, name, building);
                }
                let back = Generations {
                    live: kept,
                    building: None,
                    previous: Some(gens.live),
                    verify: false,
                };
                manifest.set(&shared.dir, name, back)?;
                tracing::info!(
                    projection = name,
                    from = found,
                    to = projection.version(),
                    generation = kept,
                    "the previous generation has this version: it serves again"
                );
                return Ok(back);
            }
            let generation = gens.next();
            generations::remove(&shared.dir, name, generation);
            control::inherit(&live, &generations::path_of(&shared.dir, name, generation))?;
            let next = Generations {
                live: generation,
                building: None,
                previous: Some(gens.live),
                verify: false,
            };
            manifest.set(&shared.dir, name, next)?;
            if let Some(outdated) = gens.previous {
                generations::remove(&shared.dir, name, outdated);
            }
            tracing::info!(
                projection = name,
                from = found,
                to = projection.version(),
                generation,
                "new projection version: building a new generation, the old one kept"
            );
            Ok(next)
        }
        _ => Ok(gens),
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
