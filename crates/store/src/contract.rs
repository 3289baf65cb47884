//! The contract every [`EventStore`] backend passes: one function per behaviour, and
//! [`event_store_contract_tests!`](crate::event_store_contract_tests) to stamp them out as
//! `#[tokio::test]`s for a backend. A backend supplies a [`Harness`] whose `open` gives a store
//! over the same storage each time it is called, so a test can drop a store and open it again.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures::StreamExt;
use uuid::Uuid;

use crate::{
    ContentType, EventStore, ExpectedRevision, NewEvent, NewKey, Position, RecordedEvent,
    StoreError, StoredKey, StreamName,
};

/// Opens stores over one fresh storage (a file, a server).
#[async_trait]
pub trait Harness: Send + Sync {
    /// A store over this harness's storage; opening twice reaches the same events.
    async fn open(&self) -> Arc<dyn EventStore>;
}

/// Stamps out the whole contract suite as tokio tests. `$harness` is an expression building a
/// fresh [`Harness`] (it may `.await`). The calling crate needs `tokio` as a dev-dependency.
#[macro_export]
macro_rules! event_store_contract_tests {
    ($harness:expr) => {
        $crate::event_store_contract_tests!(@tests $harness;
            appended_events_read_back_in_order,
            content_types_read_back_as_written,
            expected_revision_no_stream,
            expected_revision_exact_conflict_reports_actual,
            expected_revision_any_and_stream_exists,
            retried_append_is_an_idempotent_no_op,
            retry_with_stale_expected_revision_is_still_idempotent,
            partly_new_batch_is_rejected_and_writes_nothing,
            read_stream_from_any_revision,
            read_all_from_any_position,
            invalid_appends_are_rejected,
            concurrent_writers_keep_the_log_gap_free_for_readers,
            subscriber_sees_every_event_exactly_once,
            subscription_from_a_position_catches_up_then_goes_live,
            reopened_store_has_every_acknowledged_event,
            subject_keys_are_kept_apart_and_destroyed_for_good,
        );
    };
    (@tests $harness:expr; $($name:ident,)*) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $name() {
                let harness = $harness;
                $crate::contract::$name(&harness).await;
            }
        )*
    };
}

fn stream(name: &str) -> StreamName {
    StreamName::parse(name).expect("valid test stream name")
}

/// `n` events with fresh ids, payloads naming their index.
pub fn events(n: usize) -> Vec<NewEvent> {
    (0..n)
        .map(|i| NewEvent {
            id: Uuid::new_v4(),
            event_type: format!("TestEvent{i}"),
            data: format!("{{\"i\":{i}}}").into_bytes(),
            metadata: b"{\"actor\":\"test\"}".to_vec(),
            content_type: ContentType::Json,
        })
        .collect()
}

async fn read_everything(store: &dyn EventStore) -> Vec<RecordedEvent> {
    let mut all = Vec::new();
    let mut after = Position::START;
    loop {
        let batch = store.read_all(after, 500).await.expect("read_all");
        let Some(last) = batch.last() else { return all };
        after = last.position;
        all.extend(batch);
    }
}

pub async fn appended_events_read_back_in_order(h: &dyn Harness) {
    let store = h.open().await;
    let s = stream("order-1");
    let batch = events(3);
    let r = store
        .append(&s, ExpectedRevision::NoStream, batch.clone())
        .await
        .unwrap();
    assert_eq!((r.first_revision, r.last_revision), (0, 2));
    let r2 = store
        .append(&s, ExpectedRevision::Exact(2), events(2))
        .await
        .unwrap();
    assert_eq!((r2.first_revision, r2.last_revision), (3, 4));
    assert!(r2.last_position > r.last_position);

    let read = store.read_stream(&s, 0, usize::MAX).await.unwrap();
    assert_eq!(read.len(), 5);
    for (i, e) in read.iter().enumerate() {
        assert_eq!(e.revision, i as u64);
        assert_eq!(e.stream, "order-1");
    }
    for (e, n) in read.iter().zip(&batch) {
        assert_eq!(
            (&e.id, &e.event_type, &e.data, &e.metadata),
            (&n.id, &n.event_type, &n.data, &n.metadata)
        );
    }
    assert!(read.windows(2).all(|w| w[0].position < w[1].position));
    assert_eq!(read[2].position, r.last_position);
    assert!(read[3].position > r.last_position);
    assert_eq!(read[4].position, r2.last_position);
    assert_eq!(store.head().await.unwrap(), r2.last_position);
}

