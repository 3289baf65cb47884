//! The catalog area: who is asking, the users, departments, offices, funnels, sources, the
//! plain lists and the settings (queries, for every signed-in user), and the admin-only
//! mutations that change them, each an event with its actor. Values are parsed here; the rules
//! are the domain's (`FORBIDDEN` for anyone but an admin).

use async_graphql::{Context, Enum, InputObject, MaybeUndefined, Object, Result, SimpleObject, ID};

use leadflow_domain::catalog::{self as cat, CatalogCommand};
use leadflow_domain::ids::{EntryCode, Login, OfficeId};
use leadflow_domain::values::{Email, Name, Short};
use leadflow_domain::{Catalog, DepartmentId, FunnelId, SourceCode, StageKey, UserId};
use leadflow_engine::{CommandMeta, OutcomeKind};

use crate::error::ApiError;
use crate::types::{user, LogPosition, Role, Stage, User};
use crate::{actor, catalog_of, AppState};

#[derive(SimpleObject, Clone, Debug)]
#[graphql(name = "FunnelStage")]
pub struct FunnelStageGql {
    pub key: String,
    pub name: String,
    pub colour: String,
    pub stage: Stage,
    /// Hours a lead may stay in the stage before the SLA report counts a breach; null: none.
    pub sla_hours: Option<u32>,
}

#[derive(SimpleObject, Clone, Debug)]
pub struct Funnel {
    pub id: String,
    pub name: String,
    /// The columns in display order, one per process stage.
    pub stages: Vec<FunnelStageGql>,
    /// The funnel the registry shows when none is named.
    pub is_default: bool,
}

#[derive(SimpleObject, Clone, Debug)]
pub struct Department {
    pub id: String,
    pub name: String,
    pub supervisor: Option<User>,
}

#[derive(SimpleObject, Clone, Debug)]
pub struct Office {
    pub id: String,
    pub name: String,
}

#[derive(SimpleObject, Clone, Debug)]
pub struct Source {
    pub code: String,
    pub name: String,
    pub group: Option<String>,
    pub tags: Vec<String>,
    /// Leads from a source not counted in statistics are NonAdvertising.
    pub counted_in_statistics: bool,
}

/// An entry of a plain list (channels, reasons, sales directions, industries, regions).
#[derive(SimpleObject, Clone, Debug)]
pub struct CatalogEntry {
    pub code: String,
    pub name: String,
}

#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
#[graphql(remote = "leadflow_domain::catalog::ListKind")]
pub enum CatalogList {
    Channel,
    Reason,
    SalesDirection,
    Industry,
    BusinessRegion,
}

#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
#[graphql(remote = "leadflow_domain::catalog::Locale")]
pub enum Locale {
    Ru,
    En,
}

/// Who may convert a lead (SPEC 3.7).
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
#[graphql(remote = "leadflow_domain::catalog::ConvertPolicy")]
pub enum ConvertPolicy {
    /// The creator, a supervisor of the creator's department, an admin (the default).
    CreatorAndSupervisor,
    /// Besides those, the lead's responsible.
    CreatorResponsibleAndSupervisor,
    SupervisorsOnly,
    AdminsOnly,
}

#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
#[graphql(remote = "leadflow_domain::catalog::ExportPolicy")]
pub enum ExportPolicy {
    Everyone,
    AdminsOnly,
}

/// An automation rule of SPEC 3.6: its trigger is fixed by its key.
#[derive(SimpleObject, InputObject, Clone, Debug)]
#[graphql(input_name = "AutomationRuleInput")]
pub struct AutomationRule {
    pub key: String,
    pub enabled: bool,
    pub delay_minutes: u32,
    pub text_ru: String,
    pub text_en: String,
}

