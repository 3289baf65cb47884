//! Catch-up subscriptions, to a stream or to `$all` (optionally filtered): a confirmation,
//! the events after the start point, `caught_up`, then live events in commit order with no
//! gaps or duplicates. Pull-based: page from where the subscriber is, and at the head wait for
//! the store's head to move. As KurrentDB documents it, `caught_up` carries the server's time
//! and where the subscription stands (the stream revision, or the `$all` position; neither
//! while the stream or the log is empty), and so does every checkpoint's time. `fell_behind`
//! is never sent: a live subscription here never returns to catch-up (a slow subscriber holds
//! its own reader back instead).

use std::sync::Arc;

use tokio::sync::mpsc;
use tonic::Status;

use leadflow_store::{EventStore, Position, RecordedEvent, StreamName};

use crate::convert;
use crate::errors;
use crate::proto::event_store::client::streams::read_req::options::{
    filter_options, FilterOptions,
};
use crate::proto::event_store::client::streams::{read_resp, ReadResp};
use crate::semantics::{Db, TOMBSTONE_TYPE};
use crate::streams::{From, Plan, PAGE};

/// A server-side `$all` filter on stream names or event types.
pub struct Filter {
    on_event_type: bool,
    regex: Option<fancy_regex::Regex>,
    prefixes: Vec<String>,
    /// A checkpoint every this many considered events.
    pub checkpoint_interval: u64,
}

impl Filter {
    pub fn new(o: FilterOptions) -> Result<Self, Status> {
        let (on_event_type, expression) = match o.filter {
            Some(filter_options::Filter::StreamIdentifier(e)) => (false, e),
            Some(filter_options::Filter::EventType(e)) => (true, e),
            None => return Err(Status::invalid_argument("a filter needs an expression")),
        };
        let regex = if expression.regex.is_empty() {
            None
        } else {
            Some(fancy_regex::Regex::new(&expression.regex).map_err(|e| {
                Status::invalid_argument(format!(
                    "invalid filter regex {:?}: {e}",
                    expression.regex
                ))
            })?)
        };
        let window = match o.window {
            Some(filter_options::Window::Max(n)) if n > 0 => u64::from(n),
            _ => 32,
        };
        Ok(Self {
            on_event_type,
            regex,
            prefixes: expression.prefix,
            checkpoint_interval: window * u64::from(o.checkpoint_interval_multiplier.max(1)),
        })
    }

    /// A non-empty regex is an unanchored search; otherwise the name must start with one of
    /// the prefixes (none: nothing matches).
    pub fn matches(&self, e: &RecordedEvent) -> bool {
        let subject = if self.on_event_type {
            e.event_type.as_str()
        } else {
            e.stream.as_str()
        };
        match &self.regex {
            Some(re) => re.is_match(subject).unwrap_or(false),
            None => self
                .prefixes
                .iter()
                .any(|p| subject.starts_with(p.as_str())),
        }
    }
}

fn content(c: read_resp::Content) -> Result<ReadResp, Status> {
    Ok(ReadResp { content: Some(c) })
}

fn now() -> Option<prost_types::Timestamp> {
    Some(std::time::SystemTime::now().into())
}

/// Caught up on a stream, after `revision` (none while the stream is empty).
fn caught_up_on_stream(revision: Option<u64>) -> read_resp::Content {
    read_resp::Content::CaughtUp(read_resp::CaughtUp {
        timestamp: now(),
        stream_revision: revision.map(|r| r as i64),
        position: None,
    })
}

/// Caught up on `$all` at `after` (none while the log is empty).
fn caught_up_on_all(after: Position) -> read_resp::Content {
    read_resp::Content::CaughtUp(read_resp::CaughtUp {
        timestamp: now(),
        stream_revision: None,
        position: (after > Position::START).then_some(read_resp::Position {
            commit_position: after.0,
            prepare_position: after.0,
        }),
    })
}

/// Runs a subscription until the subscriber goes away (or its stream is tombstoned).
pub async fn run(db: Arc<Db>, plan: Plan, tx: mpsc::Sender<Result<ReadResp, Status>>) {
    let confirmation = read_resp::Content::Confirmation(read_resp::SubscriptionConfirmation {
        subscription_id: uuid::Uuid::new_v4().to_string(),
    });
    if tx.send(content(confirmation)).await.is_err() {
        return;
    }
    let result = match &plan.stream {
        Some(stream) => stream_subscription(&db, stream, &plan, &tx).await,
        None => all_subscription(&db, &plan, &tx).await,
    };
    if let Err(e) = result {
        let _ = tx.send(Err(e)).await;
    }
}

