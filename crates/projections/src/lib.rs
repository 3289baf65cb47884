//! The read side. A [`Projection`] turns events of the global log into rows of its own SQLite
//! database; the [`runner`] feeds it from its checkpoint (catch-up, then live) and commits its
//! rows and its checkpoint in one transaction, so a projection killed mid-batch resumes with
//! nothing lost or doubled. [`query`] reads the models for the API.
//!
//! Not here: HTTP, GraphQL, and anything that decides (projections only record what happened).

pub mod audit;
pub mod board_hours;
pub mod history;
pub mod leads;
pub mod privacy;
pub mod query;
pub mod reports;
pub mod rows;
pub mod runner;
mod search;
pub mod spans;
mod summary;
pub mod transitions;

use chrono::{DateTime, Utc};
use rusqlite::Transaction;

use leadflow_store::Position;

/// Decoded events, as projections see them.
pub use leadflow_codec::{Body, Envelope};
pub use runner::{open_read_only, ProjectionState, ProjectionStatus, ReadError, ReadSide};

/// A read model, as queries name it: a handle the model's own module defines
/// ([`leads::LEADS`], [`history::HISTORY`]), never a string typed at the call site.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Model(&'static str);

impl Model {
    /// The handle of the model `projection` builds.
    pub fn of(projection: &dyn Projection) -> Self {
        Self(projection.name())
    }

    /// Its name: the projection's, and its database file's.
    pub fn name(self) -> &'static str {
        self.0
    }
}

pub use history::HISTORY;
pub use leads::LEADS;
pub use transitions::TRANSITIONS;

/// Why a projection could not apply an event. It stops that projection, which then reports
/// the event and the error; it is never skipped.
#[derive(Debug, thiserror::Error)]
pub enum ProjectionError {
    #[error("cannot decode event at position {position}: {reason}")]
    Decode { position: Position, reason: String },
    #[error("cannot apply event at position {position}: {reason}")]
    Apply { position: Position, reason: String },
    #[error("read model database: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("event store: {0}")]
    Store(#[from] leadflow_store::StoreError),
    /// Another process runs the read models of this folder (it holds `read.lock`).
    #[error("the read models in {} are being run by another process", dir.display())]
    Locked { dir: std::path::PathBuf },
    /// The read side could not set itself up: a folder, a lock file, a thread.
    #[error("cannot {what}: {reason}")]
    Setup { what: String, reason: String },
    /// A database stayed busy past the wait for it (another process holds it open).
    #[error("{what}: the database stays busy")]
    Busy { what: String },
}

impl ProjectionError {
    /// Whether applying again later may succeed: the disk full, an I/O error, the database busy
    /// past its timeout or out of memory, the event store unreachable. An event that does not
    /// decode, an apply error or a constraint violation fails the same way every time.
    pub fn is_transient(&self) -> bool {
        use rusqlite::ErrorCode as C;
        match self {
            Self::Sqlite(e) => matches!(
                e.sqlite_error_code(),
                Some(
                    C::DiskFull
                        | C::SystemIoFailure
                        | C::DatabaseBusy
                        | C::DatabaseLocked
                        | C::OutOfMemory
                        | C::CannotOpen
                )
            ),
            Self::Store(leadflow_store::StoreError::Unavailable(_)) | Self::Busy { .. } => true,
            Self::Decode { .. }
            | Self::Apply { .. }
            | Self::Store(_)
            | Self::Locked { .. }
            | Self::Setup { .. } => false,
        }
    }
}

/// One read model: its SQL (tables and indexes) and how events change its rows.
pub trait Projection: Send + 'static {
    /// Stable name; also the database file name.
    fn name(&self) -> &'static str;
    /// Bumping it rebuilds the read model from the log at the next start.
    fn version(&self) -> u32;
    /// `projections/<name>.v<version>.sql`.
    fn schema(&self) -> &'static str;
    /// Applies a batch of consecutive events inside `tx`. On error the runner rolls the whole
    /// transaction back, checkpoint included.
    fn apply(&mut self, tx: &Transaction<'_>, events: &[Envelope]) -> Result<(), ProjectionError>;

    /// A new instance of this projection, as it would start: what a new generation of the
    /// model is built with, beside the live one.
    fn fresh(&self) -> Box<dyn Projection>;

    /// Told whether the model is being rebuilt from zero (its secondary indexes are off until
    /// it catches up); a projection may skip derived structures it builds in bulk afterwards.
    fn set_rebuilding(&mut self, _rebuilding: bool) {}

    /// Once a rebuild has caught up, before the indexes are restored: work the projection
    /// does on threads of its own can end meanwhile.
    fn caught_up(&mut self) {}

    /// Once a rebuild has caught up, inside the transaction that restores the indexes: build
    /// in bulk what was skipped while rebuilding.
    fn finish_rebuild(&mut self, _tx: &Transaction<'_>) -> Result<(), ProjectionError> {
        Ok(())
    }

    /// The tables whose statistics the query planner needs, gathered (`ANALYZE`) once a
    /// rebuild is done; `None`: every table. A table only ever read through its key gains
    /// nothing from them, and gathering them reads it whole.
    fn planned_tables(&self) -> Option<&'static [&'static str]> {
        None
    }
}

