//! Retention of personal data (issue 20): the catalog's `retentionMonths` applied. A data
//! subject all of whose leads are closed and untouched for that many months is erased, with
//! reason RETENTION, through the same command an admin's erasure takes. The leads' process
//! history stays; only the person goes.
//!
//! The sweep reads the candidates from the `leads` model brought up to the log's head, so a
//! lead reopened a moment ago keeps its person; each erasure is a command of its own (a
//! crash halfway leaves the rest for the next sweep, and one already erased is passed over).

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Months, Utc};
use leadflow_domain::{Actor, ErasureReason, SubjectCommand, SubjectId};
use leadflow_engine::{CommandMeta, Engine, EngineError, KeyError, Opening};
use leadflow_projections::{privacy, ReadError, ReadSide, LEADS};
use leadflow_store::StoreError;

/// What a sweep found and did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sweep {
    /// The setting it applied.
    pub months: u32,
    /// Leads whose last event is before this count as closed long enough.
    pub cutoff: DateTime<Utc>,
    /// The subjects it erased (or, on a dry run, would erase), in the order their first lead
    /// arrived.
    pub erased: Vec<SubjectId>,
    /// Subjects past the cutoff that were erased before.
    pub already_erased: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum SweepError {
    #[error("retention is off: set the catalog's retentionMonths (changeSettings) to use it")]
    Off,
    #[error("{months} months before {now} is out of range")]
    Range { months: u32, now: DateTime<Utc> },
    #[error("a sweep needs the personal-data keys (the master key)")]
    NoKeys,
    #[error("event store: {0}")]
    Store(#[from] StoreError),
    #[error("personal data keys: {0}")]
    Keys(#[from] KeyError),
    #[error("read models: {0}")]
    Read(#[from] ReadError),
    #[error("erasing {subject}: {source}")]
    Erase {
        subject: SubjectId,
        source: EngineError,
    },
}

/// Applies the catalog's retention setting at `now` as `by` (an admin): every subject past
/// it is erased, unless `dry_run`, which only lists them. `reads` is brought up to the log's
/// head first (within `wait`).
pub async fn sweep(
    engine: &Engine,
    reads: &Arc<ReadSide>,
    by: Actor,
    now: DateTime<Utc>,
    dry_run: bool,
    wait: Duration,
) -> Result<Sweep, SweepError> {
    let months = engine.catalog().settings.retention_months;
    if months == 0 {
        return Err(SweepError::Off);
    }
    let cutoff = now
        .checked_sub_months(Months::new(months))
        .ok_or(SweepError::Range { months, now })?;
    let keyring = engine.keyring().ok_or(SweepError::NoKeys)?;
    reads.wait_for(engine.store().head().await?, wait).await?;
    let candidates = reads
        .read(LEADS, move |c| privacy::retention_candidates(c, cutoff))
        .await?;
    let uuids: Vec<_> = candidates.iter().map(|s| s.as_uuid()).collect();
    keyring.load_many(&uuids, false).await?;
    let mut out = Sweep {
        months,
        cutoff,
        erased: Vec::new(),
        already_erased: 0,
    };
    for subject in candidates {
        // A subject without a stored key (data written before sealing) is erased all the
        // same: the read models drop its plain text.
        match keyring.load(subject.as_uuid()).await {
            Ok(Opening::Erased) => {
                out.already_erased += 1;
                continue;
            }
            Ok(Opening::Key(_)) | Err(KeyError::Missing(_)) => {}
            Err(e) => return Err(e.into()),
        }
        if !dry_run {
            engine
                .execute_subject(
                    SubjectCommand::Erase {
                        subject,
                        reason: ErasureReason::Retention,
                        ticket: None,
                    },
                    CommandMeta::by(by),
                )
                .await
                .map_err(|source| SweepError::Erase { subject, source })?;
        }
        out.erased.push(subject);
    }
    Ok(out)
}
