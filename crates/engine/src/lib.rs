//! The command engine, one generic path for every aggregate: load it (from its cache, else its
//! stream), decide, append with the expected revision. On a conflict it catches up from the
//! store and decides again, a bounded number of times. A command's idempotency key fixes its
//! command id and so its event ids: a retried command finds itself in the stream and returns
//! the first result.
//!
//! Commands are decided against the catalog as it stands ([`LiveCatalog`]), which the engine
//! keeps: it seeds a new store with the default catalog, feeds every catalog change it makes,
//! and follows the ones other nodes make ([`Engine::follow_catalog`]).
//!
//! It joins the pure domain and the event-store port through the codec; it knows no HTTP and
//! no GraphQL.

pub mod cache;
pub mod clock;

use std::sync::Arc;
use std::time::Instant;

use chrono::{DateTime, Utc};
use tracing::Instrument;
use uuid::Uuid;

use futures::StreamExt;
use leadflow_codec::seal;
pub use leadflow_codec::seal::Opening;
use leadflow_domain::{
    Actor, Aggregate, Catalog, CatalogAggregate, CatalogCommand, CatalogPart, CatalogRejection,
    Lead, LeadAggregate, LeadCommand, LeadId, OpsAggregate, OpsCommand, OpsRejection, Rejection,
    SubjectAggregate, SubjectCommand, SubjectRejection,
};
pub use leadflow_keyring::{KeyError, Keyring};
use leadflow_store::{
    ContentType, EventStore, ExpectedRevision, NewEvent, Position, RecordedEvent, StoreError,
};

pub use cache::{AggregateCache, Cached, CachedLead, CommandRecord, LeadCache};
pub use clock::{Clock, FixedClock, IdGenerator, SequentialIds, SystemClock, V7Ids};
pub use leadflow_codec::LiveCatalog;
use leadflow_codec::{stream_of, CodecError, EventMetadata, Stored, StreamRef};

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

/// What a command did to aggregate `A` (the lead unless named).
pub struct Outcome<A: Aggregate = LeadAggregate> {
    pub kind: OutcomeKind,
    pub id: A::Id,
    pub command_id: Uuid,
    /// The events this execution appended (empty when replayed or unchanged).
    pub events: Vec<A::Event>,
    /// The stream revision and global position of the command's last event; for an unchanged
    /// command, the aggregate's current revision and no position.
    pub revision: Option<u64>,
    pub position: Option<Position>,
    /// The aggregate after the command.
    pub state: Option<A::State>,
}

impl<A: Aggregate> std::fmt::Debug for Outcome<A>
where
    A::Event: std::fmt::Debug,
    A::State: std::fmt::Debug,
{
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outcome")
            .field("kind", &self.kind)
            .field("id", &self.id)
            .field("command_id", &self.command_id)
            .field("events", &self.events)
            .field("revision", &self.revision)
            .field("position", &self.position)
            .field("state", &self.state)
            .finish()
    }
}

