//! Laws of the lead decider that hold for every history, checked on random command sequences
//! (proptest): a rejected command changes nothing and `decide` is a function of its inputs;
//! folding the emitted events gives the state the decision promised (stages, maturity,
//! system tasks, deals); and every event survives a trip through JSON in the shape its schema
//! describes.
//!
//! The generated commands are "valid-ish": drawn from the catalog most of the time, with
//! unknown users, reasons, stage keys, foreign currencies and past dates mixed in. Task and
//! deal ids usually point at whatever is open when the command runs, so sequences get far.

mod spec;

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Duration, Utc};
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, TestCaseError, TestRunner};

use leadflow_domain::details::{InquiryType, Quality};
use leadflow_domain::{event_schemas, Aggregate, LeadAggregate};
use spec::*;

// ---------------------------------------------------------------------------------------------
// What is generated

/// The acting users: the default catalog, and someone it does not know.
const USERS: [&str; 10] = [
    "ivan.manager",
    "maria.manager",
    "olga.supervisor",
    "admin",
    "sergey.supervisor",
    "anna.manager",
    "pavel.manager",
    "dmitry.manager",
    "boris.dismissed",
    "nobody.at.all",
];

fn actor_of(index: usize) -> Actor {
    let name = USERS[index % USERS.len()];
    match Catalog::default_catalog().user(user(name)) {
        Some(u) => Actor {
            user: u.id,
            role: u.role,
        },
        None => Actor {
            user: user(name),
            role: Role::Manager,
        },
    }
}

/// Which system task or deal a command names: the one open when it runs, or a derived id.
#[derive(Clone, Copy, Debug)]
enum Ref {
    Open,
    Nth(u32),
}

#[derive(Clone, Debug)]
enum Cmd {
    Plain(Box<LeadCommand>),
    CompleteHandoff(Ref, HandoffResult),
    SubmitDetails(Ref, SubmitHandoffDetails),
    DealWon(Ref),
    DealLost(Ref, Option<Comment>),
}

#[derive(Clone, Debug)]
struct Step {
    actor: usize,
    /// How far business time moves on before this command.
    minutes_later: i64,
    cmd: Cmd,
}

#[derive(Clone, Debug)]
struct Scenario {
    register_actor: usize,
    register: RegisterLead,
    steps: Vec<Step>,
}

fn text<const MAX: usize>() -> impl Strategy<Value = leadflow_domain::values::Text<MAX>> {
    "[A-Za-zА-Яа-я0-9][A-Za-zА-Яа-я0-9 ,.!?\n-]{0,24}".prop_map(|raw| {
        leadflow_domain::values::Text::parse("text", &raw).expect("generated text is valid")
    })
}

fn money() -> impl Strategy<Value = Money> {
    let currency = prop_oneof![9 => Just("RUB"), 1 => Just("USD")];
    (0..10_000_000_000i64, currency)
        .prop_map(|(minor, code)| Money::from_minor(minor, Currency::parse(code).unwrap()).unwrap())
}

fn phones() -> impl Strategy<Value = Vec<Phone>> {
    let all = ["+7 916 123-45-67", "8 (495) 123-45-67", "+1 650 253 0000"]
        .map(|raw| Phone::parse(raw).expect("valid phone"));
    proptest::sample::subsequence(all.to_vec(), 0..=2)
}

fn emails() -> impl Strategy<Value = Vec<Email>> {
    let all = ["anna.petrova@example.ru", "Sales@Romashka.RU"]
        .map(|raw| Email::parse(raw).expect("valid e-mail"));
    proptest::sample::subsequence(all.to_vec(), 0..=2)
}

fn source_code() -> impl Strategy<Value = SourceCode> {
    proptest::sample::select(vec![
        "website",
        "advertising",
        "internal",
        "referral",
        "billboard",
    ])
    .prop_map(source)
}

/// A time around the start of the run: the past and the next weeks.
fn when() -> impl Strategy<Value = DateTime<Utc>> {
    (-48i64..24 * 30).prop_map(in_hours)
}

