//! Sealing personal data (SPEC 3.8, issue 20): the primitives the codec seals personal fields
//! with. Each data subject has a key of its own; a master key from the configuration wraps it
//! where it is stored; erasing a subject destroys its key, after which its fields cannot be
//! read anywhere, while the rest of each event (type, ids, stages, times, amounts) stays
//! readable.
//!
//! - [`SubjectKey`]: 256 random bits per subject, wrapped by the [`MasterKey`] with
//!   XChaCha20-Poly1305 ([`MasterKey::wrap`]), bound to the subject's id, so a wrapped key
//!   moved to another subject does not open.
//! - [`SubjectKey::seal`] / [`SubjectKey::open`]: one field, XChaCha20-Poly1305 with a random
//!   192-bit nonce; the associated data binds the ciphertext to its subject, event id and field
//!   path, so a sealed value copied into another event or field does not open.
//! - [`BlindIndex`]: HMAC-SHA256 of a normalized value under a secret derived from the master
//!   key, for matching (a phone, an e-mail) without the plaintext, and without which a stolen
//!   read model cannot be brute-forced over the space of phone numbers.
//!
//! No key is ever printed: `Debug` shows none.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use uuid::Uuid;

mod text;
pub use text::open_text;

/// The prefix of a sealed field's text: the format's version.
const SEALED_PREFIX: &str = "s1:";

/// How a sealed value starts in a payload's JSON: its opening quote, then the prefix.
pub(crate) const SEALED_QUOTED: &[u8] = b"\"s1:";
const NONCE_LEN: usize = 24;

/// Why sealed data could not be read.
///
/// ### Handling
/// - `WrongMasterKey`: the configuration's master key is not the one that wrapped the keys;
///   refuse to start (never treat it as "erased").
/// - `Tampered`: a sealed value or a wrapped key was changed, or belongs to another subject,
///   event or field: report it, with where it was found.
/// - `Malformed`: not a value this format wrote.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    #[error("the master key is not the one that wrapped this subject's key")]
    WrongMasterKey,
    #[error(
        "a sealed value does not open: changed, or sealed for another subject, event or field"
    )]
    Tampered,
    #[error("not a sealed value: {0}")]
    Malformed(String),
    #[error("invalid master key: {0}")]
    InvalidMasterKey(String),
    #[error("the system's random source failed: {0}")]
    Random(String),
}

/// Keys: straight from the system's random source.
fn random<const N: usize>() -> Result<[u8; N], SealError> {
    let mut bytes = [0u8; N];
    getrandom::getrandom(&mut bytes).map_err(|e| SealError::Random(e.to_string()))?;
    Ok(bytes)
}

/// Nonces drawn from one ChaCha20 generator per thread before it is seeded again from the
/// system's random source.
const NONCES_PER_SEED: u32 = 1 << 16;

/// Nonces: from a ChaCha20 generator per thread, seeded from the system's random source and
/// seeded again every [`NONCES_PER_SEED`] nonces: a system call per sealed field cost a tenth
/// of the commands' throughput, and a CSPRNG's output is as good a random nonce.
fn nonce() -> Result<[u8; NONCE_LEN], SealError> {
    use rand_chacha::rand_core::{RngCore, SeedableRng};
    use rand_chacha::ChaCha20Rng;
    thread_local! {
        static GENERATOR: std::cell::RefCell<Option<(ChaCha20Rng, u32)>> =
            const { std::cell::RefCell::new(None) };
    }
    GENERATOR.with(|cell| {
        let mut cell = cell.borrow_mut();
        if cell
            .as_ref()
            .is_none_or(|(_, used)| *used >= NONCES_PER_SEED)
        {
            *cell = Some((ChaCha20Rng::from_seed(random()?), 0));
        }
        let (generator, used) = cell.as_mut().expect("seeded above");
        *used += 1;
        let mut bytes = [0u8; NONCE_LEN];
        generator.fill_bytes(&mut bytes);
        Ok(bytes)
    })
}

/// The key that wraps every subject's key: 256 bits from the configuration.
#[derive(Clone)]
pub struct MasterKey([u8; 32]);

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey(..)")
    }
}

impl MasterKey {
    /// A new random master key.
    pub fn generate() -> Result<Self, SealError> {
        random().map(Self)
    }

