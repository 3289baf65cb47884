//! The operator's commands against a running `leadflow serve`, through the binary: `projections
//! pause|resume|retry|dead-letters` ask the server (never its files), `projections status
//! --json` shows what they did, a refused action exits non-zero saying why, and `serve
//! --log-format json` writes one JSON object a line.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

use common::{leadflow, Served, BIN};

fn status(data: &std::path::Path) -> Value {
    let out = leadflow(data, &["projections", "status", "--json"]);
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("not JSON ({e}): {out}"))
}

fn state_of(status: &Value, name: &str) -> String {
    status["projections"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == name)
        .unwrap_or_else(|| panic!("no {name} in {status}"))["state"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[test]
fn an_operator_pauses_and_resumes_a_model_of_the_running_server() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    let mut command = Command::new(BIN);
    command
        .args([
            "--log-format",
            "json",
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--node-name",
            "crm-test-1:8080",
            "--data-dir",
        ])
        .arg(data)
        .env("LEADFLOW_LOG", "info");
    let served = Served::start(command);

    let deadline = Instant::now() + Duration::from_secs(30);
    while state_of(&status(data), "history") != "live" {
        assert!(
            Instant::now() < deadline,
            "history never live: {}",
            status(data)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let paused = leadflow(
        data,
        &["projections", "pause", "history", "--reason", "maintenance"],
    );
    assert!(paused.contains("paused"), "{paused}");
    let now = status(data);
    assert!(
        now["source"].as_str().unwrap().contains("running server"),
        "{now}"
    );
    assert_eq!(state_of(&now, "history"), "paused");
    assert_eq!(state_of(&now, "leads"), "live");

    let resumed = leadflow(
        data,
        &[
            "projections",
            "resume",
            "history",
            "--reason",
            "maintenance",
        ],
    );
    assert!(!resumed.contains("paused"), "{resumed}");
    let actions = leadflow(data, &["projections", "actions", "history"]);
    let lines: Vec<&str> = actions.lines().collect();
    assert_eq!(lines.len(), 2, "{actions}");
    assert!(
        lines[0].contains("ReadModelPaused") && lines[0].contains("reason maintenance"),
        "{actions}"
    );
    assert!(lines[1].contains("ReadModelResumed"), "{actions}");
    assert!(
        lines.iter().all(|l| l.ends_with("on crm-test-1:8080")),
        "where each was done: {actions}"
    );
    let letters = leadflow(data, &["projections", "dead-letters", "leads"]);
    assert!(letters.contains("leads has skipped no event"), "{letters}");

    // Refused: no generation of history is being built.
    let none = Command::new(BIN)
        .args(["projections", "pause", "history", "--building"])
        .args(["--reason", "maintenance", "--data-dir"])
        .arg(data)
        .env("LEADFLOW_LOG", "warn")
        .output()
        .unwrap();
    assert!(!none.status.success());
    let why = String::from_utf8_lossy(&none.stderr);
    assert!(
        why.contains("no generation of history is being built"),
        "{why}"
    );

    // Refused: nothing to retry on a model that follows the log.
    let refused = Command::new(BIN)
        .args([
            "projections",
            "retry",
            "leads",
            "--reason",
            "fix-deployed",
            "--data-dir",
        ])
        .arg(data)
        .env("LEADFLOW_LOG", "warn")
        .output()
        .unwrap();
    assert!(!refused.status.success());
    let why = String::from_utf8_lossy(&refused.stderr);
    assert!(
        why.contains("cannot retry leads") && why.contains("BAD_USER_INPUT"),
        "{why}"
    );

    // The server's log: JSON lines, the ops actions among them.
    let log = served.output.lock().unwrap().clone();
    let lines: Vec<Value> = log
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    assert!(
        lines
            .iter()
            .any(|l| l["fields"]["message"] == "ops action" && l["fields"]["action"] == "pause"),
        "{log}"
    );
    assert!(lines
        .iter()
        .all(|l| l["level"].is_string() && l["timestamp"].is_string()));
}

#[test]
fn without_a_server_an_action_says_so_and_status_reads_the_files() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    // A store and read models, then no server.
    drop(Served::start({
        let mut c = Command::new(BIN);
        c.args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(data);
        c
    }));
    let out = Command::new(BIN)
        .args([
            "projections",
            "pause",
            "leads",
            "--reason",
            "maintenance",
            "--data-dir",
        ])
        .arg(data)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no server is serving"));
    let now = status(data);
    assert!(now["source"].as_str().unwrap().contains("files"), "{now}");
    assert_eq!(now["projections"].as_array().unwrap().len(), 3, "{now}");
}
