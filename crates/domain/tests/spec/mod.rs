//! Given/when/then for the lead decider, and the fixtures the stage-machine tests share: a
//! fixed clock, one lead id, the default catalog's users, command builders, and the event
//! histories of the usual states.
//!
//! The histories are not written by hand: [`History`] decides each command in turn and keeps
//! what it emitted, so a fixture can never drift from `decide`. What this module deliberately
//! does not do is check rules itself; the tests state the expected events.

// Each test binary uses a different part of the fixtures and of the re-exports.
#![allow(dead_code, unused_imports)]

use chrono::{DateTime, Duration, TimeZone, Utc};
use uuid::Uuid;

pub use leadflow_domain::commands::*;
pub use leadflow_domain::details::{DetailChange, LeadDetails};
pub use leadflow_domain::events::*;
pub use leadflow_domain::values::{Comment, Currency, Email, Money, Name, Phone, Short};
pub use leadflow_domain::{
    allowed_in, decide, evolve, AccountId, Actor, Catalog, ContactId, Context, DealId, FunnelId,
    Lead, LeadCommand, LeadEvent, LeadId, Maturity, ReasonCode, Rejection, Role, SourceCode, Stage,
    StageKey, TaskId, UserId, DISTRIBUTION_TASK_TEXT, HANDOFF_DETAILS_TASK_TEXT, HANDOFF_TASK_TEXT,
    SYSTEM_TASK_DUE,
};

// ---------------------------------------------------------------------------------------------
// The harness

/// Anything `when` accepts: a [`LeadCommand`] or one of the command structs it wraps.
pub trait IntoCommand {
    fn into_command(self) -> LeadCommand;
}

impl IntoCommand for LeadCommand {
    fn into_command(self) -> LeadCommand {
        self
    }
}

macro_rules! into_command {
    ($($ty:ty => $variant:ident,)*) => {
        $(impl IntoCommand for $ty {
            fn into_command(self) -> LeadCommand {
                LeadCommand::$variant(self)
            }
        })*
    };
}

into_command! {
    RegisterLead => Register,
    UpdateLeadDetails => UpdateDetails,
    QualifyLead => Qualify,
    DisqualifyLead => Disqualify,
    AssignResponsible => AssignResponsible,
    DistributionDecision => Distribute,
    CompleteHandoffTask => CompleteHandoffTask,
    SubmitHandoffDetails => SubmitHandoffDetails,
    ScheduleHandoffTask => ScheduleHandoffTask,
    ConvertLead => Convert,
    RecordDealWon => RecordDealWon,
    RecordDealLost => RecordDealLost,
    JumpToStage => JumpToStage,
    ReopenLead => Reopen,
}

/// One row of the stage machine: the lead's history, who acts and when, and the command.
pub struct LeadSpec {
    catalog: Catalog,
    given: Vec<LeadEvent>,
    actor: Actor,
    now: DateTime<Utc>,
}

impl Default for LeadSpec {
    fn default() -> Self {
        Self::new()
    }
}

impl LeadSpec {
    /// No history yet, the default catalog, ivan.manager acting at [`now`].
    pub fn new() -> Self {
        Self {
            catalog: Catalog::default_catalog(),
            given: Vec::new(),
            actor: actor("ivan.manager"),
            now: now(),
        }
    }

    /// Appends events to the lead's history.
    pub fn given(mut self, events: impl IntoIterator<Item = LeadEvent>) -> Self {
        self.given.extend(events);
        self
    }

    // Reads as a sentence in a spec (`.as_user(maria(), Role::Manager)`), hence the name.
    #[allow(clippy::wrong_self_convention)]
    pub fn as_user(mut self, user: UserId, role: Role) -> Self {
        self.actor = Actor { user, role };
        self
    }

    /// Acts as the named catalog user, with the role the catalog gives them.
    pub fn by(self, name: &str) -> Self {
        let actor = actor(name);
        self.as_user(actor.user, actor.role)
    }

    pub fn at(mut self, now: DateTime<Utc>) -> Self {
        self.now = now;
        self
    }

    /// Edits the catalog the decision sees (the default one otherwise).
    pub fn with_catalog(mut self, edit: impl FnOnce(&mut Catalog)) -> Self {
        edit(&mut self.catalog);
        self
    }

    /// Decides `command` on the folded history. Deciding twice must give the same answer.
    #[track_caller]
    pub fn when(self, command: impl IntoCommand) -> Outcome {
        let command = command.into_command();
        let state = fold(&self.given);
        let ctx = Context {
            now: self.now,
            actor: self.actor,
            catalog: &self.catalog,
        };
        let result = decide(state.as_ref(), &command, &ctx);
        let again = decide(state.as_ref(), &command, &ctx);
        assert_eq!(
            result, again,
            "decide is not deterministic for {command:#?}"
        );
        Outcome {
            state,
            command,
            result,
        }
    }
}

