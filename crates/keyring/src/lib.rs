//! The data subjects' keys (issue 20), shared by the write side (sealing) and the read side
//! (opening): each is read from the store once, unwrapped with the master key and cached.
//!
//! - [`Keyring::for_sealing`]: the key to seal a subject's new personal data with: the one it
//!   has, or a new one for the caller to store with its append
//!   ([`leadflow_store::EventStore::append_with_keys`]); a destroyed subject hands over to its
//!   successor ([`successor`]), since data about a person that arrives after their erasure
//!   starts a new subject.
//! - [`Keyring::load`]: fetches a key into the cache, so [`Keys::opening`] answers without
//!   waiting. A destroyed key opens as erased; a key that cannot be read (no master key, a
//!   wrong one, the store down) is a [`KeyError`], never "erased".
//! - [`Keyring::destroy`]: destroys a subject's key in the store and the cache.
//!
//! Keys never print, and nothing here logs a personal value.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use leadflow_codec::seal::{BlindIndex, MasterKey, Opening, SealError, SubjectKey};
use leadflow_codec::Keys;
use leadflow_store::{EventStore, NewKey, StoreError, StoredKey};
use uuid::Uuid;

/// The cache holds at most this many subjects before it starts over (each entry is a few
/// dozen bytes).
const CACHE_CAPACITY: usize = 1 << 18;

/// Why a key cannot be had. Each is transient for the caller: wait and try again, never treat
/// the subject as erased.
///
/// ### Handling
/// - `NoMasterKey`: the process was started without the master key; personal fields stay
///   unavailable until it is configured (restart with it).
/// - `WrongMasterKey`: the configured master key did not wrap the store's keys: refuse to
///   start, with this message.
/// - `Missing`: a sealed event names a subject with no stored key: the store lost it or
///   another writer has not stored it yet; retry, then report.
/// - `Store`: the key store did not answer; retry.
/// - `Seal`: a stored key does not unwrap (changed bytes); report it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("no master key is configured: personal fields are unavailable (set LEADFLOW_MASTER_KEY or restore <data-dir>/master.key)")]
    NoMasterKey,
    #[error("the master key is not the one this store's keys were wrapped with: start with the right LEADFLOW_MASTER_KEY or master.key")]
    WrongMasterKey,
    #[error("no key is stored for data subject {0}")]
    Missing(Uuid),
    #[error("the key store failed: {0}")]
    Store(#[from] StoreError),
    #[error("a stored key is unreadable: {0}")]
    Seal(SealError),
}

impl From<SealError> for KeyError {
    fn from(e: SealError) -> Self {
        match e {
            SealError::WrongMasterKey => KeyError::WrongMasterKey,
            other => KeyError::Seal(other),
        }
    }
}

/// The subject that takes over from an erased one for new data about the same person.
pub fn successor(subject: Uuid) -> Uuid {
    Uuid::new_v5(&subject, b"successor")
}

/// The key to seal with, and whether the caller stores it with its append.
#[derive(Clone, Debug)]
pub struct Sealing {
    /// The subject the key is for: the one asked for, or its successor if it was erased.
    pub subject: Uuid,
    pub key: Arc<SubjectKey>,
    /// A key minted now: store it with the append (then [`Keyring::stored`]).
    pub new: Option<NewKey>,
}

/// Subjects' keys from one store, unwrapped with one master key, cached.
pub struct Keyring {
    store: Arc<dyn EventStore>,
    master: Option<MasterKey>,
    cache: Mutex<HashMap<Uuid, Opening>>,
    /// Opens every subject's fields as erased and reads no key (see [`Keyring::withholding`]).
    withholding: bool,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keyring")
            .field("master", &self.master.is_some())
            .finish_non_exhaustive()
    }
}

impl Keyring {
    /// `master`: `None` opens the store with personal fields unavailable.
    pub fn new(store: Arc<dyn EventStore>, master: Option<MasterKey>) -> Self {
        Self {
            store,
            master,
            cache: Mutex::new(HashMap::new()),
            withholding: false,
        }
    }

