//! The deterministic workload: leads walking the Creatio path, command by command, and
//! import-shaped event batches.

use chrono::{DateTime, Duration, TimeZone, Utc};

use leadflow_domain::commands::*;
use leadflow_domain::details::{InquiryType, LeadDetails, Quality};
use leadflow_domain::events::HandoffResult;
use leadflow_domain::values::{Comment, Currency, Email, Money, Name, Phone, Short};
use leadflow_domain::{Actor, ChannelCode, LeadCommand, LeadId, Role, SourceCode, UserId};

/// The commands of the full path: register (no responsible, as from a web form), qualify
/// (-> Distribution), assign, start handoff, transfer to sale, submit the handoff details,
/// deal won.
pub const PATH_LEN: usize = 7;

pub fn lead_id(i: u64) -> LeadId {
    LeadId::from_uuid(uuid::Uuid::from_u64_pair(0x1ead_0000_0000_0000, i))
}

fn manager(i: u64) -> Actor {
    let names = ["ivan.manager", "maria.manager", "pavel.manager"];
    Actor {
        user: UserId::named(names[(i % 3) as usize]),
        role: Role::Manager,
    }
}

fn supervisor() -> Actor {
    Actor {
        user: UserId::named("olga.supervisor"),
        role: Role::Supervisor,
    }
}

pub fn business_time(i: u64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 1, 8, 0, 0).unwrap() + Duration::minutes((i % 100_000) as i64)
}

pub fn details(i: u64) -> LeadDetails {
    let text = |f: &'static str, s: String| Name::parse(f, &s).expect("valid bench text");
    LeadDetails {
        budget: None,
        contact_name: Some(text("contact", format!("Customer {i}"))),
        phones: vec![
            Phone::parse(&format!("+7916{:07}", i % 10_000_000)).expect("valid bench phone")
        ],
        emails: vec![Email::parse(&format!("customer{i}@example.ru")).expect("valid bench e-mail")],
        account_name: Some(text("account", format!("Dairy farm No. {i}"))),
        region: Some(Short::parse("region", "Moscow region").expect("valid")),
        source: Some(SourceCode::parse("website").expect("valid")),
        channel: Some(ChannelCode::parse("web-form").expect("valid")),
        inquiry_type: Some(InquiryType::WebRequest),
        quality: Quality::Target,
        comment: Some(
            Comment::parse("comment", "Asked for a quote on milking equipment").expect("valid"),
        ),
        ..LeadDetails::titled(text("title", format!("Milking equipment for farm {i}")))
    }
}

/// Step `step` of lead `i`'s path, given the open task and deal ids the lead has (derived
/// ids, so they are known in advance: task 1 = distribution activity, 2 = handoff task,
/// 3 = handoff details task, deal 1).
pub fn path_step(i: u64, step: usize) -> (LeadCommand, Actor) {
    let id = lead_id(i);
    let now = business_time(i);
    let me = manager(i);
    match step {
        0 => (
            LeadCommand::Register(RegisterLead {
                lead_id: id,
                funnel: None,
                responsible: ResponsibleChoice::Unassigned,
                details: details(i),
            }),
            me,
        ),
        1 => (LeadCommand::Qualify(QualifyLead::default()), me),
        2 => (
            LeadCommand::AssignResponsible(AssignResponsible {
                to: me.user,
                remind: true,
            }),
            supervisor(),
        ),
        3 => (
            LeadCommand::Distribute(DistributionDecision::StartHandoff { remind: false }),
            supervisor(),
        ),
        4 => (
            LeadCommand::CompleteHandoffTask(CompleteHandoffTask {
                task_id: leadflow_domain::TaskId::for_lead(id, 2),
                result: HandoffResult::TransferToSale {
                    comment: Comment::parse("comment", "Budget confirmed, meeting agreed")
                        .expect("valid"),
                },
            }),
            me,
        ),
        5 => (
            LeadCommand::SubmitHandoffDetails(SubmitHandoffDetails {
                task_id: leadflow_domain::TaskId::for_lead(id, 3),
                budget: Money::from_minor(
                    150_000_000 + (i as i64 % 1000) * 10_000,
                    Currency::rub(),
                )
                .expect("valid"),
                sales_direction: Short::parse("sales direction", "Equipment").expect("valid"),
                meeting_at: now + Duration::days(2),
                decision_at: now + Duration::days(14),
                need_type: None,
                comment: None,
            }),
            me,
        ),
        6 => (
            LeadCommand::RecordDealWon(RecordDealWon {
                deal_id: leadflow_domain::DealId::for_lead(id, 1),
            }),
            me,
        ),
        _ => unreachable!("the path has {PATH_LEN} steps"),
    }
}
