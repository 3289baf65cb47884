//! The event-store port over EventStoreDB / KurrentDB, through the official `eventstore`
//! client: the production backend.
//!
//! How the port maps onto the server:
//! - A stream is a server stream of the same name (`lead-<uuid>`, `task-<uuid>`, ...), so the
//!   server's category streams (`$ce-lead`) work. Event ids go to the server as they are, so a
//!   retried append is recognised by the server itself.
//! - An event's payload is the server event's JSON `data`; our envelope metadata is its
//!   custom metadata.
//! - A [`Position`] is the event's `$all` commit position (an EventStoreDB node gives every
//!   event its own, with commit == prepare). System streams (`$`-prefixed) are invisible: the
//!   global subscription drops them with a server-side stream-name filter, reads skip them.
//! - The server answers an append with the *last* revision and position only, which is all
//!   the port asks for.
//! - Idempotency: the server returns the original result for a retry it recognises. Where it
//!   answers a retry with a wrong expected version instead (a real server only checks retries
//!   at the expected revision), the adapter reads the stream and decides as the embedded
//!   store does: the very same events give the original result, some of them
//!   [`StoreError::PartlyDuplicateBatch`], none the conflict.
//! - A data subject's key lives in a system stream of its own, `$leadflow-key-<subject>`
//!   (one binary event, the wrapped key), written before the events it seals, so every node
//!   reads the same keys and the projections' subscription never sees them. Destroying a key
//!   tombstones its stream; a scavenge then removes the event for good.

use std::collections::HashSet;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::{BoxStream, StreamExt};
use uuid::Uuid;

use eventstore::{
    AppendToStreamOptions, BatchAppendClient, BatchAppendOptions, Client, ClientSettings,
    CurrentRevision, EventData, ReadAllOptions, ReadStreamOptions, StreamPosition,
    SubscribeToAllOptions, SubscriptionFilter, TombstoneStreamOptions,
};
use leadflow_store::{
    AppendResult, ContentType, EventStore, ExpectedRevision, NewEvent, NewKey, Position,
    RecordedEvent, StoreError, StoredKey, StreamName,
};

/// The server's default limit on the size of one append (`MaxAppendSize`, 1 MiB).
pub const MAX_APPEND_SIZE: usize = 1024 * 1024;

/// Events asked for per `$all` page.
const PAGE: usize = 4096;

/// The server-side filter of the global subscription: every stream but the system ones.
const USER_STREAMS: &str = "^[^$]";

/// An [`EventStore`] on an EventStoreDB / KurrentDB server or cluster.
#[derive(Clone)]
pub struct EsdbStore {
    client: Client,
    max_append_size: usize,
    /// The batch-append session appends go through: one long-lived call carrying every
    /// writer's appends, instead of a call per append.
    batch: Arc<tokio::sync::Mutex<Session>>,
}

/// The state of the batch-append session.
enum Session {
    /// Not opened yet, or closed by the client after an error: the next append opens one.
    Closed,
    Open(Arc<BatchAppendClient>),
    /// The server has no batch append: every append is a call of its own.
    Unsupported,
}

impl EsdbStore {
    /// The open batch-append session, opened if need be; `None` if the server has none (or
    /// it cannot be opened now: the append then goes as a call of its own).
    async fn session(&self) -> Option<Arc<BatchAppendClient>> {
        let mut session = self.batch.lock().await;
        match &*session {
            Session::Open(open) => return Some(open.clone()),
            Session::Unsupported => return None,
            Session::Closed => {}
        }
        match self
            .client
            .batch_append(&BatchAppendOptions::default())
            .await
        {
            Ok(open) => {
                let open = Arc::new(open);
                *session = Session::Open(open.clone());
                Some(open)
            }
            Err(eventstore::Error::UnsupportedFeature) => {
                *session = Session::Unsupported;
                None
            }
            Err(_) => None,
        }
    }

    /// Forgets `broken`: the client ends a batch-append session on any error, and the answers
    /// still due on it with it.
    async fn close(&self, broken: &Arc<BatchAppendClient>) {
        let mut session = self.batch.lock().await;
        if matches!(&*session, Session::Open(open) if Arc::ptr_eq(open, broken)) {
            *session = Session::Closed;
        }
    }