#[derive(SimpleObject, Clone, Debug)]
pub struct Settings {
    pub who_may_convert: ConvertPolicy,
    pub who_may_export: ExportPolicy,
    pub pin_inquiries_to_taker: bool,
    /// Calls shorter than this are non-target.
    pub non_target_call_seconds: u32,
    /// The currency handoff budgets are entered in.
    pub base_currency: String,
    pub automation: Vec<AutomationRule>,
    /// Personal-data retention: a data subject all of whose leads are closed and untouched
    /// for this many months is erased by `leadflow privacy sweep` (reason RETENTION).
    /// 0: off (the default).
    pub retention_months: u32,
}

fn funnel_of(catalog: &Catalog, f: &cat::Funnel) -> Funnel {
    Funnel {
        id: f.id.to_string(),
        name: f.name.clone(),
        stages: f
            .stages
            .iter()
            .map(|s| FunnelStageGql {
                key: s.key.to_string(),
                name: s.name.clone(),
                colour: s.colour.clone(),
                stage: s.stage.into(),
                sla_hours: s.sla_hours,
            })
            .collect(),
        is_default: catalog.default_funnel == f.id,
    }
}

/// The catalog area's queries.
#[derive(Default)]
pub struct CatalogQuery;

#[Object]
impl CatalogQuery {
    /// The user the bearer token names.
    async fn me(&self, ctx: &Context<'_>) -> Result<User> {
        let a = actor(ctx)?;
        Ok(user(&catalog_of(ctx), a.user))
    }

    async fn funnels(&self, ctx: &Context<'_>) -> Result<Vec<Funnel>> {
        actor(ctx)?;
        let catalog = catalog_of(ctx);
        Ok(catalog
            .funnels
            .iter()
            .map(|f| funnel_of(&catalog, f))
            .collect())
    }

    /// The staff; dismissed users only when asked.
    async fn users(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = false)] include_dismissed: bool,
    ) -> Result<Vec<User>> {
        actor(ctx)?;
        let catalog = catalog_of(ctx);
        Ok(catalog
            .users
            .iter()
            .filter(|u| include_dismissed || u.active)
            .map(|u| user(&catalog, u.id))
            .collect())
    }

    async fn departments(&self, ctx: &Context<'_>) -> Result<Vec<Department>> {
        actor(ctx)?;
        let catalog = catalog_of(ctx);
        Ok(catalog
            .departments
            .iter()
            .map(|d| Department {
                id: d.id.to_string(),
                name: d.name.clone(),
                supervisor: d.supervisor.map(|s| user(&catalog, s)),
            })
            .collect())
    }

    async fn offices(&self, ctx: &Context<'_>) -> Result<Vec<Office>> {
        actor(ctx)?;
        Ok(catalog_of(ctx)
            .offices
            .iter()
            .map(|o| Office {
                id: o.id.to_string(),
                name: o.name.clone(),
            })
            .collect())
    }

    async fn sources(&self, ctx: &Context<'_>) -> Result<Vec<Source>> {
        actor(ctx)?;
        Ok(catalog_of(ctx)
            .sources
            .iter()
            .map(|s| Source {
                code: s.code.to_string(),
                name: s.name.clone(),
                group: s.group.clone(),
                tags: s.tags.clone(),
                counted_in_statistics: s.counted_in_statistics,
            })
            .collect())
    }

    /// The entries of a plain list.
    async fn catalog_list(
        &self,
        ctx: &Context<'_>,
        list: CatalogList,
    ) -> Result<Vec<CatalogEntry>> {
        actor(ctx)?;
        Ok(catalog_of(ctx)
            .list(list.into())
            .into_iter()
            .map(|(code, name)| CatalogEntry {
                code: code.to_owned(),
                name: name.to_owned(),
            })
            .collect())
    }

    async fn settings(&self, ctx: &Context<'_>) -> Result<Settings> {
        actor(ctx)?;
        let s = catalog_of(ctx).settings.clone();
        Ok(Settings {
            who_may_convert: s.who_may_convert.into(),
            who_may_export: s.who_may_export.into(),
            pin_inquiries_to_taker: s.pin_inquiries_to_taker,
            non_target_call_seconds: s.non_target_call_seconds,
            retention_months: s.retention_months,
            base_currency: s.base_currency.as_str().to_owned(),
            automation: s
                .automation
                .into_iter()
                .map(|r| AutomationRule {
                    key: r.key.to_string(),
                    enabled: r.enabled,
                    delay_minutes: r.delay_minutes,
                    text_ru: r.text_ru,
                    text_en: r.text_en,
                })
                .collect(),
        })
    }
}

