//! The command engine: load the lead (from the cache, else its stream), decide, append with
//! the expected revision. On a conflict it catches up from the store and decides again, a
//! bounded number of times. A command's idempotency key fixes its command id and so its event
//! ids: a retried command finds itself in the stream and returns the first result.
//!
//! It joins the pure domain and the event-store port and owns the codec; it knows no HTTP and
//! no GraphQL.

pub mod cache;
pub mod clock;

use std::sync::Arc;
use std::time::Instant;

use chrono::{DateTime, Utc};
use tracing::Instrument;
use uuid::Uuid;

use leadflow_domain::{
    Actor, Aggregate, Catalog, Lead, LeadAggregate, LeadCommand, LeadEvent, LeadId, Rejection,
};
use leadflow_store::{
    ContentType, EventStore, ExpectedRevision, NewEvent, Position, RecordedEvent, StoreError,
};

pub use cache::{CachedLead, CommandRecord, LeadCache};
pub use clock::{Clock, FixedClock, IdGenerator, SequentialIds, SystemClock, V7Ids};
use leadflow_codec::{lead, lead_stream, CodecError, EventMetadata};

/// Namespace of the ids derived from idempotency keys.
const KEY_NAMESPACE: Uuid = Uuid::from_u128(0x6c65_6164_666c_6f77_0000_0000_0000_0001);

/// Who issues a command, why, and when (SPEC section 4's metadata).
#[derive(Clone, Debug)]
pub struct CommandMeta {
    pub actor: Actor,
    /// The same key makes a retried command a no-op that returns the first result.
    pub idempotency_key: Option<String>,
    /// Defaults to the command id.
    pub correlation_id: Option<Uuid>,
    /// Defaults to the command id.
    pub causation_id: Option<Uuid>,
    /// Business time; defaults to the engine's clock (an import passes the original time).
    pub occurred_at: Option<DateTime<Utc>>,
}

impl CommandMeta {
    pub fn by(actor: Actor) -> Self {
        Self {
            actor,
            idempotency_key: None,
            correlation_id: None,
            causation_id: None,
            occurred_at: None,
        }
    }

    pub fn with_key(mut self, key: impl Into<String>) -> Self {
        self.idempotency_key = Some(key.into());
        self
    }

    pub fn at(mut self, occurred_at: DateTime<Utc>) -> Self {
        self.occurred_at = Some(occurred_at);
        self
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutcomeKind {
    /// New events were appended.
    Appended,
    /// The command had already been recorded (same idempotency key); nothing was appended.
    Replayed,
    /// Accepted, but it changed nothing (e.g. assigning the current responsible).
    Unchanged,
}

/// What a command did.
#[derive(Clone, Debug)]
pub struct Outcome {
    pub kind: OutcomeKind,
    pub lead_id: LeadId,
    pub command_id: Uuid,
    /// The events this execution appended (empty when replayed or unchanged).
    pub events: Vec<LeadEvent>,
    /// The stream revision and global position of the command's last event; for an unchanged
    /// command, the lead's current revision and no position.
    pub revision: Option<u64>,
    pub position: Option<Position>,
    /// The lead after the command.
    pub lead: Option<Lead>,
}

/// Why a command was not carried out. Nothing was appended in any of these cases, except
/// possibly for `Store(Unavailable)`, which a retry with the same idempotency key settles.
///
/// ### Handling
/// - `Rejected`: the caller's to fix (see [`Rejection`]); `BAD_USER_INPUT`, `FORBIDDEN` or
///   `INVALID_TRANSITION` by rule.
/// - `Conflict`: the lead kept changing under the command; retry later (`CONFLICT`).
/// - `IdempotencyKeyReused`, `MisaddressedRegistration`: caller bugs (`BAD_USER_INPUT`).
/// - `Store`, `Corrupt`: report (`INTERNAL`); retry `Store(Unavailable)` with the same key.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Rejected(#[from] Rejection),
    #[error("lead {lead_id} changed concurrently {attempts} times in a row; try again")]
    Conflict { lead_id: LeadId, attempts: u32 },
    /// The key already recorded another command on this lead.
    #[error("idempotency key {key:?} was already used for {recorded} on lead {lead_id}, not for {command}")]
    IdempotencyKeyReused {
        key: String,
        lead_id: LeadId,
        recorded: leadflow_domain::CommandName,
        command: leadflow_domain::CommandName,
    },
    /// A registration sent to another lead's id than the one it names.
    #[error("RegisterLead names lead {named} but is sent to lead {sent_to}")]
    MisaddressedRegistration { named: LeadId, sent_to: LeadId },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot read event {revision} of stream {stream}: {source}")]
    Corrupt {
        stream: String,
        revision: u64,
        source: CodecError,
    },
}

impl EngineError {
    /// A short outcome label for traces and metrics.
    pub fn label(&self) -> &'static str {
        match self {
            Self::Rejected(_) => "rejected",
            Self::Conflict { .. } => "conflict",
            Self::IdempotencyKeyReused { .. } | Self::MisaddressedRegistration { .. } => "invalid",
            Self::Store(_) => "store_error",
            Self::Corrupt { .. } => "corrupt",
        }
    }
}

