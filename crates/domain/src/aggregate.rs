//! What every aggregate of the domain is: a pure decider over its own stream. The lead is the
//! first; the catalog, tasks, contacts, accounts and deals come through the same trait, so the
//! codec names their streams, the engine runs their commands and the tests state their rules
//! the same way.

use crate::context::Context;

/// A pure decider: `decide(state, command) -> events | rejection` and `evolve(state, event)`.
/// No IO, no clock, no randomness: time, the actor and the catalog come in the [`Context`].
pub trait Aggregate {
    /// The stream category: streams are named `<CATEGORY>-<id>`.
    const CATEGORY: &'static str;
    /// The id that names one instance (and its stream).
    type Id: Copy + Eq + std::hash::Hash + std::fmt::Display + std::fmt::Debug;
    /// The state folded from the events; `None` before the first.
    type State: Clone;
    type Command;
    type Event;
    /// One variant per rule, never a string.
    type Rejection: std::error::Error;

    /// The events `command` produces on `state`, or the rule it breaks. Deciding again on the
    /// same inputs gives the same answer.
    fn decide(
        state: Option<&Self::State>,
        command: &Self::Command,
        ctx: &Context,
    ) -> Result<Vec<Self::Event>, Self::Rejection>;

    /// The state after `event`.
    fn evolve(state: Option<Self::State>, event: &Self::Event) -> Option<Self::State>;

    /// The command's name as recorded in event metadata (`QualifyLead`), so a key reused for
    /// another command is caught.
    fn command_name(command: &Self::Command) -> &'static str;

    /// The state after every event of `events`, from nothing.
    fn fold<'e>(events: impl IntoIterator<Item = &'e Self::Event>) -> Option<Self::State>
    where
        Self::Event: 'e,
    {
        events.into_iter().fold(None, |s, e| Self::evolve(s, e))
    }
}

/// The lead process of SPEC section 3 as an [`Aggregate`].
pub enum LeadAggregate {}

impl Aggregate for LeadAggregate {
    const CATEGORY: &'static str = "lead";
    type Id = crate::LeadId;
    type State = crate::Lead;
    type Command = crate::LeadCommand;
    type Event = crate::LeadEvent;
    type Rejection = crate::Rejection;

    fn decide(
        state: Option<&crate::Lead>,
        command: &crate::LeadCommand,
        ctx: &Context,
    ) -> Result<Vec<crate::LeadEvent>, crate::Rejection> {
        crate::decide(state, command, ctx)
    }

    fn evolve(state: Option<crate::Lead>, event: &crate::LeadEvent) -> Option<crate::Lead> {
        crate::evolve(state, event)
    }

    fn command_name(command: &crate::LeadCommand) -> &'static str {
        command.name().as_str()
    }
}
