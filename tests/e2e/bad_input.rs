//! Bad input over HTTP: a body that is not JSON or not a GraphQL request, unknown enum
//! values, invalid phones, e-mails and amounts, a query nested past the depth limit, one past
//! the complexity limit, and a body past 256 KiB. Each gets a clear error with a code (or HTTP
//! 413 for the body) and changes nothing: the event log's head and the board stay as they were.

use serde_json::{json, Value};

use leadflow_testkit::api::{ops, ApiFailure};
use leadflow_testkit::{spawn_app_on, Backend, TestApp};

use crate::{manual_lead, web_form_lead};

/// The log's head and the board's total read at that head, to compare after a refused request.
async fn snapshot(app: &TestApp, token: &str) -> (u64, i64) {
    let head = app.head().await;
    let board = app.board(token, Some(&head.to_string())).await;
    (head, board.total_count)
}

fn failure(answer: &Value) -> ApiFailure {
    ApiFailure::of(answer).unwrap_or_else(|| panic!("expected an error, got {answer:#}"))
}

async fn a_body_that_is_not_a_graphql_request_is_a_clear_400(backend: Backend) {
    let app = spawn_app_on(backend).await;
    let olga = app.token("olga.supervisor");
    let before = snapshot(&app, &olga).await;
    for (body, content_type) in [
        (
            &b"{\"query\": \"mutation { registerLead("[..],
            "application/json",
        ),
        (b"{\"query\": 42}", "application/json"),
        (b"[1, 2, 3]", "application/json"),
        (
            b"query=%7B%20me%20%7B%20name%20%7D%20%7D",
            "application/x-www-form-urlencoded",
        ),
        (b"", "application/json"),
    ] {
        let raw = app.post_raw(Some(&olga), body, content_type).await;
        assert_eq!(raw.status, 400, "{raw:?}");
        let f = failure(&raw.json().expect("a JSON error"));
        assert_eq!(f.code, "BAD_USER_INPUT");
        assert!(
            f.message
                .starts_with("the request body is not a GraphQL request"),
            "{}",
            f.message
        );
    }
    assert_eq!(snapshot(&app, &olga).await, before);
}

async fn an_unknown_enum_value_is_bad_user_input_and_changes_nothing(backend: Backend) {
    let app = spawn_app_on(backend).await;
    let olga = app.token("olga.supervisor");
    let lead = app
        .register_lead(&olga, web_form_lead("Warehouse racks", "900000"))
        .await;
    let qualified = app
        .must(&olga, ops::QUALIFY, json!({ "lead": lead.id() }))
        .await;
    let before = snapshot(&app, &olga).await;

    // In variables, ...
    let maybe = json!({ "lead": lead.id(), "input": { "decision": "MAYBE_LATER" } });
    let f = app
        .command(&olga, ops::DISTRIBUTE, maybe)
        .await
        .expect_err("refused");
    assert_eq!(f.code, "BAD_USER_INPUT");
    assert!(f.message.contains("MAYBE_LATER"), "{}", f.message);
    // ... in the query text, ...
    let answer = app
        .graphql(
            Some(&olga),
            "{ report(kind: BY_COLOUR) { count } }",
            json!({}),
        )
        .await;
    assert_eq!(failure(&answer).code, "BAD_USER_INPUT");
    // ... and inside a filter.
    let answer = app
        .graphql(
            Some(&olga),
            "query($f: LeadFilterInput) { leads(filter: $f) { totalCount } }",
            json!({ "f": { "stage": { "eq": "LIMBO" } } }),
        )
        .await;
    assert_eq!(failure(&answer).code, "BAD_USER_INPUT");

    assert_eq!(snapshot(&app, &olga).await, before);
    let card = app
        .lead(&olga, lead.id(), qualified.at())
        .await
        .expect("the card");
    assert_eq!(card.stage, "DISTRIBUTION");
}

