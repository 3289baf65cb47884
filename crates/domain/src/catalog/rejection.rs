//! Why a catalog command was refused: one variant per rule.

use crate::ids::UserId;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CatalogRejection {
    /// Only admins change the catalog (SPEC 3.7).
    #[error("only an admin may change the catalog")]
    NotAdmin,
    #[error("{kind} {code:?} already exists")]
    AlreadyExists { kind: &'static str, code: String },
    #[error("unknown {kind} {code:?}")]
    Unknown { kind: &'static str, code: String },
    #[error("user {user} is already dismissed")]
    AlreadyDismissed { user: UserId },
    #[error("user {user} is not dismissed")]
    NotDismissed { user: UserId },
    /// Dismissing or demoting the last active admin would leave nobody to run the catalog.
    #[error("the last active admin can be neither dismissed nor demoted")]
    LastAdmin,
    #[error("user {user} cannot head a department: a department's supervisor is an active supervisor or admin")]
    NotASupervisor { user: UserId },
    /// A department's head stays an active supervisor or admin: change the head first.
    #[error("user {user} heads department {department}: give it another head first")]
    HeadsDepartment { user: UserId, department: String },
    /// A funnel's columns map every process stage exactly once, with distinct keys.
    #[error("invalid funnel columns: {reason}")]
    FunnelColumns { reason: String },
    #[error("invalid colour {colour:?}: use #rrggbb")]
    InvalidColour { colour: String },
    #[error("invalid settings: {reason}")]
    InvalidSettings { reason: String },
}

impl CatalogRejection {
    /// A stable snake_case name of the rule, for clients and metrics.
    pub fn rule(&self) -> &'static str {
        match self {
            Self::NotAdmin => "not_admin",
            Self::AlreadyExists { .. } => "already_exists",
            Self::Unknown { .. } => "unknown_catalog_entry",
            Self::AlreadyDismissed { .. } => "already_dismissed",
            Self::NotDismissed { .. } => "not_dismissed",
            Self::LastAdmin => "last_admin",
            Self::NotASupervisor { .. } => "not_a_supervisor",
            Self::HeadsDepartment { .. } => "heads_department",
            Self::FunnelColumns { .. } => "funnel_columns",
            Self::InvalidColour { .. } => "invalid_colour",
            Self::InvalidSettings { .. } => "invalid_settings",
        }
    }
}