/// Why a command was not carried out. Nothing was appended in any of these cases, except
/// possibly for `Store(Unavailable)`, which a retry with the same idempotency key settles.
///
/// ### Handling
/// - `Rejected`, `CatalogRejected`: the caller's to fix (see [`Rejection`],
///   [`CatalogRejection`]); `BAD_USER_INPUT`, `FORBIDDEN` or `INVALID_TRANSITION` by rule.
/// - `Conflict`: the aggregate kept changing under the command; retry later (`CONFLICT`).
/// - `IdempotencyKeyReused`, `MisaddressedRegistration`: caller bugs (`BAD_USER_INPUT`).
/// - `Store`, `Corrupt`: report (`INTERNAL`); retry `Store(Unavailable)` with the same key.
/// - `Keys`: personal data keys cannot be had (no master key, a wrong one, the key store
///   down); retry once it is fixed (`UNAVAILABLE`). Never read as "erased".
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Rejected(#[from] Rejection),
    #[error(transparent)]
    CatalogRejected(#[from] CatalogRejection),
    #[error(transparent)]
    SubjectRejected(#[from] SubjectRejection),
    #[error(transparent)]
    OpsRejected(#[from] OpsRejection),
    #[error("{stream} changed concurrently {attempts} times in a row; try again")]
    Conflict { stream: String, attempts: u32 },
    /// The key already recorded another command on this aggregate.
    #[error(
        "idempotency key {key:?} was already used for {recorded} on {stream}, not for {command}"
    )]
    IdempotencyKeyReused {
        key: String,
        stream: String,
        recorded: &'static str,
        command: &'static str,
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
    #[error("personal data keys: {0}")]
    Keys(#[from] KeyError),
    /// The engine serves a log that takes no commands (a replay).
    #[error("this server is read-only: it takes no commands")]
    ReadOnly,
    #[error("cannot seal or open the personal fields of stream {stream}: {source}")]
    Seal {
        stream: String,
        source: seal::SealError,
    },
}

impl EngineError {
    /// A short outcome label for traces and metrics.
    pub fn label(&self) -> &'static str {
        match self {
            Self::Rejected(_)
            | Self::CatalogRejected(_)
            | Self::SubjectRejected(_)
            | Self::OpsRejected(_) => "rejected",
            Self::Conflict { .. } => "conflict",
            Self::IdempotencyKeyReused { .. } | Self::MisaddressedRegistration { .. } => "invalid",
            Self::Store(_) => "store_error",
            Self::Corrupt { .. } | Self::Seal { .. } => "corrupt",
            Self::Keys(_) => "keys_unavailable",
            Self::ReadOnly => "read_only",
        }
    }

    /// The rule a rejection names, for traces and metrics.
    fn rule(&self) -> Option<&'static str> {
        match self {
            Self::Rejected(r) => Some(r.rule()),
            Self::CatalogRejected(r) => Some(r.rule()),
            Self::SubjectRejected(r) => Some(r.rule()),
            Self::OpsRejected(r) => Some(r.rule()),
            _ => None,
        }
    }
}

pub struct EngineConfig {
    /// Decide-and-append attempts after the first conflict.
    pub max_retries: u32,
    /// Leads kept folded in memory.
    pub cache_capacity: usize,
    /// Seals personal fields under their subjects' keys (issue 20) and opens them. `None`
    /// writes them in plain text (tests, and the benchmark's run without sealing) and cannot
    /// read sealed ones.
    pub keyring: Option<Arc<Keyring>>,
    /// Refuses every command ([`EngineError::ReadOnly`]): a server over a replay.
    pub read_only: bool,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            max_retries: 8,
            cache_capacity: 200_000,
            keyring: None,
            read_only: false,
        }
    }
}

/// What seeding the catalog did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SeedReport {
    /// Seed commands that appended events (0 on every start after the first).
    pub appended: usize,
}

pub struct Engine {
    store: Arc<dyn EventStore>,
    catalog: Arc<LiveCatalog>,
    clock: Arc<dyn Clock>,
    ids: Arc<dyn IdGenerator>,
    leads: AggregateCache<LeadAggregate>,
    catalogs: AggregateCache<CatalogAggregate>,
    subjects: AggregateCache<SubjectAggregate>,
    ops: AggregateCache<OpsAggregate>,
    max_retries: u32,
    keyring: Option<Arc<Keyring>>,
    read_only: bool,
}

impl Engine {
    /// An engine deciding against `catalog` until the catalog streams say otherwise
    /// ([`Engine::seed_catalog`] loads them; tests that never call it keep `catalog`).
    pub fn new(
        store: Arc<dyn EventStore>,
        catalog: Arc<Catalog>,
        clock: Arc<dyn Clock>,
        ids: Arc<dyn IdGenerator>,
        config: EngineConfig,
    ) -> Self {
        Self {
            store,
            catalog: Arc::new(LiveCatalog::new((*catalog).clone())),
            clock,
            ids,
            leads: AggregateCache::new(config.cache_capacity),
            catalogs: AggregateCache::new(CatalogPart::ALL.len() * 2),
            subjects: AggregateCache::new(1024),
            ops: AggregateCache::new(4),
            max_retries: config.max_retries,
            keyring: config.keyring,
            read_only: config.read_only,
        }
    }

