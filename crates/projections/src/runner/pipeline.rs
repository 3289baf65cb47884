//! The pipeline: feeders read and decode the log once for the projections at about the same
//! checkpoint; each worker applies batches to its own database, retrying transient failures
//! from its checkpoint on a feeder of its own.

use std::collections::BTreeSet;
use std::sync::mpsc::RecvTimeoutError;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use futures::{FutureExt, StreamExt};
use rusqlite::{params, Connection};
use tokio::runtime::Handle;
use tokio::sync::watch;

use leadflow_codec::{Keys as _, NoKeys, Opened};
use leadflow_keyring::Keyring;
use leadflow_store::{EventStore, Position, RecordedEvent};

use super::control::{self, Control, ControlError, Request, StoppedAt};
use super::status::{retry_delay, ProjectionState, ProjectionStatus};
use super::versions::finish_rebuild;
use crate::{Envelope, Projection, ProjectionError};

/// Events applied per transaction, at most, once live.
pub(crate) const BATCH: usize = 4000;

/// Events per transaction while catching up: fewer commits, and fewer leads whose events
/// straddle two batches (each straddle is one more load and save of its card).
pub(crate) const CATCH_UP_BATCH: usize = 16_000;

/// Where a worker's time went while rebuilding, logged once caught up.
#[derive(Default)]
pub(crate) struct Spent {
    pub(crate) events: u64,
    pub(crate) waiting: Duration,
    pub(crate) working: Duration,
    pub(crate) applying: Duration,
    /// Commits include SQLite's automatic WAL checkpoints.
    pub(crate) committing: Duration,
}

pub(crate) struct Worker {
    /// Rebuilding from zero without secondary indexes, until caught up.
    pub(crate) rebuilding: bool,
    pub(crate) projection: Box<dyn Projection>,
    pub(crate) conn: Connection,
    pub(crate) store: Arc<dyn EventStore>,
    /// Opens sealed personal fields; `None`: a sealed event waits (the status says why).
    pub(crate) keys: Option<Arc<Keyring>>,
    pub(crate) runtime: Handle,
    pub(crate) status: Arc<Mutex<ProjectionStatus>>,
    /// Where the applied position goes: the model's public checkpoint, while this
    /// generation serves.
    pub(crate) checkpoint: Publisher,
    pub(crate) shutdown: watch::Receiver<bool>,
    /// The read side's threads, for the feeders this worker starts after a transient failure.
    pub(crate) threads: Arc<Mutex<Vec<JoinHandle<()>>>>,
    /// What operators tell this model (pause, resume, retry, skip).
    pub(crate) control: std::sync::mpsc::Receiver<Request>,
    /// The events this model skips: its dead letters.
    pub(crate) skips: BTreeSet<Position>,
    /// The event this model stopped at, while failed.
    pub(crate) stopped_at: Option<StoppedAt>,
    /// Where to hold once reached (an operator's `RunTo`): nothing past it is applied.
    pub(crate) run_to: Option<Position>,
    /// An erasure's WAL purge failed after its batch committed: tried again after the next.
    pub(crate) purge_owed: bool,
}

/// Publishes a generation's applied position as its model's public checkpoint while that
/// generation serves; the public checkpoint never goes back.
pub(crate) struct Publisher {
    pub(crate) public: Arc<watch::Sender<Position>>,
    pub(crate) serving: Arc<std::sync::atomic::AtomicBool>,
    /// Set once this model has applied an erasure: older generations kept for a rollback
    /// still hold what it erased, and go.
    pub(crate) erased: Arc<std::sync::atomic::AtomicBool>,
}

impl Publisher {
    pub(crate) fn send(&self, position: Position) {
        if !self.serving.load(std::sync::atomic::Ordering::SeqCst) {
            return;
        }
        self.public.send_if_modified(|p| {
            let further = position > *p;
            if further {
                *p = position;
            }
            further
        });
    }
}

/// How often a waiting worker looks at its operators' instructions.
const CONTROL_POLL: Duration = Duration::from_millis(50);

/// What a feeder hands its workers: a batch of decoded consecutive events, or the event that
/// does not decode (which stops the projection: position and reason).
/// (A `Vec` behind the `Arc`, not a slice: turning a batch into `Arc<[_]>` copies it whole.)
pub(crate) type Fed = Result<Arc<Vec<Envelope>>, (Position, String)>;

/// Batches queued between a feeder and a worker: enough to keep the worker busy while the
/// feeder reads and decodes the next ones, few enough to bound memory.
pub(crate) const READ_AHEAD: usize = 3;

/// Projections whose checkpoints are at most this far apart share a feeder (the ones ahead
/// skip what they have already applied).
pub(crate) const SHARE_WINDOW: u64 = 10_000;

pub(crate) fn spawn(
    name: String,
    position: Position,
    f: impl FnOnce() + Send + 'static,
) -> Result<JoinHandle<()>, ProjectionError> {
    std::thread::Builder::new()
        .name(name)
        .spawn(f)
        .map_err(|e| ProjectionError::Setup {
            what: format!("start a thread at position {position}"),
            reason: e.to_string(),
        })
}