fn details() -> impl Strategy<Value = LeadDetails> {
    (
        text::<200>(),
        proptest::option::of(money()),
        proptest::option::of(text::<200>()),
        phones(),
        emails(),
        proptest::option::weighted(0.3, text::<200>()),
        proptest::option::weighted(0.3, source_code()),
        any::<bool>(),
    )
        .prop_map(
            |(title, budget, contact_name, phones, emails, account_name, source, advertising)| {
                LeadDetails {
                    budget,
                    contact_name,
                    phones,
                    emails,
                    account_name,
                    source,
                    advertising,
                    inquiry_type: Some(InquiryType::WebRequest),
                    ..LeadDetails::titled(title)
                }
            },
        )
}

fn detail_change() -> impl Strategy<Value = DetailChange> {
    prop_oneof![
        text::<200>().prop_map(DetailChange::Title),
        proptest::option::of(money()).prop_map(DetailChange::Budget),
        proptest::option::of(text::<200>()).prop_map(DetailChange::ContactName),
        phones().prop_map(DetailChange::Phones),
        emails().prop_map(DetailChange::Emails),
        proptest::option::of(text::<200>()).prop_map(DetailChange::AccountName),
        proptest::option::of(source_code()).prop_map(DetailChange::Source),
        proptest::option::of(text::<100>()).prop_map(DetailChange::Region),
        proptest::option::of(text::<100>()).prop_map(DetailChange::SalesDirection),
        proptest::option::of(when()).prop_map(DetailChange::MeetingAt),
        proptest::option::of(when()).prop_map(DetailChange::DecisionAt),
        any::<bool>().prop_map(DetailChange::Advertising),
        Just(DetailChange::Quality(Quality::Target)),
        proptest::option::of(text::<4000>()).prop_map(DetailChange::Comment),
    ]
}

fn reference() -> impl Strategy<Value = Ref> {
    prop_oneof![8 => Just(Ref::Open), 1 => (1u32..6).prop_map(Ref::Nth)]
}

fn sale_terms_strategy() -> impl Strategy<Value = SaleTerms> {
    (money(), text::<100>()).prop_map(|(budget, sales_direction)| SaleTerms {
        budget,
        sales_direction,
    })
}

fn handoff_result() -> impl Strategy<Value = HandoffResult> {
    let comment = || proptest::option::of(text::<4000>());
    prop_oneof![
        comment().prop_map(|comment| HandoffResult::PlaceOrder { comment }),
        text::<4000>().prop_map(|comment| HandoffResult::TransferToSale { comment }),
        comment().prop_map(|comment| HandoffResult::ReturnToDistribution { comment }),
        (when(), comment())
            .prop_map(|(until, comment)| HandoffResult::Postponed { until, comment }),
        comment().prop_map(|comment| HandoffResult::NoInterest { comment }),
    ]
}

fn target<Id: Clone + std::fmt::Debug + 'static>(
    existing: Id,
) -> impl Strategy<Value = Option<Target<Id>>> {
    prop_oneof![
        2 => Just(None),
        2 => Just(Some(Target::CreateFromLead)),
        1 => Just(Some(Target::Link(existing))),
    ]
}

fn plain(command: impl Strategy<Value = LeadCommand>) -> impl Strategy<Value = Cmd> {
    command.prop_map(|c| Cmd::Plain(Box::new(c)))
}

fn update_command() -> impl Strategy<Value = LeadCommand> {
    proptest::collection::vec(detail_change(), 0..4).prop_map(|c| update(c).into_command())
}

fn qualify_command() -> impl Strategy<Value = LeadCommand> {
    (any::<bool>(), any::<bool>()).prop_map(|(contact, account)| {
        QualifyLead {
            link_contact: contact.then(existing_contact),
            link_account: account.then(existing_account),
        }
        .into_command()
    })
}

