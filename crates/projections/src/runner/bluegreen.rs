//! Rebuilds beside the live model, the switch, and rollback.
//!
//! `rebuild` starts a new generation of a model (a fresh projection over a new file, which
//! inherits the live one's dead letters) on a feeder of its own from the start of the log,
//! while the live generation keeps serving and following the log. A watcher switches once the
//! new one has caught up with the log and with the live one: in one moment, under the model's
//! lock, queries start reading the new file, the public checkpoint (what `consistency` waits
//! on) moves on from the new one, which is never behind the old one; the old worker stops and
//! its file stays as `previous`. With `verify`, both are first held at one log position and
//! compared table by table ([`compare`]); a difference refuses the switch and says where.
//! `rollback` runs the previous generation up to the live one the same way and switches back.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use leadflow_store::Position;

use super::control::{self, Control};
use super::generations::{self, Generations, TableDiff};
use super::{start_slot, Running, Shared, Slot};
use super::{ProjectionState, ReadSide};
use crate::ProjectionError;

/// How often a watcher looks at a new generation's progress.
const WATCH_EVERY: Duration = Duration::from_millis(50);

/// Why an operator's rebuild or rollback was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RebuildError {
    #[error("unknown read model {0}")]
    Unknown(String),
    #[error("{0} is already being rebuilt; wait for the switch (or a refusal) first")]
    UnderWay(&'static str),
    #[error("{0} has no previous generation to roll back to")]
    NoPrevious(&'static str),
    #[error("the previous generation of {name} is version {found}, this build's is {current}: roll the binary back instead")]
    OtherVersion {
        name: &'static str,
        found: u32,
        current: u32,
    },
    #[error("{name}: {reason}")]
    Failed { name: &'static str, reason: String },
}

impl ReadSide {
    /// Rebuilds `names` (every model when empty) beside the live ones, one feeder for all of
    /// them (the log read and decoded once), and switches each once it has caught up; with
    /// `verify`, only if it equals the live one at one log position.
    pub async fn rebuild(&self, names: &[&str], verify: bool) -> Result<(), RebuildError> {
        let _one_at_a_time = self.shared.ops.lock().await;
        let chosen: Vec<Arc<Running>> = if names.is_empty() {
            self.handles.clone()
        } else {
            names
                .iter()
                .map(|n| {
                    self.running(n)
                        .ok_or_else(|| RebuildError::Unknown((*n).to_owned()))
                })
                .collect::<Result<_, _>>()?
        };
        for running in &chosen {
            // A build that failed is replaced by the new one; one under way is not.
            let failed = running
                .building_status()
                .is_some_and(|b| b.state == ProjectionState::Failed);
            if failed {
                discard(&self.shared, running).await;
            } else if running.building.lock().expect("building lock").is_some() {
                return Err(RebuildError::UnderWay(running.name));
            }
        }
        let mut members = Vec::new();
        for running in &chosen {
            let failed = |e: ProjectionError| RebuildError::Failed {
                name: running.name,
                reason: e.to_string(),
            };
            let shared = self.shared.clone();
            let r = running.clone();
            let started = tokio::task::spawn_blocking(move || {
                let generation = {
                    let manifest = shared.manifest.lock().expect("manifest lock");
                    manifest.get(r.name).next()
                };
                generations::remove(&shared.dir, r.name, generation);
                let live = r.live.read().expect("live lock").path.clone();
                control::inherit(
                    &live,
                    &generations::path_of(&shared.dir, r.name, generation),
                )?;
                start_building(&shared, &r, generation, |gens| Generations {
                    building: Some(generation),
                    verify,
                    ..gens
                })
            })
            .await
            .map_err(|e| RebuildError::Failed {
                name: running.name,
                reason: e.to_string(),
            })
            .and_then(|r| r.map_err(failed));
            let (slot, member) = match started {
                Ok(started) => started,
                Err(e) => {
                    // The models started before this one are not left half begun.
                    for earlier in &chosen {
                        discard(&self.shared, earlier).await;
                    }
                    return Err(e);
                }
            };
            tracing::info!(
                projection = running.name,
                generation = slot.generation,
                verify,
                "rebuilding beside the live model"
            );
            *running.refused.lock().expect("refused lock") = None;
            *running.building.lock().expect("building lock") = Some(slot);
            members.push(member);
            tokio::spawn(watch_build(self.shared.clone(), running.clone(), verify));
        }
        self.shared
            .feed(members, Position::START, true)
            .map_err(|e| RebuildError::Failed {
                name: "rebuild",
                reason: e.to_string(),
            })
    }

    /// Goes back to the generation that served before the last switch: it catches up from
    /// where it stopped, then takes over in one moment, as a rebuild does.
    pub async fn rollback(&self, name: &str) -> Result<(), RebuildError> {
        let _one_at_a_time = self.shared.ops.lock().await;
        let running = self
            .running(name)
            .ok_or_else(|| RebuildError::Unknown(name.to_owned()))?;
        let name = running.name;
        if running.building.lock().expect("building lock").is_some() {
            return Err(RebuildError::UnderWay(name));
        }
        forget_if_erased(&self.shared, &running);
        let gens = self
            .shared
            .manifest
            .lock()
            .expect("manifest lock")
            .get(name);
        let previous = gens.previous.ok_or(RebuildError::NoPrevious(name))?;
        let path = generations::path_of(&self.shared.dir, name, previous);
        let current = running.template.lock().expect("template lock").version();
        match super::versions::recorded_version(&path) {
            Some(found) if found == current => {}
            Some(found) => {
                return Err(RebuildError::OtherVersion {
                    name,
                    found,
                    current,
                })
            }
            None => return Err(RebuildError::NoPrevious(name)),
        }
        let shared = self.shared.clone();
        let r = running.clone();
        let (slot, member) = tokio::task::spawn_blocking(move || {
            start_building(&shared, &r, previous, |gens| Generations {
                building: Some(previous),
                previous: None,
                verify: false,
                ..gens
            })
        })
        .await
        .map_err(|e| RebuildError::Failed {
            name,
            reason: e.to_string(),
        })?
        .map_err(|e| RebuildError::Failed {
            name,
            reason: e.to_string(),
        })?;
        tracing::info!(projection = name, generation = previous, "rolling back");
        let from = member.checkpoint;
        *running.building.lock().expect("building lock") = Some(slot);
        tokio::spawn(watch_build(self.shared.clone(), running.clone(), false));
        self.shared
            .feed(vec![member], from, true)
            .map_err(|e| RebuildError::Failed {
                name,
                reason: e.to_string(),
            })
    }
}

/// Starts generation `generation` of `r` as the one being built (a fresh projection, not
/// serving) and records it in the manifest as `next` says.
fn start_building(
    shared: &Shared,
    r: &Running,
    generation: u32,
    next: impl FnOnce(Generations) -> Generations,
) -> Result<(Slot, super::pipeline::Member), ProjectionError> {
    let projection = r.template.lock().expect("template lock").fresh();
    let started = start_slot(
        shared, r.name, generation, projection, &r.public, false, &r.erased,
    )?;
    let mut manifest = shared.manifest.lock().expect("manifest lock");
    let gens = manifest.get(r.name);
    manifest.set(&shared.dir, r.name, next(gens))?;
    Ok(started)
}

/// Watches a new generation until it can take over, then switches (after comparing, with
/// `verify`). Ends at shutdown, or when the build is gone.
pub(crate) async fn watch_build(shared: Arc<Shared>, running: Arc<Running>, verify: bool) {
    let mut shutdown = shared.shutdown.subscribe();
    loop {
        tokio::select! {
            _ = tokio::time::sleep(WATCH_EVERY) => {}
            _ = shutdown.wait_for(|s| *s) => return,
        }
        if running.building_status().is_none() {
            return;
        }
        // The head only grows: read before the lock, so a slow store holds up no operator.
        let head = shared.store.head().await.unwrap_or_default();
        // Judged under the lock an operator's instruction takes too: a generation paused at
        // the moment it caught up is not switched in.
        let _one_at_a_time = shared.ops.lock().await;
        let Some(built) = running.building_status() else {
            return;
        };
        let live = running.live_status();
        // Caught up with the log and with the live one; a rollback's generation already at
        // the head of a quiet log gets no batch to say so, hence the head.
        let following = matches!(
            built.state,
            ProjectionState::Live | ProjectionState::CatchingUp | ProjectionState::Starting
        );
        if !following
            || built.rebuilding
            || built.checkpoint < live.checkpoint
            || built.checkpoint < head
        {
            continue;
        }
        if verify && built.version == live.version {
            match hold_and_compare(&running).await {
                Ok(diffs) if diffs.is_empty() => {}
                Ok(diffs) => {
                    refuse(&shared, &running, describe(&diffs)).await;
                    return;
                }
                Err(why) => {
                    refuse(&shared, &running, why).await;
                    return;
                }
            }
        }
        match switch(&shared, &running).await {
            Ok(()) => {}
            // Shut down halfway: what the manifest says serves at the next start (the new
            // generation once it was written, else the live one, the build resuming).
            Err(e) if *shared.shutdown.borrow() => {
                tracing::info!(projection = running.name, error = %e, "the switch was cut short by the shutdown");
            }
            Err(e) => {
                // Before the swap the live generation goes on; after it (its resume refused)
                // the new one serves: the status says which.
                tracing::error!(projection = running.name, error = %e, "the switch failed");
                *running.refused.lock().expect("refused lock") = Some(e.to_string());
            }
        }
        return;
    }
}

/// Holds the live and the new generation at one log position (pausing both, then running the
/// one behind up to the other), opens a read snapshot of each, lets the live one go on, and
/// compares the snapshots. The live one is paused only while the snapshots open, and resumed
/// whatever happens.
async fn hold_and_compare(running: &Running) -> Result<Vec<TableDiff>, String> {
    let Some((live, built)) = running.handles() else {
        return Err("the new generation is gone".to_owned());
    };
    let held = async {
        live.pause().await?;
        built.pause().await?;
        let (l, b) = (live.checkpoint(), built.checkpoint());
        if l < b {
            live.run_to(b).await?;
        } else if b < l {
            built.run_to(l).await?;
        }
        let (live_path, built_path) = (live.path.clone(), built.path.clone());
        tokio::task::spawn_blocking(move || {
            let open = |path: &std::path::Path| -> rusqlite::Result<rusqlite::Connection> {
                let conn = rusqlite::Connection::open_with_flags(
                    path,
                    rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
                )?;
                // The snapshot starts with the first read of the transaction.
                conn.execute_batch("BEGIN")?;
                conn.query_row("SELECT count(*) FROM sqlite_master", [], |_| Ok(()))?;
                Ok(conn)
            };
            Ok::<_, rusqlite::Error>((open(&live_path)?, open(&built_path)?))
        })
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())
    }
    .await;
    live.resume().await?;
    let (a, b) = held?;
    tokio::task::spawn_blocking(move || generations::compare_snapshots(&a, &b))
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())
}