/// What a catalog mutation did.
#[derive(SimpleObject)]
pub struct CatalogPayload {
    /// Where the change sits in the log; null when it changed nothing.
    pub position: Option<LogPosition>,
    /// False when the command was accepted but the catalog already was so.
    pub changed: bool,
    /// True when this was a retry of an already recorded command (same idempotency key).
    pub replayed: bool,
}

#[derive(InputObject)]
pub struct CreateUserInput {
    /// The login: a-z, 0-9, '.', '_' and '-', starting with a letter.
    pub name: String,
    pub display_name: String,
    pub role: Role,
    pub department: String,
    pub office: Option<String>,
    pub email: Option<String>,
    #[graphql(default_with = "Locale::Ru")]
    pub locale: Locale,
}

/// The fields to change; an absent field stays, `null` clears an optional one.
#[derive(InputObject, Default)]
pub struct UpdateUserInput {
    pub display_name: Option<String>,
    pub role: Option<Role>,
    pub department: Option<String>,
    pub office: MaybeUndefined<String>,
    pub email: MaybeUndefined<String>,
    pub locale: Option<Locale>,
}

#[derive(InputObject)]
pub struct DepartmentInput {
    pub id: String,
    pub name: String,
    /// The department's head: an active supervisor or admin (login or id).
    pub supervisor: Option<String>,
}

/// The fields to change; an absent field stays, `supervisor: null` removes the head.
#[derive(InputObject)]
pub struct UpdateDepartmentInput {
    pub name: Option<String>,
    pub supervisor: MaybeUndefined<String>,
}

#[derive(InputObject)]
pub struct OfficeInput {
    pub id: String,
    pub name: String,
}

#[derive(InputObject)]
pub struct FunnelStageInput {
    pub key: String,
    pub name: String,
    /// `#rrggbb`.
    pub colour: String,
    /// The process stage the column maps onto.
    pub stage: Stage,
    /// Hours a lead may stay in this working stage before the SLA report counts a breach
    /// (1 to 8784); none on closed stages.
    pub sla_hours: Option<u32>,
}

#[derive(InputObject)]
pub struct FunnelInput {
    pub id: String,
    pub name: String,
    /// The columns in display order: exactly one per process stage.
    pub stages: Vec<FunnelStageInput>,
}

#[derive(InputObject)]
pub struct SourceInput {
    pub code: String,
    pub name: String,
    pub group: Option<String>,
    #[graphql(default)]
    pub tags: Vec<String>,
    #[graphql(default = true)]
    pub counted_in_statistics: bool,
}

/// The fields to change; an absent field stays, `group: null` removes the group.
#[derive(InputObject)]
pub struct UpdateSourceInput {
    pub name: Option<String>,
    pub group: MaybeUndefined<String>,
    pub tags: Option<Vec<String>>,
    pub counted_in_statistics: Option<bool>,
}

/// The settings to change; absent fields stay (merged with the settings as they stand when
/// the change is decided). The base currency is fixed at installation.
#[derive(InputObject, Default)]
pub struct SettingsInput {
    pub who_may_convert: Option<ConvertPolicy>,
    pub who_may_export: Option<ExportPolicy>,
    pub pin_inquiries_to_taker: Option<bool>,
    pub non_target_call_seconds: Option<u32>,
    /// The whole list of rules, one per trigger (switch one off with `enabled: false`).
    pub automation: Option<Vec<AutomationRule>>,
    /// Months after which a closed person's data is erased (at most 1200); 0 turns it off.
    pub retention_months: Option<u32>,
}

