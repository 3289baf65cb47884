//! Blue/green storage: each read model lives in generations of its own file. Generation 0 is
//! `<name>.db` (what every earlier build wrote), generation `g` is `<name>.g<g>.db`. The manifest
//! (`generations.json` in the read-model folder, replaced atomically) says which generation
//! serves, which one is being built beside it, and which one served before the last switch (kept
//! for `rollback` until the next successful switch, then removed).
//!
//! A rebuild fills a new generation while the live one keeps serving and following the log;
//! killed at any point, it goes on from its own checkpoint at the next start. Before switching,
//! [`compare`] can hold the two side by side at one log position: row counts and a content
//! hash per table, with the rows only one side has.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use rusqlite::Connection;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::ProjectionError;

/// The manifest's file name in the read-model folder.
pub const MANIFEST: &str = "generations.json";

/// One model's generations.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Generations {
    /// The one queries read.
    pub live: u32,
    /// Being built beside it, if any.
    pub building: Option<u32>,
    /// The one that served before the last switch (what `rollback` goes back to).
    pub previous: Option<u32>,
    /// Whether the one being built is compared with the live one before the switch.
    #[serde(default)]
    pub verify: bool,
}

impl Generations {
    /// A number no file of this model uses.
    pub fn next(&self) -> u32 {
        [Some(self.live), self.building, self.previous]
            .into_iter()
            .flatten()
            .max()
            .unwrap_or(0)
            + 1
    }
}

/// The file of generation `generation` of `name` in `dir`.
pub fn path_of(dir: &Path, name: &str, generation: u32) -> PathBuf {
    if generation == 0 {
        dir.join(format!("{name}.db"))
    } else {
        dir.join(format!("{name}.g{generation}.db"))
    }
}

/// The file queries read for `name` in `dir`, as the manifest says (for tools that read the
/// files of a stopped server).
pub fn live_path(dir: &Path, name: &str) -> PathBuf {
    let live = Manifest::load(dir).map_or(0, |m| m.get(name).live);
    path_of(dir, name, live)
}

/// Every model's generations, as written in `dir`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    #[serde(flatten)]
    pub models: BTreeMap<String, Generations>,
}

impl Manifest {
    /// The manifest in `dir`; an empty one (every model on generation 0) when there is none.
    pub fn load(dir: &Path) -> Result<Self, ProjectionError> {
        let path = dir.join(MANIFEST);
        match std::fs::read(&path) {
            Ok(raw) => serde_json::from_slice(&raw).map_err(|e| ProjectionError::Setup {
                what: format!("read {}", path.display()),
                reason: e.to_string(),
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Self::default()),
            Err(e) => Err(ProjectionError::Setup {
                what: format!("read {}", path.display()),
                reason: e.to_string(),
            }),
        }
    }

    pub fn get(&self, name: &str) -> Generations {
        self.models.get(name).copied().unwrap_or_default()
    }

    /// Sets `name`'s generations and writes the manifest durably: a new file, flushed, renamed
    /// over the old one, the folder flushed. A crash leaves the old manifest or the new one.
    pub fn set(
        &mut self,
        dir: &Path,
        name: &str,
        generations: Generations,
    ) -> Result<(), ProjectionError> {
        self.models.insert(name.to_owned(), generations);
        let failed = |what: &str, e: std::io::Error| ProjectionError::Setup {
            what: format!("{what} {}", dir.join(MANIFEST).display()),
            reason: e.to_string(),
        };
        let json = serde_json::to_vec_pretty(self).expect("a manifest serializes");
        let temporary = dir.join(format!("{MANIFEST}.new"));
        let mut file = std::fs::File::create(&temporary).map_err(|e| failed("write", e))?;
        file.write_all(&json).map_err(|e| failed("write", e))?;
        file.sync_all().map_err(|e| failed("flush", e))?;
        std::fs::rename(&temporary, dir.join(MANIFEST)).map_err(|e| failed("replace", e))?;
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| failed("flush the folder of", e))?;
        Ok(())
    }
}

/// Removes a generation's files (the database, its WAL, shared memory and journal).
pub(crate) fn remove(dir: &Path, name: &str, generation: u32) {
    let db = path_of(dir, name, generation);
    for suffix in ["", "-wal", "-shm", "-journal"] {
        let mut path = db.clone().into_os_string();
        path.push(suffix);
        let _ = std::fs::remove_file(PathBuf::from(path));
    }
}