/// Why the comparison refused: each differing table with its counts and a few rows.
fn describe(diffs: &[TableDiff]) -> String {
    let tables: Vec<String> = diffs
        .iter()
        .map(|d| {
            let mut s = format!(
                "{}: {} rows live, {} rebuilt (hash {} vs {})",
                d.table,
                d.live_rows,
                d.new_rows,
                &d.live_hash[..12],
                &d.new_hash[..12]
            );
            for r in &d.only_live {
                s += &format!("; only live: {r}");
            }
            for r in &d.only_new {
                s += &format!("; only rebuilt: {r}");
            }
            s
        })
        .collect();
    format!(
        "the rebuilt model differs from the live one: {}",
        tables.join(" | ")
    )
}

/// Drops the new generation and says why; the live one goes on as it was.
async fn refuse(shared: &Shared, running: &Running, why: String) {
    tracing::warn!(projection = running.name, why = %why, "rebuild not switched in");
    discard(shared, running).await;
    *running.refused.lock().expect("refused lock") = Some(why);
}

/// Stops and removes the generation being built, if any.
async fn discard(shared: &Shared, running: &Running) {
    let built = running.building.lock().expect("building lock").take();
    if let Some(built) = built {
        let _ = built.retire.send(true);
        let generation = built.generation;
        {
            let mut manifest = shared.manifest.lock().expect("manifest lock");
            let gens = manifest.get(running.name);
            let _ = manifest.set(
                &shared.dir,
                running.name,
                Generations {
                    building: None,
                    verify: false,
                    ..gens
                },
            );
        }
        // Removed once its worker has let go of the file.
        let (dir, name, status) = (shared.dir.clone(), running.name, built.status.clone());
        tokio::spawn(async move {
            until_stopped(&status).await;
            generations::remove(&dir, name, generation);
        });
    }
}

