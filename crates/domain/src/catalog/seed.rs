//! The catalog a new installation starts with, as the commands an admin would type: two
//! funnels, two departments with a supervisor and managers each, an admin, a dismissed
//! manager, the 12 default disqualification reasons (seed 003 recommends 10-12), the usual
//! sources and channels, and the automation rules of SPEC 3.6. The engine runs them on every
//! start with the keys [`seed_key`], so a second start adds nothing.

use super::commands::*;
use super::decide::evolve;
use super::events::CatalogEvent;
use super::value::*;
use crate::context::{Actor, Context};
use crate::ids::{
    DepartmentId, EntryCode, FunnelId, Login, OfficeId, SourceCode, StageKey, UserId,
};
use crate::values::{Name, Short};

/// The login of the admin the seed creates and acts as.
pub const ADMIN: &str = "admin";

/// The actor of the seed's events: the seed's admin.
pub fn actor() -> Actor {
    Actor {
        user: UserId::named(ADMIN),
        role: Role::Admin,
    }
}

/// The idempotency key of a seed command, from what it does (never from its place in the
/// list), so a later release may add seed commands without disturbing what a store holds.
pub fn seed_key(command: &CatalogCommand) -> String {
    let what = match command {
        CatalogCommand::CreateUser(c) => c.login.to_string(),
        CatalogCommand::UpdateUser(c) => c.user.to_string(),
        CatalogCommand::DismissUser { user } | CatalogCommand::RestoreUser { user } => {
            user.to_string()
        }
        CatalogCommand::CreateDepartment(c) => c.department.to_string(),
        CatalogCommand::UpdateDepartment(c) => c.department.to_string(),
        CatalogCommand::CreateOffice(c) | CatalogCommand::UpdateOffice(c) => c.office.to_string(),
        CatalogCommand::CreateFunnel(c) => c.funnel.to_string(),
        CatalogCommand::UpdateFunnel(c) => c.funnel.to_string(),
        CatalogCommand::SetDefaultFunnel { funnel } => funnel.to_string(),
        CatalogCommand::CreateSource(c) => c.code.to_string(),
        CatalogCommand::UpdateSource(c) => c.code.to_string(),
        CatalogCommand::CreateEntry(c) | CatalogCommand::UpdateEntry(c) => {
            format!("{:?}/{}", c.list, c.code)
        }
        CatalogCommand::ChangeSettings(_) => "settings".to_owned(),
    };
    format!("catalog-seed/{}/{what}", command.name())
}

fn short(s: &str) -> Short {
    Short::parse("name", s).expect("seed names are valid")
}

fn code(s: &str) -> EntryCode {
    EntryCode::parse(s).expect("seed codes are valid")
}

fn dep(s: &str) -> DepartmentId {
    DepartmentId::parse(s).expect("seed codes are valid")
}

fn funnel(id: &str, name: &str, columns: [(&str, &str, &str); 7]) -> CatalogCommand {
    CatalogCommand::CreateFunnel(DefineFunnel {
        funnel: FunnelId::parse(id).expect("valid"),
        name: short(name),
        stages: columns
            .into_iter()
            .zip(crate::stage::Stage::ALL)
            .map(|((key, name, colour), stage)| StageInput {
                key: StageKey::parse(key).expect("valid"),
                name: short(name),
                colour: colour.to_owned(),
                stage,
                sla_hours: default_sla_hours(stage),
            })
            .collect(),
    })
}

/// The seeded SLA per working stage: a day to qualify, four hours to find a manager, two days
/// to hand off, two weeks to sell.
fn default_sla_hours(stage: crate::stage::Stage) -> Option<u32> {
    use crate::stage::Stage::*;
    match stage {
        Qualification => Some(24),
        Distribution => Some(4),
        Handoff => Some(48),
        AwaitingSale => Some(14 * 24),
        _ => None,
    }
}

