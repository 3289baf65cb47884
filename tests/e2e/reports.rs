//! The reports over HTTP (issue 11, SPEC 5): the conversion funnel live and as of a time (the
//! audit at now equals the live one), the board and the standard reports as of now equal to
//! the live ones and empty before anything happened, time in stage, SLA breaches against the
//! catalog's thresholds, manager activity; each scoped by role; bad filters refused.

use chrono::{Duration, Utc};
use serde_json::{json, Value};

use leadflow_testkit::api::ApiFailure;
use leadflow_testkit::{spawn_app_on, Backend, TestApp};

use crate::audit::four_ways;

const CONVERSION: &str = "query($asOf: DateTime, $at: Position, $filter: ReportFilterInput) {
    conversionFunnel(asOf: $asOf, consistency: $at, filter: $filter) {
        asOf position
        funnel { registered excluded openInQualification
            steps { step name reached byJump open stepConversionPermille overallConversionPermille }
            losses { stage reason leads } } } }";

const AUDIT: &str = "query($input: FunnelAuditInput!, $at: Position) {
    funnelAudit(input: $input, consistency: $at) {
        position
        groups { registered excluded openInQualification
            steps { step name reached byJump open stepConversionPermille overallConversionPermille }
            losses { stage reason leads } } } }";

const BOARD: &str = "query($asOf: DateTime, $at: Position) {
    board(asOf: $asOf, consistency: $at) {
        funnel totalCount totalBudget { amount currency }
        columns { stage name count budget { amount currency } } } }";

const REPORT: &str = "query($asOf: DateTime, $at: Position, $kind: ReportKind!) {
    report(kind: $kind, asOf: $asOf, consistency: $at) { key label count budget { amount } } }";

const LEADS: &str = "query($asOf: DateTime, $at: Position, $filter: LeadFilterInput,
        $orderBy: [LeadOrderBy!]! = []) {
    leads(asOf: $asOf, consistency: $at, filter: $filter, orderBy: $orderBy, first: 10) {
        totalCount edges { cursor node { id title stage responsible { id } budget { amount } } } } }";

const TIME: &str = "query($asOf: DateTime, $at: Position) {
    timeInStage(asOf: $asOf, consistency: $at) {
        position rows { stage stageName allManagers managerId managerName stays
                        medianSeconds p90Seconds open } } }";

const SLA: &str = "query($asOf: DateTime, $at: Position) {
    slaBreaches(asOf: $asOf, consistency: $at) {
        position rows { funnel stage stageName thresholdHours stays breached open
                        openBreached leadsOver } } }";

const ACTIVITY: &str = "query($at: Position, $from: DateTime, $to: DateTime) {
    managerActivity(consistency: $at, from: $from, to: $to) {
        position rows { day userId userName command count } } }";

async fn ask(app: &TestApp, token: &str, query: &str, variables: Value) -> Value {
    let answer = app.graphql(Some(token), query, variables).await;
    if let Some(f) = ApiFailure::of(&answer) {
        panic!("{query}: {f:#?}");
    }
    answer["data"].clone()
}

/// The stage's row over every manager.
fn stage_row<'a>(rows: &'a Value, stage: &str) -> &'a Value {
    rows.as_array()
        .unwrap()
        .iter()
        .find(|r| r["stage"] == stage && r["allManagers"] == true)
        .unwrap_or_else(|| panic!("{stage} in {rows:#}"))
}