/// An optional field of an update: absent keeps it, `null` clears it.
fn maybe<T>(
    m: &MaybeUndefined<String>,
    parse: fn(&str) -> Result<T, ApiError>,
) -> Result<Option<Option<T>>, ApiError> {
    match m {
        MaybeUndefined::Undefined => Ok(None),
        MaybeUndefined::Null => Ok(Some(None)),
        MaybeUndefined::Value(v) => parse(v).map(|v| Some(Some(v))),
    }
}

fn bad(e: leadflow_domain::ValueError) -> ApiError {
    ApiError::from(e)
}

fn short(field: &'static str, raw: &str) -> Result<Short, ApiError> {
    Short::parse(field, raw).map_err(bad)
}

/// A user named by login or id (an unknown login is left for the rules to refuse).
fn user_ref(catalog: &Catalog, raw: &str) -> Result<UserId, ApiError> {
    if let Some(u) = catalog.users.iter().find(|u| u.name == raw) {
        return Ok(u.id);
    }
    if let Ok(id) = UserId::parse(raw) {
        return Ok(id);
    }
    Login::parse(raw).map(|l| l.user_id()).map_err(bad)
}

fn department(raw: &str) -> Result<DepartmentId, ApiError> {
    DepartmentId::parse(raw).map_err(bad)
}

fn office(raw: &str) -> Result<OfficeId, ApiError> {
    OfficeId::parse(raw).map_err(bad)
}

fn email(raw: &str) -> Result<Email, ApiError> {
    Email::parse(raw).map_err(bad)
}

fn stages(input: Vec<FunnelStageInput>) -> Result<Vec<cat::StageInput>, ApiError> {
    input
        .into_iter()
        .map(|s| {
            Ok(cat::StageInput {
                key: StageKey::parse(&s.key).map_err(bad)?,
                name: short("stage name", &s.name)?,
                colour: s.colour,
                stage: s.stage.into(),
                sla_hours: s.sla_hours,
            })
        })
        .collect()
}

fn source(input: SourceInput) -> Result<cat::DefineSource, ApiError> {
    Ok(cat::DefineSource {
        code: SourceCode::parse(&input.code).map_err(bad)?,
        name: short("source name", &input.name)?,
        group: input
            .group
            .as_deref()
            .map(|g| short("source group", g))
            .transpose()?,
        tags: input
            .tags
            .iter()
            .map(|t| short("tag", t))
            .collect::<Result<_, _>>()?,
        counted_in_statistics: input.counted_in_statistics,
    })
}

fn entry(list: CatalogList, code: &str, name: &str) -> Result<CatalogCommand, ApiError> {
    Ok(CatalogCommand::CreateEntry(cat::DefineEntry {
        list: list.into(),
        code: EntryCode::parse(code).map_err(bad)?,
        name: short("name", name)?,
    }))
}

/// Runs a catalog command as the request's actor.
async fn execute(
    ctx: &Context<'_>,
    command: impl FnOnce(&Catalog) -> Result<CatalogCommand, ApiError>,
    key: Option<String>,
) -> Result<CatalogPayload> {
    let actor = actor(ctx)?;
    // Only admins: refused before the input is judged, so others learn nothing from it.
    if actor.role != leadflow_domain::Role::Admin {
        return Err(ApiError::from(leadflow_domain::CatalogRejection::NotAdmin).into());
    }
    if key.as_ref().is_some_and(|k| k.is_empty() || k.len() > 200) {
        return Err(ApiError::BadUserInput("idempotencyKey must be 1-200 bytes".into()).into());
    }
    let state = ctx.data_unchecked::<AppState>();
    let command = command(&state.catalog())?;
    let meta = CommandMeta {
        idempotency_key: key,
        ..CommandMeta::by(actor)
    };
    let out = state
        .engine
        .execute_catalog(command, meta)
        .await
        .map_err(ApiError::from)?;
    Ok(CatalogPayload {
        position: out.position.map(LogPosition),
        changed: out.kind == OutcomeKind::Appended,
        replayed: out.kind == OutcomeKind::Replayed,
    })
}