    /// Parses 64 hex digits (as `LEADFLOW_MASTER_KEY` or the key file holds it).
    pub fn parse_hex(text: &str) -> Result<Self, SealError> {
        let text = text.trim();
        if text.len() != 64 || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(SealError::InvalidMasterKey(format!(
                "expected 64 hex digits (256 bits), got {} characters",
                text.len()
            )));
        }
        let mut key = [0u8; 32];
        for (i, byte) in key.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16)
                .map_err(|e| SealError::InvalidMasterKey(e.to_string()))?;
        }
        Ok(Self(key))
    }

    /// The key as 64 hex digits, for writing the key file.
    pub fn to_hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }

    fn aead(&self) -> XChaCha20Poly1305 {
        XChaCha20Poly1305::new((&self.0).into())
    }

    /// `key` wrapped for storage beside the events it protects: nonce and ciphertext, bound
    /// to `subject`.
    pub fn wrap(&self, subject: Uuid, key: &SubjectKey) -> Result<Vec<u8>, SealError> {
        let nonce: [u8; NONCE_LEN] = nonce()?;
        let aad = wrap_aad(subject);
        let sealed = self
            .aead()
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: &key.0,
                    aad: &aad,
                },
            )
            .map_err(|_| SealError::Malformed("cannot wrap a key".into()))?;
        Ok([nonce.as_slice(), &sealed].concat())
    }

    /// The subject's key from its wrapped form. A wrong master key is told apart from a
    /// changed record only as far as AEAD allows: both fail authentication; callers that
    /// check the master key first (against a known record) report `WrongMasterKey`.
    pub fn unwrap(&self, subject: Uuid, wrapped: &[u8]) -> Result<SubjectKey, SealError> {
        if wrapped.len() < NONCE_LEN {
            return Err(SealError::Malformed("a wrapped key too short".into()));
        }
        let (nonce, sealed) = wrapped.split_at(NONCE_LEN);
        let aad = wrap_aad(subject);
        let key = self
            .aead()
            .decrypt(
                XNonce::from_slice(nonce),
                Payload {
                    msg: sealed,
                    aad: &aad,
                },
            )
            .map_err(|_| SealError::WrongMasterKey)?;
        let key: [u8; 32] = key
            .try_into()
            .map_err(|_| SealError::Malformed("a wrapped key of the wrong size".into()))?;
        Ok(SubjectKey(key))
    }

    /// The blind index's secret, derived from the master key (one secret to keep, not two).
    pub fn blind_index(&self) -> BlindIndex {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.0).expect("any key length");
        mac.update(b"leadflow/blind-index/v1");
        let secret: [u8; 32] = mac.finalize().into_bytes().into();
        BlindIndex(<Hmac<Sha256> as Mac>::new_from_slice(&secret).expect("any key length"))
    }
}

fn wrap_aad(subject: Uuid) -> Vec<u8> {
    [b"leadflow/subject-key/v1/".as_slice(), subject.as_bytes()].concat()
}

fn field_aad(subject: Uuid, event: Uuid, field: &str) -> Vec<u8> {
    [
        b"leadflow/field/v1/".as_slice(),
        subject.as_bytes(),
        event.as_bytes(),
        field.as_bytes(),
    ]
    .concat()
}

/// One data subject's key.
#[derive(Clone)]
pub struct SubjectKey([u8; 32]);

impl std::fmt::Debug for SubjectKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SubjectKey(..)")
    }
}

impl SubjectKey {
    /// A new random key for a new subject.
    pub fn generate() -> Result<Self, SealError> {
        random().map(Self)
    }

    /// The key's bytes, for the erasure test that searches every file for them.
    pub fn expose_for_tests(&self) -> [u8; 32] {
        self.0
    }

    fn aead(&self) -> XChaCha20Poly1305 {
        XChaCha20Poly1305::new((&self.0).into())
    }

