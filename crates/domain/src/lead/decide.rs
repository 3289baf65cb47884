//! `decide`: the stage machine of SPEC 3.3. It checks a command against the lead's state and
//! the catalog and returns the events that record it, or the rule it breaks. It reads no clock
//! and mints no random id: `now` and the actor come in the [`Context`], derived ids come from
//! the lead id.
//!
//! Events are built through a [`Decision`] that folds each one into a scratch copy of the state
//! as it is emitted, so later steps of one command (cancel the open tasks, then enter the next
//! stage and open its task) see the effect of earlier ones.

use chrono::{DateTime, Duration, Utc};

use crate::catalog::{Catalog, ConvertPolicy, Role};
use crate::commands::*;
use crate::context::Context;
use crate::details::{DetailChange, LeadDetails};
use crate::events::*;
use crate::ids::{AccountId, ContactId, DealId, SubjectId, TaskId, UserId};
use crate::lead::{apply, Lead};
use crate::rejection::Rejection;
use crate::stage::{Maturity, Stage};
use crate::values::Money;

/// How long the stage machine gives a system task by default.
pub const SYSTEM_TASK_DUE: Duration = Duration::days(1);

pub const HANDOFF_TASK_TEXT: &str =
    "Contact the customer: confirm the need exists and is current, budget, parameters, role in the decision";
pub const HANDOFF_DETAILS_TASK_TEXT: &str =
    "Enter the handoff details: budget (base currency), sales direction, meeting time, decision date";
pub const DISTRIBUTION_TASK_TEXT: &str = "Lead management: Distribution";

/// Whether `command` may run on a lead in `stage` at all (the stage rule only; other rules
/// depend on the data). The lead card's "what to do next" is this table.
pub fn allowed_in(command: CommandName, stage: Stage) -> bool {
    use CommandName::*;
    match command {
        RegisterLead => false,
        UpdateLeadDetails | AssignResponsible => stage.is_working() || stage == Stage::AwaitingSale,
        QualifyLead => stage == Stage::Qualification,
        DisqualifyLead | ConvertLead | JumpToStage => stage.is_working(),
        Distribute => stage == Stage::Distribution,
        CompleteHandoffTask | SubmitHandoffDetails | ScheduleHandoffTask => stage == Stage::Handoff,
        RecordDealWon | RecordDealLost => stage == Stage::AwaitingSale,
        ReopenLead => stage.is_closed(),
    }
}

/// Decides `command` on `state` (`None`: no lead registered under this id yet).
pub fn decide(
    state: Option<&Lead>,
    command: &LeadCommand,
    ctx: &Context,
) -> Result<Vec<LeadEvent>, Rejection> {
    let lead = match (state, command) {
        (None, LeadCommand::Register(c)) => return register(c, ctx),
        (Some(lead), LeadCommand::Register(_)) => {
            return Err(Rejection::AlreadyRegistered { lead: lead.id })
        }
        (None, other) => {
            return Err(Rejection::NotRegistered {
                command: other.name(),
            })
        }
        (Some(lead), _) => lead,
    };
    if !lead.in_scope_of(&ctx.actor) {
        return Err(Rejection::OutOfScope {
            command: command.name(),
        });
    }
    if !allowed_in(command.name(), lead.stage) {
        return Err(Rejection::NotAllowedInStage {
            command: command.name(),
            stage: lead.stage,
        });
    }
    let mut d = Decision {
        lead: lead.clone(),
        events: Vec::new(),
        ctx,
    };
    match command {
        LeadCommand::Register(_) => unreachable!("handled above"),
        LeadCommand::UpdateDetails(c) => d.update(c)?,
        LeadCommand::Qualify(c) => d.qualify(c)?,
        LeadCommand::Disqualify(c) => d.disqualify(c)?,
        LeadCommand::AssignResponsible(c) => d.assign(c)?,
        LeadCommand::Distribute(c) => d.distribute(c)?,
        LeadCommand::CompleteHandoffTask(c) => d.complete_handoff_task(c)?,
        LeadCommand::SubmitHandoffDetails(c) => d.submit_handoff_details(c)?,
        LeadCommand::ScheduleHandoffTask(c) => d.schedule_handoff_task(c)?,
        LeadCommand::Convert(c) => d.convert(c)?,
        LeadCommand::RecordDealWon(c) => d.deal_won(c)?,
        LeadCommand::RecordDealLost(c) => d.deal_lost(c)?,
        LeadCommand::JumpToStage(c) => d.jump(c)?,
        LeadCommand::Reopen(c) => d.reopen(c)?,
    }
    Ok(d.events)
}