    /// Whether this engine refuses every command (a server over a replay).
    pub fn is_read_only(&self) -> bool {
        self.read_only
    }

    /// The keys personal fields are sealed with, when sealing.
    pub fn keyring(&self) -> Option<&Arc<Keyring>> {
        self.keyring.as_ref()
    }

    /// Decodes a recorded event of `A`'s streams, opening its sealed personal fields.
    pub async fn decode_recorded<A: Stored>(
        &self,
        recorded: &RecordedEvent,
    ) -> Result<(EventMetadata, A::Event), EngineError> {
        decode_opened::<A>(recorded, self.keyring.as_deref()).await
    }

    /// The catalog as it stands now.
    pub fn catalog(&self) -> Arc<Catalog> {
        self.catalog.current()
    }

    /// The time now by the engine's clock: what an audit's default `asOf` is.
    pub fn now(&self) -> chrono::DateTime<chrono::Utc> {
        self.clock.now()
    }

    /// The live catalog, for the read side and the API to share.
    pub fn live_catalog(&self) -> &Arc<LiveCatalog> {
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
        Ok(self.entry(&self.leads, lead_id, false).await?.state.clone())
    }

    /// Runs `command` on lead `lead_id`.
    pub async fn execute(
        &self,
        lead_id: LeadId,
        command: LeadCommand,
        meta: CommandMeta,
    ) -> Result<Outcome, EngineError> {
        if let LeadCommand::Register(r) = &command {
            if r.lead_id != lead_id {
                return Err(EngineError::MisaddressedRegistration {
                    named: r.lead_id,
                    sent_to: lead_id,
                });
            }
        }
        self.traced(&self.leads, lead_id, &command, &meta).await
    }

    /// Runs a catalog command on the stream of its part; the live catalog takes the change
    /// before this returns.
    pub async fn execute_catalog(
        &self,
        command: CatalogCommand,
        meta: CommandMeta,
    ) -> Result<Outcome<CatalogAggregate>, EngineError> {
        let part = command.part();
        let outcome = self.traced(&self.catalogs, part, &command, &meta).await?;
        self.publish_part(part).await?;
        Ok(outcome)
    }

    /// Runs a command on a data subject (issue 20). An erasure appends `PersonalDataErased`,
    /// then destroys the subject's key for good and drops every lead this engine holds in
    /// memory (their cached state may hold the subject's data in the clear). The key goes
    /// after the event is in the log, so a retried erasure (a no-op in the log) finishes a
    /// destroy that a crash cut short.
    pub async fn execute_subject(
        &self,
        command: SubjectCommand,
        meta: CommandMeta,
    ) -> Result<Outcome<SubjectAggregate>, EngineError> {
        let subject = command.subject();
        let outcome = self
            .traced(&self.subjects, subject, &command, &meta)
            .await?;
        if matches!(command, SubjectCommand::Erase { .. })
            && outcome.state.as_ref().is_some_and(|s| s.erased)
        {
            self.forget(subject.as_uuid()).await?;
        }
        Ok(outcome)
    }

    /// Records what an operator did to read models (issue 12) in the ops stream, once the
    /// read side has done it: who, when, why; one event per model, in one append.
    pub async fn execute_ops(
        &self,
        command: OpsCommand,
        meta: CommandMeta,
    ) -> Result<Outcome<OpsAggregate>, EngineError> {
        let scope = command.scope();
        self.traced(&self.ops, scope, &command, &meta).await
    }

    /// Destroys `subject`'s key and drops what this engine holds of it in the clear.
    async fn forget(&self, subject: Uuid) -> Result<(), EngineError> {
        if let Some(keyring) = &self.keyring {
            keyring.destroy(subject).await?;
        }
        self.leads.clear();
        tracing::info!(%subject, "a data subject's key is destroyed");
        Ok(())
    }

