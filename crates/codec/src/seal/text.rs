//! Opening sealed fields in a payload's JSON text, without building a JSON tree: one pass over
//! the bytes finds each string a personal path of the event type reaches, and a copy of the
//! text takes the opened value in its place. The typed decode then reads that copy as it reads
//! an unsealed payload. [`super::open_fields`] on a `serde_json::Value` says what the result
//! must be; a test holds the two equal on every recorded payload.
//!
//! A tag a path filters on (`result<result=postponed>`) may come after the sealed value in its
//! object (a sealed payload's keys are in alphabetical order): such a string is decided when
//! its object closes. Text the pass does not expect (an escape in a key or a sealed value, or
//! no JSON at all) is "undecided", and the caller opens it through the tree instead.

use uuid::Uuid;

use super::{paths_of, Opening, SealError, Step, ERASED};

/// An object's string members read so far: (key, raw contents).
type Members<'a> = Vec<(&'a [u8], &'a [u8])>;

/// One level of the JSON nesting around the string being looked at.
enum Frame<'a> {
    /// An object (numbered in the order they open): the key of the member being read, and
    /// the string members read so far (the tags a path may filter on).
    Object {
        id: usize,
        key: &'a [u8],
        seen: Members<'a>,
    },
    Array,
}

/// A tag a path asks of an object that had not been read when the string was: (the object's
/// number, the tag, the value it must have).
type Wanted = (usize, &'static str, &'static str);

/// A string a personal path reaches if its objects' tags, read later, agree.
struct Pending {
    start: usize,
    end: usize,
    path: &'static str,
    wanted: Vec<Wanted>,
}

