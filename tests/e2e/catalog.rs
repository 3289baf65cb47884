//! The catalog as events, over HTTP: a new store starts with the default catalog; only admins
//! change it (`FORBIDDEN` for the rest, nothing appended); a user an admin creates signs in and
//! works; a dismissed user's token is refused and they cannot be made responsible; lead
//! commands are decided against the catalog as it stands.

use serde_json::{json, Value};

use leadflow_testkit::api::{ops, ApiFailure};
use leadflow_testkit::{spawn_app_on, Backend, TestApp};

use crate::manual_lead;

const CREATE_USER: &str = "mutation($input: CreateUserInput!) { createUser(input: $input) { position changed replayed } }";
const DISMISS: &str = "mutation($user: ID!) { dismissUser(user: $user) { position changed } }";
const RESTORE: &str = "mutation($user: ID!) { restoreUser(user: $user) { position changed } }";
const UPDATE_USER: &str = "mutation($user: ID!, $input: UpdateUserInput!) { updateUser(user: $user, input: $input) { position changed } }";
const USERS: &str = "query($all: Boolean!) { users(includeDismissed: $all) { name displayName role department office email locale active } }";

async fn ok(app: &TestApp, token: &str, query: &str, variables: Value) -> Value {
    let answer = app.graphql(Some(token), query, variables).await;
    assert!(answer.get("errors").is_none(), "{query}: {answer}");
    answer["data"].clone()
}

async fn refused(app: &TestApp, token: &str, query: &str, variables: Value) -> ApiFailure {
    let answer = app.graphql(Some(token), query, variables).await;
    ApiFailure::of(&answer).unwrap_or_else(|| panic!("{query} was accepted: {answer}"))
}

fn elena() -> Value {
    json!({
        "name": "elena.manager",
        "displayName": "Elena Orlova",
        "role": "MANAGER",
        "department": "sales",
        "office": "moscow",
        "email": "elena@leadflow.example",
        "locale": "EN",
    })
}

