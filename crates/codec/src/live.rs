//! The catalog as it stands, shared by the write side (which decides against it) and the read
//! side (which names users, funnels and stages with it). The engine feeds it each catalog
//! stream's state as it learns it; a part's state only ever moves forward (a slow writer never
//! rolls it back), and the whole is reassembled from the parts.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use leadflow_domain::{Catalog, CatalogPart};

pub struct LiveCatalog {
    /// What a part nobody has fed yet reads as.
    base: Catalog,
    inner: RwLock<Inner>,
}

struct Inner {
    parts: HashMap<CatalogPart, (u64, Arc<Catalog>)>,
    whole: Arc<Catalog>,
}

impl LiveCatalog {
    /// A catalog that starts as `base` (tests pass the default catalog and never change it).
    pub fn new(base: Catalog) -> Self {
        let whole = Arc::new(base.clone());
        Self {
            base,
            inner: RwLock::new(Inner {
                parts: HashMap::new(),
                whole,
            }),
        }
    }

    /// The catalog now.
    pub fn current(&self) -> Arc<Catalog> {
        self.inner.read().expect("catalog lock").whole.clone()
    }

    /// The revision of `part` folded in so far.
    pub fn revision(&self, part: CatalogPart) -> Option<u64> {
        let inner = self.inner.read().expect("catalog lock");
        inner.parts.get(&part).map(|(r, _)| *r)
    }

    /// Takes `state` as `part` folded up to `revision`, unless a later revision is held.
    /// Answers whether the catalog changed.
    pub fn update(&self, part: CatalogPart, revision: u64, state: Arc<Catalog>) -> bool {
        let mut inner = self.inner.write().expect("catalog lock");
        if inner.parts.get(&part).is_some_and(|(r, _)| *r >= revision) {
            return false;
        }
        inner.parts.insert(part, (revision, state));
        let whole = Catalog::assemble(|p| {
            Some(
                inner
                    .parts
                    .get(&p)
                    .map_or_else(|| self.base.clone(), |(_, s)| (**s).clone()),
            )
        });
        inner.whole = Arc::new(whole);
        true
    }
}

impl std::fmt::Debug for LiveCatalog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let inner = self.inner.read().expect("catalog lock");
        let mut parts: Vec<_> = inner.parts.iter().map(|(p, (r, _))| (*p, *r)).collect();
        parts.sort();
        f.debug_struct("LiveCatalog")
            .field("parts", &parts)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_part_moves_forward_only_and_the_rest_stays_as_the_base() {
        let base = Catalog::default_catalog();
        let live = LiveCatalog::new(base.clone());
        let mut users = Catalog::empty();
        users.users = base.users[..2].to_vec();
        assert!(live.update(CatalogPart::Users, 5, Arc::new(users)));
        let now = live.current();
        assert_eq!(now.users.len(), 2);
        assert_eq!(now.funnels, base.funnels, "other parts stay as the base");
        assert!(!live.update(CatalogPart::Users, 4, Arc::new(Catalog::empty())));
        assert_eq!(live.current().users.len(), 2);
        assert_eq!(live.revision(CatalogPart::Users), Some(5));
    }
}