async fn the_reports_are_exact_live_and_as_of_a_time_per_role(backend: Backend) {
    let app = spawn_app_on(backend).await;
    let ([_a, _b, c, d], _lost, at) = four_ways(&app).await;
    let (admin, ivan) = (app.token("admin"), app.token("ivan.manager"));
    let now = (Utc::now() + Duration::minutes(1)).to_rfc3339();

    // The conversion funnel, live and as the audit at now: the same counts.
    for (token, registered) in [(&admin, 4), (&ivan, 2)] {
        let live =
            ask(&app, token, CONVERSION, json!({ "at": at })).await["conversionFunnel"].clone();
        assert_eq!(live["asOf"], Value::Null);
        assert_eq!(live["funnel"]["registered"], registered, "{live:#}");
        let then = ask(&app, token, CONVERSION, json!({ "at": at, "asOf": now })).await;
        assert_eq!(then["conversionFunnel"]["funnel"], live["funnel"]);
        let audit = ask(
            &app,
            token,
            AUDIT,
            json!({ "at": at, "input": { "from": "2000-01-01T00:00:00Z",
                    "to": "2100-01-01T00:00:00Z", "asOf": now } }),
        )
        .await;
        assert_eq!(audit["funnelAudit"]["groups"][0], live["funnel"]);
        assert_eq!(audit["funnelAudit"]["position"], live["position"]);
    }

    // The board and the standard reports as of now are the live ones; before anything
    // happened, empty.
    for token in [&admin, &ivan] {
        let board = ask(&app, token, BOARD, json!({ "at": at })).await;
        let as_of = ask(&app, token, BOARD, json!({ "at": at, "asOf": now })).await;
        assert_eq!(as_of, board);
        for kind in ["BY_STAGE", "BY_MANAGER", "DISQUALIFICATION_REASONS"] {
            let live = ask(&app, token, REPORT, json!({ "at": at, "kind": kind })).await;
            let then = ask(
                &app,
                token,
                REPORT,
                json!({ "at": at, "kind": kind, "asOf": now }),
            )
            .await;
            assert_eq!(then, live, "{kind}");
        }
    }
    let before = ask(
        &app,
        &admin,
        BOARD,
        json!({ "at": at, "asOf": "2000-01-01T00:00:00Z" }),
    )
    .await;
    assert_eq!(before["board"]["totalCount"], 0);

    // The registry table as of now is the live one, under filters and sorts; before anything
    // happened, empty; a text search works on it too.
    for token in [&admin, &ivan] {
        for (filter, order) in [
            (json!({}), json!([])),
            (
                json!({ "stage": { "in": ["HANDOFF", "DISTRIBUTION"] } }),
                json!([{ "field": "BUDGET", "direction": "DESC" }]),
            ),
            (json!({ "text": "Chairs" }), json!([])),
        ] {
            let vars = |as_of: Option<&str>| json!({ "at": at, "filter": filter, "orderBy": order, "asOf": as_of });
            let live = ask(&app, token, LEADS, vars(None)).await;
            let then = ask(&app, token, LEADS, vars(Some(&now))).await;
            assert_eq!(then, live, "{filter}");
        }
    }
    let empty = ask(
        &app,
        &admin,
        LEADS,
        json!({ "at": at, "asOf": "2000-01-01T00:00:00Z" }),
    )
    .await;
    assert_eq!(empty["leads"]["totalCount"], 0);

    // Time in stage: four stays in Qualification ended; c waits in Distribution, a and d in
    // Handoff. ivan sees his two leads only.
    let time = ask(&app, &admin, TIME, json!({ "at": at })).await["timeInStage"]["rows"].clone();
    let q = stage_row(&time, "QUALIFICATION");
    assert_eq!(
        (q["stays"].as_u64(), q["open"].as_u64()),
        (Some(4), Some(0)),
        "{time:#}"
    );
    assert!(q["medianSeconds"].as_i64().is_some());
    assert_eq!(stage_row(&time, "DISTRIBUTION")["open"], 1);
    assert_eq!(stage_row(&time, "HANDOFF")["open"], 2);
    let mine = ask(&app, &ivan, TIME, json!({ "at": at })).await["timeInStage"]["rows"].clone();
    assert_eq!(stage_row(&mine, "QUALIFICATION")["stays"], 2, "{mine:#}");
    let ivan_id = app.user_id("ivan.manager");
    assert!(
        mine.as_array()
            .unwrap()
            .iter()
            .all(|r| r["allManagers"] == true || r["managerId"] == ivan_id.as_str()),
        "{mine:#}"
    );

    // SLA: the catalog's thresholds; nobody is over them now, and five hours on, c has waited
    // in Distribution past its four.
    let sla = ask(&app, &admin, SLA, json!({ "at": at })).await["slaBreaches"]["rows"].clone();
    let distribution = sla
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["stage"] == "DISTRIBUTION")
        .unwrap()
        .clone();
    assert_eq!(distribution["thresholdHours"], 4, "{sla:#}");
    assert_eq!(
        (
            distribution["open"].as_u64(),
            distribution["openBreached"].as_u64()
        ),
        (Some(1), Some(0))
    );
    let later = (Utc::now() + Duration::hours(5)).to_rfc3339();
    let sla = ask(&app, &admin, SLA, json!({ "at": at, "asOf": later })).await["slaBreaches"]
        ["rows"]
        .clone();
    let distribution = sla
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["stage"] == "DISTRIBUTION")
        .unwrap()
        .clone();
    assert_eq!(distribution["openBreached"], 1);
    assert_eq!(distribution["leadsOver"], json!([c]));
    // ivan's scope does not hold c.
    let his = ask(&app, &ivan, SLA, json!({ "at": at, "asOf": later })).await["slaBreaches"]
        ["rows"]
        .clone();
    assert!(
        his.as_array()
            .unwrap()
            .iter()
            .all(|r| r["openBreached"] == 0),
        "{his:#}"
    );

    // Manager activity: nine commands in all, ivan's two his own.
    let all =
        ask(&app, &admin, ACTIVITY, json!({ "at": at })).await["managerActivity"]["rows"].clone();
    let total: u64 = all
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["count"].as_u64().unwrap())
        .sum();
    assert_eq!(total, 9, "{all:#}");
    assert!(
        all.as_array()
            .unwrap()
            .iter()
            .any(|r| r["command"] == "JumpToStage"),
        "{all:#}"
    );
    let his =
        ask(&app, &ivan, ACTIVITY, json!({ "at": at })).await["managerActivity"]["rows"].clone();
    let his: Vec<(String, u64)> = his
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["command"].as_str().unwrap().to_owned(),
                r["count"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(his.iter().map(|r| r.1).sum::<u64>(), 2, "{his:?}");
    let none = ask(
        &app,
        &admin,
        ACTIVITY,
        json!({ "at": at, "to": "2000-01-01T00:00:00Z" }),
    )
    .await;
    assert_eq!(none["managerActivity"]["rows"], json!([]));

    // d goes from ivan to maria. As of before, ivan's board counts it (the board he saw), but
    // his table no longer lists it: its contact is today's, and no longer his to see.
    let before_move = Utc::now().to_rfc3339();
    let olga = app.token("olga.supervisor");
    let moved = app
        .must(
            &olga,
            leadflow_testkit::api::ops::ASSIGN,
            json!({ "lead": d, "to": app.user_id("maria.manager") }),
        )
        .await;
    let at = moved.at().unwrap().to_owned();
    let then = ask(&app, &ivan, BOARD, json!({ "at": at, "asOf": before_move })).await;
    assert_eq!(then["board"]["totalCount"], 2, "{then:#}");
    let table = ask(&app, &ivan, LEADS, json!({ "at": at, "asOf": before_move })).await;
    let ids: Vec<&str> = table["leads"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["node"]["id"].as_str().unwrap())
        .collect();
    assert!(!ids.contains(&d.as_str()), "{table:#}");
    assert_eq!(ids.len(), 1, "{table:#}");
}