    /// Stores a subject's key in its own stream unless it holds the very same one.
    async fn put_key(&self, key: NewKey) -> Result<(), StoreError> {
        let taken = || StoreError::SubjectKeyTaken {
            subject: key.subject,
        };
        let event = EventData::binary(KEY_TYPE, Bytes::from(key.wrapped.clone()))
            .id(Uuid::new_v5(&key.subject, b"key"));
        let options = AppendToStreamOptions::default()
            .expected_revision(eventstore::ExpectedRevision::NoStream);
        match self
            .client
            .append_to_stream(key_stream(key.subject), &options, event)
            .await
        {
            Ok(_) => Ok(()),
            Err(eventstore::Error::WrongExpectedVersion { .. }) => {
                match self.read_key(key.subject).await? {
                    StoredKey::Present(held) if held == key.wrapped => Ok(()),
                    _ => Err(taken()),
                }
            }
            Err(eventstore::Error::ResourceDeleted) => Err(taken()),
            Err(e) => Err(store_error(e)),
        }
    }

    /// Connects with a connection string: `esdb://[user:password@]host:port[,host:port...]
    /// [?tls=true&tlsCaFile=...&tlsVerifyCert=...]`, `esdb+discover://` for DNS discovery, and
    /// the same with the `kurrentdb` / `kurrent` schemes. Must be called inside a tokio runtime
    /// (the client keeps its connection on a task); connecting itself is lazy.
    pub fn connect(connection_string: &str) -> Result<Self, StoreError> {
        let open_error = |reason: String| StoreError::Open {
            path: redacted(connection_string),
            reason,
        };
        let settings: ClientSettings = normalized(connection_string)
            .parse()
            .map_err(|e: eventstore::ClientSettingsParseError| open_error(e.to_string()))?;
        let client = Client::new(settings).map_err(|e| open_error(e.to_string()))?;
        Ok(Self {
            client,
            max_append_size: MAX_APPEND_SIZE,
            batch: Arc::new(tokio::sync::Mutex::new(Session::Closed)),
        })
    }

    /// The largest append (payloads plus metadata, in bytes) sent to the server; set it to the
    /// server's `MaxAppendSize` if that was changed.
    pub fn with_max_append_size(mut self, bytes: usize) -> Self {
        self.max_append_size = bytes;
        self
    }

    /// Every event of a stream (an empty list when it does not exist).
    async fn whole_stream(&self, stream: &StreamName) -> Result<Vec<RecordedEvent>, StoreError> {
        self.read_stream(stream, 0, usize::MAX).await
    }

    /// The result of a successful append of `n` events whose last is at `last_revision` and
    /// `last_position`.
    fn completed(n: u64, last_revision: u64, last_position: Position) -> AppendResult {
        AppendResult {
            first_revision: last_revision + 1 - n,
            last_revision,
            last_position,
        }
    }

    /// The server refused an append with a wrong expected version: it is the original result
    /// if the very same events are already there, a client bug if only some are, and the
    /// conflict otherwise.
    async fn conflict(
        &self,
        stream: &StreamName,
        expected: ExpectedRevision,
        ids: &[Uuid],
        current: CurrentRevision,
    ) -> Result<AppendResult, StoreError> {
        let recorded = self.whole_stream(stream).await?;
        if let Some(at) = recorded.iter().position(|e| e.id == ids[0]) {
            let same = recorded
                .get(at..at + ids.len())
                .is_some_and(|run| run.iter().zip(ids).all(|(e, id)| e.id == *id));
            if same {
                let (first, last) = (&recorded[at], &recorded[at + ids.len() - 1]);
                return Ok(AppendResult {
                    first_revision: first.revision,
                    last_revision: last.revision,
                    last_position: last.position,
                });
            }
            return Err(StoreError::PartlyDuplicateBatch {
                stream: stream.to_string(),
                known: ids[0],
            });
        }
        let present: HashSet<Uuid> = recorded.iter().map(|e| e.id).collect();
        if let Some(known) = ids.iter().find(|id| present.contains(id)) {
            return Err(StoreError::PartlyDuplicateBatch {
                stream: stream.to_string(),
                known: *known,
            });
        }
        Err(StoreError::WrongExpectedRevision {
            stream: stream.to_string(),
            expected,
            actual: match current {
                CurrentRevision::Current(r) => Some(r),
                CurrentRevision::NoStream => None,
            },
        })
    }
}