/// The switch: the new generation serves from this moment. The old one is paused first, so
/// nothing of it reaches the public checkpoint after, and the new one is run up to it, so no
/// `consistency` wait met before is unmet after.
async fn switch(shared: &Shared, running: &Running) -> Result<(), ProjectionError> {
    let Some((live, built)) = running.handles() else {
        return Ok(());
    };
    let failed = |what: &str, e: String| ProjectionError::Setup {
        what: format!("{what} for the switch of {}", running.name),
        reason: e,
    };
    let held = async {
        live.pause().await?;
        built.pause().await?;
        let (l, b) = (live.checkpoint(), built.checkpoint());
        if b < l {
            built.run_to(l).await?;
        }
        Ok::<_, String>(())
    }
    .await;
    if let Err(e) = held {
        let _ = live.resume().await;
        let _ = built.resume().await;
        return Err(failed("hold both generations", e));
    }
    let Some(new) = running.building.lock().expect("building lock").take() else {
        let _ = live.resume().await;
        return Ok(());
    };
    let new_generation = new.generation;
    let old: Slot = {
        let mut serving = running.live.write().expect("live lock");
        new.serving.store(true, Ordering::SeqCst);
        running.publish(new.status.lock().expect("status lock").checkpoint);
        let old = std::mem::replace(&mut *serving, new);
        old.serving.store(false, Ordering::SeqCst);
        old
    };
    let _ = old.retire.send(true);
    let outdated = {
        let mut manifest = shared.manifest.lock().expect("manifest lock");
        let gens = manifest.get(running.name);
        let written = manifest.set(
            &shared.dir,
            running.name,
            Generations {
                live: new_generation,
                building: None,
                previous: Some(old.generation),
                verify: false,
            },
        );
        if let Err(e) = written {
            // The new generation serves; the manifest says otherwise until the next write.
            tracing::error!(projection = running.name, error = %e, "the manifest was not written after the switch");
        }
        // The generation before the old one is no longer needed; the old one is kept for a
        // rollback until the next switch.
        gens.previous
            .filter(|p| *p != new_generation && *p != old.generation)
    };
    if let Some(outdated) = outdated {
        generations::remove(&shared.dir, running.name, outdated);
    }
    built
        .resume()
        .await
        .map_err(|e| failed("resume the new generation", e))?;
    tracing::info!(
        projection = running.name,
        from = old.generation,
        to = new_generation,
        "switched to the new generation"
    );
    Ok(())
}

