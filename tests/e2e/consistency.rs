//! Read-your-writes (a query with the `consistency` a mutation returned sees that mutation),
//! idempotent retries (the same `idempotencyKey` answers the first result, `replayed: true`,
//! and appends nothing), and concurrent writers on one lead (each one either lands or answers
//! CONFLICT; none is lost or doubled).

use serde_json::json;

use leadflow_testkit::api::ops;
use leadflow_testkit::{spawn_app_on, Backend};

use crate::{manual_lead, web_form_lead};

async fn every_read_at_a_mutations_position_sees_that_mutation(backend: Backend) {
    let app = spawn_app_on(backend).await;
    let olga = app.token("olga.supervisor");
    // No pause anywhere: each read comes straight after its write.
    for n in 1..=12 {
        let lead = app
            .register_lead(&olga, web_form_lead(&format!("Lead {n:02}"), "1000"))
            .await;
        let at = lead.at();
        let board = app.board(&olga, at).await;
        assert_eq!(board.count("QUALIFICATION"), n);
        assert_eq!(board.total_budget.amount, format!("{}.00", 1000 * n));
        assert!(
            app.lead(&olga, lead.id(), at).await.is_some(),
            "lead {n}'s card"
        );
        assert_eq!(app.leads(&olga, json!({ "at": at })).await.total_count, n);
        assert_eq!(app.history(&olga, lead.id(), at).await.total_count, 1);

        let renamed = app
            .must(
                &olga,
                ops::UPDATE_DETAILS,
                json!({ "lead": lead.id(), "input": { "title": format!("Renamed {n:02}") } }),
            )
            .await;
        let card = app
            .lead(&olga, lead.id(), renamed.at())
            .await
            .expect("the card");
        assert_eq!(card.title, format!("Renamed {n:02}"));
        let page = app
            .leads(
                &olga,
                json!({ "filter": { "text": format!("Renamed {n:02}") }, "at": renamed.at() }),
            )
            .await;
        assert_eq!(page.total_count, 1);
    }
}

async fn a_retried_registration_with_the_same_key_lands_on_the_same_lead_once(backend: Backend) {
    let app = spawn_app_on(backend).await;
    let olga = app.token("olga.supervisor");
    let input =
        json!({ "input": web_form_lead("Warehouse racks", "900000"), "key": "web-form-4711" });

    let first = app.must(&olga, ops::REGISTER, input.clone()).await;
    let head = app.head().await;
    let retry = app.must(&olga, ops::REGISTER, input).await;

    assert!(!first.replayed && retry.replayed);
    assert_eq!(retry.id(), first.id());
    assert_eq!(retry.position, first.position);
    assert_eq!(app.head().await, head, "the retry appended nothing");
    let board = app.board(&olga, retry.at()).await;
    assert_eq!(board.total_count, 1);
    assert_eq!(
        app.history(&olga, first.id(), retry.at()).await.total_count,
        1
    );
}

async fn a_retried_command_answers_its_first_result_even_after_the_lead_moved_on(backend: Backend) {
    let app = spawn_app_on(backend).await;
    let olga = app.token("olga.supervisor");
    let lead = app
        .register_lead(&olga, web_form_lead("Warehouse racks", "900000"))
        .await;
    let qualify = json!({ "lead": lead.id(), "key": "qualify-once" });
    let first = app.must(&olga, ops::QUALIFY, qualify.clone()).await;
    let assigned = app
        .must(
            &olga,
            ops::ASSIGN,
            json!({ "lead": lead.id(), "to": app.user_id("ivan.manager") }),
        )
        .await;
    let entries = app
        .history(&olga, lead.id(), assigned.at())
        .await
        .total_count;
    let head = app.head().await;

    // Without its key the same command would be refused (the lead is past Qualification); with
    // it, the retry is recognised and answers what the first execution did.
    let retry = app.must(&olga, ops::QUALIFY, qualify).await;
    assert!(retry.replayed);
    assert_eq!(retry.position, first.position);
    assert_eq!(retry.lead.stage, "DISTRIBUTION");
    assert_eq!(
        retry.lead.responsible_name(),
        None,
        "the lead as the first execution left it"
    );
    assert_eq!(app.head().await, head);
    assert_eq!(
        app.history(&olga, lead.id(), Some(&head.to_string()))
            .await
            .total_count,
        entries
    );
    let card = app
        .lead(&olga, lead.id(), assigned.at())
        .await
        .expect("the card");
    assert_eq!(card.responsible_name(), Some("ivan.manager"));
}

async fn a_command_that_changes_nothing_answers_no_position_and_appends_nothing(backend: Backend) {
    let app = spawn_app_on(backend).await;
    let ivan = app.token("ivan.manager");
    let lead = app.register_lead(&ivan, manual_lead("Office chairs")).await;
    let head = app.head().await;
    let same = json!({ "lead": lead.id(), "to": app.user_id("ivan.manager") });
    let unchanged = app.must(&ivan, ops::ASSIGN, same).await;
    assert_eq!(
        (unchanged.position.as_deref(), unchanged.replayed),
        (None, false)
    );
    assert_eq!(unchanged.lead.responsible_name(), Some("ivan.manager"));
    assert_eq!(app.head().await, head);
}