    /// Writes the default catalog into a new store (its seed commands, with fixed idempotency
    /// keys, so a second start appends nothing) and loads every catalog stream.
    pub async fn seed_catalog(&self) -> Result<SeedReport, EngineError> {
        let mut appended = 0;
        for command in leadflow_domain::catalog::seed::commands() {
            let meta = CommandMeta::by(leadflow_domain::catalog::seed::actor())
                .with_key(leadflow_domain::catalog::seed::seed_key(&command));
            let part = command.part();
            let outcome = self.run(&self.catalogs, part, &command, &meta).await?;
            if outcome.kind == OutcomeKind::Appended {
                appended += 1;
            }
            self.publish_part(part).await?;
        }
        if appended > 0 {
            tracing::info!(commands = appended, "seeded the default catalog");
        }
        Ok(SeedReport { appended })
    }

    /// Follows the log from `after` for catalog changes made elsewhere (another `serve` node
    /// over the same EventStoreDB, a CLI) and takes them into the live catalog, and for
    /// subjects erased elsewhere, whose keys it forgets. Runs until aborted; a lost
    /// subscription is resumed from the last event seen, with a capped backoff.
    pub async fn follow_catalog(self: Arc<Self>, after: Position) {
        let mut seen = after;
        let mut backoff = std::time::Duration::from_millis(250);
        loop {
            let mut log = self.store.subscribe_all(seen);
            while let Some(next) = log.next().await {
                let recorded = match next {
                    Ok(r) => r,
                    Err(e) => {
                        tracing::warn!(error = %e, retry_in = ?backoff, "the catalog follower lost the log");
                        break;
                    }
                };
                seen = recorded.position;
                backoff = std::time::Duration::from_millis(250);
                match StreamRef::parse(&recorded.stream) {
                    Ok(StreamRef::Catalog(part))
                        if self.catalog.revision(part) < Some(recorded.revision) =>
                    {
                        if let Err(e) = self.refresh_part(part).await {
                            tracing::warn!(%part, error = %e, "cannot reload a catalog stream");
                        }
                    }
                    // Another process erased a subject: what this one holds of it goes too.
                    Ok(StreamRef::Subject(subject))
                        if recorded.event_type == leadflow_domain::subject::ERASED_EVENT =>
                    {
                        if let Some(keyring) = &self.keyring {
                            keyring.erased(subject.as_uuid());
                        }
                        self.leads.clear();
                    }
                    _ => {}
                }
            }
            // The subscription ended or failed: resubscribe from the last event seen.
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(std::time::Duration::from_secs(30));
        }
    }

    async fn refresh_part(&self, part: CatalogPart) -> Result<(), EngineError> {
        self.entry(&self.catalogs, part, true).await?;
        self.publish_part(part).await
    }

    /// Hands `part`'s cached state to the live catalog.
    /// Loads the catalog the log holds, writing nothing (a read-only server: a log without
    /// one keeps the catalog the engine was built with).
    pub async fn load_catalog(&self) -> Result<(), EngineError> {
        for part in CatalogPart::ALL {
            self.publish_part(part).await?;
        }
        Ok(())
    }

    async fn publish_part(&self, part: CatalogPart) -> Result<(), EngineError> {
        let entry = self.entry(&self.catalogs, part, false).await?;
        if let (Some(revision), Some(state)) = (entry.revision, &entry.state) {
            self.catalog.update(part, revision, Arc::new(state.clone()));
        }
        Ok(())
    }

    /// [`Engine::run`] in a span, with its outcome traced.
    async fn traced<A: Stored>(
        &self,
        cache: &AggregateCache<A>,
        id: A::Id,
        command: &A::Command,
        meta: &CommandMeta,
    ) -> Result<Outcome<A>, EngineError>
    where
        EngineError: From<A::Rejection>,
    {
        let name = A::command_name(command);
        let span = tracing::info_span!(
            "command",
            stream = %stream_of::<A>(id),
            command = name,
            correlation = meta.correlation_id.map(tracing::field::display),
        );
        async move {
            let started = Instant::now();
            let result = self.run(cache, id, command, meta).await;
            let elapsed = started.elapsed();
            let latency_us = elapsed.as_micros() as u64;
            record(name, &result, elapsed);
            match &result {
                Ok(o) => tracing::debug!(outcome = ?o.kind, events = o.events.len(), latency_us, "command done"),
                Err(e) if e.rule().is_some() => {
                    tracing::debug!(outcome = "rejected", rule = e.rule(), latency_us, "command rejected")
                }
                Err(e) => tracing::warn!(outcome = e.label(), error = %e, latency_us, "command failed"),
            }
            result
        }
        .instrument(span)
        .await
    }

