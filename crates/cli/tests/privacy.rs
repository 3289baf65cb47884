//! Personal data on request, through the binary (issue 20): after an erasure, nothing of the
//! person can be read anywhere the product keeps data. Every file under the data directory
//! (event store, WAL, read models, search index, key storage) and everything the server
//! printed is searched for the person's name, 6-character pieces of it, the phone in three
//! forms, the e-mail, the subject's key and blind-index tokens, each as UTF-8 and UTF-16LE;
//! the leads' stages, amounts and history entries are still there.

mod common;

use std::path::Path;
use std::process::Command;

use common::{client, files, leadflow, Node, Served, BIN};
use serde_json::{json, Value};

use leadflow_codec::seal::MasterKey;

const NAME: &str = "Zlatoslava Quincewood";
const PHONE_E164: &str = "+79165551234";
const PHONE_DIGITS: &str = "79165551234";
const PHONE_NATIONAL: &str = "89165551234";
const EMAIL: &str = "zlatoslava.quincewood@quince.example";

async fn gql(s: &Served, token: &str, query: &str, variables: Value) -> Value {
    common::gql(&s.address, token, query, variables).await
}

fn utf16(text: &str) -> Vec<u8> {
    text.encode_utf16().flat_map(u16::to_le_bytes).collect()
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}

