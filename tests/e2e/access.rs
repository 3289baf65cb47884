//! Who may see and change which lead (SPEC 3.7), per role, over HTTP and WebSocket: a manager
//! sees and acts only on the leads they are responsible for or created, another manager of the
//! same department on theirs, supervisors and admins on every lead. Out-of-scope leads answer
//! exactly as leads that do not exist; board counts, table totals, reports, history feeds and
//! subscriptions cover the scope only; a reassignment moves a lead between scopes at one log
//! position.

use std::time::Duration;

use serde_json::json;

use leadflow_testkit::api::{counts, ops};
use leadflow_testkit::{spawn_app_on, Backend, TestApp};

use crate::{manual_lead, web_form_lead};

/// Four leads: ivan's own, maria's own, one nobody is responsible for, one a supervisor
/// registered and gave to ivan. Returns their ids and the position after the last.
async fn four_leads(app: &TestApp) -> ([String; 4], String) {
    let (ivan, maria, olga) = (
        app.token("ivan.manager"),
        app.token("maria.manager"),
        app.token("olga.supervisor"),
    );
    let a = app.register_lead(&ivan, manual_lead("Ivan's chairs")).await;
    let b = app
        .register_lead(&maria, manual_lead("Maria's pumps"))
        .await;
    let c = app
        .register_lead(&olga, web_form_lead("Nobody's racks", "1000"))
        .await;
    let d = app
        .register_lead(&olga, web_form_lead("Racks for Ivan", "2000"))
        .await;
    let given = app
        .must(
            &olga,
            ops::ASSIGN,
            json!({ "lead": d.id(), "to": app.user_id("ivan.manager") }),
        )
        .await;
    (
        [a.id(), b.id(), c.id(), d.id()].map(str::to_owned),
        given.at().unwrap().to_owned(),
    )
}

async fn titles(app: &TestApp, token: &str, at: &str) -> (i64, Vec<String>) {
    let page = app.leads(token, json!({ "at": at, "first": 50 })).await;
    let mut titles: Vec<String> = page.titles().into_iter().map(str::to_owned).collect();
    titles.sort();
    (page.total_count, titles)
}

async fn each_role_sees_its_scope_in_every_query(backend: Backend) {
    let app = spawn_app_on(backend).await;
    let ([a, b, c, d], position) = four_leads(&app).await;
    let at = Some(position.as_str());
    let everyone = [
        "Ivan's chairs",
        "Maria's pumps",
        "Nobody's racks",
        "Racks for Ivan",
    ];

    let cases = [
        ("ivan.manager", vec!["Ivan's chairs", "Racks for Ivan"]),
        ("maria.manager", vec!["Maria's pumps"]),
        ("olga.supervisor", everyone.to_vec()),
        ("admin", everyone.to_vec()),
    ];
    for (user, expected) in cases {
        let token = app.token(user);
        let n = expected.len() as i64;
        let (total, seen) = titles(&app, &token, &position).await;
        assert_eq!(
            (total, seen.iter().map(String::as_str).collect::<Vec<_>>()),
            (n, expected.clone()),
            "{user}'s table"
        );
        let board = app.board(&token, at).await;
        assert_eq!(board.total_count, n, "{user}'s board");
        assert_eq!(board.count("QUALIFICATION"), n, "{user}'s column");
        let by_stage = app.report(&token, "BY_STAGE", None, at).await;
        assert_eq!(
            counts(&by_stage).iter().map(|(_, c)| c).sum::<i64>(),
            n,
            "{user}'s report"
        );
        for (id, title) in [
            (&a, "Ivan's chairs"),
            (&b, "Maria's pumps"),
            (&c, "Nobody's racks"),
            (&d, "Racks for Ivan"),
        ] {
            let visible = expected.contains(&title);
            let card = app.lead(&token, id, at).await;
            assert_eq!(card.is_some(), visible, "{user} and the card of {title}");
            let history = app.history(&token, id, at).await;
            assert_eq!(
                history.total_count > 0,
                visible,
                "{user} and the history of {title}"
            );
        }
    }
    // The budget sums cover the scope too: ivan's is the racks' 2000, not the 3000 of both.
    let ivan = app.token("ivan.manager");
    assert_eq!(app.board(&ivan, at).await.total_budget.amount, "2000.00");
    let olga = app.token("olga.supervisor");
    assert_eq!(app.board(&olga, at).await.total_budget.amount, "3000.00");
    let managers = app.report(&ivan, "BY_MANAGER", None, at).await;
    assert_eq!(counts(&managers), [("ivan.manager", 2)]);
}

