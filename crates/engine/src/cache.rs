//! The aggregate cache: the folded state of recently used aggregates, so a command on a warm
//! one does not read its stream at all (a stale entry shows up as an append conflict, which
//! makes the engine catch up from the store). Two generations approximate LRU: entries used
//! since the last rotation survive the next one. One cache per aggregate type.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use uuid::Uuid;

use leadflow_domain::{Aggregate, LeadAggregate};
use leadflow_store::Position;

/// What a command left in the stream: enough to answer its retry with the first result.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CommandRecord {
    pub first_revision: u64,
    pub last_revision: u64,
    pub position: Position,
    /// The command's name, when the stream recorded it.
    pub command: Option<&'static str>,
}

/// An aggregate folded up to `revision`.
pub struct Cached<A: Aggregate> {
    pub state: Option<A::State>,
    /// The last revision folded in; `None` for a stream with no events.
    pub revision: Option<u64>,
    /// The commands recorded in the stream, by command id.
    pub commands: HashMap<Uuid, CommandRecord>,
}

impl<A: Aggregate> Clone for Cached<A> {
    fn clone(&self) -> Self {
        Self {
            state: self.state.clone(),
            revision: self.revision,
            commands: self.commands.clone(),
        }
    }
}

impl<A: Aggregate> Default for Cached<A> {
    fn default() -> Self {
        Self {
            state: None,
            revision: None,
            commands: HashMap::new(),
        }
    }
}

/// A lead folded up to a revision.
pub type CachedLead = Cached<LeadAggregate>;
/// The leads kept folded in memory.
pub type LeadCache = AggregateCache<LeadAggregate>;

type Generation<A> = HashMap<<A as Aggregate>::Id, Arc<Cached<A>>>;

pub struct AggregateCache<A: Aggregate> {
    capacity: usize,
    generations: Mutex<(Generation<A>, Generation<A>)>,
}

impl<A: Aggregate> AggregateCache<A> {
    /// A cache holding between `capacity / 2` and `capacity` aggregates.
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity: capacity.max(2),
            generations: Mutex::new((HashMap::new(), HashMap::new())),
        }
    }

    pub fn get(&self, id: A::Id) -> Option<Arc<Cached<A>>> {
        let mut g = self.generations.lock().expect("cache lock");
        if let Some(hit) = g.0.get(&id) {
            return Some(hit.clone());
        }
        let old = g.1.remove(&id)?;
        self.insert_locked(&mut g, id, old.clone());
        Some(old)
    }

    pub fn put(&self, id: A::Id, entry: Arc<Cached<A>>) {
        let mut g = self.generations.lock().expect("cache lock");
        self.insert_locked(&mut g, id, entry);
    }

    /// Replaces the entry only if it is newer than what the cache holds, so a slow writer
    /// never rolls an aggregate back. Answers whether it did.
    pub fn put_if_newer(&self, id: A::Id, entry: Arc<Cached<A>>) -> bool {
        let mut g = self.generations.lock().expect("cache lock");
        let held = g.0.get(&id).or_else(|| g.1.get(&id)).map(|e| e.revision);
        let newer = held.is_none_or(|r| entry.revision >= r);
        if newer {
            self.insert_locked(&mut g, id, entry);
        }
        newer
    }

    /// Forgets every aggregate.
    pub fn clear(&self) {
        let mut g = self.generations.lock().expect("cache lock");
        g.0.clear();
        g.1.clear();
    }

    pub fn remove(&self, id: A::Id) {
        let mut g = self.generations.lock().expect("cache lock");
        g.0.remove(&id);
        g.1.remove(&id);
    }

    fn insert_locked(
        &self,
        g: &mut (Generation<A>, Generation<A>),
        id: A::Id,
        entry: Arc<Cached<A>>,
    ) {
        if g.0.len() >= self.capacity / 2 && !g.0.contains_key(&id) {
            g.1 = std::mem::take(&mut g.0);
        }
        g.1.remove(&id);
        g.0.insert(id, entry);
    }
}
