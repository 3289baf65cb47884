//! The catalog as a value: what every aggregate's decision may read through its `Context`
//! (users and roles, departments, offices, funnels, the lists, the settings). It knows
//! nothing of how the catalog changes (`decide`, events): those depend on it, never the other
//! way round.

use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::ids::{
    ChannelCode, DepartmentId, EntryCode, FunnelId, Login, OfficeId, ReasonCode, SourceCode,
    StageKey, UserId,
};
use crate::stage::Stage;
use crate::values::{Currency, Email};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum Role {
    Manager,
    /// Head of a department, with access to every lead.
    Supervisor,
    Admin,
}

impl Role {
    /// Supervisors and admins may reopen, jump any lead and convert any lead.
    pub fn is_supervising(self) -> bool {
        matches!(self, Role::Supervisor | Role::Admin)
    }
}

/// The language a user reads the product and its notifications in.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Locale {
    #[default]
    Ru,
    En,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct User {
    pub id: UserId,
    /// The login (`olga.supervisor`); the id derives from it.
    pub name: String,
    pub display_name: String,
    pub role: Role,
    pub department: DepartmentId,
    pub office: Option<OfficeId>,
    pub email: Option<Email>,
    pub locale: Locale,
    /// Dismissed staff stay in the catalog (history names them) but take no new leads and
    /// their tokens are refused.
    pub active: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Department {
    pub id: DepartmentId,
    pub name: String,
    /// The department's head.
    pub supervisor: Option<UserId>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Office {
    pub id: OfficeId,
    pub name: String,
}

/// One column of a funnel: its own key, name and colour over a fixed [`Stage`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FunnelStage {
    pub key: StageKey,
    pub name: String,
    /// `#rrggbb`.
    pub colour: String,
    pub stage: Stage,
    /// The SLA: how many hours a lead may stay in the stage before it counts as a breach
    /// (the SLA report); `None`: no limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sla_hours: Option<u32>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Funnel {
    pub id: FunnelId,
    pub name: String,
    /// The columns in display order, exactly one per [`Stage`].
    pub stages: Vec<FunnelStage>,
}

impl Funnel {
    /// Builds a funnel from `(key, name, colour)` per stage in [`Stage::ALL`] order.
    pub fn new(id: &str, name: &str, columns: [(&str, &str, &str); 7]) -> Self {
        let stages = columns
            .into_iter()
            .zip(Stage::ALL)
            .map(|((key, name, colour), stage)| FunnelStage {
                key: StageKey::parse(key).expect("catalog stage keys are valid codes"),
                name: name.to_owned(),
                colour: colour.to_owned(),
                stage,
                sla_hours: None,
            })
            .collect();
        Self {
            id: FunnelId::parse(id).expect("catalog funnel ids are valid codes"),
            name: name.to_owned(),
            stages,
        }
    }

    /// The stage a new lead starts in.
    pub fn first_stage(&self) -> Stage {
        Stage::Qualification
    }

    pub fn stage_by_key(&self, key: &StageKey) -> Option<&FunnelStage> {
        self.stages.iter().find(|s| &s.key == key)
    }

    pub fn column(&self, stage: Stage) -> &FunnelStage {
        self.stages
            .iter()
            .find(|s| s.stage == stage)
            .expect("a funnel has a column for every stage")
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reason {
    pub code: ReasonCode,
    pub name: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Source {
    pub code: SourceCode,
    pub name: String,
    /// The source group reports roll sources up into («Группа источников»).
    pub group: Option<String>,
    pub tags: Vec<String>,
    /// Sources flagged "not counted in statistics" make their leads NonAdvertising.
    pub counted_in_statistics: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Channel {
    pub code: ChannelCode,
    pub name: String,
}

/// An entry of one of the plain lists (sales directions, industries, business regions).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub code: EntryCode,
    pub name: String,
}

/// The lists of code and name that catalog commands create and rename alike.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum ListKind {
    Channel,
    Reason,
    SalesDirection,
    Industry,
    BusinessRegion,
}

impl ListKind {
    pub const ALL: [ListKind; 5] = [
        Self::Channel,
        Self::Reason,
        Self::SalesDirection,
        Self::Industry,
        Self::BusinessRegion,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Channel => "channel",
            Self::Reason => "disqualification reason",
            Self::SalesDirection => "sales direction",
            Self::Industry => "industry",
            Self::BusinessRegion => "business region",
        }
    }
}

/// Who may convert a lead (SPEC 3.7: the creator, their supervisor, an admin by default).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum ConvertPolicy {
    /// The creator, a supervisor of the creator's department, an admin.
    #[default]
    CreatorAndSupervisor,
    /// Besides those, the lead's responsible.
    CreatorResponsibleAndSupervisor,
    /// Supervisors (of the creator's department) and admins only.
    SupervisorsOnly,
    AdminsOnly,
}

/// Who may export registries to Excel (SPEC 3.7: everyone by default, restrictable to admins).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum ExportPolicy {
    #[default]
    Everyone,
    AdminsOnly,
}