async fn a_command_on_a_lead_out_of_scope_is_not_found_and_changes_nothing(backend: Backend) {
    let app = spawn_app_on(backend).await;
    let ([_, b, c, _], _) = four_leads(&app).await;
    let ivan = app.token("ivan.manager");
    for lead in [&b, &c] {
        for (mutation, vars) in [
            (ops::QUALIFY, json!({ "lead": lead })),
            (ops::DISQUALIFY, json!({ "lead": lead, "reason": "spam" })),
            (
                ops::ASSIGN,
                json!({ "lead": lead, "to": app.user_id("ivan.manager") }),
            ),
            (
                ops::JUMP,
                json!({ "lead": lead, "stage": "handoff", "reason": "Mine" }),
            ),
        ] {
            let head = app.head().await;
            let failure = app
                .command(&ivan, mutation, vars)
                .await
                .expect_err("refused");
            assert_eq!(failure.code, "NOT_FOUND", "{failure:?}");
            assert!(
                failure.message.ends_with("a lead that is not registered"),
                "{failure:?}"
            );
            assert_eq!(app.head().await, head, "nothing was appended");
        }
    }
    // Exactly what a lead that does not exist answers.
    let unknown = app
        .command(
            &ivan,
            ops::QUALIFY,
            json!({ "lead": "0193a5b0-0000-7000-8000-000000000000" }),
        )
        .await
        .expect_err("refused");
    let hidden = app
        .command(&ivan, ops::QUALIFY, json!({ "lead": b }))
        .await
        .expect_err("refused");
    assert_eq!(
        (unknown.code, unknown.message),
        (hidden.code, hidden.message)
    );
    // The supervisor may.
    let olga = app.token("olga.supervisor");
    app.must(&olga, ops::QUALIFY, json!({ "lead": b })).await;

    // Someone else's idempotency key replays nothing of theirs.
    let maria = app.token("maria.manager");
    let register = |title: &str| json!({ "input": manual_lead(title), "key": "form-42" });
    app.must(&maria, ops::REGISTER, register("Maria's kettles"))
        .await;
    let head = app.head().await;
    let failure = app
        .command(&ivan, ops::REGISTER, register("Ivan's kettles"))
        .await
        .expect_err("refused");
    assert_eq!(failure.code, "NOT_FOUND", "{failure:?}");
    assert_eq!(app.head().await, head);
}

async fn a_reassignment_moves_a_lead_between_scopes_at_one_position(backend: Backend) {
    let app = spawn_app_on(backend).await;
    let ([_, _, _, d], _) = four_leads(&app).await;
    let (ivan, maria, olga) = (
        app.token("ivan.manager"),
        app.token("maria.manager"),
        app.token("olga.supervisor"),
    );
    let moved = app
        .must(
            &olga,
            ops::ASSIGN,
            json!({ "lead": d, "to": app.user_id("maria.manager") }),
        )
        .await;
    let at = moved.at();
    assert!(
        app.lead(&ivan, &d, at).await.is_none(),
        "out of ivan's scope"
    );
    assert!(app.lead(&maria, &d, at).await.is_some(), "in maria's");
    assert_eq!(app.board(&ivan, at).await.total_count, 1);
    assert_eq!(app.board(&maria, at).await.total_count, 2);
    assert_eq!(titles(&app, &maria, at.unwrap()).await.0, 2);
    let failure = app
        .command(&ivan, ops::QUALIFY, json!({ "lead": d }))
        .await
        .expect_err("refused");
    assert_eq!(failure.code, "NOT_FOUND");
    app.must(&maria, ops::QUALIFY, json!({ "lead": d })).await;
}

async fn subscriptions_cover_the_scope_only(backend: Backend) {
    let app = spawn_app_on(backend).await;
    let ([a, b, _, _], at) = four_leads(&app).await;
    let ivan = app.token("ivan.manager");
    // Subscriptions take no consistency position: start once the read models are there.
    assert_eq!(app.board(&ivan, Some(&at)).await.total_count, 2);
    let mut ws = app
        .subscriptions(Some(&ivan))
        .await
        .expect("connection_ack");
    ws.subscribe(
        "board",
        "subscription { boardChanged { totalCount } }",
        json!({}),
    )
    .await;
    let board = ws.next_payload("board").await;
    assert_eq!(board["data"]["boardChanged"]["totalCount"], 2, "{board}");

    let card = "subscription($id: ID!) { leadChanged(id: $id) { id title } }";
    ws.subscribe("mine", card, json!({ "id": a })).await;
    let mine = ws.next_payload("mine").await;
    assert_eq!(mine["data"]["leadChanged"]["title"], "Ivan's chairs");
    let mut theirs = app
        .subscriptions(Some(&ivan))
        .await
        .expect("connection_ack");
    theirs.subscribe("theirs", card, json!({ "id": b })).await;
    // Maria's lead changes; ivan's subscription to it hears nothing.
    let maria = app.token("maria.manager");
    app.must(&maria, ops::QUALIFY, json!({ "lead": b })).await;
    let heard = tokio::time::timeout(Duration::from_millis(1500), theirs.next_message()).await;
    assert!(heard.is_err(), "ivan heard of maria's lead: {heard:?}");
}

on_both_backends!(
    each_role_sees_its_scope_in_every_query,
    a_command_on_a_lead_out_of_scope_is_not_found_and_changes_nothing,
    a_reassignment_moves_a_lead_between_scopes_at_one_position,
    subscriptions_cover_the_scope_only,
);
