//! The funnel audit over HTTP (issue 11): `funnelAudit` per role (a manager's audit covers
//! their own leads, as every other query does), grouped by manager with names, reruns byte for
//! byte the same, `asOfPosition` answering what the log held then, the drill-down listing the
//! leads behind a count, and bad input refused with `BAD_USER_INPUT`.

use serde_json::{json, Value};

use leadflow_testkit::api::{ops, ApiFailure};
use leadflow_testkit::{spawn_app_on, Backend, TestApp};

use crate::{manual_lead, web_form_lead};

const AUDIT: &str = "query($input: FunnelAuditInput!, $at: Position) {
    funnelAudit(input: $input, consistency: $at) {
        definition definitionHash position
        groups { key label registered excluded openInQualification
            steps { step name reached byJump open stepConversionPermille
                    overallConversionPermille medianSeconds p90Seconds }
            losses { stage reason reasonName leads } } } }";

const LEADS: &str = "query($input: FunnelAuditInput!, $group: String!, $bucket: AuditBucket!,
        $first: Int, $after: String, $at: Position) {
    funnelAuditLeads(input: $input, group: $group, bucket: $bucket, first: $first,
                     after: $after, consistency: $at) {
        leadIds totalCount hasNextPage endCursor position } }";

fn input(extra: Value) -> Value {
    let mut input = json!({
        "from": "2000-01-01T00:00:00Z",
        "to": "2100-01-01T00:00:00Z",
        "asOf": "2099-01-01T00:00:00Z",
    });
    input
        .as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    input
}

async fn audit(app: &TestApp, token: &str, input: Value, at: &str) -> Value {
    let answer = app
        .graphql(Some(token), AUDIT, json!({ "input": input, "at": at }))
        .await;
    if let Some(f) = ApiFailure::of(&answer) {
        panic!("funnelAudit failed: {f:#?}");
    }
    answer["data"]["funnelAudit"].clone()
}

