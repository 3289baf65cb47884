//! What the API shows: the lead card, registry rows, the board, the feed, reports, users and
//! projection status. Enums mirror the domain's and render in SCREAMING_CASE.

use async_graphql::{Context, Enum, Object, Scalar, ScalarType, SimpleObject, Value, ID};
use chrono::{DateTime, Utc};

use leadflow_domain::events::{SaleKind, SystemTaskKind};
use leadflow_domain::{allowed_in, Catalog, CommandName, Lead, UserId};
use leadflow_projections::query::{BoardColumn, HistoryRow, LeadRow};
use leadflow_projections::{from_micros, ProjectionState};
use leadflow_store::Position;

/// A place in the event log, as a decimal string (it may exceed 2^53).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LogPosition(pub Position);

#[Scalar(name = "Position")]
impl ScalarType for LogPosition {
    fn parse(value: Value) -> async_graphql::InputValueResult<Self> {
        match &value {
            Value::String(s) => s
                .parse::<u64>()
                .map(|p| Self(Position(p)))
                .map_err(|_| async_graphql::InputValueError::expected_type(value)),
            Value::Number(n) => n
                .as_u64()
                .map(|p| Self(Position(p)))
                .ok_or_else(|| async_graphql::InputValueError::expected_type(value)),
            _ => Err(async_graphql::InputValueError::expected_type(value)),
        }
    }

    fn to_value(&self) -> Value {
        Value::String(self.0 .0.to_string())
    }
}

#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
#[graphql(remote = "leadflow_domain::Stage")]
pub enum Stage {
    Qualification,
    Distribution,
    Handoff,
    AwaitingSale,
    Disqualified,
    NeedAbsent,
    NeedSatisfied,
}

#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
#[graphql(remote = "leadflow_domain::Maturity")]
pub enum Maturity {
    Unknown,
    InterestShown,
    ReadyForSale,
    NoInterest,
    Satisfied,
}

#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
#[graphql(remote = "leadflow_domain::Role")]
pub enum Role {
    Manager,
    Supervisor,
    Admin,
}

#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
#[graphql(remote = "leadflow_domain::details::Quality")]
pub enum Quality {
    Target,
    NonTarget,
    Repeat,
    Unverified,
    Unsorted,
}

#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
#[graphql(remote = "leadflow_domain::details::InquiryType")]
pub enum InquiryType {
    Call,
    MissedCall,
    WebRequest,
    ManualRequest,
    Chat,
    Email,
    Import,
}

#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
#[graphql(remote = "leadflow_domain::CommandName")]
pub enum Command {
    RegisterLead,
    UpdateLeadDetails,
    QualifyLead,
    DisqualifyLead,
    AssignResponsible,
    Distribute,
    CompleteHandoffTask,
    SubmitHandoffDetails,
    ScheduleHandoffTask,
    ConvertLead,
    RecordDealWon,
    RecordDealLost,
    JumpToStage,
    ReopenLead,
}

/// An amount with its currency; `amount` is a decimal string in major units.
#[derive(SimpleObject, Clone, Debug)]
pub struct Money {
    pub amount: String,
    pub currency: String,
}

impl Money {
    pub fn from_minor(minor: i64, currency: &str) -> Self {
        Self {
            amount: format!("{}.{:02}", minor / 100, minor % 100),
            currency: currency.to_owned(),
        }
    }
}

impl From<&leadflow_domain::values::Money> for Money {
    fn from(m: &leadflow_domain::values::Money) -> Self {
        Self::from_minor(m.minor(), m.currency().as_str())
    }
}

/// A member of staff (their records are employment data, kept for the audit trail).
#[derive(SimpleObject, Clone, Debug)]
pub struct User {
    pub id: ID,
    /// The login (`olga.supervisor`).
    pub name: String,
    pub display_name: String,
    pub role: Option<Role>,
    pub department: Option<String>,
    pub office: Option<String>,
    pub email: Option<String>,
    /// `ru` or `en`.
    pub locale: Option<String>,
    /// False once dismissed: their tokens are refused and they take no new leads.
    pub active: bool,
}