    /// `plaintext` sealed as the field `field` of event `event`, a subject's: `s1:` and the
    /// URL-safe base64 of nonce and ciphertext.
    pub fn seal(
        &self,
        subject: Uuid,
        event: Uuid,
        field: &str,
        plaintext: &str,
    ) -> Result<String, SealError> {
        let nonce: [u8; NONCE_LEN] = nonce()?;
        let aad = field_aad(subject, event, field);
        let sealed = self
            .aead()
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: plaintext.as_bytes(),
                    aad: &aad,
                },
            )
            .map_err(|_| SealError::Malformed("cannot seal a value".into()))?;
        let bytes = [nonce.as_slice(), &sealed].concat();
        Ok(format!("{SEALED_PREFIX}{}", URL_SAFE_NO_PAD.encode(bytes)))
    }

    /// The plaintext of a value [`SubjectKey::seal`] wrote for this subject, event and field.
    pub fn open(
        &self,
        subject: Uuid,
        event: Uuid,
        field: &str,
        sealed: &str,
    ) -> Result<String, SealError> {
        let encoded = sealed
            .strip_prefix(SEALED_PREFIX)
            .ok_or_else(|| SealError::Malformed("no s1: prefix".into()))?;
        let bytes = URL_SAFE_NO_PAD
            .decode(encoded)
            .map_err(|e| SealError::Malformed(e.to_string()))?;
        if bytes.len() < NONCE_LEN {
            return Err(SealError::Malformed("too short".into()));
        }
        let (nonce, ciphertext) = bytes.split_at(NONCE_LEN);
        let aad = field_aad(subject, event, field);
        let plain = self
            .aead()
            .decrypt(
                XNonce::from_slice(nonce),
                Payload {
                    msg: ciphertext,
                    aad: &aad,
                },
            )
            .map_err(|_| SealError::Tampered)?;
        String::from_utf8(plain).map_err(|e| SealError::Malformed(e.to_string()))
    }
}

/// Whether a payload (JSON) has a string that starts as a sealed value does (`"s1:`): one
/// without any has nothing to open.
pub fn holds_sealed(payload: &[u8]) -> bool {
    static MARKER: std::sync::LazyLock<memchr::memmem::Finder<'static>> =
        std::sync::LazyLock::new(|| memchr::memmem::Finder::new(SEALED_QUOTED));
    MARKER.find(payload).is_some()
}

/// Whether a stored string is a sealed value (rather than a plain one of an older version).
pub fn is_sealed(text: &str) -> bool {
    text.starts_with(SEALED_PREFIX)
}

/// Tokens for matching personal values without holding them: HMAC-SHA256 under a secret
/// derived from the master key. The HMAC keyed with that secret is kept ready, so each token
/// costs its own blocks only.
#[derive(Clone)]
pub struct BlindIndex(Hmac<Sha256>);

impl std::fmt::Debug for BlindIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BlindIndex(..)")
    }
}

/// The kinds of value a blind index matches, each normalized as a match should see it.
pub mod matching {
    /// A phone number: already E.164 where the product holds it.
    pub const PHONE: &str = "phone";
    /// An e-mail address, lower-cased.
    pub const EMAIL: &str = "email";
    /// A person's name: lower-cased, its words joined by single spaces.
    pub const NAME: &str = "name";

    /// `raw` of `kind` as its tokens are taken.
    pub fn normalized(kind: &str, raw: &str) -> String {
        match kind {
            EMAIL => raw.trim().to_lowercase(),
            NAME => raw
                .split_whitespace()
                .map(str::to_lowercase)
                .collect::<Vec<_>>()
                .join(" "),
            _ => raw.trim().to_owned(),
        }
    }
}

impl BlindIndex {
    /// The token of `raw` of `kind` ([`matching`]), normalized first, as the read models keep
    /// it (32 bytes).
    pub fn digest_of(&self, kind: &str, raw: &str) -> [u8; 32] {
        self.digest(kind, &matching::normalized(kind, raw))
    }

    /// The token of an already normalized value of `kind`: HMAC-SHA256 of the kind, a zero
    /// byte and the value. Kinds are kept apart, so a phone never matches an e-mail that
    /// happens to spell the same.
    pub fn digest(&self, kind: &str, normalized: &str) -> [u8; 32] {
        let mut mac = self.0.clone();
        mac.update(kind.as_bytes());
        mac.update(&[0]);
        mac.update(normalized.as_bytes());
        mac.finalize().into_bytes().into()
    }

    /// The token of an already normalized value of `kind` (`phone` in E.164, `email`
    /// lower-cased, ...) in hex: [`Self::digest`]'s 32 bytes as 64 hex digits.
    pub fn token(&self, kind: &str, normalized: &str) -> String {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let digest = self.digest(kind, normalized);
        let mut hex = String::with_capacity(2 * digest.len());
        for b in digest {
            hex.push(HEX[usize::from(b >> 4)] as char);
            hex.push(HEX[usize::from(b & 15)] as char);
        }
        hex
    }
}

/// What personal fields read as once their subject's key is destroyed.
pub use leadflow_domain::personal::ERASED;

/// One step of a field path of `leadflow_domain::personal`: a property, `[]` for each item of
/// an array, and `<k=v>` for only the objects whose `k` is `v` (a tagged variant).
struct Step<'a> {
    name: &'a str,
    each: bool,
    tag: Option<(&'a str, &'a str)>,
}

