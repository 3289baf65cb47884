//! The file format: tables, pragmas, and the checks that refuse a file this build cannot read.

use rusqlite::Connection;

use leadflow_store::StoreError;

/// `PRAGMA application_id` of a leadflow event store: "LFES".
pub const APPLICATION_ID: i64 = 0x4C46_4553;
/// The newest file format this build reads and writes (`PRAGMA user_version`). Format 2 added
/// `events.is_binary` (format 1 files are upgraded in place when opened: every event of theirs
/// is JSON); format 3 added `subject_keys` (older files get it, empty, when opened).
pub const FORMAT_VERSION: i64 = 3;

/// The data subjects' keys (issue 20), wrapped by the master key, apart from the events they
/// seal. A destroyed key keeps its row, with no bytes, so later keys for the subject are
/// refused and readers can tell "erased" from "never had one".
pub const KEYS_SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS subject_keys (
    subject      BLOB PRIMARY KEY,
    wrapped      BLOB,
    destroyed_at INTEGER
) WITHOUT ROWID;
";

/// Tables of format 1. Positions are the rowid, assigned by the single writer at commit, so
/// the log has no gaps; a stream's last revision is the max of its `(stream_id, revision)` index.
/// Event ids are unique per stream, as in EventStoreDB: an index on the id alone would put each
/// new (random) id on its own page and multiply what every commit writes and fsyncs.
pub const SCHEMA: &str = "
CREATE TABLE streams (
    id   INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE
);
CREATE TABLE events (
    position    INTEGER PRIMARY KEY,
    stream_id   INTEGER NOT NULL REFERENCES streams(id),
    revision    INTEGER NOT NULL,
    event_id    BLOB NOT NULL,
    event_type  TEXT NOT NULL,
    data        BLOB NOT NULL,
    metadata    BLOB NOT NULL,
    recorded_at INTEGER NOT NULL,
    is_binary   INTEGER NOT NULL DEFAULT 0
);
CREATE UNIQUE INDEX events_by_stream ON events(stream_id, revision);
CREATE UNIQUE INDEX event_ids_by_stream ON events(stream_id, event_id);
";

/// Durability and concurrency settings shared by the writer (and the benchmark's raw limit):
/// WAL so readers never block the writer, `synchronous=FULL` so a commit is fsynced before it
/// is acknowledged.
pub fn apply_writer_pragmas(conn: &Connection) -> rusqlite::Result<()> {
    let mode: String = conn.query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(rusqlite::Error::InvalidParameterName(format!(
            "journal_mode is {mode}, WAL required"
        )));
    }
    // `secure_delete`: a destroyed key's bytes are overwritten in the file, not left in a
    // free page.
    conn.execute_batch(
        "PRAGMA synchronous=FULL;
         PRAGMA secure_delete=ON;
         PRAGMA cache_size=-65536;
         PRAGMA temp_store=MEMORY;
         PRAGMA foreign_keys=OFF;",
    )?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    // Room for each distinct `LIMIT` the reads write into their SQL (see `crate::limit`).
    conn.set_prepared_statement_cache_capacity(64);
    Ok(())
}

pub fn apply_reader_pragmas(conn: &Connection) -> rusqlite::Result<()> {
    conn.execute_batch("PRAGMA query_only=1; PRAGMA cache_size=-32768; PRAGMA temp_store=MEMORY; PRAGMA mmap_size=1099511627776;")?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    Ok(())
}

/// Checks that `conn` holds a leadflow store this build can read, creating the schema in an
/// empty file.
pub fn check_or_create(conn: &Connection, path: &str) -> Result<(), StoreError> {
    let open_err = |reason: String| StoreError::Open {
        path: path.to_owned(),
        reason,
    };
    let sqlite_err = |e: rusqlite::Error| open_err(describe(&e));
    let app_id: i64 = conn
        .query_row("PRAGMA application_id", [], |r| r.get(0))
        .map_err(sqlite_err)?;
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(sqlite_err)?;
    let objects: i64 = conn
        .query_row("SELECT count(*) FROM sqlite_master", [], |r| r.get(0))
        .map_err(sqlite_err)?;
    if app_id == 0 && objects == 0 {
        conn.execute_batch(&format!(
            "BEGIN; {SCHEMA} {KEYS_SCHEMA} PRAGMA application_id={APPLICATION_ID}; PRAGMA user_version={FORMAT_VERSION}; COMMIT;"
        ))
        .map_err(sqlite_err)?;
        return Ok(());
    }
    if app_id != APPLICATION_ID {
        return Err(open_err(format!(
            "not a leadflow event store (a SQLite database with application id {app_id:#x} and {objects} schema objects)"
        )));
    }
    if version > FORMAT_VERSION {
        return Err(open_err(format!(
            "written by a newer leadflow: store format {version}, this build reads formats up to {FORMAT_VERSION}; upgrade leadflow"
        )));
    }
    if version < 1 {
        return Err(open_err(format!("unknown store format {version}")));
    }
    if version == 1 {
        conn.execute_batch(
            "BEGIN IMMEDIATE;
             ALTER TABLE events ADD COLUMN is_binary INTEGER NOT NULL DEFAULT 0;
             PRAGMA user_version = 2;
             COMMIT;",
        )
        .map_err(sqlite_err)?;
    }
    if version < 3 {
        conn.execute_batch(&format!(
            "BEGIN IMMEDIATE; {KEYS_SCHEMA} PRAGMA user_version = 3; COMMIT;"
        ))
        .map_err(sqlite_err)?;
    }
    Ok(())
}

/// A readable reason for a SQLite failure, naming corruption and foreign files plainly.
pub fn describe(e: &rusqlite::Error) -> String {
    use rusqlite::ErrorCode;
    match e.sqlite_error_code() {
        Some(ErrorCode::NotADatabase) => {
            "not a SQLite database (foreign or corrupt file)".to_owned()
        }
        Some(ErrorCode::DatabaseCorrupt) => format!("the file is corrupt: {e}"),
        Some(ErrorCode::CannotOpen) => format!("cannot open the file: {e}"),
        Some(ErrorCode::ReadOnly) | Some(ErrorCode::PermissionDenied) => {
            format!("no permission to write: {e}")
        }
        _ => e.to_string(),
    }
}
