//! What every aggregate's decision may know besides its own state: business time, the actor
//! and the catalog. Shared by every aggregate.

use chrono::{DateTime, Utc};

use crate::catalog::value::{Catalog, Role};
use crate::ids::UserId;

/// Who issues a command.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Actor {
    pub user: UserId,
    pub role: Role,
}

/// What a decision may know besides the state: business time, the actor and the catalog.
#[derive(Clone, Copy, Debug)]
pub struct Context<'a> {
    pub now: DateTime<Utc>,
    pub actor: Actor,
    pub catalog: &'a Catalog,
}