fn disqualify_command() -> impl Strategy<Value = LeadCommand> {
    let codes = vec!["no-budget", "spam", "competitor", "rude-customer"];
    let comment = proptest::option::of(text::<4000>());
    (proptest::sample::select(codes), comment).prop_map(|(code, comment)| {
        DisqualifyLead {
            reason: reason(code),
            comment,
        }
        .into_command()
    })
}

fn assign_command() -> impl Strategy<Value = LeadCommand> {
    (0..USERS.len(), any::<bool>()).prop_map(|(i, remind)| {
        AssignResponsible {
            to: user(USERS[i]),
            remind,
        }
        .into_command()
    })
}

fn distribute_command() -> impl Strategy<Value = LeadCommand> {
    let comment = || proptest::option::of(text::<4000>());
    prop_oneof![
        3 => any::<bool>().prop_map(|remind| DistributionDecision::StartHandoff { remind }),
        1 => (when(), comment()).prop_map(|(next_check_at, strategy)| {
            DistributionDecision::ContinueNurturing { next_check_at, strategy }
        }),
        1 => comment().prop_map(|comment| DistributionDecision::NeedAbsent { comment }),
    ]
    .prop_map(IntoCommand::into_command)
}

fn submit_details_command() -> impl Strategy<Value = Cmd> {
    let need_type = proptest::option::of(text::<100>());
    (
        reference(),
        sale_terms_strategy(),
        when(),
        when(),
        need_type,
    )
        .prop_map(|(r, terms, meeting_at, decision_at, need_type)| {
            let submit = SubmitHandoffDetails {
                task_id: task(1),
                budget: terms.budget,
                sales_direction: terms.sales_direction,
                meeting_at,
                decision_at,
                need_type,
                comment: None,
            };
            Cmd::SubmitDetails(r, submit)
        })
}

fn convert_command() -> impl Strategy<Value = LeadCommand> {
    let deal = prop_oneof![
        Just(None),
        Just(Some(None)),
        sale_terms_strategy().prop_map(|t| Some(Some(t))),
    ];
    (target(existing_contact()), target(existing_account()), deal).prop_map(
        |(contact, account, deal)| {
            ConvertLead {
                contact,
                account,
                deal,
            }
            .into_command()
        },
    )
}

fn jump_command() -> impl Strategy<Value = LeadCommand> {
    let keys = vec![
        "qualification",
        "distribution",
        "handoff",
        "awaiting-sale",
        "disqualified",
        "need-absent",
        "need-satisfied",
        "routing",
        "waiting-order",
        "nowhere",
    ];
    let sale = proptest::option::weighted(0.5, sale_terms_strategy());
    (proptest::sample::select(keys), text::<4000>(), sale).prop_map(|(key, reason, sale)| {
        JumpToStage {
            stage: stage_key(key),
            reason,
            sale,
        }
        .into_command()
    })
}

fn reopen_command() -> impl Strategy<Value = LeadCommand> {
    proptest::option::of(text::<4000>()).prop_map(|comment| ReopenLead { comment }.into_command())
}

fn register_again_command() -> impl Strategy<Value = LeadCommand> {
    details().prop_map(|details| {
        RegisterLead {
            details,
            ..register()
        }
        .into_command()
    })
}

/// Every command, weighted towards the ones that move a lead along.
fn command() -> impl Strategy<Value = Cmd> {
    let deal_lost = (reference(), proptest::option::of(text::<4000>()))
        .prop_map(|(r, reason)| Cmd::DealLost(r, reason));
    let complete_handoff =
        (reference(), handoff_result()).prop_map(|(r, result)| Cmd::CompleteHandoff(r, result));
    prop_oneof![
        2 => plain(update_command()),
        4 => plain(qualify_command()),
        1 => plain(disqualify_command()),
        2 => plain(assign_command()),
        5 => plain(distribute_command()),
        5 => complete_handoff,
        3 => submit_details_command(),
        1 => plain(when().prop_map(|due_at| schedule_handoff_task(due_at).into_command())),
        2 => plain(convert_command()),
        2 => reference().prop_map(Cmd::DealWon),
        2 => deal_lost,
        2 => plain(jump_command()),
        2 => plain(reopen_command()),
        1 => plain(register_again_command()),
    ]
}

