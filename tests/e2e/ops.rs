//! Ops over HTTP: `/metrics` in the Prometheus text format (parsed as a scraper parses it)
//! moving as commands run; `/health/live` and `/health/ready` (unready while a read model is
//! behind by more than the allowed lag); an admin pausing, resuming, retrying and skipping;
//! a poison event in the log stopping every read model at it, said in `extensions`, until an
//! admin skips it into the dead letters; ops mutations refused to managers and supervisors.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use leadflow_testkit::api::ops;
use leadflow_testkit::{spawn_app_on, spawn_app_with, Backend, Settings, TestApp};

use crate::{manual_lead, web_form_lead};

const STATUS: &str =
    "query { projections { name state checkpoint lag stoppedAt stoppedAtType error } }";

/// `/metrics`, parsed.
async fn scrape(app: &TestApp) -> prometheus_parse::Scrape {
    let raw = app.get("/metrics").await;
    assert_eq!(raw.status, 200, "{raw:?}");
    assert!(
        raw.content_type
            .as_deref()
            .unwrap_or("")
            .starts_with("text/plain"),
        "{raw:?}"
    );
    prometheus_parse::Scrape::parse(raw.body.lines().map(|l| Ok(l.to_owned())))
        .expect("/metrics parses as the Prometheus text format")
}

/// The value of a counter or gauge sample with these labels (0 when absent).
fn value(scrape: &prometheus_parse::Scrape, metric: &str, labels: &[(&str, &str)]) -> f64 {
    scrape
        .samples
        .iter()
        .filter(|s| s.metric == metric)
        .filter(|s| labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .map(|s| match &s.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => *v,
            prometheus_parse::Value::Histogram(buckets) => buckets.last().map_or(0.0, |b| b.count),
            prometheus_parse::Value::Summary(_) => 0.0,
        })
        .sum()
}

async fn metrics_parse_as_prometheus_text_and_move_as_commands_run(backend: Backend) {
    let app = spawn_app_on(backend).await;
    let ivan = app.token("ivan.manager");
    let appended = [("command", "RegisterLead"), ("outcome", "appended")];
    let rejected = [("rule", "not_allowed_in_stage")];
    let before = scrape(&app).await;

    let lead = app.register_lead(&ivan, manual_lead("Office chairs")).await;
    app.register_lead(&ivan, web_form_lead("Racks", "900000"))
        .await;
    app.must(&ivan, ops::QUALIFY, json!({ "lead": lead.id() }))
        .await;
    let again = app
        .command(&ivan, ops::QUALIFY, json!({ "lead": lead.id() }))
        .await
        .expect_err("qualified twice");
    assert_eq!(again.code, "INVALID_TRANSITION");
    app.leads(&ivan, json!({ "at": lead.at() })).await;

    let after = scrape(&app).await;
    // Other tests of this process count into the same recorder: at least ours.
    let grew = |metric: &str, labels: &[(&str, &str)]| {
        value(&after, metric, labels) - value(&before, metric, labels)
    };
    assert!(grew("leadflow_commands_total", &appended) >= 2.0);
    assert!(grew("leadflow_rejections_total", &rejected) >= 1.0);
    assert!(
        grew(
            "leadflow_command_seconds_count",
            &[("command", "QualifyLead")]
        ) >= 2.0
    );
    assert!(
        grew(
            "leadflow_graphql_seconds_count",
            &[("type", "mutation"), ("field", "registerLead")]
        ) >= 2.0
    );
    assert!(grew("leadflow_graphql_seconds_count", &[("field", "leads")]) >= 1.0);
    for model in ["leads", "history", "transitions"] {
        let labels = [("projection", model)];
        assert!(
            after
                .samples
                .iter()
                .any(|s| s.metric == "leadflow_projection_lag_events"
                    && s.labels.get("projection") == Some(model)),
            "no lag gauge for {model}"
        );
        assert!(value(&after, "leadflow_projection_checkpoint", &labels) > 0.0);
        assert_eq!(
            value(&after, "leadflow_projection_state", &labels),
            1.0,
            "one state at a time"
        );
    }
    if backend == Backend::Embedded {
        assert!(grew("leadflow_append_group_events_count", &[]) >= 3.0);
        assert!(value(&after, "leadflow_store_bytes", &[]) > 0.0);
    }
    // Nothing personal in a label: no title, no token.
    let text = app.get("/metrics").await.body;
    assert!(!text.contains("Office chairs") && !text.contains(&ivan));
}

