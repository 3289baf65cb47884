//! One readable line per event for the history feed: who is named by name, reasons by their
//! catalog names, money in major units.

use leadflow_domain::details::DetailChange;
use leadflow_domain::events::*;
use leadflow_domain::values::Money;
use leadflow_domain::{Catalog, LeadEvent, Stage, UserId};

fn user(c: &Catalog, id: Option<UserId>) -> String {
    match id {
        None => "nobody".to_owned(),
        Some(id) => c
            .user(id)
            .map_or_else(|| format!("user {id}"), |u| u.name.clone()),
    }
}

pub fn money(m: &Money) -> String {
    let (major, minor) = (m.minor() / 100, m.minor() % 100);
    let digits = major.to_string();
    let mut grouped = String::new();
    for (i, ch) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            grouped.push(' ');
        }
        grouped.push(ch);
    }
    format!("{grouped}.{minor:02} {}", m.currency())
}

fn stages(list: &[Stage]) -> String {
    list.iter()
        .map(Stage::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

fn with_comment(text: String, comment: Option<&impl std::fmt::Display>) -> String {
    match comment {
        Some(c) => format!("{text}: {c}"),
        None => text,
    }
}

fn change(c: &Catalog, ch: &DetailChange) -> String {
    let field = ch.field();
    let value = match ch {
        DetailChange::Title(v) => format!("“{v}”"),
        DetailChange::Budget(Some(m)) => money(m),
        DetailChange::Phones(v) => v.iter().map(|p| p.as_str()).collect::<Vec<_>>().join(", "),
        DetailChange::Emails(v) => v.iter().map(|e| e.as_str()).collect::<Vec<_>>().join(", "),
        DetailChange::Source(Some(s)) => c
            .source(s)
            .map_or_else(|| s.to_string(), |s| s.name.clone()),
        DetailChange::Channel(Some(ch)) => c
            .channel(ch)
            .map_or_else(|| ch.to_string(), |ch| ch.name.clone()),
        DetailChange::Quality(q) => format!("{q:?}"),
        DetailChange::Advertising(a) => (if *a { "yes" } else { "no" }).to_owned(),
        other => {
            let json = serde_json::to_value(other).ok();
            match json.as_ref().and_then(|v| v.get("value")) {
                None | Some(serde_json::Value::Null) => return format!("cleared {field}"),
                Some(serde_json::Value::String(s)) => s.clone(),
                Some(v) => v.to_string(),
            }
        }
    };
    if value.is_empty() {
        format!("cleared {field}")
    } else {
        format!("{field} → {value}")
    }
}

/// The feed line for `event`.
pub fn summarize(c: &Catalog, event: &LeadEvent) -> String {
    match event {
        LeadEvent::LeadRegistered(e) => format!(
            "Registered “{}” in funnel {}, responsible {}",
            e.details.title,
            c.funnel(&e.funnel)
                .map_or_else(|| e.funnel.to_string(), |f| f.name.clone()),
            user(c, e.responsible)
        ),
        LeadEvent::LeadDetailsUpdated(e) => {
            format!(
                "Changed {}",
                e.changes
                    .iter()
                    .map(|ch| change(c, ch))
                    .collect::<Vec<_>>()
                    .join("; ")
            )
        }
        LeadEvent::LeadQualified(e) => {
            let mut parts = Vec::new();
            if let Some(ct) = &e.contact {
                let name = ct
                    .name
                    .as_ref()
                    .map_or_else(|| ct.contact_id.to_string(), |n| n.to_string());
                parts.push(format!(
                    "contact {name} {}",
                    if ct.created { "created" } else { "linked" }
                ));
            }
            if let Some(a) = &e.account {
                let name = a
                    .name
                    .as_ref()
                    .map_or_else(|| a.account_id.to_string(), |n| n.to_string());
                parts.push(format!(
                    "account {name} {}",
                    if a.created { "created" } else { "linked" }
                ));
            }
            if parts.is_empty() {
                "Qualified".to_owned()
            } else {
                format!("Qualified: {}", parts.join(", "))
            }
        }
        LeadEvent::LeadStageChanged(e) => match &e.via {
            Transition::Jump { reason } => format!("Jumped from {} to {}: {reason}", e.from, e.to),
            via => format!(
                "Stage {} → {} ({})",
                e.from,
                e.to,
                serde_json::to_value(via)
                    .ok()
                    .and_then(|v| v["kind"].as_str().map(str::to_owned))
                    .unwrap_or_default()
            ),
        },
        LeadEvent::MaturityChanged(e) => format!("Maturity {} → {}", e.from, e.to),
        LeadEvent::LeadDisqualified(e) => {
            let reason = c
                .reason(&e.reason)
                .map_or_else(|| e.reason.to_string(), |r| r.name.clone());
            with_comment(format!("Disqualified: {reason}"), e.comment.as_ref())
        }
        LeadEvent::ResponsibleAssigned(e) => format!(
            "Responsible {} → {}{}",
            user(c, e.from),
            user(c, Some(e.to)),
            if e.remind {
                " (reminder requested)"
            } else {
                ""
            }
        ),
        LeadEvent::LeadDistributed(e) => match &e.decision {
            DistributionDecision::StartHandoff { .. } => "Distributed: start handoff".to_owned(),
            DistributionDecision::ContinueNurturing {
                next_check_at,
                strategy,
            } => with_comment(
                format!(
                    "Distributed: continue nurturing, next check {}",
                    next_check_at.format("%Y-%m-%d %H:%M")
                ),
                strategy.as_ref(),
            ),
            DistributionDecision::NeedAbsent { comment } => {
                with_comment("Distributed: need absent".to_owned(), comment.as_ref())
            }
        },
        LeadEvent::SystemTaskOpened(e) => format!(
            "Task for {}, due {}: {}",
            e.assignee
                .map_or_else(|| "the supervisors".to_owned(), |u| user(c, Some(u))),
            e.due_at.format("%Y-%m-%d %H:%M"),
            e.text
        ),
        LeadEvent::SystemTaskCompleted(e) => match &e.result {
            None => format!("{:?} task completed", e.kind),
            Some(result) => {
                let (name, comment) = match result {
                    HandoffResult::PlaceOrder { comment } => ("place order", comment.as_ref()),
                    HandoffResult::TransferToSale { comment } => {
                        ("transfer to sale", Some(comment))
                    }
                    HandoffResult::ReturnToDistribution { comment } => {
                        ("return to distribution", comment.as_ref())
                    }
                    HandoffResult::Postponed { comment, .. } => ("postponed", comment.as_ref()),
                    HandoffResult::NoInterest { comment } => ("no interest", comment.as_ref()),
                };
                with_comment(format!("Handoff task result: {name}"), comment)
            }
        },
        LeadEvent::SystemTaskCancelled(e) => {
            format!("{:?} task cancelled on leaving {}", e.kind, e.left_stage)
        }
        LeadEvent::HandoffDetailsRecorded(e) => with_comment(
            format!(
                "Handoff details: budget {}, sales direction {}",
                money(&e.budget),
                e.sales_direction
            ),
            e.comment.as_ref(),
        ),
        LeadEvent::DealOpened(e) => format!(
            "Deal opened ({:?}){}",
            e.kind,
            e.budget
                .as_ref()
                .map(|b| format!(", budget {}", money(b)))
                .unwrap_or_default()
        ),
        LeadEvent::LeadConverted(e) => {
            let mut parts = Vec::new();
            if e.contact.is_some() {
                parts.push("contact");
            }
            if e.account.is_some() {
                parts.push("account");
            }
            if e.deal.is_some() {
                parts.push("deal");
            }
            let skipped = if e.skipped.is_empty() {
                String::new()
            } else {
                format!("; skipped {}", stages(&e.skipped))
            };
            format!("Converted to {}{skipped}", parts.join(", "))
        }
        LeadEvent::DealWon(_) => "Deal won".to_owned(),
        LeadEvent::DealLost(e) => with_comment("Deal lost".to_owned(), e.reason.as_ref()),
        LeadEvent::LeadReopened(e) => {
            with_comment(format!("Reopened from {}", e.from), e.comment.as_ref())
        }
    }
}
