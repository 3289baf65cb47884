//! The `leads` model's search index, built on a thread of its own while the model is rebuilt
//! from zero.
//!
//! A full-text index is the costliest part of a rebuild's end: tokenizing every lead's text
//! into trigrams took a fifth of a 1 M-lead rebuild, on one core, after every other model had
//! finished. Here the rebuild hands each saved lead's text to a builder thread, which indexes
//! it as it comes into a private in-memory database with the model's own table definition
//! and settings. Once the rebuild has caught up, the model copies the finished index's tables
//! into its file in the same transaction that ends the rebuild: pages copied, not text
//! tokenized again.
//!
//! The copy is used only when the builder saw every lead of the model (a rebuild resumed
//! after a restart did not): otherwise the model builds the index from its cards as before.
//! It does so too past [`MOST_TEXTS`] leads, where holding the build in memory would cost more
//! than a gigabyte.
//!
//! The in-memory database holds personal data only in this process's memory, and only until
//! the copy.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::Arc;
use std::thread::JoinHandle;

use rusqlite::{params, Connection, OpenFlags, Transaction};

use crate::ProjectionError;

/// The full-text table the builder fills, and the start of the schema name its database is
/// attached as for the copy (the build's number follows).
const TABLE: &str = "lead_search";
const ATTACHED: &str = "search_build";

/// The tables FTS5 keeps an index in: segments, their directory, the documents, their sizes.
/// The configuration table is the model's own (the builder's has a larger hash size).
const SHADOWS: [&str; 4] = ["data", "idx", "content", "docsize"];

/// Each build's in-memory database is named apart from the others in the process.
static BUILDS: AtomicU64 = AtomicU64::new(0);

/// Texts beyond which the builder gives up and the model builds the index from its cards at
/// its end: a build holds about a third of a kilobyte per lead in memory (the index, and the
/// texts of leads saved again), 0.35 GB at 1 M leads.
const MOST_TEXTS: usize = 2_000_000;

/// A search index being built beside a rebuild.
pub(crate) struct SearchBuild {
    texts: Option<Sender<Vec<(i64, String)>>>,
    builder: Option<JoinHandle<rusqlite::Result<Option<Built>>>>,
    /// Texts came after the builder was closed or had failed, or too many came: its index is
    /// not the model's.
    missed: bool,
    /// Texts sent so far, and how many it may be sent.
    sent: usize,
    most: usize,
    /// Told to the builder when it is given up, so that it lets go of what it holds.
    given_up: Arc<AtomicBool>,
}

/// What the builder hands back: its connection (which keeps the database alive), the name to
/// attach it by, and how many documents it holds.
struct Built {
    _conn: Connection,
    uri: String,
    number: u64,
    documents: i64,
}

impl SearchBuild {
    /// Starts a builder for the search table of the model `tx` writes: the same definition and
    /// the same settings (secure delete), read from the model itself.
    pub(crate) fn start(tx: &Transaction<'_>) -> Result<Self, ProjectionError> {
        Self::start_with(tx, MOST_TEXTS)
    }

    /// [`SearchBuild::start`], giving up past `most` texts.
    fn start_with(tx: &Transaction<'_>, most: usize) -> Result<Self, ProjectionError> {
        let create: String = tx.query_row(
            "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?1",
            [TABLE],
            |r| r.get(0),
        )?;
        let settings: Vec<(String, rusqlite::types::Value)> = tx
            .prepare(&format!(
                "SELECT k, v FROM {TABLE}_config WHERE k <> 'version' ORDER BY k"
            ))?
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<rusqlite::Result<_>>()?;
        let number = BUILDS.fetch_add(1, Ordering::Relaxed);
        let uri = format!(
            "file:leadflow-search-{}-{number}?mode=memory&cache=shared",
            std::process::id()
        );
        let (texts, received) = channel();
        let given_up = Arc::new(AtomicBool::new(false));
        let told = given_up.clone();
        let builder = std::thread::Builder::new()
            .name("search-leads".to_owned())
            .spawn(move || build(uri, number, create, settings, received, told))
            .map_err(|e| ProjectionError::Apply {
                position: leadflow_store::Position::START,
                reason: format!("cannot start the search index's builder: {e}"),
            })?;
        Ok(Self {
            texts: Some(texts),
            builder: Some(builder),
            missed: false,
            sent: 0,
            most,
            given_up,
        })
    }

