//! Personal data on request, through the binary (issue 20): after an erasure, nothing of the
//! person can be read anywhere the product keeps data. Every file under the data directory
//! (event store, WAL, read models, search index, key storage) and everything the server
//! printed is searched for the person's name, 6-character pieces of it, the phone in three
//! forms, the e-mail, the subject's key and blind-index tokens, each as UTF-8 and UTF-16LE;
//! the leads' stages, amounts and history entries are still there.

mod common;

use std::path::Path;
use std::process::Command;

use common::{client, leadflow, Served, BIN};
use serde_json::{json, Value};

use leadflow_codec::seal::MasterKey;

const NAME: &str = "Zlatoslava Quincewood";
const PHONE_E164: &str = "+79165551234";
const PHONE_DIGITS: &str = "79165551234";
const PHONE_NATIONAL: &str = "89165551234";
const EMAIL: &str = "zlatoslava.quincewood@quince.example";

async fn gql(s: &Served, token: &str, query: &str, variables: Value) -> Value {
    let answer: Value = client()
        .post(format!("http://{}/graphql", s.address))
        .bearer_auth(token)
        .json(&json!({ "query": query, "variables": variables }))
        .send()
        .await
        .expect("POST")
        .json()
        .await
        .expect("JSON");
    assert!(answer.get("errors").is_none(), "{answer}");
    answer["data"].clone()
}

/// Every file under `dir`, recursively.
fn files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut all = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            all.extend(files(&path));
        } else {
            all.push(path);
        }
    }
    all
}

fn utf16(text: &str) -> Vec<u8> {
    text.encode_utf16().flat_map(u16::to_le_bytes).collect()
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}

