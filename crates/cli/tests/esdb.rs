//! The binary on the EventStoreDB backend: `leadflow serve --node` exposes its store over the
//! EventStoreDB protocol, and `leadflow projections run --store esdb://...` builds the read
//! models through that node exactly as they are built from the file directly.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_leadflow");

fn leadflow(args: &[&str], data: &Path) -> std::process::Output {
    leadflow_with(args, data, &[])
}

fn leadflow_with(args: &[&str], data: &Path, env: &[(&str, &str)]) -> std::process::Output {
    Command::new(BIN)
        .args(args)
        .arg("--data-dir")
        .arg(data)
        .env("LEADFLOW_LOG", "warn")
        .envs(env.iter().copied())
        .output()
        .expect("run leadflow")
}

fn dumps(read: &Path) -> Vec<String> {
    let mut all = leadflow_projections::dump_tables(&read.join("leads.db")).unwrap();
    all.extend(leadflow_projections::dump_tables(&read.join("history.db")).unwrap());
    all.extend(leadflow_projections::dump_tables(&read.join("transitions.db")).unwrap());
    all
}

#[test]
fn serve_node_exposes_the_store_and_projections_run_through_it() {
    let dir = tempfile::tempdir().unwrap();
    let served = dir.path().join("served");
    let mut serve = Command::new(BIN)
        .args(["serve", "--listen", "127.0.0.1:0", "--node", "127.0.0.1:0"])
        .args(["--demo", "--demo-leads", "40", "--data-dir"])
        .arg(&served)
        .env("LEADFLOW_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start leadflow serve --node");
    let (tx, rx) = mpsc::channel();
    let stdout = serve.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(conn) = line.trim().strip_prefix("EventStoreDB gRPC: ") {
                let _ = tx.send(conn.to_owned());
            }
        }
    });
    let connection = rx
        .recv_timeout(Duration::from_secs(120))
        .expect("serve --node prints the node's connection string");

    // Through the node: personal fields are sealed, so another process needs the master key.
    let remote = dir.path().join("remote");
    let out = leadflow(&["projections", "run", "--store", &connection], &remote);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && stderr.contains("LEADFLOW_MASTER_KEY"),
        "{stderr}"
    );
    let master = std::fs::read_to_string(served.join("master.key")).unwrap();
    let key = [("LEADFLOW_MASTER_KEY", master.trim())];
    let out = leadflow_with(
        &["projections", "run", "--store", &connection],
        &remote,
        &key,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let status = leadflow(&["projections", "status", "--store", &connection], &remote);
    let status = String::from_utf8_lossy(&status.stdout);
    assert!(
        status.lines().filter(|l| l.contains(" live ")).count() == 3,
        "{status}"
    );
    let _ = serve.kill();
    let _ = serve.wait();

    // From the file directly, now that serve is gone.
    let local = dir.path().join("local");
    let out = leadflow(
        &["projections", "run", "--read-dir", local.to_str().unwrap()],
        &served,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(dumps(&remote.join("read")), dumps(&local));
}

#[test]
fn a_bad_store_option_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let out = leadflow(&["demo", "--store", "postgres", "--leads", "1"], dir.path());
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--store must be `embedded` or a connection string"),
        "{err}"
    );

    let out = leadflow(
        &["serve", "--store", "esdb://127.0.0.1:1?tls=false", "--node"],
        dir.path(),
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--node serves the embedded store"), "{err}");
}