/// The triggers of SPEC 3.6's automation rules, by key: the settings hold one rule for each.
pub const AUTOMATION_TRIGGERS: [&str; 5] = [
    "lead-registered",
    "lead-untouched",
    "lead-in-handoff",
    "handoff-no-contact",
    "stage-idle-escalation",
];

/// One automation rule of SPEC 3.6, as data: its trigger is fixed by its key, the rest is
/// editable.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AutomationRule {
    pub key: EntryCode,
    pub enabled: bool,
    /// How long after the trigger the action runs.
    pub delay_minutes: u32,
    pub text_ru: String,
    pub text_en: String,
}

/// The settings of the installation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Settings {
    pub who_may_convert: ConvertPolicy,
    pub who_may_export: ExportPolicy,
    /// An inquiry stays with whoever took it (seed 004).
    pub pin_inquiries_to_taker: bool,
    /// Calls shorter than this are non-target (seed 004: 10 s).
    pub non_target_call_seconds: u32,
    /// Handoff budgets are entered in this currency («Бюджет, б.в»).
    pub base_currency: Currency,
    pub automation: Vec<AutomationRule>,
    /// Retention of personal data (issue 20): a data subject all of whose leads are closed
    /// and untouched for this many months is erased by `leadflow privacy sweep`. 0: off, the
    /// default. Omitted from the payload while off, so older settings read the same.
    #[serde(default, skip_serializing_if = "is_off")]
    pub retention_months: u32,
}

fn is_off(months: &u32) -> bool {
    *months == 0
}

/// The longest retention a catalog may set: a century.
pub const MAX_RETENTION_MONTHS: u32 = 1200;

impl Default for Settings {
    fn default() -> Self {
        Self {
            who_may_convert: ConvertPolicy::default(),
            who_may_export: ExportPolicy::default(),
            pin_inquiries_to_taker: true,
            non_target_call_seconds: 10,
            base_currency: Currency::rub(),
            automation: Vec::new(),
            retention_months: 0,
        }
    }
}

/// The streams the catalog is kept in, one per kind: `catalog-<part>`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum CatalogPart {
    /// Users and their roles.
    Users,
    /// Departments and offices.
    Org,
    /// Funnels and the default funnel.
    Funnels,
    /// Sources, channels, reasons, sales directions, industries, business regions.
    Lists,
    Settings,
}

impl CatalogPart {
    pub const ALL: [CatalogPart; 5] = [
        Self::Users,
        Self::Org,
        Self::Funnels,
        Self::Lists,
        Self::Settings,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Users => "users",
            Self::Org => "org",
            Self::Funnels => "funnels",
            Self::Lists => "lists",
            Self::Settings => "settings",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.as_str() == raw)
    }
}

