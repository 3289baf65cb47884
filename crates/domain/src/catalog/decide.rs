//! The catalog's rules as `decide`, and `evolve`. A command is decided on the state of its own
//! stream (`state`: users, org, funnels, lists or settings) for what must be unique there, and
//! on the whole catalog as it stands (`ctx.catalog`) for references to other kinds (a user's
//! department, a department's supervisor).

use std::collections::HashSet;

use super::commands::*;
use super::events::*;
use super::rejection::CatalogRejection;
use super::value::*;
use crate::context::Context;
use crate::ids::{ChannelCode, DepartmentId, FunnelId, Login, OfficeId, ReasonCode, UserId};
use crate::stage::Stage;
use crate::values::{Name, Short};

type Decision = Result<Vec<CatalogEvent>, CatalogRejection>;

pub(super) fn decide(state: Option<&Catalog>, command: &CatalogCommand, ctx: &Context) -> Decision {
    if ctx.actor.role != Role::Admin {
        return Err(CatalogRejection::NotAdmin);
    }
    let empty = Catalog::empty();
    let own = state.unwrap_or(&empty);
    match command {
        CatalogCommand::CreateUser(c) => create_user(own, ctx.catalog, c),
        CatalogCommand::UpdateUser(c) => update_user(own, ctx.catalog, c),
        CatalogCommand::DismissUser { user } => dismiss_user(own, ctx.catalog, *user),
        CatalogCommand::RestoreUser { user } => restore_user(own, *user),
        CatalogCommand::CreateDepartment(c) => create_department(own, ctx.catalog, c),
        CatalogCommand::UpdateDepartment(c) => update_department(own, ctx.catalog, c),
        CatalogCommand::CreateOffice(c) => define_office(own, c, true),
        CatalogCommand::UpdateOffice(c) => define_office(own, c, false),
        CatalogCommand::CreateFunnel(c) => create_funnel(own, c),
        CatalogCommand::UpdateFunnel(c) => update_funnel(own, c),
        CatalogCommand::SetDefaultFunnel { funnel } => set_default_funnel(own, funnel),
        CatalogCommand::CreateSource(c) => create_source(own, c),
        CatalogCommand::UpdateSource(c) => update_source(own, c),
        CatalogCommand::CreateEntry(c) => define_entry(own, c, true),
        CatalogCommand::UpdateEntry(c) => define_entry(own, c, false),
        CatalogCommand::ChangeSettings(s) => change_settings(own, s),
    }
}

/// The longest SLA a stage takes: a year.
pub const MAX_SLA_HOURS: u32 = 24 * 366;

fn unknown(kind: &'static str, code: impl ToString) -> CatalogRejection {
    CatalogRejection::Unknown {
        kind,
        code: code.to_string(),
    }
}

fn exists(kind: &'static str, code: impl ToString) -> CatalogRejection {
    CatalogRejection::AlreadyExists {
        kind,
        code: code.to_string(),
    }
}

/// Emits `event` unless it records what already is (`unchanged`): an update to the same values
/// is accepted and appends nothing.
fn unless(unchanged: bool, event: impl Into<CatalogEvent>) -> Decision {
    Ok(if unchanged {
        vec![]
    } else {
        vec![event.into()]
    })
}

// --- users -------------------------------------------------------------------------------------

fn check_placement(
    catalog: &Catalog,
    department: &DepartmentId,
    office: Option<&OfficeId>,
) -> Result<(), CatalogRejection> {
    catalog
        .department(department)
        .ok_or_else(|| unknown("department", department))?;
    if let Some(office) = office {
        catalog
            .office(office)
            .ok_or_else(|| unknown("office", office))?;
    }
    Ok(())
}

fn record_of(u: &User) -> UserRecord {
    UserRecord {
        user_id: u.id,
        login: Login::parse(&u.name).expect("catalog logins are valid"),
        display_name: Name::parse("display name", &u.display_name)
            .expect("catalog display names are valid"),
        role: u.role,
        department: u.department.clone(),
        office: u.office.clone(),
        email: u.email.clone(),
        locale: u.locale,
    }
}