/// What `decide` answered, to be checked by one of the `then` methods.
pub struct Outcome {
    state: Option<Lead>,
    command: LeadCommand,
    result: Result<Vec<LeadEvent>, Rejection>,
}

impl Outcome {
    /// The command is accepted with exactly these events; returns the lead after them.
    #[track_caller]
    pub fn then(self, expected: impl IntoIterator<Item = LeadEvent>) -> Lead {
        let expected: Vec<LeadEvent> = expected.into_iter().collect();
        let events = self.accepted();
        if events != expected {
            let first = events
                .iter()
                .zip(&expected)
                .position(|(a, b)| a != b)
                .unwrap_or(events.len().min(expected.len()));
            panic!(
                "unexpected events for {:#?}\n(first difference at index {first})\n\
                 expected: {expected:#?}\nemitted: {events:#?}",
                self.command
            );
        }
        fold_onto(self.state, &events)
    }

    /// The command is accepted and changes nothing.
    #[track_caller]
    pub fn then_nothing(self) {
        let events = self.accepted();
        assert!(
            events.is_empty(),
            "expected no events for {:#?}, got {events:#?}",
            self.command
        );
    }

    /// The command is accepted and its events pass `check`; returns the lead after them.
    #[track_caller]
    pub fn then_matches(self, check: impl FnOnce(&[LeadEvent]) -> bool) -> Lead {
        let events = self.accepted();
        assert!(
            check(&events),
            "the events of {:#?} do not match: {events:#?}",
            self.command
        );
        fold_onto(self.state, &events)
    }

    /// The command is refused for exactly this rule.
    #[track_caller]
    pub fn then_rejects(self, expected: Rejection) -> Rejected {
        match self.result {
            Err(rejection) => {
                assert_eq!(
                    rejection, expected,
                    "wrong rejection for {:#?}",
                    self.command
                );
                Rejected(rejection)
            }
            Ok(events) => panic!(
                "expected {expected:?} for {:#?}, but it was accepted with {events:#?}",
                self.command
            ),
        }
    }

    /// The events of an accepted command, whatever they are.
    #[track_caller]
    pub fn accepted(&self) -> Vec<LeadEvent> {
        match &self.result {
            Ok(events) => events.clone(),
            Err(rejection) => panic!(
                "expected {:#?} to be accepted, but it was rejected: {rejection:?} ({rejection})",
                self.command
            ),
        }
    }
}

/// A rejection already checked for its rule, to check its message too.
pub struct Rejected(pub Rejection);

impl Rejected {
    /// The message users see.
    #[track_caller]
    pub fn saying(self, message: &str) {
        assert_eq!(self.0.to_string(), message, "message of {:?}", self.0);
    }
}

/// Folds a history into the lead it describes.
pub fn fold(events: &[LeadEvent]) -> Option<Lead> {
    events.iter().fold(None, evolve)
}

#[track_caller]
fn fold_onto(state: Option<Lead>, events: &[LeadEvent]) -> Lead {
    events
        .iter()
        .fold(state, evolve)
        .expect("the accepted events describe a registered lead")
}

/// The lead a history describes; it must be registered.
#[track_caller]
pub fn state_of(events: &[LeadEvent]) -> Lead {
    fold(events).expect("the history registers the lead")
}

// ---------------------------------------------------------------------------------------------
// Histories built by deciding commands

/// A lead's history grown by deciding commands: each must be accepted.
pub struct History {
    catalog: Catalog,
    events: Vec<LeadEvent>,
    actor: Actor,
    now: DateTime<Utc>,
}

/// An empty history; commands are issued by ivan.manager at [`now`].
pub fn history() -> History {
    continue_from(Vec::new())
}

/// Continues a history from the events of an earlier fixture.
pub fn continue_from(events: Vec<LeadEvent>) -> History {
    History {
        catalog: Catalog::default_catalog(),
        events,
        actor: actor("ivan.manager"),
        now: now(),
    }
}

impl History {
    // Reads as a sentence in a spec (`.as_user(maria(), Role::Manager)`), hence the name.
    #[allow(clippy::wrong_self_convention)]
    pub fn as_user(mut self, user: UserId, role: Role) -> Self {
        self.actor = Actor { user, role };
        self
    }

    /// Issues the next commands as the named catalog user.
    pub fn by(self, name: &str) -> Self {
        let actor = actor(name);
        self.as_user(actor.user, actor.role)
    }

