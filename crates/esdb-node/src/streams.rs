//! The `Streams` service: append, batch append, reads (and subscriptions, in
//! [`crate::subscribe`]), delete and tombstone.

use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures::{Stream, StreamExt};
use tokio::sync::{mpsc, oneshot};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use leadflow_store::{ContentType, EventStore, Position};

use crate::convert::{self, stream_identifier};
use crate::errors::{self, BatchDetails};
use crate::proto::event_store::client as pb;
use crate::proto::event_store::client::streams::*;
use crate::proto::google::rpc;
use crate::semantics::{AppendOutcome, Db, Expected, Proposed};
use crate::subscribe::{self, Filter};

/// Events read from the store per page.
pub const PAGE: usize = 512;

pub type ReadStreamOf = Pin<Box<dyn Stream<Item = Result<ReadResp, Status>> + Send>>;

pub struct Service {
    db: Arc<Db>,
}

impl Service {
    pub fn new(db: Arc<Db>) -> Self {
        Self { db }
    }
}

/// Where a read starts.
#[derive(Clone, Copy, Debug)]
pub enum From {
    Start,
    End,
    At(u64),
}

/// A validated read request.
pub struct Plan {
    /// `None`: `$all`.
    pub stream: Option<String>,
    pub from: From,
    pub backwards: bool,
    /// `None`: a subscription.
    pub count: Option<u64>,
    pub filter: Option<Filter>,
    pub structured: bool,
    pub compatibility: u32,
}

fn plan(req: ReadReq) -> Result<Plan, Status> {
    use read_req::options::{all_options::AllOption, stream_options::RevisionOption};
    use read_req::options::{CountOption, FilterOption, StreamOption};
    let o = req
        .options
        .ok_or_else(|| Status::invalid_argument("read options are required"))?;
    let structured = match o.uuid_option.as_ref().and_then(|u| u.content.as_ref()) {
        Some(read_req::options::uuid_option::Content::Structured(())) => true,
        Some(read_req::options::uuid_option::Content::String(())) => false,
        None => return Err(Status::invalid_argument("uuid_option is required")),
    };
    let backwards = o.read_direction == read_req::options::ReadDirection::Backwards as i32;
    let (stream, from) = match o.stream_option {
        Some(StreamOption::Stream(s)) => {
            let name = convert::stream_name(s.stream_identifier.as_ref())?;
            let from = match s.revision_option {
                Some(RevisionOption::Revision(n)) => From::At(n),
                Some(RevisionOption::Start(())) | None => From::Start,
                Some(RevisionOption::End(())) => From::End,
            };
            (Some(name), from)
        }
        Some(StreamOption::All(a)) => {
            let from = match a.all_option {
                Some(AllOption::Position(p)) => From::At(p.commit_position),
                Some(AllOption::Start(())) | None => From::Start,
                Some(AllOption::End(())) => From::End,
            };
            (None, from)
        }
        None => return Err(Status::invalid_argument("a stream or $all is required")),
    };
    let count = match o.count_option {
        Some(CountOption::Count(n)) => Some(n),
        Some(CountOption::Subscription(_)) => None,
        None => return Err(errors::bad_combination("no count, no subscription")),
    };
    let filter = match o.filter_option {
        Some(FilterOption::Filter(f)) => Some(Filter::new(f)?),
        Some(FilterOption::NoFilter(())) | None => None,
    };
    if stream.is_some() && filter.is_some() {
        return Err(errors::bad_combination("stream, filter"));
    }
    if count.is_none() && backwards {
        return Err(errors::bad_combination("subscription, backwards"));
    }
    Ok(Plan {
        stream,
        from,
        backwards,
        count,
        filter,
        structured,
        compatibility: o.control_option.map_or(0, |c| c.compatibility),
    })
}

fn content(c: read_resp::Content) -> ReadResp {
    ReadResp { content: Some(c) }
}

/// The four expected-version arms, which each request type declares as its own enum.
macro_rules! expected {
    ($o:expr, $E:path) => {{
        use $E as E;
        match $o {
            Some(E::Revision(n)) => Expected::Exact(n),
            Some(E::NoStream(())) => Expected::NoStream,
            Some(E::StreamExists(())) => Expected::StreamExists,
            Some(E::Any(())) | None => Expected::Any,
        }
    }};
}