async fn a_new_store_starts_with_the_default_catalog(backend: Backend) {
    let app = spawn_app_on(backend).await;
    let ivan = app.token("ivan.manager");
    let users = ok(&app, &ivan, USERS, json!({ "all": true })).await;
    let names: Vec<&str> = users["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["name"].as_str().unwrap())
        .collect();
    assert!(names.contains(&"admin"), "{names:?}");
    assert!(names.contains(&"boris.dismissed"), "{names:?}");
    let active = ok(&app, &ivan, USERS, json!({ "all": false })).await;
    assert!(
        !active.to_string().contains("boris.dismissed"),
        "lists hide dismissed users unless asked: {active}"
    );
    let lists = ok(
        &app,
        &ivan,
        "{ funnels { id isDefault stages { key stage } } departments { id supervisor { name } } sources { code group countedInStatistics } catalogList(list: REASON) { code } settings { whoMayConvert nonTargetCallSeconds automation { key delayMinutes } } }",
        json!({}),
    )
    .await;
    assert_eq!(lists["funnels"].as_array().unwrap().len(), 2, "{lists}");
    assert_eq!(lists["catalogList"].as_array().unwrap().len(), 12);
    assert_eq!(lists["settings"]["whoMayConvert"], "CREATOR_AND_SUPERVISOR");
    assert_eq!(lists["settings"]["nonTargetCallSeconds"], 10);
    assert_eq!(lists["settings"]["automation"].as_array().unwrap().len(), 5);
    assert_eq!(
        lists["departments"][0]["supervisor"]["name"],
        "olga.supervisor"
    );
    // The catalog is in the log, as events of the catalog streams, before any lead.
    assert!(app.head().await > 40, "the seed is in the log");
}

async fn only_admins_change_the_catalog(backend: Backend) {
    let app = spawn_app_on(backend).await;
    let head = app.head().await;
    for who in ["ivan.manager", "olga.supervisor"] {
        let token = app.token(who);
        for (mutation, variables) in [
            (CREATE_USER, json!({ "input": elena() })),
            (DISMISS, json!({ "user": "maria.manager" })),
            (
                "mutation { createSource(input: { code: \"podcast\", name: \"Podcast\" }) { changed } }",
                json!({}),
            ),
            (
                "mutation { changeSettings(input: { whoMayConvert: ADMINS_ONLY }) { changed } }",
                json!({}),
            ),
        ] {
            let f = refused(&app, &token, mutation, variables).await;
            assert_eq!(f.code, "FORBIDDEN", "{who}: {mutation}: {}", f.message);
        }
    }
    assert_eq!(app.head().await, head, "nothing was appended");
}

async fn a_user_an_admin_creates_signs_in_and_works(backend: Backend) {
    let app = spawn_app_on(backend).await;
    let admin = app.token("admin");
    let created = ok(&app, &admin, CREATE_USER, json!({ "input": elena() })).await;
    assert_eq!(created["createUser"]["changed"], true);
    // The same login again is refused, and changes nothing.
    let head = app.head().await;
    let f = refused(&app, &admin, CREATE_USER, json!({ "input": elena() })).await;
    assert_eq!(f.code, "BAD_USER_INPUT", "{}", f.message);
    assert_eq!(app.head().await, head);

    let elena = app.token("elena.manager");
    let me = ok(
        &app,
        &elena,
        "{ me { name displayName role office email locale } }",
        json!({}),
    )
    .await;
    assert_eq!(
        me["me"],
        json!({
            "name": "elena.manager",
            "displayName": "Elena Orlova",
            "role": "MANAGER",
            "office": "moscow",
            "email": "elena@leadflow.example",
            "locale": "en",
        })
    );
    let lead = app
        .register_lead(&elena, manual_lead("Elena's first"))
        .await;
    // A supervisor may now make her responsible for another lead.
    let olga = app.token("olga.supervisor");
    let other = app.register_lead(&olga, manual_lead("For Elena")).await;
    app.must(
        &olga,
        ops::ASSIGN,
        json!({ "lead": other.id(), "to": app.user_id("elena.manager") }),
    )
    .await;
    let page = app
        .leads(
            &elena,
            json!({ "at": app.head().await.to_string(), "first": 10 }),
        )
        .await;
    let mut titles = page.titles();
    titles.sort();
    assert_eq!(titles, ["Elena's first", "For Elena"], "{}", lead.id());
}

async fn a_dismissed_users_token_is_refused_until_restored(backend: Backend) {
    let app = spawn_app_on(backend).await;
    let (admin, ivan, olga) = (
        app.token("admin"),
        app.token("ivan.manager"),
        app.token("olga.supervisor"),
    );
    ok(&app, &ivan, "{ me { name } }", json!({})).await;
    ok(&app, &admin, DISMISS, json!({ "user": "ivan.manager" })).await;

    let raw = app
        .graphql_raw(
            Some(&format!("Bearer {ivan}")),
            &json!({ "query": "{ me { name } }" }),
        )
        .await;
    assert_eq!(raw.status, 401, "{raw:?}");
    let answer = raw.json().expect("a JSON error");
    assert_eq!(
        answer["errors"][0]["extensions"]["code"], "UNAUTHENTICATED",
        "{answer}"
    );
    assert!(
        answer.to_string().contains("dismissed"),
        "the refusal says why: {answer}"
    );
    // They cannot be made responsible.
    let lead = app.register_lead(&olga, manual_lead("Orphan")).await;
    let head = app.head().await;
    let f = refused(
        &app,
        &olga,
        ops::ASSIGN,
        json!({ "lead": lead.id(), "to": app.user_id("ivan.manager") }),
    )
    .await;
    assert_eq!(f.code, "BAD_USER_INPUT", "{}", f.message);
    assert_eq!(app.head().await, head);
    // Lists hide them unless asked.
    let users = ok(&app, &olga, USERS, json!({ "all": false })).await;
    assert!(!users.to_string().contains("ivan.manager"), "{users}");
    let all = ok(&app, &olga, USERS, json!({ "all": true })).await;
    assert!(all.to_string().contains("ivan.manager"), "{all}");

    ok(&app, &admin, RESTORE, json!({ "user": "ivan.manager" })).await;
    ok(&app, &ivan, "{ me { name } }", json!({})).await;
}

async fn lead_commands_see_the_catalog_as_it_stands(backend: Backend) {
    let app = spawn_app_on(backend).await;
    let (admin, ivan, maria) = (
        app.token("admin"),
        app.token("ivan.manager"),
        app.token("maria.manager"),
    );
    let podcast = json!({ "title": "Heard it", "source": "podcast" });
    let f = app
        .command(&ivan, ops::REGISTER, json!({ "input": podcast.clone() }))
        .await
        .expect_err("an unknown source is refused");
    assert_eq!(f.code, "BAD_USER_INPUT", "{}", f.message);
    ok(
        &app,
        &admin,
        "mutation { createSource(input: { code: \"podcast\", name: \"Podcast\", group: \"Media\", countedInStatistics: false }) { changed } }",
        json!({}),
    )
    .await;
    app.register_lead(&ivan, podcast).await;

    // A new funnel takes leads at once.
    let stages: Vec<Value> = [
        ("fresh", "QUALIFICATION"),
        ("route", "DISTRIBUTION"),
        ("talk", "HANDOFF"),
        ("wait", "AWAITING_SALE"),
        ("junk", "DISQUALIFIED"),
        ("none", "NEED_ABSENT"),
        ("won", "NEED_SATISFIED"),
    ]
    .into_iter()
    .map(|(key, stage)| json!({ "key": key, "name": key, "colour": "#123456", "stage": stage }))
    .collect();
    ok(
        &app,
        &admin,
        "mutation($stages: [FunnelStageInput!]!) { createFunnel(input: { id: \"export\", name: \"Export\", stages: $stages }) { changed } }",
        json!({ "stages": stages }),
    )
    .await;
    let abroad = app
        .register_lead(&ivan, json!({ "title": "Abroad", "funnel": "export" }))
        .await;
    // Its board shows the new columns, in the order given, with the lead in the first.
    let board = ok(
        &app,
        &ivan,
        "query($at: Position) { board(funnel: \"export\", consistency: $at) { totalCount columns { key name count } } }",
        json!({ "at": abroad.at() }),
    )
    .await;
    assert_eq!(board["board"]["totalCount"], 1, "{board}");
    assert_eq!(board["board"]["columns"][0]["key"], "fresh", "{board}");
    assert_eq!(board["board"]["columns"][0]["count"], 1, "{board}");
    // Renaming a column shows at once; the lead keeps its stage.
    let renamed: Vec<Value> = stages
        .iter()
        .map(|s| {
            let mut s = s.clone();
            if s["key"] == "fresh" {
                s["name"] = json!("Just in");
            }
            s
        })
        .collect();
    ok(
        &app,
        &admin,
        "mutation($stages: [FunnelStageInput!]!) { updateFunnel(funnel: \"export\", stages: $stages) { changed } }",
        json!({ "stages": renamed }),
    )
    .await;
    let board = ok(
        &app,
        &ivan,
        "{ board(funnel: \"export\") { columns { key name count } } }",
        json!({}),
    )
    .await;
    assert_eq!(board["board"]["columns"][0]["name"], "Just in", "{board}");
    assert_eq!(board["board"]["columns"][0]["count"], 1, "{board}");

    // A role change applies to the next request, with the token already issued.
    let before = app
        .leads(
            &maria,
            json!({ "at": app.head().await.to_string(), "first": 10 }),
        )
        .await;
    assert_eq!(before.total_count, 0);
    ok(
        &app,
        &admin,
        UPDATE_USER,
        json!({ "user": "maria.manager", "input": { "role": "SUPERVISOR" } }),
    )
    .await;
    let after = app
        .leads(
            &maria,
            json!({ "at": app.head().await.to_string(), "first": 10 }),
        )
        .await;
    assert_eq!(
        after.total_count, 1,
        "the default funnel's leads, all of them now"
    );

    // The settings decide who may convert: admins only, and ivan's own lead is out of his reach.
    ok(
        &app,
        &admin,
        "mutation { changeSettings(input: { whoMayConvert: ADMINS_ONLY }) { changed } }",
        json!({}),
    )
    .await;
    let own = app.register_lead(&ivan, manual_lead("Mine")).await;
    let f = app
        .command(
            &ivan,
            ops::CONVERT,
            json!({ "lead": own.id(), "input": { "contact": { "mode": "CREATE" } } }),
        )
        .await
        .expect_err("only admins convert now");
    assert_eq!(f.code, "FORBIDDEN", "{}", f.message);
}

async fn the_feed_names_things_as_the_catalog_stood_at_each_event(backend: Backend) {
    let app = spawn_app_on(backend).await;
    let (admin, olga) = (app.token("admin"), app.token("olga.supervisor"));
    ok(&app, &admin, CREATE_USER, json!({ "input": elena() })).await;
    let first = app.register_lead(&olga, manual_lead("First")).await;
    app.must(
        &olga,
        ops::ASSIGN,
        json!({ "lead": first.id(), "to": app.user_id("elena.manager") }),
    )
    .await;
    app.must(
        &olga,
        ops::DISQUALIFY,
        json!({ "lead": first.id(), "reason": "no-budget" }),
    )
    .await;
    ok(
        &app,
        &admin,
        "mutation { renameCatalogEntry(list: REASON, code: \"no-budget\", name: \"Budget frozen\") { changed } }",
        json!({}),
    )
    .await;
    let second = app.register_lead(&olga, manual_lead("Second")).await;
    let done = app
        .must(
            &olga,
            ops::DISQUALIFY,
            json!({ "lead": second.id(), "reason": "no-budget" }),
        )
        .await;
    let at = done.at().map(str::to_owned);
    let summaries = |h: leadflow_testkit::api::History| {
        h.nodes
            .iter()
            .map(|e| e.summary.clone())
            .collect::<Vec<_>>()
            .join(" | ")
    };
    let old = summaries(app.history(&olga, first.id(), at.as_deref()).await);
    assert!(
        old.contains("elena.manager"),
        "a user created later is named: {old}"
    );
    assert!(old.contains("No budget"), "the old name stays: {old}");
    assert!(!old.contains("Budget frozen"), "{old}");
    let new = summaries(app.history(&olga, second.id(), at.as_deref()).await);
    assert!(
        new.contains("Budget frozen"),
        "the new name from then on: {new}"
    );
}

async fn the_last_admin_stays(backend: Backend) {
    let app = spawn_app_on(backend).await;
    let admin = app.token("admin");
    let f = refused(&app, &admin, DISMISS, json!({ "user": "admin" })).await;
    assert_eq!(f.code, "BAD_USER_INPUT", "{}", f.message);
    assert!(f.message.contains("last active admin"), "{}", f.message);
}

on_both_backends!(
    a_new_store_starts_with_the_default_catalog,
    only_admins_change_the_catalog,
    a_user_an_admin_creates_signs_in_and_works,
    a_dismissed_users_token_is_refused_until_restored,
    lead_commands_see_the_catalog_as_it_stands,
    the_feed_names_things_as_the_catalog_stood_at_each_event,
    the_last_admin_stays,
);
