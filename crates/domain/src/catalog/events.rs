//! The catalog's events: past tense, versioned, JSON (camelCase), one payload type each, listed
//! once in [`for_each_catalog_event!`] for the codec and the schema files. An event records
//! the state it leaves (an updated user is written whole), so folding never needs a rule.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::catalog::value::{CatalogPart, FunnelStage, ListKind, Locale, Role, Settings};
use crate::ids::{DepartmentId, EntryCode, FunnelId, Login, OfficeId, SourceCode, UserId};
use crate::values::{Email, Name, Short};

/// Calls `$m! { Type = version, ... }` with every catalog event type and its current version.
#[macro_export]
macro_rules! for_each_catalog_event {
    ($m:ident) => {
        $m! {
            UserCreated = 1,
            UserUpdated = 1,
            UserDismissed = 1,
            UserRestored = 1,
            DepartmentDefined = 1,
            OfficeDefined = 1,
            FunnelDefined = 1,
            DefaultFunnelSet = 1,
            SourceDefined = 1,
            ListEntryDefined = 1,
            SettingsChanged = 1,
        }
    };
}

macro_rules! define_catalog_event {
    ($($list:tt)*) => {
        event_enum! {
            /// Every event of a catalog stream.
            CatalogEvent, catalog_event_schemas; $($list)*
        }
    };
}

for_each_catalog_event!(define_catalog_event);

impl CatalogEvent {
    /// The stream the event belongs to.
    pub fn part(&self) -> CatalogPart {
        use CatalogEvent::*;
        match self {
            UserCreated(_) | UserUpdated(_) | UserDismissed(_) | UserRestored(_) => {
                CatalogPart::Users
            }
            DepartmentDefined(_) | OfficeDefined(_) => CatalogPart::Org,
            FunnelDefined(_) | DefaultFunnelSet(_) => CatalogPart::Funnels,
            SourceDefined(_) | ListEntryDefined(_) => CatalogPart::Lists,
            SettingsChanged(_) => CatalogPart::Settings,
        }
    }
}

/// A user as created or as an update leaves them (everything but whether they are active).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct UserRecord {
    pub user_id: UserId,
    pub login: Login,
    pub display_name: Name,
    pub role: Role,
    pub department: DepartmentId,
    pub office: Option<OfficeId>,
    pub email: Option<Email>,
    pub locale: Locale,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct UserCreated {
    #[serde(flatten)]
    pub user: UserRecord,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct UserUpdated {
    #[serde(flatten)]
    pub user: UserRecord,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct UserDismissed {
    pub user_id: UserId,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct UserRestored {
    pub user_id: UserId,
}

/// A department created or changed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DepartmentDefined {
    pub department: DepartmentId,
    pub name: Short,
    pub supervisor: Option<UserId>,
}

/// An office created or renamed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct OfficeDefined {
    pub office: OfficeId,
    pub name: Short,
}

/// A funnel created, renamed or given new columns. Leads keep their process stage; history
/// is not rewritten.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FunnelDefined {
    pub funnel: FunnelId,
    pub name: Short,
    pub stages: Vec<FunnelStage>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DefaultFunnelSet {
    pub funnel: FunnelId,
}

/// A source created or changed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SourceDefined {
    pub code: SourceCode,
    pub name: Short,
    pub group: Option<Short>,
    pub tags: Vec<Short>,
    pub counted_in_statistics: bool,
}

/// An entry of a plain list created or renamed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ListEntryDefined {
    pub list: ListKind,
    pub code: EntryCode,
    pub name: Short,
}

/// The settings as they are from now on.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SettingsChanged {
    pub settings: Settings,
}
