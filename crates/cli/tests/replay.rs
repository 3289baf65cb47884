//! `leadflow replay` and `serve --read-only` through the binary (issue 11): a replay of the
//! demo data as of a time serves the board and the reports the live server gives `asOf` that
//! time, takes no command, and holds no personal data in any file.

mod common;

use std::path::Path;
use std::process::Command;

use serde_json::Value;

use common::{files, graphql, leadflow, Served, BIN};

const UNTIL: &str = "2026-06-01T00:00:00Z";

fn serve(data: &Path, extra: &[&str]) -> Served {
    let mut command = Command::new(BIN);
    command
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data)
        .args(extra);
    Served::start(command)
}

async fn data(s: &Served, token: &str, query: &str) -> Value {
    let answer = graphql(s, Some(token), query).await;
    assert!(answer["errors"].is_null(), "{query}: {answer:#}");
    answer["data"].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replay_serves_the_past_read_only_and_without_personal_data() {
    let dir = tempfile::tempdir().unwrap();
    let (source, replayed) = (dir.path().join("source"), dir.path().join("replay"));
    leadflow(&source, &["demo", "--leads", "150"]);
    let out = leadflow(
        &source,
        &[
            "replay",
            "--until",
            UNTIL,
            "--into",
            replayed.to_str().unwrap(),
        ],
    );
    assert!(out.contains("left out"), "{out}");
    let replay: Value =
        serde_json::from_str(&std::fs::read_to_string(replayed.join("replay.json")).unwrap())
            .unwrap();
    assert!(replay["later"].as_u64().unwrap() > 0, "{replay:#}");

    // The live server, asked as of the replay's time.
    let live = serve(&source, &[]);
    let admin = leadflow(&source, &["token", "issue", "--user", "admin"]);
    let head = replay["sourceHead"].as_u64().unwrap();
    let board = format!("{{ board(asOf: \"{UNTIL}\", consistency: {head}) {{ totalCount totalBudget {{ amount }} columns {{ stage count budget {{ amount }} }} }} }}");
    let report = format!(
        "{{ report(kind: BY_STAGE, asOf: \"{UNTIL}\") {{ key count budget {{ amount }} }} }}"
    );
    let then = data(&live, admin.trim(), &board).await;
    let then_report = data(&live, admin.trim(), &report).await;
    let names = data(
        &live,
        admin.trim(),
        &format!(
            "{{ leads(first: 20, consistency: {head}) {{ edges {{ node {{ contactName }} }} }} }}"
        ),
    )
    .await;
    let names: Vec<String> = names["leads"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["node"]["contactName"].as_str().map(str::to_owned))
        .filter(|n| n.len() > 5 && n != "[erased]")
        .collect();
    assert!(!names.is_empty());
    drop(live);

    // The replay, served read-only: the same board and report now as the live ones then.
    let read_only = serve(&replayed, &["--read-only"]);
    assert!(
        read_only.startup.contains("read-only"),
        "{}",
        read_only.startup
    );
    let token = leadflow(&replayed, &["token", "issue", "--user", "admin"]);
    let token = token.trim();
    let now_board = board.replace(&format!("(asOf: \"{UNTIL}\", consistency: {head})"), "");
    assert_eq!(data(&read_only, token, &now_board).await, then);
    let now_report = report.replace(&format!(", asOf: \"{UNTIL}\""), "");
    assert_eq!(data(&read_only, token, &now_report).await, then_report);
    assert!(then["board"]["totalCount"].as_i64().unwrap() > 0);
    // Personal fields read erased; commands are refused.
    let page = data(
        &read_only,
        token,
        "{ leads(first: 5) { edges { node { title contactName } } } }",
    )
    .await;
    for edge in page["leads"]["edges"].as_array().unwrap() {
        assert_eq!(edge["node"]["contactName"], "[erased]", "{page:#}");
    }
    let refused = graphql(
        &read_only,
        Some(token),
        "mutation { registerLead(input: { title: \"New\" }) { position } }",
    )
    .await;
    assert_eq!(
        refused["errors"][0]["extensions"]["code"], "FORBIDDEN",
        "{refused:#}"
    );
    // An operator still steers its read models; the replay's log records nothing of it.
    let paused = data(
        &read_only,
        token,
        "mutation { pauseProjection(name: \"history\", reason: MAINTENANCE) { state } }",
    )
    .await;
    assert_eq!(paused["pauseProjection"]["state"], "PAUSED");
    data(
        &read_only,
        token,
        "mutation { resumeProjection(name: \"history\", reason: MAINTENANCE) { state } }",
    )
    .await;
    let actions = data(&read_only, token, "{ opsActions { action } }").await;
    assert_eq!(actions["opsActions"], serde_json::json!([]));
    drop(read_only);

    // No file of the replay holds a contact's name the source shows.
    for file in files(&replayed) {
        let bytes = std::fs::read(&file).unwrap();
        for name in &names {
            assert!(
                !bytes.windows(name.len()).any(|w| w == name.as_bytes()),
                "{name} in {}",
                file.display()
            );
        }
    }

    // The catalog comes over whole, though it was seeded after the replay's time.
    let conn = rusqlite::Connection::open(replayed.join("events.db")).unwrap();
    let catalog_events: i64 = conn
        .query_row(
            "SELECT count(*) FROM events e JOIN streams s ON s.id = e.stream_id
             WHERE s.name LIKE 'catalog-%'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(catalog_events > 0);

    // --read-only serves a replay's directory only: over a live one it would write erased
    // personal fields into read models that lag.
    let refused = Command::new(BIN)
        .args([
            "serve",
            "--read-only",
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
        ])
        .arg(&source)
        .output()
        .unwrap();
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("replay.json"));

    // A replay builds into a new directory only.
    let again = Command::new(BIN)
        .args(["replay", "--until", UNTIL, "--into"])
        .arg(&replayed)
        .arg("--data-dir")
        .arg(&source)
        .output()
        .unwrap();
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("not empty"));
}
