//! What an operator can tell a running read model: pause it, resume it, retry the event it
//! stopped at (after a fix), or skip that event into the model's dead letters, with a reason.
//! Nothing is skipped silently: a skipped event is a row of `dead_letters` (position, stream,
//! type, the error, the reason, who and when), and a rebuild of the model skips exactly the
//! events listed there, so a rebuild still equals the model it replaces.

use rusqlite::{params, Connection, Transaction};

use leadflow_store::Position;

/// An operator's instruction to one read model.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Control {
    /// Stop applying after the current batch; queries keep reading what is there. The pause
    /// is kept in the model's file: a restarted server holds it paused until resumed.
    Pause,
    /// [`Control::Pause`] for a moment, not kept across a restart: how a switch or a
    /// comparison holds a generation. Never an operator's action.
    Hold,
    /// Follow the log again from the checkpoint after a pause.
    Resume,
    /// Apply the event a failed model stopped at again (after a fix).
    Retry,
    /// Record the event a failed model stopped at as a dead letter and go on after it.
    /// `position` must name that event: a skip never lands on another one.
    Skip {
        position: Position,
        reason: String,
        by: String,
    },
    /// Resume a paused model up to `position` (nothing past it) and hold there: how a
    /// rebuild and the live model are brought to one position to be compared.
    RunTo(Position),
}

impl Control {
    pub fn label(&self) -> &'static str {
        match self {
            Self::Pause => "pause",
            Self::Hold => "hold",
            Self::Resume => "resume",
            Self::Retry => "retry",
            Self::Skip { .. } => "skip",
            Self::RunTo(_) => "run to a position",
        }
    }
}

/// Why an instruction was not carried out.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ControlError {
    #[error("unknown read model {0}")]
    Unknown(String),
    #[error("cannot {action} {name}: it is {state}")]
    NotApplicable {
        name: &'static str,
        action: &'static str,
        state: &'static str,
    },
    #[error("{name} stopped at position {stopped_at}, not {asked}: nothing skipped")]
    WrongPosition {
        name: &'static str,
        stopped_at: Position,
        asked: Position,
    },
    #[error("a skip needs a reason")]
    NoReason,
    #[error("no generation of {name} is being built")]
    NoBuild { name: &'static str },
    #[error("{name} did not answer: it has stopped")]
    Stopped { name: &'static str },
    #[error("{name}: {reason}")]
    Failed { name: &'static str, reason: String },
}

/// What a worker answers an instruction: done, with the position of the event a retry
/// applies again or a skip leaves out (the worker's own, never a status read before), or why
/// not.
pub type Answer = Result<Option<Position>, ControlError>;

/// An instruction on its way to a worker, with where the answer goes.
pub(crate) struct Request {
    pub(crate) control: Control,
    pub(crate) reply: tokio::sync::oneshot::Sender<Answer>,
}

/// The event a failed model stopped at.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoppedAt {
    pub position: Position,
    pub stream: String,
    pub event_type: String,
    pub error: String,
}

/// A skipped event, as `dead_letters` keeps it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeadLetter {
    pub position: Position,
    pub stream: String,
    pub event_type: String,
    pub error: String,
    pub reason: String,
    pub by: String,
    pub skipped_at: chrono::DateTime<chrono::Utc>,
}

/// Kept across rebuilds: the schema's tables are dropped around it.
pub(crate) const TABLE: &str = "dead_letters";

pub(crate) fn create(conn: &Connection) -> rusqlite::Result<()> {
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS dead_letters (
             position INTEGER PRIMARY KEY, stream TEXT NOT NULL, event_type TEXT NOT NULL,
             error TEXT NOT NULL, reason TEXT NOT NULL, by TEXT NOT NULL, skipped_at TEXT NOT NULL)",
    )
}

/// Records the skip. The checkpoint stays where it is: events between it and the skipped one
/// (a batch that did not decode is dropped whole) are applied when the model goes on.
pub(crate) fn record_skip(
    tx: &Transaction<'_>,
    name: &str,
    stopped: &StoppedAt,
    reason: &str,
    by: &str,
    now: chrono::DateTime<chrono::Utc>,
) -> rusqlite::Result<()> {
    insert(
        tx,
        &DeadLetter {
            position: stopped.position,
            stream: stopped.stream.clone(),
            event_type: stopped.event_type.clone(),
            error: stopped.error.clone(),
            reason: reason.to_owned(),
            by: by.to_owned(),
            skipped_at: now,
        },
    )?;
    tx.execute(
        "UPDATE projection_state SET state = 'ok', error = NULL WHERE name = ?1",
        params![name],
    )?;
    Ok(())
}

/// The positions a model skips (its dead letters), for the worker to leave out.
pub(crate) fn skipped(conn: &Connection) -> rusqlite::Result<std::collections::BTreeSet<Position>> {
    conn.prepare("SELECT position FROM dead_letters")?
        .query_map([], |r| Ok(Position(r.get::<_, i64>(0)? as u64)))?
        .collect()
}

/// Every dead letter of a model, in log order.
pub fn dead_letters(conn: &Connection) -> rusqlite::Result<Vec<DeadLetter>> {
    let exists = conn
        .prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'dead_letters'")?
        .exists([])?;
    if !exists {
        return Ok(Vec::new());
    }
    conn.prepare(
        "SELECT position, stream, event_type, error, reason, by, skipped_at
         FROM dead_letters ORDER BY position",
    )?
    .query_map([], |r| {
        let at: String = r.get(6)?;
        Ok(DeadLetter {
            position: Position(r.get::<_, i64>(0)? as u64),
            stream: r.get(1)?,
            event_type: r.get(2)?,
            error: r.get(3)?,
            reason: r.get(4)?,
            by: r.get(5)?,
            skipped_at: chrono::DateTime::parse_from_rfc3339(&at)
                .map(|t| t.with_timezone(&chrono::Utc))
                .unwrap_or_default(),
        })
    })?
    .collect()
}

/// Copies the dead letters of the model at `from` into a new generation at `to`, so the new
/// one skips what the operator skipped (a missing `from` has none).
pub(crate) fn inherit(
    from: &std::path::Path,
    to: &std::path::Path,
) -> Result<(), crate::ProjectionError> {
    let letters = if from.exists() {
        let conn = super::sqlite::open_read_only(from)?;
        dead_letters(&conn)?
    } else {
        Vec::new()
    };
    let mut conn = Connection::open(to)?;
    create(&conn)?;
    let tx = conn.transaction()?;
    for d in &letters {
        insert(&tx, d)?;
    }
    tx.commit()?;
    Ok(())
}

/// One dead letter into the table; a second skip of the same event keeps the first one's who,
/// why and when.
fn insert(tx: &Transaction<'_>, d: &DeadLetter) -> rusqlite::Result<()> {
    tx.execute(
        "INSERT OR IGNORE INTO dead_letters(position, stream, event_type, error, reason, by, skipped_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![
            d.position.0 as i64,
            d.stream,
            d.event_type,
            d.error,
            d.reason,
            d.by,
            d.skipped_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
        ],
    )?;
    Ok(())
}