    /// Hands the builder the search texts of leads saved by one batch (row id, text).
    pub(crate) fn send(&mut self, texts: Vec<(i64, String)>) {
        if texts.is_empty() {
            return;
        }
        self.sent += texts.len();
        if self.sent > self.most && !self.missed {
            tracing::info!(
                most = self.most,
                "too many leads to build the search index in memory; it will be built from the cards"
            );
            self.given_up.store(true, Ordering::Relaxed);
        }
        let sent = !self.given_up.load(Ordering::Relaxed)
            && self.texts.as_ref().is_some_and(|s| s.send(texts).is_ok());
        if !sent {
            // Closed, given up, or the builder failed: the model will build the index from
            // its cards.
            self.texts = None;
            self.missed = true;
        }
    }

    /// Every text is sent: the builder commits (while the caller builds its other indexes).
    pub(crate) fn close(&mut self) {
        self.texts = None;
    }

    /// Waits for the builder and copies its index into the model `tx` writes, in place of the
    /// model's empty one. False, with nothing changed, when the builder failed or did not see
    /// every one of the model's `leads` (a resumed rebuild): the caller builds it otherwise.
    /// The attached build stays attached until the connection closes (a database cannot be
    /// detached inside a transaction).
    pub(crate) fn copy_into(
        mut self,
        tx: &Transaction<'_>,
        leads: i64,
    ) -> Result<bool, ProjectionError> {
        self.close();
        if self.missed {
            tracing::info!("the search index's builder missed texts; building it from the cards");
            return Ok(false);
        }
        let built = match self.builder.take().map(JoinHandle::join) {
            Some(Ok(Ok(Some(built)))) => built,
            Some(Ok(Ok(None))) => return Ok(false),
            Some(Ok(Err(e))) => {
                tracing::warn!(error = %e, "the search index's builder failed; building it from the cards");
                return Ok(false);
            }
            Some(Err(_)) => {
                tracing::warn!("the search index's builder panicked; building it from the cards");
                return Ok(false);
            }
            None => return Ok(false),
        };
        if built.documents != leads {
            tracing::info!(
                built = built.documents,
                leads,
                "the search index's builder did not see every lead (a resumed rebuild); building it from the cards"
            );
            return Ok(false);
        }
        // Named after the build: one left attached by a failed attempt does not stand in the
        // way of the next.
        let attached = format!("{ATTACHED}_{}", built.number);
        tx.execute(
            &format!("ATTACH DATABASE ?1 AS {attached}"),
            params![built.uri],
        )?;
        for shadow in SHADOWS {
            tx.execute_batch(&format!(
                "DELETE FROM main.{TABLE}_{shadow};
                 INSERT INTO main.{TABLE}_{shadow} SELECT * FROM {attached}.{TABLE}_{shadow};"
            ))?;
        }
        tracing::debug!(documents = leads, "search index copied in from its builder");
        Ok(true)
    }
}

/// A build dropped unused (the model stopped, or builds its index otherwise) tells its
/// builder, which lets go of what it holds instead of indexing it for no one.
impl Drop for SearchBuild {
    fn drop(&mut self) {
        self.given_up.store(true, Ordering::Relaxed);
    }
}

