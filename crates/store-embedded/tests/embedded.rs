//! What the embedded store promises beyond the contract: dense positions, and a clear error,
//! never a panic, for files it must not open.

use std::io::{Seek, SeekFrom, Write};

use leadflow_store::contract::events;
use leadflow_store::{EventStore, ExpectedRevision, Position, StoreError, StreamName};
use leadflow_store_embedded::{EmbeddedStore, FORMAT_VERSION};
use proptest::prelude::*;

fn stream(name: &str) -> StreamName {
    StreamName::parse(name).unwrap()
}

fn open_error(result: Result<EmbeddedStore, StoreError>) -> String {
    match result {
        Err(StoreError::Open { reason, .. }) => reason,
        Err(other) => panic!("expected an open error, got {other:?}"),
        Ok(_) => panic!("expected an open error, the store opened"),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, ..ProptestConfig::default() })]

    /// However many writers append however many events, the log's positions are exactly 1..=N.
    #[test]
    fn positions_are_gap_free_under_concurrent_writers(
        plan in prop::collection::vec(prop::collection::vec(1usize..6, 1..12), 1..12)
    ) {
        let dir = tempfile::tempdir().unwrap();
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(4).enable_all().build().unwrap();
        let (total, positions) = rt.block_on(async {
            let store = EmbeddedStore::open(dir.path().join("events.db")).unwrap();
            let total: usize = plan.iter().flatten().sum();
            let tasks: Vec<_> = plan.into_iter().enumerate().map(|(w, sizes)| {
                let store = store.clone();
                tokio::spawn(async move {
                    for (i, n) in sizes.into_iter().enumerate() {
                        // Half the writers share one stream, so conflicts and retries happen too.
                        let s = if w % 2 == 0 { stream("shared") } else { stream(&format!("w-{w}")) };
                        let expected = if w % 2 == 0 { ExpectedRevision::Any } else if i == 0 { ExpectedRevision::NoStream } else { ExpectedRevision::Any };
                        store.append(&s, expected, events(n)).await.unwrap();
                    }
                })
            }).collect();
            for t in tasks { t.await.unwrap(); }
            let all = store.read_all(Position::START, usize::MAX).await.unwrap();
            (total, all.iter().map(|e| e.position.0).collect::<Vec<_>>())
        });
        prop_assert_eq!(positions, (1..=total as u64).collect::<Vec<_>>());
    }
}

#[test]
fn a_garbage_file_is_refused_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events.db");
    std::fs::write(
        &path,
        b"this is not a database at all, just some text that is long enough........",
    )
    .unwrap();
    let reason = open_error(EmbeddedStore::open(&path));
    assert!(reason.contains("not a SQLite database"), "{reason}");
}

#[test]
fn a_foreign_sqlite_database_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("other.db");
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute_batch("CREATE TABLE customers(id INTEGER PRIMARY KEY, name TEXT);")
        .unwrap();
    drop(conn);
    let reason = open_error(EmbeddedStore::open(&path));
    assert!(reason.contains("not a leadflow event store"), "{reason}");
}

#[test]
fn a_store_of_a_newer_format_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events.db");
    drop(EmbeddedStore::open(&path).unwrap());
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute_batch(&format!("PRAGMA user_version = {};", FORMAT_VERSION + 1))
        .unwrap();
    drop(conn);
    let reason = open_error(EmbeddedStore::open(&path));
    assert!(reason.contains("newer leadflow"), "{reason}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_format_1_store_is_upgraded_in_place_and_keeps_its_events() {
    use leadflow_store::{contract::events, ContentType, EventStore, ExpectedRevision, StreamName};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events.db");
    let stream = StreamName::parse("old-1").unwrap();
    let batch = events(3);
    {
        let store = EmbeddedStore::open(&path).unwrap();
        store
            .append(&stream, ExpectedRevision::NoStream, batch.clone())
            .await
            .unwrap();
    }
    // What a format 1 file looks like: no content types.
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute_batch("ALTER TABLE events DROP COLUMN is_binary; PRAGMA user_version = 1;")
        .unwrap();
    drop(conn);

    let store = EmbeddedStore::open(&path).unwrap();
    let read = store.read_stream(&stream, 0, 10).await.unwrap();
    assert_eq!(read.len(), 3);
    assert!(read.iter().all(|e| e.content_type == ContentType::Json));
    assert_eq!(read[2].id, batch[2].id);
    drop(store);
    let version: i64 = rusqlite::Connection::open(&path)
        .unwrap()
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version, FORMAT_VERSION);
}

#[test]
fn a_store_open_elsewhere_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events.db");
    let first = EmbeddedStore::open(&path).unwrap();
    let reason = open_error(EmbeddedStore::open(&path));
    assert!(reason.contains("already open"), "{reason}");
    drop(first);
    EmbeddedStore::open(&path).expect("opens again once the first is closed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupted_file_gives_errors_not_panics() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events.db");
    {
        let store = EmbeddedStore::open(&path).unwrap();
        for i in 0..200 {
            store
                .append(
                    &stream(&format!("c-{i}")),
                    ExpectedRevision::NoStream,
                    events(5),
                )
                .await
                .unwrap();
        }
    }
    // Checkpoint the WAL into the main file, then scribble over its pages.
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
        .unwrap();
    drop(conn);
    let len = std::fs::metadata(&path).unwrap().len();
    let mut file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    for offset in (4096..len).step_by(4096) {
        file.seek(SeekFrom::Start(offset + 17)).unwrap();
        file.write_all(&[0xA5; 512]).unwrap();
    }
    drop(file);
    match EmbeddedStore::open(&path) {
        Err(StoreError::Open { .. }) => {}
        Err(other) => panic!("unexpected error kind {other:?}"),
        Ok(store) => {
            let read = store.read_all(Position::START, usize::MAX).await;
            assert!(
                read.is_err(),
                "reading a scribbled file must fail, got {} events",
                read.map(|v| v.len()).unwrap_or(0)
            );
        }
    }
}

#[tokio::test]
async fn an_oversized_append_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::open(dir.path().join("events.db")).unwrap();
    let mut batch = events(1);
    batch[0].data = vec![b' '; leadflow_store_embedded::MAX_APPEND_BYTES + 1];
    let err = store
        .append(&stream("big"), ExpectedRevision::Any, batch)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::AppendTooLarge { .. }), "{err:?}");
    assert_eq!(store.head().await.unwrap(), Position::START);
}