/// Checks a proposed message's system metadata and turns it into a [`Proposed`].
fn proposed(
    id: Option<&pb::Uuid>,
    metadata: &std::collections::HashMap<String, String>,
    custom_metadata: Vec<u8>,
    data: Vec<u8>,
) -> Result<Proposed, Status> {
    let event_type = metadata
        .get("type")
        .filter(|t| !t.is_empty())
        .ok_or_else(|| errors::missing_metadata("type"))?;
    let content_type = match metadata.get("content-type") {
        None => return Err(errors::missing_metadata("content-type")),
        Some(c) if c == "application/json" => ContentType::Json,
        Some(_) => ContentType::Binary,
    };
    Ok(Proposed {
        id: convert::uuid_from(id)?,
        event_type: event_type.clone(),
        data,
        custom_metadata,
        content_type,
    })
}

/// Reads with a count (not a subscription) into `tx`.
async fn read_counted(db: Arc<Db>, plan: Plan, tx: mpsc::Sender<Result<ReadResp, Status>>) {
    let result = match &plan.stream {
        Some(stream) => read_stream(&db, stream, &plan, &tx).await,
        None => read_all(&db, &plan, &tx).await,
    };
    if let Err(e) = result {
        let _ = tx.send(Err(e)).await;
    }
}

async fn read_stream(
    db: &Db,
    stream: &str,
    plan: &Plan,
    tx: &mpsc::Sender<Result<ReadResp, Status>>,
) -> Result<(), Status> {
    let st = db.state(stream).await?;
    let visible_from = st.truncate_before().unwrap_or(0);
    if let Some(subject) = crate::semantics::key_subject(stream) {
        if let leadflow_store::StoredKey::Present(wrapped) =
            db.store.read_key(subject).await.map_err(errors::store)?
        {
            let e = crate::semantics::key_event(stream, subject, wrapped);
            let event = read_resp::Content::Event(convert::read_event(&e, plan.structured));
            let _ = tx.send(Ok(content(event))).await;
            return Ok(());
        }
    }
    if st.last.is_none() || st.soft_deleted() {
        let _ = tx
            .send(Ok(content(read_resp::Content::StreamNotFound(
                read_resp::StreamNotFound {
                    stream_identifier: Some(stream_identifier(stream)),
                },
            ))))
            .await;
        return Ok(());
    }
    let mut remaining = plan.count.unwrap_or(u64::MAX);
    if plan.backwards {
        let mut from = match plan.from {
            From::End => None,
            From::At(n) => Some(n),
            From::Start => Some(0),
        };
        'pages: while remaining > 0 {
            let page = db
                .store
                .read_stream_backwards(stream, from, PAGE.min(remaining as usize))
                .await
                .map_err(errors::store)?;
            let short = page.len() < PAGE.min(remaining as usize);
            for e in &page {
                if e.revision < visible_from {
                    break 'pages;
                }
                let event = read_resp::Content::Event(convert::read_event(e, plan.structured));
                if tx.send(Ok(content(event))).await.is_err() {
                    return Ok(());
                }
                remaining -= 1;
            }
            match page.last() {
                Some(e) if !short && e.revision > 0 => from = Some(e.revision - 1),
                _ => break,
            }
        }
    } else {
        let mut next = match plan.from {
            From::Start => 0,
            From::At(n) => n,
            From::End => st.last.map_or(0, |l| l + 1),
        }
        .max(visible_from);
        while remaining > 0 {
            let page = db
                .store
                .read_stream(
                    &leadflow_store::StreamName::system(stream)
                        .map_err(|e| Status::invalid_argument(e.to_string()))?,
                    next,
                    PAGE.min(remaining as usize),
                )
                .await
                .map_err(errors::store)?;
            for e in &page {
                let event = read_resp::Content::Event(convert::read_event(e, plan.structured));
                if tx.send(Ok(content(event))).await.is_err() {
                    return Ok(());
                }
                remaining -= 1;
            }
            match page.last() {
                Some(e) if page.len() == PAGE => next = e.revision + 1,
                _ => break,
            }
        }
    }
    if plan.compatibility >= 1 {
        if let Some(last) = st.last {
            let _ = tx
                .send(Ok(content(read_resp::Content::LastStreamPosition(last))))
                .await;
        }
    }
    Ok(())
}