async fn bad_report_filters_are_refused(backend: Backend) {
    let app = spawn_app_on(backend).await;
    let admin = app.token("admin");
    for (what, query, variables, code) in [
        (
            "registeredFrom after registeredTo",
            CONVERSION,
            json!({ "filter": { "registeredFrom": "2026-03-01T00:00:00Z",
                                "registeredTo": "2026-02-01T00:00:00Z" } }),
            "BAD_USER_INPUT",
        ),
        (
            "an unknown funnel",
            CONVERSION,
            json!({ "filter": { "funnel": "nowhere" } }),
            "NOT_FOUND",
        ),
        (
            "from after to",
            ACTIVITY,
            json!({ "from": "2026-03-01T00:00:00Z", "to": "2026-02-01T00:00:00Z" }),
            "BAD_USER_INPUT",
        ),
        (
            "not a time",
            TIME,
            json!({ "asOf": "yesterday" }),
            "BAD_USER_INPUT",
        ),
    ] {
        let answer = app.graphql(Some(&admin), query, variables).await;
        let f = ApiFailure::of(&answer).unwrap_or_else(|| panic!("{what}: {answer:#}"));
        assert_eq!(f.code, code, "{what}: {f:#?}");
    }
    let anonymous = app.graphql(None, SLA, json!({})).await;
    assert_eq!(ApiFailure::of(&anonymous).unwrap().code, "UNAUTHENTICATED");
}

on_both_backends!(
    the_reports_are_exact_live_and_as_of_a_time_per_role,
    bad_report_filters_are_refused,
);