pub async fn content_types_read_back_as_written(h: &dyn Harness) {
    let store = h.open().await;
    let s = stream("typed-1");
    let mut batch = events(2);
    batch[1].content_type = ContentType::Binary;
    batch[1].data = vec![0xff, 0x00, 0x7b];
    store
        .append(&s, ExpectedRevision::NoStream, batch.clone())
        .await
        .unwrap();
    let read = store.read_stream(&s, 0, usize::MAX).await.unwrap();
    let got: Vec<_> = read.iter().map(|e| (e.content_type, &e.data)).collect();
    let sent: Vec<_> = batch.iter().map(|e| (e.content_type, &e.data)).collect();
    assert_eq!(got, sent);
    let all = read_everything(store.as_ref()).await;
    assert_eq!(all[1].content_type, ContentType::Binary);
}

pub async fn expected_revision_no_stream(h: &dyn Harness) {
    let store = h.open().await;
    let s = stream("nostream-1");
    store
        .append(&s, ExpectedRevision::NoStream, events(1))
        .await
        .unwrap();
    let err = store
        .append(&s, ExpectedRevision::NoStream, events(1))
        .await
        .unwrap_err();
    assert_eq!(
        err,
        StoreError::WrongExpectedRevision {
            stream: s.to_string(),
            expected: ExpectedRevision::NoStream,
            actual: Some(0)
        }
    );
    assert_eq!(store.read_stream(&s, 0, usize::MAX).await.unwrap().len(), 1);
}

pub async fn expected_revision_exact_conflict_reports_actual(h: &dyn Harness) {
    let store = h.open().await;
    let s = stream("exact-1");
    store
        .append(&s, ExpectedRevision::NoStream, events(2))
        .await
        .unwrap();
    let head = store.head().await.unwrap();
    for wrong in [0, 2, 7] {
        let err = store
            .append(&s, ExpectedRevision::Exact(wrong), events(1))
            .await
            .unwrap_err();
        assert_eq!(
            err,
            StoreError::WrongExpectedRevision {
                stream: s.to_string(),
                expected: ExpectedRevision::Exact(wrong),
                actual: Some(1)
            }
        );
    }
    let missing = stream("exact-missing");
    let err = store
        .append(&missing, ExpectedRevision::Exact(0), events(1))
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::WrongExpectedRevision { actual: None, .. }),
        "{err:?}"
    );
    assert_eq!(
        store.head().await.unwrap(),
        head,
        "a refused append writes nothing"
    );
    store
        .append(&s, ExpectedRevision::Exact(1), events(1))
        .await
        .unwrap();
}

pub async fn expected_revision_any_and_stream_exists(h: &dyn Harness) {
    let store = h.open().await;
    let s = stream("any-1");
    let err = store
        .append(&s, ExpectedRevision::StreamExists, events(1))
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::WrongExpectedRevision { actual: None, .. }),
        "{err:?}"
    );
    store
        .append(&s, ExpectedRevision::Any, events(1))
        .await
        .unwrap();
    let r = store
        .append(&s, ExpectedRevision::Any, events(1))
        .await
        .unwrap();
    assert_eq!(r.last_revision, 1);
    let r = store
        .append(&s, ExpectedRevision::StreamExists, events(1))
        .await
        .unwrap();
    assert_eq!(r.last_revision, 2);
}