async fn read_all(
    db: &Db,
    plan: &Plan,
    tx: &mpsc::Sender<Result<ReadResp, Status>>,
) -> Result<(), Status> {
    let mut remaining = plan.count.unwrap_or(u64::MAX);
    let send = |e: &leadflow_store::RecordedEvent| {
        let event = read_resp::Content::Event(convert::read_event(e, plan.structured));
        tx.send(Ok(content(event)))
    };
    if plan.backwards {
        let mut before = match plan.from {
            From::End => None,
            From::At(p) => Some(Position(p)),
            From::Start => return Ok(()),
        };
        while remaining > 0 {
            let page = db
                .store
                .read_all_backwards(before, PAGE)
                .await
                .map_err(errors::store)?;
            for e in &page {
                if plan.filter.as_ref().is_none_or(|f| f.matches(e)) {
                    if send(e).await.is_err() {
                        return Ok(());
                    }
                    remaining -= 1;
                    if remaining == 0 {
                        break;
                    }
                }
            }
            match page.last() {
                Some(e) if page.len() == PAGE => before = Some(e.position),
                _ => break,
            }
        }
    } else {
        let mut after = match plan.from {
            From::Start => Position::START,
            From::At(p) => Position(p.saturating_sub(1)),
            From::End => return Ok(()),
        };
        while remaining > 0 {
            let page = db
                .store
                .read_all(after, PAGE)
                .await
                .map_err(errors::store)?;
            for e in &page {
                if plan.filter.as_ref().is_none_or(|f| f.matches(e)) {
                    if send(e).await.is_err() {
                        return Ok(());
                    }
                    remaining -= 1;
                    if remaining == 0 {
                        break;
                    }
                }
            }
            match page.last() {
                Some(e) if page.len() == PAGE => after = e.position,
                _ => break,
            }
        }
    }
    Ok(())
}

fn append_response(outcome: AppendOutcome) -> AppendResp {
    use append_resp::wrong_expected_version as w;
    let result = match outcome {
        AppendOutcome::Success { current, position } => {
            append_resp::Result::Success(append_resp::Success {
                current_revision_option: Some(match current {
                    Some(r) => append_resp::success::CurrentRevisionOption::CurrentRevision(r),
                    None => append_resp::success::CurrentRevisionOption::NoStream(()),
                }),
                position_option: Some(match position {
                    Some(p) => {
                        append_resp::success::PositionOption::Position(append_resp::Position {
                            commit_position: p,
                            prepare_position: p,
                        })
                    }
                    None => append_resp::success::PositionOption::NoPosition(()),
                }),
            })
        }
        AppendOutcome::WrongExpectedVersion { current, expected } => {
            append_resp::Result::WrongExpectedVersion(append_resp::WrongExpectedVersion {
                current_revision_option_20_6_0: Some(match current {
                    Some(r) => w::CurrentRevisionOption2060::CurrentRevision2060(r),
                    None => w::CurrentRevisionOption2060::NoStream2060(()),
                }),
                expected_revision_option_20_6_0: Some(match expected {
                    Expected::Exact(n) => w::ExpectedRevisionOption2060::ExpectedRevision2060(n),
                    Expected::NoStream => {
                        w::ExpectedRevisionOption2060::ExpectedRevision2060(u64::MAX)
                    }
                    Expected::Any => w::ExpectedRevisionOption2060::Any2060(()),
                    Expected::StreamExists => w::ExpectedRevisionOption2060::StreamExists2060(()),
                }),
                current_revision_option: Some(match current {
                    Some(r) => w::CurrentRevisionOption::CurrentRevision(r),
                    None => w::CurrentRevisionOption::CurrentNoStream(()),
                }),
                expected_revision_option: Some(match expected {
                    Expected::Exact(n) => w::ExpectedRevisionOption::ExpectedRevision(n),
                    Expected::NoStream => w::ExpectedRevisionOption::ExpectedNoStream(()),
                    Expected::Any => w::ExpectedRevisionOption::ExpectedAny(()),
                    Expected::StreamExists => w::ExpectedRevisionOption::ExpectedStreamExists(()),
                }),
            })
        }
    };
    AppendResp {
        result: Some(result),
    }
}