    /// Decides `command` on the history so far and appends its events.
    #[track_caller]
    pub fn run(mut self, command: impl IntoCommand) -> Self {
        let command = command.into_command();
        let state = fold(&self.events);
        let ctx = Context {
            now: self.now,
            actor: self.actor,
            catalog: &self.catalog,
        };
        match decide(state.as_ref(), &command, &ctx) {
            Ok(events) => self.events.extend(events),
            Err(rejection) => {
                panic!("fixture command {command:#?} was rejected: {rejection:?} ({rejection})")
            }
        }
        self
    }

    pub fn events(self) -> Vec<LeadEvent> {
        self.events
    }
}

/// The events of deciding `commands` in turn on a new lead, as ivan.manager at [`now`].
#[track_caller]
pub fn events_of(commands: impl IntoIterator<Item = LeadCommand>) -> Vec<LeadEvent> {
    commands.into_iter().fold(history(), History::run).events()
}

// ---------------------------------------------------------------------------------------------
// Fixed inputs

/// Business time of every test unless it says otherwise.
pub fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 1, 10, 0, 0).unwrap()
}

/// `now` plus `hours` (negative: in the past).
pub fn in_hours(hours: i64) -> DateTime<Utc> {
    now() + Duration::hours(hours)
}

/// When a system task opened at [`now`] is due.
pub fn system_task_due() -> DateTime<Utc> {
    now() + SYSTEM_TASK_DUE
}

pub fn lead_id() -> LeadId {
    LeadId::from_uuid(Uuid::from_u128(0x0195_5a2b_7c00_7000_8000_0000_0000_1ead))
}

/// The `n`-th system task the lead opens.
pub fn task(n: u32) -> TaskId {
    TaskId::for_lead(lead_id(), n)
}

/// The `n`-th deal the lead opens.
pub fn deal(n: u32) -> DealId {
    DealId::for_lead(lead_id(), n)
}

pub fn user(name: &str) -> UserId {
    UserId::named(name)
}

/// A catalog user with the role the default catalog gives them.
#[track_caller]
pub fn actor(name: &str) -> Actor {
    let user = UserId::named(name);
    let role = Catalog::default_catalog()
        .user(user)
        .unwrap_or_else(|| panic!("{name} is not in the default catalog"))
        .role;
    Actor { user, role }
}

/// Sales managers.
pub fn ivan() -> UserId {
    user("ivan.manager")
}

pub fn maria() -> UserId {
    user("maria.manager")
}

/// Head of sales.
pub fn olga() -> UserId {
    user("olga.supervisor")
}

/// Head of partner sales.
pub fn sergey() -> UserId {
    user("sergey.supervisor")
}

pub fn admin() -> UserId {
    user("admin")
}

/// Dismissed: still in the catalog, takes no new leads.
pub fn boris() -> UserId {
    user("boris.dismissed")
}

/// Nobody the catalog knows.
pub fn stranger() -> UserId {
    user("nobody.at.all")
}

#[track_caller]
pub fn name(raw: &str) -> Name {
    Name::parse("name", raw).unwrap()
}

#[track_caller]
pub fn short(raw: &str) -> Short {
    Short::parse("short", raw).unwrap()
}

#[track_caller]
pub fn comment(raw: &str) -> Comment {
    Comment::parse("comment", raw).unwrap()
}

/// An amount in whole roubles.
#[track_caller]
pub fn rub(major: i64) -> Money {
    Money::from_minor(major * 100, Currency::rub()).unwrap()
}

#[track_caller]
pub fn usd(major: i64) -> Money {
    Money::from_minor(major * 100, Currency::parse("USD").unwrap()).unwrap()
}

#[track_caller]
pub fn phone() -> Phone {
    Phone::parse("+7 916 123-45-67").unwrap()
}

#[track_caller]
pub fn email() -> Email {
    Email::parse("anna.petrova@example.ru").unwrap()
}

#[track_caller]
pub fn funnel(code: &str) -> FunnelId {
    FunnelId::parse(code).unwrap()
}

#[track_caller]
pub fn stage_key(code: &str) -> StageKey {
    StageKey::parse(code).unwrap()
}

#[track_caller]
pub fn reason(code: &str) -> ReasonCode {
    ReasonCode::parse(code).unwrap()
}

#[track_caller]
pub fn source(code: &str) -> SourceCode {
    SourceCode::parse(code).unwrap()
}

/// A lead with a title only: nobody to reach yet.
pub fn bare_details() -> LeadDetails {
    LeadDetails::titled(name("Office chairs for 40 people"))
}