fn create_user(own: &Catalog, catalog: &Catalog, c: &CreateUser) -> Decision {
    let id = c.login.user_id();
    if own.user(id).is_some() {
        return Err(exists("user", &c.login));
    }
    check_placement(catalog, &c.department, c.office.as_ref())?;
    Ok(vec![UserCreated {
        user: UserRecord {
            user_id: id,
            login: c.login.clone(),
            display_name: c.display_name.clone(),
            role: c.role,
            department: c.department.clone(),
            office: c.office.clone(),
            email: c.email.clone(),
            locale: c.locale,
        },
    }
    .into()])
}

fn update_user(own: &Catalog, catalog: &Catalog, c: &UpdateUser) -> Decision {
    let user = own.user(c.user).ok_or_else(|| unknown("user", c.user))?;
    let before = record_of(user);
    let mut after = before.clone();
    if let Some(v) = &c.display_name {
        after.display_name = v.clone();
    }
    if let Some(v) = c.role {
        after.role = v;
    }
    if let Some(v) = &c.department {
        after.department = v.clone();
    }
    if let Some(v) = &c.office {
        after.office = v.clone();
    }
    if let Some(v) = &c.email {
        after.email = v.clone();
    }
    if let Some(v) = c.locale {
        after.locale = v;
    }
    if user.active
        && before.role == Role::Admin
        && after.role != Role::Admin
        && own.active_admins() <= 1
    {
        return Err(CatalogRejection::LastAdmin);
    }
    if !after.role.is_supervising() {
        check_heads_nothing(catalog, c.user)?;
    }
    check_placement(catalog, &after.department, after.office.as_ref())?;
    unless(after == before, UserUpdated { user: after })
}

/// Refuses to leave a department headed by someone who cannot head it.
fn check_heads_nothing(catalog: &Catalog, user: UserId) -> Result<(), CatalogRejection> {
    match catalog
        .departments
        .iter()
        .find(|d| d.supervisor == Some(user))
    {
        Some(d) => Err(CatalogRejection::HeadsDepartment {
            user,
            department: d.id.to_string(),
        }),
        None => Ok(()),
    }
}

fn dismiss_user(own: &Catalog, catalog: &Catalog, id: UserId) -> Decision {
    let user = own.user(id).ok_or_else(|| unknown("user", id))?;
    if !user.active {
        return Err(CatalogRejection::AlreadyDismissed { user: id });
    }
    if user.role == Role::Admin && own.active_admins() <= 1 {
        return Err(CatalogRejection::LastAdmin);
    }
    check_heads_nothing(catalog, id)?;
    Ok(vec![UserDismissed { user_id: id }.into()])
}

fn restore_user(own: &Catalog, id: UserId) -> Decision {
    let user = own.user(id).ok_or_else(|| unknown("user", id))?;
    if user.active {
        return Err(CatalogRejection::NotDismissed { user: id });
    }
    Ok(vec![UserRestored { user_id: id }.into()])
}

// --- departments and offices -------------------------------------------------------------------

fn check_head(catalog: &Catalog, head: Option<UserId>) -> Result<(), CatalogRejection> {
    if let Some(s) = head {
        match catalog.user(s) {
            None => return Err(unknown("user", s)),
            Some(u) if !u.active || !u.role.is_supervising() => {
                return Err(CatalogRejection::NotASupervisor { user: s })
            }
            Some(_) => {}
        }
    }
    Ok(())
}

fn create_department(own: &Catalog, catalog: &Catalog, c: &DefineDepartment) -> Decision {
    if own.department(&c.department).is_some() {
        return Err(exists("department", &c.department));
    }
    check_head(catalog, c.supervisor)?;
    Ok(vec![DepartmentDefined {
        department: c.department.clone(),
        name: c.name.clone(),
        supervisor: c.supervisor,
    }
    .into()])
}