/// Groups items whose positions lie within [`SHARE_WINDOW`] of their group's lowest, each
/// group with the position to read it from.
pub(crate) fn group_by_checkpoint<T>(
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
pub(crate) struct Member {
    pub(crate) name: &'static str,
    pub(crate) checkpoint: Position,
    pub(crate) inbox: std::sync::mpsc::SyncSender<Fed>,
    /// Where a lost store connection shows (the worker clears it once it applies again).
    pub(crate) status: Arc<Mutex<ProjectionStatus>>,
    /// The events this member skips (its dead letters).
    pub(crate) skips: BTreeSet<Position>,
}

/// The events every one of `members` skips: an undecodable one of them the feeder leaves out
/// (a member that skipped it while another did not gets it again and says so).
pub(crate) fn skipped_by_all(members: &[Member]) -> BTreeSet<Position> {
    let mut all = members.iter().map(|m| &m.skips);
    let Some(first) = all.next() else {
        return BTreeSet::new();
    };
    all.fold(first.clone(), |common, next| {
        common.intersection(next).copied().collect()
    })
}

/// Reads the log on its own thread, decodes it once and hands full batches to each of its
/// workers, so reading and decoding overlap with the workers' SQLite writes. A worker that
/// stops (failed, or shut down) drops out; the feeder ends when none is left or at shutdown.
pub(crate) struct Feeder {
    pub(crate) store: Arc<dyn EventStore>,
    pub(crate) keys: Option<Arc<Keyring>>,
    pub(crate) runtime: Handle,
    pub(crate) shutdown: watch::Receiver<bool>,
    /// A worker's own feeder ends when the worker drops the sender (it failed again, or
    /// stopped), even with no event to send.
    pub(crate) stop: Option<watch::Receiver<()>>,
    pub(crate) members: Vec<Member>,
    /// Undecodable events every member skips ([`skipped_by_all`]).
    pub(crate) skips: BTreeSet<Position>,
    /// Feeding only generations being built beside live ones: it runs at the lower priority
    /// of [`in_the_background`].
    pub(crate) background: bool,
}

/// The nice value of the threads building a generation beside the live one.
const BUILD_NICE: i32 = 10;

/// Lowers the calling thread's CPU priority to nice [`BUILD_NICE`] (never raises it): a
/// rebuild beside the live model takes the cores the API leaves, not the API's share of them,
/// and still has every core of a quiet server. Threads it starts inherit it. Linux sets it per
/// thread; elsewhere, or where it is refused, the thread keeps its priority.
pub(crate) fn in_the_background() {
    #[cfg(target_os = "linux")]
    {
        let thread = Some(rustix::thread::gettid());
        let now = rustix::process::getpriority_process(thread).unwrap_or(BUILD_NICE);
        if now < BUILD_NICE {
            match rustix::process::setpriority_process(thread, BUILD_NICE) {
                Ok(()) => leadflow_store::pace::in_the_background(),
                Err(e) => tracing::debug!(error = %e, "a rebuild's thread keeps its priority"),
            }
        }
    }
}

impl Feeder {
    /// Clears what [`Feeder::store_failed`] showed.
    fn store_recovered(&self) {
        for m in &self.members {
            let mut s = m.status.lock().expect("status lock");
            let ours = s
                .error
                .as_deref()
                .is_some_and(|e| e.starts_with(STORE_FAILED) || e.starts_with(KEYS_FAILED));
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
        tracing::warn!(
            attempt = attempts,
            error = %error,
            "the event store failed under the projections' subscription, subscribing again"
        );
        self.wait(attempts, format!("{STORE_FAILED}{error}"))
    }

    /// Every member shows `error` while the feeder waits (capped exponential backoff). False
    /// if shut down meanwhile.
    fn wait(&mut self, attempts: u32, error: String) -> bool {
        let delay = retry_delay(attempts);
        let next = chrono::Duration::from_std(delay)
            .ok()
            .map(|d| chrono::Utc::now() + d);
        for m in &self.members {
            let mut s = m.status.lock().expect("status lock");
            if s.state != ProjectionState::Failed {
                s.state = ProjectionState::Retrying;
                s.error = Some(error.clone());
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

    pub(crate) fn run(mut self, mut position: Position) {
        let _context = self.runtime.enter();
        if self.background {
            in_the_background();
        }
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
            // A feeder in the background reads the log at its own priority as well.
            let mut sub = if self.background {
                self.store.subscribe_all_inheriting_priority(position)
            } else {
                self.store.subscribe_all(position)
            };
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
                let Some(fed) = self.decode(batch) else {
                    return;
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

/// The subject a recorded event's metadata names (its sealed fields'), found without
/// decoding the metadata; a guess only for prefetching keys (decoding decides).
fn sealed_subject(metadata: &[u8]) -> Option<uuid::Uuid> {
    const FIELD: &[u8] = b"\"subject\":\"";
    // The codec writes the subject last: `..."subject":"<36 characters>"}`; look there
    // first, and search the whole only for metadata written otherwise.
    let tail = metadata.len().checked_sub(FIELD.len() + 36 + 2);
    let at = match tail {
        Some(t) if metadata[t..].starts_with(FIELD) => t + FIELD.len(),
        _ => metadata.windows(FIELD.len()).position(|w| w == FIELD)? + FIELD.len(),
    };
    let text = std::str::from_utf8(metadata.get(at..at + 36)?).ok()?;
    uuid::Uuid::parse_str(text).ok()
}

/// Whether `envelope` erases a data subject.
fn erases(envelope: &Envelope) -> bool {
    matches!(
        envelope.body,
        crate::Body::Subject {
            event: leadflow_domain::SubjectEvent::PersonalDataErased(_),
            ..
        }
    )
}

/// How the status shows a failing store, and failing keys.
const STORE_FAILED: &str = "event store: ";
const KEYS_FAILED: &str = "personal data keys: ";

impl Feeder {
    /// Decodes a batch, opening sealed personal fields; the keys it lacks are fetched in one
    /// go. While they cannot be had (no master key, a wrong one, the store down) the feeder
    /// waits, the status saying why, and nothing is applied, let alone as "erased". `None`:
    /// shut down meanwhile.
    fn decode(&mut self, batch: Vec<RecordedEvent>) -> Option<Fed> {
        // The keys first, all the batch's sealed events need, in one round trip: then every
        // event decodes in one pass.
        if let Some(keys) = &self.keys {
            let wanted: Vec<uuid::Uuid> = batch
                .iter()
                .filter(|e| leadflow_codec::seal::holds_sealed(&e.data))
                .filter_map(|e| sealed_subject(&e.metadata))
                .filter(|s| keys.opening(*s).is_none())
                .collect();
            if !wanted.is_empty() {
                self.fetch_keys(&wanted, false)?;
            }
        }
        // A large batch (catching up) decodes on every core (`in_chunks`): decoding and
        // opening sealed fields is more than one core keeps up with. A batch that erases
        // someone decodes in order, so what follows the erasure reads erased.
        let parallel = !batch
            .iter()
            .any(|e| e.event_type == leadflow_domain::subject::ERASED_EVENT);
        let mut envelopes = Vec::with_capacity(batch.len());
        let settled = if parallel {
            decode_in_parallel(self.keys.as_deref(), batch)
                .into_iter()
                .try_for_each(|decoded| self.settle(decoded, &mut envelopes))
        } else {
            batch.into_iter().try_for_each(|event| {
                let decoded = self.decode_one(event);
                self.settle(decoded, &mut envelopes)
            })
        };
        match settled {
            Ok(()) => {}
            Err(Stop::Shutdown) => return None,
            Err(Stop::Poison(position, reason)) => return Some(Err((position, reason))),
        }
        Some(Ok(Arc::new(envelopes)))
    }

    /// One decoded event into `envelopes`: a key it still needs is fetched (waiting for it if
    /// need be), an erasure makes its subject read as erased from here on.
    fn settle(
        &mut self,
        decoded: Result<Opened, leadflow_codec::DecodeError>,
        envelopes: &mut Vec<Envelope>,
    ) -> Result<(), Stop> {
        let mut decoded = decoded;
        let envelope = loop {
            match decoded {
                Ok(Opened::Envelope(envelope)) => break envelope,
                // Not fetched before (the cache was full, or the key is missing): this one
                // alone.
                Ok(Opened::NeedsKey { subject, event }) => {
                    self.fetch_keys(&[subject], true).ok_or(Stop::Shutdown)?;
                    decoded = self.decode_one(event);
                }
                // A dead letter: the operator skipped it on purpose.
                Err(poison) if self.skips.contains(&poison.position) => return Ok(()),
                Err(poison) => return Err(Stop::Poison(poison.position, poison.reason)),
            }
        };
        // An erasure made elsewhere: its key reads as erased here from now on.
        if let (Some(keys), crate::Body::Subject { subject, .. }) = (&self.keys, &envelope.body) {
            if erases(&envelope) {
                keys.erased(subject.as_uuid());
            }
        }
        envelopes.push(envelope);
        Ok(())
    }

    /// Fetches `subjects`' keys into the keyring, waiting (the status saying why) while they
    /// cannot be had. `required`: a subject with no key at all is a failure to wait on too.
    /// `None`: shut down meanwhile.
    fn fetch_keys(&mut self, subjects: &[uuid::Uuid], required: bool) -> Option<()> {
        let mut attempts = 0u32;
        loop {
            let loaded = match &self.keys {
                // On a runtime's thread, not this one: the store reads on its blocking pool,
                // and a pool thread started from a feeder in the background would inherit
                // its lower priority, then serve the API's queries at it for as long as it
                // lives.
                Some(keys) => {
                    let (keys, subjects) = (keys.clone(), subjects.to_vec());
                    self.runtime
                        .block_on(
                            self.runtime
                                .spawn(async move { keys.load_many(&subjects, required).await }),
                        )
                        .unwrap_or_else(|e| {
                            Err(leadflow_keyring::KeyError::Store(
                                leadflow_store::StoreError::Unavailable(format!(
                                    "the read of the keys stopped: {e}"
                                )),
                            ))
                        })
                }
                None => Err(leadflow_keyring::KeyError::NoMasterKey),
            };
            match loaded {
                Ok(()) => {
                    if attempts > 0 {
                        self.store_recovered();
                    }
                    return Some(());
                }
                Err(e) => {
                    attempts += 1;
                    tracing::warn!(attempt = attempts, error = %e, "personal data keys cannot be read; the projections wait");
                    if !self.wait(attempts, format!("{KEYS_FAILED}{e}")) {
                        return None;
                    }
                }
            }
        }
    }

    fn decode_one(&self, event: RecordedEvent) -> Result<Opened, leadflow_codec::DecodeError> {
        decode_one(self.keys.as_deref(), event)
    }
}

/// Whether a failure can be an event's own (what it asks of the model cannot be done: an
/// apply error, a constraint, a value out of range), so the model may stop at that event and
/// an operator may skip it. A database that is read-only, corrupt or otherwise broken fails
/// every event alike: no event is blamed, and nothing can be skipped for it.
fn caused_by_an_event(error: &ProjectionError) -> bool {
    use rusqlite::ErrorCode as C;
    match error {
        ProjectionError::Apply { .. } | ProjectionError::Decode { .. } => true,
        ProjectionError::Sqlite(e) => matches!(
            e.sqlite_error_code(),
            Some(C::ConstraintViolation | C::TooBig | C::TypeMismatch) | None
        ),
        _ => false,
    }
}

/// Why decoding a batch stopped.
enum Stop {
    Shutdown,
    Poison(Position, String),
}

fn decode_one(
    keys: Option<&Keyring>,
    event: RecordedEvent,
) -> Result<Opened, leadflow_codec::DecodeError> {
    leadflow_store::pace::tick();
    match keys {
        Some(keys) => leadflow_codec::decode_with_keys(event, keys),
        None => leadflow_codec::decode_with_keys(event, &NoKeys),
    }
}

/// `batch` decoded in order, in one chunk per core (at most four). The feeder `feed-<models>`
/// decodes on threads called `decode-<models>`: the system shows a thread's first 15 bytes,
/// which then tell the two apart.
fn decode_in_parallel(
    keys: Option<&Keyring>,
    batch: Vec<RecordedEvent>,
) -> Vec<Result<Opened, leadflow_codec::DecodeError>> {
    let name = std::thread::current()
        .name()
        .and_then(|n| n.strip_prefix("feed-"))
        .map_or_else(|| "decode".to_owned(), |n| format!("decode-{n}"));
    crate::in_chunks(&name, batch, |e| decode_one(keys, e))
}

/// How a worker's draining ended.
pub(crate) enum Drained {
    /// Shut down.
    Stopped,
    /// Stopped for the operator at an event (the status says which and why).
    Failed,
    /// A transient failure at the checkpoint; nothing of the failed batch was committed.
    Transient(ProjectionError),
    /// Paused by an operator.
    Paused,
    /// To go on from the checkpoint on a feeder of its own.
    Refeed,
}

/// What a stopped worker waits for.
#[derive(Clone, Copy)]
enum Waiting {
    Failed,
    Paused,
}

/// How a transient failure's backoff ended.
enum BackOff {
    /// Shut down meanwhile.
    Stopped,
    /// Time to try again (or an operator asked for it now).
    Again,
    /// An operator paused the model meanwhile.
    Paused,
}

impl Worker {
    pub(crate) fn run(mut self, mut position: Position, rx: std::sync::mpsc::Receiver<Fed>) {
        let runtime = self.runtime.clone();
        let _context = runtime.enter();
        // The feeder this worker started on. Once a drain ends (failed, paused, backing off,
        // refed) the worker is off it, and the next drain starts a feeder of its own from its
        // checkpoint, with the sender whose drop ends it.
        let mut feed: Option<(std::sync::mpsc::Receiver<Fed>, Option<watch::Sender<()>>)> =
            Some((rx, None));
        let mut attempts = 0u32;
        // An operator's pause outlives a restart.
        let mut next = self.paused_before().then_some(Drained::Paused);
        loop {
            let drained = match next.take() {
                Some(drained) => drained,
                None => {
                    let (fed, stop) = match feed.take() {
                        Some(feed) => feed,
                        None => match self.own_feeder(position) {
                            Ok((fed, stop)) => (fed, Some(stop)),
                            Err(e) => return self.fail(position, &e),
                        },
                    };
                    let (drained, fed) =
                        self.drain_here_or_behind(&mut position, fed, &mut attempts);
                    // However draining ended, this worker is off that feeder now: a shared one
                    // goes on for the others, an own one ends.
                    drop(fed);
                    drop(stop);
                    drained
                }
            };
            match drained {
                Drained::Stopped => {
                    tracing::debug!(
                        projection = self.projection.name(),
                        generation = self.status.lock().expect("status lock").generation,
                        "worker ends: stopped while draining"
                    );
                    break;
                }
                Drained::Refeed => {}
                Drained::Failed if *self.shutdown.borrow() => return,
                Drained::Paused if *self.shutdown.borrow() => break,
                drained @ (Drained::Failed | Drained::Paused) => {
                    // Off the feeder until told to go on, a pause kept from before a restart
                    // included (it never drained the one it started on): a shared one goes on
                    // for the others.
                    feed = None;
                    let waiting = if matches!(drained, Drained::Failed) {
                        Waiting::Failed
                    } else {
                        tracing::info!(projection = self.projection.name(), checkpoint = %position, "paused");
                        self.status.lock().expect("status lock").state = ProjectionState::Paused;
                        Waiting::Paused
                    };
                    if !self.await_operator(waiting, &mut position) {
                        tracing::debug!(projection = self.projection.name(), generation = self.status.lock().expect("status lock").generation, "worker ends: shut down or its control gone while waiting for an operator");
                        return;
                    }
                    attempts = 0;
                }
                Drained::Transient(error) => {
                    attempts += 1;
                    let delay = retry_delay(attempts);
                    self.retrying(position, &error, attempts, delay);
                    match self.back_off(delay) {
                        BackOff::Stopped => break,
                        BackOff::Again => {}
                        BackOff::Paused => next = Some(Drained::Paused),
                    }
                }
            }
        }
        // SQLite's advice for long-lived connections: refresh the planner's statistics of the
        // tables that changed much, on the way out (cheap when nothing did).
        let _ = self.conn.execute_batch("PRAGMA optimize;");
        self.status.lock().expect("status lock").state = ProjectionState::Stopped;
    }

    /// Drains `fed` on this thread while this generation serves; while it is built beside the
    /// live one, on a thread of lower priority ([`in_the_background`]) until it serves (a
    /// switch), so that once it serves it follows the log at this thread's priority, on a
    /// feeder of its own. Hands the receiver back.
    fn drain_here_or_behind(
        &mut self,
        position: &mut Position,
        fed: std::sync::mpsc::Receiver<Fed>,
        attempts: &mut u32,
    ) -> (Drained, std::sync::mpsc::Receiver<Fed>) {
        if self
            .checkpoint
            .serving
            .load(std::sync::atomic::Ordering::SeqCst)
        {
            let drained = self.drain(position, &fed, attempts, false);
            return (drained, fed);
        }
        let name = {
            let s = self.status.lock().expect("status lock");
            format!("build-{}-g{}", s.name, s.generation)
        };
        let runtime = self.runtime.clone();
        std::thread::scope(|scope| {
            let behind = std::thread::Builder::new()
                .name(name)
                .spawn_scoped(scope, move || {
                    let _context = runtime.enter();
                    in_the_background();
                    let drained = self.drain(position, &fed, attempts, true);
                    (drained, fed)
                });
            match behind {
                Ok(behind) => behind
                    .join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic)),
                Err(e) => {
                    let error = ProjectionError::Setup {
                        what: "start a rebuild's thread".to_owned(),
                        reason: e.to_string(),
                    };
                    // The receiver went with the closure: a feeder of its own after the wait.
                    let (_, none) = std::sync::mpsc::sync_channel(0);
                    (Drained::Transient(error), none)
                }
            }
        })
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
            keys: self.keys.clone(),
            runtime: self.runtime.clone(),
            shutdown: self.shutdown.clone(),
            stop: Some(stopped),
            members: vec![Member {
                name,
                checkpoint: position,
                inbox,
                status: self.status.clone(),
                skips: self.skips.clone(),
            }],
            skips: self.skips.clone(),
            background: !self
                .checkpoint
                .serving
                .load(std::sync::atomic::Ordering::SeqCst),
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

    /// Applies what the feeder hands over until shutdown or failure; `behind` (a generation
    /// built beside the live one), until it serves.
    fn drain(
        &mut self,
        position: &mut Position,
        rx: &std::sync::mpsc::Receiver<Fed>,
        attempts: &mut u32,
        behind: bool,
    ) -> Drained {
        let mut window = (Instant::now(), 0u64);
        let mut spent = Spent::default();
        // A retry of a rebuild that failed while finishing, or a rebuild killed while finishing
        // (its last batch at the head, its indexes and bulk structures not yet built), has no
        // event left to apply: it finishes now, not at the next event, and says so.
        if *attempts > 0 || self.rebuilding {
            match self.finish_if_caught_up(*position, &spent) {
                Ok(true) => {
                    *attempts = 0;
                    self.publish(*position, &mut window);
                    self.checkpoint.send(*position);
                }
                Ok(false) => {}
                Err(e) => return self.failed(*position, e),
            }
        }
        loop {
            if *self.shutdown.borrow() {
                return Drained::Stopped;
            }
            if self.paused_by_operator() {
                return Drained::Paused;
            }
            if self.run_to.is_some_and(|to| *position >= to) {
                return self.hold();
            }
            if behind
                && self
                    .checkpoint
                    .serving
                    .load(std::sync::atomic::Ordering::SeqCst)
            {
                return Drained::Refeed;
            }
            let waited = Instant::now();
            let fed = match rx.recv_timeout(CONTROL_POLL) {
                Ok(fed) => fed,
                Err(RecvTimeoutError::Timeout) => continue,
                Err(RecvTimeoutError::Disconnected) if *self.shutdown.borrow() => {
                    return Drained::Stopped
                }
                // The feeder ended under a model that was not told to stop: it must not stop
                // following the log without a word. It backs off and reads again from its
                // checkpoint on a feeder of its own, the status saying why.
                Err(RecvTimeoutError::Disconnected) => {
                    return Drained::Transient(ProjectionError::Store(
                        leadflow_store::StoreError::Unavailable(format!(
                            "the log's reader for read model {} stopped; reading again from its checkpoint",
                            self.projection.name()
                        )),
                    ))
                }
            };
            spent.waiting += waited.elapsed();
            let working = Instant::now();
            let from = *position;
            let batch = match fed {
                Ok(batch) => batch,
                // Skipped by this model, not by every model of a shared feeder: on a feeder
                // of its own, which leaves it out.
                Err((at, _)) if self.skips.contains(&at) => return Drained::Refeed,
                Err((at, reason)) => {
                    self.stopped_at = Some(StoppedAt {
                        position: at,
                        stream: String::new(),
                        event_type: "undecodable".to_owned(),
                        error: reason.clone(),
                    });
                    let error = ProjectionError::Decode {
                        position: at,
                        reason,
                    };
                    return self.failed(*position, error);
                }
            };
            // A shared feeder may start below this projection's checkpoint.
            let mut fresh = &batch[batch.partition_point(|e| e.position <= from)..];
            if let Some(to) = self.run_to {
                fresh = &fresh[..fresh.partition_point(|e| e.position <= to)];
                if fresh.is_empty() && batch.last().is_some_and(|e| e.position > to) {
                    // Everything up to it is applied: hold here.
                    return self.hold();
                }
            }
            let Some(last) = fresh.last().map(|e| e.position) else {
                continue;
            };
            let n = fresh.len() as u64;
            if let Err(e) = self.apply_pinned(fresh, last, position, &mut spent) {
                // What was applied before the failing event is committed: say so.
                self.checkpoint.send(*position);
                return self.failed(*position, e);
            }
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
                self.checkpoint.send(*position);
                return self.failed(*position, e);
            }
            // Status first: whoever the checkpoint wakes may read it.
            self.publish(*position, &mut window);
            self.checkpoint.send(*position);
        }
    }

    /// Applies `fresh` (through `last`) in one transaction, leaving out this model's dead
    /// letters. On a failure that names no event (a constraint, say) it applies the batch
    /// again event by event, so the model stops exactly at the event that fails: `position`
    /// is then the last one committed, and [`Worker::stopped_at`] the one that failed.
    fn apply_pinned(
        &mut self,
        fresh: &[Envelope],
        last: Position,
        position: &mut Position,
        spent: &mut Spent,
    ) -> Result<(), ProjectionError> {
        let kept: std::borrow::Cow<'_, [Envelope]> =
            if fresh.iter().any(|e| self.skips.contains(&e.position)) {
                fresh
                    .iter()
                    .filter(|e| !self.skips.contains(&e.position))
                    .cloned()
                    .collect::<Vec<_>>()
                    .into()
            } else {
                fresh.into()
            };
        let error = match self.apply(&kept, last, spent) {
            Ok(()) => {
                *position = last;
                return Ok(());
            }
            Err(e) if e.is_transient() || !caused_by_an_event(&e) => return Err(e),
            Err(e) => e,
        };
        if kept.len() == 1 {
            return Err(self.stop_at(&kept[0], error));
        }
        for event in kept.iter() {
            match self.apply(std::slice::from_ref(event), event.position, spent) {
                Ok(()) => *position = event.position,
                Err(e) if e.is_transient() || !caused_by_an_event(&e) => return Err(e),
                Err(e) => return Err(self.stop_at(event, e)),
            }
        }
        // Every event applied on its own: the batch's failure came from applying them together.
        tracing::warn!(projection = self.projection.name(), error = %error, "a batch failed whole and applied event by event");
        *position = last;
        Ok(())
    }

    /// Remembers `event` as the one this model stops at, and names it in the error.
    fn stop_at(&mut self, event: &Envelope, error: ProjectionError) -> ProjectionError {
        let reason = match error {
            ProjectionError::Apply { reason, .. } | ProjectionError::Decode { reason, .. } => {
                reason
            }
            other => other.to_string(),
        };
        let reason = format!("{} of {}: {reason}", event.event_type(), event.stream);
        self.stopped_at = Some(StoppedAt {
            position: event.position,
            stream: event.stream.clone(),
            event_type: event.event_type().to_owned(),
            error: reason.clone(),
        });
        ProjectionError::Apply {
            position: event.position,
            reason,
        }
    }

    /// Holds at the position an operator's `RunTo` asked for.
    fn hold(&mut self) -> Drained {
        self.run_to = None;
        self.status.lock().expect("status lock").state = ProjectionState::Paused;
        Drained::Paused
    }

    /// Whether an operator paused this model (answering any other instruction meanwhile).
    fn paused_by_operator(&mut self) -> bool {
        let name = self.projection.name();
        while let Ok(Request { control, reply }) = self.control.try_recv() {
            let answer = match control {
                Control::Pause | Control::Hold => {
                    let answer = self.hold_for(&control);
                    let paused = answer.is_ok();
                    let _ = reply.send(answer);
                    if paused {
                        return true;
                    }
                    continue;
                }
                Control::Resume => Ok(None),
                other => Err(ControlError::NotApplicable {
                    name,
                    action: other.label(),
                    state: "following the log",
                }),
            };
            let _ = reply.send(answer);
        }
        false
    }

    /// Waits out a transient failure's backoff, answering instructions meanwhile: a pause
    /// pauses at once, a retry tries again at once, the rest are refused.
    fn back_off(&mut self, delay: Duration) -> BackOff {
        let name = self.projection.name();
        let until = Instant::now() + delay;
        loop {
            if *self.shutdown.borrow() {
                return BackOff::Stopped;
            }
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return BackOff::Again;
            }
            let Request { control, reply } = match self.control.recv_timeout(left.min(CONTROL_POLL))
            {
                Ok(request) => request,
                Err(RecvTimeoutError::Timeout) => continue,
                Err(RecvTimeoutError::Disconnected) => return BackOff::Stopped,
            };
            match control {
                Control::Pause | Control::Hold => {
                    let answer = self.hold_for(&control);
                    let paused = answer.is_ok();
                    let _ = reply.send(answer);
                    if paused {
                        return BackOff::Paused;
                    }
                }
                Control::Retry => {
                    tracing::info!(projection = name, "retrying now, as an operator asked");
                    let _ = reply.send(Ok(None));
                    return BackOff::Again;
                }
                Control::Resume => {
                    let _ = reply.send(Ok(None));
                }
                other => {
                    let _ = reply.send(Err(ControlError::NotApplicable {
                        name,
                        action: other.label(),
                        state: "retrying after a transient failure",
                    }));
                }
            }
        }
    }

    /// Holds this model for `control` (a pause or a hold): says so in its status and, for an
    /// operator's pause, in its file, so that a restart holds it too.
    fn hold_for(&mut self, control: &Control) -> control::Answer {
        if matches!(control, Control::Pause) {
            self.keep_paused(true)?;
        }
        // Said before answering: whoever asked reads it next.
        self.status.lock().expect("status lock").state = ProjectionState::Paused;
        Ok(None)
    }

    /// Keeps (or ends) an operator's pause in the model's file.
    fn keep_paused(&self, paused: bool) -> Result<(), ControlError> {
        let name = self.projection.name();
        self.conn
            .execute(
                "UPDATE projection_state SET state = ?2 WHERE name = ?1",
                params![name, if paused { "paused" } else { "ok" }],
            )
            .map(|_| ())
            .map_err(|e| ControlError::Failed {
                name,
                reason: e.to_string(),
            })
    }

    /// Whether an operator paused this model before the server stopped.
    fn paused_before(&self) -> bool {
        self.conn
            .query_row(
                "SELECT state = 'paused' FROM projection_state WHERE name = ?1",
                [self.projection.name()],
                |r| r.get(0),
            )
            .unwrap_or(false)
    }

    /// Waits, failed or paused, for the instruction that lets the model go on (`retry` or
    /// `skip` after a failure, `resume` after a pause), answering the others. False: shut
    /// down meanwhile.
    fn await_operator(&mut self, waiting: Waiting, position: &mut Position) -> bool {
        loop {
            if *self.shutdown.borrow() {
                tracing::debug!(
                    projection = self.projection.name(),
                    generation = self.status.lock().expect("status lock").generation,
                    "told to stop while waiting for an operator"
                );
                return false;
            }
            let Request { control, reply } = match self.control.recv_timeout(CONTROL_POLL) {
                Ok(request) => request,
                Err(RecvTimeoutError::Timeout) => continue,
                Err(RecvTimeoutError::Disconnected) => {
                    tracing::debug!(
                        projection = self.projection.name(),
                        generation = self.status.lock().expect("status lock").generation,
                        "no one can instruct it any more"
                    );
                    return false;
                }
            };
            let answer = self.obey(waiting, control, position);
            let go_on = matches!(answer, Ok((true, _)));
            if go_on {
                // Said before answering: whoever asked reads it next.
                let mut s = self.status.lock().expect("status lock");
                s.state = ProjectionState::CatchingUp;
                s.error = None;
                s.stopped_at = None;
                s.checkpoint = *position;
            }
            let _ = reply.send(answer.map(|(_, about)| about));
            if go_on {
                return true;
            }
        }
    }

    /// Carries out `control` on a stopped model; whether it goes on, and the event a retry or
    /// a skip was about.
    fn obey(
        &mut self,
        waiting: Waiting,
        control: Control,
        position: &mut Position,
    ) -> Result<(bool, Option<Position>), ControlError> {
        let name = self.projection.name();
        let state = match waiting {
            Waiting::Failed => "failed",
            Waiting::Paused => "paused",
        };
        let refused = |action| ControlError::NotApplicable {
            name,
            action,
            state,
        };
        match (waiting, control) {
            // An operator's pause of a held generation is kept, as any other.
            (Waiting::Paused, Control::Pause) => self.keep_paused(true).map(|()| (false, None)),
            (Waiting::Paused, Control::Hold) => Ok((false, None)),
            (Waiting::Paused, Control::Resume) => {
                self.keep_paused(false)?;
                tracing::info!(projection = name, checkpoint = %position, "resumed");
                Ok((true, None))
            }
            (Waiting::Paused, Control::RunTo(to)) => {
                self.run_to = Some(to);
                Ok((true, None))
            }
            (Waiting::Failed, Control::Retry) => {
                tracing::info!(projection = name, checkpoint = %position, "retrying the event it stopped at");
                let about = self.stopped_at.take().map(|s| s.position);
                Ok((true, about))
            }
            (
                Waiting::Failed,
                Control::Skip {
                    position: asked,
                    reason,
                    by,
                },
            ) => {
                if reason.trim().is_empty() {
                    return Err(ControlError::NoReason);
                }
                let Some(stopped) = self.stopped_at.clone() else {
                    return Err(refused("skip"));
                };
                if stopped.position != asked {
                    return Err(ControlError::WrongPosition {
                        name,
                        stopped_at: stopped.position,
                        asked,
                    });
                }
                let recorded = self.conn.transaction().and_then(|tx| {
                    control::record_skip(&tx, name, &stopped, &reason, &by, chrono::Utc::now())?;
                    tx.commit()
                });
                if let Err(e) = recorded {
                    return Err(ControlError::Failed {
                        name,
                        reason: e.to_string(),
                    });
                }
                tracing::warn!(
                    projection = name,
                    position = %stopped.position,
                    event_type = %stopped.event_type,
                    reason = %reason,
                    by = %by,
                    "event skipped into the dead letters"
                );
                // Going on from the checkpoint, not from the skipped event: a batch that did
                // not decode was dropped whole, with the good events before the poison.
                self.skips.insert(stopped.position);
                self.stopped_at = None;
                Ok((true, Some(stopped.position)))
            }
            (_, other) => Err(refused(other.label())),
        }
    }

    fn apply(
        &mut self,
        envelopes: &[Envelope],
        last: Position,
        spent: &mut Spent,
    ) -> Result<(), ProjectionError> {
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
        // Committed: nothing from here may fail the batch, which would be applied again (a
        // registration counted twice). A purge that fails is owed, and tried after the next.
        let erased = envelopes.iter().any(erases);
        if erased {
            self.checkpoint
                .erased
                .store(true, std::sync::atomic::Ordering::SeqCst);
        }
        if self.purge_owed || erased {
            match super::sqlite::purge_wal(&self.conn, self.projection.name()) {
                Ok(()) => self.purge_owed = false,
                Err(e) => {
                    self.purge_owed = true;
                    tracing::warn!(
                        projection = self.projection.name(),
                        error = %e,
                        "an erasure's WAL could not be purged; tried again after the next batch"
                    );
                }
            }
        }
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
        s.rebuilding = self.rebuilding;
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
        s.stopped_at = self.stopped_at.clone();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sealed_subject_is_found_at_the_end_where_the_codec_writes_it_or_anywhere() {
        let subject = uuid::Uuid::from_u128(0x0190_0000_0000_8000_8000_0000_0000_0042);
        let meta = leadflow_codec::EventMetadata {
            actor: leadflow_codec::ActorMetadata {
                user_id: leadflow_domain::UserId::named("ivan.manager"),
                role: leadflow_domain::Role::Manager,
            },
            occurred_at: chrono::DateTime::UNIX_EPOCH,
            correlation_id: uuid::Uuid::nil(),
            causation_id: uuid::Uuid::nil(),
            command_id: uuid::Uuid::nil(),
            command: Some("RegisterLead".to_owned()),
            version: 2,
            subject: Some(subject),
        };
        assert_eq!(sealed_subject(&meta.encode()), Some(subject));
        let elsewhere = format!(r#"{{"subject":"{subject}","version":2}}"#);
        assert_eq!(sealed_subject(elsewhere.as_bytes()), Some(subject));
        let none = leadflow_codec::EventMetadata {
            subject: None,
            ..meta
        };
        assert_eq!(sealed_subject(&none.encode()), None);
    }

    #[test]
    fn only_a_failure_an_event_can_cause_stops_the_model_at_that_event() {
        let sqlite = |code| {
            ProjectionError::Sqlite(rusqlite::Error::SqliteFailure(
                rusqlite::ffi::Error::new(code),
                None,
            ))
        };
        let apply = ProjectionError::Apply {
            position: Position(7),
            reason: "no such lead".into(),
        };
        assert!(caused_by_an_event(&apply));
        assert!(caused_by_an_event(&sqlite(
            rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
        )));
        for broken in [
            rusqlite::ffi::SQLITE_READONLY,
            rusqlite::ffi::SQLITE_CORRUPT,
            rusqlite::ffi::SQLITE_NOTADB,
            rusqlite::ffi::SQLITE_PERM,
        ] {
            assert!(!caused_by_an_event(&sqlite(broken)), "{broken}");
        }
    }

    /// A worker on a feeder that ended: stopped when told to stop, otherwise a transient
    /// failure (it backs off and reads again), never a silent stop.
    #[test]
    fn a_feeder_that_ends_unasked_is_a_transient_failure_not_a_stop() {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn EventStore> = Arc::new(
            leadflow_store_embedded::EmbeddedStore::open(dir.path().join("events.db")).unwrap(),
        );
        let worker = |stop: bool| {
            let (_, orders) = std::sync::mpsc::channel();
            let (public, _) = watch::channel(Position::START);
            let (_, shutdown) = watch::channel(stop);
            let projection: Box<dyn Projection> =
                Box::new(crate::history::HistoryProjection::new());
            Worker {
                rebuilding: false,
                status: Arc::new(Mutex::new(ProjectionStatus {
                    name: projection.name(),
                    version: projection.version(),
                    generation: 0,
                    checkpoint: Position::START,
                    head: Position::START,
                    state: ProjectionState::Live,
                    events_per_sec: 0.0,
                    error: None,
                    attempts: 0,
                    next_attempt: None,
                    rebuilding: false,
                    stopped_at: None,
                    rebuild: None,
                    refused: None,
                })),
                projection,
                conn: Connection::open_in_memory().unwrap(),
                store: store.clone(),
                keys: None,
                runtime: runtime.handle().clone(),
                checkpoint: Publisher {
                    public: Arc::new(public),
                    serving: Arc::new(std::sync::atomic::AtomicBool::new(true)),
                    erased: Arc::new(std::sync::atomic::AtomicBool::new(false)),
                },
                shutdown,
                threads: Arc::new(Mutex::new(Vec::new())),
                control: orders,
                skips: BTreeSet::new(),
                stopped_at: None,
                run_to: None,
                purge_owed: false,
            }
        };
        let ended = || {
            let (_, fed) = std::sync::mpsc::sync_channel::<Fed>(1);
            fed
        };
        let (mut position, mut attempts) = (Position::START, 0);

        let drained = worker(false).drain(&mut position, &ended(), &mut attempts, false);
        match drained {
            Drained::Transient(e) => {
                assert!(e.is_transient());
                assert!(e.to_string().contains("stopped"), "{e}");
            }
            _ => panic!("a feeder that ended unasked must be retried"),
        }
        let drained = worker(true).drain(&mut position, &ended(), &mut attempts, false);
        assert!(
            matches!(drained, Drained::Stopped),
            "told to stop, it stops"
        );
    }

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