/// A lead with a contact person and a phone: enough to qualify.
pub fn contact_details() -> LeadDetails {
    LeadDetails {
        contact_name: Some(name("Anna Petrova")),
        phones: vec![phone()],
        ..bare_details()
    }
}

/// A contact already in the CRM, to link instead of creating one.
pub fn existing_contact() -> ContactId {
    ContactId::parse("0195aaaa-0000-7000-8000-00000000c0c0").unwrap()
}

/// An account already in the CRM.
pub fn existing_account() -> AccountId {
    AccountId::parse("0195aaaa-0000-7000-8000-0000000acc00").unwrap()
}

/// The budget and sales direction a deal needs.
pub fn sale_terms() -> SaleTerms {
    SaleTerms {
        budget: rub(150_000),
        sales_direction: short("office furniture"),
    }
}

// ---------------------------------------------------------------------------------------------
// Commands

/// Registers [`lead_id`] with [`contact_details`], the creator responsible, the default funnel.
pub fn register() -> RegisterLead {
    RegisterLead {
        lead_id: lead_id(),
        funnel: None,
        responsible: ResponsibleChoice::Creator,
        details: contact_details(),
    }
}

/// Registers the lead the way web forms and calls do: without a responsible.
pub fn register_unassigned() -> RegisterLead {
    RegisterLead {
        responsible: ResponsibleChoice::Unassigned,
        ..register()
    }
}

pub fn update(changes: impl IntoIterator<Item = DetailChange>) -> UpdateLeadDetails {
    UpdateLeadDetails {
        changes: changes.into_iter().collect(),
    }
}

pub fn qualify() -> QualifyLead {
    QualifyLead::default()
}

pub fn disqualify(code: &str) -> DisqualifyLead {
    DisqualifyLead {
        reason: reason(code),
        comment: Some(comment("no money until next year")),
    }
}

pub fn assign(to: UserId) -> AssignResponsible {
    AssignResponsible { to, remind: false }
}

pub fn start_handoff() -> DistributionDecision {
    DistributionDecision::StartHandoff { remind: false }
}

pub fn continue_nurturing(next_check_at: DateTime<Utc>) -> DistributionDecision {
    DistributionDecision::ContinueNurturing {
        next_check_at,
        strategy: Some(comment("send the spring catalogue, call after it")),
    }
}

pub fn need_absent() -> DistributionDecision {
    DistributionDecision::NeedAbsent {
        comment: Some(comment("bought elsewhere last month")),
    }
}

/// Records `result` on the handoff task `task_id`.
pub fn complete(task_id: TaskId, result: HandoffResult) -> CompleteHandoffTask {
    CompleteHandoffTask { task_id, result }
}

pub fn place_order() -> HandoffResult {
    HandoffResult::PlaceOrder {
        comment: Some(comment("ordered on the phone")),
    }
}

pub fn transfer_to_sale() -> HandoffResult {
    HandoffResult::TransferToSale {
        comment: comment("needs a quote for 40 chairs"),
    }
}

pub fn return_to_distribution() -> HandoffResult {
    HandoffResult::ReturnToDistribution {
        comment: Some(comment("not my region")),
    }
}

pub fn postponed(until: DateTime<Utc>) -> HandoffResult {
    HandoffResult::Postponed {
        until,
        comment: Some(comment("on holiday until Monday")),
    }
}

pub fn no_interest() -> HandoffResult {
    HandoffResult::NoInterest {
        comment: Some(comment("just comparing prices")),
    }
}

/// Submits the handoff details follow-up `task_id` with [`sale_terms`].
pub fn submit_details(task_id: TaskId) -> SubmitHandoffDetails {
    let terms = sale_terms();
    SubmitHandoffDetails {
        task_id,
        budget: terms.budget,
        sales_direction: terms.sales_direction,
        meeting_at: in_hours(48),
        decision_at: in_hours(24 * 14),
        need_type: Some(short("office chairs")),
        comment: Some(comment("decides with the CFO")),
    }
}

pub fn schedule_handoff_task(due_at: DateTime<Utc>) -> ScheduleHandoffTask {
    ScheduleHandoffTask { due_at }
}

/// A conversion with no target yet; tests set the ones they need.
pub fn convert() -> ConvertLead {
    ConvertLead {
        contact: None,
        account: None,
        deal: None,
    }
}

pub fn deal_won(deal_id: DealId) -> RecordDealWon {
    RecordDealWon { deal_id }
}

pub fn deal_lost(deal_id: DealId) -> RecordDealLost {
    RecordDealLost {
        deal_id,
        reason: Some(comment("chose a cheaper supplier")),
    }
}