async fn concurrent_writers_on_one_lead_either_land_or_answer_conflict(backend: Backend) {
    let app = spawn_app_on(backend).await;
    let ivan = app.token("ivan.manager");
    let lead = app.register_lead(&ivan, manual_lead("Office chairs")).await;
    let writers = (0..24).map(|n| {
        let vars = json!({ "lead": lead.id(), "input": { "comment": format!("note {n}") } });
        app.command(&ivan, ops::UPDATE_DETAILS, vars)
    });
    let results = futures::future::join_all(writers).await;

    let mut landed = 0;
    for result in &results {
        match result {
            Ok(payload) => {
                assert!(payload.position.is_some() && !payload.replayed);
                landed += 1;
            }
            Err(f) => assert_eq!(f.code, "CONFLICT", "{f:#?}"),
        }
    }
    assert!(landed > 0);
    let head = app.head().await.to_string();
    let history = app.history(&ivan, lead.id(), Some(&head)).await;
    let updates = history
        .event_types()
        .iter()
        .filter(|t| **t == "LeadDetailsUpdated")
        .count();
    assert_eq!(
        updates, landed,
        "every answered write is recorded once, no refused one is"
    );
}

async fn health_shows_every_read_model_caught_up_with_the_log(backend: Backend) {
    let app = spawn_app_on(backend).await;
    let olga = app.token("olga.supervisor");
    let lead = app.register_lead(&olga, manual_lead("Office chairs")).await;
    app.board(&olga, lead.at()).await;
    let raw = app.get("/health").await;
    assert_eq!(raw.status, 200, "{}", raw.body);
    let health = raw.json().expect("JSON");
    assert_eq!(health["status"], "ok");
    let projections = health["projections"].as_array().expect("a list");
    let names: Vec<&str> = projections
        .iter()
        .filter_map(|p| p["name"].as_str())
        .collect();
    assert_eq!(names, ["leads", "history", "transitions"]);
    for p in projections {
        assert_eq!(p["lag"], 0, "{p}");
    }
}

async fn the_feed_shows_each_events_payload_as_the_log_stores_it(backend: Backend) {
    let app = spawn_app_on(backend).await;
    let olga = app.token("olga.supervisor");
    let lead = app
        .register_lead(&olga, web_form_lead("Forklift lease", "250000"))
        .await;
    let mut at = lead.at().map(str::to_owned);
    for n in 1..=3 {
        let renamed = app
            .must(
                &olga,
                ops::UPDATE_DETAILS,
                json!({ "lead": lead.id(), "input": { "title": format!("Forklift lease {n}") } }),
            )
            .await;
        at = renamed.at().map(str::to_owned);
    }
    // The read model keeps no payloads: they are read from the lead's stream, page by page,
    // through either shape of the connection.
    let query = "query($lead: ID!, $after: String, $at: Position) {
        leadHistory(lead: $lead, first: 2, after: $after, consistency: $at) {
          pageInfo { hasNextPage endCursor }
          edges { node { eventType data } }
          nodes { eventType data } } }";
    let mut payloads = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let answer = app
            .graphql(
                Some(&olga),
                query,
                json!({ "lead": lead.id(), "after": after, "at": at }),
            )
            .await;
        let feed = &answer["data"]["leadHistory"];
        assert_eq!(
            feed["edges"].as_array().map(Vec::len),
            Some(feed["nodes"].as_array().map_or(0, Vec::len)),
            "{answer}"
        );
        for (edge, node) in feed["edges"]
            .as_array()
            .unwrap()
            .iter()
            .zip(feed["nodes"].as_array().unwrap())
        {
            assert_eq!(edge["node"], *node);
            let data: serde_json::Value =
                serde_json::from_str(node["data"].as_str().expect("data"))
                    .unwrap_or_else(|e| panic!("the payload is JSON ({e}): {node}"));
            payloads.push((node["eventType"].as_str().unwrap().to_owned(), data));
        }
        if feed["pageInfo"]["hasNextPage"] != true {
            break;
        }
        after = feed["pageInfo"]["endCursor"].as_str().map(str::to_owned);
    }
    let types: Vec<&str> = payloads.iter().map(|(t, _)| t.as_str()).collect();
    assert_eq!(
        types,
        [
            "LeadDetailsUpdated",
            "LeadDetailsUpdated",
            "LeadDetailsUpdated",
            "LeadRegistered"
        ]
    );
    assert!(
        payloads[0].1.to_string().contains("Forklift lease 3"),
        "{:?}",
        payloads[0]
    );
    assert!(
        payloads[2].1.to_string().contains("Forklift lease 1"),
        "{:?}",
        payloads[2]
    );
    assert!(
        payloads[3].1.to_string().contains("Forklift lease"),
        "{:?}",
        payloads[3]
    );
}

on_both_backends!(
    every_read_at_a_mutations_position_sees_that_mutation,
    a_retried_registration_with_the_same_key_lands_on_the_same_lead_once,
    a_retried_command_answers_its_first_result_even_after_the_lead_moved_on,
    a_command_that_changes_nothing_answers_no_position_and_appends_nothing,
    concurrent_writers_on_one_lead_either_land_or_answer_conflict,
    health_shows_every_read_model_caught_up_with_the_log,
    the_feed_shows_each_events_payload_as_the_log_stores_it,
);
