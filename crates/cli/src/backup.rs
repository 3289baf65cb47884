//! `leadflow backup --out FILE` and `leadflow restore --from FILE`: the embedded store, copied
//! online and restored. Read models are never backed up (they are rebuilt from the log).
//!
//! The backup uses SQLite's online backup API in one step, inside one read transaction of a
//! read-only connection: a consistent snapshot of the log (and the subjects' wrapped keys) as
//! of one commit, taken while `serve` goes on appending (the WAL lets it). The copy is checked
//! (`integrity_check`, the store's application id) before it is named `FILE`.
//!
//! A restore refuses to overwrite a store that holds events unless `--force`. Forced, it first
//! reads the erasures the store being replaced holds: a backup from before an erasure still
//! has that person's key, so each of them is erased again in the restored store (same subject,
//! admin, reason and ticket) before anything can read it. The read models are removed; the next
//! start rebuilds them from the restored log.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context as _};
use clap::Args;
use rusqlite::{Connection, OpenFlags};

use leadflow_domain::{SubjectCommand, SubjectEvent};
use leadflow_store::EventStore;
use leadflow_store_embedded::EmbeddedStore;

use crate::{keyring, private, running_server, DataArgs};

#[derive(Args)]
pub struct BackupArgs {
    #[command(flatten)]
    data: DataArgs,
    /// Where the copy goes (a new file; an existing one is refused).
    #[arg(long)]
    out: PathBuf,
}

#[derive(Args)]
pub struct RestoreArgs {
    #[command(flatten)]
    data: DataArgs,
    /// The backup to restore.
    #[arg(long)]
    from: PathBuf,
    /// Replace a store that holds events (its erasures are carried over).
    #[arg(long)]
    force: bool,
}

/// The store's file in a data directory.
fn store_file(data_dir: &Path) -> PathBuf {
    data_dir.join("events.db")
}

/// Events and the last position in a store file (read-only).
fn summary(file: &Path) -> anyhow::Result<(u64, u64)> {
    let conn = Connection::open_with_flags(file, OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    let (n, last): (i64, i64) = conn.query_row(
        "SELECT count(*), coalesce(max(position), 0) FROM events",
        [],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    Ok((n as u64, last as u64))
}

/// Whether `file` is a sound leadflow event store.
fn check(file: &Path) -> anyhow::Result<()> {
    let conn = Connection::open_with_flags(file, OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    let id: i64 = conn.query_row("PRAGMA application_id", [], |r| r.get(0))?;
    if id != leadflow_store_embedded::APPLICATION_ID {
        bail!("{} is not a leadflow event store", file.display());
    }
    let integrity: String = conn.query_row("PRAGMA integrity_check", [], |r| r.get(0))?;
    if integrity != "ok" {
        bail!("{} is damaged: {integrity}", file.display());
    }
    Ok(())
}

pub fn backup(args: BackupArgs) -> anyhow::Result<()> {
    let source = store_file(&args.data.data_dir);
    if !source.is_file() {
        bail!("no embedded store at {}", source.display());
    }
    if args.out.exists() {
        bail!(
            "{} exists: a backup goes into a new file",
            args.out.display()
        );
    }
    let partial = PathBuf::from(format!("{}.partial", args.out.display()));
    let _ = std::fs::remove_file(&partial);
    {
        // Read-only: the running server stays the only writer.
        let from = Connection::open_with_flags(&source, OpenFlags::SQLITE_OPEN_READ_ONLY)
            .with_context(|| format!("cannot open {}", source.display()))?;
        from.busy_timeout(std::time::Duration::from_secs(30))?;
        let mut to = Connection::open(&partial)
            .with_context(|| format!("cannot create {}", partial.display()))?;
        let copy = rusqlite::backup::Backup::new(&from, &mut to)?;
        // Every page in one step: one read transaction, one consistent snapshot, never
        // restarted by the server's commits meanwhile.
        match copy.step(-1).context("the backup step failed")? {
            rusqlite::backup::StepResult::Done => {}
            other => bail!("the store stayed busy during the backup ({other:?}); try again"),
        }
    }
    private::restrict(&partial)?;
    check(&partial)?;
    std::fs::File::open(&partial)?.sync_all()?;
    std::fs::rename(&partial, &args.out)?;
    if let Some(dir) = args.out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::File::open(dir)?.sync_all()?;
    }
    let (events, last) = summary(&args.out)?;
    let bytes = std::fs::metadata(&args.out)?.len();
    println!(
        "backed up {events} events up to position {last} ({bytes} bytes) into {}",
        args.out.display()
    );
    println!(
        "keep the master key apart from it: the backup holds the personal data keys only wrapped by it"
    );
    Ok(())
}

pub async fn restore(args: RestoreArgs) -> anyhow::Result<()> {
    let data_dir = args.data.data_dir.clone();
    check(&args.from).context("the backup cannot be restored")?;
    if running_server(&data_dir).await.is_some() {
        bail!("a server is serving {}: stop it first", data_dir.display());
    }
    private::prepare(&data_dir)?;
    // The store's own lock, for the whole restore: no server, node or projection run opens
    // the store meanwhile.
    let _lock = lock(&data_dir)?;
    let target = store_file(&data_dir);
    let held = if target.is_file() {
        summary(&target)?.0
    } else {
        0
    };
    if held > 0 && !args.force {
        bail!(
            "{} holds {held} events: restore refuses to overwrite a store that is not empty without --force",
            target.display()
        );
    }
    // The erasures of the store being replaced, to carry over.
    let erasures = if held > 0 {
        erasures(&target)?
    } else {
        Vec::new()
    };
    // Everything happens on the incoming copy; the store is replaced only once it is whole,
    // the erasures applied to it: a failure or a crash before leaves the old store as it was.
    let incoming = data_dir.join("events.db.restoring");
    for suffix in ["", "-wal", "-shm", ".lock"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", incoming.display()));
    }
    std::fs::copy(&args.from, &incoming)?;
    private::restrict(&incoming)?;
    let again = if erasures.is_empty() {
        0
    } else {
        erase_again(&data_dir, &incoming, erasures).await?
    };
    // Whatever the engine wrote is in the file itself, not in a WAL left beside it.
    Connection::open(&incoming)?.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
    for suffix in ["-wal", "-shm", ".lock"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", incoming.display()));
    }
    std::fs::File::open(&incoming)?.sync_all()?;
    // The old file's WAL and shared memory must not meet the new file.
    for suffix in ["-wal", "-shm"] {
        let _ = std::fs::remove_file(data_dir.join(format!("events.db{suffix}")));
    }
    std::fs::rename(&incoming, &target)?;
    std::fs::File::open(&data_dir)?.sync_all()?;
    // Read models of another log: rebuilt at the next start.
    let read = data_dir.join("read");
    if read.exists() {
        std::fs::remove_dir_all(&read)
            .with_context(|| format!("cannot remove the read models in {}", read.display()))?;
    }
    let (events, last) = summary(&target)?;
    println!(
        "restored {events} events up to position {last} into {}",
        target.display()
    );
    if again > 0 {
        println!("erased again {again} data subjects erased after the backup was taken");
    }
    println!("the read models are rebuilt at the next start");
    Ok(())
}

/// The lock the embedded store takes (`events.db.lock`), held by this process.
fn lock(data_dir: &Path) -> anyhow::Result<std::fs::File> {
    let path = data_dir.join("events.db.lock");
    let file = std::fs::File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("cannot open {}", path.display()))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => {
            bail!(
                "the store in {} is in use by another process",
                data_dir.display()
            )
        }
        Err(std::fs::TryLockError::Error(e)) => Err(e.into()),
    }
}