/// The catalog area's mutations: admins only.
#[derive(Default)]
pub struct CatalogMutation;

#[Object]
impl CatalogMutation {
    async fn create_user(
        &self,
        ctx: &Context<'_>,
        input: CreateUserInput,
        idempotency_key: Option<String>,
    ) -> Result<CatalogPayload> {
        execute(
            ctx,
            |_| {
                Ok(CatalogCommand::CreateUser(cat::CreateUser {
                    login: Login::parse(&input.name).map_err(bad)?,
                    display_name: Name::parse("display name", &input.display_name).map_err(bad)?,
                    role: input.role.into(),
                    department: department(&input.department)?,
                    office: input.office.as_deref().map(office).transpose()?,
                    email: input.email.as_deref().map(email).transpose()?,
                    locale: input.locale.into(),
                }))
            },
            idempotency_key,
        )
        .await
    }

    /// Changes a user's role, department, office, display name, e-mail or locale.
    async fn update_user(
        &self,
        ctx: &Context<'_>,
        user: ID,
        input: UpdateUserInput,
        idempotency_key: Option<String>,
    ) -> Result<CatalogPayload> {
        execute(
            ctx,
            |catalog| {
                Ok(CatalogCommand::UpdateUser(cat::UpdateUser {
                    user: user_ref(catalog, &user)?,
                    display_name: input
                        .display_name
                        .as_deref()
                        .map(|n| Name::parse("display name", n).map_err(bad))
                        .transpose()?,
                    role: input.role.map(Into::into),
                    department: input.department.as_deref().map(department).transpose()?,
                    office: maybe(&input.office, office)?,
                    email: maybe(&input.email, email)?,
                    locale: input.locale.map(Into::into),
                }))
            },
            idempotency_key,
        )
        .await
    }

    /// Dismisses a user: their tokens are refused from then on and they take no new leads;
    /// history keeps naming them.
    async fn dismiss_user(
        &self,
        ctx: &Context<'_>,
        user: ID,
        idempotency_key: Option<String>,
    ) -> Result<CatalogPayload> {
        execute(
            ctx,
            |catalog| {
                Ok(CatalogCommand::DismissUser {
                    user: user_ref(catalog, &user)?,
                })
            },
            idempotency_key,
        )
        .await
    }

    async fn restore_user(
        &self,
        ctx: &Context<'_>,
        user: ID,
        idempotency_key: Option<String>,
    ) -> Result<CatalogPayload> {
        execute(
            ctx,
            |catalog| {
                Ok(CatalogCommand::RestoreUser {
                    user: user_ref(catalog, &user)?,
                })
            },
            idempotency_key,
        )
        .await
    }

    async fn create_department(
        &self,
        ctx: &Context<'_>,
        input: DepartmentInput,
        idempotency_key: Option<String>,
    ) -> Result<CatalogPayload> {
        execute(
            ctx,
            |c| create_department(c, input).map(CatalogCommand::CreateDepartment),
            idempotency_key,
        )
        .await
    }

    /// Renames a department or changes its supervisor.
    async fn update_department(
        &self,
        ctx: &Context<'_>,
        department: ID,
        input: UpdateDepartmentInput,
        idempotency_key: Option<String>,
    ) -> Result<CatalogPayload> {
        execute(
            ctx,
            |catalog| {
                Ok(CatalogCommand::UpdateDepartment(cat::UpdateDepartment {
                    department: self::department(&department)?,
                    name: input
                        .name
                        .as_deref()
                        .map(|n| short("department name", n))
                        .transpose()?,
                    supervisor: match &input.supervisor {
                        MaybeUndefined::Undefined => None,
                        MaybeUndefined::Null => Some(None),
                        MaybeUndefined::Value(v) => Some(Some(user_ref(catalog, v)?)),
                    },
                }))
            },
            idempotency_key,
        )
        .await
    }