pub fn user(catalog: &Catalog, id: UserId) -> User {
    match catalog.user(id) {
        Some(u) => User {
            id: ID(id.to_string()),
            name: u.name.clone(),
            display_name: u.display_name.clone(),
            role: Some(u.role.into()),
            department: Some(u.department.to_string()),
            office: u.office.as_ref().map(ToString::to_string),
            email: u.email.as_ref().map(|e| e.as_str().to_owned()),
            locale: Some(match u.locale {
                leadflow_domain::catalog::Locale::Ru => "ru".to_owned(),
                leadflow_domain::catalog::Locale::En => "en".to_owned(),
            }),
            active: u.active,
        },
        None => User {
            id: ID(id.to_string()),
            name: format!("user {id}"),
            display_name: format!("user {id}"),
            role: None,
            department: None,
            office: None,
            email: None,
            locale: None,
            active: false,
        },
    }
}

fn user_str(catalog: &Catalog, raw: &str) -> Option<User> {
    UserId::parse(raw).ok().map(|id| user(catalog, id))
}

#[derive(SimpleObject, Clone, Debug)]
pub struct Task {
    pub id: ID,
    pub kind: String,
    pub assignee: Option<User>,
    pub due_at: DateTime<Utc>,
}

#[derive(SimpleObject, Clone, Debug)]
pub struct Deal {
    pub id: ID,
    pub kind: String,
}

#[derive(SimpleObject, Clone, Debug)]
pub struct Disqualification {
    pub reason: String,
    pub reason_name: String,
    pub comment: Option<String>,
}

#[derive(SimpleObject, Clone, Debug)]
pub struct HandoffDetails {
    pub sales_direction: Option<String>,
    pub meeting_at: Option<DateTime<Utc>>,
    pub decision_at: Option<DateTime<Utc>>,
}

/// The lead card: every field, its links, and what can be done next.
pub struct LeadCard {
    pub lead: Lead,
    pub created_at: Option<DateTime<Utc>>,
    pub updated_at: Option<DateTime<Utc>>,
}

fn kind(k: SystemTaskKind) -> String {
    format!("{k:?}")
}

