//! The lead aggregate's state and `evolve`: folding an event into the state. `evolve` never
//! fails and never checks rules (the decision did); it must accept every event ever written.
//! The state serializes as a disposable snapshot (read models keep it; they rebuild it from
//! the log when its shape changes), never as a source of truth.

pub mod commands;
pub(crate) mod decide;
pub mod details;
mod erase;
pub mod events;
pub(crate) mod rejection;
pub mod stage;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::details::{HandoffDetails, LeadDetails};
use crate::events::*;
use crate::ids::{
    AccountId, ContactId, DealId, FunnelId, LeadId, ReasonCode, SubjectId, TaskId, UserId,
};
use crate::stage::{Maturity, Stage};
use crate::values::{Comment, Short};

/// An open system task of the lead.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OpenTask {
    pub id: TaskId,
    pub kind: SystemTaskKind,
    pub assignee: Option<UserId>,
    pub due_at: DateTime<Utc>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OpenDeal {
    pub id: DealId,
    pub kind: SaleKind,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Disqualification {
    pub reason: ReasonCode,
    pub comment: Option<Comment>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Nurturing {
    pub next_check_at: DateTime<Utc>,
    pub strategy: Option<Comment>,
}

/// A registered lead. The aggregate state is `Option<Lead>`: `None` until `LeadRegistered`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Lead {
    pub id: LeadId,
    /// Whose personal data the lead holds.
    pub subject: SubjectId,
    pub funnel: FunnelId,
    pub stage: Stage,
    pub maturity: Maturity,
    pub responsible: Option<UserId>,
    pub created_by: UserId,
    pub details: LeadDetails,
    pub handoff: HandoffDetails,
    pub contact: Option<ContactId>,
    pub account: Option<AccountId>,
    pub deal: Option<OpenDeal>,
    pub disqualification: Option<Disqualification>,
    pub nurturing: Option<Nurturing>,
    pub open_tasks: Vec<OpenTask>,
    /// How many system tasks and deals the lead has opened: the next derived id's index.
    pub tasks_opened: u32,
    pub deals_opened: u32,
    /// Stages entered by a jump since registration (the audit counts them).
    pub jumps: u32,
}

impl Lead {
    /// Whether `actor` may see and act on this lead (SPEC 3.7): supervisors and admins every
    /// lead, a manager the leads they are responsible for or created.
    pub fn in_scope_of(&self, actor: &crate::Actor) -> bool {
        actor.role.is_supervising()
            || self.responsible == Some(actor.user)
            || self.created_by == actor.user
    }

    pub fn open_task(&self, kind: SystemTaskKind) -> Option<&OpenTask> {
        self.open_tasks.iter().find(|t| t.kind == kind)
    }

    /// Budget and sales direction are both known: enough to open a deal.
    pub fn sale_terms(&self) -> Option<(crate::values::Money, Short)> {
        Some((
            self.details.budget.clone()?,
            self.handoff.sales_direction.clone()?,
        ))
    }
}

/// Folds one event into the state. Events that need a registered lead are ignored on `None`,
/// which a well-formed stream never contains.
pub fn evolve(state: Option<Lead>, event: &LeadEvent) -> Option<Lead> {
    if let LeadEvent::LeadRegistered(e) = event {
        return Some(Lead {
            id: e.lead_id,
            subject: e.subject,
            funnel: e.funnel.clone(),
            stage: e.stage,
            maturity: Maturity::Unknown,
            responsible: e.responsible,
            created_by: e.created_by,
            details: LeadDetails::clone(&e.details),
            handoff: HandoffDetails::default(),
            contact: None,
            account: None,
            deal: None,
            disqualification: None,
            nurturing: None,
            open_tasks: Vec::new(),
            tasks_opened: 0,
            deals_opened: 0,
            jumps: 0,
        });
    }
    let mut lead = state?;
    apply(&mut lead, event);
    Some(lead)
}

/// Folds a non-registration event into a registered lead, in place.
pub(crate) fn apply(lead: &mut Lead, event: &LeadEvent) {
    match event {
        LeadEvent::LeadRegistered(_) => {}
        LeadEvent::LeadDetailsUpdated(e) => {
            for change in &e.changes {
                change.apply(&mut lead.details, &mut lead.handoff);
            }
        }
        LeadEvent::LeadQualified(e) => link(lead, e.contact.as_ref(), e.account.as_ref()),
        LeadEvent::LeadStageChanged(e) => {
            lead.stage = e.to;
            if matches!(e.via, Transition::Jump { .. }) {
                lead.jumps += 1;
            }
            if e.to != Stage::Distribution {
                lead.nurturing = None;
            }
            if e.to == Stage::Qualification {
                lead.disqualification = None;
            }
        }
        LeadEvent::MaturityChanged(e) => lead.maturity = e.to,
        LeadEvent::LeadDisqualified(e) => {
            lead.disqualification = Some(Disqualification {
                reason: e.reason.clone(),
                comment: e.comment.clone(),
            });
        }
        LeadEvent::ResponsibleAssigned(e) => lead.responsible = Some(e.to),
        LeadEvent::LeadDistributed(e) => {
            if let DistributionDecision::ContinueNurturing {
                next_check_at,
                strategy,
            } = &e.decision
            {
                lead.nurturing = Some(Nurturing {
                    next_check_at: *next_check_at,
                    strategy: strategy.clone(),
                });
            }
        }
        LeadEvent::SystemTaskOpened(e) => {
            lead.tasks_opened += 1;
            lead.open_tasks.push(OpenTask {
                id: e.task_id,
                kind: e.kind,
                assignee: e.assignee,
                due_at: e.due_at,
            });
        }
        LeadEvent::SystemTaskCompleted(SystemTaskCompleted { task_id, .. })
        | LeadEvent::SystemTaskCancelled(SystemTaskCancelled { task_id, .. }) => {
            lead.open_tasks.retain(|t| t.id != *task_id);
        }
        LeadEvent::HandoffDetailsRecorded(e) => {
            lead.details.budget = Some(e.budget.clone());
            lead.handoff.sales_direction = Some(e.sales_direction.clone());
            lead.handoff.meeting_at = e.meeting_at.or(lead.handoff.meeting_at);
            lead.handoff.decision_at = e.decision_at.or(lead.handoff.decision_at);
            if let Some(need) = &e.need_type {
                lead.details.need_type = Some(need.clone());
            }
        }
        LeadEvent::DealOpened(e) => {
            lead.deals_opened += 1;
            lead.deal = Some(OpenDeal {
                id: e.deal_id,
                kind: e.kind,
            });
            if let Some(budget) = &e.budget {
                lead.details.budget = Some(budget.clone());
            }
            if let Some(direction) = &e.sales_direction {
                lead.handoff.sales_direction = Some(direction.clone());
            }
        }
        LeadEvent::LeadConverted(e) => link(lead, e.contact.as_ref(), e.account.as_ref()),
        LeadEvent::DealWon(_) => {}
        LeadEvent::DealLost(_) => lead.deal = None,
        LeadEvent::LeadReopened(_) => lead.deal = None,
    }
}

fn link(lead: &mut Lead, contact: Option<&ContactLink>, account: Option<&AccountLink>) {
    if let Some(c) = contact {
        lead.contact = Some(c.contact_id);
    }
    if let Some(a) = account {
        lead.account = Some(a.account_id);
    }
}