    async fn create_office(
        &self,
        ctx: &Context<'_>,
        input: OfficeInput,
        idempotency_key: Option<String>,
    ) -> Result<CatalogPayload> {
        execute(
            ctx,
            |_| define_office(input).map(CatalogCommand::CreateOffice),
            idempotency_key,
        )
        .await
    }

    async fn update_office(
        &self,
        ctx: &Context<'_>,
        input: OfficeInput,
        idempotency_key: Option<String>,
    ) -> Result<CatalogPayload> {
        execute(
            ctx,
            |_| define_office(input).map(CatalogCommand::UpdateOffice),
            idempotency_key,
        )
        .await
    }

    async fn create_funnel(
        &self,
        ctx: &Context<'_>,
        input: FunnelInput,
        idempotency_key: Option<String>,
    ) -> Result<CatalogPayload> {
        execute(
            ctx,
            |_| {
                Ok(CatalogCommand::CreateFunnel(cat::DefineFunnel {
                    funnel: FunnelId::parse(&input.id).map_err(bad)?,
                    name: short("funnel name", &input.name)?,
                    stages: stages(input.stages)?,
                }))
            },
            idempotency_key,
        )
        .await
    }

    /// Renames a funnel or gives it new columns. Leads keep their process stage; history is
    /// not rewritten.
    async fn update_funnel(
        &self,
        ctx: &Context<'_>,
        funnel: ID,
        name: Option<String>,
        stages: Option<Vec<FunnelStageInput>>,
        idempotency_key: Option<String>,
    ) -> Result<CatalogPayload> {
        execute(
            ctx,
            |_| {
                Ok(CatalogCommand::UpdateFunnel(cat::UpdateFunnel {
                    funnel: FunnelId::parse(&funnel).map_err(bad)?,
                    name: name
                        .as_deref()
                        .map(|n| short("funnel name", n))
                        .transpose()?,
                    stages: stages.map(self::stages).transpose()?,
                }))
            },
            idempotency_key,
        )
        .await
    }

    async fn set_default_funnel(
        &self,
        ctx: &Context<'_>,
        funnel: ID,
        idempotency_key: Option<String>,
    ) -> Result<CatalogPayload> {
        execute(
            ctx,
            |_| {
                Ok(CatalogCommand::SetDefaultFunnel {
                    funnel: FunnelId::parse(&funnel).map_err(bad)?,
                })
            },
            idempotency_key,
        )
        .await
    }

    async fn create_source(
        &self,
        ctx: &Context<'_>,
        input: SourceInput,
        idempotency_key: Option<String>,
    ) -> Result<CatalogPayload> {
        execute(
            ctx,
            |_| source(input).map(CatalogCommand::CreateSource),
            idempotency_key,
        )
        .await
    }

    async fn update_source(
        &self,
        ctx: &Context<'_>,
        code: ID,
        input: UpdateSourceInput,
        idempotency_key: Option<String>,
    ) -> Result<CatalogPayload> {
        execute(
            ctx,
            |_| {
                Ok(CatalogCommand::UpdateSource(cat::UpdateSource {
                    code: SourceCode::parse(&code).map_err(bad)?,
                    name: input
                        .name
                        .as_deref()
                        .map(|n| short("source name", n))
                        .transpose()?,
                    group: maybe(&input.group, |g| short("source group", g))?,
                    tags: input
                        .tags
                        .as_ref()
                        .map(|tags| tags.iter().map(|t| short("tag", t)).collect())
                        .transpose()?,
                    counted_in_statistics: input.counted_in_statistics,
                }))
            },
            idempotency_key,
        )
        .await
    }

    async fn create_channel(
        &self,
        ctx: &Context<'_>,
        code: String,
        name: String,
        idempotency_key: Option<String>,
    ) -> Result<CatalogPayload> {
        execute(
            ctx,
            |_| entry(CatalogList::Channel, &code, &name),
            idempotency_key,
        )
        .await
    }