/// The client parses the `esdb` schemes; KurrentDB's are the same settings.
fn normalized(connection_string: &str) -> String {
    for (scheme, esdb) in [
        ("kurrentdb+discover://", "esdb+discover://"),
        ("kurrent+discover://", "esdb+discover://"),
        ("kurrentdb://", "esdb://"),
        ("kurrent://", "esdb://"),
    ] {
        if let Some(rest) = connection_string.strip_prefix(scheme) {
            return format!("{esdb}{rest}");
        }
    }
    connection_string.to_owned()
}

/// The connection string without its password, for error messages and logs.
pub fn redacted(connection_string: &str) -> String {
    let Some((scheme, rest)) = connection_string.split_once("://") else {
        return connection_string.to_owned();
    };
    match rest.split_once('@') {
        Some((credentials, hosts)) => {
            let user = credentials.split(':').next().unwrap_or_default();
            format!("{scheme}://{user}:***@{hosts}")
        }
        None => connection_string.to_owned(),
    }
}

fn to_server(expected: ExpectedRevision) -> eventstore::ExpectedRevision {
    match expected {
        ExpectedRevision::Any => eventstore::ExpectedRevision::Any,
        ExpectedRevision::NoStream => eventstore::ExpectedRevision::NoStream,
        ExpectedRevision::StreamExists => eventstore::ExpectedRevision::StreamExists,
        ExpectedRevision::Exact(r) => eventstore::ExpectedRevision::Exact(r),
    }
}

/// JSON payloads go as JSON (so server-side projections can read them), byte for byte;
/// binary ones, and JSON ones that do not parse, as `application/octet-stream`.
fn to_event_data(e: NewEvent) -> EventData {
    if e.content_type == ContentType::Binary {
        return EventData::binary(&e.event_type, Bytes::from(e.data))
            .id(e.id)
            .metadata(Bytes::from(e.metadata));
    }
    let json = String::from_utf8(e.data)
        .map_err(|e| e.into_bytes())
        .and_then(|text| {
            serde_json::value::RawValue::from_string(text.clone()).map_err(|_| text.into_bytes())
        });
    let data = match json {
        Ok(raw) => EventData::json(&e.event_type, &raw).expect("raw JSON serializes as itself"),
        Err(bytes) => EventData::binary(&e.event_type, Bytes::from(bytes)),
    };
    data.id(e.id).metadata(Bytes::from(e.metadata))
}

fn from_server(e: &eventstore::RecordedEvent) -> RecordedEvent {
    RecordedEvent {
        stream: e.stream_id.clone(),
        revision: e.revision,
        position: Position(e.position.commit),
        id: e.id,
        event_type: e.event_type.clone(),
        data: e.data.to_vec(),
        metadata: e.custom_metadata.to_vec(),
        content_type: if e.is_json {
            ContentType::Json
        } else {
            ContentType::Binary
        },
        recorded_at_micros: e.created.timestamp_micros(),
    }
}

fn server_position(p: Position) -> StreamPosition<eventstore::Position> {
    if p == Position::START {
        StreamPosition::Start
    } else {
        StreamPosition::Position(eventstore::Position {
            commit: p.0,
            prepare: p.0,
        })
    }
}

/// The stream of a subject's key.
fn key_stream(subject: Uuid) -> String {
    format!("$leadflow-key-{subject}")
}

/// The event type of a stored key.
const KEY_TYPE: &str = "SubjectKey";

fn is_system(stream: &str) -> bool {
    stream.starts_with('$')
}

/// What a client error means to the port's callers.
fn store_error(e: eventstore::Error) -> StoreError {
    use eventstore::Error as E;
    match e {
        // The call may or may not have reached the server: retry with the same ids.
        E::GrpcConnectionError(_)
        | E::ConnectionClosed
        | E::DeadlineExceeded
        | E::NotLeaderException(_)
        | E::ServerError(_)
        | E::Grpc { .. } => StoreError::Unavailable(e.to_string()),
        E::AccessDenied => StoreError::Internal(
            "access denied: check the credentials in the connection string".to_owned(),
        ),
        other => StoreError::Internal(other.to_string()),
    }
}