fn update_department(own: &Catalog, catalog: &Catalog, c: &UpdateDepartment) -> Decision {
    let held = own
        .department(&c.department)
        .ok_or_else(|| unknown("department", &c.department))?;
    let supervisor = c.supervisor.unwrap_or(held.supervisor);
    if c.supervisor.is_some() {
        check_head(catalog, supervisor)?;
    }
    let name = match &c.name {
        Some(n) => n.clone(),
        None => Short::parse("department name", &held.name).expect("catalog names are valid"),
    };
    unless(
        held.name == name.as_str() && held.supervisor == supervisor,
        DepartmentDefined {
            department: c.department.clone(),
            name,
            supervisor,
        },
    )
}

fn define_office(own: &Catalog, c: &DefineOffice, create: bool) -> Decision {
    let held = own.office(&c.office);
    match (create, held) {
        (true, Some(_)) => return Err(exists("office", &c.office)),
        (false, None) => return Err(unknown("office", &c.office)),
        _ => {}
    }
    unless(
        held.is_some_and(|o| o.name == c.name.as_str()),
        OfficeDefined {
            office: c.office.clone(),
            name: c.name.clone(),
        },
    )
}

// --- funnels -----------------------------------------------------------------------------------

fn columns(stages: &[StageInput]) -> Result<Vec<FunnelStage>, CatalogRejection> {
    let bad = |reason: String| CatalogRejection::FunnelColumns { reason };
    let mut keys = HashSet::new();
    for s in stages {
        if !keys.insert(&s.key) {
            return Err(bad(format!("the key {} is used twice", s.key)));
        }
        let c = s.colour.as_bytes();
        if !(c.len() == 7 && c[0] == b'#' && c[1..].iter().all(u8::is_ascii_hexdigit)) {
            return Err(CatalogRejection::InvalidColour {
                colour: s.colour.clone(),
            });
        }
    }
    for s in stages {
        match s.sla_hours {
            Some(_) if s.stage.is_closed() => {
                return Err(bad(format!(
                    "{} is a closed stage: it takes no SLA",
                    s.stage
                )))
            }
            Some(h) if !(1..=MAX_SLA_HOURS).contains(&h) => {
                return Err(bad(format!(
                    "an SLA is 1 to {MAX_SLA_HOURS} hours; {} has {h}",
                    s.stage
                )))
            }
            _ => {}
        }
    }
    for stage in Stage::ALL {
        let n = stages.iter().filter(|s| s.stage == stage).count();
        if n != 1 {
            return Err(bad(format!(
                "every process stage needs exactly one column; {stage} has {n}"
            )));
        }
    }
    Ok(stages
        .iter()
        .map(|s| FunnelStage {
            key: s.key.clone(),
            name: s.name.as_str().to_owned(),
            colour: s.colour.to_ascii_lowercase(),
            stage: s.stage,
            sla_hours: s.sla_hours,
        })
        .collect())
}

fn create_funnel(own: &Catalog, c: &DefineFunnel) -> Decision {
    if own.funnel(&c.funnel).is_some() {
        return Err(exists("funnel", &c.funnel));
    }
    Ok(vec![FunnelDefined {
        funnel: c.funnel.clone(),
        name: c.name.clone(),
        stages: columns(&c.stages)?,
    }
    .into()])
}

fn update_funnel(own: &Catalog, c: &UpdateFunnel) -> Decision {
    let held = own
        .funnel(&c.funnel)
        .ok_or_else(|| unknown("funnel", &c.funnel))?;
    let name = match &c.name {
        Some(n) => n.clone(),
        None => Short::parse("funnel name", &held.name).expect("catalog names are valid"),
    };
    let stages = match &c.stages {
        Some(s) => columns(s)?,
        None => held.stages.clone(),
    };
    unless(
        name.as_str() == held.name && stages == held.stages,
        FunnelDefined {
            funnel: c.funnel.clone(),
            name,
            stages,
        },
    )
}

fn set_default_funnel(own: &Catalog, funnel: &FunnelId) -> Decision {
    own.funnel(funnel)
        .ok_or_else(|| unknown("funnel", funnel))?;
    unless(
        &own.default_funnel == funnel,
        DefaultFunnelSet {
            funnel: funnel.clone(),
        },
    )
}

// --- sources and lists -------------------------------------------------------------------------

