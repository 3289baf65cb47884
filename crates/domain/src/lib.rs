//! The lead process of a CRM as a pure decider (SPEC section 3): value types parsed at the
//! edge, the catalog as data, the commands, the events, and the Creatio stage machine as
//! `decide` / `evolve`.
//!
//! Deliberately absent: IO, async, clocks and random sources. `now`, the actor and the catalog
//! come in a [`Context`]; ids the process mints are derived from the lead id. `make lint`
//! checks this mechanically (`cargo tree` and `clippy.toml`).

mod aggregate;
pub mod catalog;
pub mod commands;
mod decide;
pub mod details;
pub mod events;
pub mod ids;
mod lead;
mod rejection;
pub mod stage;
pub mod values;

pub use aggregate::{Aggregate, LeadAggregate};
pub use catalog::{Catalog, Role};
pub use commands::{CommandName, LeadCommand};
pub use decide::{
    allowed_in, decide, Actor, Context, DISTRIBUTION_TASK_TEXT, HANDOFF_DETAILS_TASK_TEXT,
    HANDOFF_TASK_TEXT, SYSTEM_TASK_DUE,
};
pub use events::{event_schemas, LeadEvent};
pub use ids::*;
pub use lead::{evolve, Disqualification, Lead, Nurturing, OpenDeal, OpenTask};
pub use rejection::Rejection;
pub use stage::{Maturity, Stage};
pub use values::ValueError;
