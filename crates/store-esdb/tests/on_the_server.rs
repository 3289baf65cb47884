//! What the adapter leaves on the server, seen through the official client directly: stream
//! names as given, our event ids, JSON payloads marked as JSON byte for byte, our metadata as
//! the custom metadata, and system streams invisible to the port.

use eventstore::{Client, ReadStreamOptions, StreamPosition};
use leadflow_esdb_node::RunningNode;
use leadflow_store::{EventStore, ExpectedRevision, NewEvent, Position, StreamName};
use leadflow_store_embedded::EmbeddedStore;
use leadflow_store_esdb::EsdbStore;

/// A node on a store of its own (in the directory returned with it).
async fn node() -> (RunningNode, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let node = RunningNode::start(
        EmbeddedStore::open(dir.path().join("events.db")).unwrap(),
        "127.0.0.1:0".parse().unwrap(),
    )
    .await
    .unwrap();
    (node, dir)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_land_as_json_with_our_ids_and_metadata() {
    let (node, _dir) = node().await;
    let store = EsdbStore::connect(&node.connection_string()).unwrap();
    assert_eq!(
        store.head().await.unwrap(),
        Position::START,
        "the node's own $settings is not ours"
    );

    let id = uuid::Uuid::new_v4();
    let data = r#"{"title":  "Петров",   "budget":{"amount":"10.50"}}"#
        .as_bytes()
        .to_vec();
    let metadata = br#"{"actor":"u-1","occurred_at":"2026-11-22T10:00:00Z"}"#.to_vec();
    let stream = StreamName::parse(format!("lead-{}", uuid::Uuid::new_v4())).unwrap();
    let r = store
        .append(
            &stream,
            ExpectedRevision::NoStream,
            vec![NewEvent {
                id,
                event_type: "LeadRegistered".into(),
                data: data.clone(),
                metadata: metadata.clone(),
                content_type: leadflow_store::ContentType::Json,
            }],
        )
        .await
        .unwrap();
    assert_eq!(store.head().await.unwrap(), r.last_position);

    let client = Client::new(node.connection_string().parse().unwrap()).unwrap();
    let mut read = client
        .read_stream(
            stream.as_str(),
            &ReadStreamOptions::default().position(StreamPosition::Start),
        )
        .await
        .unwrap();
    let e = read
        .next()
        .await
        .unwrap()
        .expect("the event")
        .event
        .unwrap();
    assert_eq!(e.stream_id, stream.as_str());
    assert_eq!(e.id, id);
    assert_eq!(e.event_type, "LeadRegistered");
    assert!(e.is_json, "content-type application/json");
    assert_eq!(
        e.data.as_ref(),
        data.as_slice(),
        "the payload, byte for byte"
    );
    assert_eq!(e.custom_metadata.as_ref(), metadata.as_slice());
    assert_eq!(e.position.commit, r.last_position.0);

    // A system stream written beside ours is neither read nor the head.
    client
        .set_stream_metadata(
            stream.as_str(),
            &Default::default(),
            &eventstore::StreamMetadata::builder().max_count(100).build(),
        )
        .await
        .unwrap();
    assert_eq!(store.head().await.unwrap(), r.last_position);
    let all = store.read_all(Position::START, 100).await.unwrap();
    assert_eq!(all.iter().map(|e| e.id).collect::<Vec<_>>(), vec![id]);
    node.stop().await;
}

fn event(n: u64) -> NewEvent {
    NewEvent {
        id: uuid::Uuid::new_v4(),
        event_type: "Tested".into(),
        data: format!(r#"{{"n":{n}}}"#).into_bytes(),
        metadata: Vec::new(),
        content_type: leadflow_store::ContentType::Json,
    }
}

/// Appends share one batch-append session, which the client closes on any error and with it
/// every answer still due. Writers that conflict on purpose, among many that do not, get their
/// conflicts exactly, and every other append lands once, in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_appends_with_conflicts_among_them_each_land_once_or_conflict_exactly() {
    let (node, _dir) = node().await;
    let store = std::sync::Arc::new(EsdbStore::connect(&node.connection_string()).unwrap());
    const WRITERS: u64 = 32;
    const EACH: u64 = 6;
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let store = store.clone();
            tokio::spawn(async move {
                let stream = StreamName::parse(format!("lead-{}", uuid::Uuid::new_v4())).unwrap();
                for n in 0..EACH {
                    let expected = match n {
                        0 => ExpectedRevision::NoStream,
                        n => ExpectedRevision::Exact(n - 1),
                    };
                    let r = store
                        .append(&stream, expected, vec![event(n)])
                        .await
                        .unwrap();
                    assert_eq!((r.first_revision, r.last_revision), (n, n));
                    // Every other writer also tries a stale write, which must conflict.
                    if w % 2 == 1 && n > 0 {
                        let stale = store
                            .append(&stream, ExpectedRevision::Exact(n - 1), vec![event(99)])
                            .await;
                        match stale {
                            Err(leadflow_store::StoreError::WrongExpectedRevision {
                                actual,
                                ..
                            }) => assert_eq!(actual, Some(n)),
                            other => panic!("a stale append gave {other:?}"),
                        }
                    }
                }
                stream
            })
        })
        .collect();
    for w in writers {
        let stream = w.await.unwrap();
        let events = store.read_stream(&stream, 0, 100).await.unwrap();
        let written: Vec<String> = events
            .iter()
            .map(|e| String::from_utf8(e.data.clone()).unwrap())
            .collect();
        let expected: Vec<String> = (0..EACH).map(|n| format!(r#"{{"n":{n}}}"#)).collect();
        assert_eq!(written, expected, "{stream}");
    }
    node.stop().await;
}