async fn stream_subscription(
    db: &Db,
    stream: &str,
    plan: &Plan,
    tx: &mpsc::Sender<Result<ReadResp, Status>>,
) -> Result<(), Status> {
    let name = StreamName::system(stream).map_err(|e| Status::invalid_argument(e.to_string()))?;
    let st = db.state(stream).await?;
    if st.tombstoned {
        return Err(errors::stream_deleted(stream));
    }
    let mut next = match plan.from {
        From::Start => 0,
        From::At(n) => n + 1,
        From::End => st.last.map_or(0, |l| l + 1),
    };
    let mut head = db.store.watch_head();
    let mut live = false;
    // The stream's last revision, for `caught_up` (none while it is empty).
    let mut last = st.last;
    loop {
        // Mark the head as seen *before* reading: an append landing between this read and
        // the wait below then wakes the wait instead of being missed.
        head.borrow_and_update();
        let page = db
            .store
            .read_stream(&name, next, PAGE)
            .await
            .map_err(errors::store)?;
        for e in &page {
            next = e.revision + 1;
            last = Some(e.revision);
            let event = read_resp::Content::Event(convert::read_event(e, plan.structured));
            if tx.send(content(event)).await.is_err() {
                return Ok(());
            }
            if e.event_type == TOMBSTONE_TYPE {
                return Err(errors::stream_deleted(stream));
            }
        }
        if page.len() < PAGE {
            if !live {
                live = true;
                if tx.send(content(caught_up_on_stream(last))).await.is_err() {
                    return Ok(());
                }
            }
            // Wait for anything new in the log since the read, then look again.
            tokio::select! {
                changed = head.changed() => if changed.is_err() { return Err(stopping()) },
                _ = tx.closed() => return Ok(()),
                _ = db.closed() => return Err(stopping()),
            }
        }
    }
}

async fn all_subscription(
    db: &Db,
    plan: &Plan,
    tx: &mpsc::Sender<Result<ReadResp, Status>>,
) -> Result<(), Status> {
    let mut after = match plan.from {
        From::Start => Position::START,
        From::At(p) => Position(p),
        From::End => db.store.head().await.map_err(errors::store)?,
    };
    let mut head = db.store.watch_head();
    let mut live = false;
    let mut considered = 0u64;
    let checkpoint = |p: Position| {
        read_resp::Content::Checkpoint(read_resp::Checkpoint {
            commit_position: p.0,
            prepare_position: p.0,
            timestamp: now(),
        })
    };
    loop {
        head.borrow_and_update();
        let page = db
            .store
            .read_all(after, PAGE)
            .await
            .map_err(errors::store)?;
        for e in &page {
            after = e.position;
            let wanted = plan.filter.as_ref().is_none_or(|f| f.matches(e));
            if wanted {
                let event = read_resp::Content::Event(convert::read_event(e, plan.structured));
                if tx.send(content(event)).await.is_err() {
                    return Ok(());
                }
            }
            if let Some(f) = &plan.filter {
                considered += 1;
                if considered.is_multiple_of(f.checkpoint_interval)
                    && tx.send(content(checkpoint(after))).await.is_err()
                {
                    return Ok(());
                }
            }
        }
        if page.len() < PAGE {
            if !live {
                live = true;
                if plan.filter.is_some() && tx.send(content(checkpoint(after))).await.is_err() {
                    return Ok(());
                }
                if tx.send(content(caught_up_on_all(after))).await.is_err() {
                    return Ok(());
                }
            }
            if *head.borrow() <= after {
                tokio::select! {
                    changed = head.changed() => if changed.is_err() { return Err(stopping()) },
                    _ = tx.closed() => return Ok(()),
                    _ = db.closed() => return Err(stopping()),
                }
            }
        }
    }
}

/// The store is closing under a live subscription. An error, never a clean end: a client
/// takes a stream that ends without one for a subscription that is still open.
fn stopping() -> Status {
    Status::unavailable("the node is stopping")
}
