//! What an admin asks of the catalog. Values come parsed (codes, logins, bounded texts); the
//! rules that need the catalog itself are checked by `decide`.

use crate::catalog::value::{
    AutomationRule, CatalogPart, ConvertPolicy, ExportPolicy, ListKind, Locale, Role,
};
use crate::ids::{
    DepartmentId, EntryCode, FunnelId, Login, OfficeId, SourceCode, StageKey, UserId,
};
use crate::stage::Stage;
use crate::values::{Email, Name, Short};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CreateUser {
    pub login: Login,
    pub display_name: Name,
    pub role: Role,
    pub department: DepartmentId,
    pub office: Option<OfficeId>,
    pub email: Option<Email>,
    pub locale: Locale,
}

/// Changes the fields given; `None` keeps a field as it is (`Some(None)` clears an optional
/// one).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UpdateUser {
    pub user: UserId,
    pub display_name: Option<Name>,
    pub role: Option<Role>,
    pub department: Option<DepartmentId>,
    pub office: Option<Option<OfficeId>>,
    pub email: Option<Option<Email>>,
    pub locale: Option<Locale>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DefineDepartment {
    pub department: DepartmentId,
    pub name: Short,
    pub supervisor: Option<UserId>,
}

/// Changes the fields given; `None` keeps a field (`Some(None)` removes the supervisor).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UpdateDepartment {
    pub department: DepartmentId,
    pub name: Option<Short>,
    pub supervisor: Option<Option<UserId>>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DefineOffice {
    pub office: OfficeId,
    pub name: Short,
}

/// One column of a funnel as an admin gives it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StageInput {
    pub key: StageKey,
    pub name: Short,
    /// `#rrggbb`, checked by `decide`.
    pub colour: String,
    pub stage: Stage,
    /// Hours a lead may stay in a working stage before the SLA report counts a breach.
    pub sla_hours: Option<u32>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DefineFunnel {
    pub funnel: FunnelId,
    pub name: Short,
    /// The columns in display order: exactly one per process stage.
    pub stages: Vec<StageInput>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UpdateFunnel {
    pub funnel: FunnelId,
    pub name: Option<Short>,
    pub stages: Option<Vec<StageInput>>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DefineSource {
    pub code: SourceCode,
    pub name: Short,
    pub group: Option<Short>,
    pub tags: Vec<Short>,
    pub counted_in_statistics: bool,
}

/// Changes the fields given; `None` keeps a field.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UpdateSource {
    pub code: SourceCode,
    pub name: Option<Short>,
    pub group: Option<Option<Short>>,
    pub tags: Option<Vec<Short>>,
    pub counted_in_statistics: Option<bool>,
}

/// Changes the settings given; `None` keeps a setting. The base currency is fixed at
/// installation (budgets already entered are in it).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SettingsPatch {
    pub who_may_convert: Option<ConvertPolicy>,
    pub who_may_export: Option<ExportPolicy>,
    pub pin_inquiries_to_taker: Option<bool>,
    pub non_target_call_seconds: Option<u32>,
    /// The whole list of rules: one per known trigger ([`AUTOMATION_TRIGGERS`]).
    pub automation: Option<Vec<AutomationRule>>,
    /// Months after which a closed person's data is erased; 0 turns retention off.
    pub retention_months: Option<u32>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DefineEntry {
    pub list: ListKind,
    pub code: EntryCode,
    pub name: Short,
}

/// Every command of the catalog.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CatalogCommand {
    CreateUser(CreateUser),
    UpdateUser(UpdateUser),
    DismissUser { user: UserId },
    RestoreUser { user: UserId },
    CreateDepartment(DefineDepartment),
    UpdateDepartment(UpdateDepartment),
    CreateOffice(DefineOffice),
    UpdateOffice(DefineOffice),
    CreateFunnel(DefineFunnel),
    UpdateFunnel(UpdateFunnel),
    SetDefaultFunnel { funnel: FunnelId },
    CreateSource(DefineSource),
    UpdateSource(UpdateSource),
    CreateEntry(DefineEntry),
    UpdateEntry(DefineEntry),
    ChangeSettings(SettingsPatch),
}

impl CatalogCommand {
    /// The stream the command is decided on.
    pub fn part(&self) -> CatalogPart {
        use CatalogCommand::*;
        match self {
            CreateUser(_) | UpdateUser(_) | DismissUser { .. } | RestoreUser { .. } => {
                CatalogPart::Users
            }
            CreateDepartment(_) | UpdateDepartment(_) | CreateOffice(_) | UpdateOffice(_) => {
                CatalogPart::Org
            }
            CreateFunnel(_) | UpdateFunnel(_) | SetDefaultFunnel { .. } => CatalogPart::Funnels,
            CreateSource(_) | UpdateSource(_) | CreateEntry(_) | UpdateEntry(_) => {
                CatalogPart::Lists
            }
            ChangeSettings(_) => CatalogPart::Settings,
        }
    }

    /// The command's name as recorded in event metadata.
    pub fn name(&self) -> &'static str {
        use CatalogCommand::*;
        match self {
            CreateUser(_) => "CreateUser",
            UpdateUser(_) => "UpdateUser",
            DismissUser { .. } => "DismissUser",
            RestoreUser { .. } => "RestoreUser",
            CreateDepartment(_) => "CreateDepartment",
            UpdateDepartment(_) => "UpdateDepartment",
            CreateOffice(_) => "CreateOffice",
            UpdateOffice(_) => "UpdateOffice",
            CreateFunnel(_) => "CreateFunnel",
            UpdateFunnel(_) => "UpdateFunnel",
            SetDefaultFunnel { .. } => "SetDefaultFunnel",
            CreateSource(_) => "CreateSource",
            UpdateSource(_) => "UpdateSource",
            CreateEntry(_) => "CreateEntry",
            UpdateEntry(_) => "UpdateEntry",
            ChangeSettings(_) => "ChangeSettings",
        }
    }

    /// Every command name, for reading them back from metadata.
    pub const NAMES: [&'static str; 16] = [
        "CreateUser",
        "UpdateUser",
        "DismissUser",
        "RestoreUser",
        "CreateDepartment",
        "UpdateDepartment",
        "CreateOffice",
        "UpdateOffice",
        "CreateFunnel",
        "UpdateFunnel",
        "SetDefaultFunnel",
        "CreateSource",
        "UpdateSource",
        "CreateEntry",
        "UpdateEntry",
        "ChangeSettings",
    ];
}

impl UpdateUser {
    /// An update of `user` that changes nothing yet.
    pub fn of(user: UserId) -> Self {
        Self {
            user,
            display_name: None,
            role: None,
            department: None,
            office: None,
            email: None,
            locale: None,
        }
    }
}