#[Object]
impl LeadCard {
    async fn id(&self) -> ID {
        ID(self.lead.id.to_string())
    }
    /// The data subject whose personal data the lead holds (for `erasePersonalData` and
    /// `personalData`); an id, never a value about the person.
    async fn subject(&self) -> ID {
        ID(self.lead.subject.to_string())
    }
    async fn funnel(&self) -> &str {
        self.lead.funnel.as_str()
    }
    async fn stage(&self) -> Stage {
        self.lead.stage.into()
    }
    /// The stage as the funnel names it.
    async fn stage_name(&self, ctx: &Context<'_>) -> Option<String> {
        let catalog = crate::catalog_of(ctx);
        catalog
            .funnel(&self.lead.funnel)
            .map(|f| f.column(self.lead.stage).name.clone())
    }
    async fn maturity(&self) -> Maturity {
        self.lead.maturity.into()
    }
    async fn title(&self) -> &str {
        self.lead.details.title.as_str()
    }
    async fn budget(&self) -> Option<Money> {
        self.lead.details.budget.as_ref().map(Money::from)
    }
    async fn responsible(&self, ctx: &Context<'_>) -> Option<User> {
        self.lead
            .responsible
            .map(|u| user(&crate::catalog_of(ctx), u))
    }
    async fn created_by(&self, ctx: &Context<'_>) -> User {
        user(&crate::catalog_of(ctx), self.lead.created_by)
    }
    async fn contact_name(&self) -> Option<&str> {
        self.lead.details.contact_name.as_ref().map(|n| n.as_str())
    }
    async fn phones(&self) -> Vec<&str> {
        self.lead
            .details
            .phones
            .iter()
            .map(|p| p.as_str())
            .collect()
    }
    async fn emails(&self) -> Vec<&str> {
        self.lead
            .details
            .emails
            .iter()
            .map(|e| e.as_str())
            .collect()
    }
    async fn account_name(&self) -> Option<&str> {
        self.lead.details.account_name.as_ref().map(|n| n.as_str())
    }
    async fn industry(&self) -> Option<&str> {
        self.lead.details.industry.as_ref().map(|n| n.as_str())
    }
    async fn business_region(&self) -> Option<&str> {
        self.lead
            .details
            .business_region
            .as_ref()
            .map(|n| n.as_str())
    }
    async fn website(&self) -> Option<&str> {
        self.lead.details.website.as_ref().map(|n| n.as_str())
    }
    async fn region(&self) -> Option<&str> {
        self.lead.details.region.as_ref().map(|n| n.as_str())
    }
    async fn source(&self) -> Option<&str> {
        self.lead.details.source.as_ref().map(|n| n.as_str())
    }
    async fn channel(&self) -> Option<&str> {
        self.lead.details.channel.as_ref().map(|n| n.as_str())
    }
    async fn inquiry_type(&self) -> Option<InquiryType> {
        self.lead.details.inquiry_type.map(Into::into)
    }
    async fn quality(&self) -> Quality {
        self.lead.details.quality.into()
    }
    async fn advertising(&self) -> bool {
        self.lead.details.advertising
    }
    async fn comment(&self) -> Option<&str> {
        self.lead.details.comment.as_ref().map(|n| n.as_str())
    }
    async fn need_type(&self) -> Option<&str> {
        self.lead.details.need_type.as_ref().map(|n| n.as_str())
    }
    async fn external_ref(&self) -> Option<&str> {
        self.lead.details.external_ref.as_ref().map(|n| n.as_str())
    }
    async fn taken_by(&self, ctx: &Context<'_>) -> Option<User> {
        self.lead
            .details
            .taken_by
            .map(|u| user(&crate::catalog_of(ctx), u))
    }
    async fn taken_at(&self) -> Option<DateTime<Utc>> {
        self.lead.details.taken_at
    }
    async fn handoff(&self) -> HandoffDetails {
        let h = &self.lead.handoff;
        HandoffDetails {
            sales_direction: h.sales_direction.as_ref().map(|s| s.to_string()),
            meeting_at: h.meeting_at,
            decision_at: h.decision_at,
        }
    }
    async fn contact_id(&self) -> Option<ID> {
        self.lead.contact.map(|c| ID(c.to_string()))
    }
    async fn account_id(&self) -> Option<ID> {
        self.lead.account.map(|c| ID(c.to_string()))
    }
    async fn deal(&self) -> Option<Deal> {
        self.lead.deal.as_ref().map(|d| Deal {
            id: ID(d.id.to_string()),
            kind: match d.kind {
                SaleKind::Order => "ORDER".to_owned(),
                SaleKind::Sale => "SALE".to_owned(),
            },
        })
    }
    async fn disqualification(&self, ctx: &Context<'_>) -> Option<Disqualification> {
        let catalog = crate::catalog_of(ctx);
        self.lead
            .disqualification
            .as_ref()
            .map(|d| Disqualification {
                reason: d.reason.to_string(),
                reason_name: catalog
                    .reason(&d.reason)
                    .map_or_else(|| d.reason.to_string(), |r| r.name.clone()),
                comment: d.comment.as_ref().map(|c| c.to_string()),
            })
    }
    /// Next re-check while nurturing in Distribution.
    async fn next_check_at(&self) -> Option<DateTime<Utc>> {
        self.lead.nurturing.as_ref().map(|n| n.next_check_at)
    }
    async fn open_tasks(&self, ctx: &Context<'_>) -> Vec<Task> {
        let catalog = crate::catalog_of(ctx);
        self.lead
            .open_tasks
            .iter()
            .map(|t| Task {
                id: ID(t.id.to_string()),
                kind: kind(t.kind),
                assignee: t.assignee.map(|u| user(&catalog, u)),
                due_at: t.due_at,
            })
            .collect()
    }
    /// "What to do next": the commands the lead's stage allows now.
    async fn allowed_commands(&self) -> Vec<Command> {
        CommandName::ALL
            .into_iter()
            .filter(|c| allowed_in(*c, self.lead.stage))
            .map(Into::into)
            .collect()
    }
    async fn jumps(&self) -> u32 {
        self.lead.jumps
    }
    async fn created_at(&self) -> Option<DateTime<Utc>> {
        self.created_at
    }
    async fn updated_at(&self) -> Option<DateTime<Utc>> {
        self.updated_at
    }
}