pub async fn retried_append_is_an_idempotent_no_op(h: &dyn Harness) {
    let store = h.open().await;
    let s = stream("idem-1");
    let batch = events(3);
    let first = store
        .append(&s, ExpectedRevision::NoStream, batch.clone())
        .await
        .unwrap();
    let head = store.head().await.unwrap();
    for expected in [
        ExpectedRevision::NoStream,
        ExpectedRevision::Any,
        ExpectedRevision::Exact(u64::MAX >> 1),
    ] {
        let again = store.append(&s, expected, batch.clone()).await.unwrap();
        assert_eq!(
            again, first,
            "a retry with {expected} returns the original result"
        );
    }
    assert_eq!(store.head().await.unwrap(), head, "a retry appends nothing");
    assert_eq!(store.read_stream(&s, 0, usize::MAX).await.unwrap().len(), 3);
}

pub async fn retry_with_stale_expected_revision_is_still_idempotent(h: &dyn Harness) {
    let store = h.open().await;
    let s = stream("idem-2");
    let batch = events(2);
    let first = store
        .append(&s, ExpectedRevision::NoStream, batch.clone())
        .await
        .unwrap();
    store
        .append(&s, ExpectedRevision::Exact(1), events(1))
        .await
        .unwrap();
    let again = store
        .append(&s, ExpectedRevision::NoStream, batch)
        .await
        .unwrap();
    assert_eq!(again, first);
    assert_eq!(store.read_stream(&s, 0, usize::MAX).await.unwrap().len(), 3);
}

pub async fn partly_new_batch_is_rejected_and_writes_nothing(h: &dyn Harness) {
    let store = h.open().await;
    let s = stream("partial-1");
    let batch = events(2);
    store
        .append(&s, ExpectedRevision::NoStream, batch.clone())
        .await
        .unwrap();
    let head = store.head().await.unwrap();

    let mut mixed = batch.clone();
    mixed.extend(events(1));
    assert!(store
        .append(&s, ExpectedRevision::Any, mixed)
        .await
        .is_err());

    let mut new_then_known = events(1);
    new_then_known.push(batch[0].clone());
    assert!(store
        .append(&s, ExpectedRevision::Any, new_then_known)
        .await
        .is_err());

    let shorter = vec![batch[0].clone()];
    let prefix = store.append(&s, ExpectedRevision::Any, shorter).await;
    assert!(
        prefix
            .as_ref()
            .map(|r| r.last_revision == 0)
            .unwrap_or(true),
        "a known prefix is either refused or idempotent: {prefix:?}"
    );
    assert_eq!(store.head().await.unwrap(), head);
    assert_eq!(store.read_stream(&s, 0, usize::MAX).await.unwrap().len(), 2);
}

pub async fn read_stream_from_any_revision(h: &dyn Harness) {
    let store = h.open().await;
    let s = stream("read-1");
    store
        .append(&s, ExpectedRevision::NoStream, events(10))
        .await
        .unwrap();
    store
        .append(&stream("read-other"), ExpectedRevision::NoStream, events(3))
        .await
        .unwrap();
    for from in [0u64, 1, 5, 9, 10, 50] {
        let read = store.read_stream(&s, from, usize::MAX).await.unwrap();
        let revisions: Vec<u64> = read.iter().map(|e| e.revision).collect();
        assert_eq!(
            revisions,
            (from.min(10)..10).collect::<Vec<_>>(),
            "from {from}"
        );
    }
    let limited = store.read_stream(&s, 2, 3).await.unwrap();
    assert_eq!(
        limited.iter().map(|e| e.revision).collect::<Vec<_>>(),
        vec![2, 3, 4]
    );
    assert!(store
        .read_stream(&stream("read-missing"), 0, 10)
        .await
        .unwrap()
        .is_empty());
}