/// Every personal field of every event type, its path parsed once.
type Paths = std::collections::HashMap<&'static str, Vec<(&'static str, Vec<Step<'static>>)>>;

fn paths_of(event_type: &str) -> &'static [(&'static str, Vec<Step<'static>>)] {
    static PATHS: std::sync::OnceLock<Paths> = std::sync::OnceLock::new();
    let all = PATHS.get_or_init(|| {
        let mut all = Paths::new();
        for (event, path, class) in leadflow_domain::personal::FIELDS {
            if *class == leadflow_domain::personal::Class::Personal {
                all.entry(*event).or_default().push((*path, steps(path)));
            }
        }
        all
    });
    all.get(event_type).map_or(&[], Vec::as_slice)
}

fn steps(path: &str) -> Vec<Step<'_>> {
    path.split('.')
        .map(|part| {
            let (part, tag) = match part.split_once('<') {
                Some((head, tag)) => (head, tag.trim_end_matches('>').split_once('=')),
                None => (part, None),
            };
            let (name, each) = match part.strip_suffix("[]") {
                Some(name) => (name, true),
                None => (part, false),
            };
            Step { name, each, tag }
        })
        .collect()
}

fn tagged(node: &serde_json::Value, tag: Option<(&str, &str)>) -> bool {
    tag.is_none_or(|(k, v)| node.get(k).and_then(serde_json::Value::as_str) == Some(v))
}

