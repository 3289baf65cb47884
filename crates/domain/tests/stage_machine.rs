//! The stage machine of SPEC 3.3 as given/when/then rows: one module per command, a test per
//! rule, and every rejection with the message users see. The laws that hold for every command
//! sequence live in `laws.rs`; these rows pin the concrete outcomes. This file holds what the
//! modules share: builders for the events they expect.

mod spec;

// One module per command; the folder sits next to this crate root, hence the paths.
#[path = "stage_machine/assign.rs"]
mod assign;
#[path = "stage_machine/convert.rs"]
mod convert;
#[path = "stage_machine/deals.rs"]
mod deals;
#[path = "stage_machine/disqualify.rs"]
mod disqualify;
#[path = "stage_machine/distribute.rs"]
mod distribute;
#[path = "stage_machine/handoff.rs"]
mod handoff;
#[path = "stage_machine/jump.rs"]
mod jump;
#[path = "stage_machine/qualify.rs"]
mod qualify;
#[path = "stage_machine/register.rs"]
mod register;
#[path = "stage_machine/reopen.rs"]
mod reopen;
#[path = "stage_machine/scope.rs"]
mod scope;
#[path = "stage_machine/stage_rules.rs"]
mod stage_rules;
#[path = "stage_machine/update_details.rs"]
mod update_details;

use spec::*;

fn registered_event(responsible: Option<UserId>, details: LeadDetails) -> LeadEvent {
    LeadRegistered {
        lead_id: lead_id(),
        subject: leadflow_domain::SubjectId::for_lead(lead_id()),
        funnel: funnel("default"),
        stage: Stage::Qualification,
        responsible,
        created_by: ivan(),
        details: Box::new(details),
    }
    .into()
}

/// What registration records when intake did not say who took the inquiry.
fn taken_by_ivan_now(details: LeadDetails) -> LeadDetails {
    LeadDetails {
        taken_by: Some(ivan()),
        taken_at: Some(now()),
        ..details
    }
}

fn created_contact() -> ContactLink {
    ContactLink {
        contact_id: ContactId::for_lead(lead_id()),
        created: true,
        name: Some(name("Anna Petrova")),
    }
}

fn created_account() -> AccountLink {
    AccountLink {
        account_id: AccountId::for_lead(lead_id()),
        created: true,
        name: Some(name("Romashka LLC")),
    }
}

fn stage_changed(from: Stage, to: Stage, via: Transition) -> LeadEvent {
    LeadStageChanged { from, to, via }.into()
}

fn maturity_changed(from: Maturity, to: Maturity) -> LeadEvent {
    MaturityChanged { from, to }.into()
}

fn task_opened(
    n: u32,
    kind: SystemTaskKind,
    assignee: Option<UserId>,
    due_at: chrono::DateTime<chrono::Utc>,
) -> LeadEvent {
    let text = match kind {
        SystemTaskKind::Handoff => HANDOFF_TASK_TEXT,
        SystemTaskKind::HandoffDetails => HANDOFF_DETAILS_TASK_TEXT,
        SystemTaskKind::Distribution => DISTRIBUTION_TASK_TEXT,
    };
    SystemTaskOpened {
        task_id: task(n),
        kind,
        assignee,
        due_at,
        text: text.to_owned(),
    }
    .into()
}

fn task_completed(n: u32, kind: SystemTaskKind, result: Option<HandoffResult>) -> LeadEvent {
    SystemTaskCompleted {
        task_id: task(n),
        kind,
        result,
    }
    .into()
}

fn task_cancelled(n: u32, kind: SystemTaskKind, left_stage: Stage) -> LeadEvent {
    SystemTaskCancelled {
        task_id: task(n),
        kind,
        left_stage,
    }
    .into()
}

fn jumped(from: Stage, to: Stage) -> LeadEvent {
    stage_changed(
        from,
        to,
        Transition::Jump {
            reason: jump_reason(),
        },
    )
}
