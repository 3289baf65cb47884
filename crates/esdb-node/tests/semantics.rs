//! Our own checks of the node's write rules and error statuses, through the official client:
//! what the published suites do not reach (oversized appends, wrong expected versions,
//! appends to deleted streams, undelete).

use eventstore::{
    AppendToStreamOptions, Client, DeleteStreamOptions, EventData, ExpectedRevision,
    ReadStreamOptions, StreamPosition, TombstoneStreamOptions,
};
use serde_json::json;

use leadflow_esdb_node::RunningNode;
use leadflow_store_embedded::EmbeddedStore;

async fn node() -> (RunningNode, Client, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("a temp dir");
    let store = EmbeddedStore::open(dir.path().join("events.db")).expect("the store");
    let node = RunningNode::start(store, "127.0.0.1:0".parse().unwrap())
        .await
        .expect("the node");
    let client = Client::new(node.connection_string().parse().unwrap()).expect("a client");
    (node, client, dir)
}

fn events(n: usize) -> Vec<EventData> {
    (0..n)
        .map(|i| {
            // Ids set here, so a clone is the same events (the client makes up fresh ids
            // for events without one).
            EventData::json("Tested", &json!({ "n": i }))
                .unwrap()
                .id(uuid::Uuid::new_v4())
        })
        .collect()
}