/// The API enum whose domain value the read model stored under its name (`ReadyForSale`).
fn stored_enum<G, D>(raw: &str, to_domain: impl Fn(G) -> D) -> async_graphql::Result<G>
where
    G: async_graphql::resolver_utils::EnumType + Copy + 'static,
    D: std::fmt::Debug,
{
    G::items()
        .iter()
        .map(|item| item.value)
        .find(|g| format!("{:?}", to_domain(*g)) == raw)
        .ok_or_else(|| crate::ApiError::Internal(format!("unknown stored value {raw:?}")).into())
}

/// A row of the registry table and a card on the board.
pub struct LeadSummary(pub LeadRow);

#[Object]
impl LeadSummary {
    async fn id(&self) -> ID {
        ID(self.0.lead_id.clone())
    }
    async fn funnel(&self) -> &str {
        &self.0.funnel
    }
    async fn stage(&self) -> Option<Stage> {
        leadflow_domain::Stage::ALL
            .into_iter()
            .find(|s| s.to_string() == self.0.stage)
            .map(Into::into)
    }
    async fn maturity(&self) -> async_graphql::Result<Maturity> {
        stored_enum(&self.0.maturity, leadflow_domain::Maturity::from)
    }
    async fn title(&self) -> &str {
        &self.0.title
    }
    async fn budget(&self, ctx: &Context<'_>) -> Option<Money> {
        let currency = ctx
            .data_unchecked::<crate::AppState>()
            .catalog()
            .base_currency()
            .to_string();
        self.0.budget_minor.map(|m| Money::from_minor(m, &currency))
    }
    async fn responsible(&self, ctx: &Context<'_>) -> Option<User> {
        self.0
            .responsible
            .as_deref()
            .and_then(|r| user_str(&crate::catalog_of(ctx), r))
    }
    async fn source(&self) -> Option<&str> {
        self.0.source.as_deref()
    }
    async fn channel(&self) -> Option<&str> {
        self.0.channel.as_deref()
    }
    async fn region(&self) -> Option<&str> {
        self.0.region.as_deref()
    }
    async fn quality(&self) -> async_graphql::Result<Quality> {
        stored_enum(&self.0.quality, leadflow_domain::details::Quality::from)
    }
    async fn advertising(&self) -> bool {
        self.0.advertising
    }
    async fn contact_name(&self) -> Option<&str> {
        self.0.contact_name.as_deref()
    }
    async fn phone(&self) -> Option<&str> {
        self.0.phone.as_deref()
    }
    async fn email(&self) -> Option<&str> {
        self.0.email.as_deref()
    }
    async fn account_name(&self) -> Option<&str> {
        self.0.account_name.as_deref()
    }
    async fn disqualification_reason(&self) -> Option<&str> {
        self.0.disqualification_reason.as_deref()
    }
    async fn created_at(&self) -> DateTime<Utc> {
        from_micros(self.0.created_at)
    }
    async fn updated_at(&self) -> DateTime<Utc> {
        from_micros(self.0.updated_at)
    }
}

#[derive(SimpleObject, Clone, Debug)]
pub struct Column {
    pub stage: Stage,
    /// The funnel's key for the stage (for `jumpToStage`).
    pub key: String,
    pub name: String,
    pub colour: String,
    pub count: i64,
    pub budget: Money,
}

impl Column {
    pub fn new(c: &BoardColumn, currency: &str) -> Self {
        Self {
            stage: c.stage.into(),
            key: c.key.clone(),
            name: c.name.clone(),
            colour: c.colour.clone(),
            count: c.leads,
            budget: Money::from_minor(c.budget_minor, currency),
        }
    }
}

#[derive(SimpleObject, Clone, Debug)]
pub struct HistoryEntry {
    pub position: LogPosition,
    pub event_type: String,
    pub actor: User,
    pub occurred_at: DateTime<Utc>,
    pub summary: String,
    /// The event payload as stored in the log, JSON.
    pub data: String,
}