/// Calls `f` on every string the path reaches in `node`.
fn each_string(
    node: &mut serde_json::Value,
    steps: &[Step<'_>],
    f: &mut dyn FnMut(&mut serde_json::Value) -> Result<(), SealError>,
) -> Result<(), SealError> {
    let Some((step, rest)) = steps.split_first() else {
        return if node.is_string() { f(node) } else { Ok(()) };
    };
    let Some(child) = node.get_mut(step.name) else {
        return Ok(());
    };
    if step.each {
        if let Some(items) = child.as_array_mut() {
            for item in items.iter_mut().filter(|i| tagged(i, step.tag)) {
                each_string(item, rest, f)?;
            }
        }
        Ok(())
    } else if tagged(child, step.tag) {
        each_string(child, rest, f)
    } else {
        Ok(())
    }
}

/// Seals, in `payload` (an event's JSON as the codec writes it), every personal field of
/// `event_type` (per `leadflow_domain::personal`); answers how many. Every one is sealed, even
/// text that happens to look sealed, so a sealed payload holds no plain personal value. The
/// field's path is part of each value's associated data.
pub fn seal_fields(
    payload: &mut serde_json::Value,
    event_type: &str,
    key: &SubjectKey,
    subject: Uuid,
    event: Uuid,
) -> Result<usize, SealError> {
    let mut sealed = 0;
    for (path, steps) in paths_of(event_type) {
        each_string(payload, steps, &mut |value| {
            let text = value.as_str().expect("a string");
            *value = serde_json::Value::String(key.seal(subject, event, path, text)?);
            sealed += 1;
            Ok(())
        })?;
    }
    Ok(sealed)
}

/// How sealed fields are read: with the subject's key, or as erased (its key destroyed on
/// purpose: `PersonalDataErased` is in the log). A key that merely cannot be read is neither:
/// the caller waits for it.
#[derive(Clone, Debug)]
pub enum Opening {
    Key(std::sync::Arc<SubjectKey>),
    Erased,
}

/// Opens, in `payload` (sealed by [`seal_fields`]), every personal field of `event_type`;
/// answers how many.
pub fn open_fields(
    payload: &mut serde_json::Value,
    event_type: &str,
    opening: &Opening,
    subject: Uuid,
    event: Uuid,
) -> Result<usize, SealError> {
    let mut opened = 0;
    for (path, steps) in paths_of(event_type) {
        each_string(payload, steps, &mut |value| {
            let text = value.as_str().expect("a string");
            let plain = match opening {
                Opening::Key(key) => key.open(subject, event, path, text)?,
                Opening::Erased => ERASED.to_owned(),
            };
            *value = serde_json::Value::String(plain);
            opened += 1;
            Ok(())
        })?;
    }
    Ok(opened)
}

/// Every personal value `payload` (an opened payload of `event_type`) holds, with its field's
/// path, in the classification's order: what a subject's export lists.
pub fn personal_values(
    payload: &serde_json::Value,
    event_type: &str,
) -> Vec<(&'static str, String)> {
    let mut payload = payload.clone();
    let mut values = Vec::new();
    for (path, steps) in paths_of(event_type) {
        let _ = each_string(&mut payload, steps, &mut |value| {
            values.push((*path, value.as_str().expect("a string").to_owned()));
            Ok(())
        });
    }
    values
}

/// Whether events of `event_type` have personal fields to seal.
pub fn has_personal_fields(event_type: &str) -> bool {
    !paths_of(event_type).is_empty()
}

/// [`seal_fields`] on an encoded payload.
pub fn seal_payload(
    data: &[u8],
    event_type: &str,
    key: &SubjectKey,
    subject: Uuid,
    event: Uuid,
) -> Result<Vec<u8>, SealError> {
    let mut payload: serde_json::Value =
        serde_json::from_slice(data).map_err(|e| SealError::Malformed(e.to_string()))?;
    seal_fields(&mut payload, event_type, key, subject, event)?;
    Ok(serde_json::to_vec(&payload).expect("JSON values serialize"))
}

/// [`open_fields`] on an encoded payload.
pub fn open_payload(
    data: &[u8],
    event_type: &str,
    opening: &Opening,
    subject: Uuid,
    event: Uuid,
) -> Result<Vec<u8>, SealError> {
    let mut payload: serde_json::Value =
        serde_json::from_slice(data).map_err(|e| SealError::Malformed(e.to_string()))?;
    open_fields(&mut payload, event_type, opening, subject, event)?;
    Ok(serde_json::to_vec(&payload).expect("JSON values serialize"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_personal_field_of_a_payload_is_sealed_and_opens_back() {
        let payload = serde_json::json!({
            "leadId": "0190a3b4-0000-7000-8000-000000000001",
            "funnel": "default",
            "details": {
                "title": "10 pumps for Anna's farm",
                "contactName": "Anna Smirnova",
                "phones": ["+79161234567", "+74957654321"],
                "emails": ["anna@farm.example"],
                "source": "website",
                "budget": { "minor": 15000000, "currency": "RUB" },
                "call": { "recording": "rec-anna-01", "seconds": 42 }
            }
        });
        let update = serde_json::json!({
            "changes": [
                { "field": "title", "value": "New title for Anna" },
                { "field": "source", "value": "referral" },
                { "field": "phones", "value": ["+79160000000"] }
            ]
        });
        let key = SubjectKey::generate().unwrap();
        let (subject, event) = ids();
        for (event_type, original, personal, kept) in [
            (
                "LeadRegistered",
                payload,
                6,
                vec!["default", "website", "RUB"],
            ),
            ("LeadDetailsUpdated", update, 2, vec!["referral"]),
        ] {
            let mut sealed = original.clone();
            assert_eq!(
                seal_fields(&mut sealed, event_type, &key, subject, event),
                Ok(personal)
            );
            let text = sealed.to_string();
            for plain in ["Anna", "+7916", "anna@", "rec-anna"] {
                assert!(!text.contains(plain), "{plain} in {text}");
            }
            for value in kept {
                assert!(text.contains(value), "{value} should stay readable: {text}");
            }
            let key = std::sync::Arc::new(key.clone());
            let mut opened = sealed.clone();
            open_fields(
                &mut opened,
                event_type,
                &Opening::Key(key.clone()),
                subject,
                event,
            )
            .unwrap();
            assert_eq!(opened, original);
            let mut erased = sealed.clone();
            open_fields(&mut erased, event_type, &Opening::Erased, subject, event).unwrap();
            assert!(erased.to_string().contains(ERASED));
            assert!(!erased.to_string().contains("Anna"));
            // Another event's id does not open them.
            assert_eq!(
                open_fields(
                    &mut sealed,
                    event_type,
                    &Opening::Key(key),
                    subject,
                    Uuid::from_u128(5)
                ),
                Err(SealError::Tampered)
            );
        }
    }

    fn ids() -> (Uuid, Uuid) {
        (Uuid::from_u128(1), Uuid::from_u128(2))
    }

    #[test]
    fn a_sealed_field_opens_only_for_its_subject_event_and_field() {
        let key = SubjectKey::generate().unwrap();
        let (subject, event) = ids();
        let sealed = key
            .seal(subject, event, "details.contactName", "Анна Смирнова")
            .unwrap();
        assert!(is_sealed(&sealed));
        assert!(!sealed.contains("Анна"), "{sealed}");
        assert_eq!(
            key.open(subject, event, "details.contactName", &sealed),
            Ok("Анна Смирнова".to_owned())
        );
        for (s, e, f) in [
            (Uuid::from_u128(9), event, "details.contactName"),
            (subject, Uuid::from_u128(9), "details.contactName"),
            (subject, event, "details.title"),
        ] {
            assert_eq!(key.open(s, e, f, &sealed), Err(SealError::Tampered));
        }
        let other = SubjectKey::generate().unwrap();
        assert_eq!(
            other.open(subject, event, "details.contactName", &sealed),
            Err(SealError::Tampered)
        );
        // A flipped byte does not open either.
        let mut bytes = sealed.clone().into_bytes();
        let last = bytes.len() - 2;
        bytes[last] = if bytes[last] == b'A' { b'B' } else { b'A' };
        let flipped = String::from_utf8(bytes).unwrap();
        assert!(key
            .open(subject, event, "details.contactName", &flipped)
            .is_err());
        // The same value sealed twice differs (random nonces), so equal values do not show.
        assert_ne!(
            sealed,
            key.seal(subject, event, "details.contactName", "Анна Смирнова")
                .unwrap()
        );
    }

    #[test]
    fn a_wrapped_key_opens_with_its_master_key_and_subject_only() {
        let master = MasterKey::generate().unwrap();
        let key = SubjectKey::generate().unwrap();
        let (subject, event) = ids();
        let wrapped = master.wrap(subject, &key).unwrap();
        let unwrapped = master.unwrap(subject, &wrapped).unwrap();
        let sealed = key.seal(subject, event, "f", "x").unwrap();
        assert_eq!(unwrapped.open(subject, event, "f", &sealed), Ok("x".into()));
        let wrong = MasterKey::generate().unwrap();
        assert!(matches!(
            wrong.unwrap(subject, &wrapped),
            Err(SealError::WrongMasterKey)
        ));
        assert!(master.unwrap(Uuid::from_u128(7), &wrapped).is_err());
        assert!(!wrapped
            .windows(32)
            .any(|w| w == key.expose_for_tests().as_slice()));
    }

    #[test]
    fn master_keys_parse_from_hex_and_never_print() {
        let master = MasterKey::generate().unwrap();
        let again = MasterKey::parse_hex(&master.to_hex()).unwrap();
        assert_eq!(again.to_hex(), master.to_hex());
        assert!(MasterKey::parse_hex("abc").is_err());
        assert!(MasterKey::parse_hex(&"zz".repeat(32)).is_err());
        assert_eq!(format!("{master:?}"), "MasterKey(..)");
        assert_eq!(
            format!("{:?}", SubjectKey::generate().unwrap()),
            "SubjectKey(..)"
        );
    }

    #[test]
    fn blind_tokens_are_stable_per_secret_and_kind() {
        let master = MasterKey::generate().unwrap();
        let index = master.blind_index();
        let phone = index.token("phone", "+79161234567");
        assert_eq!(phone, master.blind_index().token("phone", "+79161234567"));
        assert_eq!(phone.len(), 64);
        // What the read models keep: the same 32 bytes, the value normalized first.
        let digest = index.digest_of("phone", " +79161234567 ");
        let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex, phone);
        assert_ne!(phone, index.token("email", "+79161234567"));
        assert_ne!(phone, index.token("phone", "+79161234568"));
        let other = MasterKey::generate().unwrap().blind_index();
        assert_ne!(phone, other.token("phone", "+79161234567"));
    }

    #[test]
    fn a_sealed_value_starts_in_json_as_the_quoted_prefix() {
        let key = SubjectKey::generate().unwrap();
        let sealed = key.seal(Uuid::nil(), Uuid::nil(), "title", "x").unwrap();
        let json = serde_json::to_vec(&serde_json::json!({ "title": sealed })).unwrap();
        assert!(holds_sealed(&json));
        assert!(!holds_sealed(
            br#"{"title":"s1 is not sealed","comment":null}"#
        ));
    }

    /// Tokens are HMAC-SHA256 as written down in the docs, so a model built by one release
    /// matches values with another's: the answer is computed apart (Python's `hmac`).
    #[test]
    fn blind_tokens_are_the_documented_hmac() {
        let master = MasterKey::parse_hex(&"b3".repeat(32)).unwrap();
        assert_eq!(
            master.blind_index().token("phone", "+79161234567"),
            "167f0b5b919d7cfa62d1f18b894dd96c18855fc8b6d47a446ae95f441f9bffef"
        );
    }
}
