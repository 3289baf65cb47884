//! What ops see of each read model: its state, checkpoint, lag, rate, and for a failed or
//! retrying one the error, attempts and next attempt.

use std::time::Duration;

use leadflow_store::Position;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProjectionState {
    Starting,
    CatchingUp,
    Live,
    /// A transient failure: waiting to apply again from the checkpoint.
    Retrying,
    Failed,
    Stopped,
}

impl ProjectionState {
    /// The name ops see (`/health`, `projections status`).
    pub fn label(self) -> &'static str {
        match self {
            Self::Starting => "starting",
            Self::CatchingUp => "catching up",
            Self::Live => "live",
            Self::Retrying => "retrying",
            Self::Failed => "failed",
            Self::Stopped => "stopped",
        }
    }

    /// Whether the model is not following the log by itself right now.
    pub fn is_unhealthy(self) -> bool {
        matches!(self, Self::Retrying | Self::Failed)
    }
}

/// The first wait after a transient failure; each further attempt doubles it, up to
/// [`RETRY_MAX`].
pub const RETRY_FIRST: Duration = Duration::from_millis(250);
pub const RETRY_MAX: Duration = Duration::from_secs(30);

/// How long to wait before attempt `n` (1-based) after a transient failure.
pub fn retry_delay(attempt: u32) -> Duration {
    RETRY_FIRST
        .saturating_mul(1 << attempt.saturating_sub(1).min(16))
        .min(RETRY_MAX)
}

#[derive(Clone, Debug)]
pub struct ProjectionStatus {
    pub name: &'static str,
    pub version: u32,
    pub checkpoint: Position,
    pub head: Position,
    pub state: ProjectionState,
    /// Events applied per second over the last second or so.
    pub events_per_sec: f64,
    /// For a failed projection: the event it could not apply and why; for a retrying one,
    /// the last transient error.
    pub error: Option<String>,
    /// Transient failures in a row (0 once a batch commits again).
    pub attempts: u32,
    /// When a retrying projection tries again.
    pub next_attempt: Option<chrono::DateTime<chrono::Utc>>,
}

impl ProjectionStatus {
    pub fn lag(&self) -> u64 {
        self.head.0.saturating_sub(self.checkpoint.0)
    }
}