    /// The one path every command takes: cache -> decide -> append, retried on conflicts.
    async fn run<A: Stored>(
        &self,
        cache: &AggregateCache<A>,
        id: A::Id,
        command: &A::Command,
        meta: &CommandMeta,
    ) -> Result<Outcome<A>, EngineError>
    where
        EngineError: From<A::Rejection>,
    {
        if self.read_only {
            return Err(EngineError::ReadOnly);
        }
        let command_id = match &meta.idempotency_key {
            Some(key) => Uuid::new_v5(&KEY_NAMESPACE, format!("{id}/{key}").as_bytes()),
            None => self.ids.new_id(),
        };
        let command_name = A::command_name(command);
        let stream = stream_of::<A>(id);
        let mut refresh = false;
        // A new stream's subject is new too, so its key is minted without asking the store,
        // unless an append found the subject already had one.
        let mut key_taken = false;
        for attempt in 0..=self.max_retries {
            let entry = self.entry(cache, id, refresh).await?;
            if let Some(record) = entry.commands.get(&command_id) {
                if let Some(recorded) = record.command.filter(|r| *r != command_name) {
                    return Err(EngineError::IdempotencyKeyReused {
                        key: meta.idempotency_key.clone().unwrap_or_default(),
                        stream: stream.to_string(),
                        recorded,
                        command: command_name,
                    });
                }
                // The first result: the state as that command left it, even if it moved on since.
                let state = if entry.revision == Some(record.last_revision) {
                    entry.state.clone()
                } else {
                    self.state_at::<A>(id, record.last_revision).await?
                };
                return Ok(Outcome {
                    kind: OutcomeKind::Replayed,
                    id,
                    command_id,
                    events: Vec::new(),
                    revision: Some(record.last_revision),
                    position: Some(record.position),
                    state,
                });
            }
            let now = meta.occurred_at.unwrap_or_else(|| self.clock.now());
            let catalog = self.catalog.current();
            let ctx = leadflow_domain::Context {
                now,
                actor: meta.actor,
                catalog: &catalog,
            };
            let events = A::decide(entry.state.as_ref(), command, &ctx)?;
            if events.is_empty() {
                return Ok(Outcome {
                    kind: OutcomeKind::Unchanged,
                    id,
                    command_id,
                    events,
                    revision: entry.revision,
                    position: None,
                    state: entry.state.clone(),
                });
            }
            let metadata = EventMetadata {
                actor: meta.actor.into(),
                occurred_at: now,
                correlation_id: meta.correlation_id.unwrap_or(command_id),
                causation_id: meta.causation_id.unwrap_or(command_id),
                command_id,
                command: Some(command_name.to_owned()),
                version: 0,
                subject: None,
            };
            let mut new_events = Vec::with_capacity(events.len());
            // One key per command: every event of it is about the same subject.
            let mut sealing = None;
            for (i, e) in events.iter().enumerate() {
                let id = Uuid::new_v5(&command_id, &(i as u32).to_be_bytes());
                let event_type = A::event_type(e);
                let data;
                let mut subject = None;
                let to_seal = A::subject(entry.state.as_ref(), e)
                    .filter(|_| seal::has_personal_fields(event_type));
                if let (Some(keyring), Some(about)) = (&self.keyring, to_seal) {
                    let key = match &sealing {
                        Some(key) => key,
                        None if entry.revision.is_none() && !key_taken => {
                            sealing.insert(keyring.mint(about)?)
                        }
                        None => sealing.insert(keyring.for_sealing(about).await?),
                    };
                    let mut value = A::encode_value(e);
                    seal::seal_fields(&mut value, event_type, &key.key, key.subject, id).map_err(
                        |source| EngineError::Seal {
                            stream: stream.to_string(),
                            source,
                        },
                    )?;
                    data = serde_json::to_vec(&value).expect("JSON values serialize");
                    subject = Some(key.subject);
                } else {
                    data = A::encode(e);
                }
                new_events.push(NewEvent {
                    id,
                    event_type: event_type.to_owned(),
                    data,
                    metadata: EventMetadata {
                        version: A::version(e),
                        subject,
                        ..metadata.clone()
                    }
                    .encode(),
                    content_type: ContentType::Json,
                });
            }
            let keys = sealing.iter().filter_map(|s| s.new.clone()).collect();
            let expected = entry
                .revision
                .map_or(ExpectedRevision::NoStream, ExpectedRevision::Exact);
            match self
                .store
                .append_with_keys(&stream, expected, new_events, keys)
                .await
            {
                Ok(appended) => {
                    if let (Some(keyring), Some(key)) = (&self.keyring, &sealing) {
                        keyring.stored(key);
                    }
                    let mut next = (*entry).clone();
                    for e in &events {
                        next.state = A::evolve(next.state, e);
                    }
                    next.revision = Some(appended.last_revision);
                    let record = CommandRecord {
                        first_revision: appended.first_revision,
                        last_revision: appended.last_revision,
                        position: appended.last_position,
                        command: Some(command_name),
                    };
                    next.commands.insert(command_id, record);
                    let state = next.state.clone();
                    cache.put_if_newer(id, Arc::new(next));
                    return Ok(Outcome {
                        kind: OutcomeKind::Appended,
                        id,
                        command_id,
                        events,
                        revision: Some(appended.last_revision),
                        position: Some(appended.last_position),
                        state,
                    });
                }
                Err(StoreError::WrongExpectedRevision { actual, .. }) => {
                    tracing::debug!(attempt, expected = ?entry.revision, ?actual, "append conflict, catching up");
                    refresh = true;
                }
                Err(StoreError::SubjectKeyTaken { subject }) => {
                    // Another writer stored the subject's key first: seal with that one.
                    tracing::debug!(attempt, %subject, "the subject's key was taken, sealing again");
                    refresh = true;
                    key_taken = true;
                }
                Err(e) => return Err(e.into()),
            }
        }
        Err(EngineError::Conflict {
            stream: stream.to_string(),
            attempts: self.max_retries + 1,
        })
    }

