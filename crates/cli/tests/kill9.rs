//! A projection process killed with SIGKILL in the middle of catch-up restarts and ends with
//! exactly the rows of an uninterrupted run: rows and checkpoint commit together, so nothing
//! is lost or applied twice.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

mod common;

use common::{leadflow, BIN};

fn checkpoint(db: &Path) -> Option<i64> {
    let conn =
        rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .ok()?;
    conn.query_row("SELECT position FROM projection_state", [], |r| r.get(0))
        .ok()
}

fn head(data: &Path) -> i64 {
    let conn = rusqlite::Connection::open_with_flags(
        data.join("events.db"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .unwrap();
    conn.query_row("SELECT max(position) FROM events", [], |r| r.get(0))
        .unwrap()
}

fn dumps(read: &Path) -> Vec<String> {
    let mut all = leadflow_projections::dump_tables(&read.join("leads.db")).unwrap();
    all.extend(leadflow_projections::dump_tables(&read.join("history.db")).unwrap());
    all.extend(leadflow_projections::dump_tables(&read.join("transitions.db")).unwrap());
    all
}

#[test]
fn a_projection_killed_mid_catch_up_resumes_with_the_same_rows() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    leadflow(data, &["demo", "--leads", "3000", "--seed", "7"]);
    let head = head(data);

    let reference = data.join("reference");
    leadflow(
        data,
        &[
            "projections",
            "run",
            "--read-dir",
            reference.to_str().unwrap(),
        ],
    );

    let killed = data.join("killed");
    let mut child = Command::new(BIN)
        .args([
            "projections",
            "run",
            "--read-dir",
            killed.to_str().unwrap(),
            "--data-dir",
        ])
        .arg(data)
        .env("LEADFLOW_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    // Kill it as soon as one batch has committed, long before the end of the log.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let progress = checkpoint(&killed.join("leads.db")).unwrap_or(0);
        if progress > 0 {
            break;
        }
        if let Some(status) = child.try_wait().unwrap() {
            panic!("the projection run ended before its first batch committed: {status}");
        }
        assert!(
            Instant::now() < deadline,
            "the projection never committed a batch"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    child.kill().unwrap(); // SIGKILL on Unix
    child.wait().unwrap();
    // A rebuild writes through a rollback journal: a kill mid-batch leaves it hot, and only
    // a connection that may write rolls it back (as the next run's writer will).
    let at_kill: i64 = rusqlite::Connection::open(killed.join("leads.db"))
        .unwrap()
        .query_row("SELECT position FROM projection_state", [], |r| r.get(0))
        .unwrap();
    assert!(
        at_kill < head,
        "killed mid catch-up: checkpoint {at_kill} of {head}"
    );

    leadflow(
        data,
        &["projections", "run", "--read-dir", killed.to_str().unwrap()],
    );
    assert_eq!(checkpoint(&killed.join("leads.db")), Some(head));
    for model in ["leads.db", "history.db"] {
        let mode: String = rusqlite::Connection::open(killed.join(model))
            .unwrap()
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "wal", "{model} after its rebuild");
    }
    let (a, b) = (dumps(&reference), dumps(&killed));
    assert_eq!(a.len(), b.len());
    assert!(a == b, "the resumed run differs from the uninterrupted one");
}