pub struct EngineConfig {
    /// Decide-and-append attempts after the first conflict.
    pub max_retries: u32,
    /// Leads kept folded in memory.
    pub cache_capacity: usize,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            max_retries: 8,
            cache_capacity: 200_000,
        }
    }
}

pub struct Engine {
    store: Arc<dyn EventStore>,
    catalog: Arc<Catalog>,
    clock: Arc<dyn Clock>,
    ids: Arc<dyn IdGenerator>,
    cache: LeadCache,
    max_retries: u32,
}

impl Engine {
    pub fn new(
        store: Arc<dyn EventStore>,
        catalog: Arc<Catalog>,
        clock: Arc<dyn Clock>,
        ids: Arc<dyn IdGenerator>,
        config: EngineConfig,
    ) -> Self {
        Self {
            store,
            catalog,
            clock,
            ids,
            cache: LeadCache::new(config.cache_capacity),
            max_retries: config.max_retries,
        }
    }

    pub fn catalog(&self) -> &Catalog {
        &self.catalog
    }

    pub fn store(&self) -> &Arc<dyn EventStore> {
        &self.store
    }

    /// The id for a new lead: derived from the idempotency key when there is one (so a retried
    /// registration lands on the same lead), else a fresh time-ordered id.
    pub fn new_lead_id(&self, idempotency_key: Option<&str>) -> LeadId {
        LeadId::from_uuid(match idempotency_key {
            Some(key) => Uuid::new_v5(&KEY_NAMESPACE, format!("register/{key}").as_bytes()),
            None => self.ids.new_id(),
        })
    }

    /// The lead as the store has it now (through the cache).
    pub async fn load(&self, lead_id: LeadId) -> Result<Option<Lead>, EngineError> {
        Ok(self.entry(lead_id, false).await?.state.clone())
    }

    /// Runs `command` on lead `lead_id`.
    pub async fn execute(
        &self,
        lead_id: LeadId,
        command: LeadCommand,
        meta: CommandMeta,
    ) -> Result<Outcome, EngineError> {
        let name = command.name();
        let span = tracing::info_span!("command", lead_id = %lead_id, command = %name);
        async move {
            let started = Instant::now();
            let result = self.run(lead_id, &command, &meta).await;
            let latency_us = started.elapsed().as_micros() as u64;
            match &result {
                Ok(o) => tracing::debug!(outcome = ?o.kind, events = o.events.len(), latency_us, "command done"),
                Err(EngineError::Rejected(r)) => {
                    tracing::debug!(outcome = "rejected", rule = r.rule(), latency_us, "command rejected")
                }
                Err(e) => tracing::warn!(outcome = e.label(), error = %e, latency_us, "command failed"),
            }
            result
        }
        .instrument(span)
        .await
    }