    /// A keyring that opens nothing: every personal field reads as erased, no key is read or
    /// minted, nothing can be sealed. For copies that must hold no personal data (a replay
    /// served read-only), so that an erasure at the source leaves nothing behind in them.
    pub fn withholding(store: Arc<dyn EventStore>) -> Self {
        Self {
            withholding: true,
            ..Self::new(store, None)
        }
    }

    pub fn has_master_key(&self) -> bool {
        self.master.is_some()
    }

    /// The blind index under this master key (for matching personal values without them).
    pub fn blind_index(&self) -> Result<BlindIndex, KeyError> {
        Ok(self.master()?.blind_index())
    }

    fn master(&self) -> Result<&MasterKey, KeyError> {
        self.master.as_ref().ok_or(KeyError::NoMasterKey)
    }

    fn cached(&self, subject: Uuid) -> Option<Opening> {
        if self.withholding {
            return Some(Opening::Erased);
        }
        self.cache
            .lock()
            .expect("key cache lock")
            .get(&subject)
            .cloned()
    }

    fn remember(&self, subject: Uuid, opening: Opening) {
        let mut cache = self.cache.lock().expect("key cache lock");
        if cache.len() >= CACHE_CAPACITY {
            cache.clear();
        }
        cache.insert(subject, opening);
    }

    /// How `subject`'s fields open, from the cache or the store. `Ok(None)`: no key was ever
    /// stored for it.
    async fn fetch(&self, subject: Uuid) -> Result<Option<Opening>, KeyError> {
        if let Some(opening) = self.cached(subject) {
            return Ok(Some(opening));
        }
        let stored = self.store.read_key(subject).await?;
        self.take(subject, stored)
    }

    /// How a key as the store holds it opens, remembered; `None` when there is none.
    fn take(&self, subject: Uuid, stored: StoredKey) -> Result<Option<Opening>, KeyError> {
        let opening = match stored {
            StoredKey::Absent => return Ok(None),
            StoredKey::Destroyed => Opening::Erased,
            StoredKey::Present(wrapped) => {
                Opening::Key(Arc::new(self.master()?.unwrap(subject, &wrapped)?))
            }
        };
        self.remember(subject, opening.clone());
        Ok(Some(opening))
    }

    /// Fetches `subject`'s key into the cache, so [`Keys::opening`] answers for it.
    pub async fn load(&self, subject: Uuid) -> Result<Opening, KeyError> {
        self.fetch(subject).await?.ok_or(KeyError::Missing(subject))
    }

    /// Fetches the keys of `subjects` into the cache in one round trip to the store (a reader
    /// catching up meets many subjects at once). `required`: a subject with no stored key is
    /// [`KeyError::Missing`]; otherwise it is passed over (a prefetch on a guess).
    pub async fn load_many(&self, subjects: &[Uuid], required: bool) -> Result<(), KeyError> {
        if self.withholding {
            return Ok(());
        }
        let mut wanted: Vec<Uuid> = {
            let cache = self.cache.lock().expect("key cache lock");
            subjects
                .iter()
                .copied()
                .filter(|s| !cache.contains_key(s))
                .collect()
        };
        wanted.sort_unstable();
        wanted.dedup();
        if wanted.is_empty() {
            return Ok(());
        }
        let stored = self.store.read_keys(&wanted).await?;
        for (subject, key) in wanted.into_iter().zip(stored) {
            if self.take(subject, key)?.is_none() && required {
                return Err(KeyError::Missing(subject));
            }
        }
        Ok(())
    }

    /// The key to seal `subject`'s new data with (see [`Sealing`]).
    pub async fn for_sealing(&self, subject: Uuid) -> Result<Sealing, KeyError> {
        if self.withholding {
            return Err(KeyError::NoMasterKey);
        }
        let mut subject = subject;
        loop {
            match self.fetch(subject).await? {
                Some(Opening::Key(key)) => {
                    return Ok(Sealing {
                        subject,
                        key,
                        new: None,
                    })
                }
                Some(Opening::Erased) => subject = successor(subject),
                None => return self.mint(subject),
            }
        }
    }