fn create_source(own: &Catalog, c: &DefineSource) -> Decision {
    if own.source(&c.code).is_some() {
        return Err(exists("source", &c.code));
    }
    Ok(vec![SourceDefined {
        code: c.code.clone(),
        name: c.name.clone(),
        group: c.group.clone(),
        tags: c.tags.clone(),
        counted_in_statistics: c.counted_in_statistics,
    }
    .into()])
}

fn update_source(own: &Catalog, c: &UpdateSource) -> Decision {
    let held = own
        .source(&c.code)
        .ok_or_else(|| unknown("source", &c.code))?;
    let short = |s: &str| Short::parse("name", s).expect("catalog names are valid");
    let event = SourceDefined {
        code: c.code.clone(),
        name: c.name.clone().unwrap_or_else(|| short(&held.name)),
        group: c
            .group
            .clone()
            .unwrap_or_else(|| held.group.as_deref().map(short)),
        tags: c
            .tags
            .clone()
            .unwrap_or_else(|| held.tags.iter().map(|t| short(t)).collect()),
        counted_in_statistics: c
            .counted_in_statistics
            .unwrap_or(held.counted_in_statistics),
    };
    unless(*held == source_of(&event), event)
}

fn source_of(e: &SourceDefined) -> Source {
    Source {
        code: e.code.clone(),
        name: e.name.as_str().to_owned(),
        group: e.group.as_ref().map(|g| g.as_str().to_owned()),
        tags: e.tags.iter().map(|t| t.as_str().to_owned()).collect(),
        counted_in_statistics: e.counted_in_statistics,
    }
}

fn define_entry(own: &Catalog, c: &DefineEntry, create: bool) -> Decision {
    let held = own
        .list(c.list)
        .into_iter()
        .find(|(code, _)| *code == c.code.as_str())
        .map(|(_, name)| name);
    match (create, held) {
        (true, Some(_)) => return Err(exists(c.list.as_str(), &c.code)),
        (false, None) => return Err(unknown(c.list.as_str(), &c.code)),
        _ => {}
    }
    unless(
        held == Some(c.name.as_str()),
        ListEntryDefined {
            list: c.list,
            code: c.code.clone(),
            name: c.name.clone(),
        },
    )
}

// --- settings ----------------------------------------------------------------------------------

fn change_settings(own: &Catalog, patch: &SettingsPatch) -> Decision {
    let bad = |reason: &str| CatalogRejection::InvalidSettings {
        reason: reason.to_owned(),
    };
    let mut s = own.settings.clone();
    if let Some(v) = patch.who_may_convert {
        s.who_may_convert = v;
    }
    if let Some(v) = patch.who_may_export {
        s.who_may_export = v;
    }
    if let Some(v) = patch.pin_inquiries_to_taker {
        s.pin_inquiries_to_taker = v;
    }
    if let Some(v) = patch.non_target_call_seconds {
        if v > 3600 {
            return Err(bad("the non-target call threshold is at most 3600 s"));
        }
        s.non_target_call_seconds = v;
    }
    if let Some(v) = patch.retention_months {
        if v > MAX_RETENTION_MONTHS {
            return Err(bad(&format!(
                "retention is at most {MAX_RETENTION_MONTHS} months (0 turns it off)"
            )));
        }
        s.retention_months = v;
    }
    if let Some(rules) = &patch.automation {
        let mut keys = HashSet::new();
        for rule in rules {
            if !AUTOMATION_TRIGGERS.contains(&rule.key.as_str()) {
                return Err(bad(&format!(
                    "no automation trigger is named {}; the triggers are {}",
                    rule.key,
                    AUTOMATION_TRIGGERS.join(", ")
                )));
            }
            if !keys.insert(&rule.key) {
                return Err(bad(&format!("automation rule {} is given twice", rule.key)));
            }
            if rule.text_ru.trim().is_empty() || rule.text_en.trim().is_empty() {
                return Err(bad(&format!(
                    "automation rule {} needs its ru and en texts",
                    rule.key
                )));
            }
            if rule.delay_minutes > 60 * 24 * 365 {
                return Err(bad(&format!(
                    "automation rule {} waits over a year",
                    rule.key
                )));
            }
        }
        if keys.len() != AUTOMATION_TRIGGERS.len() {
            return Err(bad(
                "every automation trigger needs its rule (disable one with enabled: false)",
            ));
        }
        s.automation = rules.clone();
    }
    unless(own.settings == s, SettingsChanged { settings: s })
}

