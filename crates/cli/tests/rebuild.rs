//! A rebuild beside the live model, through the binary: `serve` killed with SIGKILL in the
//! middle of a rebuild of `leads`, then started again: the rebuild goes on from its own
//! checkpoint (not from zero), the live generation answers queries before, during and after,
//! and the rebuilt one switches in equal to it. Also `projections rebuild --all` without a
//! server, and `rollback`.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

use common::{client, graphql, leadflow, Served, BIN};

fn checkpoint(db: &Path) -> Option<i64> {
    let conn =
        rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .ok()?;
    conn.query_row("SELECT position FROM projection_state", [], |r| r.get(0))
        .ok()
}

fn serve(data: &Path, log: &str) -> Served {
    let mut command = Command::new(BIN);
    command
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data)
        .env("LEADFLOW_LOG", log);
    Served::start(command)
}

async fn health(s: &Served) -> Value {
    client()
        .get(format!("http://{}/health", s.address))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

fn model<'a>(health: &'a Value, name: &str) -> &'a Value {
    health["projections"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == name)
        .unwrap()
}

async fn count(s: &Served, token: &str) -> u64 {
    let answer = graphql(s, Some(token), "{ leads(first: 1) { totalCount } }").await;
    answer["data"]["leads"]["totalCount"]
        .as_u64()
        .unwrap_or_else(|| panic!("{answer}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rebuild_killed_mid_way_resumes_from_its_checkpoint_while_the_live_model_serves() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    leadflow(data, &["demo", "--leads", "3000", "--seed", "7"]);
    let token = leadflow(data, &["token", "issue", "--user", "admin"])
        .trim()
        .to_owned();
    let first = serve(data, "warn");
    let deadline = Instant::now() + Duration::from_secs(120);
    while model(&health(&first).await, "leads")["state"] != "live" {
        assert!(Instant::now() < deadline, "never live");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let leads = count(&first, &token).await;
    assert!(leads > 1000, "{leads}");

    let answer = graphql(
        &first,
        Some(&token),
        "mutation { rebuildProjection(name: \"leads\", reason: UPGRADE) { name generation rebuild { generation } } }",
    )
    .await;
    assert_eq!(
        answer["data"]["rebuildProjection"][0]["rebuild"]["generation"], 1,
        "{answer}"
    );
    // Killed as soon as the new generation has committed a batch, long before its end.
    let building = data.join("read").join("leads.g1.db");
    let deadline = Instant::now() + Duration::from_secs(60);
    while checkpoint(&building).unwrap_or(0) == 0 {
        assert!(
            Instant::now() < deadline,
            "the rebuild never committed a batch"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    // The live model answered all along.
    assert_eq!(count(&first, &token).await, leads);
    let mut first = first;
    first.child.kill().unwrap(); // SIGKILL
    first.child.wait().unwrap();
    // A writable connection rolls a hot journal back, as the next writer will.
    let at_kill: i64 = rusqlite::Connection::open(&building)
        .unwrap()
        .query_row("SELECT position FROM projection_state", [], |r| r.get(0))
        .unwrap();
    assert!(at_kill > 0);
    let manifest: Value =
        serde_json::from_slice(&std::fs::read(data.join("read/generations.json")).unwrap())
            .unwrap();
    assert_eq!(manifest["leads"]["building"], 1, "{manifest}");
    assert_eq!(manifest["leads"]["live"], 0, "{manifest}");

    let second = serve(data, "info");
    let now = health(&second).await;
    let leads_now = model(&now, "leads");
    if let Some(rebuild) = leads_now["rebuild"].as_object() {
        assert!(
            rebuild["checkpoint"].as_i64().unwrap() >= at_kill,
            "resumed from zero? {now}"
        );
    }
    assert_eq!(
        count(&second, &token).await,
        leads,
        "the live model serves at once"
    );
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let h = health(&second).await;
        let m = model(&h, "leads");
        if m["generation"] == 1 && m["rebuild"].is_null() {
            break;
        }
        assert!(Instant::now() < deadline, "never switched: {h}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(count(&second, &token).await, leads);
    let log = second.output.lock().unwrap().clone();
    assert!(
        log.contains("resuming the rebuild beside the live model"),
        "{log}"
    );
    assert!(log.contains("switched to the new generation"), "{log}");
    drop(second);

    // The two generations hold the same model.
    let read = data.join("read");
    assert_eq!(
        leadflow_projections::dump_tables(&read.join("leads.db")).unwrap(),
        leadflow_projections::dump_tables(&read.join("leads.g1.db")).unwrap()
    );

    // Offline: every model rebuilt and verified in this process, then switched in.
    let out = leadflow(
        data,
        &[
            "projections",
            "rebuild",
            "--all",
            "--verify",
            "--reason",
            "verification",
        ],
    );
    for name in [
        "leads now serves from generation 2",
        "history now serves from generation 1",
        "transitions now serves from generation 1",
    ] {
        assert!(out.contains(name), "{out}");
    }

    // Each rebuild is in the log, the server's and this process's alike: who, when, why.
    let third = serve(data, "warn");
    let actions = leadflow(data, &["projections", "actions"]);
    drop(third);
    let lines: Vec<&str> = actions.lines().collect();
    assert_eq!(lines.len(), 4, "{actions}");
    assert!(lines.iter().all(|l| l.contains("ReadModelRebuildStarted")));
    assert!(lines[0].contains("leads") && lines[0].contains("reason upgrade"));
    // Where: the server's `host:port`, then this process's `host:cli`.
    assert!(!lines[0].contains(":cli"), "{actions}");
    assert!(lines[1..].iter().all(|l| l.ends_with(":cli")), "{actions}");
    for (line, model) in lines[1..].iter().zip(["history", "leads", "transitions"]) {
        assert!(
            line.contains(model)
                && line.contains("reason verification")
                && line.contains("verified"),
            "{actions}"
        );
    }
}