pub async fn read_all_from_any_position(h: &dyn Harness) {
    let store = h.open().await;
    for i in 0..5 {
        store
            .append(
                &stream(&format!("all-{i}")),
                ExpectedRevision::NoStream,
                events(i + 1),
            )
            .await
            .unwrap();
    }
    let all = read_everything(store.as_ref()).await;
    assert_eq!(all.len(), 15);
    assert!(all.windows(2).all(|w| w[0].position < w[1].position));
    for (k, e) in all.iter().enumerate() {
        let rest = store.read_all(e.position, usize::MAX).await.unwrap();
        assert_eq!(rest.len(), all.len() - k - 1, "after {}", e.position);
        assert_eq!(rest.first().map(|e| e.id), all.get(k + 1).map(|e| e.id));
    }
    assert_eq!(store.read_all(Position::START, 4).await.unwrap().len(), 4);
    assert!(store
        .read_all(all.last().unwrap().position, 10)
        .await
        .unwrap()
        .is_empty());
}

pub async fn invalid_appends_are_rejected(h: &dyn Harness) {
    let store = h.open().await;
    let err = store
        .append(&stream("empty-1"), ExpectedRevision::Any, Vec::new())
        .await
        .unwrap_err();
    assert_eq!(err, StoreError::EmptyAppend);
    assert!(StreamName::parse("").is_err());
    assert!(StreamName::parse("$all").is_err());
    assert!(StreamName::parse("a\nb").is_err());
    assert!(StreamName::parse("x".repeat(201)).is_err());
    let mut duplicate_in_batch = events(1);
    duplicate_in_batch.push(duplicate_in_batch[0].clone());
    assert!(store
        .append(&stream("dup-1"), ExpectedRevision::Any, duplicate_in_batch)
        .await
        .is_err());
    assert_eq!(store.head().await.unwrap(), Position::START);
}

/// Many writers on their own streams and one shared stream, while readers tail the log: every
/// reader sees positions strictly increase, and what a tailing reader saw equals the final log
/// (an event committed "behind" a reader's position would be missing from its tail).
pub async fn concurrent_writers_keep_the_log_gap_free_for_readers(h: &dyn Harness) {
    const WRITERS: usize = 16;
    const APPENDS: usize = 40;
    let store = h.open().await;
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));

    let mut readers = Vec::new();
    for _ in 0..3 {
        let (store, done) = (store.clone(), done.clone());
        readers.push(tokio::spawn(async move {
            let mut seen: Vec<RecordedEvent> = Vec::new();
            let mut after = Position::START;
            loop {
                let finished = done.load(std::sync::atomic::Ordering::SeqCst);
                let batch = store.read_all(after, 64).await.expect("read_all");
                for e in &batch {
                    assert!(
                        e.position > after,
                        "positions strictly increase: {} after {}",
                        e.position,
                        after
                    );
                    after = e.position;
                }
                let empty = batch.is_empty();
                seen.extend(batch);
                if finished && empty {
                    return seen;
                }
                if empty {
                    tokio::task::yield_now().await;
                }
            }
        }));
    }

    let mut writers = Vec::new();
    for w in 0..WRITERS {
        let store = store.clone();
        writers.push(tokio::spawn(async move {
            let own = stream(&format!("writer-{w}"));
            let shared = stream("shared");
            let mut acked = Vec::new();
            for i in 0..APPENDS {
                let (s, expected) = if i % 4 == 0 {
                    (&shared, ExpectedRevision::Any)
                } else {
                    (
                        &own,
                        if i == 1 {
                            ExpectedRevision::NoStream
                        } else {
                            ExpectedRevision::Any
                        },
                    )
                };
                let batch = events(1 + (i % 3));
                let ids: Vec<Uuid> = batch.iter().map(|e| e.id).collect();
                let r = store.append(s, expected, batch).await.expect("append");
                assert_eq!(r.last_revision - r.first_revision + 1, ids.len() as u64);
                acked.extend(ids);
            }
            acked
        }));
    }
    let mut acked = HashSet::new();
    for w in writers {
        acked.extend(w.await.unwrap());
    }
    done.store(true, std::sync::atomic::Ordering::SeqCst);

    let log = read_everything(store.as_ref()).await;
    let log_ids: Vec<Uuid> = log.iter().map(|e| e.id).collect();
    assert_eq!(
        log_ids.iter().copied().collect::<HashSet<_>>(),
        acked,
        "every acknowledged event, nothing else"
    );
    assert_eq!(log_ids.len(), acked.len(), "no event twice");
    let mut per_stream: BTreeMap<&str, Vec<u64>> = BTreeMap::new();
    for e in &log {
        per_stream.entry(&e.stream).or_default().push(e.revision);
    }
    for (s, revisions) in per_stream {
        assert_eq!(
            revisions,
            (0..revisions.len() as u64).collect::<Vec<_>>(),
            "stream {s} revisions are dense"
        );
    }
    for r in readers {
        let seen: Vec<Uuid> = r.await.unwrap().iter().map(|e| e.id).collect();
        assert_eq!(
            seen, log_ids,
            "a tailing reader saw exactly the log, in order"
        );
    }
}

