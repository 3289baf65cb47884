//! The ops stream's events' table (issue 12): what operators did to the read models.

use leadflow_domain::ops::*;

use crate::lead::Upcaster;

/// Every upcaster of the ops events.
///
/// Version 2 says where an action was carried out (`node`: every `serve` keeps its own read
/// models) and, for a pause, resume, retry or skip, on which generation (`live`, or the one a
/// rebuild is building). A version-1 action was on the live generation of a node nobody
/// recorded: `node` null.
pub const UPCASTERS: &[Upcaster] = &[
    on_live("ReadModelPaused"),
    on_live("ReadModelResumed"),
    on_live("ReadModelRetried"),
    on_live("ReadModelEventSkipped"),
    on_model("ReadModelRebuildStarted"),
    on_model("ReadModelRolledBack"),
];

/// 1 -> 2 of a control action: on the live generation, on an unnamed node.
const fn on_live(event_type: &'static str) -> Upcaster {
    Upcaster {
        event_type,
        from_version: 1,
        upcast: |payload| with(payload, &[("node", None), ("generation", Some("live"))]),
    }
}

/// 1 -> 2 of a rebuild or rollback: on an unnamed node.
const fn on_model(event_type: &'static str) -> Upcaster {
    Upcaster {
        event_type,
        from_version: 1,
        upcast: |payload| with(payload, &[("node", None)]),
    }
}

fn with(mut payload: serde_json::Value, fields: &[(&str, Option<&str>)]) -> serde_json::Value {
    if let Some(object) = payload.as_object_mut() {
        for (name, value) in fields {
            object.insert((*name).to_owned(), (*value).into());
        }
    }
    payload
}

macro_rules! codec {
    ($($list:tt)*) => {
        event_table!(OpsEvent, "an ops event"; $($list)*);
    };
}

leadflow_domain::for_each_ops_event!(codec);

#[cfg(test)]
mod tests {
    use super::*;
    use leadflow_domain::{Aggregate, Catalog, Context, OpsAggregate, Role, TicketRef, UserId};

    /// Every ops event goes through its table and comes back the same, at version 2.
    #[test]
    fn every_ops_event_round_trips() {
        let catalog = Catalog::default_catalog();
        let ctx = Context {
            now: chrono::DateTime::UNIX_EPOCH,
            actor: leadflow_domain::Actor {
                user: UserId::named("admin"),
                role: Role::Admin,
            },
            catalog: &catalog,
        };
        let actions = [
            OpsAction::Pause,
            OpsAction::Resume,
            OpsAction::Retry { position: None },
            OpsAction::Retry { position: Some(7) },
            OpsAction::Skip { position: 7 },
            OpsAction::Rebuild { verify: true },
            OpsAction::Rollback,
        ];
        for action in actions {
            let command = OpsCommand {
                models: vec![ReadModelName::parse("leads").unwrap()],
                action,
                generation: Generation::Live,
                node: NodeName::parse("crm-1:8080").unwrap(),
                why: Why {
                    reason: OpsReason::BadEvent,
                    ticket: Some(TicketRef::parse("INC-7").unwrap()),
                },
            };
            for event in OpsAggregate::decide(None, &command, &ctx).unwrap() {
                let bytes = encode(&event);
                assert_eq!(current_version(event.event_type()), Some(2));
                assert_eq!(decode(event.event_type(), 2, &bytes).unwrap(), event);
            }
        }
    }
}
