//! The aggregate cache: the folded state of recently used leads, so a command on a warm lead
//! does not read its stream at all (a stale entry shows up as an append conflict, which makes
//! the engine catch up from the store). Two generations approximate LRU: entries used since
//! the last rotation survive the next one.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use uuid::Uuid;

use leadflow_domain::{Lead, LeadId};
use leadflow_store::Position;

/// What a command left in the stream: enough to answer its retry with the first result.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CommandRecord {
    pub first_revision: u64,
    pub last_revision: u64,
    pub position: Position,
    /// The command's name, when the stream recorded it.
    pub command: Option<leadflow_domain::CommandName>,
}

/// A lead folded up to `revision`.
#[derive(Clone, Debug, Default)]
pub struct CachedLead {
    pub state: Option<Lead>,
    /// The last revision folded in; `None` for a stream with no events.
    pub revision: Option<u64>,
    /// The commands recorded in the stream, by command id.
    pub commands: HashMap<Uuid, CommandRecord>,
}

type Generation = HashMap<LeadId, Arc<CachedLead>>;

pub struct LeadCache {
    capacity: usize,
    generations: Mutex<(Generation, Generation)>,
}

impl LeadCache {
    /// A cache holding between `capacity / 2` and `capacity` leads.
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity: capacity.max(2),
            generations: Mutex::new((HashMap::new(), HashMap::new())),
        }
    }

    pub fn get(&self, id: LeadId) -> Option<Arc<CachedLead>> {
        let mut g = self.generations.lock().expect("cache lock");
        if let Some(hit) = g.0.get(&id) {
            return Some(hit.clone());
        }
        let old = g.1.remove(&id)?;
        self.insert_locked(&mut g, id, old.clone());
        Some(old)
    }

    pub fn put(&self, id: LeadId, entry: Arc<CachedLead>) {
        let mut g = self.generations.lock().expect("cache lock");
        self.insert_locked(&mut g, id, entry);
    }

    /// Replaces the entry only if it is newer than what the cache holds, so a slow writer
    /// never rolls a lead back.
    pub fn put_if_newer(&self, id: LeadId, entry: Arc<CachedLead>) {
        let mut g = self.generations.lock().expect("cache lock");
        let held = g.0.get(&id).or_else(|| g.1.get(&id)).map(|e| e.revision);
        if held.is_none_or(|r| entry.revision >= r) {
            self.insert_locked(&mut g, id, entry);
        }
    }

    pub fn remove(&self, id: LeadId) {
        let mut g = self.generations.lock().expect("cache lock");
        g.0.remove(&id);
        g.1.remove(&id);
    }

    fn insert_locked(&self, g: &mut (Generation, Generation), id: LeadId, entry: Arc<CachedLead>) {
        if g.0.len() >= self.capacity / 2 && !g.0.contains_key(&id) {
            g.1 = std::mem::take(&mut g.0);
        }
        g.1.remove(&id);
        g.0.insert(id, entry);
    }
}