/// Streams a batch-append session remembers the last write of before it forgets the finished
/// ones.
const ORDERED_STREAMS: usize = 1024;

/// One write of a batch-append session, answered in the body.
async fn batch_write(
    db: &Db,
    correlation: Option<pb::Uuid>,
    options: batch_append_req::Options,
    messages: Vec<batch_append_req::ProposedMessage>,
) -> BatchAppendResp {
    use batch_append_req::options::{DeadlineOption, ExpectedStreamPosition as E};
    let stream = convert::stream_name(options.stream_identifier.as_ref());
    let identifier = options.stream_identifier.clone();
    let answer = |result| BatchAppendResp {
        correlation_id: correlation.clone(),
        stream_identifier: identifier.clone().or(Some(pb::StreamIdentifier::default())),
        result: Some(result),
        expected_stream_position: None,
    };
    let fail = |code, details| {
        answer(batch_append_resp::Result::Error(errors::batch_error(
            code, details,
        )))
    };
    let stream = match stream {
        Ok(s) => s,
        Err(e) => {
            return fail(
                rpc::Code::InvalidArgument,
                BatchDetails::BadRequest(pb::BadRequest {
                    message: e.message().to_owned(),
                }),
            )
        }
    };
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let deadline = match options.deadline_option {
        Some(DeadlineOption::Deadline(d)) => Some(Duration::new(
            d.seconds.max(0) as u64,
            d.nanos.max(0) as u32,
        )),
        Some(DeadlineOption::Deadline21100(t)) => Some(Duration::new(
            t.seconds.max(0) as u64,
            t.nanos.max(0) as u32,
        )),
        None => None,
    };
    // Clients send either an absolute time since the epoch or a relative duration; anything
    // before 2001 is taken as relative.
    let expired = deadline.is_some_and(|d| d.as_secs() > 1_000_000_000 && d < now);
    if expired {
        return fail(rpc::Code::DeadlineExceeded, BatchDetails::Timeout);
    }
    let expected = match options.expected_stream_position {
        Some(E::StreamPosition(n)) => Expected::Exact(n),
        Some(E::NoStream(())) => Expected::NoStream,
        Some(E::StreamExists(())) => Expected::StreamExists,
        Some(E::Any(())) | None => Expected::Any,
    };
    let events = messages
        .into_iter()
        .map(|m| proposed(m.id.as_ref(), &m.metadata, m.custom_metadata, m.data))
        .collect::<Result<Vec<_>, _>>();
    let events = match events {
        Ok(events) => events,
        Err(e) => {
            return fail(
                rpc::Code::InvalidArgument,
                BatchDetails::BadRequest(pb::BadRequest {
                    message: e.message().to_owned(),
                }),
            )
        }
    };
    match db.append(&stream, expected, events).await {
        Ok(AppendOutcome::Success { current, position }) => answer(
            batch_append_resp::Result::Success(batch_append_resp::Success {
                current_revision_option: Some(match current {
                    Some(r) => {
                        batch_append_resp::success::CurrentRevisionOption::CurrentRevision(r)
                    }
                    None => batch_append_resp::success::CurrentRevisionOption::NoStream(()),
                }),
                position_option: Some(match position {
                    Some(p) => batch_append_resp::success::PositionOption::Position(
                        pb::AllStreamPosition {
                            commit_position: p,
                            prepare_position: p,
                        },
                    ),
                    None => batch_append_resp::success::PositionOption::NoPosition(()),
                }),
            }),
        ),
        Ok(AppendOutcome::WrongExpectedVersion { current, expected }) => {
            use pb::wrong_expected_version::{
                CurrentStreamRevisionOption as C, ExpectedStreamPositionOption as X,
            };
            fail(
                rpc::Code::AlreadyExists,
                BatchDetails::WrongExpectedVersion(pb::WrongExpectedVersion {
                    current_stream_revision_option: Some(match current {
                        Some(r) => C::CurrentStreamRevision(r),
                        None => C::CurrentNoStream(()),
                    }),
                    expected_stream_position_option: Some(match expected {
                        Expected::Exact(n) => X::ExpectedStreamPosition(n),
                        Expected::Any => X::ExpectedAny(()),
                        Expected::StreamExists => X::ExpectedStreamExists(()),
                        Expected::NoStream => X::ExpectedNoStream(()),
                    }),
                }),
            )
        }
        Err(status) if status.message().contains("is deleted") => fail(
            rpc::Code::NotFound,
            BatchDetails::StreamDeleted(pb::StreamDeleted {
                stream_identifier: Some(stream_identifier(&stream)),
            }),
        ),
        Err(status) if status.message().starts_with("Maximum Append Size") => fail(
            rpc::Code::InvalidArgument,
            BatchDetails::TooLarge(pb::MaximumAppendSizeExceeded {
                max_append_size: db.max_append_size as u32,
            }),
        ),
        Err(status) => fail(
            rpc::Code::InvalidArgument,
            BatchDetails::BadRequest(pb::BadRequest {
                message: status.message().to_owned(),
            }),
        ),
    }
}

