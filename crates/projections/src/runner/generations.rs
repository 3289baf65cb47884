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

use rusqlite::{Connection, OpenFlags};
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
    let open = |p: &Path| Connection::open_with_flags(p, OpenFlags::SQLITE_OPEN_READ_ONLY);
    compare_snapshots(&open(live)?, &open(new)?)
}

/// [`compare`] over two connections (each in a read transaction: its snapshot). Differing
/// rows are listed by their first column (the key), never by their content, which may hold
/// personal data.
pub fn compare_snapshots(live: &Connection, new: &Connection) -> rusqlite::Result<Vec<TableDiff>> {
    let (a, b) = (tables_of(live)?, tables_of(new)?);
    let names: std::collections::BTreeSet<&String> = a.keys().chain(b.keys()).collect();
    let empty = Vec::new();
    let mut diffs = Vec::new();
    for name in names {
        let (x, y) = (a.get(name).unwrap_or(&empty), b.get(name).unwrap_or(&empty));
        let (hx, hy) = (hash(x), hash(y));
        if hx == hy {
            continue;
        }
        let only = |from: &Vec<String>, other: &Vec<String>| {
            from.iter()
                .filter(|r| other.binary_search(r).is_err())
                .take(SHOWN)
                .map(|r| r.split(" | ").next().unwrap_or_default().to_owned())
                .collect::<Vec<_>>()
        };
        diffs.push(TableDiff {
            table: name.clone(),
            live_rows: x.len() as u64,
            new_rows: y.len() as u64,
            live_hash: hx,
            new_hash: hy,
            only_live: only(x, y),
            only_new: only(y, x),
        });
    }
    Ok(diffs)
}

fn hash(rows: &[String]) -> String {
    let mut h = Sha256::new();
    for r in rows {
        h.update(r.as_bytes());
        h.update([0]);
    }
    format!("{:x}", h.finalize())
}

/// Each table's rows as text, sorted: what two generations are compared by.
pub(crate) fn tables_of(conn: &Connection) -> rusqlite::Result<BTreeMap<String, Vec<String>>> {
    // Full-text indexes are compared by their content (`SELECT *` on the virtual table), not
    // by their shadow tables, whose segment layout depends on how the writes were batched.
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