#[async_trait]
impl EventStore for EsdbStore {
    async fn append(
        &self,
        stream: &StreamName,
        expected: ExpectedRevision,
        events: Vec<NewEvent>,
    ) -> Result<AppendResult, StoreError> {
        if events.is_empty() {
            return Err(StoreError::EmptyAppend);
        }
        let mut ids = Vec::with_capacity(events.len());
        let mut unique = HashSet::with_capacity(events.len());
        for e in &events {
            if !unique.insert(e.id) {
                return Err(StoreError::PartlyDuplicateBatch {
                    stream: stream.to_string(),
                    known: e.id,
                });
            }
            ids.push(e.id);
        }
        let size: usize = events.iter().map(|e| e.data.len() + e.metadata.len()).sum();
        if size > self.max_append_size {
            return Err(StoreError::AppendTooLarge {
                size,
                max: self.max_append_size,
            });
        }
        let data: Vec<EventData> = events.into_iter().map(to_event_data).collect();
        // Through the batch session when it answers with success; anything else (a conflict,
        // a deleted stream, a session the client closed) goes again as a call of its own,
        // which answers it exactly. That is safe: event ids make a repeated append idempotent.
        if let Some(session) = self.session().await {
            match session
                .append_to_stream(stream.as_str(), to_server(expected), data.clone())
                .await
            {
                Ok(w) => {
                    if let (Some(last), Some(position)) =
                        (w.current_revision(), w.current_position())
                    {
                        return Ok(Self::completed(
                            ids.len() as u64,
                            last,
                            Position(position.commit),
                        ));
                    }
                }
                Err(_) => self.close(&session).await,
            }
        }
        let options = AppendToStreamOptions::default().expected_revision(to_server(expected));
        match self
            .client
            .append_to_stream(stream.as_str(), &options, data)
            .await
        {
            Ok(w) => Ok(Self::completed(
                ids.len() as u64,
                w.next_expected_version,
                Position(w.position.commit),
            )),
            Err(eventstore::Error::WrongExpectedVersion { current, .. }) => {
                self.conflict(stream, expected, &ids, current).await
            }
            Err(eventstore::Error::ResourceDeleted) => Err(StoreError::Internal(format!(
                "stream {stream} is deleted on the server"
            ))),
            Err(eventstore::Error::ServerError(m)) if m.contains("Maximum Append Size") => {
                Err(StoreError::AppendTooLarge {
                    size,
                    max: self.max_append_size,
                })
            }
            Err(e) => Err(store_error(e)),
        }
    }

    async fn append_with_keys(
        &self,
        stream: &StreamName,
        expected: ExpectedRevision,
        events: Vec<NewEvent>,
        keys: Vec<NewKey>,
    ) -> Result<AppendResult, StoreError> {
        if events.is_empty() {
            return Err(StoreError::EmptyAppend);
        }
        for key in keys {
            self.put_key(key).await?;
        }
        self.append(stream, expected, events).await
    }

    async fn read_key(&self, subject: Uuid) -> Result<StoredKey, StoreError> {
        let options = ReadStreamOptions::default()
            .forwards()
            .position(StreamPosition::Start)
            .max_count(1);
        let read = self.client.read_stream(key_stream(subject), &options).await;
        let mut read = match read {
            Ok(read) => read,
            Err(eventstore::Error::ResourceNotFound) => return Ok(StoredKey::Absent),
            Err(eventstore::Error::ResourceDeleted) => return Ok(StoredKey::Destroyed),
            Err(e) => return Err(store_error(e)),
        };
        match read.next().await {
            Ok(Some(e)) => Ok(StoredKey::Present(e.get_original_event().data.to_vec())),
            Ok(None) | Err(eventstore::Error::ResourceNotFound) => Ok(StoredKey::Absent),
            Err(eventstore::Error::ResourceDeleted) => Ok(StoredKey::Destroyed),
            Err(e) => Err(store_error(e)),
        }
    }

    async fn destroy_key(&self, subject: Uuid) -> Result<(), StoreError> {
        match self
            .client
            .tombstone_stream(key_stream(subject), &TombstoneStreamOptions::default())
            .await
        {
            Ok(_) | Err(eventstore::Error::ResourceDeleted) => Ok(()),
            Err(e) => Err(store_error(e)),
        }
    }

