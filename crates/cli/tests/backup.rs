//! `leadflow backup` and `restore`, through the binary: a backup taken while commands run
//! restores to a store whose log is a prefix of the original; a store that holds events is
//! only replaced with `--force`; an erasure made after the backup is carried over into the
//! restored store (the person's key is gone there too); the read models are rebuilt.

mod common;

use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use serde_json::json;

use common::{gql, leadflow, Served, BIN};

type Row = (i64, i64, i64, Vec<u8>, String, Vec<u8>, Vec<u8>);

/// Every event as the store's table holds it, in log order.
fn log(data: &Path) -> Vec<Row> {
    let conn = rusqlite::Connection::open_with_flags(
        data.join("events.db"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .unwrap();
    let mut stmt = conn
        .prepare("SELECT position, stream_id, revision, event_id, event_type, data, metadata FROM events ORDER BY position")
        .unwrap();
    stmt.query_map([], |r| {
        Ok((
            r.get(0)?,
            r.get(1)?,
            r.get(2)?,
            r.get(3)?,
            r.get(4)?,
            r.get(5)?,
            r.get(6)?,
        ))
    })
    .unwrap()
    .collect::<rusqlite::Result<_>>()
    .unwrap()
}

fn has_key(data: &Path, subject: &str) -> bool {
    let conn = rusqlite::Connection::open_with_flags(
        data.join("events.db"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .unwrap();
    let subject = uuid::Uuid::parse_str(subject).unwrap();
    conn.query_row(
        "SELECT wrapped IS NOT NULL FROM subject_keys WHERE subject = ?1",
        [subject.as_bytes().as_slice()],
        |r| r.get::<_, bool>(0),
    )
    .unwrap_or(false)
}

fn serve(data: &Path) -> Served {
    let mut command = Command::new(BIN);
    command
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data);
    Served::start(command)
}

const REGISTER: &str =
    "mutation($i: RegisterLeadInput!) { registerLead(input: $i) { lead { id subject } position } }";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_taken_while_commands_run_restores_to_a_prefix_and_keeps_later_erasures() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let served = serve(&data);
    let olga = leadflow(&data, &["token", "issue", "--user", "olga.supervisor"]);
    let admin = leadflow(&data, &["token", "issue", "--user", "admin"]);
    let (olga, admin) = (olga.trim().to_owned(), admin.trim().to_owned());
    let person = gql(
        &served.address,
        &olga,
        REGISTER,
        json!({ "i": { "title": "Racks", "unassigned": true, "contactName": "Zlatoslava Quincewood" } }),
    )
    .await;
    let subject = person["registerLead"]["lead"]["subject"]
        .as_str()
        .unwrap()
        .to_owned();

    // Commands all along the backup.
    let stop = Arc::new(AtomicBool::new(false));
    let acknowledged = Arc::new(AtomicU64::new(0));
    let writer = {
        let (address, token) = (served.address.clone(), olga.clone());
        let (stop, acknowledged) = (stop.clone(), acknowledged.clone());
        tokio::spawn(async move {
            let mut n = 0;
            while !stop.load(Ordering::SeqCst) {
                gql(
                    &address,
                    &token,
                    REGISTER,
                    json!({ "i": { "title": format!("Lead {n}"), "unassigned": true } }),
                )
                .await;
                acknowledged.fetch_add(1, Ordering::SeqCst);
                n += 1;
            }
        })
    };
    while acknowledged.load(Ordering::SeqCst) < 20 {
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let backup = dir.path().join("leadflow.backup");
    let out = {
        let (data, backup) = (data.clone(), backup.clone());
        tokio::task::spawn_blocking(move || {
            leadflow(&data, &["backup", "--out", backup.to_str().unwrap()])
        })
        .await
        .unwrap()
    };
    assert!(out.contains("backed up"), "{out}");
    let during = acknowledged.load(Ordering::SeqCst);
    while acknowledged.load(Ordering::SeqCst) < during + 10 {
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    stop.store(true, Ordering::SeqCst);
    writer.await.unwrap();
    // The person asks to be forgotten after the backup was taken.
    gql(
        &served.address,
        &admin,
        "mutation($s: ID!) { erasePersonalData(subject: $s, reasonCode: REQUEST, ticket: \"GDPR-7\") { erasedNow } }",
        json!({ "s": subject }),
    )
    .await;
    drop(served);
    let original = log(&data);
    assert!(!has_key(&data, &subject));

    // Into an empty directory: a prefix of the original log, shorter than it.
    let elsewhere = dir.path().join("elsewhere");
    let out = leadflow(&elsewhere, &["restore", "--from", backup.to_str().unwrap()]);
    assert!(out.contains("restored"), "{out}");
    let restored = log(&elsewhere);
    assert!(
        restored.len() > 20 && restored.len() < original.len(),
        "{} of {}",
        restored.len(),
        original.len()
    );
    assert!(
        original.starts_with(&restored),
        "the restored log is not a prefix of the original"
    );
    assert!(
        has_key(&elsewhere, &subject),
        "the backup predates the erasure"
    );

    // Over the original: refused without --force, and nothing changes.
    let refused = Command::new(BIN)
        .args(["restore", "--from"])
        .arg(&backup)
        .arg("--data-dir")
        .arg(&data)
        .output()
        .unwrap();
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("without --force"));
    assert_eq!(log(&data), original);

    // Forced: the backup's log, and the erasure made since then applied to it again.
    let out = leadflow(
        &data,
        &["restore", "--force", "--from", backup.to_str().unwrap()],
    );
    assert!(out.contains("erased again 1 data subjects"), "{out}");
    assert!(
        !has_key(&data, &subject),
        "the erased person's key came back"
    );
    let after = log(&data);
    assert!(after.starts_with(&restored));
    assert_eq!(after.len(), restored.len() + 1);
    assert_eq!(after.last().unwrap().4, "PersonalDataErased");
    assert!(
        !data.join("read").exists(),
        "read models are rebuilt, never restored"
    );

    // It serves: the read models rebuilt from the restored log, the person erased.
    let served = serve(&data);
    let lead = person["registerLead"]["lead"]["id"].as_str().unwrap();
    let card = gql(
        &served.address,
        &olga,
        "query($id: ID!, $at: Position) { lead(id: $id, consistency: $at) { title contactName stage } }",
        json!({ "id": lead, "at": after.last().unwrap().0.to_string() }),
    )
    .await;
    assert_eq!(card["lead"]["contactName"], "[erased]", "{card}");
    assert_eq!(
        card["lead"]["title"], "[erased]",
        "a lead's title is personal too"
    );
    assert_eq!(
        card["lead"]["stage"], "QUALIFICATION",
        "the process history stays"
    );
}