struct Scan<'a> {
    text: &'a [u8],
    at: usize,
    frames: Vec<Frame<'a>>,
    objects: usize,
    paths: &'static [(&'static str, Vec<Step<'static>>)],
    /// Each personal string found: the range of its contents (inside the quotes), its path.
    found: Vec<(usize, usize, &'static str)>,
    pending: Vec<Pending>,
    /// The string members of closed objects pending strings wait on, by number.
    closed: Vec<(usize, Members<'a>)>,
}

/// Not decided here: the caller opens through the tree.
struct Undecided;

impl<'a> Scan<'a> {
    fn peek(&mut self) -> Result<u8, Undecided> {
        while let Some(&b) = self.text.get(self.at) {
            if !matches!(b, b' ' | b'\t' | b'\n' | b'\r') {
                return Ok(b);
            }
            self.at += 1;
        }
        Err(Undecided)
    }

    fn expect(&mut self, byte: u8) -> Result<(), Undecided> {
        if self.peek()? != byte {
            return Err(Undecided);
        }
        self.at += 1;
        Ok(())
    }

    /// A string at `self.at` (its opening quote): the range of its raw contents.
    fn string(&mut self) -> Result<(usize, usize), Undecided> {
        self.expect(b'"')?;
        let start = self.at;
        loop {
            match self.text.get(self.at) {
                Some(b'"') => {
                    self.at += 1;
                    return Ok((start, self.at - 1));
                }
                Some(b'\\') => self.at += 2,
                Some(_) => self.at += 1,
                None => return Err(Undecided),
            }
        }
    }

    fn value(&mut self) -> Result<(), Undecided> {
        match self.peek()? {
            b'{' => self.object(),
            b'[' => self.array(),
            b'"' => {
                let (start, end) = self.string()?;
                self.string_value(start, end)
            }
            _ => {
                // A number, true, false or null: up to the next delimiter.
                let start = self.at;
                while let Some(&b) = self.text.get(self.at) {
                    if matches!(b, b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r') {
                        break;
                    }
                    self.at += 1;
                }
                if self.at == start {
                    return Err(Undecided);
                }
                Ok(())
            }
        }
    }

    fn object(&mut self) -> Result<(), Undecided> {
        self.expect(b'{')?;
        self.frames.push(Frame::Object {
            id: self.objects,
            key: b"",
            seen: Vec::new(),
        });
        self.objects += 1;
        if self.peek()? == b'}' {
            self.at += 1;
            self.close();
            return Ok(());
        }
        loop {
            let (start, end) = self.string()?;
            let key = &self.text[start..end];
            if key.contains(&b'\\') {
                return Err(Undecided);
            }
            if let Some(Frame::Object { key: current, .. }) = self.frames.last_mut() {
                *current = key;
            }
            self.expect(b':')?;
            self.value()?;
            match self.peek()? {
                b',' => self.at += 1,
                b'}' => {
                    self.at += 1;
                    self.close();
                    return Ok(());
                }
                _ => return Err(Undecided),
            }
        }
    }

    /// The object being read ends: its string members are kept if a pending string waits on
    /// one of its tags.
    fn close(&mut self) {
        if let Some(Frame::Object { id, seen, .. }) = self.frames.pop() {
            let waited_on = self
                .pending
                .iter()
                .any(|p| p.wanted.iter().any(|w| w.0 == id));
            if waited_on {
                self.closed.push((id, seen));
            }
        }
    }

    fn array(&mut self) -> Result<(), Undecided> {
        self.expect(b'[')?;
        self.frames.push(Frame::Array);
        if self.peek()? == b']' {
            self.at += 1;
            self.frames.pop();
            return Ok(());
        }
        loop {
            self.value()?;
            match self.peek()? {
                b',' => self.at += 1,
                b']' => {
                    self.at += 1;
                    self.frames.pop();
                    return Ok(());
                }
                _ => return Err(Undecided),
            }
        }
    }

    /// A string that is a value (not a key), its contents at `start..end`.
    fn string_value(&mut self, start: usize, end: usize) -> Result<(), Undecided> {
        for (path, steps) in self.paths {
            let Some(wanted) = reaches(&self.frames, steps) else {
                continue;
            };
            if self.text[start..end].contains(&b'\\') {
                return Err(Undecided);
            }
            if wanted.is_empty() {
                self.found.push((start, end, path));
                break;
            }
            self.pending.push(Pending {
                start,
                end,
                path,
                wanted,
            });
        }
        if let Some(Frame::Object { key, seen, .. }) = self.frames.last_mut() {
            seen.push((key, &self.text[start..end]));
        }
        Ok(())
    }

    /// The personal strings, in text order: those found at once, and the pending ones whose
    /// tags agreed once their objects were read (the first path that reaches a string
    /// opens it, as in the tree).
    fn personal(mut self) -> Vec<(usize, usize, &'static str)> {
        for p in std::mem::take(&mut self.pending) {
            let agreed = p.wanted.iter().all(|(id, tag, value)| {
                self.closed.iter().any(|(closed, seen)| {
                    closed == id
                        && seen
                            .iter()
                            .any(|(k, v)| *k == tag.as_bytes() && *v == value.as_bytes())
                })
            });
            if agreed && !self.found.iter().any(|f| f.0 == p.start) {
                self.found.push((p.start, p.end, p.path));
            }
        }
        self.found.sort_by_key(|f| f.0);
        self.found
    }
}

/// Whether the path `steps` reaches a string nested in `frames` (the string itself is the
/// node below the last frame), as [`super::open_fields`] walks a tree: `None` if not, else
/// the tags still to be read that must agree (none: it does). The nesting is matched first,
/// the tags read so far after it.
fn reaches(frames: &[Frame<'_>], steps: &'static [Step<'static>]) -> Option<Vec<Wanted>> {
    let mut node = 0;
    let mut tags = Vec::new();
    for step in steps {
        let Some(Frame::Object { key, .. }) = frames.get(node) else {
            return None;
        };
        if *key != step.name.as_bytes() {
            return None;
        }
        node += 1;
        if step.each {
            if !matches!(frames.get(node), Some(Frame::Array)) {
                return None;
            }
            node += 1;
        }
        if let Some(tag) = step.tag {
            tags.push((node, tag));
        }
    }
    if node != frames.len() {
        return None;
    }
    let mut wanted = Vec::new();
    for (node, (tag, value)) in tags {
        // The tagged node must be an object holding `tag` = `value`.
        let Some(Frame::Object { id, seen, .. }) = frames.get(node) else {
            return None;
        };
        match seen.iter().find(|(k, _)| *k == tag.as_bytes()) {
            Some((_, v)) if *v == value.as_bytes() => {}
            Some(_) => return None,
            None => wanted.push((*id, tag, value)),
        }
    }
    Some(wanted)
}

/// `payload` (JSON text of `event_type`, sealed by [`super::seal_fields`]) with every personal
/// field opened by `opening`, as JSON text; `Ok(None)`: undecided here, open it through the
/// tree ([`super::open_fields`]). Every string a personal path reaches must be sealed, as there.
pub fn open_text(
    payload: &[u8],
    event_type: &str,
    opening: &Opening,
    subject: Uuid,
    event: Uuid,
) -> Result<Option<Vec<u8>>, SealError> {
    let mut scan = Scan {
        text: payload,
        at: 0,
        frames: Vec::new(),
        objects: 0,
        paths: paths_of(event_type),
        found: Vec::new(),
        pending: Vec::new(),
        closed: Vec::new(),
    };
    if scan.value().is_err() || scan.peek().is_ok() {
        return Ok(None);
    }
    let mut out = Vec::with_capacity(payload.len());
    let mut copied = 0;
    for (start, end, path) in scan.personal() {
        // The contents of a sealed value are base64 and the prefix: no escapes (checked).
        let text = std::str::from_utf8(&payload[start..end])
            .map_err(|e| SealError::Malformed(e.to_string()))?;
        let plain = match opening {
            Opening::Key(key) => key.open(subject, event, path, text)?,
            Opening::Erased => ERASED.to_owned(),
        };
        out.extend_from_slice(&payload[copied..start - 1]);
        serde_json::to_writer(&mut out, &plain).expect("a string serializes");
        copied = end + 1;
    }
    out.extend_from_slice(&payload[copied..]);
    Ok(Some(out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::seal::{open_fields, seal_fields, SubjectKey};

    fn sealed(payload: serde_json::Value, event_type: &str, key: &SubjectKey) -> Vec<u8> {
        let mut payload = payload;
        seal_fields(&mut payload, event_type, key, Uuid::nil(), Uuid::nil()).unwrap();
        serde_json::to_vec(&payload).unwrap()
    }

    fn by_tree(text: &[u8], event_type: &str, opening: &Opening) -> serde_json::Value {
        let mut value: serde_json::Value = serde_json::from_slice(text).unwrap();
        open_fields(&mut value, event_type, opening, Uuid::nil(), Uuid::nil()).unwrap();
        value
    }

    fn by_text(text: &[u8], event_type: &str, opening: &Opening) -> Option<serde_json::Value> {
        open_text(text, event_type, opening, Uuid::nil(), Uuid::nil())
            .unwrap()
            .map(|t| serde_json::from_slice(&t).unwrap())
    }

    #[test]
    fn tagged_array_items_open_as_through_the_tree_and_others_stay() {
        let key = SubjectKey::generate().unwrap();
        let payload = serde_json::json!({
            "changes": [
                {"field": "phones", "value": ["+79161112233", "+79161112244"]},
                {"field": "source", "value": "s1:not-a-personal-field"},
                {"field": "title", "value": "A \"quoted\" title \\ with escapes"},
            ],
        });
        let text = sealed(payload, "LeadDetailsUpdated", &key);
        for opening in [Opening::Key(key.clone().into()), Opening::Erased] {
            let tree = by_tree(&text, "LeadDetailsUpdated", &opening);
            assert_eq!(
                by_text(&text, "LeadDetailsUpdated", &opening),
                Some(tree),
                "{opening:?}"
            );
        }
        let opened = by_text(
            &text,
            "LeadDetailsUpdated",
            &Opening::Key(key.clone().into()),
        )
        .unwrap();
        assert_eq!(opened["changes"][0]["value"][1], "+79161112244");
        assert_eq!(opened["changes"][1]["value"], "s1:not-a-personal-field");
        assert_eq!(
            opened["changes"][2]["value"],
            "A \"quoted\" title \\ with escapes"
        );
    }

    #[test]
    fn a_tag_after_its_value_decides_once_its_object_is_read() {
        let key = SubjectKey::generate().unwrap();
        let text = sealed(
            serde_json::json!({"via": {"kind": "jump", "reason": "why"}}),
            "LeadStageChanged",
            &key,
        );
        let reordered = String::from_utf8(text)
            .unwrap()
            .replace(r#"{"kind":"jump","reason":"#, r#"{"reason":"#)
            .replace(r#""}}"#, r#"","kind":"jump"}}"#);
        let opening = Opening::Key(key.into());
        let tree = by_tree(reordered.as_bytes(), "LeadStageChanged", &opening);
        assert_eq!(tree["via"]["reason"], "why");
        assert_eq!(
            by_text(reordered.as_bytes(), "LeadStageChanged", &opening),
            Some(tree)
        );
        // A tag that disagrees, read after the value: the string is not personal there.
        let other = reordered.replace(r#""kind":"jump""#, r#""kind":"step""#);
        let tree = by_tree(other.as_bytes(), "LeadStageChanged", &opening);
        assert!(tree["via"]["reason"].as_str().unwrap().starts_with("s1:"));
        assert_eq!(
            by_text(other.as_bytes(), "LeadStageChanged", &opening),
            Some(tree)
        );
    }

    #[test]
    fn a_personal_string_left_plain_is_refused_as_through_the_tree() {
        let payload = br#"{"comment":"plain text"}"#;
        let opening = Opening::Key(SubjectKey::generate().unwrap().into());
        assert!(open_text(
            payload,
            "LeadDisqualified",
            &opening,
            Uuid::nil(),
            Uuid::nil()
        )
        .is_err());
    }

    #[test]
    fn text_that_is_not_json_is_left_to_the_tree() {
        let opening = Opening::Erased;
        for text in [&b"{\"comment\":"[..], b"{\"comment\":\"x\"} trailing", b""] {
            assert_eq!(
                open_text(text, "LeadDisqualified", &opening, Uuid::nil(), Uuid::nil()).unwrap(),
                None
            );
        }
    }
}