    /// The aggregate as it was at `revision` (for answering a replayed command).
    async fn state_at<A: Stored>(
        &self,
        id: A::Id,
        revision: u64,
    ) -> Result<Option<A::State>, EngineError> {
        let events = self
            .store
            .read_stream(&stream_of::<A>(id), 0, revision as usize + 1)
            .await?;
        let mut entry = Cached::<A>::default();
        for recorded in &events {
            fold_recorded(&mut entry, recorded, self.keyring.as_deref()).await?;
        }
        Ok(entry.state)
    }

    /// The cached aggregate, caught up with its stream when `refresh` (after a conflict) or
    /// when not cached at all.
    async fn entry<A: Stored>(
        &self,
        cache: &AggregateCache<A>,
        id: A::Id,
        refresh: bool,
    ) -> Result<Arc<Cached<A>>, EngineError> {
        let cached = cache.get(id);
        if let (Some(entry), false) = (&cached, refresh) {
            return Ok(entry.clone());
        }
        let mut entry = cached.map(|e| (*e).clone()).unwrap_or_default();
        catch_up(self.store.as_ref(), id, &mut entry, self.keyring.as_deref()).await?;
        let entry = Arc::new(entry);
        cache.put_if_newer(id, entry.clone());
        Ok(entry)
    }
}