/// Every projection of the product, fresh.
pub fn all_projections() -> Vec<Box<dyn Projection>> {
    all_projections_with(None)
}

/// [`all_projections`], the leads model keeping blind-index tokens under `blind` (the
/// product's: derived from the master key).
pub fn all_projections_with(
    blind: Option<leadflow_codec::seal::BlindIndex>,
) -> Vec<Box<dyn Projection>> {
    vec![
        Box::new(leads::LeadsProjection::with_blind_index(blind)),
        Box::new(history::HistoryProjection::new()),
        Box::new(transitions::TransitionsProjection::new()),
    ]
}

/// `f` of each of `items`, in order, in one chunk per core (at most four), the first on this
/// thread and the others on threads called `name` (so that `top` and a profile tell the work
/// apart from the caller's): decoding a large batch of events, which one core does not keep up
/// with. Fewer than 1,024 items are not worth the threads.
///
/// A catching-up batch is megabytes of events: the later chunks are split off its end (each
/// moved once), the first stays where it is, and its results go straight into a vector with
/// room for every result.
pub(crate) fn in_chunks<T: Send, R: Send>(
    name: &str,
    items: Vec<T>,
    f: impl Fn(T) -> R + Sync,
) -> Vec<R> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get().min(4));
    if threads == 1 || items.len() < 1024 {
        return items.into_iter().map(f).collect();
    }
    let (total, per_chunk) = (items.len(), items.len().div_ceil(threads));
    let mut first = items;
    let mut later: Vec<Vec<T>> = Vec::with_capacity(threads - 1);
    while first.len() > per_chunk {
        let at = (first.len() - 1) / per_chunk * per_chunk;
        later.push(first.split_off(at));
    }
    later.reverse();
    let f = &f;
    std::thread::scope(|scope| {
        let others: Vec<_> = later
            .into_iter()
            .map(|chunk| {
                std::thread::Builder::new()
                    .name(name.to_owned())
                    .spawn_scoped(scope, move || chunk.into_iter().map(f).collect::<Vec<R>>())
                    .expect("a decoding thread starts")
            })
            .collect();
        let mut done: Vec<R> = Vec::with_capacity(total);
        done.extend(first.into_iter().map(f));
        for other in others {
            done.extend(other.join().expect("a worker thread panicked"));
        }
        done
    })
}

/// Microseconds since the epoch: how read models store times so they sort and range-filter.
pub fn micros(t: DateTime<Utc>) -> i64 {
    t.timestamp_micros()
}

pub fn from_micros(us: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(us).unwrap_or_default()
}

/// Every row of every read-model table of the database at `path` (checkpoints and SQLite's
/// own tables, the planner statistics among them, excluded),
/// rendered and sorted: two databases built from the same log must dump the same. Used by the
/// rebuild-equals-incremental and kill-and-resume checks.
pub fn dump_tables(path: &std::path::Path) -> rusqlite::Result<Vec<String>> {
    let conn = open_read_only(path)?;
    Ok(runner::generations::tables_of(&conn)?
        .into_iter()
        .flat_map(|(table, rows)| rows.into_iter().map(move |r| format!("{table}: {r}")))
        .collect())
}