    async fn read_stream(
        &self,
        stream: &StreamName,
        from: u64,
        max: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        if max == 0 {
            return Ok(Vec::new());
        }
        let options = ReadStreamOptions::default()
            .forwards()
            .position(StreamPosition::Position(from))
            .max_count(max);
        let absent = |e: &eventstore::Error| {
            matches!(
                e,
                eventstore::Error::ResourceNotFound | eventstore::Error::ResourceDeleted
            )
        };
        let mut read = match self.client.read_stream(stream.as_str(), &options).await {
            Ok(read) => read,
            Err(e) if absent(&e) => return Ok(Vec::new()),
            Err(e) => return Err(store_error(e)),
        };
        let mut events = Vec::with_capacity(max.min(256));
        loop {
            match read.next().await {
                Ok(Some(e)) => events.push(from_server(e.get_original_event())),
                Ok(None) => return Ok(events),
                Err(e) if absent(&e) => return Ok(Vec::new()),
                Err(e) => return Err(store_error(e)),
            }
        }
    }

    async fn read_all(
        &self,
        after: Position,
        max: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let mut events = Vec::with_capacity(max.min(PAGE));
        let mut from = after;
        while events.len() < max {
            // A read from a position includes the event there: ask for one more.
            let want = (max - events.len()).saturating_add(1).min(PAGE);
            let options = ReadAllOptions::default()
                .forwards()
                .position(server_position(from))
                .max_count(want);
            let mut read = self.client.read_all(&options).await.map_err(store_error)?;
            let mut got = 0;
            while let Some(e) = read.next().await.map_err(store_error)? {
                got += 1;
                let e = e.get_original_event();
                let position = Position(e.position.commit);
                if position <= from {
                    continue;
                }
                from = position;
                if !is_system(&e.stream_id) {
                    events.push(from_server(e));
                    if events.len() == max {
                        break;
                    }
                }
            }
            if got < want {
                break; // the end of the log
            }
        }
        Ok(events)
    }

    async fn head(&self) -> Result<Position, StoreError> {
        const LOOK_BACK: usize = 64;
        let mut before = StreamPosition::End;
        loop {
            let options = ReadAllOptions::default()
                .backwards()
                .position(before)
                .max_count(LOOK_BACK);
            let mut read = self.client.read_all(&options).await.map_err(store_error)?;
            let mut got = 0;
            while let Some(e) = read.next().await.map_err(store_error)? {
                got += 1;
                let e = e.get_original_event();
                if !is_system(&e.stream_id) {
                    return Ok(Position(e.position.commit));
                }
                before = StreamPosition::Position(e.position);
            }
            if got < LOOK_BACK {
                return Ok(Position::START);
            }
        }
    }

    fn subscribe_all(
        &self,
        after: Position,
    ) -> BoxStream<'static, Result<RecordedEvent, StoreError>> {
        let client = self.client.clone();
        let options = SubscribeToAllOptions::default()
            .position(server_position(after))
            .filter(SubscriptionFilter::on_stream_name().regex(USER_STREAMS));
        futures::stream::unfold(
            (client, options, None, after, false),
            |(client, options, sub, mut last, failed)| async move {
                if failed {
                    return None;
                }
                let mut sub = match sub {
                    Some(sub) => sub,
                    None => client.subscribe_to_all(&options).await,
                };
                loop {
                    match sub.next().await {
                        Ok(e) => {
                            let e = e.get_original_event();
                            let position = Position(e.position.commit);
                            // The filter already drops system streams; positions only grow.
                            if position <= last || is_system(&e.stream_id) {
                                continue;
                            }
                            last = position;
                            let event = from_server(e);
                            return Some((Ok(event), (client, options, Some(sub), last, false)));
                        }
                        // Ends the stream: the caller resubscribes from its own checkpoint.
                        Err(e) => {
                            return Some((Err(store_error(e)), (client, options, None, last, true)))
                        }
                    }
                }
            },
        )
        .boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kurrentdb_schemes_are_the_esdb_settings() {
        assert_eq!(
            normalized("kurrentdb://h:2113?tls=false"),
            "esdb://h:2113?tls=false"
        );
        assert_eq!(
            normalized("kurrent+discover://h:2113"),
            "esdb+discover://h:2113"
        );
        assert_eq!(normalized("esdb://h:2113"), "esdb://h:2113");
        for s in ["kurrentdb://h:2113?tls=false", "esdb://a:1,b:2?tls=true"] {
            assert!(normalized(s).parse::<ClientSettings>().is_ok(), "{s}");
        }
    }

    #[test]
    fn passwords_never_appear_in_messages() {
        assert_eq!(
            redacted("esdb://admin:changeit@db1:2113?tls=true"),
            "esdb://admin:***@db1:2113?tls=true"
        );
        assert_eq!(redacted("esdb://db1:2113"), "esdb://db1:2113");
    }
}