fn register(c: &RegisterLead, ctx: &Context) -> Result<Vec<LeadEvent>, Rejection> {
    let funnel_id = c
        .funnel
        .clone()
        .unwrap_or_else(|| ctx.catalog.default_funnel.clone());
    let funnel = ctx
        .catalog
        .funnel(&funnel_id)
        .ok_or(Rejection::UnknownFunnel {
            funnel: funnel_id.clone(),
        })?;
    let responsible = match c.responsible {
        ResponsibleChoice::Creator => Some(ctx.actor.user),
        ResponsibleChoice::User(u) => Some(u),
        ResponsibleChoice::Unassigned => None,
    };
    if let Some(user) = responsible {
        check_assignable(ctx.catalog, user)?;
    }
    let mut details = c.details.clone();
    check_details(ctx.catalog, &details)?;
    if details.taken_by.is_none() {
        details.taken_by = Some(ctx.actor.user);
        details.taken_at = Some(ctx.now);
    }
    if let Some(source) = details.source.as_ref().and_then(|s| ctx.catalog.source(s)) {
        details.advertising &= source.counted_in_statistics;
    }
    Ok(vec![LeadRegistered {
        lead_id: c.lead_id,
        subject: SubjectId::for_lead(c.lead_id),
        funnel: funnel_id,
        stage: funnel.first_stage(),
        responsible,
        created_by: ctx.actor.user,
        details: Box::new(details),
    }
    .into()])
}

fn check_assignable(catalog: &Catalog, user: UserId) -> Result<(), Rejection> {
    match catalog.user(user) {
        None => Err(Rejection::UnknownUser { user }),
        Some(u) if !u.active => Err(Rejection::InactiveUser { user }),
        Some(_) => Ok(()),
    }
}

fn check_currency(catalog: &Catalog, money: &Money) -> Result<(), Rejection> {
    if money.currency() == catalog.base_currency() {
        Ok(())
    } else {
        Err(Rejection::NotBaseCurrency {
            expected: catalog.base_currency().clone(),
            given: money.currency().clone(),
        })
    }
}

fn check_change(catalog: &Catalog, change: &DetailChange) -> Result<(), Rejection> {
    let unknown = |kind, code: &dyn std::fmt::Display| Rejection::UnknownCatalogCode {
        kind,
        code: code.to_string(),
    };
    match change {
        DetailChange::Budget(Some(m)) => check_currency(catalog, m),
        DetailChange::Source(Some(s)) if catalog.source(s).is_none() => Err(unknown("source", s)),
        DetailChange::Channel(Some(c)) if catalog.channel(c).is_none() => {
            Err(unknown("channel", c))
        }
        DetailChange::Department(Some(d)) if !catalog.departments.iter().any(|x| &x.id == d) => {
            Err(unknown("department", d))
        }
        _ => Ok(()),
    }
}

fn check_details(catalog: &Catalog, d: &LeadDetails) -> Result<(), Rejection> {
    for change in [
        DetailChange::Budget(d.budget.clone()),
        DetailChange::Source(d.source.clone()),
        DetailChange::Channel(d.channel.clone()),
        DetailChange::Department(d.department.clone()),
    ] {
        check_change(catalog, &change)?;
    }
    if let Some(user) = d.taken_by {
        catalog.user(user).ok_or(Rejection::UnknownUser { user })?;
    }
    Ok(())
}

struct Decision<'a> {
    lead: Lead,
    events: Vec<LeadEvent>,
    ctx: &'a Context<'a>,
}