async fn read_all_of(client: &Client, stream: &str) -> eventstore::Result<Vec<u64>> {
    let options = ReadStreamOptions::default().position(StreamPosition::Start);
    let mut read = client.read_stream(stream, &options).await?;
    let mut revisions = Vec::new();
    while let Some(e) = read.next().await? {
        revisions.push(e.get_original_event().revision);
    }
    Ok(revisions)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_append_is_refused_with_the_servers_text_and_writes_nothing() {
    let (node, client, _dir) = node().await;
    let big = EventData::binary("Big", vec![b'x'; 1_100_000].into());
    let err = client
        .append_to_stream("big-1", &AppendToStreamOptions::default(), vec![big])
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("Maximum Append Size of 1048576 Exceeded."),
        "{err}"
    );
    assert!(matches!(
        read_all_of(&client, "big-1").await,
        Err(eventstore::Error::ResourceNotFound)
    ));
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expected_versions_are_checked_and_a_retry_of_the_same_events_is_idempotent() {
    let (node, client, _dir) = node().await;
    let batch = events(2);
    let first = client
        .append_to_stream(
            "orders-1",
            &AppendToStreamOptions::default().expected_revision(ExpectedRevision::NoStream),
            batch.clone(),
        )
        .await
        .unwrap();
    assert_eq!(first.next_expected_version, 1);
    // The same events again (same ids): the original answer, nothing appended.
    let retry = client
        .append_to_stream(
            "orders-1",
            &AppendToStreamOptions::default().expected_revision(ExpectedRevision::NoStream),
            batch,
        )
        .await
        .unwrap();
    assert_eq!(retry.position, first.position);
    // New events under a stale expectation.
    let err = client
        .append_to_stream(
            "orders-1",
            &AppendToStreamOptions::default().expected_revision(ExpectedRevision::Exact(0)),
            events(1),
        )
        .await
        .unwrap_err();
    match err {
        eventstore::Error::WrongExpectedVersion { current, expected } => {
            assert_eq!(current, eventstore::CurrentRevision::Current(1));
            assert_eq!(expected, ExpectedRevision::Exact(0));
        }
        other => panic!("expected WrongExpectedVersion, got {other:?}"),
    }
    assert_eq!(read_all_of(&client, "orders-1").await.unwrap(), [0, 1]);
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_soft_deleted_stream_reads_as_absent_and_comes_back_with_new_events_only() {
    let (node, client, _dir) = node().await;
    client
        .append_to_stream("cart-1", &AppendToStreamOptions::default(), events(3))
        .await
        .unwrap();
    client
        .delete_stream("cart-1", &DeleteStreamOptions::default())
        .await
        .unwrap();
    assert!(matches!(
        read_all_of(&client, "cart-1").await,
        Err(eventstore::Error::ResourceNotFound)
    ));
    // Deleting a stream that never existed is a wrong-version error naming actual -1.
    let err = client
        .delete_stream("never-1", &DeleteStreamOptions::default())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("Actual version: -1"), "{err}");
    // Appending undeletes: revisions continue, and only the new ones show.
    client
        .append_to_stream("cart-1", &AppendToStreamOptions::default(), events(2))
        .await
        .unwrap();
    assert_eq!(read_all_of(&client, "cart-1").await.unwrap(), [3, 4]);
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tombstoned_stream_refuses_appends_reads_and_deletes() {
    let (node, client, _dir) = node().await;
    client
        .append_to_stream("gone-1", &AppendToStreamOptions::default(), events(1))
        .await
        .unwrap();
    client
        .tombstone_stream("gone-1", &TombstoneStreamOptions::default())
        .await
        .unwrap();
    let append = client
        .append_to_stream("gone-1", &AppendToStreamOptions::default(), events(1))
        .await;
    assert!(
        matches!(append, Err(eventstore::Error::ResourceDeleted)),
        "{append:?}"
    );
    let read = client
        .read_stream("gone-1", &ReadStreamOptions::default())
        .await;
    assert!(matches!(read, Err(eventstore::Error::ResourceDeleted)));
    let again = client
        .tombstone_stream("gone-1", &TombstoneStreamOptions::default())
        .await;
    assert!(
        matches!(again, Err(eventstore::Error::ResourceDeleted)),
        "{again:?}"
    );
    node.stop().await;
}

/// An append racing a subscription's switch from catching up to live is delivered: the
/// subscription must not mark the head as seen after its last read (the kurrentdb suite's
/// `test_subscription` once hung in CI on exactly that).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn appends_racing_a_subscriptions_switch_to_live_are_all_delivered() {
    use eventstore::SubscribeToStreamOptions;
    let (node, client, _dir) = node().await;
    for round in 0..60 {
        let stream = format!("race-{round}");
        client
            .append_to_stream(
                stream.as_str(),
                &AppendToStreamOptions::default(),
                events(3),
            )
            .await
            .unwrap();
        let mut sub = client
            .subscribe_to_stream(
                stream.as_str(),
                &SubscribeToStreamOptions::default().start_from(StreamPosition::Start),
            )
            .await;
        let reader = tokio::spawn(async move {
            for _ in 0..6 {
                sub.next().await.unwrap();
            }
        });
        // Append at varying moments around the subscription's first read.
        tokio::time::sleep(std::time::Duration::from_micros(round * 50)).await;
        client
            .append_to_stream(
                stream.as_str(),
                &AppendToStreamOptions::default(),
                events(3),
            )
            .await
            .unwrap();
        tokio::time::timeout(std::time::Duration::from_secs(10), reader)
            .await
            .unwrap_or_else(|_| panic!("round {round}: the live events never arrived"))
            .unwrap();
    }
    node.stop().await;
}

/// A batch-append session's writes to different streams go on at once, but writes to one
/// stream land in the order the client sent them, as on a real node.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_session_keeps_each_streams_writes_in_the_order_sent() {
    let (node, client, _dir) = node().await;
    let session = client
        .batch_append(&eventstore::BatchAppendOptions::default())
        .await
        .unwrap();
    let streams = ["ordered-1", "ordered-2", "ordered-3"];
    let writes = (0..60u64).map(|n| {
        let stream = streams[(n % 3) as usize];
        let event = EventData::json("Tested", &json!({ "n": n })).unwrap();
        session.append_to_stream(stream, ExpectedRevision::Any, vec![event])
    });
    for result in futures::future::join_all(writes).await {
        result.unwrap();
    }
    for (i, stream) in streams.iter().enumerate() {
        let options = ReadStreamOptions::default().position(StreamPosition::Start);
        let mut read = client.read_stream(*stream, &options).await.unwrap();
        let mut sent = Vec::new();
        while let Some(e) = read.next().await.unwrap() {
            let doc: serde_json::Value = e.get_original_event().as_json().unwrap();
            sent.push(doc["n"].as_u64().unwrap());
        }
        let expected: Vec<u64> = (0..60).filter(|n| n % 3 == i as u64).collect();
        assert_eq!(sent, expected, "{stream}");
    }
    node.stop().await;
}