/// The builder: indexes each text as it comes, in one transaction that commits once the
/// sender is dropped.
///
/// Texts come in the order the model saves its leads, so a lead's first text comes with a
/// row id above every one before it, and is appended to the index (FTS5 keeps appending to
/// its in-memory hash while row ids rise; a lower one makes it write the hash out as a
/// segment first). A text for a lead already indexed (saved again with a new title or
/// contact) waits, the last one per lead, and replaces the indexed one at the end.
///
/// Indexing as the texts come, not once the rebuild has caught up, takes the work off the
/// rebuild's end: there the model builds its other indexes on every core, and used to wait
/// for this one on top.
fn build(
    uri: String,
    number: u64,
    create: String,
    settings: Vec<(String, rusqlite::types::Value)>,
    texts: Receiver<Vec<(i64, String)>>,
    given_up: Arc<AtomicBool>,
) -> rusqlite::Result<Option<Built>> {
    let conn = Connection::open_with_flags(
        &uri,
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_URI
            | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    crate::runner::sqlite::paced(&conn);
    conn.execute_batch(&create)?;
    let mut set = conn.prepare(&format!(
        "INSERT INTO {TABLE}({TABLE}, rank) VALUES (?1, ?2)"
    ))?;
    for (key, value) in &settings {
        set.execute(params![key, value])?;
    }
    // A large in-memory hash (64 MiB instead of 1 MiB) flushes a few big segments instead of
    // hundreds of small ones that merge level after level. Only the builder's configuration
    // has it: the copy leaves the model's own.
    set.execute(params!["hashsize", 67_108_864])?;
    drop(set);
    let mut documents = 0i64;
    let mut last = i64::MIN;
    let mut again: std::collections::BTreeMap<i64, String> = Default::default();
    conn.execute_batch("BEGIN")?;
    let (started_end, cpu_before_end) = {
        let mut insert =
            conn.prepare(&format!("INSERT INTO {TABLE}(rowid, text) VALUES (?1, ?2)"))?;
        for batch in texts {
            if given_up.load(Ordering::Relaxed) {
                return Ok(None);
            }
            for (rowid, text) in batch {
                if rowid > last {
                    insert.execute(params![rowid, text])?;
                    (last, documents) = (rowid, documents + 1);
                } else {
                    again.insert(rowid, text);
                }
            }
        }
        if given_up.load(Ordering::Relaxed) {
            return Ok(None);
        }
        let (started_end, cpu_before_end) = (std::time::Instant::now(), own_cpu_ms());
        // In rising row ids, each lead's old text deleted right before its new one goes in:
        // FTS5 writes its hash out once, at the first, not at every one.
        let mut delete = conn.prepare(&format!("DELETE FROM {TABLE} WHERE rowid = ?1"))?;
        for (rowid, text) in &again {
            if delete.execute([rowid])? == 0 {
                documents += 1;
            }
            insert.execute(params![rowid, text])?;
        }
        (started_end, cpu_before_end)
    };
    conn.execute_batch("COMMIT")?;
    // Its CPU, for the rebuild's accounts: the thread ends before anyone else could read it.
    tracing::info!(
        documents,
        saved_again = again.len(),
        end_ms = started_end.elapsed().as_millis() as u64,
        cpu_ms = own_cpu_ms(),
        end_cpu_ms = own_cpu_ms().saturating_sub(cpu_before_end),
        "search index built beside the rebuild"
    );
    Ok(Some(Built {
        _conn: conn,
        uri,
        number,
        documents,
    }))
}

/// The calling thread's CPU time so far, in ms (0 where `/proc` does not say).
fn own_cpu_ms() -> u64 {
    let Ok(stat) = std::fs::read_to_string("/proc/thread-self/stat") else {
        return 0;
    };
    // After the name in parentheses: utime and stime are fields 14 and 15, in clock ticks
    // (100 a second on Linux).
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or(vec![], |(_, rest)| rest.split_whitespace().collect());
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    (ticks(11) + ticks(12)) * 10
}

#[cfg(test)]
mod tests {
    use rusqlite::OptionalExtension;

    use super::*;

    const MODEL: &str = "
        CREATE TABLE leads (row_id INTEGER PRIMARY KEY);
        CREATE VIRTUAL TABLE lead_search USING fts5(text, tokenize = 'trigram');
        INSERT INTO lead_search(lead_search, rank) VALUES ('secure-delete', 1);";

    fn matches(conn: &Connection, term: &str) -> Vec<i64> {
        conn.prepare("SELECT rowid FROM lead_search WHERE lead_search MATCH ?1 ORDER BY rowid")
            .unwrap()
            .query_map([format!("\"{term}\"")], |r| r.get(0))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap()
    }

    fn intact(conn: &Connection) {
        conn.execute_batch("INSERT INTO lead_search(lead_search) VALUES ('integrity-check')")
            .expect("the copied index is intact");
    }

    /// `build` copied into the model at `path` (of `leads` leads) and committed; the model
    /// opened again, as the runner does after a copy.
    fn copied_in(
        mut conn: Connection,
        path: &std::path::Path,
        build: SearchBuild,
        leads: i64,
    ) -> Connection {
        let tx = conn.transaction().unwrap();
        assert!(build.copy_into(&tx, leads).unwrap());
        tx.commit().unwrap();
        drop(conn);
        Connection::open(path).unwrap()
    }

    #[test]
    fn a_built_index_copied_in_answers_and_takes_live_writes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("leads.db");
        let mut conn = Connection::open(&path).unwrap();
        conn.execute_batch(MODEL).unwrap();
        conn.execute_batch("INSERT INTO leads(row_id) VALUES (1), (2), (3)")
            .unwrap();

        // Given texts sent over two batches, lead 2 saved again with a new text
        let tx = conn.transaction().unwrap();
        let mut build = SearchBuild::start(&tx).unwrap();
        tx.commit().unwrap();
        build.send(vec![
            (1, "Windows for the dacha \u{1f} Ivan Petrov".to_owned()),
            (2, "Roof repair \u{1f} +79161234567".to_owned()),
        ]);
        build.send(vec![
            (2, "Roof and gutters \u{1f} Anna Smirnova".to_owned()),
            (3, "Garage doors".to_owned()),
        ]);

        // When it is copied into the model
        let conn = copied_in(conn, &path, build, 3);

        // Then it answers as if built in place, lead 2 by its last text only
        intact(&conn);
        assert_eq!(matches(&conn, "Petrov"), vec![1]);
        assert_eq!(matches(&conn, "gutter"), vec![2]);
        assert!(matches(&conn, "1234567").is_empty());
        assert_eq!(matches(&conn, "roo"), vec![2]);
        assert_eq!(matches(&conn, "door"), vec![3]);
        // the model keeps its own settings, not the builder's hash size
        let hashsize: Option<i64> = conn
            .query_row(
                "SELECT v FROM lead_search_config WHERE k = 'hashsize'",
                [],
                |r| r.get(0),
            )
            .optional()
            .unwrap();
        assert_eq!(hashsize, None);

        // And live writes go on from it: a lead erased, another added
        conn.execute_batch(
            "DELETE FROM lead_search WHERE rowid = 1;
             INSERT INTO lead_search(rowid, text) VALUES (1, 'Windows for the dacha \u{1f} erased');
             INSERT INTO lead_search(rowid, text) VALUES (4, 'Petrovka office');",
        )
        .unwrap();
        intact(&conn);
        assert_eq!(matches(&conn, "Petrov"), vec![4]);
        assert_eq!(matches(&conn, "dacha"), vec![1]);
    }

    #[test]
    fn leads_saved_again_out_of_order_keep_their_last_text() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("leads.db");
        let mut conn = Connection::open(&path).unwrap();
        conn.execute_batch(MODEL).unwrap();
        let tx = conn.transaction().unwrap();
        let mut build = SearchBuild::start(&tx).unwrap();
        // Given three leads, then the first and third saved again, the first twice
        build.send(vec![
            (1, "Windows".to_owned()),
            (2, "Roof".to_owned()),
            (3, "Garage".to_owned()),
        ]);
        build.send(vec![(3, "Garden shed".to_owned()), (1, "Doors".to_owned())]);
        build.send(vec![(1, "Balcony".to_owned())]);
        tx.commit().unwrap();
        // When it is copied in
        let conn = copied_in(conn, &path, build, 3);
        // Then each lead is found by its last text only
        intact(&conn);
        assert_eq!(matches(&conn, "Balcony"), vec![1]);
        assert!(matches(&conn, "Windows").is_empty());
        assert!(matches(&conn, "Doors").is_empty());
        assert_eq!(matches(&conn, "Roof"), vec![2]);
        assert_eq!(matches(&conn, "shed"), vec![3]);
        assert!(matches(&conn, "Garage").is_empty());
    }

    #[test]
    fn a_build_that_missed_a_lead_is_not_copied() {
        let mut conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(MODEL).unwrap();
        let tx = conn.transaction().unwrap();
        let mut build = SearchBuild::start(&tx).unwrap();
        build.send(vec![(1, "Windows".to_owned())]);
        // Given a model of two leads, the builder having seen one (a resumed rebuild)
        assert!(!build.copy_into(&tx, 2).unwrap());
        tx.commit().unwrap();
        // Then the model's index is left as it was
        assert!(matches(&conn, "Windows").is_empty());
    }

    #[test]
    fn a_build_given_more_texts_than_it_may_hold_is_not_copied() {
        let mut conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(MODEL).unwrap();
        conn.execute_batch("INSERT INTO leads(row_id) VALUES (1), (2), (3)")
            .unwrap();
        let tx = conn.transaction().unwrap();
        // Given a builder that may hold two texts, sent three
        let mut build = SearchBuild::start_with(&tx, 2).unwrap();
        build.send(vec![(1, "Windows".to_owned()), (2, "Roof".to_owned())]);
        build.send(vec![(3, "Garage".to_owned())]);
        // Then it gives up, and the model builds its index otherwise
        assert!(!build.copy_into(&tx, 3).unwrap());
    }
}
