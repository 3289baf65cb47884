//! Read models heal by themselves, through the `leadflow` binary over HTTP: `serve` with its
//! read models on a real file system of 2 MiB (a tmpfs in a private mount namespace, as ops
//! would put them on a small volume), commands until that disk is full, then space freed:
//! `/health` goes degraded with the models retrying, then back to ok with no restart, and every
//! acknowledged lead is on the board. `projections status` asks the running server.

mod common;

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

use common::{client, graphql, leadflow, Served, BIN};

/// `serve` with `<data>/read` on a 2 MiB tmpfs that only it sees.
fn serve_on_a_small_disk(data: &Path) -> Served {
    std::fs::create_dir_all(data.join("read")).unwrap();
    let user_namespace: &[&str] = if is_root() {
        &[]
    } else {
        &["--user", "--map-root-user"]
    };
    let probe = Command::new("unshare")
        .args(user_namespace)
        .args(["--mount", "true"])
        .output();
    assert!(
        probe.as_ref().is_ok_and(|o| o.status.success()),
        "this test puts the read models on a small tmpfs of their own and needs `unshare --mount` \
         (util-linux, as root or with unprivileged user namespaces): {probe:?}"
    );
    let mut command = Command::new("unshare");
    command.args(user_namespace);
    command
        .args(["--mount", "--propagation", "private", "sh", "-c"])
        .arg(r#"mount -t tmpfs -o size=2m,mode=0700 tmpfs "$1/read" && exec "$2" serve --listen 127.0.0.1:0 --data-dir "$1""#)
        .arg("sh")
        .arg(data)
        .arg(BIN);
    Served::start(command)
}

fn is_root() -> bool {
    std::fs::metadata("/proc/self")
        .map(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0)
        .unwrap_or(false)
}

/// The server's view of `path` (inside its mount namespace).
fn inside(s: &Served, path: &Path) -> PathBuf {
    Path::new(&format!("/proc/{}/root", s.child.id())).join(path.strip_prefix("/").unwrap())
}

async fn health(s: &Served) -> (u16, Value) {
    let response = client()
        .get(format!("http://{}/health", s.address))
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

async fn until_health(s: &Served, what: &str, check: impl Fn(u16, &Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (code, body) = health(s).await;
        if check(code, &body) {
            return body;
        }
        assert!(
            Instant::now() < deadline,
            "{what} never came: {code} {body}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn read_models_on_a_full_disk_retry_and_heal_without_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let olga = leadflow(&data, &["token", "issue", "--user", "olga.supervisor"])
        .trim()
        .to_owned();
    let s = serve_on_a_small_disk(&data);
    until_health(&s, "ok", |code, _| code == 200).await;

    // Fill the small disk, then keep registering leads: the event store (elsewhere) takes them.
    let filler = inside(&s, &data.join("read").join("filler"));
    let mut file = std::fs::File::create(&filler).unwrap();
    let chunk = vec![0u8; 64 * 1024];
    while file.write_all(&chunk).is_ok() {}
    drop(file);
    let mut registered = 0;
    let deadline = Instant::now() + Duration::from_secs(60);
    let degraded = loop {
        let answer = graphql(
            &s,
            Some(&olga),
            &format!(
                r#"mutation {{ registerLead(input: {{ title: "Lead {registered}", comment: "{}" }}) {{ position }} }}"#,
                "x".repeat(2000)
            ),
        )
        .await;
        assert!(answer["errors"].is_null(), "{answer}");
        registered += 1;
        let (code, body) = health(&s).await;
        if code == 503 {
            break body;
        }
        assert!(Instant::now() < deadline, "never degraded: {body}");
    };
    let retrying = degraded["projections"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["state"] == "retrying")
        .unwrap_or_else(|| panic!("no model retrying: {degraded}"));
    assert!(
        retrying["error"].as_str().unwrap().contains("full"),
        "{retrying}"
    );
    assert!(retrying["attempts"].as_u64().unwrap() >= 1, "{retrying}");
    assert!(retrying["nextAttempt"].is_string(), "{retrying}");
    assert_eq!(degraded["status"], "degraded");

    // `projections status` asks the running server (the files may not be writable or current).
    let status = Command::new(BIN)
        .args(["projections", "status", "--data-dir"])
        .arg(&data)
        .output()
        .unwrap();
    let printed = String::from_utf8_lossy(&status.stdout);
    assert!(status.status.success(), "{printed}");
    assert!(
        printed.contains("retrying") && printed.contains("from the running server"),
        "{printed}"
    );

    // Space comes back: the models catch up by themselves.
    std::fs::remove_file(&filler).unwrap();
    let healed = until_health(&s, "ok again", |code, _| code == 200).await;
    for p in healed["projections"].as_array().unwrap() {
        assert_eq!(p["state"], "live", "{healed}");
        assert_eq!(p["attempts"], 0, "{healed}");
        assert_eq!(p["checkpoint"], p["head"], "{healed}");
    }
    let board = graphql(&s, Some(&olga), "{ leads(first: 1) { totalCount } }").await;
    assert_eq!(
        board["data"]["leads"]["totalCount"].as_u64(),
        Some(registered),
        "{board}"
    );
}