#[tonic::async_trait]
impl streams_server::Streams for Service {
    type ReadStream = ReadStreamOf;
    type BatchAppendStream = Pin<Box<dyn Stream<Item = Result<BatchAppendResp, Status>> + Send>>;

    async fn read(&self, request: Request<ReadReq>) -> Result<Response<Self::ReadStream>, Status> {
        let plan = plan(request.into_inner())?;
        // A tombstoned stream (or the metastream of one) fails the call itself.
        if let Some(stream) = &plan.stream {
            let owner = stream.strip_prefix("$$").unwrap_or(stream);
            if self.db.state(owner).await?.tombstoned && plan.count.is_some() {
                return Err(errors::stream_deleted(stream));
            }
        }
        let (tx, rx) = mpsc::channel(64);
        let db = self.db.clone();
        match plan.count {
            Some(_) => {
                tokio::spawn(read_counted(db, plan, tx));
            }
            None => {
                tokio::spawn(subscribe::run(db, plan, tx));
            }
        }
        Ok(Response::new(ReceiverStream::new(rx).boxed()))
    }

    async fn append(
        &self,
        request: Request<Streaming<AppendReq>>,
    ) -> Result<Response<AppendResp>, Status> {
        let mut input = request.into_inner();
        let options = match input.message().await? {
            Some(AppendReq {
                content: Some(append_req::Content::Options(o)),
            }) => o,
            _ => {
                return Err(Status::invalid_argument(
                    "an append starts with its options",
                ))
            }
        };
        let stream = convert::stream_name(options.stream_identifier.as_ref())?;
        let expected = expected!(
            options.expected_stream_revision,
            append_req::options::ExpectedStreamRevision
        );
        let mut events = Vec::new();
        let mut size = 0usize;
        while let Some(message) = input.message().await? {
            match message.content {
                Some(append_req::Content::ProposedMessage(m)) => {
                    size += m.data.len() + m.custom_metadata.len();
                    if size > self.db.max_append_size {
                        return Err(errors::too_large(self.db.max_append_size));
                    }
                    events.push(proposed(
                        m.id.as_ref(),
                        &m.metadata,
                        m.custom_metadata,
                        m.data,
                    )?);
                }
                _ => return Err(Status::invalid_argument("options may only come first")),
            }
        }
        let outcome = self.db.append(&stream, expected, events).await?;
        Ok(Response::new(append_response(outcome)))
    }

