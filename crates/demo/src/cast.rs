//! Who acts in the demo: the two teams (the `default` funnel worked by the `sales`
//! department, `partners` by the `partners` department), each with its supervisor and
//! managers, the admin, and the integrations that register inbound leads. Everything is read
//! from the engine's catalog and checked once up front, so a catalog without what the demo
//! needs fails with one clear error instead of a rejected command halfway through.
//!
//! It also knows the access rules the domain enforces on actors (who may convert), so the
//! script picks an allowed actor instead of guessing.

use leadflow_domain::catalog::Role;
use leadflow_domain::{
    Actor, Catalog, ChannelCode, DepartmentId, FunnelId, Lead, ReasonCode, SourceCode, Stage,
    StageKey, UserId,
};

use crate::DemoError;

/// The disqualification reasons, sources and channels the script uses.
pub const REASONS: &[&str] = &[
    "no-budget",
    "no-need",
    "competitor",
    "unreachable",
    "wrong-contact",
    "duplicate",
    "spam",
    "not-decision-maker",
    "out-of-region",
    "product-mismatch",
    "price",
    "timing",
];
pub const SOURCES: &[&str] = &[
    "website",
    "advertising",
    "exhibition",
    "referral",
    "cold-call",
    "partner",
    "internal",
];
pub const CHANNELS: &[&str] = &["manual", "web-form", "telephony", "email", "chat", "import"];

/// A funnel and the department that works it.
pub struct Team {
    pub funnel: FunnelId,
    pub department: DepartmentId,
    pub supervisor: Actor,
    /// Active managers, at least two, so a lead can always be handed to someone else.
    pub managers: Vec<Actor>,
    pub offices: &'static [&'static str],
    /// The funnel's stage keys in [`Stage::ALL`] order.
    keys: Vec<StageKey>,
}

impl Team {
    /// The funnel's key for `stage` (what JumpToStage names).
    pub fn key(&self, stage: Stage) -> StageKey {
        let i = Stage::ALL
            .iter()
            .position(|s| *s == stage)
            .expect("every stage is in Stage::ALL");
        self.keys[i].clone()
    }
}

pub struct Cast<'a> {
    catalog: &'a Catalog,
    pub sales: Team,
    pub partners: Team,
    pub admin: Actor,
}

/// An integration outside the catalog registering inbound leads (the domain lets any
/// supervisor convert what it registered).
pub fn integration(name: &str) -> Actor {
    Actor {
        user: UserId::named(&format!("integration.{name}")),
        role: Role::Manager,
    }
}

fn missing(what: impl Into<String>) -> DemoError {
    DemoError::Catalog {
        missing: what.into(),
    }
}

fn team(
    catalog: &Catalog,
    funnel: &str,
    department: &str,
    offices: &'static [&'static str],
) -> Result<Team, DemoError> {
    let funnel_id = FunnelId::parse(funnel).expect("a valid code");
    let f = catalog
        .funnel(&funnel_id)
        .ok_or_else(|| missing(format!("funnel {funnel}")))?;
    let department = DepartmentId::parse(department).expect("a valid code");
    let dept = &department;
    let members = |role| {
        catalog
            .users
            .iter()
            .filter(move |u| u.active && u.role == role && u.department == *dept)
            .map(|u| Actor {
                user: u.id,
                role: u.role,
            })
    };
    let supervisor = members(Role::Supervisor)
        .next()
        .ok_or_else(|| missing(format!("a supervisor of department {department}")))?;
    let managers: Vec<_> = members(Role::Manager).collect();
    if managers.len() < 2 {
        return Err(missing(format!("two managers in department {department}")));
    }
    Ok(Team {
        funnel: funnel_id,
        department: department.clone(),
        supervisor,
        managers,
        offices,
        keys: Stage::ALL
            .iter()
            .map(|s| f.column(*s).key.clone())
            .collect(),
    })
}

impl<'a> Cast<'a> {
    /// Reads the cast from `catalog`, or names the first thing the demo needs and lacks.
    pub fn from_catalog(catalog: &'a Catalog) -> Result<Self, DemoError> {
        for code in REASONS {
            let code = ReasonCode::parse(code).expect("a valid code");
            catalog
                .reason(&code)
                .ok_or_else(|| missing(format!("disqualification reason {code}")))?;
        }
        for code in SOURCES {
            let code = SourceCode::parse(code).expect("a valid code");
            catalog
                .source(&code)
                .ok_or_else(|| missing(format!("source {code}")))?;
        }
        for code in CHANNELS {
            let code = ChannelCode::parse(code).expect("a valid code");
            catalog
                .channel(&code)
                .ok_or_else(|| missing(format!("channel {code}")))?;
        }
        let admin = catalog
            .users
            .iter()
            .find(|u| u.active && u.role == Role::Admin)
            .map(|u| Actor {
                user: u.id,
                role: u.role,
            })
            .ok_or_else(|| missing("an admin"))?;
        Ok(Self {
            catalog,
            sales: team(
                catalog,
                "default",
                "sales",
                &["Офис Москва", "Офис Санкт-Петербург"],
            )?,
            partners: team(catalog, "partners", "partners", &["Офис Екатеринбург"])?,
            admin,
        })
    }

    /// The user as an actor with their catalog role; users outside the catalog (integrations)
    /// act as managers.
    pub fn actor(&self, user: UserId) -> Actor {
        let role = self.catalog.user(user).map_or(Role::Manager, |u| u.role);
        Actor { user, role }
    }

    /// Who converts `lead`: its creator when the creator still works it (or supervises), else
    /// a supervisor of the creator's department, else (an integration registered it) the
    /// team's supervisor. The domain allows exactly these.
    pub fn converter(&self, lead: &Lead, team: &Team) -> Actor {
        let Some(creator) = self.catalog.user(lead.created_by) else {
            return team.supervisor;
        };
        let own = Actor {
            user: creator.id,
            role: creator.role,
        };
        if creator.role.is_supervising() || lead.responsible == Some(creator.id) {
            return own;
        }
        self.catalog
            .users
            .iter()
            .find(|u| u.active && u.role == Role::Supervisor && u.department == creator.department)
            .map_or(self.admin, |u| Actor {
                user: u.id,
                role: u.role,
            })
    }
}
