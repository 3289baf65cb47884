//! Personal data on request (issue 20), over the API: a subject's export lists every personal
//! value held for them with where it came from, and nothing of anyone else; the export is
//! recorded in the log without a value; only admins export or erase; after an erasure the
//! export is empty, the card shows the marker and the process history stays.

use serde_json::{json, Value};

use leadflow_testkit::{spawn_app_on, Backend, TestApp};

const REGISTER: &str =
    "mutation($i: RegisterLeadInput!) { registerLead(input: $i) { lead { id subject } position } }";
const EXPORT: &str = "query($s: ID!) { personalData(subject: $s, ticket: \"SR#1187\") { subject recordedAt values { lead eventType position field value } } }";
const FIND: &str = "query($p: String, $e: String, $n: String, $at: Position) { personalDataSubjects(phone: $p, email: $e, name: $n, consistency: $at) { subject leads } }";
const ERASE: &str = "mutation($s: ID!) { erasePersonalData(subject: $s, reasonCode: REQUEST) { erasedNow position } }";

async fn register(
    app: &TestApp,
    token: &str,
    name: &str,
    phone: &str,
    email: &str,
) -> (String, String, Value) {
    let out = app
        .graphql(
            Some(token),
            REGISTER,
            json!({ "i": {
                "title": format!("Pumps for {name}"),
                "contactName": name,
                "phones": [phone],
                "emails": [email],
                "comment": format!("{name} asked for a quote"),
                "budget": { "amount": "120000" },
            }}),
        )
        .await;
    let lead = &out["data"]["registerLead"]["lead"];
    (
        lead["id"]
            .as_str()
            .unwrap_or_else(|| panic!("{out}"))
            .to_owned(),
        lead["subject"].as_str().unwrap().to_owned(),
        out["data"]["registerLead"]["position"].clone(),
    )
}