/// Waits until a retired generation's worker has stopped (and let go of its file).
pub(crate) async fn until_stopped(status: &Arc<std::sync::Mutex<super::ProjectionStatus>>) {
    for _ in 0..600 {
        let state = status.lock().expect("status lock").state;
        if matches!(state, ProjectionState::Stopped | ProjectionState::Failed) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

impl Running {
    /// Handles of the live and the new generation, if one is being built.
    fn handles(&self) -> Option<(Handle, Handle)> {
        let live = self.live.read().expect("live lock").handle();
        let building = self.building.lock().expect("building lock");
        Some((live, building.as_ref()?.handle()))
    }
}

/// What the watcher needs of a generation without holding the model's locks across awaits.
pub(crate) struct Handle {
    pub(crate) path: std::path::PathBuf,
    status: Arc<std::sync::Mutex<super::ProjectionStatus>>,
    control: std::sync::mpsc::Sender<control::Request>,
}

impl Slot {
    pub(crate) fn handle(&self) -> Handle {
        Handle {
            path: self.path.clone(),
            status: self.status.clone(),
            control: self.control.clone(),
        }
    }
}

impl Handle {
    fn status(&self) -> super::ProjectionStatus {
        self.status.lock().expect("status lock").clone()
    }

    fn checkpoint(&self) -> Position {
        self.status().checkpoint
    }

    async fn tell(&self, control: Control) -> Result<(), String> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        self.control
            .send(control::Request { control, reply })
            .map_err(|_| "the worker has stopped".to_owned())?;
        answer
            .await
            .map_err(|_| "the worker has stopped".to_owned())?
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    async fn pause(&self) -> Result<(), String> {
        self.tell(Control::Hold).await?;
        self.until_paused().await
    }

    async fn resume(&self) -> Result<(), String> {
        self.tell(Control::Resume).await
    }

    /// Runs a paused generation up to `position` (none past it) and waits until it holds there.
    async fn run_to(&self, position: Position) -> Result<(), String> {
        self.tell(Control::RunTo(position)).await?;
        self.until_paused().await
    }

    async fn until_paused(&self) -> Result<(), String> {
        let deadline = std::time::Instant::now() + Duration::from_secs(120);
        loop {
            if std::time::Instant::now() > deadline {
                return Err("the generation did not hold within 120 s".to_owned());
            }
            let s = self.status();
            match s.state {
                ProjectionState::Paused => return Ok(()),
                ProjectionState::Failed | ProjectionState::Stopped => {
                    return Err(format!(
                        "{} stopped: {}",
                        s.name,
                        s.error.unwrap_or_default()
                    ))
                }
                _ => tokio::time::sleep(Duration::from_millis(10)).await,
            }
        }
    }
}

/// An erasure ends the rollback window: the generation kept for a rollback stopped following
/// the log and still holds what was erased since, so once a model applies an erasure its
/// previous generation is removed (a rollback is refused from then on, until the next switch).
pub(crate) async fn forget_previous(shared: Arc<Shared>, handles: Vec<Arc<Running>>) {
    let mut shutdown = shared.shutdown.subscribe();
    loop {
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(200)) => {}
            _ = shutdown.wait_for(|s| *s) => return,
        }
        for running in &handles {
            if running.erased.load(Ordering::SeqCst) {
                let _one_at_a_time = shared.ops.lock().await;
                forget_if_erased(&shared, running);
            }
        }
    }
}

/// Removes `running`'s previous generation if the model applied an erasure since the last
/// look. The caller holds the ops lock.
fn forget_if_erased(shared: &Shared, running: &Running) {
    if !running.erased.swap(false, Ordering::SeqCst) {
        return;
    }
    let gone = {
        let mut manifest = shared.manifest.lock().expect("manifest lock");
        let gens = manifest.get(running.name);
        let previous = gens.previous.filter(|p| Some(*p) != gens.building);
        if previous.is_some() {
            let _ = manifest.set(
                &shared.dir,
                running.name,
                Generations {
                    previous: None,
                    ..gens
                },
            );
        }
        previous
    };
    if let Some(previous) = gone {
        generations::remove(&shared.dir, running.name, previous);
        tracing::info!(
            projection = running.name,
            generation = previous,
            "an erasure ends the rollback window: the previous generation is removed"
        );
    }
}