fn scenario(max_steps: usize) -> impl Strategy<Value = Scenario> {
    let responsible = prop_oneof![
        3 => Just(ResponsibleChoice::Creator),
        1 => (0..USERS.len()).prop_map(|i| ResponsibleChoice::User(user(USERS[i]))),
        2 => Just(ResponsibleChoice::Unassigned),
    ];
    let funnel_choice = prop_oneof![
        4 => Just(None),
        1 => Just(Some(funnel("default"))),
        2 => Just(Some(funnel("partners"))),
        1 => Just(Some(funnel("wholesale"))),
    ];
    let step =
        (0..USERS.len(), 0i64..600, command()).prop_map(|(actor, minutes_later, cmd)| Step {
            actor,
            minutes_later,
            cmd,
        });
    (
        prop_oneof![4 => Just(0usize), 1 => 0..USERS.len()],
        responsible,
        funnel_choice,
        details(),
        proptest::collection::vec(step, 0..max_steps),
    )
        .prop_map(
            |(register_actor, responsible, funnel, details, steps)| Scenario {
                register_actor,
                register: RegisterLead {
                    lead_id: lead_id(),
                    funnel,
                    responsible,
                    details,
                },
                steps,
            },
        )
}

// ---------------------------------------------------------------------------------------------
// Running a scenario

/// One decision of a run, with everything it was made from.
struct Decided {
    before: Option<Lead>,
    command: LeadCommand,
    actor: Actor,
    now: DateTime<Utc>,
    result: Result<Vec<LeadEvent>, Rejection>,
}

fn resolve(cmd: &Cmd, state: Option<&Lead>) -> LeadCommand {
    let task_ref = |r: Ref, kind| match r {
        Ref::Open => state
            .and_then(|l| l.open_task(kind))
            .map_or(task(1), |t| t.id),
        Ref::Nth(n) => task(n),
    };
    let deal_ref = |r: Ref| match r {
        Ref::Open => state
            .and_then(|l| l.deal.as_ref())
            .map_or(deal(1), |d| d.id),
        Ref::Nth(n) => deal(n),
    };
    match cmd.clone() {
        Cmd::Plain(c) => *c,
        Cmd::CompleteHandoff(r, result) => {
            complete(task_ref(r, SystemTaskKind::Handoff), result).into_command()
        }
        Cmd::SubmitDetails(r, submit) => SubmitHandoffDetails {
            task_id: task_ref(r, SystemTaskKind::HandoffDetails),
            ..submit
        }
        .into_command(),
        Cmd::DealWon(r) => deal_won(deal_ref(r)).into_command(),
        Cmd::DealLost(r, reason) => RecordDealLost {
            deal_id: deal_ref(r),
            reason,
        }
        .into_command(),
    }
}

/// Decides the scenario's commands in turn, folding what each accepted command emitted.
fn run(scenario: &Scenario) -> (Vec<Decided>, Option<Lead>) {
    let catalog = Catalog::default_catalog();
    let mut state: Option<Lead> = None;
    let mut at = now();
    let mut decided = Vec::with_capacity(scenario.steps.len() + 1);
    let first = Step {
        actor: scenario.register_actor,
        minutes_later: 0,
        cmd: Cmd::Plain(Box::new(scenario.register.clone().into_command())),
    };
    for step in std::iter::once(&first).chain(&scenario.steps) {
        at += Duration::minutes(step.minutes_later);
        let actor = actor_of(step.actor);
        let command = resolve(&step.cmd, state.as_ref());
        let ctx = Context {
            now: at,
            actor,
            catalog: &catalog,
        };
        let result = decide(state.as_ref(), &command, &ctx);
        let before = state.clone();
        if let Ok(events) = &result {
            state = events.iter().fold(state, evolve);
        }
        decided.push(Decided {
            before,
            command,
            actor,
            now: at,
            result,
        });
    }
    (decided, state)
}