/// The catalog a store holds, read without writing: `None` when no catalog stream exists yet
/// (the first `serve` seeds the default one). For tools beside a running server.
pub async fn read_catalog(store: &dyn EventStore) -> Result<Option<Catalog>, EngineError> {
    let mut parts = Vec::new();
    for part in CatalogPart::ALL {
        let mut entry = Cached::<CatalogAggregate>::default();
        catch_up(store, part, &mut entry, None).await?;
        if let Some(state) = entry.state {
            parts.push((part, state));
        }
    }
    if parts.is_empty() {
        return Ok(None);
    }
    Ok(Some(Catalog::assemble(|p| {
        parts.iter().find(|(q, _)| *q == p).map(|(_, s)| s.clone())
    })))
}

/// Folds into `entry` the events of `id`'s stream after the revision it holds.
async fn catch_up<A: Stored>(
    store: &dyn EventStore,
    id: A::Id,
    entry: &mut Cached<A>,
    keyring: Option<&Keyring>,
) -> Result<(), EngineError> {
    let stream = stream_of::<A>(id);
    loop {
        let from = entry.revision.map_or(0, |r| r + 1);
        let batch = store.read_stream(&stream, from, 4096).await?;
        if batch.is_empty() {
            return Ok(());
        }
        for recorded in &batch {
            fold_recorded(entry, recorded, keyring).await?;
        }
    }
}

/// Decodes a recorded event of `A`'s, opening its sealed personal fields with `keyring`.
async fn decode_opened<A: Stored>(
    recorded: &RecordedEvent,
    keyring: Option<&Keyring>,
) -> Result<(EventMetadata, A::Event), EngineError> {
    let corrupt = |source| EngineError::Corrupt {
        stream: recorded.stream.clone(),
        revision: recorded.revision,
        source,
    };
    let meta = EventMetadata::decode(&recorded.metadata).map_err(corrupt)?;
    let opened;
    let data = match meta.subject {
        None => &recorded.data,
        Some(subject) => {
            let opening: Opening = keyring.ok_or(KeyError::NoMasterKey)?.load(subject).await?;
            opened = seal::open_payload(
                &recorded.data,
                &recorded.event_type,
                &opening,
                subject,
                recorded.id,
            )
            .map_err(|source| EngineError::Seal {
                stream: recorded.stream.clone(),
                source,
            })?;
            &opened
        }
    };
    let event = A::decode(&recorded.event_type, meta.version, data).map_err(corrupt)?;
    Ok((meta, event))
}

async fn fold_recorded<A: Stored>(
    entry: &mut Cached<A>,
    recorded: &RecordedEvent,
    keyring: Option<&Keyring>,
) -> Result<(), EngineError> {
    let (meta, event) = decode_opened::<A>(recorded, keyring).await?;
    entry.state = A::evolve(entry.state.take(), &event);
    entry.revision = Some(recorded.revision);
    let record = entry
        .commands
        .entry(meta.command_id)
        .or_insert(CommandRecord {
            first_revision: recorded.revision,
            last_revision: recorded.revision,
            position: recorded.position,
            command: meta.command.as_deref().and_then(A::known_command),
        });
    record.last_revision = recorded.revision;
    record.position = recorded.position;
    Ok(())
}

/// What `/metrics` shows of a command: counted by name and outcome (`appended`, `replayed`,
/// `unchanged`, or the error's label), rejections by the rule they name, and the latency.
fn record<A: Aggregate>(
    command: &'static str,
    result: &Result<Outcome<A>, EngineError>,
    elapsed: std::time::Duration,
) {
    let outcome = match result {
        Ok(o) => match o.kind {
            OutcomeKind::Appended => "appended",
            OutcomeKind::Replayed => "replayed",
            OutcomeKind::Unchanged => "unchanged",
        },
        Err(e) => e.label(),
    };
    metrics::counter!("leadflow_commands_total", "command" => command, "outcome" => outcome)
        .increment(1);
    if let Some(rule) = result.as_ref().err().and_then(EngineError::rule) {
        metrics::counter!("leadflow_rejections_total", "command" => command, "rule" => rule)
            .increment(1);
    }
    metrics::histogram!("leadflow_command_seconds", "command" => command)
        .record(elapsed.as_secs_f64());
}