fn values(answer: &Value) -> Vec<(String, String)> {
    answer["data"]["personalData"]["values"]
        .as_array()
        .unwrap_or_else(|| panic!("{answer}"))
        .iter()
        .map(|v| {
            (
                v["field"].as_str().unwrap().to_owned(),
                v["value"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

async fn a_subjects_export_lists_their_values_only_and_is_recorded(backend: Backend) {
    let app = spawn_app_on(backend).await;
    let (ivan, admin) = (app.token("ivan.manager"), app.token("admin"));
    let (lead, anna, _) = register(
        &app,
        &ivan,
        "Anna Quillfeather",
        "+7 916 111-22-33",
        "anna@quill.example",
    )
    .await;
    let (_, boris, registered) = register(
        &app,
        &ivan,
        "Boris Kettleworth",
        "+7 916 444-55-66",
        "boris@kettle.example",
    )
    .await;

    let refused = app.graphql(Some(&ivan), EXPORT, json!({ "s": anna })).await;
    assert_eq!(
        refused["errors"][0]["extensions"]["code"], "FORBIDDEN",
        "{refused}"
    );

    // Found by a phone in another form, an e-mail in capitals, a name spaced and cased
    // otherwise: through the blind index, each finds her subject and lead, and only hers.
    let refused = app
        .graphql(
            Some(&ivan),
            FIND,
            json!({ "p": "+79161112233", "at": registered }),
        )
        .await;
    assert_eq!(
        refused["errors"][0]["extensions"]["code"], "FORBIDDEN",
        "{refused}"
    );
    // Each after the read model has both registrations.
    for lookup in [
        json!({ "p": "8 (916) 111-22-33", "at": registered }),
        json!({ "e": "ANNA@Quill.example", "at": registered }),
        json!({ "n": "  anna   QUILLFEATHER ", "at": registered }),
    ] {
        let found = app.graphql(Some(&admin), FIND, lookup.clone()).await;
        assert_eq!(
            found["data"]["personalDataSubjects"],
            json!([{ "subject": anna, "leads": [lead] }]),
            "{lookup}: {found}"
        );
    }
    let nobody = app
        .graphql(
            Some(&admin),
            FIND,
            json!({ "e": "nobody@nowhere.example", "at": registered }),
        )
        .await;
    assert_eq!(
        nobody["data"]["personalDataSubjects"],
        json!([]),
        "{nobody}"
    );

    let answer = app
        .graphql(Some(&admin), EXPORT, json!({ "s": anna }))
        .await;
    let got = values(&answer);
    for expected in [
        ("details.contactName", "Anna Quillfeather"),
        ("details.phones[]", "+79161112233"),
        ("details.emails[]", "anna@quill.example"),
        ("details.title", "Pumps for Anna Quillfeather"),
        ("details.comment", "Anna Quillfeather asked for a quote"),
    ] {
        assert!(
            got.iter().any(|(f, v)| f == expected.0 && v == expected.1),
            "{expected:?} missing from {got:?}"
        );
    }
    let text = answer.to_string();
    assert!(
        !text.contains("Boris") && !text.contains("kettle"),
        "{text}"
    );
    assert!(answer["data"]["personalData"]["values"]
        .as_array()
        .unwrap()
        .iter()
        .all(|v| v["lead"] == lead.as_str()));
    assert!(
        answer["data"]["personalData"]["recordedAt"].is_string(),
        "{answer}"
    );

    // The export is an event of the subject's: who, how many, the ticket; no value.
    let recorded = app.stream(&format!("subject-{anna}")).await;
    assert_eq!(recorded.len(), 1);
    assert_eq!(recorded[0].event_type, "PersonalDataExported");
    let payload = String::from_utf8_lossy(&recorded[0].data).into_owned();
    assert!(
        payload.contains("SR#1187") && payload.contains(&app.user_id("admin")),
        "{payload}"
    );
    assert!(
        !payload.contains("Anna") && !payload.contains("+7916"),
        "{payload}"
    );

    // Erased: only an admin; then nothing is left to export, and the card shows the marker.
    let refused = app.graphql(Some(&ivan), ERASE, json!({ "s": anna })).await;
    assert_eq!(
        refused["errors"][0]["extensions"]["code"], "FORBIDDEN",
        "{refused}"
    );
    let erased = app.graphql(Some(&admin), ERASE, json!({ "s": anna })).await;
    assert_eq!(
        erased["data"]["erasePersonalData"]["erasedNow"], true,
        "{erased}"
    );
    let at = erased["data"]["erasePersonalData"]["position"].clone();
    let after = app
        .graphql(Some(&admin), EXPORT, json!({ "s": anna }))
        .await;
    assert_eq!(values(&after), Vec::<(String, String)>::new(), "{after}");
    let gone = app
        .graphql(Some(&admin), FIND, json!({ "p": "+79161112233", "at": at }))
        .await;
    assert_eq!(gone["data"]["personalDataSubjects"], json!([]), "{gone}");
    let card = app
        .graphql(
            Some(&ivan),
            "query($id: ID!, $at: Position) { lead(id: $id, consistency: $at) { contactName phones stage budget { amount } } }",
            json!({ "id": lead, "at": at }),
        )
        .await;
    assert_eq!(card["data"]["lead"]["contactName"], "[erased]", "{card}");
    assert_eq!(card["data"]["lead"]["phones"], json!(["[erased]"]));
    assert_eq!(card["data"]["lead"]["stage"], "QUALIFICATION");
    assert!(
        card["data"]["lead"]["budget"]["amount"].is_string(),
        "{card}"
    );
    // The other person is untouched.
    let other = app
        .graphql(Some(&admin), EXPORT, json!({ "s": boris }))
        .await;
    assert!(values(&other).iter().any(|(_, v)| v == "Boris Kettleworth"));
}

/// Retention (issue 20): off by default; set, a sweep erases the people all of whose leads are
/// closed and untouched for longer, and no one else; a dry run only lists them; a second sweep
/// finds them erased. The leads' stages stay.
async fn retention_erases_only_people_whose_leads_closed_long_ago(backend: Backend) {
    use leadflow_app::retention::{sweep, SweepError};
    use std::time::Duration;

    let app = spawn_app_on(backend).await;
    let (ivan, admin) = (app.token("ivan.manager"), app.token("admin"));
    let by = leadflow_domain::Actor {
        user: leadflow_domain::UserId::parse(&app.user_id("admin")).unwrap(),
        role: leadflow_domain::Role::Admin,
    };
    let wait = Duration::from_secs(10);
    let (closed, gone, _) = register(
        &app,
        &ivan,
        "Gleb Oldfield",
        "+7 916 700-00-01",
        "gleb@old.example",
    )
    .await;
    let (open, kept, _) = register(
        &app,
        &ivan,
        "Vera Newcombe",
        "+7 916 700-00-02",
        "vera@new.example",
    )
    .await;
    let disqualified = app
        .graphql(
            Some(&ivan),
            "mutation($l: ID!) { disqualifyLead(lead: $l, reason: \"no-budget\") { position } }",
            json!({ "l": closed }),
        )
        .await;
    assert!(disqualified["errors"].is_null(), "{disqualified}");

    let now = chrono::Utc::now();
    let off = sweep(app.engine(), app.reads(), by, now, false, wait).await;
    assert!(matches!(off, Err(SweepError::Off)), "{off:?}");

    let set = app
        .graphql(
            Some(&admin),
            "mutation { changeSettings(input: { retentionMonths: 24 }) { changed } }",
            json!({}),
        )
        .await;
    assert!(set["errors"].is_null(), "{set}");
    let shown = app
        .graphql(Some(&admin), "{ settings { retentionMonths } }", json!({}))
        .await;
    assert_eq!(shown["data"]["settings"]["retentionMonths"], 24, "{shown}");
    // The follower on a shared store picks the setting up from the log.
    for _ in 0..200 {
        if app.engine().catalog().settings.retention_months == 24 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // Closed a moment ago: not yet.
    let early = sweep(app.engine(), app.reads(), by, now, false, wait)
        .await
        .unwrap();
    assert_eq!(
        (early.erased.len(), early.already_erased),
        (0, 0),
        "{early:?}"
    );

    // Twenty-five months on: the closed lead's person goes, the open lead's stays.
    let later = now + chrono::Months::new(25);
    let dry = sweep(app.engine(), app.reads(), by, later, true, wait)
        .await
        .unwrap();
    assert_eq!(dry.erased.len(), 1, "{dry:?}");
    assert_eq!(dry.erased[0].to_string(), gone);
    let head = app.head().await;
    let done = sweep(app.engine(), app.reads(), by, later, false, wait)
        .await
        .unwrap();
    assert_eq!(
        done.erased, dry.erased,
        "the dry run listed what the sweep did"
    );
    assert!(app.head().await > head, "the erasure is in the log");
    let again = sweep(app.engine(), app.reads(), by, later, false, wait)
        .await
        .unwrap();
    assert_eq!(
        (again.erased.len(), again.already_erased),
        (0, 1),
        "{again:?}"
    );

    let recorded = app.stream(&format!("subject-{gone}")).await;
    assert_eq!(recorded.last().unwrap().event_type, "PersonalDataErased");
    let payload: Value = serde_json::from_slice(&recorded.last().unwrap().data).unwrap();
    assert_eq!(payload["reasonCode"], "retention", "{payload}");
    let head = app.head().await;
    let cards = app
        .graphql(
            Some(&admin),
            "query($a: ID!, $b: ID!, $at: Position) { a: lead(id: $a, consistency: $at) { contactName stage } b: lead(id: $b) { contactName stage } }",
            json!({ "a": closed, "b": open, "at": head.to_string() }),
        )
        .await;
    assert_eq!(cards["data"]["a"]["contactName"], "[erased]", "{cards}");
    assert_eq!(cards["data"]["a"]["stage"], "DISQUALIFIED", "{cards}");
    assert_eq!(
        cards["data"]["b"]["contactName"], "Vera Newcombe",
        "{cards}"
    );
    let still = app
        .graphql(Some(&admin), EXPORT, json!({ "s": kept }))
        .await;
    assert!(!values(&still).is_empty(), "{still}");
}

on_both_backends!(
    a_subjects_export_lists_their_values_only_and_is_recorded,
    retention_erases_only_people_whose_leads_closed_long_ago,
);