    async fn run(
        &self,
        lead_id: LeadId,
        command: &LeadCommand,
        meta: &CommandMeta,
    ) -> Result<Outcome, EngineError> {
        if let LeadCommand::Register(r) = command {
            if r.lead_id != lead_id {
                return Err(EngineError::MisaddressedRegistration {
                    named: r.lead_id,
                    sent_to: lead_id,
                });
            }
        }
        let command_id = match &meta.idempotency_key {
            Some(key) => Uuid::new_v5(&KEY_NAMESPACE, format!("{lead_id}/{key}").as_bytes()),
            None => self.ids.new_id(),
        };
        let stream = lead_stream(lead_id);
        let mut refresh = false;
        for attempt in 0..=self.max_retries {
            let entry = self.entry(lead_id, refresh).await?;
            if let Some(record) = entry.commands.get(&command_id) {
                if let Some(recorded) = record
                    .command
                    .filter(|recorded| *recorded != command.name())
                {
                    return Err(EngineError::IdempotencyKeyReused {
                        key: meta.idempotency_key.clone().unwrap_or_default(),
                        lead_id,
                        recorded,
                        command: command.name(),
                    });
                }
                // The first result: the lead as that command left it, even if it moved on since.
                let lead = if entry.revision == Some(record.last_revision) {
                    entry.state.clone()
                } else {
                    self.state_at(lead_id, record.last_revision).await?
                };
                return Ok(Outcome {
                    kind: OutcomeKind::Replayed,
                    lead_id,
                    command_id,
                    events: Vec::new(),
                    revision: Some(record.last_revision),
                    position: Some(record.position),
                    lead,
                });
            }
            let now = meta.occurred_at.unwrap_or_else(|| self.clock.now());
            let ctx = leadflow_domain::Context {
                now,
                actor: meta.actor,
                catalog: &self.catalog,
            };
            let events = LeadAggregate::decide(entry.state.as_ref(), command, &ctx)?;
            if events.is_empty() {
                return Ok(Outcome {
                    kind: OutcomeKind::Unchanged,
                    lead_id,
                    command_id,
                    events,
                    revision: entry.revision,
                    position: None,
                    lead: entry.state.clone(),
                });
            }
            let metadata = EventMetadata {
                actor: meta.actor.into(),
                occurred_at: now,
                correlation_id: meta.correlation_id.unwrap_or(command_id),
                causation_id: meta.causation_id.unwrap_or(command_id),
                command_id,
                command: Some(command.name().to_string()),
                version: 0,
            };
            let new_events = events
                .iter()
                .enumerate()
                .map(|(i, e)| NewEvent {
                    id: Uuid::new_v5(&command_id, &(i as u32).to_be_bytes()),
                    event_type: e.event_type().to_owned(),
                    data: lead::encode(e),
                    metadata: EventMetadata {
                        version: e.version(),
                        ..metadata.clone()
                    }
                    .encode(),
                    content_type: ContentType::Json,
                })
                .collect();
            let expected = entry
                .revision
                .map_or(ExpectedRevision::NoStream, ExpectedRevision::Exact);
            match self.store.append(&stream, expected, new_events).await {
                Ok(appended) => {
                    let mut next = (*entry).clone();
                    for e in &events {
                        next.state = LeadAggregate::evolve(next.state, e);
                    }
                    next.revision = Some(appended.last_revision);
                    let record = CommandRecord {
                        first_revision: appended.first_revision,
                        last_revision: appended.last_revision,
                        position: appended.last_position,
                        command: Some(command.name()),
                    };
                    next.commands.insert(command_id, record);
                    let lead = next.state.clone();
                    self.cache.put_if_newer(lead_id, Arc::new(next));
                    return Ok(Outcome {
                        kind: OutcomeKind::Appended,
                        lead_id,
                        command_id,
                        events,
                        revision: Some(appended.last_revision),
                        position: Some(appended.last_position),
                        lead,
                    });
                }
                Err(StoreError::WrongExpectedRevision { actual, .. }) => {
                    tracing::debug!(attempt, expected = ?entry.revision, ?actual, "append conflict, catching up");
                    refresh = true;
                }
                Err(e) => return Err(e.into()),
            }
        }
        Err(EngineError::Conflict {
            lead_id,
            attempts: self.max_retries + 1,
        })
    }

    /// The lead as it was at `revision` (for answering a replayed command).
    async fn state_at(&self, lead_id: LeadId, revision: u64) -> Result<Option<Lead>, EngineError> {
        let events = self
            .store
            .read_stream(&lead_stream(lead_id), 0, revision as usize + 1)
            .await?;
        let mut entry = CachedLead::default();
        for recorded in &events {
            fold_recorded(&mut entry, recorded)?;
        }
        Ok(entry.state)
    }

    /// The cached lead, caught up with its stream when `refresh` (after a conflict) or when not
    /// cached at all.
    async fn entry(&self, lead_id: LeadId, refresh: bool) -> Result<Arc<CachedLead>, EngineError> {
        let cached = self.cache.get(lead_id);
        if let (Some(entry), false) = (&cached, refresh) {
            return Ok(entry.clone());
        }
        let mut entry = cached.map(|e| (*e).clone()).unwrap_or_default();
        let stream = lead_stream(lead_id);
        loop {
            let from = entry.revision.map_or(0, |r| r + 1);
            let batch = self.store.read_stream(&stream, from, 4096).await?;
            if batch.is_empty() {
                break;
            }
            for recorded in &batch {
                fold_recorded(&mut entry, recorded)?;
            }
        }
        let entry = Arc::new(entry);
        self.cache.put_if_newer(lead_id, entry.clone());
        Ok(entry)
    }
}

fn fold_recorded(entry: &mut CachedLead, recorded: &RecordedEvent) -> Result<(), EngineError> {
    let corrupt = |source| EngineError::Corrupt {
        stream: recorded.stream.clone(),
        revision: recorded.revision,
        source,
    };
    let meta = EventMetadata::decode(&recorded.metadata).map_err(corrupt)?;
    let event =
        lead::decode(&recorded.event_type, meta.version, &recorded.data).map_err(corrupt)?;
    entry.state = LeadAggregate::evolve(entry.state.take(), &event);
    entry.revision = Some(recorded.revision);
    let record = entry
        .commands
        .entry(meta.command_id)
        .or_insert(CommandRecord {
            first_revision: recorded.revision,
            last_revision: recorded.revision,
            position: recorded.position,
            command: meta
                .command
                .as_deref()
                .and_then(leadflow_domain::CommandName::parse),
        });
    record.last_revision = recorded.revision;
    record.position = recorded.position;
    Ok(())
}
