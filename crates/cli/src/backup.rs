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
use leadflow_store::{EventStore, Position};
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
    let partial = args.out.with_extension("partial");
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
        copy.step(-1).context("the backup step failed")?;
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
        let old = EmbeddedStore::open(&target).context("the store is in use")?;
        let found = erasures(&old).await?;
        drop(old);
        found
    } else {
        Vec::new()
    };
    let incoming = data_dir.join("events.db.restoring");
    let _ = std::fs::remove_file(&incoming);
    std::fs::copy(&args.from, &incoming)?;
    private::restrict(&incoming)?;
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
    if !erasures.is_empty() {
        let store: Arc<dyn EventStore> = Arc::new(EmbeddedStore::open(&target)?);
        let keys = keyring(&data_dir, &store, true).await?;
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
        println!("erased again {again} data subjects erased after the backup was taken");
    }
    println!("the read models are rebuilt at the next start");
    Ok(())
}

/// Every erasure a store holds, in log order.
async fn erasures(
    store: &EmbeddedStore,
) -> anyhow::Result<Vec<leadflow_domain::subject::PersonalDataErased>> {
    let mut found = Vec::new();
    let mut from = Position::START;
    loop {
        let batch = store.read_all(from, 4096).await?;
        let Some(last) = batch.last().map(|e| e.position) else {
            break;
        };
        for event in batch {
            if event.event_type != leadflow_domain::subject::ERASED_EVENT {
                continue;
            }
            let envelope = leadflow_codec::decode(event)?;
            if let leadflow_codec::Body::Subject {
                event: SubjectEvent::PersonalDataErased(e),
                ..
            } = envelope.body
            {
                found.push(e);
            }
        }
        from = last;
    }
    Ok(found)
}