impl fmt::Display for CatalogPart {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Catalog {
    pub funnels: Vec<Funnel>,
    /// The funnel the registry shows when none is named.
    pub default_funnel: FunnelId,
    pub departments: Vec<Department>,
    pub offices: Vec<Office>,
    pub users: Vec<User>,
    pub reasons: Vec<Reason>,
    pub sources: Vec<Source>,
    pub channels: Vec<Channel>,
    pub sales_directions: Vec<Entry>,
    pub industries: Vec<Entry>,
    pub business_regions: Vec<Entry>,
    pub settings: Settings,
}

impl Catalog {
    /// A catalog with nothing in it: what a catalog stream folds from.
    pub fn empty() -> Self {
        Self {
            funnels: Vec::new(),
            default_funnel: FunnelId::parse("default").expect("valid"),
            departments: Vec::new(),
            offices: Vec::new(),
            users: Vec::new(),
            reasons: Vec::new(),
            sources: Vec::new(),
            channels: Vec::new(),
            sales_directions: Vec::new(),
            industries: Vec::new(),
            business_regions: Vec::new(),
            settings: Settings::default(),
        }
    }

    /// The whole catalog from the state of each of its streams (a part never folded reads as
    /// empty).
    pub fn assemble(mut part: impl FnMut(CatalogPart) -> Option<Catalog>) -> Self {
        let mut c = Self::empty();
        if let Some(p) = part(CatalogPart::Users) {
            c.users = p.users;
        }
        if let Some(p) = part(CatalogPart::Org) {
            c.departments = p.departments;
            c.offices = p.offices;
        }
        if let Some(p) = part(CatalogPart::Funnels) {
            c.funnels = p.funnels;
            c.default_funnel = p.default_funnel;
        }
        if let Some(p) = part(CatalogPart::Lists) {
            c.sources = p.sources;
            c.channels = p.channels;
            c.reasons = p.reasons;
            c.sales_directions = p.sales_directions;
            c.industries = p.industries;
            c.business_regions = p.business_regions;
        }
        if let Some(p) = part(CatalogPart::Settings) {
            c.settings = p.settings;
        }
        c
    }

    /// Handoff budgets are entered in this currency («Бюджет, б.в»).
    pub fn base_currency(&self) -> &Currency {
        &self.settings.base_currency
    }

    pub fn funnel(&self, id: &FunnelId) -> Option<&Funnel> {
        self.funnels.iter().find(|f| &f.id == id)
    }

    pub fn user(&self, id: UserId) -> Option<&User> {
        self.users.iter().find(|u| u.id == id)
    }

    pub fn user_named(&self, login: &Login) -> Option<&User> {
        self.users.iter().find(|u| u.name == login.as_str())
    }

    pub fn department(&self, id: &DepartmentId) -> Option<&Department> {
        self.departments.iter().find(|d| &d.id == id)
    }

    pub fn office(&self, id: &OfficeId) -> Option<&Office> {
        self.offices.iter().find(|o| &o.id == id)
    }

    pub fn reason(&self, code: &ReasonCode) -> Option<&Reason> {
        self.reasons.iter().find(|r| &r.code == code)
    }

    pub fn source(&self, code: &SourceCode) -> Option<&Source> {
        self.sources.iter().find(|s| &s.code == code)
    }

    pub fn channel(&self, code: &ChannelCode) -> Option<&Channel> {
        self.channels.iter().find(|c| &c.code == code)
    }

    /// The entries of a plain list, as (code, name).
    pub fn list(&self, kind: ListKind) -> Vec<(&str, &str)> {
        match kind {
            ListKind::Channel => self
                .channels
                .iter()
                .map(|c| (c.code.as_str(), c.name.as_str()))
                .collect(),
            ListKind::Reason => self
                .reasons
                .iter()
                .map(|r| (r.code.as_str(), r.name.as_str()))
                .collect(),
            ListKind::SalesDirection => entries(&self.sales_directions),
            ListKind::Industry => entries(&self.industries),
            ListKind::BusinessRegion => entries(&self.business_regions),
        }
    }

    /// Active admins: the last one can be neither dismissed nor demoted.
    pub fn active_admins(&self) -> usize {
        self.users
            .iter()
            .filter(|u| u.active && u.role == Role::Admin)
            .count()
    }
}

fn entries(list: &[Entry]) -> Vec<(&str, &str)> {
    list.iter()
        .map(|e| (e.code.as_str(), e.name.as_str()))
        .collect()
}