// --- evolve ------------------------------------------------------------------------------------

fn upsert<T>(list: &mut Vec<T>, item: T, same: impl Fn(&T) -> bool) {
    match list.iter_mut().find(|x| same(x)) {
        Some(x) => *x = item,
        None => list.push(item),
    }
}

/// The catalog after `event`.
pub fn evolve(state: Option<Catalog>, event: &CatalogEvent) -> Option<Catalog> {
    let mut c = state.unwrap_or_else(Catalog::empty);
    match event {
        CatalogEvent::UserCreated(UserCreated { user: r })
        | CatalogEvent::UserUpdated(UserUpdated { user: r }) => {
            let active = c.user(r.user_id).is_none_or(|u| u.active);
            let user = User {
                id: r.user_id,
                name: r.login.as_str().to_owned(),
                display_name: r.display_name.as_str().to_owned(),
                role: r.role,
                department: r.department.clone(),
                office: r.office.clone(),
                email: r.email.clone(),
                locale: r.locale,
                active,
            };
            upsert(&mut c.users, user, |u| u.id == r.user_id);
        }
        CatalogEvent::UserDismissed(e) => {
            if let Some(u) = c.users.iter_mut().find(|u| u.id == e.user_id) {
                u.active = false;
            }
        }
        CatalogEvent::UserRestored(e) => {
            if let Some(u) = c.users.iter_mut().find(|u| u.id == e.user_id) {
                u.active = true;
            }
        }
        CatalogEvent::DepartmentDefined(e) => {
            let d = Department {
                id: e.department.clone(),
                name: e.name.as_str().to_owned(),
                supervisor: e.supervisor,
            };
            upsert(&mut c.departments, d, |d| d.id == e.department);
        }
        CatalogEvent::OfficeDefined(e) => {
            let o = Office {
                id: e.office.clone(),
                name: e.name.as_str().to_owned(),
            };
            upsert(&mut c.offices, o, |o| o.id == e.office);
        }
        CatalogEvent::FunnelDefined(e) => {
            let f = Funnel {
                id: e.funnel.clone(),
                name: e.name.as_str().to_owned(),
                stages: e.stages.clone(),
            };
            upsert(&mut c.funnels, f, |f| f.id == e.funnel);
        }
        CatalogEvent::DefaultFunnelSet(e) => c.default_funnel = e.funnel.clone(),
        CatalogEvent::SourceDefined(e) => {
            upsert(&mut c.sources, source_of(e), |s| s.code == e.code);
        }
        CatalogEvent::ListEntryDefined(e) => {
            let name = e.name.as_str().to_owned();
            let code = e.code.as_str();
            match e.list {
                ListKind::Reason => {
                    if let Ok(code) = ReasonCode::parse(code) {
                        let r = Reason {
                            code: code.clone(),
                            name,
                        };
                        upsert(&mut c.reasons, r, |r| r.code == code);
                    }
                }
                ListKind::Channel => {
                    if let Ok(code) = ChannelCode::parse(code) {
                        let ch = Channel {
                            code: code.clone(),
                            name,
                        };
                        upsert(&mut c.channels, ch, |ch| ch.code == code);
                    }
                }
                kind => {
                    let list = match kind {
                        ListKind::SalesDirection => &mut c.sales_directions,
                        ListKind::Industry => &mut c.industries,
                        _ => &mut c.business_regions,
                    };
                    let entry = Entry {
                        code: e.code.clone(),
                        name,
                    };
                    upsert(list, entry, |x| x.code == e.code);
                }
            }
        }
        CatalogEvent::SettingsChanged(e) => c.settings = e.settings.clone(),
    }
    Some(c)
}