/// The subject's key, unwrapped from the store's key table with the master key.
fn subject_key(data: &Path, subject: &str) -> [u8; 32] {
    let master =
        MasterKey::parse_hex(&std::fs::read_to_string(data.join("master.key")).unwrap()).unwrap();
    let subject = uuid::Uuid::parse_str(subject).unwrap();
    let conn = rusqlite::Connection::open_with_flags(
        data.join("events.db"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .unwrap();
    let wrapped: Vec<u8> = conn
        .query_row(
            "SELECT wrapped FROM subject_keys WHERE subject = ?1",
            [subject.as_bytes().as_slice()],
            |r| r.get(0),
        )
        .unwrap();
    master.unwrap(subject, &wrapped).unwrap().expose_for_tests()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_an_erasure_no_file_and_no_line_printed_holds_anything_of_the_person() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut command = Command::new(BIN);
    command
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(&data)
        // The most the server ever prints.
        .env("LEADFLOW_LOG", "debug");
    let server = Served::start(command);
    let admin = leadflow(&data, &["token", "issue", "--user", "admin"]);
    let ivan = leadflow(&data, &["token", "issue", "--user", "ivan.manager"]);
    let (admin, ivan) = (admin.trim(), ivan.trim());

    let register = "mutation($i: RegisterLeadInput!) { registerLead(input: $i) { lead { id subject } position } }";
    let person = |title: &str| {
        json!({ "i": {
            "title": title,
            "budget": { "amount": "250000" },
            "contactName": NAME,
            "phones": ["+7 916 555-12-34"],
            "emails": [EMAIL],
            "comment": format!("{NAME} asked for a call back"),
            "source": "website",
        }})
    };
    let mut leads = Vec::new();
    for title in ["Quincewood: 40 pumps", "Quincewood: boilers"] {
        let out = gql(&server, ivan, register, person(title)).await;
        let lead = &out["registerLead"]["lead"];
        leads.push((
            lead["id"].as_str().unwrap().to_owned(),
            lead["subject"].as_str().unwrap().to_owned(),
        ));
    }
    let other = gql(
        &server,
        ivan,
        register,
        json!({ "i": { "title": "Boris Kettleworth: a press", "contactName": "Boris Kettleworth" }}),
    )
    .await;
    let other_id = other["registerLead"]["lead"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    // The first lead goes on: disqualified with a comment that names the person.
    gql(
        &server,
        ivan,
        "mutation($l: ID!, $c: String) { disqualifyLead(lead: $l, reason: \"spam\", comment: $c) { position } }",
        json!({ "l": leads[0].0, "c": format!("{NAME} called twice") }),
    )
    .await;

    // What the test looks for, read before the erasure.
    let mut secrets: Vec<(String, Vec<u8>)> = Vec::new();
    let mut text = |label: &str, value: &str| {
        secrets.push((format!("{label} (UTF-8)"), value.as_bytes().to_vec()));
        secrets.push((format!("{label} (UTF-16LE)"), utf16(value)));
    };
    text("the name", NAME);
    let chars: Vec<char> = NAME.chars().collect();
    for piece in chars.windows(6) {
        let piece: String = piece.iter().collect();
        if !piece.contains(' ') {
            text(&format!("the piece {piece:?}"), &piece);
        }
    }
    for phone in [PHONE_E164, PHONE_DIGITS, PHONE_NATIONAL] {
        text(&format!("the phone {phone}"), phone);
    }
    text("the e-mail", EMAIL);
    let master =
        MasterKey::parse_hex(&std::fs::read_to_string(data.join("master.key")).unwrap()).unwrap();
    let blind = master.blind_index();
    text("the phone's blind token", &blind.token("phone", PHONE_E164));
    text("the e-mail's blind token", &blind.token("email", EMAIL));
    for (_, subject) in &leads {
        let key = subject_key(&data, subject);
        secrets.push((format!("the key of {subject}"), key.to_vec()));
    }
    // Before: the card shows the person (so the search below is not vacuous).
    let card = "query($id: ID!, $at: Position) { lead(id: $id, consistency: $at) { title contactName phones emails stage budget { amount } } }";
    let before = gql(&server, ivan, card, json!({ "id": leads[0].0 })).await;
    assert_eq!(before["lead"]["contactName"], NAME);

    // The search finds the person before the erasure (so finding nothing after means
    // something): in the read models, in the clear.
    let held: Vec<String> = files(&data)
        .into_iter()
        .filter(|f| contains(&std::fs::read(f).unwrap(), NAME.as_bytes()))
        .map(|f| f.display().to_string())
        .collect();
    assert!(
        held.iter().any(|f| f.contains("leads.db"))
            && held.iter().any(|f| f.contains("history.db")),
        "{held:?}"
    );
    assert!(
        !held.iter().any(|f| f.contains("events.db")),
        "the log holds the person sealed: {held:?}"
    );
    let token = blind.token("phone", PHONE_E164);
    assert!(
        files(&data)
            .iter()
            .any(|f| contains(&std::fs::read(f).unwrap(), token.as_bytes())),
        "the phone's blind token is in the read model before the erasure"
    );

    // Erased through the API only.
    let erase = "mutation($s: ID!) { erasePersonalData(subject: $s, reasonCode: REQUEST, ticket: \"GDPR-2026-0042\") { erasedNow position } }";
    let refused: Value = client()
        .post(format!("http://{}/graphql", server.address))
        .bearer_auth(ivan)
        .json(&json!({ "query": erase, "variables": { "s": leads[0].1 } }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        refused["errors"][0]["extensions"]["code"], "FORBIDDEN",
        "{refused}"
    );
    let mut at = Value::Null;
    for (_, subject) in &leads {
        let out = gql(&server, admin, erase, json!({ "s": subject })).await;
        assert_eq!(out["erasePersonalData"]["erasedNow"], true);
        at = out["erasePersonalData"]["position"].clone();
    }
    let again = gql(&server, admin, erase, json!({ "s": leads[0].1 })).await;
    assert_eq!(again["erasePersonalData"]["erasedNow"], false, "a no-op");

    // The process history stays: stages, amounts, the feed's entries.
    let after = gql(&server, ivan, card, json!({ "id": leads[0].0, "at": at })).await;
    assert_eq!(after["lead"]["stage"], before["lead"]["stage"]);
    assert_eq!(after["lead"]["budget"], before["lead"]["budget"]);
    assert_eq!(after["lead"]["contactName"], "[erased]");
    assert_eq!(after["lead"]["title"], "[erased]");
    assert_eq!(after["lead"]["phones"], json!(["[erased]"]));
    let feed = gql(
        &server,
        ivan,
        "query($id: ID!) { leadHistory(lead: $id) { nodes { eventType summary data } } }",
        json!({ "id": leads[0].0 }),
    )
    .await;
    let nodes = feed["leadHistory"]["nodes"].as_array().unwrap();
    assert!(nodes.len() >= 3, "{feed}");
    assert!(nodes.iter().any(|n| n["eventType"] == "LeadDisqualified"));
    let still = gql(&server, ivan, card, json!({ "id": other_id })).await;
    assert_eq!(still["lead"]["contactName"], "Boris Kettleworth");

    // Nothing of the person anywhere.
    let mut found = Vec::new();
    for file in files(&data) {
        let bytes = std::fs::read(&file).unwrap();
        for (label, secret) in &secrets {
            if contains(&bytes, secret) {
                found.push(format!("{label} in {}", file.display()));
            }
        }
    }
    let printed = server.output.lock().unwrap().clone();
    assert!(
        printed.contains("DEBUG") || printed.contains("debug"),
        "logs were on"
    );
    for (label, secret) in &secrets {
        if contains(printed.as_bytes(), secret) {
            found.push(format!("{label} in what the server printed"));
        }
    }
    assert!(
        found.is_empty(),
        "found after the erasure:\n{}",
        found.join("\n")
    );
}

/// `leadflow privacy erase` with the server stopped: the key goes, and the read models on
/// disk are brought up to the erasure before the command returns.
#[test]
fn privacy_erase_on_the_command_line_rewrites_the_read_models_before_it_returns() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    leadflow(&data, &["demo", "--leads", "20"]);
    leadflow(&data, &["projections", "run"]);
    let leads = data.join("read").join("leads.db");
    let (lead, name): (String, String) = rusqlite::Connection::open(&leads)
        .unwrap()
        .query_row(
            "SELECT lead_id, contact_name FROM leads WHERE contact_name <> '' ORDER BY row_id LIMIT 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    let subject =
        leadflow_domain::SubjectId::for_lead(leadflow_domain::LeadId::parse(&lead).unwrap());
    let refused = Command::new(BIN)
        .args([
            "privacy",
            "erase",
            &subject.to_string(),
            "--reason",
            "because",
            "--data-dir",
        ])
        .arg(&data)
        .output()
        .unwrap();
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("request, retention"));
    let by_manager = Command::new(BIN)
        .args([
            "privacy",
            "erase",
            &subject.to_string(),
            "--reason",
            "request",
            "--by",
            "ivan.manager",
            "--data-dir",
        ])
        .arg(&data)
        .output()
        .unwrap();
    assert!(!by_manager.status.success(), "only an admin erases");
    let out = leadflow(
        &data,
        &[
            "privacy",
            "erase",
            &subject.to_string(),
            "--reason",
            "request",
            "--ticket",
            "SR#1187",
        ],
    );
    assert!(out.contains("erased subject"), "{out}");
    let (contact, stage): (String, String) = rusqlite::Connection::open(&leads)
        .unwrap()
        .query_row(
            "SELECT contact_name, stage FROM leads WHERE lead_id = ?1",
            [&lead],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!(contact, "[erased]");
    assert!(!stage.is_empty());
    for file in files(&data.join("read")) {
        let bytes = std::fs::read(&file).unwrap();
        assert!(
            !contains(&bytes, name.as_bytes()) || other_lead_has(&leads, &name, &lead),
            "{name} in {}",
            file.display()
        );
    }
    let again = leadflow(
        &data,
        &[
            "privacy",
            "erase",
            &subject.to_string(),
            "--reason",
            "request",
        ],
    );
    assert!(again.contains("was erased before"), "{again}");
}

/// Whether another lead of the demo holds a contact of the same name (the demo's names repeat).
fn other_lead_has(leads: &Path, name: &str, lead: &str) -> bool {
    rusqlite::Connection::open(leads)
        .unwrap()
        .query_row(
            "SELECT count(*) FROM leads WHERE contact_name = ?1 AND lead_id <> ?2",
            [name, lead],
            |r| r.get::<_, i64>(0),
        )
        .unwrap()
        > 0
}