async fn admin(app: &TestApp, query: &str, variables: Value) -> Value {
    let token = app.token("admin");
    let answer = app.graphql(Some(&token), query, variables).await;
    assert!(answer["errors"].is_null(), "{answer}");
    answer["data"].clone()
}

/// Each model's status by name.
async fn statuses(app: &TestApp) -> HashMap<String, Value> {
    let data = admin(app, STATUS, json!({})).await;
    data["projections"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["name"].as_str().unwrap().to_owned(), p.clone()))
        .collect()
}

/// Polls until `check` holds, or panics with `what`.
async fn until<F: std::future::Future<Output = bool>>(what: &str, mut check: impl FnMut() -> F) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !check().await {
        assert!(Instant::now() < deadline, "never: {what}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

async fn ready_turns_unready_while_a_read_model_falls_behind(backend: Backend) {
    let app = spawn_app_with(Settings {
        backend,
        ready_max_lag: 2,
        ..Settings::default()
    })
    .await;
    let olga = app.token("olga.supervisor");
    assert_eq!(app.get("/health/live").await.status, 200);
    until("ready at start", || async {
        app.get("/health/ready").await.status == 200
    })
    .await;

    let paused = admin(
        &app,
        "mutation { pauseProjection(name: \"history\", reason: MAINTENANCE) { name state } }",
        json!({}),
    )
    .await;
    assert_eq!(paused["pauseProjection"]["state"], "PAUSED");
    for n in 0..3 {
        app.register_lead(&olga, web_form_lead(&format!("Lead {n}"), "1000"))
            .await;
    }
    let unready = app.get("/health/ready").await;
    assert_eq!(unready.status, 503, "{unready:?}");
    let body = unready.json().unwrap();
    assert_eq!(body["status"], "unready");
    assert!(
        body["reasons"][0]
            .as_str()
            .unwrap()
            .starts_with("history is "),
        "{body}"
    );
    assert_eq!(app.get("/health/live").await.status, 200, "alive all along");
    // Answers say which model is stale.
    let answer = app
        .graphql(Some(&olga), "query { projections { name } }", json!({}))
        .await;
    assert_eq!(answer["extensions"]["staleReadModels"], json!(["history"]));

    admin(
        &app,
        "mutation { resumeProjection(name: \"history\", reason: MAINTENANCE) { name } }",
        json!({}),
    )
    .await;
    until("ready after resuming", || async {
        app.get("/health/ready").await.status == 200
    })
    .await;
}

async fn a_poison_event_stops_every_model_at_it_until_an_admin_skips_it(backend: Backend) {
    let app = spawn_app_on(backend).await;
    let olga = app.token("olga.supervisor");
    // Paused while a good event and the poison land, so that one batch holds both: a batch
    // that does not decode is dropped whole, and the good event must not go with the skip.
    admin(
        &app,
        "mutation { pauseProjection(name: \"leads\", reason: MAINTENANCE) { name } }",
        json!({}),
    )
    .await;
    let first = app.register_lead(&olga, manual_lead("Before")).await;
    let poison = app
        .append_raw(
            "lead-01900000-0000-7000-8000-00000000dead",
            "LeadRegistered",
            b"{ not json",
        )
        .await;
    admin(
        &app,
        "mutation { resumeProjection(name: \"leads\", reason: MAINTENANCE) { name } }",
        json!({}),
    )
    .await;

    // Every model decodes the same log: each stops at the poison, naming it.
    until("every model failed at the poison", || async {
        statuses(&app)
            .await
            .values()
            .all(|p| p["state"] == "FAILED" && p["stoppedAt"] == json!(poison.to_string()))
    })
    .await;
    let status = statuses(&app).await;
    let leads = &status["leads"];
    assert_eq!(leads["stoppedAtType"], "undecodable");
    assert!(
        leads["error"]
            .as_str()
            .unwrap()
            .contains(&format!("position {poison}")),
        "{leads}"
    );
    // Still readable, said stale.
    let answer = app
        .graphql(Some(&olga), "query { projections { name } }", json!({}))
        .await;
    assert_eq!(
        answer["extensions"]["staleReadModels"]
            .as_array()
            .unwrap()
            .len(),
        3
    );
    assert_eq!(app.get("/health/ready").await.status, 503);

    // A retry meets it again; a skip of another position is refused.
    admin(
        &app,
        "mutation { retryProjection(name: \"leads\", reason: MAINTENANCE) { name } }",
        json!({}),
    )
    .await;
    until("leads failed again", || async {
        statuses(&app).await["leads"]["state"] == "FAILED"
    })
    .await;
    let token = app.token("admin");
    let wrong = app
        .graphql(
            Some(&token),
            "mutation($p: Position!) { skipEvent(projection: \"leads\", position: $p, reason: BAD_EVENT) { name } }",
            json!({ "p": first.at() }),
        )
        .await;
    assert_eq!(
        wrong["errors"][0]["extensions"]["code"], "BAD_USER_INPUT",
        "{wrong}"
    );

    for model in ["leads", "history", "transitions"] {
        admin(
            &app,
            "mutation($m: String!, $p: Position!) { skipEvent(projection: $m, position: $p, reason: BAD_EVENT, ticket: \"INC-7\") { name } }",
            json!({ "m": model, "p": poison.to_string() }),
        )
        .await;
    }
    // The models go on past it: a new lead is read at its own position.
    let after = app.register_lead(&olga, manual_lead("After")).await;
    assert_eq!(
        app.leads(&olga, json!({ "at": after.at() }))
            .await
            .total_count,
        2
    );
    let letters = admin(
        &app,
        "query { deadLetters(projection: \"leads\") { position stream eventType reason by error } }",
        json!({}),
    )
    .await;
    let letters = letters["deadLetters"].as_array().unwrap();
    assert_eq!(letters.len(), 1, "{letters:?}");
    assert_eq!(letters[0]["position"], json!(poison.to_string()));
    assert_eq!(letters[0]["reason"], "bad_event INC-7");
    assert_eq!(letters[0]["by"], app.user_id("admin"));
    assert_eq!(app.get("/health/ready").await.status, 200);

    // Every action is in the log, with who and why; the refused skip is not.
    let actions = admin(
        &app,
        "query { opsActions { action model by reason ticket eventPosition position at } }",
        json!({}),
    )
    .await;
    let actions = actions["opsActions"].as_array().unwrap();
    let done: Vec<(&str, &str)> = actions
        .iter()
        .map(|a| (a["action"].as_str().unwrap(), a["model"].as_str().unwrap()))
        .collect();
    assert_eq!(
        done,
        [
            ("ReadModelPaused", "leads"),
            ("ReadModelResumed", "leads"),
            ("ReadModelRetried", "leads"),
            ("ReadModelEventSkipped", "leads"),
            ("ReadModelEventSkipped", "history"),
            ("ReadModelEventSkipped", "transitions"),
        ]
    );
    for a in actions {
        assert_eq!(a["by"], app.user_id("admin"));
    }
    assert_eq!(actions[2]["eventPosition"], json!(poison.to_string()));
    assert_eq!(actions[3]["reason"], "BAD_EVENT");
    assert_eq!(actions[3]["ticket"], "INC-7");
    assert_eq!(actions[3]["eventPosition"], json!(poison.to_string()));
    let recorded: u64 = actions[3]["position"].as_str().unwrap().parse().unwrap();
    assert!(
        recorded > poison.to_string().parse::<u64>().unwrap(),
        "recorded after the event it skips"
    );
    let of_history = admin(
        &app,
        "query { opsActions(model: \"history\", last: 1) { action model } }",
        json!({}),
    )
    .await;
    assert_eq!(
        of_history["opsActions"],
        json!([{ "action": "ReadModelEventSkipped", "model": "history" }])
    );
}

async fn ops_actions_are_for_admins_only(backend: Backend) {
    let app = spawn_app_on(backend).await;
    let mutations = [
        "mutation { pauseProjection(name: \"leads\", reason: MAINTENANCE) { name } }",
        "mutation { resumeProjection(name: \"leads\", reason: MAINTENANCE) { name } }",
        "mutation { retryProjection(name: \"leads\", reason: MAINTENANCE) { name } }",
        "mutation { skipEvent(projection: \"leads\", position: \"1\", reason: BAD_EVENT) { name } }",
        "query { deadLetters(projection: \"leads\") { position } }",
        "mutation { rebuildProjection(name: \"leads\", reason: UPGRADE) { name } }",
        "mutation { rebuildProjection(reason: MAINTENANCE) { name } }",
        "mutation { rollbackProjection(name: \"leads\", reason: MAINTENANCE) { name } }",
        "query { opsActions { action } }",
    ];
    for user in ["ivan.manager", "olga.supervisor"] {
        let token = app.token(user);
        for m in mutations {
            let answer = app.graphql(Some(&token), m, json!({})).await;
            assert_eq!(
                answer["errors"][0]["extensions"]["code"], "FORBIDDEN",
                "{user}: {m}: {answer}"
            );
        }
    }
    until("leads live, not paused by anyone", || async {
        statuses(&app).await["leads"]["state"] == "LIVE"
    })
    .await;
    // An admin's mistakes: an unknown model, an action that does not apply.
    let token = app.token("admin");
    let unknown = app
        .graphql(
            Some(&token),
            "mutation { pauseProjection(name: \"nope\", reason: MAINTENANCE) { name } }",
            json!({}),
        )
        .await;
    assert_eq!(unknown["errors"][0]["extensions"]["code"], "NOT_FOUND");
    // Refused, each before anything is done: a skip of no event, tickets that are sentences
    // (a ticket is a reference), a retry of a model that has not failed, a rollback with
    // nothing to go back to. Nothing is paused, rebuilt or recorded.
    for refused in [
        "mutation { skipEvent(projection: \"leads\", position: \"0\", reason: BAD_EVENT) { name } }",
        "mutation { pauseProjection(name: \"leads\", reason: OTHER, ticket: \"Anna Petrova called\") { name } }",
        "mutation { skipEvent(projection: \"leads\", position: \"1\", reason: BAD_EVENT, ticket: \"a sentence\") { name } }",
        "mutation { rebuildProjection(name: \"leads\", reason: UPGRADE, ticket: \"a sentence\") { name } }",
        "mutation { rollbackProjection(name: \"leads\", reason: INCIDENT, ticket: \"a sentence\") { name } }",
        "mutation { retryProjection(name: \"leads\", reason: MAINTENANCE) { name } }",
        "mutation { rollbackProjection(name: \"leads\", reason: MAINTENANCE) { name } }",
    ] {
        let answer = app.graphql(Some(&token), refused, json!({})).await;
        assert_eq!(
            answer["errors"][0]["extensions"]["code"], "BAD_USER_INPUT",
            "{refused}: {answer}"
        );
    }
    assert_eq!(statuses(&app).await["leads"]["state"], "LIVE");
    let leads = admin(
        &app,
        "query { projections { name generation rebuild { generation } } }",
        json!({}),
    )
    .await;
    assert_eq!(
        leads["projections"][0],
        json!({ "name": "leads", "generation": 0, "rebuild": null })
    );
    assert_eq!(
        admin(&app, "query { opsActions { action } }", json!({})).await["opsActions"],
        json!([])
    );
}

async fn an_admin_rebuilds_a_model_beside_the_live_one_and_rolls_it_back(backend: Backend) {
    let app = spawn_app_on(backend).await;
    let olga = app.token("olga.supervisor");
    for n in 0..5 {
        app.register_lead(&olga, web_form_lead(&format!("Lead {n}"), "1000"))
            .await;
    }
    let started = admin(
        &app,
        "mutation { rebuildProjection(name: \"history\", verify: true, reason: VERIFICATION) { name generation rebuild { generation state } } }",
        json!({}),
    )
    .await;
    let history = started["rebuildProjection"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "history")
        .unwrap()
        .clone();
    assert_eq!(history["generation"], 0);
    assert_eq!(history["rebuild"]["generation"], 1);
    until_serving(&app, "history", 1).await;
    let lead = app
        .register_lead(&olga, manual_lead("After the switch"))
        .await;
    assert_eq!(
        app.history(&olga, lead.id(), lead.at()).await.total_count,
        1
    );

    admin(
        &app,
        "mutation { rollbackProjection(name: \"history\", reason: MAINTENANCE) { name } }",
        json!({}),
    )
    .await;
    until_serving(&app, "history", 0).await;
    let again = app
        .register_lead(&olga, manual_lead("After the rollback"))
        .await;
    assert_eq!(
        app.history(&olga, again.id(), again.at()).await.total_count,
        1
    );
    assert_eq!(
        app.history(&olga, lead.id(), again.at()).await.total_count,
        1
    );
    let actions = admin(
        &app,
        "query { opsActions(model: \"history\") { action reason verify } }",
        json!({}),
    )
    .await;
    assert_eq!(
        actions["opsActions"],
        json!([
            { "action": "ReadModelRebuildStarted", "reason": "VERIFICATION", "verify": true },
            { "action": "ReadModelRolledBack", "reason": "MAINTENANCE", "verify": null },
        ])
    );
}

async fn an_admin_follows_a_rebuild_over_a_subscription(backend: Backend) {
    let app = spawn_app_on(backend).await;
    let olga = app.token("olga.supervisor");
    app.register_lead(&olga, web_form_lead("Racks", "1000"))
        .await;
    const PROGRESS: &str = "subscription { projectionProgress(name: \"leads\", everyMs: 250) { name generation rebuild { generation } } }";

    // Not for others.
    let mut ws = app
        .subscriptions(Some(&olga))
        .await
        .expect("connection_ack");
    ws.subscribe("p", PROGRESS, json!({})).await;
    let refused = ws.next_payload("p").await;
    assert_eq!(
        refused["errors"][0]["extensions"]["code"], "FORBIDDEN",
        "{refused}"
    );

    let admin_token = app.token("admin");
    let mut ws = app
        .subscriptions(Some(&admin_token))
        .await
        .expect("connection_ack");
    ws.subscribe("p", PROGRESS, json!({})).await;
    let now = ws.next_payload("p").await["data"]["projectionProgress"].clone();
    assert_eq!(
        now,
        json!([{ "name": "leads", "generation": 0, "rebuild": null }])
    );
    admin(
        &app,
        "mutation { rebuildProjection(name: \"leads\", reason: UPGRADE) { name } }",
        json!({}),
    )
    .await;
    // Updates until the new generation serves.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let update = ws.next_payload("p").await["data"]["projectionProgress"][0].clone();
        if update["generation"] == 1 && update["rebuild"].is_null() {
            break;
        }
        assert!(Instant::now() < deadline, "never switched: {update}");
    }
    // A rebuild of every model is recorded for each of them, after the one of leads.
    admin(
        &app,
        "mutation { rebuildProjection(reason: MAINTENANCE, ticket: \"CHG-12\") { name } }",
        json!({}),
    )
    .await;
    let actions = admin(
        &app,
        "query { opsActions { action model reason ticket verify } }",
        json!({}),
    )
    .await;
    assert_eq!(
        actions["opsActions"],
        json!([
            { "action": "ReadModelRebuildStarted", "model": "leads", "reason": "UPGRADE", "ticket": null, "verify": false },
            { "action": "ReadModelRebuildStarted", "model": "leads", "reason": "MAINTENANCE", "ticket": "CHG-12", "verify": false },
            { "action": "ReadModelRebuildStarted", "model": "history", "reason": "MAINTENANCE", "ticket": "CHG-12", "verify": false },
            { "action": "ReadModelRebuildStarted", "model": "transitions", "reason": "MAINTENANCE", "ticket": "CHG-12", "verify": false },
        ])
    );
}

async fn an_erasure_ends_the_rollback_window(backend: Backend) {
    let app = spawn_app_on(backend).await;
    let olga = app.token("olga.supervisor");
    let lead = app
        .register_lead(
            &olga,
            json!({ "title": "Racks", "unassigned": true, "contactName": "Zlatoslava Quincewood" }),
        )
        .await;
    admin(
        &app,
        "mutation { rebuildProjection(name: \"leads\", reason: UPGRADE) { name } }",
        json!({}),
    )
    .await;
    until_serving(&app, "leads", 1).await;
    // The person is forgotten: the generation kept for a rollback still holds their name, so
    // it goes, and a rollback is refused.
    let subject = app
        .graphql(
            Some(&olga),
            "query($id: ID!) { lead(id: $id) { subject } }",
            json!({ "id": lead.id() }),
        )
        .await["data"]["lead"]["subject"]
        .clone();
    let erased = admin(
        &app,
        "mutation($s: ID!) { erasePersonalData(subject: $s, reasonCode: REQUEST) { erasedNow position } }",
        json!({ "s": subject }),
    )
    .await;
    let at = erased["erasePersonalData"]["position"].clone();
    let card = app
        .graphql(
            Some(&olga),
            "query($id: ID!, $at: Position) { lead(id: $id, consistency: $at) { contactName } }",
            json!({ "id": lead.id(), "at": at }),
        )
        .await;
    assert_eq!(card["data"]["lead"]["contactName"], "[erased]", "{card}");
    let token = app.token("admin");
    let answer = app
        .graphql(
            Some(&token),
            "mutation { rollbackProjection(name: \"leads\", reason: MAINTENANCE) { name } }",
            json!({}),
        )
        .await;
    assert_eq!(
        answer["errors"][0]["extensions"]["code"], "BAD_USER_INPUT",
        "{answer}"
    );
    let message = answer["errors"][0]["message"].as_str().unwrap();
    assert!(message.contains("no previous generation"), "{message}");
}

async fn an_admin_acts_on_the_generation_a_rebuild_is_building(backend: Backend) {
    let app = spawn_app_on(backend).await;
    let olga = app.token("olga.supervisor");
    app.register_lead(&olga, manual_lead("Before")).await;
    let token = app.token("admin");
    let on_building = |action: &str| {
        format!(
            "mutation($p: Position!) {{ {action}(projection: \"history\", position: $p, reason: BAD_EVENT, ticket: \"INC-8\", generation: BUILDING) {{ name }} }}"
        )
    };
    let pause_building = "mutation { pauseProjection(name: \"history\", reason: MAINTENANCE, generation: BUILDING) { name } }";

    // None is being built: refused, and nothing is recorded.
    let none = app.graphql(Some(&token), pause_building, json!({})).await;
    assert_eq!(
        none["errors"][0]["extensions"]["code"], "BAD_USER_INPUT",
        "{none}"
    );
    let message = none["errors"][0]["message"].as_str().unwrap();
    assert!(
        message.contains("no generation of history is being built"),
        "{message}"
    );

    // The live model is paused before a poison event lands, then a rebuild begins: the new
    // generation stops at the poison, which the live one has not met.
    admin(
        &app,
        "mutation { pauseProjection(name: \"history\", reason: MAINTENANCE) { name } }",
        json!({}),
    )
    .await;
    let poison = app
        .append_raw(
            "lead-01900000-0000-7000-8000-00000000beef",
            "LeadRegistered",
            b"{ not json",
        )
        .await;
    admin(
        &app,
        "mutation { rebuildProjection(name: \"history\", reason: UPGRADE) { name } }",
        json!({}),
    )
    .await;
    let fields = "state rebuild { state stoppedAt }";
    until("the new generation stopped at the poison", || async {
        let s = &statuses_with(&app, fields).await["history"];
        s["rebuild"]["state"] == "FAILED" && s["rebuild"]["stoppedAt"] == json!(poison.to_string())
    })
    .await;
    assert_eq!(
        statuses_with(&app, fields).await["history"]["state"],
        "PAUSED"
    );

    // A failed generation is not paused; retried, it meets the event again.
    let refused = app.graphql(Some(&token), pause_building, json!({})).await;
    assert_eq!(
        refused["errors"][0]["extensions"]["code"], "BAD_USER_INPUT",
        "{refused}"
    );
    admin(
        &app,
        "mutation { retryProjection(name: \"history\", reason: BAD_EVENT, generation: BUILDING) { name rebuild { state } } }",
        json!({}),
    )
    .await;
    until("the new generation failed again", || async {
        statuses_with(&app, fields).await["history"]["rebuild"]["state"] == "FAILED"
    })
    .await;

    // Skipped there, it goes on, catches up and takes over, its dead letter with it.
    admin(
        &app,
        &on_building("skipEvent"),
        json!({ "p": poison.to_string() }),
    )
    .await;
    until_serving(&app, "history", 1).await;
    let letters = admin(
        &app,
        "query { deadLetters(projection: \"history\") { position reason } }",
        json!({}),
    )
    .await;
    assert_eq!(
        letters["deadLetters"],
        json!([{ "position": poison.to_string(), "reason": "bad_event INC-8" }])
    );

    // The log says what was done to which generation, and on which server.
    let actions = admin(
        &app,
        "query { opsActions(model: \"history\") { action generation node } }",
        json!({}),
    )
    .await;
    let actions = actions["opsActions"].as_array().unwrap();
    let done: Vec<(&str, &str)> = actions
        .iter()
        .map(|a| {
            (
                a["action"].as_str().unwrap(),
                a["generation"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        done,
        [
            ("ReadModelPaused", "LIVE"),
            ("ReadModelRebuildStarted", "LIVE"),
            ("ReadModelRetried", "BUILDING"),
            ("ReadModelEventSkipped", "BUILDING"),
        ]
    );
    let node = app.node_name();
    assert!(actions.iter().all(|a| a["node"] == node), "{actions:?}");
}

/// Polls until generation `generation` of `model` serves, with no rebuild under way.
async fn until_serving(app: &TestApp, model: &str, generation: u64) {
    until(
        &format!("{model} serving generation {generation}"),
        || async {
            let s = &statuses_with(app, "generation rebuild { generation } refused").await[model];
            s["generation"] == generation && s["rebuild"].is_null()
        },
    )
    .await;
}

/// Each model's status by name, with these fields.
async fn statuses_with(app: &TestApp, fields: &str) -> HashMap<String, Value> {
    let data = admin(
        app,
        &format!("query {{ projections {{ name {fields} }} }}"),
        json!({}),
    )
    .await;
    data["projections"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["name"].as_str().unwrap().to_owned(), p.clone()))
        .collect()
}

on_both_backends!(
    metrics_parse_as_prometheus_text_and_move_as_commands_run,
    ready_turns_unready_while_a_read_model_falls_behind,
    a_poison_event_stops_every_model_at_it_until_an_admin_skips_it,
    ops_actions_are_for_admins_only,
    an_admin_rebuilds_a_model_beside_the_live_one_and_rolls_it_back,
    an_admin_follows_a_rebuild_over_a_subscription,
    an_erasure_ends_the_rollback_window,
    an_admin_acts_on_the_generation_a_rebuild_is_building,
);