impl HistoryEntry {
    /// `data` is the payload read from the log (empty when the query did not ask for it).
    pub fn new(catalog: &Catalog, r: HistoryRow, data: String) -> Self {
        let actor = user_str(catalog, &r.actor_user).unwrap_or_else(|| User {
            id: ID(r.actor_user.clone()),
            name: r.actor_user.clone(),
            display_name: r.actor_user.clone(),
            role: None,
            department: None,
            office: None,
            email: None,
            locale: None,
            active: false,
        });
        Self {
            position: LogPosition(Position(r.position as u64)),
            event_type: r.event_type,
            actor,
            occurred_at: from_micros(r.occurred_at),
            summary: r.summary,
            data,
        }
    }
}

#[derive(SimpleObject, Clone, Debug)]
pub struct ReportRow {
    /// The responsible's id, the stage, the source or the reason code; null for "none".
    pub key: Option<String>,
    /// What people read: a user's name, a funnel column's name, a source's or reason's name.
    pub label: String,
    pub count: i64,
    pub budget: Money,
}

#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
#[graphql(name = "ProjectionState")]
pub enum ProjectionStateGql {
    Starting,
    CatchingUp,
    Live,
    /// Waiting to apply again after a transient failure (disk full, I/O, busy).
    Retrying,
    Failed,
    /// Paused by an operator: applies nothing until resumed.
    Paused,
    Stopped,
}

#[derive(SimpleObject, Clone, Debug)]
#[graphql(name = "ProjectionStatus")]
pub struct ProjectionStatusGql {
    pub name: String,
    pub version: u32,
    /// Which generation of the model's storage serves (each rebuild makes a new one).
    pub generation: u32,
    pub checkpoint: LogPosition,
    pub head: LogPosition,
    pub lag: String,
    pub state: ProjectionStateGql,
    pub events_per_sec: f64,
    pub error: Option<String>,
    /// Transient failures in a row (0 when following the log).
    pub attempts: u32,
    /// When a retrying model tries again.
    pub next_attempt: Option<chrono::DateTime<chrono::Utc>>,
    /// Building from the start of the log: how far, 0 to 1. Null when not rebuilding.
    pub rebuild_progress: Option<f64>,
    /// Seconds until caught up at the current rate; null when not behind or not moving.
    pub eta_seconds: Option<f64>,
    /// While failed: the position of the event it stopped at (what `skipEvent` names).
    pub stopped_at: Option<LogPosition>,
    /// While failed: that event's type.
    pub stopped_at_type: Option<String>,
    /// The generation being built beside this one (`rebuildProjection`), until it switches in.
    pub rebuild: Option<Box<ProjectionStatusGql>>,
    /// Why the last rebuild was not switched in (a verification that found differences).
    pub refused: Option<String>,
}

impl From<leadflow_projections::ProjectionStatus> for ProjectionStatusGql {
    fn from(s: leadflow_projections::ProjectionStatus) -> Self {
        Self {
            name: s.name.to_owned(),
            version: s.version,
            generation: s.generation,
            rebuild: s.rebuild.clone().map(|b| Box::new((*b).into())),
            refused: s.refused.clone(),
            checkpoint: LogPosition(s.checkpoint),
            head: LogPosition(s.head),
            lag: s.lag().to_string(),
            state: match s.state {
                ProjectionState::Starting => ProjectionStateGql::Starting,
                ProjectionState::CatchingUp => ProjectionStateGql::CatchingUp,
                ProjectionState::Live => ProjectionStateGql::Live,
                ProjectionState::Retrying => ProjectionStateGql::Retrying,
                ProjectionState::Failed => ProjectionStateGql::Failed,
                ProjectionState::Paused => ProjectionStateGql::Paused,
                ProjectionState::Stopped => ProjectionStateGql::Stopped,
            },
            events_per_sec: s.events_per_sec,
            rebuild_progress: s.rebuild_progress(),
            eta_seconds: s.eta_seconds(),
            stopped_at: s.stopped_at.as_ref().map(|p| LogPosition(p.position)),
            stopped_at_type: s.stopped_at.map(|p| p.event_type),
            error: s.error,
            attempts: s.attempts,
            next_attempt: s.next_attempt,
        }
    }
}