    /// A new key for `subject`, known to have none (a subject minted just now), without
    /// asking the store; if it has one after all, the append refuses it
    /// ([`StoreError::SubjectKeyTaken`]) and [`Keyring::for_sealing`] finds it.
    pub fn mint(&self, subject: Uuid) -> Result<Sealing, KeyError> {
        let key = SubjectKey::generate()?;
        let wrapped = self.master()?.wrap(subject, &key)?;
        Ok(Sealing {
            subject,
            key: Arc::new(key),
            new: Some(NewKey { subject, wrapped }),
        })
    }

    /// A key minted by [`Keyring::for_sealing`] is stored: cache it.
    pub fn stored(&self, sealing: &Sealing) {
        self.remember(sealing.subject, Opening::Key(sealing.key.clone()));
    }

    /// `subject` was erased (by this process or another: `PersonalDataErased` is in the log):
    /// its fields open as erased from now on.
    pub fn erased(&self, subject: Uuid) {
        self.remember(subject, Opening::Erased);
    }

    /// Destroys `subject`'s key in the store, for good, and in the cache.
    pub async fn destroy(&self, subject: Uuid) -> Result<(), KeyError> {
        self.store.destroy_key(subject).await?;
        self.erased(subject);
        Ok(())
    }

    /// The first data subject with a stored key that the log names, among its first events
    /// (`None`: nothing sealed there yet).
    pub async fn first_sealed_subject(&self) -> Result<Option<Uuid>, KeyError> {
        let events = self
            .store
            .read_all(leadflow_store::Position::START, 10_000)
            .await?;
        for event in events {
            let Ok(meta) = leadflow_codec::EventMetadata::decode(&event.metadata) else {
                continue;
            };
            if let Some(subject) = meta.subject {
                if let StoredKey::Present(_) = self.store.read_key(subject).await? {
                    return Ok(Some(subject));
                }
            }
        }
        Ok(None)
    }

    /// Checks the master key against a key the log's first sealed events use, so a wrong one
    /// is refused at start ([`KeyError::WrongMasterKey`]) rather than when the first sealed
    /// field is read.
    pub async fn check_master_key(&self) -> Result<(), KeyError> {
        match self.first_sealed_subject().await? {
            Some(subject) => self.check(subject).await,
            None => Ok(()),
        }
    }

    /// Checks the master key against a key the store holds (`subject`'s).
    pub async fn check(&self, subject: Uuid) -> Result<(), KeyError> {
        match self.store.read_key(subject).await? {
            StoredKey::Present(wrapped) => {
                self.master()?.unwrap(subject, &wrapped)?;
                Ok(())
            }
            StoredKey::Destroyed | StoredKey::Absent => Ok(()),
        }
    }
}

impl Keyring {
    /// The payload of a recorded event with its personal fields opened (an erased subject's
    /// as [`leadflow_codec::seal::ERASED`]): what a reader shows of it.
    pub async fn open_recorded(
        &self,
        event: &leadflow_store::RecordedEvent,
    ) -> Result<Vec<u8>, KeyError> {
        let subject = leadflow_codec::EventMetadata::decode(&event.metadata)
            .ok()
            .and_then(|m| m.subject);
        let Some(subject) = subject else {
            return Ok(event.data.clone());
        };
        let opening = self.load(subject).await?;
        Ok(leadflow_codec::seal::open_payload(
            &event.data,
            &event.event_type,
            &opening,
            subject,
            event.id,
        )?)
    }
}

