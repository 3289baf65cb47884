//! Live board updates over WebSocket (graphql-ws at `/graphql/ws`, the token in the
//! `connection_init` payload): a subscriber gets the board at once, then the board after a
//! lead registered over HTTP; without a valid token it gets no board; a user dismissed while
//! subscribed gets nothing more.

use serde_json::json;

use leadflow_testkit::{spawn_app_on, Backend};

use crate::web_form_lead;

const BOARD: &str = "subscription { boardChanged { totalCount columns { stage count } } }";

fn count(board: &serde_json::Value, stage: &str) -> i64 {
    board["columns"]
        .as_array()
        .expect("columns")
        .iter()
        .find(|c| c["stage"] == stage)
        .and_then(|c| c["count"].as_i64())
        .unwrap_or_else(|| panic!("no column {stage} in {board}"))
}

async fn a_board_subscriber_sees_a_new_lead_arrive(backend: Backend) {
    let app = spawn_app_on(backend).await;
    let olga = app.token("olga.supervisor");
    let first = app
        .register_lead(&olga, web_form_lead("Already there", "1000"))
        .await;
    assert_eq!(app.board(&olga, first.at()).await.total_count, 1);
    let mut ws = app
        .subscriptions(Some(&olga))
        .await
        .expect("connection_ack");
    ws.subscribe("board", BOARD, json!({})).await;

    // The board as it is now, ...
    let board = ws.next_payload("board").await["data"]["boardChanged"].clone();
    assert_eq!(board["totalCount"], 1, "{board}");

    // ... then as it is after a lead registered over HTTP.
    app.register_lead(&olga, web_form_lead("Warehouse racks", "900000"))
        .await;
    let board = ws.next_payload("board").await["data"]["boardChanged"].clone();
    assert_eq!(board["totalCount"], 2, "{board}");
    assert_eq!(count(&board, "QUALIFICATION"), 2);
}

async fn a_subscriber_without_a_valid_token_gets_no_board(backend: Backend) {
    let app = spawn_app_on(backend).await;

    // A bad token closes the connection instead of acknowledging it, saying why.
    let refused = app
        .subscriptions(Some("not-a-jwt"))
        .await
        .err()
        .expect("a bad token is not acknowledged");
    assert!(refused.contains("invalid token"), "{refused}");

    let mut ws = app.subscriptions(None).await.expect("connection_ack");
    ws.subscribe("board", BOARD, json!({})).await;
    // The resolver refuses, so the error arrives as the subscription's only result.
    let payload = ws.next_payload("board").await;
    assert!(payload["data"].is_null(), "{payload}");
    assert_eq!(
        payload["errors"][0]["extensions"]["code"], "UNAUTHENTICATED",
        "{payload}"
    );
    let message = ws.next_message().await.expect("an answer");
    assert_eq!(
        (&message["type"], &message["id"]),
        (&json!("complete"), &json!("board"))
    );
}

async fn a_dismissed_users_open_socket_gets_nothing_more(backend: Backend) {
    let app = spawn_app_on(backend).await;
    let (ivan, olga, admin) = (
        app.token("ivan.manager"),
        app.token("olga.supervisor"),
        app.token("admin"),
    );
    let mut ws = app
        .subscriptions(Some(&ivan))
        .await
        .expect("connection_ack");
    ws.subscribe("board", BOARD, json!({})).await;
    let board = ws.next_payload("board").await["data"]["boardChanged"].clone();
    assert_eq!(board["totalCount"], 0, "{board}");

    let dismissed = app
        .graphql(
            Some(&admin),
            "mutation { dismissUser(user: \"ivan.manager\") { changed } }",
            json!({}),
        )
        .await;
    assert_eq!(
        dismissed["data"]["dismissUser"]["changed"], true,
        "{dismissed}"
    );
    // The next change of the board ends ivan's subscription instead of reaching him ...
    app.register_lead(&olga, web_form_lead("After the dismissal", "1000"))
        .await;
    let message = ws.next_message().await.expect("an answer");
    assert_eq!(
        (&message["type"], &message["id"]),
        (&json!("complete"), &json!("board")),
        "{message}"
    );
    // ... and a new operation on the same socket is refused.
    ws.subscribe("again", BOARD, json!({})).await;
    let payload = ws.next_payload("again").await;
    assert_eq!(
        payload["errors"][0]["extensions"]["code"], "UNAUTHENTICATED",
        "{payload}"
    );
}

on_both_backends!(
    a_dismissed_users_open_socket_gets_nothing_more,
    a_board_subscriber_sees_a_new_lead_arrive,
    a_subscriber_without_a_valid_token_gets_no_board,
);