pub async fn subscriber_sees_every_event_exactly_once(h: &dyn Harness) {
    let store = h.open().await;
    // Both kinds of subscription: the plain one and the one reading at the caller's priority.
    let subs = [
        store.subscribe_all(Position::START),
        store.subscribe_all_inheriting_priority(Position::START),
    ];
    let writers: Vec<_> = (0..8)
        .map(|w| {
            let store = store.clone();
            tokio::spawn(async move {
                let s = stream(&format!("sub-{w}"));
                for _ in 0..25 {
                    store
                        .append(&s, ExpectedRevision::Any, events(2))
                        .await
                        .unwrap();
                }
            })
        })
        .collect();
    for w in writers {
        w.await.unwrap();
    }
    let log = read_everything(store.as_ref()).await;
    assert_eq!(log.len(), 400);
    for mut sub in subs {
        let mut got = Vec::new();
        while got.len() < log.len() {
            let next = tokio::time::timeout(Duration::from_secs(10), sub.next())
                .await
                .expect("subscription stalled");
            got.push(
                next.expect("subscription ended")
                    .expect("subscription error"),
            );
        }
        assert_eq!(got, log);
        let extra = tokio::time::timeout(Duration::from_millis(200), sub.next()).await;
        assert!(extra.is_err(), "nothing beyond the log: {extra:?}");
    }
}

pub async fn subscription_from_a_position_catches_up_then_goes_live(h: &dyn Harness) {
    let store = h.open().await;
    store
        .append(&stream("live-1"), ExpectedRevision::NoStream, events(5))
        .await
        .unwrap();
    let log = read_everything(store.as_ref()).await;
    let mut sub = store.subscribe_all(log[1].position);
    for expected in &log[2..] {
        let got = tokio::time::timeout(Duration::from_secs(5), sub.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(&got, expected);
    }
    let live = events(3);
    let ids: Vec<Uuid> = live.iter().map(|e| e.id).collect();
    let writer = {
        let store = store.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            store
                .append(&stream("live-2"), ExpectedRevision::NoStream, live)
                .await
                .unwrap();
        })
    };
    for id in ids {
        let got = tokio::time::timeout(Duration::from_secs(5), sub.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(got.id, id);
    }
    writer.await.unwrap();
}

pub async fn reopened_store_has_every_acknowledged_event(h: &dyn Harness) {
    let mut acked = Vec::new();
    {
        let store = h.open().await;
        let tasks: Vec<_> = (0..8)
            .map(|w| {
                let store = store.clone();
                tokio::spawn(async move {
                    let mut ids = Vec::new();
                    for _ in 0..20 {
                        let batch = events(3);
                        ids.extend(batch.iter().map(|e| e.id));
                        store
                            .append(
                                &stream(&format!("reopen-{w}")),
                                ExpectedRevision::Any,
                                batch,
                            )
                            .await
                            .unwrap();
                    }
                    ids
                })
            })
            .collect();
        for t in tasks {
            acked.extend(t.await.unwrap());
        }
    }
    let store = h.open().await;
    let log = read_everything(store.as_ref()).await;
    let ids: HashSet<Uuid> = log.iter().map(|e| e.id).collect();
    assert_eq!(log.len(), acked.len());
    assert!(
        acked.iter().all(|id| ids.contains(id)),
        "every acknowledged event survives a reopen"
    );
    let r = store
        .append(&stream("reopen-0"), ExpectedRevision::Exact(59), events(1))
        .await
        .unwrap();
    assert_eq!(r.first_revision, 60, "revisions continue after a reopen");
    assert!(
        r.last_position > log.last().unwrap().position,
        "positions continue after a reopen"
    );
}