/// How one table differs between two generations.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TableDiff {
    pub table: String,
    pub live_rows: u64,
    pub new_rows: u64,
    /// SHA-256 of the table's rows, sorted, each side.
    pub live_hash: String,
    pub new_hash: String,
    /// The keys (first column) of rows only the live generation has, then only the new one,
    /// at most [`SHOWN`] each.
    pub only_live: Vec<String>,
    pub only_new: Vec<String>,
}

/// Differing rows listed per table and side, at most.
pub const SHOWN: usize = 10;

/// Every table whose rows differ between the generations at `live` and `new` (none: equal).
/// Full-text indexes count by their content, not their shadow tables' layout; the checkpoint
/// row is left out (the caller holds both at one position).
pub fn compare(live: &Path, new: &Path) -> rusqlite::Result<Vec<TableDiff>> {
    compare_snapshots(
        &super::sqlite::open_read_only(live)?,
        &super::sqlite::open_read_only(new)?,
    )
}

/// [`compare`] over two connections (each in a read transaction: its snapshot). Each table is
/// read on both sides at once, in the order of its primary key (of every column when it has
/// none), hashed and merged row by row, so memory stays flat whatever the model's size.
/// Differing rows are listed by their first column (the key), never by their content, which
/// may hold personal data.
pub fn compare_snapshots(live: &Connection, new: &Connection) -> rusqlite::Result<Vec<TableDiff>> {
    let (a, b) = (shapes_of(live)?, shapes_of(new)?);
    let names: std::collections::BTreeSet<&String> = a.keys().chain(b.keys()).collect();
    let mut diffs = Vec::new();
    for name in names {
        let diff = compare_table(name, live, a.get(name), new, b.get(name))?;
        if diff.live_hash != diff.new_hash {
            diffs.push(diff);
        }
    }
    Ok(diffs)
}

/// How a table is read for a comparison: what is selected, in which order, and which
/// selected columns make a row's key.
struct Shape {
    sql: String,
    key: Vec<usize>,
}

/// Every table compared, by name. Full-text indexes are compared by their content (`rowid,
/// *` on the virtual table), not by their shadow tables, whose segment layout depends on how
/// the writes were batched; the checkpoint row is left out.
fn shapes_of(conn: &Connection) -> rusqlite::Result<BTreeMap<String, Shape>> {
    let (names, virtual_tables) = compared_tables(conn)?;
    let mut shapes = BTreeMap::new();
    for t in names {
        let shape = if virtual_tables.contains(&t) {
            Shape {
                sql: format!("SELECT rowid, * FROM \"{t}\" ORDER BY rowid"),
                key: vec![0],
            }
        } else {
            // (column index, name, position in the primary key: 0 when not in it)
            let columns: Vec<(usize, String, i64)> = conn
                .prepare(&format!(
                    "SELECT cid, name, pk FROM pragma_table_info('{t}')"
                ))?
                .query_map([], |r| {
                    Ok((r.get::<_, i64>(0)? as usize, r.get(1)?, r.get(2)?))
                })?
                .collect::<rusqlite::Result<_>>()?;
            let mut key: Vec<&(usize, String, i64)> = columns.iter().filter(|c| c.2 > 0).collect();
            key.sort_by_key(|c| c.2);
            if key.is_empty() {
                key = columns.iter().collect();
            }
            // Binary order whatever a column's collation: the merge compares bytes.
            let order: Vec<String> = key
                .iter()
                .map(|c| format!("\"{}\" COLLATE BINARY", c.1))
                .collect();
            Shape {
                sql: format!("SELECT * FROM \"{t}\" ORDER BY {}", order.join(", ")),
                key: key.iter().map(|c| c.0).collect(),
            }
        };
        shapes.insert(t, shape);
    }
    Ok(shapes)
}

/// The tables two generations are compared by, and which of them are full-text indexes
/// (compared by their content, not by their shadow tables, whose segment layout depends on how
/// the writes were batched). The checkpoint row is left out.
fn compared_tables(conn: &Connection) -> rusqlite::Result<(Vec<String>, Vec<String>)> {
    let virtual_tables: Vec<String> = conn
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND sql LIKE 'CREATE VIRTUAL TABLE%'")?
        .query_map([], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    let names: Vec<String> = conn
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name <> 'projection_state' AND name NOT LIKE 'sqlite_%' ORDER BY name")?
        .query_map([], |r| r.get::<_, String>(0))?
        .collect::<rusqlite::Result<Vec<_>>>()?
        .into_iter()
        .filter(|t| !virtual_tables.iter().any(|v| t.starts_with(&format!("{v}_"))))
        .collect();
    Ok((names, virtual_tables))
}

/// One row as compared: its key's values and the whole row as text (what is hashed).
struct Compared {
    key: Vec<rusqlite::types::Value>,
    text: String,
}

/// One side of a table, read in key order, hashed and counted as it goes.
struct Side<'s> {
    rows: Option<rusqlite::Rows<'s>>,
    key: &'s [usize],
    hash: Sha256,
    count: u64,
}