/// The subject's key, unwrapped from the key table of the store in `store` with the master key
/// in `data`, and as the table holds it (wrapped).
fn subject_key(data: &Path, store: &Path, subject: &str) -> ([u8; 32], Vec<u8>) {
    let master =
        MasterKey::parse_hex(&std::fs::read_to_string(data.join("master.key")).unwrap()).unwrap();
    let subject = uuid::Uuid::parse_str(subject).unwrap();
    let conn = rusqlite::Connection::open_with_flags(
        store.join("events.db"),
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
    let key = master.unwrap(subject, &wrapped).unwrap().expose_for_tests();
    (key, wrapped)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_an_erasure_no_file_and_no_line_printed_holds_anything_of_the_person() {
    nothing_of_the_person_is_left(false).await
}

/// The same over `leadflow node`: `serve --store esdb://` keeps its read models and master key
/// in its own data directory, the node keeps the log and the keys (key streams) in its own;
/// both directories and both processes' output are searched.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_leadflow_node_no_file_and_no_line_printed_holds_anything_of_the_person() {
    nothing_of_the_person_is_left(true).await
}

async fn nothing_of_the_person_is_left(over_node: bool) {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    // Where the log and the keys live: the server's own directory, or the node's.
    let (node, store_dir) = if over_node {
        let node_dir = dir.path().join("node");
        (Some(Node::start(&node_dir)), node_dir)
    } else {
        (None, data.clone())
    };
    let store_args: Vec<&str> = match &node {
        Some(n) => vec!["--store", n.connection.as_str()],
        None => vec![],
    };
    let mut command = Command::new(BIN);
    command
        .args(["serve", "--listen", "127.0.0.1:0"])
        .args(&store_args)
        .arg("--data-dir")
        .arg(&data)
        // The most the server ever prints.
        .env("LEADFLOW_LOG", "debug");
    let server = Served::start(command);
    let token = |user: &str| {
        let mut args = vec!["token", "issue", "--user", user];
        args.extend(&store_args);
        leadflow(&data, &args)
    };
    let (admin, ivan) = (token("admin"), token("ivan.manager"));
    let (admin, ivan) = (admin.trim(), ivan.trim());
    // Every directory the product keeps data in.
    let everywhere = || {
        let mut all = files(&data);
        if over_node {
            all.extend(files(&store_dir));
        }
        all
    };

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
    // As the read models keep them: the HMAC's 32 bytes.
    secrets.push((
        "the phone's blind token (bytes)".to_owned(),
        blind.digest("phone", PHONE_E164).to_vec(),
    ));
    secrets.push((
        "the e-mail's blind token (bytes)".to_owned(),
        blind.digest("email", EMAIL).to_vec(),
    ));
    for (_, subject) in &leads {
        let (key, wrapped) = subject_key(&data, &store_dir, subject);
        secrets.push((format!("the key of {subject}"), key.to_vec()));
        secrets.push((format!("the wrapped key of {subject}"), wrapped));
    }
    // Before: the card shows the person (so the search below is not vacuous).
    let card = "query($id: ID!, $at: Position) { lead(id: $id, consistency: $at) { title contactName phones emails stage budget { amount } } }";
    let before = gql(&server, ivan, card, json!({ "id": leads[0].0 })).await;
    assert_eq!(before["lead"]["contactName"], NAME);

    // The search finds the person before the erasure (so finding nothing after means
    // something): in the read models, in the clear.
    let held: Vec<String> = everywhere()
        .into_iter()
        .filter(|f| contains(&std::fs::read(f).unwrap(), NAME.as_bytes()))
        .map(|f| f.display().to_string())
        .collect();
    assert!(held.iter().any(|f| f.contains("leads.db")), "{held:?}");
    // The history feed is written from the lead's stream when read: its model holds nothing
    // of anyone.
    assert!(!held.iter().any(|f| f.contains("history")), "{held:?}");
    assert!(
        !held.iter().any(|f| f.contains("events.db")),
        "the log holds the person sealed: {held:?}"
    );
    let token = blind.digest("phone", PHONE_E164);
    assert!(
        everywhere()
            .iter()
            .any(|f| contains(&std::fs::read(f).unwrap(), &token)),
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
    for file in everywhere() {
        let bytes = std::fs::read(&file).unwrap();
        for (label, secret) in &secrets {
            if contains(&bytes, secret) {
                found.push(format!("{label} in {}", file.display()));
            }
        }
    }
    let mut printed = server.output.lock().unwrap().clone();
    if let Some(node) = &node {
        printed += &node.output.lock().unwrap();
    }
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
            // A full name no other lead holds, even inside its own: the demo gives some contacts
            // a first name only, which another contact's full name contains.
            "SELECT l.lead_id, l.contact_name FROM leads l WHERE l.contact_name LIKE '% %'
               AND NOT EXISTS (SELECT 1 FROM leads o WHERE o.lead_id <> l.lead_id
                   AND (instr(o.contact_name, l.contact_name) > 0 OR instr(o.title, l.contact_name) > 0))
             ORDER BY l.row_id LIMIT 1",
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

/// A lead's id and its contact's name.
type LeadName = (String, String);

/// `leadflow privacy sweep` (retention): refused while the catalog's retention is off; once an
/// admin sets it, a dry run lists the people of the demo's closed leads and erases no one, the
/// sweep erases exactly them (their cards show the marker, open leads keep their names), and a
/// second sweep finds them erased before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn privacy_sweep_erases_the_people_of_long_closed_leads_only() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    // The demo's business time is early 2026: its closed leads are months old.
    leadflow(&data, &["demo", "--leads", "30"]);
    let off = Command::new(BIN)
        .args(["privacy", "sweep", "--data-dir"])
        .arg(&data)
        .output()
        .unwrap();
    assert!(!off.status.success());
    assert!(
        String::from_utf8_lossy(&off.stderr).contains("retention is off"),
        "{}",
        String::from_utf8_lossy(&off.stderr)
    );

    let admin = leadflow(&data, &["token", "issue", "--user", "admin"]);
    {
        let mut command = Command::new(BIN);
        command
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(&data);
        let server = Served::start(command);
        gql(
            &server,
            admin.trim(),
            "mutation { changeSettings(input: { retentionMonths: 1 }) { changed } }",
            json!({}),
        )
        .await;
    }

    let leads = data.join("read").join("leads.db");
    let closed_and_open = |leads: &Path| -> (Vec<LeadName>, Vec<LeadName>) {
        let conn = rusqlite::Connection::open(leads).unwrap();
        let mut stmt = conn
            .prepare("SELECT lead_id, contact_name, stage FROM leads ORDER BY row_id")
            .unwrap();
        let rows: Vec<(String, String, String)> = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        let closed = ["Disqualified", "NeedAbsent", "NeedSatisfied"];
        let (c, o): (Vec<_>, Vec<_>) = rows
            .into_iter()
            .partition(|(_, _, stage)| closed.contains(&stage.as_str()));
        let strip = |v: Vec<(String, String, String)>| {
            v.into_iter().map(|(l, n, _)| (l, n)).collect::<Vec<_>>()
        };
        (strip(c), strip(o))
    };
    let (closed, open) = closed_and_open(&leads);
    assert!(
        !closed.is_empty() && !open.is_empty(),
        "the demo closes some leads, not all"
    );
    let subject_of = |lead: &str| {
        leadflow_domain::SubjectId::for_lead(leadflow_domain::LeadId::parse(lead).unwrap())
            .to_string()
    };

    let dry = leadflow(&data, &["privacy", "sweep", "--dry-run"]);
    for (lead, _) in &closed {
        assert!(
            dry.contains(&format!("would erase subject {}", subject_of(lead))),
            "{dry}"
        );
    }
    for (lead, _) in &open {
        assert!(!dry.contains(&subject_of(lead)), "{dry}");
    }
    assert_eq!(closed_and_open(&leads).0, closed, "a dry run erases no one");

    let swept = leadflow(&data, &["privacy", "sweep"]);
    assert!(
        swept.contains(&format!(
            "erased {} subject(s), 0 erased before",
            closed.len()
        )),
        "{swept}"
    );
    let (after_closed, after_open) = closed_and_open(&leads);
    assert!(
        after_closed
            .iter()
            .all(|(_, name)| name.is_empty() || name == "[erased]"),
        "{after_closed:?}"
    );
    assert_eq!(after_open, open, "open leads keep their people");
    let again = leadflow(&data, &["privacy", "sweep"]);
    assert!(
        again.contains(&format!(
            "erased 0 subject(s), {} erased before",
            closed.len()
        )),
        "{again}"
    );
}

/// Every row of every read model in `<data>/read`.
fn read_models(data: &Path) -> Vec<String> {
    ["leads.db", "history.db", "transitions.db"]
        .iter()
        .flat_map(|m| leadflow_projections::dump_tables(&data.join("read").join(m)).unwrap())
        .collect()
}

/// `leadflow privacy migrate`: a log written before sealing (a demo through an engine without
/// keys, its registrations turned back into v1 payloads, one person erased in it) is copied
/// with every personal field sealed; positions, ids, streams, revisions and recording times
/// stay; no name is left in the store file; the read models rebuilt from the sealed log equal
/// those built from the plain one; a second run finds nothing to do.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn privacy_migrate_seals_a_plain_log_and_keeps_everything_else() {
    use leadflow_store::EventStore as _;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let path = data.join("events.db");
    let erased_lead = {
        let store =
            std::sync::Arc::new(leadflow_store_embedded::EmbeddedStore::open(&path).unwrap());
        let engine = leadflow_app::open_engine(store.clone(), None, false)
            .await
            .unwrap();
        leadflow_demo::generate(
            &engine,
            &leadflow_demo::DemoConfig {
                leads: 25,
                concurrency: 4,
                ..leadflow_demo::DemoConfig::default()
            },
            |_| {},
        )
        .await
        .unwrap();
        // One person erased while the log was plain.
        let first = store
            .read_all(leadflow_store::Position::START, 100_000)
            .await
            .unwrap()
            .into_iter()
            .find(|e| e.event_type == "LeadRegistered")
            .unwrap();
        let lead =
            leadflow_domain::LeadId::parse(first.stream.trim_start_matches("lead-")).unwrap();
        engine
            .execute_subject(
                leadflow_domain::SubjectCommand::Erase {
                    subject: leadflow_domain::SubjectId::for_lead(lead),
                    reason: leadflow_domain::ErasureReason::Request,
                    ticket: None,
                },
                leadflow_engine::CommandMeta::by(leadflow_domain::catalog::seed::actor()),
            )
            .await
            .unwrap();
        lead.to_string()
    };
    // Registrations as the first release wrote them: v1, no subject.
    let conn = rusqlite::Connection::open(&path).unwrap();
    let downgraded = conn
        .execute(
            "UPDATE events SET data = CAST(json_remove(data, '$.subject') AS BLOB),
                 metadata = CAST(json_set(metadata, '$.version', 1) AS BLOB)
             WHERE event_type = 'LeadRegistered'",
            [],
        )
        .unwrap();
    assert_eq!(downgraded, 25);
    let frame = |conn: &rusqlite::Connection| -> Vec<(i64, i64, i64, Vec<u8>, String, i64)> {
        let mut stmt = conn
            .prepare("SELECT position, stream_id, revision, event_id, event_type, recorded_at FROM events ORDER BY position")
            .unwrap();
        stmt.query_map([], |r| {
            Ok((
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get(3)?,
                r.get(4)?,
                r.get(5)?,
            ))
        })
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
    };
    let before = frame(&conn);
    let names: Vec<String> = {
        let mut stmt = conn
            .prepare("SELECT DISTINCT json_extract(data, '$.details.contactName') FROM events WHERE event_type = 'LeadRegistered' AND json_extract(data, '$.details.contactName') IS NOT NULL")
            .unwrap();
        stmt.query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    };
    assert!(names.len() > 5, "{names:?}");
    drop(conn);
    // The read models as the plain log builds them.
    leadflow(&data, &["projections", "run"]);
    let plain = read_models(&data);
    assert!(names
        .iter()
        .any(|n| plain.iter().any(|row| row.contains(n.as_str()))));

    let out = leadflow(&data, &["privacy", "migrate"]);
    assert!(out.contains("matched the log event by event"), "{out}");
    assert!(
        !data.join("read").exists(),
        "the plain-built models are gone"
    );
    let leftovers: Vec<_> = files(&data)
        .into_iter()
        .filter(|f| {
            let f = f.display().to_string();
            f.ends_with(".old") || f.contains(".sealed")
        })
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    let conn = rusqlite::Connection::open(&path).unwrap();
    assert_eq!(frame(&conn), before, "every event where it was");
    drop(conn);
    let bytes = std::fs::read(&path).unwrap();
    for name in &names {
        assert!(!contains(&bytes, name.as_bytes()), "{name} is in the store");
    }

    leadflow(&data, &["projections", "run"]);
    let sealed = read_models(&data);
    let differing: Vec<_> = plain
        .iter()
        .zip(&sealed)
        .filter(|(a, b)| a != b)
        .take(3)
        .collect();
    assert!(
        differing.is_empty() && plain.len() == sealed.len(),
        "{differing:?}"
    );
    let erased: String = rusqlite::Connection::open(data.join("read").join("leads.db"))
        .unwrap()
        .query_row(
            "SELECT contact_name FROM leads WHERE lead_id = ?1",
            [&erased_lead],
            |r| r.get(0),
        )
        .unwrap();
    assert!(erased == "[erased]" || erased.is_empty(), "{erased}");

    let again = leadflow(&data, &["privacy", "migrate"]);
    assert!(again.contains("nothing to migrate"), "{again}");
}
