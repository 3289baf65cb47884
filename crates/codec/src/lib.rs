//! The events as they are stored: what the write side appends and the read side decodes.
//!
//! - [`aggregates`]: [`Stored`], each aggregate's events as stored behind one trait;
//! - [`catalog`]: the catalog events' table;
//! - [`lead`]: the lead events' table (`LeadEvent` <-> event type and JSON payload), their
//!   versions and upcasters;
//! - [`live`]: [`LiveCatalog`], the catalog as it stands, shared by both sides;
//! - [`metadata`]: the envelope every event carries (actor, business time, correlation,
//!   causation, command, payload version);
//! - [`ops`]: the ops stream's events' table (what operators did to the read models);
//! - [`seal`]: sealing personal fields under a key per data subject, wrapping those keys with
//!   the master key, and blind-index tokens (issue 20);
//! - [`streams`]: stream names per aggregate category, built and parsed in one place;
//! - [`subject`]: the data subjects' events' table (erasures and exports);
//! - [`envelope`]: a recorded event decoded into a typed [`Envelope`].
//!
//! The engine and the projections both use it, so the read side never depends on the write
//! side. It does no IO (beyond the system's random source for keys and nonces): the store
//! moves the bytes.

#[macro_use]
mod table;

pub mod aggregates;
pub mod catalog;
pub mod envelope;
pub mod lead;
pub mod live;
pub mod metadata;
pub mod ops;
pub mod seal;
pub mod streams;
pub mod subject;

pub use aggregates::Stored;
pub use envelope::{
    decode, decode_with_keys, Body, DecodeError, Envelope, Keys, NoKeys, Opened,
    WithoutPersonalData,
};
pub use lead::{CodecError, Upcaster, UPCASTERS};
pub use live::LiveCatalog;
pub use metadata::{ActorMetadata, EventMetadata};
pub use streams::{catalog_stream, lead_stream, ops_stream, stream_of, subject_stream, StreamRef};