// ---------------------------------------------------------------------------------------------
// (a) Rejections change nothing; decide is a function

fn check_decision_is_a_function(d: &Decided, catalog: &Catalog) -> Result<(), TestCaseError> {
    let ctx = Context {
        now: d.now,
        actor: d.actor,
        catalog,
    };
    // The same inputs, rebuilt from scratch, give the same answer.
    let cloned_state = d.before.clone();
    let cloned_command = d.command.clone();
    prop_assert_eq!(
        &decide(cloned_state.as_ref(), &cloned_command, &ctx),
        &d.result
    );
    if let Some(lead) = &d.before {
        let name = d.command.name();
        // A manager's command on a lead outside their scope learns nothing of it, its stage
        // included (SPEC 3.7).
        if !lead.in_scope_of(&d.actor) && name != CommandName::RegisterLead {
            prop_assert_eq!(&d.result, &Err(Rejection::OutOfScope { command: name }));
            return Ok(());
        }
        if !allowed_in(name, lead.stage) && name != CommandName::RegisterLead {
            prop_assert_eq!(
                &d.result,
                &Err(Rejection::NotAllowedInStage {
                    command: name,
                    stage: lead.stage,
                })
            );
        }
        if d.result.is_ok() {
            prop_assert!(
                allowed_in(name, lead.stage),
                "{name} accepted in {}",
                lead.stage
            );
        }
    }
    if let Err(rejection) = &d.result {
        // House style: messages are lowercase sentences without a trailing period.
        let message = rejection.to_string();
        prop_assert!(
            message.starts_with(|c: char| c.is_lowercase()) && !message.ends_with('.'),
            "{message:?}"
        );
        prop_assert!(!rejection.rule().is_empty());
    }
    Ok(())
}

proptest! {
    #![proptest_config(Config { cases: 256, ..Config::default() })]

    #[test]
    fn a_rejected_command_emits_nothing_and_decide_depends_only_on_its_inputs(
        scenario in scenario(30)
    ) {
        let catalog = Catalog::default_catalog();
        let (decided, last) = run(&scenario);
        for d in &decided {
            check_decision_is_a_function(d, &catalog)?;
        }
        // A rejected command leaves the lead as it was: the next decision starts from it.
        for pair in decided.windows(2) {
            let after_first = match &pair[0].result {
                Ok(events) => events.iter().fold(pair[0].before.clone(), evolve),
                Err(_) => pair[0].before.clone(),
            };
            prop_assert_eq!(&after_first, &pair[1].before);
        }
        // Rebuilding from the whole log gives the state built incrementally.
        let log: Vec<LeadEvent> = decided
            .iter()
            .filter_map(|d| d.result.as_ref().ok())
            .flatten()
            .cloned()
            .collect();
        prop_assert_eq!(fold(&log), last);
    }
}

// ---------------------------------------------------------------------------------------------
// (b) Folding the events gives the state the decision promised

/// What the events say independently of `Lead`: the open tasks and the ids handed out.
#[derive(Default)]
struct Model {
    open: BTreeMap<TaskId, SystemTaskKind>,
    tasks_opened: u32,
    deals_opened: u32,
    jumps: u32,
}