impl Keys for Keyring {
    fn opening(&self, subject: Uuid) -> Option<Opening> {
        self.cached(subject)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use leadflow_store::{ExpectedRevision, StreamName};

    fn store() -> (tempfile::TempDir, Arc<dyn EventStore>) {
        let dir = tempfile::tempdir().unwrap();
        let store = leadflow_store_embedded::EmbeddedStore::open(dir.path().join("e.db")).unwrap();
        (dir, Arc::new(store))
    }

    async fn seal_and_store(store: &Arc<dyn EventStore>, ring: &Keyring, subject: Uuid) -> Sealing {
        let sealing = ring.for_sealing(subject).await.unwrap();
        let events = leadflow_store::contract::events(1);
        store
            .append_with_keys(
                &StreamName::parse(format!("x-{}", Uuid::new_v4())).unwrap(),
                ExpectedRevision::NoStream,
                events,
                sealing.new.clone().into_iter().collect(),
            )
            .await
            .unwrap();
        ring.stored(&sealing);
        sealing
    }

    #[tokio::test]
    async fn a_key_is_minted_once_then_read_back_by_another_keyring() {
        let (_dir, store) = store();
        let master = MasterKey::generate().unwrap();
        let ring = Keyring::new(store.clone(), Some(master.clone()));
        let subject = Uuid::from_u128(1);
        let first = seal_and_store(&store, &ring, subject).await;
        assert!(first.new.is_some());
        let again = ring.for_sealing(subject).await.unwrap();
        assert!(again.new.is_none(), "a stored key is reused");
        let other = Keyring::new(store.clone(), Some(master));
        let Opening::Key(read) = other.load(subject).await.unwrap() else {
            panic!("erased?")
        };
        assert_eq!(read.expose_for_tests(), first.key.expose_for_tests());
        assert!(matches!(other.opening(subject), Some(Opening::Key(_))));
    }

    #[tokio::test]
    async fn a_withholding_keyring_opens_every_subject_as_erased_and_seals_nothing() {
        let (_dir, store) = store();
        let master = MasterKey::generate().unwrap();
        let ring = Keyring::new(store.clone(), Some(master));
        let subject = Uuid::from_u128(7);
        seal_and_store(&store, &ring, subject).await;
        let withholding = Keyring::withholding(store.clone());
        withholding.load_many(&[subject], true).await.unwrap();
        assert!(matches!(
            withholding.opening(subject),
            Some(Opening::Erased)
        ));
        assert!(matches!(
            withholding.load(subject).await,
            Ok(Opening::Erased)
        ));
        assert!(withholding.for_sealing(Uuid::from_u128(8)).await.is_err());
        assert!(withholding.blind_index().is_err());
    }

    #[tokio::test]
    async fn destroyed_is_erased_but_unreadable_is_an_error() {
        let (_dir, store) = store();
        let master = MasterKey::generate().unwrap();
        let ring = Keyring::new(store.clone(), Some(master));
        let subject = Uuid::from_u128(2);
        seal_and_store(&store, &ring, subject).await;
        // Without the master key, or with another one: an error, never "erased".
        let blind = Keyring::new(store.clone(), None);
        assert_eq!(
            blind.load(subject).await.unwrap_err(),
            KeyError::NoMasterKey
        );
        let wrong = Keyring::new(store.clone(), Some(MasterKey::generate().unwrap()));
        assert_eq!(
            wrong.load(subject).await.unwrap_err(),
            KeyError::WrongMasterKey
        );
        assert_eq!(
            wrong.check(subject).await.unwrap_err(),
            KeyError::WrongMasterKey
        );
        assert!(matches!(
            ring.load(Uuid::from_u128(99)).await,
            Err(KeyError::Missing(_))
        ));
        // Destroyed: erased for every keyring, and new data goes to the successor.
        ring.destroy(subject).await.unwrap();
        assert!(matches!(ring.opening(subject), Some(Opening::Erased)));
        let later = Keyring::new(store.clone(), None);
        assert!(matches!(later.load(subject).await, Ok(Opening::Erased)));
        let next = ring.for_sealing(subject).await.unwrap();
        assert_eq!(next.subject, successor(subject));
        assert!(next.new.is_some());
    }
}