    async fn delete(&self, request: Request<DeleteReq>) -> Result<Response<DeleteResp>, Status> {
        let o = request
            .into_inner()
            .options
            .ok_or_else(|| Status::invalid_argument("delete options are required"))?;
        let stream = convert::stream_name(o.stream_identifier.as_ref())?;
        let position = self
            .db
            .delete(
                &stream,
                expected!(
                    o.expected_stream_revision,
                    delete_req::options::ExpectedStreamRevision
                ),
            )
            .await?;
        Ok(Response::new(DeleteResp {
            position_option: Some(delete_resp::PositionOption::Position(
                delete_resp::Position {
                    commit_position: position,
                    prepare_position: position,
                },
            )),
        }))
    }

    async fn tombstone(
        &self,
        request: Request<TombstoneReq>,
    ) -> Result<Response<TombstoneResp>, Status> {
        let o = request
            .into_inner()
            .options
            .ok_or_else(|| Status::invalid_argument("tombstone options are required"))?;
        let stream = convert::stream_name(o.stream_identifier.as_ref())?;
        let position = self
            .db
            .tombstone(
                &stream,
                expected!(
                    o.expected_stream_revision,
                    tombstone_req::options::ExpectedStreamRevision
                ),
            )
            .await?;
        Ok(Response::new(TombstoneResp {
            position_option: Some(tombstone_resp::PositionOption::Position(
                tombstone_resp::Position {
                    commit_position: position,
                    prepare_position: position,
                },
            )),
        }))
    }

    async fn batch_append(
        &self,
        request: Request<Streaming<BatchAppendReq>>,
    ) -> Result<Response<Self::BatchAppendStream>, Status> {
        let mut input = request.into_inner();
        let db = self.db.clone();
        let (tx, rx) = mpsc::channel(64);
        tokio::spawn(async move {
            // Writes in progress, by correlation id: options and the messages so far.
            let mut pending: std::collections::HashMap<
                Vec<u8>,
                (
                    batch_append_req::Options,
                    Vec<batch_append_req::ProposedMessage>,
                ),
            > = Default::default();
            // The last write of each stream still under way, which the next one waits for.
            let mut order: std::collections::HashMap<Vec<u8>, oneshot::Receiver<()>> =
                Default::default();
            loop {
                let message = tokio::select! {
                    message = input.message() => message,
                    _ = db.closed() => {
                        let _ = tx.send(Err(Status::unavailable("the node is stopping"))).await;
                        break;
                    }
                };
                let req = match message {
                    Ok(Some(req)) => req,
                    Ok(None) => break,
                    Err(e) => {
                        let _ = tx.send(Err(e)).await;
                        break;
                    }
                };
                let key =
                    prost::Message::encode_to_vec(&req.correlation_id.clone().unwrap_or_default());
                let entry = pending
                    .entry(key.clone())
                    .or_insert_with(|| (req.options.clone().unwrap_or_default(), Vec::new()));
                if let Some(o) = req.options {
                    entry.0 = o;
                }
                entry.1.extend(req.proposed_messages);
                if req.is_final {
                    let (options, messages) = pending.remove(&key).expect("just inserted");
                    // Writes to different streams go on at once, as on a real node, so a
                    // session's writes share the store's group commits; writes to one stream
                    // (or its metastream) keep the order they came in.
                    let owner = options
                        .stream_identifier
                        .as_ref()
                        .map(|s| {
                            let name: &[u8] = s.stream_name.as_ref();
                            name.strip_prefix(b"$$".as_slice()).unwrap_or(name).to_vec()
                        })
                        .unwrap_or_default();
                    if order.len() >= ORDERED_STREAMS {
                        order.retain(|_, before| {
                            matches!(before.try_recv(), Err(oneshot::error::TryRecvError::Empty))
                        });
                    }
                    let (done, next) = oneshot::channel();
                    let before = order.insert(owner, next);
                    let (db, tx) = (db.clone(), tx.clone());
                    let correlation = req.correlation_id;
                    tokio::spawn(async move {
                        if let Some(before) = before {
                            let _ = before.await;
                        }
                        let answer = batch_write(&db, correlation, options, messages).await;
                        let _ = done.send(());
                        let _ = tx.send(Ok(answer)).await;
                    });
                }
            }
        });
        Ok(Response::new(ReceiverStream::new(rx).boxed()))
    }
}
