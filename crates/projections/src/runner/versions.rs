//! Schema versions and rebuilds: a new version of a projection's SQL drops its tables and
//! rebuilds it from zero, with its secondary indexes deferred until caught up. The dead
//! letters stay: a rebuild skips what the operator skipped.

use std::path::PathBuf;

use rusqlite::{params, Connection, OptionalExtension};

use leadflow_store::Position;

use super::sqlite::live_journal;
use crate::{Projection, ProjectionError};

/// Creates the projection's tables, or drops and recreates them when its version changed.
/// Returns the checkpoint to resume from and whether the projection is rebuilding from zero.
///
/// A rebuild runs without the model's secondary indexes (their SQL waits in
/// `projection_state.deferred`, so a rebuild killed midway still restores them) and builds
/// them once caught up: one bulk index build is far cheaper than millions of index inserts.
pub(crate) fn prepare(
    conn: &mut Connection,
    p: &dyn Projection,
) -> Result<(Position, bool), ProjectionError> {
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS projection_state (
             name TEXT PRIMARY KEY, version INTEGER NOT NULL, position INTEGER NOT NULL,
             state TEXT NOT NULL, error TEXT, deferred TEXT)",
    )?;
    let has_deferred: bool = conn
        .prepare("SELECT 1 FROM pragma_table_info('projection_state') WHERE name = 'deferred'")?
        .exists([])?;
    if !has_deferred {
        conn.execute_batch("ALTER TABLE projection_state ADD COLUMN deferred TEXT")?;
    }
    super::control::create(conn)?;
    let found: Option<(u32, i64, Option<String>)> = conn
        .query_row(
            "SELECT version, position, deferred FROM projection_state WHERE name = ?1",
            [p.name()],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .optional()?;
    if let Some((version, position, deferred)) = found {
        if version == p.version() {
            return Ok((Position(position as u64), deferred.is_some()));
        }
        tracing::info!(
            projection = p.name(),
            from = version,
            to = p.version(),
            "new projection version, rebuilding"
        );
    }
    let tx = conn.transaction()?;
    // Virtual tables first: dropping one drops its shadow tables too.
    for kind in ["sql LIKE 'CREATE VIRTUAL TABLE%'", "1 = 1"] {
        let tables: Vec<String> = tx
            .prepare(&format!(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name <> 'projection_state'
                 AND name <> '{}' AND name NOT LIKE 'sqlite_%' AND {kind}",
                super::control::TABLE
            ))?
            .query_map([], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        for table in tables {
            tx.execute_batch(&format!("DROP TABLE IF EXISTS \"{table}\""))?;
        }
    }
    tx.execute_batch(p.schema())?;
    let indexes: Vec<(String, String)> = tx
        .prepare("SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL AND tbl_name NOT IN ('projection_state', 'dead_letters')")?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<rusqlite::Result<_>>()?;
    for (name, _) in &indexes {
        tx.execute_batch(&format!("DROP INDEX \"{name}\""))?;
    }
    let deferred: Vec<String> = indexes.into_iter().map(|(_, sql)| sql).collect();
    tx.execute(
        "INSERT OR REPLACE INTO projection_state(name, version, position, state, error, deferred)
         VALUES (?1, ?2, 0, 'rebuilding', NULL, ?3)",
        params![p.name(), p.version(), deferred.join(";\n")],
    )?;
    tx.commit()?;
    Ok((Position::START, true))
}

/// Worker threads SQLite may sort an index build on (`PRAGMA threads`).
const SORT_THREADS: u32 = 4;

/// The size of each sorted run of an index build, in KiB (`PRAGMA cache_size` sets it): small
/// runs are sorted on the worker threads while this one reads on, then merged.
const SORT_RUN_KIB: u32 = 2_048;

/// Ends a rebuild: the deferred indexes, whatever the projection builds in bulk, and the
/// normal state, in one transaction.
pub(crate) fn finish_rebuild(
    conn: &mut Connection,
    p: &mut dyn Projection,
) -> Result<(), ProjectionError> {
    let started = std::time::Instant::now();
    p.caught_up();
    let times = match build_deferred(conn, p, started) {
        Ok(times) => times,
        Err(e) => {
            // Rolled back. The retry starts on a fresh connection, so that nothing the
            // projection attached or cached for this attempt is left on it.
            if let Err(again) =
                reopen(conn).and_then(|()| super::sqlite::rebuild_journal(conn, p.name()))
            {
                tracing::warn!(error = %again, "the writer's connection could not be opened again");
            }
            return Err(e);
        }
    };
    // A fresh connection: the projection may have filled a virtual table's own tables
    // directly (the leads model copies a search index built elsewhere), and this one's
    // instance of that table could still hold what it cached of them before. Closing it
    // also lets go of any database attached for the copy. Should this fail, the retry finds
    // the rebuild committed and only does what follows.
    reopen(conn)?;
    live_journal(conn, p.name())?;
    p.set_rebuilding(false);
    if let Some((indexed, built)) = times {
        tracing::info!(
            projection = p.name(),
            indexes_ms = indexed.as_millis() as u64,
            bulk_ms = (built - indexed).as_millis() as u64,
            commit_ms = (started.elapsed() - built).as_millis() as u64,
            "rebuild finished, indexes built"
        );
    }
    Ok(())
}

/// The transaction of [`finish_rebuild`]; when the indexes were built and when the bulk work
/// was done, or `None` if an earlier attempt committed it already (and failed after).
fn build_deferred(
    conn: &mut Connection,
    p: &mut dyn Projection,
    started: std::time::Instant,
) -> Result<Option<(std::time::Duration, std::time::Duration)>, ProjectionError> {
    // The index builds sort on SQLite's worker threads, which it only uses with temporary
    // files and sort runs smaller than the whole index: with temporary storage in memory and
    // a cache as large as the writer's, each index is one run sorted on this thread alone.
    // Measured at 1 M leads: 13 s for the nine indexes, 7 s this way. The keys are ids,
    // stages, times and amounts (and blind-index digests), never personal values. The
    // connection is opened anew once this ends, with its usual settings.
    conn.execute_batch(&format!(
        "PRAGMA temp_store=FILE; PRAGMA threads={SORT_THREADS}; PRAGMA cache_size=-{SORT_RUN_KIB};"
    ))?;
    let tx = conn.transaction()?;
    let deferred: Option<String> = tx.query_row(
        "SELECT deferred FROM projection_state WHERE name = ?1",
        [p.name()],
        |r| r.get(0),
    )?;
    let Some(sql) = deferred else {
        return Ok(None);
    };
    if !sql.is_empty() {
        tx.execute_batch(&sql)?;
    }
    // The bulk work that follows (a search index copied in, counters) writes through the
    // writer's usual cache.
    tx.execute_batch(super::sqlite::WRITER_CACHE)?;
    let indexed = started.elapsed();
    p.finish_rebuild(&tx)?;
    // Statistics for the query planner: without them SQLite may count a manager's leads by
    // scanning a covering index of the whole funnel instead of seeking the manager's own
    // range. A full pass (0.2 s at 100,000 leads): sampled statistics of indexes led by the
    // funnel, a column of few values, mislead the planner as much as none.
    match p.planned_tables() {
        None => tx.execute_batch("ANALYZE;")?,
        Some(tables) => {
            for table in tables {
                tx.execute_batch(&format!("ANALYZE \"{table}\";"))?;
            }
        }
    }
    let built = started.elapsed();
    tx.execute(
        "UPDATE projection_state SET deferred = NULL WHERE name = ?1",
        [p.name()],
    )?;
    tx.commit()?;
    Ok(Some((indexed, built)))
}

/// Replaces the writer's connection with a new one to the same file, with the writer's usual
/// settings. A database in memory would be lost: its connection only gets the settings back.
fn reopen(conn: &mut Connection) -> Result<(), ProjectionError> {
    match conn.path().filter(|p| !p.is_empty()).map(PathBuf::from) {
        Some(path) => *conn = super::sqlite::open_writer(&path)?,
        None => conn.execute_batch(super::sqlite::WRITER_SETTINGS)?,
    }
    Ok(())
}

/// The version of the SQL the model at `path` was built with; `None` when there is no such
/// file or it holds no model yet.
pub(crate) fn recorded_version(path: &std::path::Path) -> Option<u32> {
    if !path.exists() {
        return None;
    }
    let conn = super::sqlite::open_read_only(path).ok()?;
    conn.query_row("SELECT version FROM projection_state LIMIT 1", [], |r| {
        r.get(0)
    })
    .ok()
}
