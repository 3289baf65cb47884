//! Property (issue 20): for random interleavings of commands and erasures, no erased value is
//! readable through any GraphQL query of any role.
//!
//! Each case plays a random script against a fresh server: registrations by two managers,
//! detail updates, disqualifications and reopenings (each writing new, unique personal
//! values) and erasures of a lead's subject. A value is erased when its lead's subject was
//! erased after it was written; values written later belong to the successor subject and stay.
//! Then every role (admin, supervisors, both managers) runs every query that can show a
//! personal value: the registry (with and without a text search for each erased value), every
//! card, every history entry, the board's cards, every report, and for admins the subject
//! lookups and exports. No answer holds an erased value; each lead never erased still shows
//! its contact's name to the admin, so the queries do read what they should.

use std::collections::HashMap;
use std::time::Duration;

use proptest::prelude::*;
use serde_json::{json, Value};

use leadflow_testkit::{spawn_app, TestApp};

const MANAGERS: [&str; 2] = ["ivan.manager", "maria.manager"];
const ROLES: [&str; 5] = [
    "admin",
    "olga.supervisor",
    "sergey.supervisor",
    "ivan.manager",
    "maria.manager",
];

#[derive(Clone, Debug)]
enum Op {
    Register { by: usize },
    UpdateName { lead: usize },
    UpdatePhone { lead: usize },
    UpdateComment { lead: usize },
    Disqualify { lead: usize },
    Reopen { lead: usize },
    Erase { lead: usize },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0..MANAGERS.len()).prop_map(|by| Op::Register { by }),
        2 => any::<usize>().prop_map(|lead| Op::UpdateName { lead }),
        1 => any::<usize>().prop_map(|lead| Op::UpdatePhone { lead }),
        1 => any::<usize>().prop_map(|lead| Op::UpdateComment { lead }),
        1 => any::<usize>().prop_map(|lead| Op::Disqualify { lead }),
        1 => any::<usize>().prop_map(|lead| Op::Reopen { lead }),
        2 => any::<usize>().prop_map(|lead| Op::Erase { lead }),
    ]
}

/// A lead as the script knows it.
struct Played {
    id: String,
    by: &'static str,
    subject: String,
    /// Every personal value written to it, and whether its subject was erased after.
    values: Vec<(String, bool)>,
    /// Its contact's name now.
    name: String,
    erased: bool,
}

/// Unique values, none a piece of another (fixed widths, distinct prefixes).
struct Values(u32);

impl Values {
    fn next(&mut self) -> u32 {
        self.0 += 1;
        self.0
    }
    fn name(&mut self) -> String {
        format!("Qzname{:05}Vex", self.next())
    }
    fn phone(&mut self) -> String {
        format!("+7916{:07}", 3_000_000 + self.next())
    }
    fn email(&mut self) -> String {
        format!("qzmail{:05}@vex.example", self.next())
    }
    fn text(&mut self) -> String {
        format!("Qztext{:05}Vex", self.next())
    }
}

async fn must(app: &TestApp, token: &str, query: &str, variables: Value) -> Option<Value> {
    let answer = app.graphql(Some(token), query, variables).await;
    answer["errors"].is_null().then_some(answer)
}