fn check_accepted(
    before: Option<&Lead>,
    command: &LeadCommand,
    events: &[LeadEvent],
    after: &Lead,
    model: &mut Model,
) -> Result<(), TestCaseError> {
    let Some(before) = before else {
        prop_assert!(
            matches!(events, [LeadEvent::LeadRegistered(e)] if e.stage == Stage::Qualification)
        );
        prop_assert!(after.open_tasks.is_empty() && after.deal.is_none());
        return Ok(());
    };
    let id = before.id;
    if events.is_empty() {
        prop_assert!(
            matches!(
                command,
                LeadCommand::UpdateDetails(_) | LeadCommand::AssignResponsible(_)
            ),
            "only an update or a reassignment may change nothing, not {command:?}"
        );
    }

    // Stages: a chain from the stage before, at most one move per command, ending where the
    // folded state is. Closed stages are reached only through their own transitions.
    let mut stage = before.stage;
    let mut maturity = before.maturity;
    let mut moves = 0;
    for (i, event) in events.iter().enumerate() {
        match event {
            LeadEvent::LeadRegistered(_) => prop_assert!(false, "registered twice"),
            LeadEvent::LeadStageChanged(e) => {
                prop_assert_eq!(e.from, stage);
                prop_assert_ne!(e.to, e.from);
                let via_ok = match e.to {
                    Stage::Disqualified => e.via == Transition::Disqualified,
                    Stage::NeedAbsent => e.via == Transition::NeedAbsent,
                    Stage::NeedSatisfied => e.via == Transition::DealWon,
                    Stage::Qualification => {
                        matches!(e.via, Transition::Reopened | Transition::Jump { .. })
                    }
                    _ => true,
                };
                prop_assert!(via_ok, "{:?} reached via {:?}", e.to, e.via);
                if matches!(e.via, Transition::Jump { .. }) {
                    model.jumps += 1;
                }
                stage = e.to;
                moves += 1;
            }
            LeadEvent::MaturityChanged(e) => {
                prop_assert_eq!(e.from, maturity);
                prop_assert_ne!(e.to, e.from);
                maturity = e.to;
            }
            LeadEvent::SystemTaskOpened(e) => {
                model.tasks_opened += 1;
                prop_assert_eq!(e.task_id, TaskId::for_lead(id, model.tasks_opened));
                prop_assert!(model.open.insert(e.task_id, e.kind).is_none());
                let expected_assignee = match e.kind {
                    SystemTaskKind::Distribution => None,
                    SystemTaskKind::Handoff | SystemTaskKind::HandoffDetails => after.responsible,
                };
                prop_assert_eq!(e.assignee, expected_assignee);
            }
            LeadEvent::SystemTaskCompleted(SystemTaskCompleted { task_id, kind, .. }) => {
                prop_assert_eq!(model.open.remove(task_id), Some(*kind));
            }
            LeadEvent::SystemTaskCancelled(e) => {
                prop_assert_eq!(model.open.remove(&e.task_id), Some(e.kind));
                prop_assert_eq!(e.left_stage, stage);
                // A task is cancelled only because the lead leaves its stage right after.
                prop_assert!(
                    events[i..]
                        .iter()
                        .any(|later| matches!(later, LeadEvent::LeadStageChanged(_))),
                    "a task cancelled without a stage change"
                );
            }
            LeadEvent::DealOpened(e) => {
                model.deals_opened += 1;
                prop_assert_eq!(e.deal_id, DealId::for_lead(id, model.deals_opened));
            }
            LeadEvent::ResponsibleAssigned(e) => {
                prop_assert_eq!(e.from, before.responsible);
                prop_assert_ne!(Some(e.to), e.from);
            }
            _ => {}
        }
    }
    prop_assert!(moves <= 1, "{moves} stage changes for one command");
    prop_assert_eq!(after.stage, stage);
    prop_assert_eq!(after.maturity, maturity);
    prop_assert_eq!(after.jumps, model.jumps);
    prop_assert_eq!(after.tasks_opened, model.tasks_opened);
    prop_assert_eq!(after.deals_opened, model.deals_opened);
    let open: BTreeMap<TaskId, SystemTaskKind> =
        after.open_tasks.iter().map(|t| (t.id, t.kind)).collect();
    prop_assert_eq!(&open, &model.open);
    check_state(after)
}