async fn invalid_phones_emails_and_amounts_are_refused_before_anything_is_recorded(
    backend: Backend,
) {
    let app = spawn_app_on(backend).await;
    let olga = app.token("olga.supervisor");
    let cases = [
        ("phones", json!(["12345"]), "invalid phone number \"12345\""),
        ("phones", json!(["call me maybe"]), "invalid phone number"),
        (
            "emails",
            json!(["ivan@"]),
            "invalid e-mail address \"ivan@\"",
        ),
        (
            "emails",
            json!(["Ivan <ivan@example.com>"]),
            "invalid e-mail address",
        ),
        ("budget", json!({ "amount": "12.345" }), "invalid amount"),
        ("budget", json!({ "amount": "-5" }), "invalid amount"),
        ("budget", json!({ "amount": "1e6" }), "invalid amount"),
        ("budget", json!({ "amount": "lots" }), "invalid amount"),
        (
            "budget",
            json!({ "amount": "10", "currency": "rub" }),
            "invalid currency \"rub\"",
        ),
        (
            "budget",
            json!({ "amount": "10", "currency": "USD" }),
            "base currency RUB",
        ),
        (
            "title",
            json!("x".repeat(1000)),
            "title is 1000 characters long",
        ),
    ];
    for (field, value, message) in cases {
        let mut input = web_form_lead("Warehouse racks", "900000");
        input[field] = value.clone();
        let f = app
            .command(&olga, ops::REGISTER, json!({ "input": input }))
            .await
            .expect_err("refused");
        assert_eq!(f.code, "BAD_USER_INPUT", "{field} = {value}");
        assert!(
            f.message.contains(message),
            "{field} = {value}: {}",
            f.message
        );
    }
    assert_eq!(
        snapshot(&app, &olga).await,
        (app.start, 0),
        "no lead was registered"
    );

    // The same values on an existing lead leave its card as it was.
    let lead = app
        .register_lead(&olga, web_form_lead("Warehouse racks", "900000"))
        .await;
    let before = snapshot(&app, &olga).await;
    for input in [
        json!({ "phones": ["+7 000"] }),
        json!({ "emails": ["nobody@localhost"] }),
        json!({ "budget": { "amount": "9.999" } }),
    ] {
        let vars = json!({ "lead": lead.id(), "input": input });
        let f = app
            .command(&olga, ops::UPDATE_DETAILS, vars)
            .await
            .expect_err("refused");
        assert_eq!(f.code, "BAD_USER_INPUT", "{input}");
    }
    assert_eq!(snapshot(&app, &olga).await, before);
    let card = app
        .lead(&olga, lead.id(), lead.at())
        .await
        .expect("the card");
    assert_eq!(card.budget.map(|b| b.amount), Some("900000.00".to_owned()));
}

/// A cursor from a page with another `orderBy` used to be ignored without a word: the answer
/// was the first page again, with `hasPreviousPage: true`, so a client that changed the sort
/// between pages could page forever.
async fn a_cursor_from_another_order_is_bad_user_input_not_the_first_page_again(backend: Backend) {
    let app = spawn_app_on(backend).await;
    let ivan = app.token("ivan.manager");
    let mut at = None;
    for title in ["Armchairs", "Bookcases", "Cabinets"] {
        at = app.register_lead(&ivan, manual_lead(title)).await.position;
    }
    let by_title =
        json!({ "orderBy": [{ "field": "TITLE" }, { "field": "REGION" }], "first": 1, "at": at });
    let page = app.leads(&ivan, by_title).await;
    assert_eq!(page.titles(), ["Armchairs"]);
    let cursor = page.page_info.end_cursor.expect("a cursor");

    let query = "query($after: String) { leads(first: 1, after: $after) { nodes { title } } }";
    let answer = app
        .graphql(Some(&ivan), query, json!({ "after": cursor }))
        .await;
    let f = failure(&answer);
    assert_eq!(f.code, "BAD_USER_INPUT", "{answer}");
    assert_eq!(
        f.message,
        "the cursor belongs to a page with another orderBy"
    );
    let query = "query($after: String) { board { columns { cards(first: 1, after: $after) { totalCount } } } }";
    let answer = app
        .graphql(Some(&ivan), query, json!({ "after": cursor }))
        .await;
    assert_eq!(failure(&answer).code, "BAD_USER_INPUT", "{answer}");
}

async fn a_query_nested_past_the_depth_limit_is_refused(backend: Backend) {
    let app = spawn_app_on(backend).await;
    let olga = app.token("olga.supervisor");
    // The schema has no cycles, so only introspection nests this deep. The standard
    // introspection queries reach 15 levels (nine `ofType`); one more is refused.
    let nested = |levels: usize| {
        let mut inner = "name".to_owned();
        for _ in 0..levels - 6 {
            inner = format!("ofType {{ {inner} }}");
        }
        format!("{{ __schema {{ types {{ fields {{ args {{ type {{ {inner} }} }} }} }} }} }}")
    };
    let answer = app.graphql(Some(&olga), &nested(16), json!({})).await;
    let f = failure(&answer);
    assert_eq!(f.code, "BAD_USER_INPUT");
    assert_eq!(f.message, "Query is nested too deep.");
    assert!(answer.get("data").is_none_or(Value::is_null), "{answer}");
    let answer = app.graphql(None, &nested(16), json!({})).await;
    assert_eq!(failure(&answer).message, "Query is nested too deep.");
    // Fifteen levels are answered, with a token or without.
    for token in [Some(olga.as_str()), None] {
        let answer = app.graphql(token, &nested(15), json!({})).await;
        assert!(ApiFailure::of(&answer).is_none(), "{answer:#}");
    }
}