impl Decision<'_> {
    fn emit(&mut self, event: impl Into<LeadEvent>) {
        let event = event.into();
        apply(&mut self.lead, &event);
        self.events.push(event);
    }

    fn now(&self) -> DateTime<Utc> {
        self.ctx.now
    }

    fn stage(&self) -> Stage {
        self.lead.stage
    }

    /// Leaves the current stage (cancelling its open system tasks) and enters `to` (opening the
    /// task that stage starts with).
    fn move_to(&mut self, to: Stage, via: Transition) {
        let from = self.stage();
        for task in self.lead.open_tasks.clone() {
            self.emit(SystemTaskCancelled {
                task_id: task.id,
                kind: task.kind,
                left_stage: from,
            });
        }
        self.emit(LeadStageChanged { from, to, via });
        match to {
            Stage::Handoff => {
                let due = self.now() + SYSTEM_TASK_DUE;
                self.open_task(SystemTaskKind::Handoff, self.lead.responsible, due);
            }
            Stage::Distribution => {
                let due = self.now() + SYSTEM_TASK_DUE;
                self.open_task(SystemTaskKind::Distribution, None, due);
            }
            _ => {}
        }
    }

    fn set_maturity(&mut self, to: Maturity) {
        if self.lead.maturity != to {
            self.emit(MaturityChanged {
                from: self.lead.maturity,
                to,
            });
        }
    }

    fn open_task(&mut self, kind: SystemTaskKind, assignee: Option<UserId>, due_at: DateTime<Utc>) {
        let task_id = TaskId::for_lead(self.lead.id, self.lead.tasks_opened + 1);
        let text = match kind {
            SystemTaskKind::Handoff => HANDOFF_TASK_TEXT,
            SystemTaskKind::HandoffDetails => HANDOFF_DETAILS_TASK_TEXT,
            SystemTaskKind::Distribution => DISTRIBUTION_TASK_TEXT,
        };
        self.emit(SystemTaskOpened {
            task_id,
            kind,
            assignee,
            due_at,
            text: text.to_owned(),
        });
    }

    fn complete_open(&mut self, kind: SystemTaskKind, result: Option<HandoffResult>) {
        if let Some(task) = self.lead.open_task(kind) {
            let task_id = task.id;
            self.emit(SystemTaskCompleted {
                task_id,
                kind,
                result,
            });
        }
    }

    fn next_deal_id(&self) -> DealId {
        DealId::for_lead(self.lead.id, self.lead.deals_opened + 1)
    }

    /// Enters AwaitingSale: maturity ReadyForSale, the stage change, and the deal.
    fn enter_awaiting_sale(&mut self, via: Transition, kind: SaleKind, terms: Option<SaleTerms>) {
        let deal_id = self.next_deal_id();
        self.set_maturity(Maturity::ReadyForSale);
        self.move_to(Stage::AwaitingSale, via);
        let (budget, sales_direction) = match terms {
            Some(t) => (Some(t.budget), Some(t.sales_direction)),
            None => (
                self.lead.details.budget.clone(),
                self.lead.handoff.sales_direction.clone(),
            ),
        };
        self.emit(DealOpened {
            deal_id,
            kind,
            budget,
            sales_direction,
        });
    }

    /// The terms a deal opens with: the command's, else the lead's own.
    fn sale_terms(
        &self,
        given: Option<&SaleTerms>,
        command: CommandName,
    ) -> Result<SaleTerms, Rejection> {
        let terms = match given {
            Some(t) => t.clone(),
            None => {
                let (budget, sales_direction) =
                    self.lead.sale_terms().ok_or(Rejection::SaleTermsRequired {
                        command,
                        stage: self.stage(),
                    })?;
                SaleTerms {
                    budget,
                    sales_direction,
                }
            }
        };
        check_currency(self.ctx.catalog, &terms.budget)?;
        Ok(terms)
    }

    fn require_future(&self, at: DateTime<Utc>) -> Result<(), Rejection> {
        if at < self.now() {
            Err(Rejection::TimeInPast)
        } else {
            Ok(())
        }
    }

    fn update(&mut self, c: &UpdateLeadDetails) -> Result<(), Rejection> {
        let mut seen = Vec::with_capacity(c.changes.len());
        let mut effective = Vec::new();
        for change in &c.changes {
            if seen.contains(&change.field()) {
                return Err(Rejection::DuplicateChange {
                    field: change.field(),
                });
            }
            seen.push(change.field());
            check_change(self.ctx.catalog, change)?;
            let (mut details, mut handoff) = (self.lead.details.clone(), self.lead.handoff.clone());
            change.apply(&mut details, &mut handoff);
            if details != self.lead.details || handoff != self.lead.handoff {
                effective.push(change.clone());
            }
        }
        // A source "not counted in statistics" makes the lead NonAdvertising (SPEC 3.5), on
        // update as on registration, unless the command sets the flag itself.
        let uncounted_source = c.changes.iter().any(|ch| match ch {
            DetailChange::Source(Some(s)) => self
                .ctx
                .catalog
                .source(s)
                .is_some_and(|s| !s.counted_in_statistics),
            _ => false,
        });
        if uncounted_source && self.lead.details.advertising && !seen.contains(&"advertising") {
            effective.push(DetailChange::Advertising(false));
        }
        if !effective.is_empty() {
            self.emit(LeadDetailsUpdated { changes: effective });
        }
        Ok(())
    }

    fn qualify(&mut self, c: &QualifyLead) -> Result<(), Rejection> {
        let lead = &self.lead;
        let reachable = lead.details.is_reachable()
            || c.link_contact.is_some()
            || c.link_account.is_some()
            || lead.contact.is_some()
            || lead.account.is_some();
        if !reachable {
            return Err(Rejection::QualificationNeedsContactData { stage: lead.stage });
        }
        let contact = match (c.link_contact, lead.contact, &lead.details.contact_name) {
            (Some(id), _, _) => Some(ContactLink {
                contact_id: id,
                created: false,
                name: None,
            }),
            (None, None, Some(name)) => Some(ContactLink {
                contact_id: ContactId::for_lead(lead.id),
                created: true,
                name: Some(name.clone()),
            }),
            _ => None,
        };
        let account = match (c.link_account, lead.account, &lead.details.account_name) {
            (Some(id), _, _) => Some(AccountLink {
                account_id: id,
                created: false,
                name: None,
            }),
            (None, None, Some(name)) => Some(AccountLink {
                account_id: AccountId::for_lead(lead.id),
                created: true,
                name: Some(name.clone()),
            }),
            _ => None,
        };
        let next = if lead.responsible.is_some() {
            Stage::Handoff
        } else {
            Stage::Distribution
        };
        self.emit(LeadQualified { contact, account });
        self.move_to(next, Transition::Qualified);
        Ok(())
    }

    fn disqualify(&mut self, c: &DisqualifyLead) -> Result<(), Rejection> {
        self.ctx
            .catalog
            .reason(&c.reason)
            .ok_or(Rejection::UnknownReason {
                reason: c.reason.clone(),
            })?;
        self.emit(LeadDisqualified {
            reason: c.reason.clone(),
            comment: c.comment.clone(),
        });
        self.move_to(Stage::Disqualified, Transition::Disqualified);
        Ok(())
    }

    fn assign(&mut self, c: &AssignResponsible) -> Result<(), Rejection> {
        check_assignable(self.ctx.catalog, c.to)?;
        if self.lead.responsible != Some(c.to) {
            self.emit(ResponsibleAssigned {
                from: self.lead.responsible,
                to: c.to,
                remind: c.remind,
            });
        }
        Ok(())
    }

    fn distribute(&mut self, c: &DistributionDecision) -> Result<(), Rejection> {
        match c {
            DistributionDecision::StartHandoff { .. } => {
                if self.lead.responsible.is_none() {
                    return Err(Rejection::ResponsibleRequired {
                        stage: self.stage(),
                    });
                }
                self.complete_open(SystemTaskKind::Distribution, None);
                self.emit(LeadDistributed {
                    decision: c.clone(),
                });
                self.move_to(Stage::Handoff, Transition::StartHandoff);
            }
            DistributionDecision::ContinueNurturing { next_check_at, .. } => {
                self.require_future(*next_check_at)?;
                self.complete_open(SystemTaskKind::Distribution, None);
                self.emit(LeadDistributed {
                    decision: c.clone(),
                });
                self.open_task(SystemTaskKind::Distribution, None, *next_check_at);
            }
            DistributionDecision::NeedAbsent { .. } => {
                self.complete_open(SystemTaskKind::Distribution, None);
                self.emit(LeadDistributed {
                    decision: c.clone(),
                });
                self.move_to(Stage::NeedAbsent, Transition::NeedAbsent);
            }
        }
        Ok(())
    }

    /// The open task of `kind`, which must be `given`.
    fn require_task(&self, kind: SystemTaskKind, given: TaskId) -> Result<(), Rejection> {
        let name = match kind {
            SystemTaskKind::Handoff => "handoff",
            SystemTaskKind::HandoffDetails => "handoff details",
            SystemTaskKind::Distribution => "distribution",
        };
        match self.lead.open_task(kind) {
            None => Err(Rejection::NoOpenTask {
                stage: self.stage(),
                kind: name,
            }),
            Some(t) if t.id != given => Err(Rejection::TaskMismatch {
                kind: name,
                open: t.id,
                given,
            }),
            Some(_) => Ok(()),
        }
    }

    fn complete_handoff_task(&mut self, c: &CompleteHandoffTask) -> Result<(), Rejection> {
        self.require_task(SystemTaskKind::Handoff, c.task_id)?;
        if let HandoffResult::Postponed { until, .. } = &c.result {
            self.require_future(*until)?;
        }
        self.complete_open(SystemTaskKind::Handoff, Some(c.result.clone()));
        match &c.result {
            HandoffResult::PlaceOrder { .. } => {
                self.enter_awaiting_sale(Transition::PlaceOrder, SaleKind::Order, None);
            }
            HandoffResult::TransferToSale { .. } => {
                let due = self.now() + SYSTEM_TASK_DUE;
                self.open_task(SystemTaskKind::HandoffDetails, self.lead.responsible, due);
            }
            HandoffResult::ReturnToDistribution { .. } => {
                self.set_maturity(Maturity::InterestShown);
                self.move_to(Stage::Distribution, Transition::ReturnToDistribution);
            }
            HandoffResult::Postponed { until, .. } => {
                self.open_task(SystemTaskKind::Handoff, self.lead.responsible, *until);
            }
            HandoffResult::NoInterest { .. } => self.set_maturity(Maturity::NoInterest),
        }
        Ok(())
    }

    fn submit_handoff_details(&mut self, c: &SubmitHandoffDetails) -> Result<(), Rejection> {
        self.require_task(SystemTaskKind::HandoffDetails, c.task_id)?;
        check_currency(self.ctx.catalog, &c.budget)?;
        self.complete_open(SystemTaskKind::HandoffDetails, None);
        self.emit(HandoffDetailsRecorded {
            budget: c.budget.clone(),
            sales_direction: c.sales_direction.clone(),
            meeting_at: Some(c.meeting_at),
            decision_at: Some(c.decision_at),
            need_type: c.need_type.clone(),
            comment: c.comment.clone(),
        });
        self.enter_awaiting_sale(Transition::TransferToSale, SaleKind::Sale, None);
        Ok(())
    }

    fn schedule_handoff_task(&mut self, c: &ScheduleHandoffTask) -> Result<(), Rejection> {
        if let Some(t) = self.lead.open_task(SystemTaskKind::Handoff) {
            return Err(Rejection::HandoffTaskAlreadyOpen {
                stage: self.stage(),
                task: t.id,
            });
        }
        if let Some(t) = self.lead.open_task(SystemTaskKind::HandoffDetails) {
            return Err(Rejection::HandoffDetailsPending { task: t.id });
        }
        self.require_future(c.due_at)?;
        self.open_task(SystemTaskKind::Handoff, self.lead.responsible, c.due_at);
        Ok(())
    }

    fn may_convert(&self) -> bool {
        let actor = self.ctx.actor;
        let creator = self.lead.created_by;
        let policy = self.ctx.catalog.settings.who_may_convert;
        let own = match policy {
            ConvertPolicy::CreatorAndSupervisor => actor.user == creator,
            ConvertPolicy::CreatorResponsibleAndSupervisor => {
                actor.user == creator || self.lead.responsible == Some(actor.user)
            }
            ConvertPolicy::SupervisorsOnly | ConvertPolicy::AdminsOnly => false,
        };
        match actor.role {
            Role::Admin => true,
            _ if own => true,
            Role::Supervisor if policy != ConvertPolicy::AdminsOnly => {
                let dept = |u| self.ctx.catalog.user(u).map(|u| u.department.clone());
                // A creator outside the catalog (an integration) has no department: any supervisor.
                dept(creator).is_none() || dept(creator) == dept(actor.user)
            }
            _ => false,
        }
    }

    fn convert(&mut self, c: &ConvertLead) -> Result<(), Rejection> {
        if !self.may_convert() {
            return Err(Rejection::NotAllowedToConvert {
                user: self.ctx.actor.user,
            });
        }
        if c.contact.is_none() && c.account.is_none() && c.deal.is_none() {
            return Err(Rejection::NothingToConvert);
        }
        let lead = &self.lead;
        let contact = match c.contact {
            None => None,
            Some(Target::Link(id)) => Some(ContactLink {
                contact_id: id,
                created: false,
                name: None,
            }),
            Some(Target::CreateFromLead) => match (lead.contact, &lead.details.contact_name) {
                (Some(existing), _) => Some(ContactLink {
                    contact_id: existing,
                    created: false,
                    name: None,
                }),
                (None, Some(name)) => Some(ContactLink {
                    contact_id: ContactId::for_lead(lead.id),
                    created: true,
                    name: Some(name.clone()),
                }),
                (None, None) => return Err(Rejection::NoContactToCreate),
            },
        };
        let account = match c.account {
            None => None,
            Some(Target::Link(id)) => Some(AccountLink {
                account_id: id,
                created: false,
                name: None,
            }),
            Some(Target::CreateFromLead) => match (lead.account, &lead.details.account_name) {
                (Some(existing), _) => Some(AccountLink {
                    account_id: existing,
                    created: false,
                    name: None,
                }),
                (None, Some(name)) => Some(AccountLink {
                    account_id: AccountId::for_lead(lead.id),
                    created: true,
                    name: Some(name.clone()),
                }),
                (None, None) => return Err(Rejection::NoAccountToCreate),
            },
        };
        let terms = match &c.deal {
            Some(given) => Some(self.sale_terms(given.as_ref(), CommandName::ConvertLead)?),
            None => None,
        };
        let deal = terms.as_ref().map(|_| self.next_deal_id());
        let skipped = if deal.is_some() {
            self.stage().skipped_before_sale()
        } else {
            Vec::new()
        };
        self.emit(LeadConverted {
            contact,
            account,
            deal,
            skipped,
            by_role: self.ctx.actor.role,
        });
        if let Some(terms) = terms {
            self.enter_awaiting_sale(Transition::Converted, SaleKind::Sale, Some(terms));
        }
        Ok(())
    }

    fn require_deal(&self, given: DealId) -> Result<(), Rejection> {
        match &self.lead.deal {
            Some(open) if open.id == given => Ok(()),
            Some(open) => Err(Rejection::DealMismatch {
                open: open.id,
                given,
            }),
            None => Err(Rejection::NotAllowedInStage {
                command: CommandName::RecordDealWon,
                stage: self.stage(),
            }),
        }
    }

    fn deal_won(&mut self, c: &RecordDealWon) -> Result<(), Rejection> {
        self.require_deal(c.deal_id)?;
        self.emit(DealWon { deal_id: c.deal_id });
        self.set_maturity(Maturity::Satisfied);
        self.move_to(Stage::NeedSatisfied, Transition::DealWon);
        Ok(())
    }

    fn deal_lost(&mut self, c: &RecordDealLost) -> Result<(), Rejection> {
        self.require_deal(c.deal_id)?;
        self.emit(DealLost {
            deal_id: c.deal_id,
            reason: c.reason.clone(),
        });
        self.set_maturity(Maturity::InterestShown);
        self.move_to(Stage::Distribution, Transition::DealLost);
        Ok(())
    }

    fn jump(&mut self, c: &JumpToStage) -> Result<(), Rejection> {
        let actor = self.ctx.actor;
        if !actor.role.is_supervising() && self.lead.responsible != Some(actor.user) {
            return Err(Rejection::NotAllowedToJump { user: actor.user });
        }
        let funnel =
            self.ctx
                .catalog
                .funnel(&self.lead.funnel)
                .ok_or(Rejection::UnknownFunnel {
                    funnel: self.lead.funnel.clone(),
                })?;
        let to = funnel
            .stage_by_key(&c.stage)
            .ok_or(Rejection::UnknownStage {
                funnel: funnel.id.clone(),
                stage: c.stage.clone(),
            })?
            .stage;
        if to.is_closed() {
            return Err(Rejection::JumpTargetClosed { to });
        }
        if to == self.stage() {
            return Err(Rejection::AlreadyInStage { stage: to });
        }
        let via = Transition::Jump {
            reason: c.reason.clone(),
        };
        match to {
            Stage::AwaitingSale => {
                let terms = self.sale_terms(c.sale.as_ref(), CommandName::JumpToStage)?;
                self.enter_awaiting_sale(via, SaleKind::Sale, Some(terms));
            }
            Stage::Handoff if self.lead.responsible.is_none() => {
                return Err(Rejection::ResponsibleRequired {
                    stage: self.stage(),
                });
            }
            _ => self.move_to(to, via),
        }
        Ok(())
    }

    fn reopen(&mut self, c: &ReopenLead) -> Result<(), Rejection> {
        let role = self.ctx.actor.role;
        if !role.is_supervising() {
            return Err(Rejection::SupervisorOnly {
                command: CommandName::ReopenLead,
                role,
            });
        }
        self.emit(LeadReopened {
            from: self.stage(),
            comment: c.comment.clone(),
        });
        self.move_to(Stage::Qualification, Transition::Reopened);
        Ok(())
    }
}
