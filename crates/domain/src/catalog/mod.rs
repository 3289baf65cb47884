//! The catalog: funnels with their columns, users with roles, departments and offices, sources,
//! channels, disqualification reasons and the other lists, and the settings (who may convert,
//! who may export, the automation rules). Commands of every aggregate are decided against it as
//! it stands when they run.
//!
//! It is an aggregate of its own, kept in one stream per kind ([`CatalogPart`]:
//! `catalog-users`, `catalog-org`, `catalog-funnels`, `catalog-lists`, `catalog-settings`).
//! Each stream folds into the fields of its kind, and the catalog is those kinds together
//! ([`Catalog::assemble`]). A new store starts with [`seed`] as its first events.

mod commands;
mod decide;
mod events;
mod rejection;
pub mod seed;
pub mod value;

use crate::aggregate::Aggregate;
use crate::context::Context;

pub use commands::*;
pub use decide::evolve;
pub use events::*;
pub use rejection::CatalogRejection;
pub use value::*;

/// The catalog as an [`Aggregate`]: one instance per [`CatalogPart`], whose state holds the
/// fields of that part.
pub enum CatalogAggregate {}

impl Aggregate for CatalogAggregate {
    const CATEGORY: &'static str = "catalog";
    type Id = CatalogPart;
    type State = Catalog;
    type Command = CatalogCommand;
    type Event = CatalogEvent;
    type Rejection = CatalogRejection;

    fn decide(
        state: Option<&Catalog>,
        command: &CatalogCommand,
        ctx: &Context,
    ) -> Result<Vec<CatalogEvent>, CatalogRejection> {
        decide::decide(state, command, ctx)
    }

    fn evolve(state: Option<Catalog>, event: &CatalogEvent) -> Option<Catalog> {
        evolve(state, event)
    }

    fn command_name(command: &CatalogCommand) -> &'static str {
        command.name()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stage::Stage;

    #[test]
    fn the_default_catalog_is_complete() {
        let c = Catalog::default_catalog();
        assert_eq!(c.reasons.len(), 12);
        assert!(c.funnel(&c.default_funnel).is_some());
        for f in &c.funnels {
            let stages: Vec<_> = f.stages.iter().map(|s| s.stage).collect();
            assert_eq!(stages, Stage::ALL, "funnel {}", f.id);
            assert_eq!(f.first_stage(), Stage::Qualification);
        }
        assert!(c
            .users
            .iter()
            .any(|u| u.role == Role::Admin && u.name == "admin"));
        assert_eq!(c.settings.automation.len(), 5);
    }

    #[test]
    fn parts_round_trip_through_their_names() {
        for p in CatalogPart::ALL {
            assert_eq!(CatalogPart::parse(p.as_str()), Some(p));
        }
        assert_eq!(CatalogPart::parse("nope"), None);
    }
}
