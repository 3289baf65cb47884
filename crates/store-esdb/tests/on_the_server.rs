//! What the adapter leaves on the server, seen through the official client directly: stream
//! names as given, our event ids, JSON payloads marked as JSON byte for byte, our metadata as
//! the custom metadata, and system streams invisible to the port.

use eventstore::{Client, ReadStreamOptions, StreamPosition};
use leadflow_esdb_node::RunningNode;
use leadflow_store::{EventStore, ExpectedRevision, NewEvent, Position, StreamName};
use leadflow_store_embedded::EmbeddedStore;
use leadflow_store_esdb::EsdbStore;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_land_as_json_with_our_ids_and_metadata() {
    let dir = tempfile::tempdir().unwrap();
    let node = RunningNode::start(
        EmbeddedStore::open(dir.path().join("events.db")).unwrap(),
        "127.0.0.1:0".parse().unwrap(),
    )
    .await
    .unwrap();
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