    /// Adds a disqualification reason.
    async fn create_reason(
        &self,
        ctx: &Context<'_>,
        code: String,
        name: String,
        idempotency_key: Option<String>,
    ) -> Result<CatalogPayload> {
        execute(
            ctx,
            |_| entry(CatalogList::Reason, &code, &name),
            idempotency_key,
        )
        .await
    }

    async fn create_sales_direction(
        &self,
        ctx: &Context<'_>,
        code: String,
        name: String,
        idempotency_key: Option<String>,
    ) -> Result<CatalogPayload> {
        execute(
            ctx,
            |_| entry(CatalogList::SalesDirection, &code, &name),
            idempotency_key,
        )
        .await
    }

    async fn create_industry(
        &self,
        ctx: &Context<'_>,
        code: String,
        name: String,
        idempotency_key: Option<String>,
    ) -> Result<CatalogPayload> {
        execute(
            ctx,
            |_| entry(CatalogList::Industry, &code, &name),
            idempotency_key,
        )
        .await
    }

    async fn create_business_region(
        &self,
        ctx: &Context<'_>,
        code: String,
        name: String,
        idempotency_key: Option<String>,
    ) -> Result<CatalogPayload> {
        execute(
            ctx,
            |_| entry(CatalogList::BusinessRegion, &code, &name),
            idempotency_key,
        )
        .await
    }

    /// Renames an entry of a plain list.
    async fn rename_catalog_entry(
        &self,
        ctx: &Context<'_>,
        list: CatalogList,
        code: String,
        name: String,
        idempotency_key: Option<String>,
    ) -> Result<CatalogPayload> {
        execute(
            ctx,
            |_| {
                Ok(CatalogCommand::UpdateEntry(cat::DefineEntry {
                    list: list.into(),
                    code: EntryCode::parse(&code).map_err(bad)?,
                    name: short("name", &name)?,
                }))
            },
            idempotency_key,
        )
        .await
    }

    /// Changes the settings given; the rest stay.
    async fn change_settings(
        &self,
        ctx: &Context<'_>,
        input: SettingsInput,
        idempotency_key: Option<String>,
    ) -> Result<CatalogPayload> {
        execute(
            ctx,
            |_| {
                let automation = input
                    .automation
                    .map(|rules| {
                        rules
                            .into_iter()
                            .map(|r| {
                                Ok(cat::AutomationRule {
                                    key: EntryCode::parse(&r.key).map_err(bad)?,
                                    enabled: r.enabled,
                                    delay_minutes: r.delay_minutes,
                                    text_ru: r.text_ru,
                                    text_en: r.text_en,
                                })
                            })
                            .collect::<Result<_, ApiError>>()
                    })
                    .transpose()?;
                Ok(CatalogCommand::ChangeSettings(cat::SettingsPatch {
                    who_may_convert: input.who_may_convert.map(Into::into),
                    who_may_export: input.who_may_export.map(Into::into),
                    pin_inquiries_to_taker: input.pin_inquiries_to_taker,
                    non_target_call_seconds: input.non_target_call_seconds,
                    automation,
                    retention_months: input.retention_months,
                }))
            },
            idempotency_key,
        )
        .await
    }
}

fn create_department(
    catalog: &Catalog,
    input: DepartmentInput,
) -> Result<cat::DefineDepartment, ApiError> {
    Ok(cat::DefineDepartment {
        department: department(&input.id)?,
        name: short("department name", &input.name)?,
        supervisor: input
            .supervisor
            .as_deref()
            .map(|s| user_ref(catalog, s))
            .transpose()?,
    })
}

fn define_office(input: OfficeInput) -> Result<cat::DefineOffice, ApiError> {
    Ok(cat::DefineOffice {
        office: office(&input.id)?,
        name: short("office name", &input.name)?,
    })
}
