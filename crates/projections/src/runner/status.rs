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
    /// Paused by an operator: it applies nothing until resumed.
    Paused,
    Stopped,
}

impl ProjectionState {
    /// Every state, for gauges that show one of them at a time.
    pub const ALL: [Self; 7] = [
        Self::Starting,
        Self::CatchingUp,
        Self::Live,
        Self::Retrying,
        Self::Failed,
        Self::Paused,
        Self::Stopped,
    ];

    /// The name ops see (`/health`, `projections status`).
    pub fn label(self) -> &'static str {
        match self {
            Self::Starting => "starting",
            Self::CatchingUp => "catching up",
            Self::Live => "live",
            Self::Retrying => "retrying",
            Self::Failed => "failed",
            Self::Paused => "paused",
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
    /// Which generation of the model's storage this is (0: `<name>.db`).
    pub generation: u32,
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
    /// Building from the start of the log (a new version, or a rebuild ops asked for).
    pub rebuilding: bool,
    /// While failed: the event it stopped at (what `skip` must name).
    pub stopped_at: Option<super::control::StoppedAt>,
    /// The generation being built beside this one, if any.
    pub rebuild: Option<Box<ProjectionStatus>>,
    /// Why the last rebuild was not switched in (a verification that found differences).
    pub refused: Option<String>,
}

impl ProjectionStatus {
    pub fn lag(&self) -> u64 {
        self.head.0.saturating_sub(self.checkpoint.0)
    }

    /// How far a rebuild has come, 0 to 1 (positions are dense in the embedded store, so it
    /// is the share of events applied); `None` when not rebuilding.
    pub fn rebuild_progress(&self) -> Option<f64> {
        self.rebuilding.then(|| {
            if self.head.0 == 0 {
                1.0
            } else {
                (self.checkpoint.0 as f64 / self.head.0 as f64).min(1.0)
            }
        })
    }

    /// Seconds until caught up at the current rate; `None` when not moving or not behind.
    pub fn eta_seconds(&self) -> Option<f64> {
        (self.lag() > 0 && self.events_per_sec > 0.0)
            .then(|| self.lag() as f64 / self.events_per_sec)
    }

    /// The state as ops read it: `rebuilding 42 %` while a rebuild catches up.
    pub fn describe(&self) -> String {
        match self.rebuild_progress() {
            Some(done)
                if matches!(
                    self.state,
                    ProjectionState::CatchingUp | ProjectionState::Starting
                ) =>
            {
                format!("rebuilding {:.0} %", done * 100.0)
            }
            _ => self.state.label().to_owned(),
        }
    }
}