fn reached(group: &Value) -> Vec<u64> {
    group["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["reached"].as_u64().unwrap())
        .collect()
}

/// ivan's lead qualified; maria's disqualified; an unassigned one qualified; one a supervisor
/// gave to ivan, jumped to Handoff. Returns the ids, the position after maria's loss and the
/// last one.
pub(crate) async fn four_ways(app: &TestApp) -> ([String; 4], String, String) {
    let (ivan, maria, olga) = (
        app.token("ivan.manager"),
        app.token("maria.manager"),
        app.token("olga.supervisor"),
    );
    let a = app.register_lead(&ivan, manual_lead("Chairs")).await;
    app.must(&ivan, ops::QUALIFY, json!({ "lead": a.id() }))
        .await;
    let b = app.register_lead(&maria, manual_lead("Pumps")).await;
    let lost = app
        .must(
            &maria,
            ops::DISQUALIFY,
            json!({ "lead": b.id(), "reason": "no-budget" }),
        )
        .await;
    let c = app
        .register_lead(&olga, web_form_lead("Racks", "1000"))
        .await;
    app.must(&olga, ops::QUALIFY, json!({ "lead": c.id() }))
        .await;
    let d = app
        .register_lead(&olga, web_form_lead("Boilers", "2000"))
        .await;
    app.must(
        &olga,
        ops::ASSIGN,
        json!({ "lead": d.id(), "to": app.user_id("ivan.manager") }),
    )
    .await;
    let last = app
        .must(
            &olga,
            ops::JUMP,
            json!({ "lead": d.id(), "stage": "handoff", "reason": "asked" }),
        )
        .await;
    (
        [a.id(), b.id(), c.id(), d.id()].map(str::to_owned),
        lost.at().unwrap().to_owned(),
        last.at().unwrap().to_owned(),
    )
}

async fn each_role_audits_its_own_scope_exactly(backend: Backend) {
    let app = spawn_app_on(backend).await;
    let ([a, b, _c, d], lost, at) = four_ways(&app).await;
    let admin = app.token("admin");
    let all = audit(&app, &admin, input(json!({})), &at).await;
    assert_eq!(all["position"], json!(at));
    let group = &all["groups"][0];
    assert_eq!(group["registered"], 4, "{all:#}");
    // Qualification done by a, c and d (d by its jump, which passes Distribution too).
    assert_eq!(reached(group)[..3], [3, 3, 2], "{all:#}");
    assert_eq!(group["steps"][2]["byJump"], 1);
    assert_eq!(group["steps"][0]["name"], "Qualification: done");
    assert_eq!(
        group["losses"],
        json!([{ "stage": "DISQUALIFIED", "reason": "no-budget",
                 "reasonName": group["losses"][0]["reasonName"], "leads": 1 }])
    );

    // The same question, byte for byte the same answer.
    let again = audit(&app, &admin, input(json!({})), &at).await;
    assert_eq!(again.to_string(), all.to_string());

    // Each role: its own leads only.
    for (user, registered) in [
        ("ivan.manager", 2),
        ("maria.manager", 1),
        ("olga.supervisor", 4),
    ] {
        let mine = audit(&app, &app.token(user), input(json!({})), &at).await;
        assert_eq!(
            mine["groups"][0]["registered"], registered,
            "{user}: {mine:#}"
        );
    }
    let ivan = app.token("ivan.manager");
    let page = app
        .graphql(
            Some(&ivan),
            LEADS,
            json!({ "input": input(json!({})), "group": "",
                    "bucket": { "kind": "REGISTERED" }, "at": at }),
        )
        .await;
    let mut expected = vec![a.clone(), d.clone()];
    expected.sort();
    assert_eq!(
        page["data"]["funnelAuditLeads"]["leadIds"],
        json!(expected),
        "{page:#}"
    );

    // Grouped by manager (as of now), with their names.
    let by_manager = audit(&app, &admin, input(json!({ "groupBy": "MANAGER" })), &at).await;
    let groups: Vec<(String, u64)> = by_manager["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| {
            (
                g["label"].as_str().unwrap().to_owned(),
                g["registered"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(groups.len(), 3, "ivan, maria and nobody: {by_manager:#}");
    assert!(groups.contains(&("none".to_owned(), 1)), "{groups:?}");

    // The drill-down behind the loss, a page of one at a time.
    let lost_leads = |after: Option<String>| {
        json!({ "input": input(json!({})), "group": "", "first": 1, "after": after, "at": at,
                "bucket": { "kind": "LOST", "stage": "DISQUALIFIED", "reason": "no-budget" } })
    };
    let first = app.graphql(Some(&admin), LEADS, lost_leads(None)).await;
    let first = &first["data"]["funnelAuditLeads"];
    assert_eq!(first["leadIds"], json!([b]));
    assert_eq!(
        (first["totalCount"].as_u64(), first["hasNextPage"].as_bool()),
        (Some(1), Some(false))
    );

    // As the log stood when b had just been lost: a and b.
    let then = audit(&app, &admin, input(json!({ "asOfPosition": lost })), &at).await;
    assert_eq!(then["position"], json!(lost));
    assert_eq!(then["groups"][0]["registered"], 2);
    assert_ne!(then["definitionHash"], all["definitionHash"]);
}

async fn bad_audit_input_is_refused_with_bad_user_input(backend: Backend) {
    let app = spawn_app_on(backend).await;
    let admin = app.token("admin");
    for (what, input) in [
        (
            "from after to",
            json!({ "from": "2026-03-01T00:00:00Z", "to": "2026-02-01T00:00:00Z" }),
        ),
        ("an unknown group", input(json!({ "groupBy": "PLANET" }))),
        (
            "a negative window",
            input(json!({ "windows": [{ "step": "HANDOFF", "days": -1 }] })),
        ),
        (
            "two windows for one step",
            input(json!({ "windows": [{ "step": "HANDOFF", "days": 1 },
                                      { "step": "HANDOFF", "days": 2 }] })),
        ),
        ("an unknown funnel", input(json!({ "funnel": "nowhere" }))),
    ] {
        let answer = app
            .graphql(Some(&admin), AUDIT, json!({ "input": input }))
            .await;
        let f = ApiFailure::of(&answer).unwrap_or_else(|| panic!("{what}: {answer:#}"));
        let code = if what == "an unknown funnel" {
            "NOT_FOUND"
        } else {
            "BAD_USER_INPUT"
        };
        assert_eq!(f.code, code, "{what}: {f:#?}");
    }
    let no_step = app
        .graphql(
            Some(&admin),
            LEADS,
            json!({ "input": input(json!({})), "group": "", "bucket": { "kind": "REACHED" } }),
        )
        .await;
    assert_eq!(ApiFailure::of(&no_step).unwrap().code, "BAD_USER_INPUT");
    let anonymous = app
        .graphql(None, AUDIT, json!({ "input": input(json!({})) }))
        .await;
    assert_eq!(ApiFailure::of(&anonymous).unwrap().code, "UNAUTHENTICATED");
}

on_both_backends!(
    each_role_audits_its_own_scope_exactly,
    bad_audit_input_is_refused_with_bad_user_input,
);