async fn introspection_does_not_lift_the_data_limits(backend: Backend) {
    let app = spawn_app_on(backend).await;
    let olga = app.token("olga.supervisor");
    let row = "{ totalCount pageInfo { endCursor hasNextPage } nodes { id title stage maturity
        budget { amount currency } responsible { id name role department active } source channel
        region quality advertising contactName phone email accountName createdAt updatedAt } }";
    let query = format!(
        "{{ __schema {{ types {{ name }} }} {} }}",
        aliased(100, "leads(first: 500)", row)
    );
    let answer = app.graphql(Some(&olga), &query, json!({})).await;
    assert_eq!(failure(&answer).message, "Query is too complex.");
    assert!(answer.get("data").is_none_or(Value::is_null), "{answer}");
}

/// `n` aliases of `field`, each selecting `selection`.
fn aliased(n: usize, field: &str, selection: &str) -> String {
    (0..n)
        .map(|i| format!("a{i}: {field} {selection}"))
        .collect::<Vec<_>>()
        .join("\n")
}

async fn a_query_past_the_complexity_limit_is_refused_and_registers_nothing(backend: Backend) {
    let app = spawn_app_on(backend).await;
    let olga = app.token("olga.supervisor");
    let card = "{ position replayed lead { id stage stageName maturity title budget { amount currency }
        responsible { id name role department active } createdBy { id name role department active }
        contactName phones emails accountName region source channel quality advertising comment
        openTasks { id kind dueAt assignee { name } } allowedCommands jumps createdAt updatedAt } }";

    // 60 registrations with a 45-field card each: about 2700 fields, past the limit of 2000.
    let mutation = format!(
        "mutation {{ {} }}",
        aliased(60, "registerLead(input: { title: \"Flood\" })", card)
    );
    let answer = app.graphql(Some(&olga), &mutation, json!({})).await;
    let f = failure(&answer);
    assert_eq!(f.code, "BAD_USER_INPUT");
    assert_eq!(f.message, "Query is too complex.");
    assert_eq!(
        snapshot(&app, &olga).await,
        (app.start, 0),
        "not one of them ran"
    );

    // The same shape as a query: big pages of the table, aliased.
    let row = "{ totalCount pageInfo { endCursor hasNextPage } nodes { id title stage maturity
        budget { amount currency } responsible { id name role department active } source channel
        region quality advertising contactName phone email accountName createdAt updatedAt } }";
    let query = format!("{{ {} }}", aliased(100, "leads(first: 500)", row));
    let answer = app.graphql(Some(&olga), &query, json!({})).await;
    assert_eq!(failure(&answer).message, "Query is too complex.");

    // A few registrations in one request stay well within it.
    let mutation = format!(
        "mutation {{ {} }}",
        aliased(3, "registerLead(input: { title: \"Batch\" })", card)
    );
    let answer = app.graphql(Some(&olga), &mutation, json!({})).await;
    assert!(ApiFailure::of(&answer).is_none(), "{answer:#}");
    assert_eq!(snapshot(&app, &olga).await.1, 3);
}

async fn a_body_over_256_kib_is_413_and_one_under_it_is_served(backend: Backend) {
    let app = spawn_app_on(backend).await;
    let olga = app.token("olga.supervisor");
    let huge = json!({
        "query": "mutation($c: String) { registerLead(input: { title: \"Big\", comment: $c }) { position } }",
        "variables": { "c": "x".repeat(300 * 1024) },
    });
    let raw = app
        .post_raw(Some(&olga), huge.to_string(), "application/json")
        .await;
    assert_eq!(raw.status, 413, "{}", raw.body);
    assert_eq!(snapshot(&app, &olga).await, (app.start, 0));

    // 200 KiB of padding around a small query is still a request.
    let padded = json!({ "query": format!("{{ me {{ name }} }}{}", " ".repeat(200 * 1024)) });
    let raw = app
        .post_raw(Some(&olga), padded.to_string(), "application/json")
        .await;
    assert_eq!(raw.status, 200, "{}", raw.body);
    assert_eq!(
        raw.json().expect("JSON")["data"]["me"]["name"],
        "olga.supervisor"
    );
}

on_both_backends!(
    a_body_that_is_not_a_graphql_request_is_a_clear_400,
    an_unknown_enum_value_is_bad_user_input_and_changes_nothing,
    invalid_phones_emails_and_amounts_are_refused_before_anything_is_recorded,
    a_cursor_from_another_order_is_bad_user_input_not_the_first_page_again,
    a_query_nested_past_the_depth_limit_is_refused,
    introspection_does_not_lift_the_data_limits,
    a_query_past_the_complexity_limit_is_refused_and_registers_nothing,
    a_body_over_256_kib_is_413_and_one_under_it_is_served,
);