/// The automation rules of SPEC 3.6 (seed 003's texts in `ru`, ours in `en`).
pub fn automation_rules() -> Vec<AutomationRule> {
    let rule = |key: &str, delay_minutes: u32, ru: &str, en: &str| AutomationRule {
        key: code(key),
        enabled: true,
        delay_minutes,
        text_ru: ru.to_owned(),
        text_en: en.to_owned(),
    };
    vec![
        rule(
            "lead-registered",
            0,
            "Создан новый лид {id} {title}. Обработайте поступивший лид. Заполните необходимые данные и запланируйте дела. Передвиньте лид на следующий статус или сразу конвертируйте его в сделку.",
            "A new lead {id} {title} was created. Work the incoming lead: fill in the data and plan your activities. Move the lead to its next status or convert it into a deal right away.",
        ),
        rule(
            "lead-untouched",
            60,
            "У вас есть необработанный Лид {id} {title}. Не забывайте, что ваша задача - конвертировать лид. Для этого необходимо постоянно продвигать лид вперед по воронке, выполняя запланированные дела.",
            "You have an unworked lead {id} {title}. Remember that your task is to convert the lead: keep moving it forward through the funnel by doing the activities you planned.",
        ),
        rule(
            "lead-in-handoff",
            0,
            "Отлично! Вы активно работаете с лидом {id} {title}. Не забудьте запланировать исходящий звонок и заполнить опросный лист по заявке!",
            "Great! You are actively working on lead {id} {title}. Do not forget to plan an outgoing call and fill in the request's questionnaire!",
        ),
        rule(
            "handoff-no-contact",
            180,
            "Не забудьте связаться с лидом {id} {title} и обработать заявку клиента!",
            "Do not forget to get in touch with lead {id} {title} and work the client's request!",
        ),
        rule(
            "stage-idle-escalation",
            24 * 60,
            "Внимание! Лид {id} {title} уже день находится в статусе {stage}. Менеджеру было отправлено уведомление о необходимости работать с лидом, но действий от него не последовало. Ответственный по лиду {responsible}",
            "Attention! Lead {id} {title} has been in status {stage} for a day. Its manager was notified to work on it, but nothing followed. Responsible: {responsible}",
        ),
    ]
}

/// The seed, in the order it is decided (departments before the users placed in them, users
/// before the departments they head).
pub fn commands() -> Vec<CatalogCommand> {
    let mut out = Vec::new();
    for (id, name) in [("sales", "Sales"), ("partners", "Partner sales")] {
        out.push(CatalogCommand::CreateDepartment(DefineDepartment {
            department: dep(id),
            name: short(name),
            supervisor: None,
        }));
    }
    for (id, name) in [
        ("moscow", "Moscow"),
        ("saint-petersburg", "Saint Petersburg"),
    ] {
        out.push(CatalogCommand::CreateOffice(DefineOffice {
            office: OfficeId::parse(id).expect("valid"),
            name: short(name),
        }));
    }
    let users = [
        (ADMIN, "Administrator", Role::Admin, "sales", "moscow"),
        (
            "olga.supervisor",
            "Olga Smirnova",
            Role::Supervisor,
            "sales",
            "moscow",
        ),
        (
            "ivan.manager",
            "Ivan Petrov",
            Role::Manager,
            "sales",
            "moscow",
        ),
        (
            "maria.manager",
            "Maria Ivanova",
            Role::Manager,
            "sales",
            "moscow",
        ),
        (
            "pavel.manager",
            "Pavel Sokolov",
            Role::Manager,
            "sales",
            "moscow",
        ),
        (
            "sergey.supervisor",
            "Sergey Kuznetsov",
            Role::Supervisor,
            "partners",
            "saint-petersburg",
        ),
        (
            "anna.manager",
            "Anna Popova",
            Role::Manager,
            "partners",
            "saint-petersburg",
        ),
        (
            "dmitry.manager",
            "Dmitry Volkov",
            Role::Manager,
            "partners",
            "saint-petersburg",
        ),
        (
            "boris.dismissed",
            "Boris Lebedev",
            Role::Manager,
            "sales",
            "moscow",
        ),
    ];
    for (login, display, role, department, office) in users {
        out.push(CatalogCommand::CreateUser(CreateUser {
            login: Login::parse(login).expect("valid"),
            display_name: Name::parse("display name", display).expect("valid"),
            role,
            department: dep(department),
            office: Some(OfficeId::parse(office).expect("valid")),
            email: None,
            locale: Locale::Ru,
        }));
    }
    out.push(CatalogCommand::DismissUser {
        user: UserId::named("boris.dismissed"),
    });
    for (id, name, head) in [
        ("sales", "Sales", "olga.supervisor"),
        ("partners", "Partner sales", "sergey.supervisor"),
    ] {
        out.push(CatalogCommand::UpdateDepartment(UpdateDepartment {
            department: dep(id),
            name: Some(short(name)),
            supervisor: Some(Some(UserId::named(head))),
        }));
    }
    out.push(funnel(
        "default",
        "Sales",
        [
            ("qualification", "Qualification", "#4f8bd6"),
            ("distribution", "Distribution", "#8a6fd1"),
            ("handoff", "Transfer to sale", "#e0a030"),
            ("awaiting-sale", "Awaiting sale", "#3aa776"),
            ("disqualified", "Junk", "#c94c4c"),
            ("need-absent", "No need", "#9a9a9a"),
            ("need-satisfied", "Won", "#2e7d32"),
        ],
    ));
    out.push(funnel(
        "partners",
        "Partner channel",
        [
            ("new", "New request", "#5c9ded"),
            ("routing", "Routing", "#9575cd"),
            ("partner-contact", "Partner contact", "#ffb74d"),
            ("waiting-order", "Waiting for order", "#4db6ac"),
            ("rejected", "Rejected", "#e57373"),
            ("no-demand", "No demand", "#bdbdbd"),
            ("ordered", "Ordered", "#43a047"),
        ],
    ));
    // `default` is the default funnel of an empty catalog already.
    let entry = |list, c: &str, name: &str| {
        CatalogCommand::CreateEntry(DefineEntry {
            list,
            code: code(c),
            name: short(name),
        })
    };
    for (c, name) in [
        ("no-budget", "No budget"),
        ("no-need", "No real need"),
        ("competitor", "Chose a competitor"),
        ("unreachable", "Cannot be reached"),
        ("wrong-contact", "Wrong contact data"),
        ("duplicate", "Duplicate lead"),
        ("spam", "Spam"),
        ("not-decision-maker", "Not a decision maker"),
        ("out-of-region", "Outside the service region"),
        ("product-mismatch", "We do not offer what is needed"),
        ("price", "Price too high"),
        ("timing", "Need postponed indefinitely"),
    ] {
        out.push(entry(ListKind::Reason, c, name));
    }
    for (c, name, group, counted) in [
        ("website", "Website", "Online", true),
        ("advertising", "Contextual advertising", "Online", true),
        ("exhibition", "Exhibition", "Events", true),
        ("referral", "Referral", "Word of mouth", true),
        ("cold-call", "Cold call", "Outbound", true),
        ("partner", "Partner", "Partners", true),
        ("internal", "Internal (not counted)", "Internal", false),
    ] {
        out.push(CatalogCommand::CreateSource(DefineSource {
            code: SourceCode::parse(c).expect("valid"),
            name: short(name),
            group: Some(short(group)),
            tags: Vec::new(),
            counted_in_statistics: counted,
        }));
    }
    for (c, name) in [
        ("manual", "Manual entry"),
        ("web-form", "Web form"),
        ("telephony", "Telephony"),
        ("email", "E-mail"),
        ("chat", "Chat"),
        ("import", "CSV import"),
    ] {
        out.push(entry(ListKind::Channel, c, name));
    }
    for (c, name) in [
        ("equipment", "Equipment"),
        ("services", "Services"),
        ("software", "Software"),
    ] {
        out.push(entry(ListKind::SalesDirection, c, name));
    }
    for (c, name) in [
        ("manufacturing", "Manufacturing"),
        ("retail", "Retail"),
        ("construction", "Construction"),
        ("it", "Information technology"),
    ] {
        out.push(entry(ListKind::Industry, c, name));
    }
    for (c, name) in [
        ("central", "Central"),
        ("north-west", "North-West"),
        ("volga", "Volga"),
        ("siberia", "Siberia"),
    ] {
        out.push(entry(ListKind::BusinessRegion, c, name));
    }
    out.push(CatalogCommand::ChangeSettings(SettingsPatch {
        automation: Some(automation_rules()),
        ..SettingsPatch::default()
    }));
    out
}