pub async fn subject_keys_are_kept_apart_and_destroyed_for_good(h: &dyn Harness) {
    let store = h.open().await;
    let (subject, other) = (Uuid::new_v4(), Uuid::new_v4());
    let key = |bytes: &[u8]| NewKey {
        subject,
        wrapped: bytes.to_vec(),
    };
    assert_eq!(store.read_key(subject).await.unwrap(), StoredKey::Absent);
    let s = stream(&format!("sealed-{subject}"));
    let first = events(2);
    store
        .append_with_keys(
            &s,
            ExpectedRevision::NoStream,
            first.clone(),
            vec![key(b"k1")],
        )
        .await
        .expect("append with a new key");
    assert_eq!(
        store.read_key(subject).await.unwrap(),
        StoredKey::Present(b"k1".to_vec())
    );
    // A retry with the very same key and events is a no-op; the key stays.
    store
        .append_with_keys(&s, ExpectedRevision::NoStream, first, vec![key(b"k1")])
        .await
        .expect("retried append");
    // Its key again is fine; another key for the subject refuses the whole append.
    store
        .append_with_keys(&s, ExpectedRevision::Exact(1), events(1), vec![key(b"k1")])
        .await
        .expect("the same key again");
    let refused = store
        .append_with_keys(&s, ExpectedRevision::Exact(2), events(1), vec![key(b"k2")])
        .await;
    assert!(
        matches!(refused, Err(StoreError::SubjectKeyTaken { subject: s }) if s == subject),
        "{refused:?}"
    );
    assert_eq!(store.read_stream(&s, 0, 10).await.unwrap().len(), 3);
    // Destroying is for good, and again is a no-op; the other subject is untouched.
    store
        .append_with_keys(
            &stream(&format!("sealed-{other}")),
            ExpectedRevision::NoStream,
            events(1),
            vec![NewKey {
                subject: other,
                wrapped: b"k3".to_vec(),
            }],
        )
        .await
        .unwrap();
    store.destroy_key(subject).await.expect("destroy");
    store.destroy_key(subject).await.expect("destroy again");
    assert_eq!(store.read_key(subject).await.unwrap(), StoredKey::Destroyed);
    assert_eq!(
        store.read_key(other).await.unwrap(),
        StoredKey::Present(b"k3".to_vec())
    );
    let after = store
        .append_with_keys(&s, ExpectedRevision::Exact(2), events(1), vec![key(b"k1")])
        .await;
    assert!(
        matches!(after, Err(StoreError::SubjectKeyTaken { .. })),
        "{after:?}"
    );
    // A subject that never had a key can be destroyed too, and then takes none.
    let never = Uuid::new_v4();
    store.destroy_key(never).await.unwrap();
    assert_eq!(store.read_key(never).await.unwrap(), StoredKey::Destroyed);
    // Keys are not events: the log holds only the appended events.
    let log = read_everything(store.as_ref()).await;
    assert!(log.iter().all(|e| e.data.as_slice() != b"k1".as_slice()));
    drop(store);
    let again = h.open().await;
    assert_eq!(again.read_key(subject).await.unwrap(), StoredKey::Destroyed);
    assert_eq!(
        again.read_key(other).await.unwrap(),
        StoredKey::Present(b"k3".to_vec())
    );
}
