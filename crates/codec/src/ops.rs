//! The ops stream's events' table (issue 12): what operators did to the read models.

use leadflow_domain::ops::*;

use crate::lead::Upcaster;

/// Every upcaster of the ops events (all are at version 1 so far).
pub const UPCASTERS: &[Upcaster] = &[];

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

    /// Every ops event goes through its table and comes back the same, at version 1.
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
                why: Why {
                    reason: OpsReason::BadEvent,
                    ticket: Some(TicketRef::parse("INC-7").unwrap()),
                },
            };
            for event in OpsAggregate::decide(None, &command, &ctx).unwrap() {
                let bytes = encode(&event);
                assert_eq!(current_version(event.event_type()), Some(1));
                assert_eq!(decode(event.event_type(), 1, &bytes).unwrap(), event);
            }
        }
    }
}