/// The seed decided in order, each command on its stream's state and the catalog so far: the
/// events each part starts with.
pub fn events() -> Vec<(CatalogPart, Vec<CatalogEvent>)> {
    let mut parts: std::collections::BTreeMap<CatalogPart, (Option<Catalog>, Vec<CatalogEvent>)> =
        Default::default();
    let mut whole = Catalog::empty();
    let now = chrono::DateTime::<chrono::Utc>::UNIX_EPOCH;
    for command in commands() {
        let part = command.part();
        let (state, log) = parts.entry(part).or_default();
        let ctx = Context {
            now,
            actor: actor(),
            catalog: &whole,
        };
        let events = super::decide::decide(state.as_ref(), &command, &ctx)
            .unwrap_or_else(|r| panic!("the seed's {} is refused: {r}", command.name()));
        for e in events {
            *state = evolve(state.take(), &e);
            log.push(e);
        }
        whole = Catalog::assemble(|p| parts.get(&p).and_then(|(s, _)| s.clone()));
    }
    parts.into_iter().map(|(p, (_, log))| (p, log)).collect()
}

/// The seed folded: the catalog of a new installation.
pub fn default_catalog() -> Catalog {
    let folded: Vec<(CatalogPart, Catalog)> = events()
        .into_iter()
        .map(|(p, log)| {
            let state = log.iter().fold(None, evolve).unwrap_or_else(Catalog::empty);
            (p, state)
        })
        .collect();
    Catalog::assemble(|p| folded.iter().find(|(q, _)| *q == p).map(|(_, c)| c.clone()))
}

impl Catalog {
    /// The catalog a fresh installation starts with: the seed folded.
    pub fn default_catalog() -> Self {
        default_catalog()
    }
}