/// The recorded payloads of `tests/golden/v1`, for the unit tests' events.
#[cfg(test)]
pub(crate) mod recorded {
    /// The non-empty lines of `tests/golden/v1/<name>.jsonl`.
    pub(crate) fn golden(name: &str) -> Vec<String> {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/golden/v1");
        std::fs::read_to_string(dir.join(format!("{name}.jsonl")))
            .unwrap()
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(str::to_owned)
            .collect()
    }

    /// A recorded event's metadata.
    pub(crate) fn meta() -> leadflow_codec::EventMetadata {
        golden("metadata")
            .iter()
            .find_map(|l| leadflow_codec::EventMetadata::decode(l.as_bytes()).ok())
            .expect("a recorded metadata")
    }

    /// `event` as lead `lead`'s at `revision`, at log position `position`, with recorded
    /// metadata (written without keys: no subject).
    pub(crate) fn lead_event(
        lead: leadflow_domain::LeadId,
        position: u64,
        revision: u64,
        event: leadflow_domain::LeadEvent,
    ) -> crate::Envelope {
        crate::Envelope {
            position: leadflow_store::Position(position),
            stream: format!("lead-{lead}"),
            revision,
            data: Vec::new(),
            body: crate::Body::Lead {
                lead_id: lead,
                event,
                meta: leadflow_codec::EventMetadata {
                    subject: None,
                    ..meta()
                },
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Projection;

    /// A model's SQL changes only with its version: a built model is rebuilt when its
    /// version changes, never when its SQL does, so SQL changed under the same number would
    /// meet tables of the old shape (it happened: `transitions` 6 gained two columns, and a
    /// model built by the first 6 failed at its next batch). Change the SQL, give it a new
    /// version, then put both here.
    #[test]
    fn a_models_sql_changes_only_with_its_version() {
        use sha2::{Digest, Sha256};
        let models: [(Box<dyn Projection>, u32, &str); 3] = [
            (
                Box::new(super::leads::LeadsProjection::default()),
                12,
                "64445e720a864a5a394e12eca02a8a08d4f576e4f0a8a10e69d2f419fc2b2e22",
            ),
            (
                Box::new(super::history::HistoryProjection::new()),
                6,
                "b88c97872f2e8f0dfdb2bab8067233fbcea8ada9eeba99f716ac11ff312da214",
            ),
            (
                Box::new(super::transitions::TransitionsProjection::new()),
                7,
                "3febd170e43641a274f46bcc0050c83956ed067669c19e66442eafa6fa201e11",
            ),
        ];
        for (model, version, hash) in models {
            // The statements only: comments and layout may change freely.
            let statements: Vec<&str> = model
                .schema()
                .lines()
                .map(|l| l.split("--").next().unwrap_or_default())
                .flat_map(str::split_whitespace)
                .collect();
            let found = format!("{:x}", Sha256::digest(statements.join(" ").as_bytes()));
            assert_eq!(
                (model.version(), found.as_str()),
                (version, hash),
                "the SQL of {} changed: a new version, then its hash here",
                model.name()
            );
        }
    }

    /// Every item mapped once, in order, however the batch splits into chunks.
    #[test]
    fn in_chunks_maps_every_item_in_order_on_threads_of_the_given_name() {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get().min(4));
        for n in [0, 1, 1023, 1024, 1025, 4095, 4096, 4097, 16_001] {
            let items: Vec<u64> = (0..n).collect();
            let mapped = super::in_chunks("chunk-test", items, |i| {
                (i * 2, std::thread::current().name() == Some("chunk-test"))
            });
            assert_eq!(
                mapped.iter().map(|m| m.0).collect::<Vec<_>>(),
                (0..n).map(|i| i * 2).collect::<Vec<_>>(),
                "{n} items"
            );
            // The first chunk on the caller's thread, the others (if any) on named threads.
            let named = mapped.iter().filter(|m| m.1).count() as u64;
            if cores == 1 || n < 1024 {
                assert_eq!(named, 0, "{n} items");
            } else {
                assert!(
                    named > 0 && named < n,
                    "{n} items: {named} on named threads"
                );
            }
        }
    }
}