/// Erases each subject again in the store at `file`, through the engine, as the admin who
/// erased them first, with the same reason and ticket. How many were erased now.
async fn erase_again(
    data_dir: &Path,
    file: &Path,
    erasures: Vec<leadflow_domain::subject::PersonalDataErased>,
) -> anyhow::Result<usize> {
    let embedded = EmbeddedStore::open(file)?;
    let store: Arc<dyn EventStore> = Arc::new(embedded.clone());
    let keys = keyring(data_dir, &store, true).await?;
    let engine = leadflow_app::open_engine(store, Some(keys), false).await?;
    let mut again = 0;
    for e in erasures {
        let meta = leadflow_engine::CommandMeta::by(leadflow_domain::Actor {
            user: e.by,
            role: leadflow_domain::Role::Admin,
        })
        .with_key(format!("restore-erasure-{}", e.subject));
        let outcome = engine
            .execute_subject(
                SubjectCommand::Erase {
                    subject: e.subject,
                    reason: e.reason_code,
                    ticket: e.ticket,
                },
                meta,
            )
            .await
            .with_context(|| format!("cannot erase subject {} again", e.subject))?;
        if outcome.kind == leadflow_engine::OutcomeKind::Appended {
            again += 1;
        }
    }
    drop(engine);
    drop(embedded);
    Ok(again)
}

/// Every erasure the store file holds, in log order (read directly: its lock is ours).
fn erasures(file: &Path) -> anyhow::Result<Vec<leadflow_domain::subject::PersonalDataErased>> {
    use leadflow_codec::Stored as _;
    let conn = Connection::open_with_flags(file, OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    let mut stmt =
        conn.prepare("SELECT data, metadata FROM events WHERE event_type = ?1 ORDER BY position")?;
    let rows = stmt
        .query_map([leadflow_domain::subject::ERASED_EVENT], |r| {
            Ok((r.get::<_, Vec<u8>>(0)?, r.get::<_, Vec<u8>>(1)?))
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let mut found = Vec::new();
    for (data, metadata) in rows {
        let version = serde_json::from_slice::<serde_json::Value>(&metadata)
            .ok()
            .and_then(|m| m["version"].as_u64())
            .unwrap_or(1) as u32;
        let event = leadflow_domain::SubjectAggregate::decode(
            leadflow_domain::subject::ERASED_EVENT,
            version,
            &data,
        )
        .context("an erasure in the store does not decode")?;
        if let SubjectEvent::PersonalDataErased(e) = event {
            found.push(e);
        }
    }
    Ok(found)
}
