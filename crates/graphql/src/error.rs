//! One table from every error of the layers below to the API's stable codes
//! (`extensions.code`) and a human message.

use async_graphql::ErrorExtensions;

use leadflow_domain::{CatalogRejection, Rejection, ValueError};
use leadflow_engine::EngineError;
use leadflow_projections::runner::ReadError;

/// What the API answers when it cannot do what was asked.
///
/// Deliberately not `Display`: async-graphql turns any `Display` error into an error without
/// a code, so the only way out of a resolver is [`From<ApiError>`], which sets the code.
///
/// ### Handling
/// Clients switch on [`ApiError::code`]; the message is for people.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApiError {
    BadUserInput(String),
    Unauthenticated,
    Forbidden(String),
    NotFound(String),
    InvalidTransition { rule: &'static str, message: String },
    Conflict(String),
    Internal(String),
}

impl ApiError {
    /// The human message.
    pub fn message(&self) -> String {
        match self {
            Self::Unauthenticated => "a valid bearer token is required".to_owned(),
            Self::BadUserInput(m)
            | Self::Forbidden(m)
            | Self::NotFound(m)
            | Self::Conflict(m)
            | Self::Internal(m) => m.clone(),
            Self::InvalidTransition { message, .. } => message.clone(),
        }
    }

    /// The stable code clients switch on.
    pub fn code(&self) -> &'static str {
        match self {
            Self::BadUserInput(_) => "BAD_USER_INPUT",
            Self::Unauthenticated => "UNAUTHENTICATED",
            Self::Forbidden(_) => "FORBIDDEN",
            Self::NotFound(_) => "NOT_FOUND",
            Self::InvalidTransition { .. } => "INVALID_TRANSITION",
            Self::Conflict(_) => "CONFLICT",
            Self::Internal(_) => "INTERNAL",
        }
    }
}

impl ApiError {
    pub fn extend(&self) -> async_graphql::Error {
        async_graphql::Error::new(self.message()).extend_with(|_, e| {
            e.set("code", self.code());
            if let Self::InvalidTransition { rule, .. } = self {
                e.set("rule", *rule);
            }
        })
    }
}

impl From<ApiError> for async_graphql::Error {
    fn from(e: ApiError) -> Self {
        e.extend()
    }
}

impl From<ValueError> for ApiError {
    fn from(e: ValueError) -> Self {
        Self::BadUserInput(e.to_string())
    }
}

impl From<Rejection> for ApiError {
    fn from(r: Rejection) -> Self {
        use Rejection::*;
        let message = r.to_string();
        match r {
            UnknownFunnel { .. }
            | UnknownStage { .. }
            | UnknownUser { .. }
            | InactiveUser { .. }
            | UnknownReason { .. }
            | UnknownCatalogCode { .. }
            | InvalidValue(_)
            | DuplicateChange { .. }
            | NotBaseCurrency { .. }
            | TimeInPast
            | NothingToConvert => Self::BadUserInput(message),
            SupervisorOnly { .. } | NotAllowedToJump { .. } | NotAllowedToConvert { .. } => {
                Self::Forbidden(message)
            }
            NotRegistered { .. } => Self::NotFound(message),
            // Told exactly as a lead that does not exist.
            OutOfScope { command } => Self::NotFound(NotRegistered { command }.to_string()),
            other => Self::InvalidTransition {
                rule: other.rule(),
                message,
            },
        }
    }
}

impl From<CatalogRejection> for ApiError {
    fn from(r: CatalogRejection) -> Self {
        let message = r.to_string();
        match r {
            CatalogRejection::NotAdmin => Self::Forbidden(message),
            CatalogRejection::Unknown { .. } => Self::NotFound(message),
            _ => Self::BadUserInput(message),
        }
    }
}

impl From<EngineError> for ApiError {
    fn from(e: EngineError) -> Self {
        match e {
            EngineError::Rejected(r) => r.into(),
            EngineError::CatalogRejected(r) => r.into(),
            EngineError::SubjectRejected(r) => Self::Forbidden(r.to_string()),
            EngineError::OpsRejected(r) => match r {
                leadflow_domain::OpsRejection::NotAdmin => Self::Forbidden(r.to_string()),
                leadflow_domain::OpsRejection::NoPosition
                | leadflow_domain::OpsRejection::NoModel
                | leadflow_domain::OpsRejection::NotOnBuilding => Self::BadUserInput(r.to_string()),
            },
            EngineError::ReadOnly => Self::Forbidden(e.to_string()),
            EngineError::Conflict { .. } => Self::Conflict(e.to_string()),
            EngineError::IdempotencyKeyReused { .. }
            | EngineError::MisaddressedRegistration { .. } => Self::BadUserInput(e.to_string()),
            EngineError::Store(_)
            | EngineError::Corrupt { .. }
            | EngineError::Seal { .. }
            | EngineError::Keys(_) => {
                tracing::error!(error = %e, "command failed inside");
                Self::Internal(e.to_string())
            }
        }
    }
}

impl From<ReadError> for ApiError {
    fn from(e: ReadError) -> Self {
        tracing::warn!(error = %e, "read failed");
        Self::Internal(e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use leadflow_domain::{CommandName, Stage};

    #[test]
    fn every_code_of_the_table() {
        let cases: Vec<(ApiError, &str)> = vec![
            (
                ValueError::Email { input: "x".into() }.into(),
                "BAD_USER_INPUT",
            ),
            (ApiError::Unauthenticated, "UNAUTHENTICATED"),
            (
                Rejection::SupervisorOnly {
                    command: CommandName::ReopenLead,
                    role: leadflow_domain::Role::Manager,
                }
                .into(),
                "FORBIDDEN",
            ),
            (
                Rejection::NotRegistered {
                    command: CommandName::QualifyLead,
                }
                .into(),
                "NOT_FOUND",
            ),
            (
                Rejection::NotAllowedInStage {
                    command: CommandName::QualifyLead,
                    stage: Stage::Distribution,
                }
                .into(),
                "INVALID_TRANSITION",
            ),
            (
                EngineError::Conflict {
                    stream: "lead-00000000-0000-0000-0000-000000000000".into(),
                    attempts: 3,
                }
                .into(),
                "CONFLICT",
            ),
            (ApiError::Internal("boom".into()), "INTERNAL"),
            (CatalogRejection::NotAdmin.into(), "FORBIDDEN"),
            (
                CatalogRejection::AlreadyExists {
                    kind: "user",
                    code: "ivan.manager".into(),
                }
                .into(),
                "BAD_USER_INPUT",
            ),
        ];
        for (error, code) in cases {
            assert_eq!(error.code(), code, "{error:?}");
            let gql = error.extend();
            let ext = gql.extensions.expect("extensions");
            assert_eq!(ext.get("code"), Some(&async_graphql::Value::from(code)));
        }
    }

    #[test]
    fn an_invalid_transition_names_its_rule_and_stage() {
        let e: ApiError = Rejection::NotAllowedInStage {
            command: CommandName::QualifyLead,
            stage: Stage::Distribution,
        }
        .into();
        assert_eq!(e.message(), "cannot qualify a lead in stage Distribution");
        let ext = e.extend().extensions.unwrap();
        assert_eq!(
            ext.get("rule"),
            Some(&async_graphql::Value::from("not_allowed_in_stage"))
        );
    }
}