async fn play(ops: Vec<Op>) {
    let app = spawn_app().await;
    let tokens: HashMap<&str, String> = ROLES.iter().map(|r| (*r, app.token(r))).collect();
    let admin = &tokens["admin"];
    let mut values = Values(0);
    let mut leads: Vec<Played> = Vec::new();
    for op in ops {
        let pick = |i: usize| (!leads.is_empty()).then(|| i % leads.len());
        match op {
            Op::Register { by } => {
                let by = MANAGERS[by];
                let (name, phone, email) = (values.name(), values.phone(), values.email());
                let (title, comment) = (values.text(), values.text());
                let answer = must(
                    &app,
                    &tokens[by],
                    "mutation($i: RegisterLeadInput!) { registerLead(input: $i) { lead { id subject } } }",
                    json!({ "i": {
                        "title": title, "contactName": name, "phones": [phone],
                        "emails": [email], "comment": comment,
                        "budget": { "amount": "50000" },
                    }}),
                )
                .await
                .expect("a registration is accepted");
                let lead = &answer["data"]["registerLead"]["lead"];
                leads.push(Played {
                    id: lead["id"].as_str().unwrap().to_owned(),
                    by,
                    subject: lead["subject"].as_str().unwrap().to_owned(),
                    values: [name.clone(), phone, email, title, comment]
                        .into_iter()
                        .map(|v| (v, false))
                        .collect(),
                    name,
                    erased: false,
                });
            }
            Op::UpdateName { lead }
            | Op::UpdatePhone { lead }
            | Op::UpdateComment { lead }
            | Op::Disqualify { lead }
            | Op::Reopen { lead } => {
                let Some(i) = pick(lead) else { continue };
                let l = &leads[i];
                let value = match op {
                    Op::UpdateName { .. } => values.name(),
                    Op::UpdatePhone { .. } => values.phone(),
                    _ => values.text(),
                };
                let (query, variables) = match op {
                    Op::UpdateName { .. } => (
                        "mutation($l: ID!, $v: String) { updateLeadDetails(lead: $l, input: { contactName: $v }) { position } }",
                        json!({ "l": l.id, "v": value }),
                    ),
                    Op::UpdatePhone { .. } => (
                        "mutation($l: ID!, $v: String!) { updateLeadDetails(lead: $l, input: { phones: [$v] }) { position } }",
                        json!({ "l": l.id, "v": value }),
                    ),
                    Op::UpdateComment { .. } => (
                        "mutation($l: ID!, $v: String) { updateLeadDetails(lead: $l, input: { comment: $v }) { position } }",
                        json!({ "l": l.id, "v": value }),
                    ),
                    Op::Disqualify { .. } => (
                        "mutation($l: ID!, $v: String) { disqualifyLead(lead: $l, reason: \"no-budget\", comment: $v) { position } }",
                        json!({ "l": l.id, "v": value }),
                    ),
                    _ => (
                        "mutation($l: ID!, $v: String) { reopenLead(lead: $l, comment: $v) { position } }",
                        json!({ "l": l.id, "v": value }),
                    ),
                };
                // The stage machine refuses some (a closed lead's details): then nothing was
                // written.
                if must(&app, &tokens[l.by], query, variables).await.is_some() {
                    let l = &mut leads[i];
                    if matches!(op, Op::UpdateName { .. }) {
                        l.name = value.clone();
                    }
                    l.values.push((value, false));
                }
            }
            Op::Erase { lead } => {
                let Some(i) = pick(lead) else { continue };
                let l = &mut leads[i];
                must(
                    &app,
                    admin,
                    "mutation($s: ID!) { erasePersonalData(subject: $s, reasonCode: REQUEST) { position } }",
                    json!({ "s": l.subject }),
                )
                .await
                .expect("an admin erases");
                // Everything sealed under this subject so far is gone; a second erasure of it
                // is a no-op, and values written since belong to its successor.
                if !l.erased {
                    for v in &mut l.values {
                        v.1 = true;
                    }
                    l.erased = true;
                }
            }
        }
    }

    let erased: Vec<&str> = leads
        .iter()
        .flat_map(|l| l.values.iter().filter(|v| v.1).map(|v| v.0.as_str()))
        .collect();
    let at = app.head().await.to_string();
    for role in ROLES {
        let token = &tokens[role];
        let mut seen = String::new();
        let mut ask = |answer: Value| seen.push_str(&answer.to_string());
        ask(app
            .graphql(Some(token), REGISTRY, json!({ "at": at, "filter": {} }))
            .await);
        ask(app.graphql(Some(token), BOARD, json!({ "at": at })).await);
        for kind in [
            "BY_MANAGER",
            "BY_STAGE",
            "BY_SOURCE",
            "DISQUALIFICATION_REASONS",
        ] {
            ask(app
                .graphql(
                    Some(token),
                    "query($k: ReportKind!, $at: Position) { report(kind: $k, consistency: $at) { key label count } }",
                    json!({ "k": kind, "at": at }),
                )
                .await);
        }
        for l in &leads {
            ask(app
                .graphql(Some(token), CARD, json!({ "id": l.id, "at": at }))
                .await);
            ask(app
                .graphql(Some(token), HISTORY, json!({ "id": l.id, "at": at }))
                .await);
        }
        for value in &erased {
            let found = app
                .graphql(
                    Some(token),
                    REGISTRY,
                    json!({ "at": at, "filter": { "text": value } }),
                )
                .await;
            assert_eq!(
                found["data"]["leads"]["nodes"],
                json!([]),
                "{role} finds a lead by the erased {value}: {found}"
            );
        }
        if role == "admin" {
            for l in &leads {
                ask(app
                    .graphql(
                        Some(token),
                        "query($s: ID!) { personalData(subject: $s) { values { lead eventType field value } } }",
                        json!({ "s": l.subject }),
                    )
                    .await);
            }
            for value in &erased {
                let (kind, value) = if value.starts_with('+') {
                    ("p", *value)
                } else if value.contains('@') {
                    ("e", *value)
                } else {
                    ("n", *value)
                };
                let found = app
                    .graphql(
                        Some(token),
                        "query($p: String, $e: String, $n: String, $at: Position) { personalDataSubjects(phone: $p, email: $e, name: $n, consistency: $at) { subject } }",
                        json!({ kind: value, "at": at }),
                    )
                    .await;
                assert_eq!(
                    found["data"]["personalDataSubjects"],
                    json!([]),
                    "the erased {value} is found: {found}"
                );
            }
            for l in leads.iter().filter(|l| !l.erased) {
                assert!(
                    seen.contains(&l.name),
                    "the admin does not see {} of lead {}",
                    l.name,
                    l.id
                );
            }
        }
        for value in &erased {
            assert!(
                !seen.contains(value),
                "{role} reads the erased {value}: {}",
                excerpt(&seen, value)
            );
        }
    }
}

fn excerpt<'a>(text: &'a str, value: &str) -> &'a str {
    let at = text.find(value).unwrap_or(0);
    let start = text.floor_char_boundary(at.saturating_sub(200));
    let end = text.ceil_char_boundary((at + 200).min(text.len()));
    &text[start..end]
}

const REGISTRY: &str = "query($at: Position, $filter: LeadFilterInput) { leads(first: 200, consistency: $at, filter: $filter) { nodes { id title contactName phone email accountName disqualificationReason stage } } }";
const BOARD: &str = "query($at: Position) { board(consistency: $at) { columns { stage cards(first: 200) { nodes { id title contactName phone email } } } } }";
const CARD: &str = "query($id: ID!, $at: Position) { lead(id: $id, consistency: $at) { id subject stage title contactName phones emails accountName website comment needType externalRef disqualification { reason comment } openTasks { id } } }";
const HISTORY: &str = "query($id: ID!, $at: Position) { leadHistory(lead: $id, first: 200, consistency: $at) { nodes { eventType summary data } } }";

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 10,
        max_shrink_iters: 50,
        ..ProptestConfig::default()
    })]

    #[test]
    fn no_erased_value_is_readable_through_any_query_of_any_role(
        ops in prop::collection::vec(op(), 4..16)
    ) {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        runtime
            .block_on(async { tokio::time::timeout(Duration::from_secs(120), play(ops)).await })
            .expect("a case ends within two minutes");
    }
}