impl<'s> Side<'s> {
    /// A table's side (none when the generation has no such table: no rows).
    fn open(
        stmt: Option<&'s mut rusqlite::Statement<'_>>,
        shape: Option<&'s Shape>,
    ) -> rusqlite::Result<Self> {
        Ok(Side {
            rows: stmt.map(|s| s.query([])).transpose()?,
            key: shape.map_or(&[][..], |s| &s.key[..]),
            hash: Sha256::new(),
            count: 0,
        })
    }

    fn next(&mut self) -> rusqlite::Result<Option<Compared>> {
        let Some(rows) = self.rows.as_mut() else {
            return Ok(None);
        };
        let Some(row) = rows.next()? else {
            return Ok(None);
        };
        let n = row.as_ref().column_count();
        let cells = (0..n)
            .map(|i| {
                Ok(match row.get_ref(i)? {
                    rusqlite::types::ValueRef::Text(t) => String::from_utf8_lossy(t).into_owned(),
                    other => format!("{other:?}"),
                })
            })
            .collect::<rusqlite::Result<Vec<_>>>()?;
        let text = cells.join(" | ");
        self.hash.update(text.as_bytes());
        self.hash.update([0]);
        self.count += 1;
        let key = self
            .key
            .iter()
            .map(|&i| row.get::<_, rusqlite::types::Value>(i))
            .collect::<rusqlite::Result<_>>()?;
        Ok(Some(Compared { key, text }))
    }
}

fn compare_table(
    name: &str,
    live: &Connection,
    live_shape: Option<&Shape>,
    new: &Connection,
    new_shape: Option<&Shape>,
) -> rusqlite::Result<TableDiff> {
    let mut live_stmt = live_shape.map(|s| live.prepare(&s.sql)).transpose()?;
    let mut new_stmt = new_shape.map(|s| new.prepare(&s.sql)).transpose()?;
    let mut x = Side::open(live_stmt.as_mut(), live_shape)?;
    let mut y = Side::open(new_stmt.as_mut(), new_shape)?;
    let (mut only_live, mut only_new) = (Vec::new(), Vec::new());
    let shown = |list: &mut Vec<String>, row: &Compared| {
        if list.len() < SHOWN {
            list.push(row.text.split(" | ").next().unwrap_or_default().to_owned());
        }
    };
    let (mut a, mut b) = (x.next()?, y.next()?);
    loop {
        match (&a, &b) {
            (None, None) => break,
            (Some(r), None) => {
                shown(&mut only_live, r);
                a = x.next()?;
            }
            (None, Some(r)) => {
                shown(&mut only_new, r);
                b = y.next()?;
            }
            (Some(l), Some(n)) => match compare_keys(&l.key, &n.key) {
                std::cmp::Ordering::Less => {
                    shown(&mut only_live, l);
                    a = x.next()?;
                }
                std::cmp::Ordering::Greater => {
                    shown(&mut only_new, n);
                    b = y.next()?;
                }
                std::cmp::Ordering::Equal => {
                    if l.text != n.text {
                        shown(&mut only_live, l);
                        shown(&mut only_new, n);
                    }
                    a = x.next()?;
                    b = y.next()?;
                }
            },
        }
    }
    Ok(TableDiff {
        table: name.to_owned(),
        live_rows: x.count,
        new_rows: y.count,
        live_hash: format!("{:x}", x.hash.finalize()),
        new_hash: format!("{:x}", y.hash.finalize()),
        only_live,
        only_new,
    })
}