/// What must hold of every lead between commands.
fn check_state(lead: &Lead) -> Result<(), TestCaseError> {
    let kinds: Vec<SystemTaskKind> = lead.open_tasks.iter().map(|t| t.kind).collect();
    let distinct: BTreeSet<String> = kinds.iter().map(|k| format!("{k:?}")).collect();
    prop_assert_eq!(
        distinct.len(),
        kinds.len(),
        "two open tasks of a kind: {:?}",
        kinds
    );
    let has = |kind| kinds.contains(&kind);
    prop_assert_eq!(
        lead.stage == Stage::Distribution,
        has(SystemTaskKind::Distribution),
        "Distribution and its activity go together"
    );
    if has(SystemTaskKind::Handoff) || has(SystemTaskKind::HandoffDetails) {
        prop_assert_eq!(lead.stage, Stage::Handoff);
    }
    prop_assert!(!(has(SystemTaskKind::Handoff) && has(SystemTaskKind::HandoffDetails)));
    if lead.stage.is_closed() || matches!(lead.stage, Stage::Qualification | Stage::AwaitingSale) {
        prop_assert!(
            kinds.is_empty(),
            "{} with open tasks {:?}",
            lead.stage,
            kinds
        );
    }
    match lead.stage {
        Stage::AwaitingSale => {
            prop_assert!(lead.deal.is_some(), "AwaitingSale without a deal");
            prop_assert_eq!(lead.maturity, Maturity::ReadyForSale);
        }
        Stage::NeedSatisfied => {
            prop_assert!(lead.deal.is_some(), "a won deal is kept");
            prop_assert_eq!(lead.maturity, Maturity::Satisfied);
        }
        stage if stage.is_working() => prop_assert!(lead.deal.is_none(), "{stage} with a deal"),
        _ => {}
    }
    if lead.stage == Stage::Handoff {
        prop_assert!(lead.responsible.is_some(), "Handoff without a responsible");
    }
    prop_assert_eq!(
        lead.stage == Stage::Disqualified,
        lead.disqualification.is_some(),
        "disqualification recorded iff disqualified: {:?}",
        lead.disqualification
    );
    if lead.nurturing.is_some() {
        prop_assert_eq!(lead.stage, Stage::Distribution);
    }
    Ok(())
}