/// Jumps to the stage the lead's funnel calls `key`, with [`jump_reason`].
pub fn jump(key: &str) -> JumpToStage {
    JumpToStage {
        stage: stage_key(key),
        reason: jump_reason(),
        sale: None,
    }
}

pub fn jump_reason() -> Comment {
    comment("the customer called back himself")
}

pub fn reopen() -> ReopenLead {
    ReopenLead {
        comment: Some(comment("they are back with a new budget")),
    }
}

// ---------------------------------------------------------------------------------------------
// The histories of the usual states (the task and deal numbers they leave are in the docs)

/// Qualification, ivan.manager created it and is responsible.
pub fn registered() -> Vec<LeadEvent> {
    events_of([register().into_command()])
}

/// Qualification, created by ivan.manager, nobody responsible.
pub fn registered_unassigned() -> Vec<LeadEvent> {
    events_of([register_unassigned().into_command()])
}

/// Handoff (Distribution skipped), contact created; handoff task 1 open for ivan.manager.
pub fn in_handoff() -> Vec<LeadEvent> {
    continue_from(registered()).run(qualify()).events()
}

/// Distribution, nobody responsible; distribution task 1 open.
pub fn in_distribution() -> Vec<LeadEvent> {
    continue_from(registered_unassigned())
        .run(qualify())
        .events()
}

/// Distribution with maria.manager made responsible; distribution task 1 open.
pub fn in_distribution_with_responsible() -> Vec<LeadEvent> {
    continue_from(in_distribution())
        .run(assign(maria()))
        .events()
}

/// Handoff after TransferToSale: task 1 completed, handoff details task 2 open.
pub fn awaiting_handoff_details() -> Vec<LeadEvent> {
    continue_from(in_handoff())
        .run(complete(task(1), transfer_to_sale()))
        .events()
}

/// Handoff after NoInterest: no task open.
pub fn handoff_without_interest() -> Vec<LeadEvent> {
    continue_from(in_handoff())
        .run(complete(task(1), no_interest()))
        .events()
}

/// AwaitingSale after PlaceOrder, order deal 1 open, no budget on the lead.
pub fn awaiting_sale() -> Vec<LeadEvent> {
    continue_from(in_handoff())
        .run(complete(task(1), place_order()))
        .events()
}

/// AwaitingSale after TransferToSale and the handoff details: sale deal 1 with [`sale_terms`].
pub fn awaiting_sale_with_terms() -> Vec<LeadEvent> {
    continue_from(awaiting_handoff_details())
        .run(submit_details(task(2)))
        .events()
}

/// Disqualified from Qualification for "no-budget".
pub fn disqualified() -> Vec<LeadEvent> {
    continue_from(registered())
        .run(disqualify("no-budget"))
        .events()
}

/// NeedAbsent, decided in Distribution.
pub fn closed_as_need_absent() -> Vec<LeadEvent> {
    continue_from(in_distribution_with_responsible())
        .run(need_absent())
        .events()
}

/// NeedSatisfied: deal 1 won.
pub fn need_satisfied() -> Vec<LeadEvent> {
    continue_from(awaiting_sale())
        .run(deal_won(deal(1)))
        .events()
}

/// A history for every stage, in [`Stage::ALL`] order.
pub fn one_lead_per_stage() -> Vec<(Stage, Vec<LeadEvent>)> {
    vec![
        (Stage::Qualification, registered()),
        (Stage::Distribution, in_distribution_with_responsible()),
        (Stage::Handoff, in_handoff()),
        (Stage::AwaitingSale, awaiting_sale()),
        (Stage::Disqualified, disqualified()),
        (Stage::NeedAbsent, closed_as_need_absent()),
        (Stage::NeedSatisfied, need_satisfied()),
    ]
}

/// One command of every kind, with data that would be accepted in some stage.
pub fn one_command_of_each_kind() -> Vec<LeadCommand> {
    vec![
        register().into_command(),
        update([DetailChange::Region(Some(short("Moscow")))]).into_command(),
        qualify().into_command(),
        disqualify("spam").into_command(),
        assign(maria()).into_command(),
        start_handoff().into_command(),
        complete(task(1), place_order()).into_command(),
        submit_details(task(2)).into_command(),
        schedule_handoff_task(in_hours(4)).into_command(),
        ConvertLead {
            contact: Some(Target::CreateFromLead),
            ..convert()
        }
        .into_command(),
        deal_won(deal(1)).into_command(),
        deal_lost(deal(1)).into_command(),
        jump("qualification").into_command(),
        reopen().into_command(),
    ]
}
