//! SQLite tuning for the read models: writer and reader connections, and the journal modes
//! (a rollback journal while rebuilding from zero, the WAL once live).

use std::path::Path;
use std::time::{Duration, Instant};

use leadflow_store::pace;
use rusqlite::Connection;

use crate::ProjectionError;

/// WAL pages between automatic checkpoints while rebuilding from zero, should the switch to
/// a rollback journal fail (SQLite's default is 1,000): hot pages are copied into the
/// database once per checkpoint instead of once per few batches.
pub(crate) const REBUILD_AUTOCHECKPOINT: u32 = 32_768;

/// While rebuilding, the writer reads its database through a memory map: the bulk index
/// builds at the end scan the tables once per index, and a map spares copying every page.
pub(crate) const REBUILD_MMAP: u64 = 1 << 40;

/// How long a rebuilding writer waits for readers before a commit gives up. In rollback
/// mode a commit waits until no read transaction is open; the API's reads are short.
pub(crate) const REBUILD_BUSY_TIMEOUT: Duration = Duration::from_secs(60);

/// The writer's page cache: 128 MiB.
macro_rules! writer_cache {
    () => {
        "PRAGMA cache_size=-131072;"
    };
}
pub(crate) const WRITER_CACHE: &str = writer_cache!();

/// The writer's settings. Read models are rebuildable from the log and their checkpoint
/// commits with their rows, so NORMAL (durable across a process kill, not an OS crash) is
/// enough. `secure_delete`: what an erasure replaces (issue 20) is overwritten in the file,
/// not left in a free page or a free slot. Temporary storage in memory, so that no sort of
/// personal values spills into a file outside the data directory.
pub(crate) const WRITER_SETTINGS: &str = concat!(
    "PRAGMA synchronous=NORMAL; PRAGMA secure_delete=ON; PRAGMA temp_store=MEMORY; PRAGMA threads=2;",
    writer_cache!()
);

pub(crate) fn open_writer(path: &Path) -> Result<Connection, ProjectionError> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(Duration::from_secs(5))?;
    // A rebuild killed midway left the file on a rollback journal; opening rolls it back.
    wal(&conn, path)?;
    conn.execute_batch(WRITER_SETTINGS)?;
    conn.busy_timeout(Duration::from_secs(5))?;
    paced(&conn);
    Ok(conn)
}

/// SQLite virtual machine instructions between two of a connection's [`pace::tick`]s.
const PACE_OPS: i32 = 256;

/// Statements on `conn` give the CPU up at short intervals when they run in the background
/// (a rebuild beside the live model; an index build's statement too, though not SQLite's sort
/// threads under it): see [`pace`].
pub(crate) fn paced(conn: &Connection) {
    conn.progress_handler(
        PACE_OPS,
        Some(|| {
            pace::tick();
            false
        }),
    );
}

/// While rebuilding from zero, a rollback journal instead of the WAL. A rebuild mostly adds
/// pages, and new pages need no journal: each is written once, straight into the database,
/// where the WAL writes it, reads it back and writes it again at the checkpoint (a third of
/// the rebuild's CPU went to that). A kill mid-batch is as safe as with the WAL: the next
/// open rolls the hot journal back, and the batch is applied again from the checkpoint.
/// Readers and the commit exclude each other meanwhile, which a model still rebuilding can
/// afford. If the switch is refused (another process has the file open), the rebuild runs
/// on the WAL with rarer checkpoints.
pub(crate) fn rebuild_journal(conn: &Connection, name: &str) -> Result<(), ProjectionError> {
    // Leaving the WAL needs the file to itself: a reader elsewhere refuses the switch, with
    // the old mode as the answer or with SQLITE_BUSY.
    let mode = conn
        .query_row("PRAGMA journal_mode=TRUNCATE", [], |r| {
            r.get::<_, String>(0)
        })
        .unwrap_or_else(|e| e.to_string());
    if !mode.eq_ignore_ascii_case("truncate") {
        tracing::info!(
            projection = name,
            refused = mode,
            "the database is open elsewhere: rebuilding on the WAL"
        );
        conn.execute_batch(&format!(
            "PRAGMA wal_autocheckpoint={REBUILD_AUTOCHECKPOINT}"
        ))?;
    }
    conn.busy_timeout(REBUILD_BUSY_TIMEOUT)?;
    conn.execute_batch(&format!("PRAGMA mmap_size={REBUILD_MMAP}"))?;
    Ok(())
}

/// Back to the WAL once rebuilt, so that readers and the live writer never wait on each
/// other.
pub(crate) fn live_journal(conn: &Connection, name: &str) -> Result<(), ProjectionError> {
    wal(conn, Path::new(&format!("the {name} read model")))?;
    conn.busy_timeout(Duration::from_secs(5))?;
    conn.execute_batch(
        "PRAGMA mmap_size=0; PRAGMA wal_autocheckpoint=1000; PRAGMA wal_checkpoint(TRUNCATE);",
    )?;
    Ok(())
}

/// Puts the database on the WAL. Entering it needs a moment with no read transaction open
/// elsewhere; the switch is retried for a while.
pub(crate) fn wal(conn: &Connection, what: &Path) -> Result<(), ProjectionError> {
    let started = Instant::now();
    loop {
        // Busy: someone reads; wait. Anything else (the disk full, say) is the caller's to
        // classify.
        let mode = match conn.query_row("PRAGMA journal_mode=WAL", [], |r| r.get::<_, String>(0)) {
            Ok(mode) => mode,
            Err(e)
                if matches!(
                    e.sqlite_error_code(),
                    Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
                ) =>
            {
                e.to_string()
            }
            Err(e) => return Err(ProjectionError::Sqlite(e)),
        };
        if mode.eq_ignore_ascii_case("wal") {
            return Ok(());
        }
        if started.elapsed() > REBUILD_BUSY_TIMEOUT {
            return Err(ProjectionError::Busy {
                what: format!(
                    "cannot put {} on the WAL (journal mode: {mode})",
                    what.display()
                ),
            });
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A read-only connection to a read model's file outside the read side (the CLI, ops tools,
/// the bench): no mutex around each call (one thread uses it at a time; SQLite's own would
/// cost a lock per column read), the readers' page cache.
pub fn open_read_only(path: &Path) -> rusqlite::Result<Connection> {
    let flags = rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY
        | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX
        | rusqlite::OpenFlags::SQLITE_OPEN_URI;
    let conn = Connection::open_with_flags(path, flags)?;
    conn.execute_batch("PRAGMA query_only=1; PRAGMA cache_size=-65536; PRAGMA temp_store=MEMORY;")?;
    conn.busy_timeout(Duration::from_secs(5))?;
    Ok(conn)
}

pub(crate) fn open_reader(path: &Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open(path)?;
    conn.execute_batch("PRAGMA query_only=1; PRAGMA cache_size=-65536; PRAGMA temp_store=MEMORY;")?;
    conn.busy_timeout(Duration::from_secs(5))?;
    Ok(conn)
}

/// After a batch that erased a subject: copies the WAL back into the database and truncates
/// it, so no older copy of an overwritten page stays in it. Readers on older snapshots hold
/// the checkpoint back; they are short, so it waits for them a few times.
pub(crate) fn purge_wal(conn: &Connection, name: &str) -> Result<(), ProjectionError> {
    for attempt in 0..50u64 {
        let busy: i64 = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| r.get(0))?;
        if busy == 0 {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(10 * (attempt + 1)));
    }
    tracing::warn!(
        projection = name,
        "readers kept the WAL from being truncated after an erasure; the next one will"
    );
    Ok(())
}