/// SQLite's order of values with the binary collation: NULL, numbers, text, blobs.
fn compare_keys(a: &[rusqlite::types::Value], b: &[rusqlite::types::Value]) -> std::cmp::Ordering {
    use rusqlite::types::Value as V;
    fn rank(v: &V) -> u8 {
        match v {
            V::Null => 0,
            V::Integer(_) | V::Real(_) => 1,
            V::Text(_) => 2,
            V::Blob(_) => 3,
        }
    }
    for (x, y) in a.iter().zip(b) {
        let order = match (x, y) {
            (V::Integer(p), V::Integer(q)) => p.cmp(q),
            (V::Integer(p), V::Real(q)) => (*p as f64).total_cmp(q),
            (V::Real(p), V::Integer(q)) => p.total_cmp(&(*q as f64)),
            (V::Real(p), V::Real(q)) => p.total_cmp(q),
            (V::Text(p), V::Text(q)) => p.as_bytes().cmp(q.as_bytes()),
            (V::Blob(p), V::Blob(q)) => p.cmp(q),
            _ => rank(x).cmp(&rank(y)),
        };
        if order.is_ne() {
            return order;
        }
    }
    a.len().cmp(&b.len())
}

/// Each table's rows as text, sorted (what tests compare a rebuild with).
pub(crate) fn tables_of(conn: &Connection) -> rusqlite::Result<BTreeMap<String, Vec<String>>> {
    let (names, virtual_tables) = compared_tables(conn)?;
    let mut out = BTreeMap::new();
    for t in names {
        let select = if virtual_tables.contains(&t) {
            "rowid, *"
        } else {
            "*"
        };
        let mut stmt = conn.prepare(&format!("SELECT {select} FROM \"{t}\""))?;
        let n = stmt.column_count();
        let mut rows: Vec<String> = stmt
            .query_map([], |r| {
                let cells = (0..n)
                    .map(|i| {
                        Ok(match r.get_ref(i)? {
                            rusqlite::types::ValueRef::Text(t) => {
                                String::from_utf8_lossy(t).into_owned()
                            }
                            other => format!("{other:?}"),
                        })
                    })
                    .collect::<rusqlite::Result<Vec<_>>>()?;
                Ok(cells.join(" | "))
            })?
            .collect::<rusqlite::Result<_>>()?;
        rows.sort();
        out.insert(t, rows);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model(rows: &[(&str, i64)], loose: &[&str]) -> Connection {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(
            "CREATE TABLE cards (id TEXT PRIMARY KEY, n INTEGER NOT NULL);
             CREATE TABLE notes (body TEXT);
             CREATE TABLE projection_state (name TEXT, position INTEGER);",
        )
        .unwrap();
        for (id, n) in rows {
            conn.execute(
                "INSERT INTO cards VALUES (?1, ?2)",
                rusqlite::params![id, n],
            )
            .unwrap();
        }
        for body in loose {
            conn.execute("INSERT INTO notes VALUES (?1)", [body])
                .unwrap();
        }
        conn
    }

    #[test]
    fn equal_models_compare_equal_whatever_order_their_rows_came_in() {
        let a = model(&[("a", 1), ("b", 2), ("c", 3)], &["x", "y"]);
        let b = model(&[("c", 3), ("a", 1), ("b", 2)], &["y", "x"]);
        b.execute("INSERT INTO projection_state VALUES ('m', 9)", [])
            .unwrap();
        assert_eq!(compare_snapshots(&a, &b).unwrap(), Vec::new());
    }

    #[test]
    fn differing_rows_are_listed_by_key_on_each_side() {
        let a = model(&[("a", 1), ("b", 2), ("d", 4)], &["x"]);
        let b = model(&[("a", 1), ("b", 20), ("c", 3)], &["x", "z"]);
        let diffs = compare_snapshots(&a, &b).unwrap();
        let tables: Vec<&str> = diffs.iter().map(|d| d.table.as_str()).collect();
        assert_eq!(tables, ["cards", "notes"]);
        let cards = &diffs[0];
        assert_eq!((cards.live_rows, cards.new_rows), (3, 3));
        assert_eq!(cards.only_live, ["b", "d"]);
        assert_eq!(cards.only_new, ["b", "c"]);
        let notes = &diffs[1];
        assert_eq!((notes.live_rows, notes.new_rows), (1, 2));
        assert!(notes.only_live.is_empty());
        assert_eq!(notes.only_new, ["z"]);
    }

    #[test]
    fn a_table_on_one_side_only_lists_its_rows() {
        let a = model(&[("a", 1)], &[]);
        let b = model(&[("a", 1)], &[]);
        b.execute_batch(
            "CREATE TABLE extra (k INTEGER PRIMARY KEY); INSERT INTO extra VALUES (7);",
        )
        .unwrap();
        let diffs = compare_snapshots(&a, &b).unwrap();
        assert_eq!(diffs.len(), 1);
        assert_eq!(diffs[0].table, "extra");
        assert_eq!(diffs[0].only_new, ["Integer(7)"]);
    }
}
