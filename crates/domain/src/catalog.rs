//! The catalog as data: funnels with their stage lists, users with roles and departments,
//! disqualification reasons, sources and channels. Commands are checked against it; it is a
//! plain value here (the `catalog-{kind}` streams that edit it arrive with a later issue).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::ids::{ChannelCode, DepartmentId, FunnelId, ReasonCode, SourceCode, StageKey, UserId};
use crate::stage::Stage;
use crate::values::Currency;

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

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct User {
    pub id: UserId,
    pub name: String,
    pub role: Role,
    pub department: DepartmentId,
    /// Dismissed staff stay in the catalog (history names them) but take no new leads.
    pub active: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Department {
    pub id: DepartmentId,
    pub name: String,
}

/// One column of a funnel: its own name and colour over a fixed [`Stage`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FunnelStage {
    pub key: StageKey,
    pub name: String,
    pub colour: String,
    pub stage: Stage,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Funnel {
    pub id: FunnelId,
    pub name: String,
    /// Exactly one column per [`Stage`], in [`Stage::ALL`] order.
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
            })
            .collect();
        Self {
            id: FunnelId::parse(id).expect("catalog funnel ids are valid codes"),
            name: name.to_owned(),
            stages,
        }
    }

    /// The stage a new lead starts in: the funnel's first column.
    pub fn first_stage(&self) -> Stage {
        self.stages[0].stage
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
    /// Sources flagged "not counted in statistics" make their leads NonAdvertising.
    pub counted_in_statistics: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Channel {
    pub code: ChannelCode,
    pub name: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Catalog {
    pub funnels: Vec<Funnel>,
    /// The funnel the registry shows when none is named.
    pub default_funnel: FunnelId,
    pub departments: Vec<Department>,
    pub users: Vec<User>,
    pub reasons: Vec<Reason>,
    pub sources: Vec<Source>,
    pub channels: Vec<Channel>,
    /// Handoff budgets are entered in this currency («Бюджет, б.в»).
    pub base_currency: Currency,
}

impl Catalog {
    pub fn funnel(&self, id: &FunnelId) -> Option<&Funnel> {
        self.funnels.iter().find(|f| &f.id == id)
    }

    pub fn user(&self, id: UserId) -> Option<&User> {
        self.users.iter().find(|u| u.id == id)
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

    /// The catalog a fresh installation starts with: two funnels, two departments with a
    /// supervisor and managers each, an admin, the 12 default disqualification reasons (seed
    /// 003 recommends 10-12), and the usual sources and channels.
    pub fn default_catalog() -> Self {
        let dep = |id: &str| DepartmentId::parse(id).expect("valid department code");
        let user = |name: &str, role, department: &str| User {
            id: UserId::named(name),
            name: name.to_owned(),
            role,
            department: dep(department),
            active: true,
        };
        let mut users = vec![
            user("admin", Role::Admin, "sales"),
            user("olga.supervisor", Role::Supervisor, "sales"),
            user("ivan.manager", Role::Manager, "sales"),
            user("maria.manager", Role::Manager, "sales"),
            user("pavel.manager", Role::Manager, "sales"),
            user("sergey.supervisor", Role::Supervisor, "partners"),
            user("anna.manager", Role::Manager, "partners"),
            user("dmitry.manager", Role::Manager, "partners"),
        ];
        let mut dismissed = user("boris.dismissed", Role::Manager, "sales");
        dismissed.active = false;
        users.push(dismissed);

        let reasons = [
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
        ]
        .into_iter()
        .map(|(code, name)| Reason {
            code: ReasonCode::parse(code).expect("valid"),
            name: name.to_owned(),
        })
        .collect();

        let sources = [
            ("website", "Website", true),
            ("advertising", "Contextual advertising", true),
            ("exhibition", "Exhibition", true),
            ("referral", "Referral", true),
            ("cold-call", "Cold call", true),
            ("partner", "Partner", true),
            ("internal", "Internal (not counted)", false),
        ]
        .into_iter()
        .map(|(code, name, counted)| Source {
            code: SourceCode::parse(code).expect("valid"),
            name: name.to_owned(),
            counted_in_statistics: counted,
        })
        .collect();

        let channels = [
            ("manual", "Manual entry"),
            ("web-form", "Web form"),
            ("telephony", "Telephony"),
            ("email", "E-mail"),
            ("chat", "Chat"),
            ("import", "CSV import"),
        ]
        .into_iter()
        .map(|(code, name)| Channel {
            code: ChannelCode::parse(code).expect("valid"),
            name: name.to_owned(),
        })
        .collect();

        Self {
            funnels: vec![
                Funnel::new(
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
                ),
                Funnel::new(
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
                ),
            ],
            default_funnel: FunnelId::parse("default").expect("valid"),
            departments: vec![
                Department {
                    id: dep("sales"),
                    name: "Sales".to_owned(),
                },
                Department {
                    id: dep("partners"),
                    name: "Partner sales".to_owned(),
                },
            ],
            users,
            reasons,
            sources,
            channels,
            base_currency: Currency::rub(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_catalog_is_complete() {
        let c = Catalog::default_catalog();
        assert_eq!(c.reasons.len(), 12);
        assert!(c.funnel(&c.default_funnel).is_some());
        for f in &c.funnels {
            let stages: Vec<_> = f.stages.iter().map(|s| s.stage).collect();
            assert_eq!(stages, Stage::ALL, "funnel {}", f.id);
            assert_eq!(f.first_stage(), Stage::Qualification);
        }
        assert!(c.users.iter().any(|u| u.role == Role::Admin));
    }
}
