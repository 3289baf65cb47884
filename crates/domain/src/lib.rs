//! The lead process of a CRM as a pure decider (SPEC section 3): value types parsed at the
//! edge, the catalog as data, the commands, the events, and the Creatio stage machine as
//! `decide` / `evolve`.
//!
//! Deliberately absent: IO, async, clocks and random sources. `now`, the actor and the catalog
//! come in a [`Context`]; ids the process mints are derived from the lead id. `make lint`
//! checks this mechanically (`cargo tree` and `clippy.toml`).

#[macro_use]
mod event_enum;

mod aggregate;
pub mod catalog;
mod context;
pub mod ids;
pub mod lead;
pub mod ops;
pub mod personal;
pub mod subject;
pub mod values;

// What every aggregate shares is at the root (`catalog`, `context`, `ids`, `values`); each
// aggregate has its folder (`lead/`, `catalog/`). The lead's modules keep their short paths.
pub use lead::{commands, details, events, stage};
pub(crate) use lead::{decide, rejection};

pub use aggregate::{Aggregate, LeadAggregate};
pub use catalog::{
    catalog_event_schemas, Catalog, CatalogAggregate, CatalogCommand, CatalogEvent, CatalogPart,
    CatalogRejection, Role,
};
pub use commands::{CommandName, LeadCommand};
pub use context::{Actor, Context};
pub use decide::{
    allowed_in, decide, DISTRIBUTION_TASK_TEXT, HANDOFF_DETAILS_TASK_TEXT, HANDOFF_TASK_TEXT,
    SYSTEM_TASK_DUE,
};
pub use events::{event_schemas, LeadEvent};
pub use ids::*;
pub use lead::{evolve, Disqualification, Lead, Nurturing, OpenDeal, OpenTask};
pub use ops::{
    ops_event_schemas, Generation, NodeName, OpsAction, OpsAggregate, OpsCommand, OpsEvent,
    OpsReason, OpsRejection, OpsScope, ReadModelName,
};
pub use rejection::Rejection;
pub use stage::{Maturity, Stage};
pub use subject::{
    subject_event_schemas, ErasureReason, SubjectAggregate, SubjectCommand, SubjectEvent,
    SubjectRejection, TicketRef,
};
pub use values::ValueError;