proptest! {
    #![proptest_config(Config { cases: 512, ..Config::default() })]

    #[test]
    fn folding_the_emitted_events_gives_the_state_the_decision_promised(
        scenario in scenario(40)
    ) {
        let (decided, _) = run(&scenario);
        let mut model = Model::default();
        let catalog = Catalog::default_catalog();
        for d in &decided {
            if let Ok(events) = &d.result {
                let after = events
                    .iter()
                    .fold(d.before.clone(), evolve)
                    .expect("accepted events describe a lead");
                // Through the Aggregate trait, the same decision and the same fold.
                let ctx = Context { now: d.now, actor: d.actor, catalog: &catalog };
                prop_assert_eq!(
                    &<LeadAggregate as Aggregate>::decide(d.before.as_ref(), &d.command, &ctx),
                    &d.result
                );
                if d.before.is_none() {
                    prop_assert_eq!(LeadAggregate::fold(events), Some(after.clone()));
                }
                check_accepted(d.before.as_ref(), &d.command, events, &after, &mut model)?;
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// (c) Events survive JSON in the shape of their schemas

macro_rules! round_trip_fn {
    ($($name:ident = $version:literal,)*) => {
        /// Serialises the payload through its own type, reads it back, and returns the JSON.
        fn round_trip(event: &LeadEvent) -> (LeadEvent, serde_json::Value) {
            match event {
                $(LeadEvent::$name(payload) => {
                    let json = serde_json::to_string(payload).expect("events serialise");
                    let back: $name = serde_json::from_str(&json).unwrap_or_else(|e| {
                        panic!("{} does not read back: {e}\n{json}", stringify!($name))
                    });
                    (LeadEvent::$name(back), serde_json::from_str(&json).unwrap())
                })*
            }
        }
    };
}

leadflow_domain::for_each_lead_event!(round_trip_fn);

/// Each event type's top-level properties and required fields, from its schema.
fn schema_fields() -> BTreeMap<&'static str, (BTreeSet<String>, BTreeSet<String>)> {
    event_schemas()
        .into_iter()
        .map(|(name, _, schema)| {
            let schema = serde_json::to_value(&schema).unwrap();
            let properties = schema["properties"]
                .as_object()
                .map(|p| p.keys().cloned().collect())
                .unwrap_or_default();
            let required = schema["required"]
                .as_array()
                .map(|r| r.iter().map(|v| v.as_str().unwrap().to_owned()).collect())
                .unwrap_or_default();
            (name, (properties, required))
        })
        .collect()
}

fn check_round_trip(
    event: &LeadEvent,
    fields: &BTreeMap<&'static str, (BTreeSet<String>, BTreeSet<String>)>,
) -> Result<(), TestCaseError> {
    let (back, json) = round_trip(event);
    prop_assert_eq!(&back, event);
    let (properties, required) = &fields[event.event_type()];
    let keys: BTreeSet<String> = json
        .as_object()
        .expect("payloads are JSON objects")
        .keys()
        .cloned()
        .collect();
    prop_assert!(
        keys.is_subset(properties),
        "{} writes fields its schema does not list: {:?}",
        event.event_type(),
        keys.difference(properties).collect::<Vec<_>>()
    );
    prop_assert!(
        required.is_subset(&keys),
        "{} leaves out required fields: {:?}",
        event.event_type(),
        required.difference(&keys).collect::<Vec<_>>()
    );
    Ok(())
}

proptest! {
    #![proptest_config(Config { cases: 256, ..Config::default() })]

    #[test]
    fn every_emitted_event_round_trips_through_json_as_its_schema_describes(
        scenario in scenario(30)
    ) {
        let fields = schema_fields();
        let (decided, _) = run(&scenario);
        for events in decided.iter().filter_map(|d| d.result.as_ref().ok()) {
            for event in events {
                check_round_trip(event, &fields)?;
            }
        }
    }
}

/// Hand-written histories that between them emit every event type.
fn histories_with_every_event_type() -> Vec<Vec<LeadEvent>> {
    let with_details = continue_from(registered())
        .run(update([DetailChange::Region(Some(short("Kazan")))]))
        .run(ConvertLead {
            contact: Some(Target::CreateFromLead),
            ..convert()
        })
        .events();
    let through_distribution = continue_from(in_distribution_with_responsible())
        .run(start_handoff())
        .events();
    let lost_and_won = continue_from(awaiting_sale_with_terms())
        .run(deal_lost(deal(1)))
        .run(need_absent())
        .by("olga.supervisor")
        .run(reopen())
        .events();
    let cancelled = continue_from(in_handoff()).run(disqualify("spam")).events();
    vec![
        with_details,
        through_distribution,
        lost_and_won,
        cancelled,
        need_satisfied(),
    ]
}

#[test]
fn every_event_type_round_trips_through_json() {
    let fields = schema_fields();
    let mut seen = BTreeSet::new();
    for history in histories_with_every_event_type() {
        for event in &history {
            seen.insert(event.event_type());
            check_round_trip(event, &fields).unwrap();
        }
    }
    let all: BTreeSet<&str> = event_schemas().iter().map(|(name, _, _)| *name).collect();
    assert_eq!(seen, all, "the histories should emit every event type");
}

/// Guards the generators: random runs must get everywhere, or the laws above prove little.
#[test]
fn generated_runs_reach_every_stage_and_every_event_type() {
    let mut runner = TestRunner::deterministic();
    let strategy = scenario(40);
    let mut stages = BTreeSet::new();
    let mut event_types = BTreeSet::new();
    for _ in 0..400 {
        let scenario = strategy.new_tree(&mut runner).unwrap().current();
        let (decided, _) = run(&scenario);
        for d in &decided {
            if let Some(lead) = &d.before {
                stages.insert(lead.stage);
            }
            for event in d.result.iter().flatten() {
                event_types.insert(event.event_type());
            }
        }
    }
    assert_eq!(stages, Stage::ALL.into_iter().collect::<BTreeSet<_>>());
    let all: BTreeSet<&str> = event_schemas().iter().map(|(name, _, _)| *name).collect();
    assert_eq!(event_types, all);
}
