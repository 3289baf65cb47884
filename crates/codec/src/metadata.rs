//! The envelope every event carries (SPEC section 4): who, when in business time, which
//! command, correlation and causation, and the payload's schema version.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use leadflow_domain::{Actor, Role, UserId};

use crate::lead::CodecError;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ActorMetadata {
    pub user_id: UserId,
    pub role: Role,
}

impl From<Actor> for ActorMetadata {
    fn from(a: Actor) -> Self {
        Self {
            user_id: a.user,
            role: a.role,
        }
    }
}

/// The envelope every event carries (SPEC section 4).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EventMetadata {
    pub actor: ActorMetadata,
    /// Business time (an import keeps the original time).
    pub occurred_at: DateTime<Utc>,
    pub correlation_id: Uuid,
    pub causation_id: Uuid,
    pub command_id: Uuid,
    /// The command's name (`QualifyLead`), so a key reused for another command is caught.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
    /// The payload's schema version.
    pub version: u32,
    /// The data subject whose key seals the payload's personal fields (issue 20); `None`:
    /// nothing in it is sealed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<Uuid>,
}

impl EventMetadata {
    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("metadata always serializes")
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, CodecError> {
        serde_json::from_slice(bytes).map_err(|e| CodecError::Metadata {
            reason: e.to_string(),
        })
    }
}
