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
use super::generations::{self, compare, Generations, TableDiff};
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
            if running.building.lock().expect("building lock").is_some() {
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
            let (slot, member) = tokio::task::spawn_blocking(move || {
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
                let projection = r.template.lock().expect("template lock").fresh();
                let started =
                    start_slot(&shared, r.name, generation, projection, &r.public, false)?;
                let mut manifest = shared.manifest.lock().expect("manifest lock");
                let gens = manifest.get(r.name);
                manifest.set(
                    &shared.dir,
                    r.name,
                    Generations {
                        building: Some(generation),
                        verify,
                        ..gens
                    },
                )?;
                Ok::<_, ProjectionError>(started)
            })
            .await
            .map_err(|e| RebuildError::Failed {
                name: running.name,
                reason: e.to_string(),
            })?
            .map_err(failed)?;
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
            .feed(members, Position::START)
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
            let projection = r.template.lock().expect("template lock").fresh();
            let started = start_slot(&shared, r.name, previous, projection, &r.public, false)?;
            let mut manifest = shared.manifest.lock().expect("manifest lock");
            let gens = manifest.get(r.name);
            manifest.set(
                &shared.dir,
                r.name,
                Generations {
                    building: Some(previous),
                    previous: None,
                    verify: false,
                    ..gens
                },
            )?;
            Ok::<_, ProjectionError>(started)
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
            .feed(vec![member], from)
            .map_err(|e| RebuildError::Failed {
                name,
                reason: e.to_string(),
            })
    }
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
        let Some(built) = running.building_status() else {
            return;
        };
        let live = running.live_status();
        if built.state != ProjectionState::Live
            || built.rebuilding
            || built.checkpoint < live.checkpoint
        {
            continue;
        }
        let _one_at_a_time = shared.ops.lock().await;
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
        if let Err(e) = switch(&shared, &running).await {
            tracing::error!(projection = running.name, error = %e, "the switch failed; the live model stays");
            *running.refused.lock().expect("refused lock") = Some(e.to_string());
        }
        return;
    }
}

/// Holds the live and the new generation at one log position (pausing both, then running the
/// one behind up to the other) and compares them.
async fn hold_and_compare(running: &Running) -> Result<Vec<TableDiff>, String> {
    let (live, built) = {
        let live = running.live.read().expect("live lock");
        let building = running.building.lock().expect("building lock");
        let Some(building) = building.as_ref() else {
            return Err("the new generation is gone".to_owned());
        };
        (live.handle(), building.handle())
    };
    live.pause().await?;
    built.pause().await?;
    let (l, b) = (live.checkpoint(), built.checkpoint());
    if l < b {
        live.run_to(b).await?;
    } else if b < l {
        built.run_to(l).await?;
    }
    let (live_path, built_path) = (live.path.clone(), built.path.clone());
    let compared = tokio::task::spawn_blocking(move || compare(&live_path, &built_path))
        .await
        .map_err(|e| e.to_string())
        .and_then(|r| r.map_err(|e| e.to_string()));
    live.resume().await?;
    compared
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
        // Its worker lets go of the file once it sees the retirement.
        let (dir, name) = (shared.dir.clone(), running.name);
        tokio::task::spawn_blocking(move || {
            std::thread::sleep(Duration::from_millis(500));
            generations::remove(&dir, name, generation);
        });
    }
    *running.refused.lock().expect("refused lock") = Some(why);
}

/// The switch: the new generation serves from this moment. Its checkpoint is at least the old
/// one's, so no `consistency` wait met before is unmet after.
async fn switch(shared: &Shared, running: &Running) -> Result<(), ProjectionError> {
    let Some(built) = running.building.lock().expect("building lock").take() else {
        return Ok(());
    };
    let new_generation = built.generation;
    let old: Slot = {
        let mut live = running.live.write().expect("live lock");
        built.serving.store(true, Ordering::SeqCst);
        running.publish(built.status.lock().expect("status lock").checkpoint);
        let old = std::mem::replace(&mut *live, built);
        old.serving.store(false, Ordering::SeqCst);
        old
    };
    let _ = old.retire.send(true);
    let outdated = {
        let mut manifest = shared.manifest.lock().expect("manifest lock");
        let gens = manifest.get(running.name);
        manifest.set(
            &shared.dir,
            running.name,
            Generations {
                live: new_generation,
                building: None,
                previous: Some(old.generation),
                verify: false,
            },
        )?;
        // The generation before the old one is no longer needed; the old one is kept for a
        // rollback until the next switch.
        gens.previous
            .filter(|p| *p != new_generation && *p != old.generation)
    };
    if let Some(outdated) = outdated {
        generations::remove(&shared.dir, running.name, outdated);
    }
    // Paused for a comparison: it goes on now.
    let live = running.live.read().expect("live lock").handle();
    if live.status().state == ProjectionState::Paused {
        let _ = live.resume().await;
    }
    tracing::info!(
        projection = running.name,
        from = old.generation,
        to = new_generation,
        "switched to the new generation"
    );
    Ok(())
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
            .map_err(|e| e.to_string())
    }

    async fn pause(&self) -> Result<(), String> {
        self.tell(Control::Pause).await?;
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
        loop {
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
