//! What a lead and its events read as once their data subject is erased (issue 20): every
//! personal field (as `crate::personal` classifies them) holds [`crate::personal::ERASED`];
//! everything else (stages, times, amounts, codes, who acted) stays, so the process history
//! and the reports over it do not change. The read models apply it to what they hold when
//! `PersonalDataErased` arrives; the codec's own erasure of a payload gives the same result
//! (tested over every recorded payload).

use crate::details::{CallInfo, DetailChange, LeadDetails};
use crate::events::*;
use crate::lead::Lead;
use crate::values::{Email, Phone, Text};

fn text<const MAX: usize>(value: &mut Text<MAX>) {
    *value = Text::erased();
}

fn some<const MAX: usize>(value: &mut Option<Text<MAX>>) {
    if let Some(v) = value {
        text(v);
    }
}

fn phones(values: &mut [Phone]) {
    values.iter_mut().for_each(|p| *p = Phone::erased());
}

fn emails(values: &mut [Email]) {
    values.iter_mut().for_each(|e| *e = Email::erased());
}

fn call(value: &mut Option<CallInfo>) {
    if let Some(c) = value {
        some(&mut c.recording);
    }
}

fn details(d: &mut LeadDetails) {
    text(&mut d.title);
    some(&mut d.contact_name);
    phones(&mut d.phones);
    emails(&mut d.emails);
    some(&mut d.account_name);
    some(&mut d.website);
    some(&mut d.comment);
    some(&mut d.need_type);
    some(&mut d.object);
    call(&mut d.call);
}

fn change(c: &mut DetailChange) {
    match c {
        DetailChange::Title(t) => text(t),
        DetailChange::ContactName(n) | DetailChange::AccountName(n) => some(n),
        DetailChange::Phones(p) => phones(p),
        DetailChange::Emails(e) => emails(e),
        DetailChange::Website(v) | DetailChange::NeedType(v) | DetailChange::Object(v) => some(v),
        DetailChange::Comment(v) => some(v),
        DetailChange::Call(v) => call(v),
        _ => {}
    }
}

fn contact(link: &mut Option<ContactLink>) {
    if let Some(l) = link {
        some(&mut l.name);
    }
}

fn account(link: &mut Option<AccountLink>) {
    if let Some(l) = link {
        some(&mut l.name);
    }
}

impl LeadEvent {
    /// The event as it reads once its data subject is erased.
    pub fn without_personal_data(&self) -> LeadEvent {
        let mut e = self.clone();
        match &mut e {
            LeadEvent::LeadRegistered(r) => details(&mut r.details),
            LeadEvent::LeadDetailsUpdated(u) => u.changes.iter_mut().for_each(change),
            LeadEvent::LeadQualified(q) => {
                contact(&mut q.contact);
                account(&mut q.account);
            }
            LeadEvent::LeadConverted(c) => {
                contact(&mut c.contact);
                account(&mut c.account);
            }
            LeadEvent::LeadDisqualified(d) => some(&mut d.comment),
            LeadEvent::LeadDistributed(d) => match &mut d.decision {
                DistributionDecision::NeedAbsent { comment } => some(comment),
                DistributionDecision::ContinueNurturing { strategy, .. } => some(strategy),
                DistributionDecision::StartHandoff { .. } => {}
            },
            LeadEvent::LeadStageChanged(c) => {
                if let Transition::Jump { reason } = &mut c.via {
                    text(reason);
                }
            }
            LeadEvent::LeadReopened(r) => some(&mut r.comment),
            LeadEvent::SystemTaskCompleted(t) => match &mut t.result {
                Some(HandoffResult::TransferToSale { comment }) => text(comment),
                Some(
                    HandoffResult::PlaceOrder { comment }
                    | HandoffResult::ReturnToDistribution { comment }
                    | HandoffResult::Postponed { comment, .. }
                    | HandoffResult::NoInterest { comment },
                ) => some(comment),
                None => {}
            },
            LeadEvent::HandoffDetailsRecorded(h) => {
                some(&mut h.comment);
                some(&mut h.need_type);
            }
            LeadEvent::DealLost(d) => some(&mut d.reason),
            LeadEvent::MaturityChanged(_)
            | LeadEvent::ResponsibleAssigned(_)
            | LeadEvent::SystemTaskOpened(_)
            | LeadEvent::SystemTaskCancelled(_)
            | LeadEvent::DealOpened(_)
            | LeadEvent::DealWon(_) => {}
        }
        e
    }

    /// Whether the event holds any personal value (one that erasure would change).
    pub fn holds_personal_data(&self) -> bool {
        self.without_personal_data() != *self
    }
}

impl Lead {
    /// The lead as it reads once its data subject is erased.
    pub fn without_personal_data(&self) -> Lead {
        let mut lead = self.clone();
        details(&mut lead.details);
        if let Some(d) = &mut lead.disqualification {
            some(&mut d.comment);
        }
        if let Some(n) = &mut lead.nurturing {
            some(&mut n.strategy);
        }
        lead
    }
}
