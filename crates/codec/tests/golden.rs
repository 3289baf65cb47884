//! Payloads recorded by earlier builds decode forever. `tests/golden/v1/<Type>.jsonl` holds
//! version-1 payloads exactly as a demo run of the build before sealing (issue 20) stored
//! them (the data subjects' and the operators' events as the build that added them writes
//! them), and `metadata.jsonl` their envelopes; never edit them, add a `v2/` beside them when
//! a version changes again.

use std::fs;
use std::path::PathBuf;

use leadflow_codec::EventMetadata;
use leadflow_domain::{LeadEvent, SubjectId};

fn golden(dir: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/golden")
        .join(dir)
}

fn lines(file: &PathBuf) -> Vec<String> {
    fs::read_to_string(file)
        .unwrap_or_else(|e| panic!("read {}: {e}", file.display()))
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(str::to_owned)
        .collect()
}

#[test]
fn every_recorded_v1_payload_decodes_and_survives_a_round_trip_at_the_current_version() {
    let mut types = Vec::new();
    for entry in fs::read_dir(golden("v1")).expect("tests/golden/v1") {
        let path = entry.unwrap().path();
        let name = path.file_stem().unwrap().to_string_lossy().into_owned();
        if name == "metadata" {
            continue;
        }
        let payloads = lines(&path);
        assert!(!payloads.is_empty(), "{name} has no payload");
        for payload in payloads {
            if let Some(current) = leadflow_codec::lead::current_version(&name) {
                let event = leadflow_codec::lead::decode(&name, 1, payload.as_bytes())
                    .unwrap_or_else(|e| panic!("{name} v1 {payload}: {e}"));
                let again = leadflow_codec::lead::decode(
                    &name,
                    current,
                    &leadflow_codec::lead::encode(&event),
                )
                .unwrap();
                assert_eq!(again, event);
            } else if leadflow_codec::catalog::current_version(&name).is_none() {
                // A subject's or an operator's event. Still at version 1, this build writes
                // exactly the recorded bytes; past it, the upcast decodes at the current version
                // and writes itself again unchanged.
                let (current, upcast) = table_of(&name);
                let written = upcast(&payload);
                if current == 1 {
                    assert_eq!(
                        String::from_utf8(written).unwrap(),
                        payload,
                        "{name} as this build writes it"
                    );
                } else {
                    let again = leadflow_codec::ops::decode(&name, current, &written)
                        .unwrap_or_else(|e| panic!("{name} v{current} of {payload}: {e}"));
                    assert_eq!(leadflow_codec::ops::encode(&again), written, "{name}");
                }
            } else {
                let current = leadflow_codec::catalog::current_version(&name)
                    .unwrap_or_else(|| panic!("{name} is no event of this build"));
                let event = leadflow_codec::catalog::decode(&name, 1, payload.as_bytes())
                    .unwrap_or_else(|e| panic!("{name} v1 {payload}: {e}"));
                let again = leadflow_codec::catalog::decode(
                    &name,
                    current,
                    &leadflow_codec::catalog::encode(&event),
                )
                .unwrap();
                assert_eq!(again, event);
            }
        }
        types.push(name);
    }
    // Every lead, data subject and ops event type existed at version 1 and has recorded
    // payloads.
    let every = leadflow_domain::event_schemas()
        .into_iter()
        .chain(leadflow_domain::subject_event_schemas())
        .chain(leadflow_domain::ops_event_schemas());
    for (name, _, _) in every {
        assert!(types.iter().any(|t| t == name), "no v1 payload of {name}");
    }
}

#[test]
fn a_v1_registration_belongs_to_the_subject_a_registration_mints_today() {
    let payload = &lines(&golden("v1").join("LeadRegistered.jsonl"))[0];
    let LeadEvent::LeadRegistered(e) =
        leadflow_codec::lead::decode("LeadRegistered", 1, payload.as_bytes()).unwrap()
    else {
        panic!("not a registration");
    };
    assert_eq!(e.subject, SubjectId::for_lead(e.lead_id));
    assert!(
        e.details.contact_name.is_some(),
        "the v1 contact reads as it was"
    );
}

#[test]
fn a_v1_ops_action_was_on_the_live_generation_of_a_node_nobody_recorded() {
    use leadflow_domain::ops::Generation;
    for entry in fs::read_dir(golden("v1")).expect("tests/golden/v1") {
        let path = entry.unwrap().path();
        let name = path.file_stem().unwrap().to_string_lossy().into_owned();
        if leadflow_codec::ops::current_version(&name).is_none() {
            continue;
        }
        for payload in lines(&path) {
            let event = leadflow_codec::ops::decode(&name, 1, payload.as_bytes()).unwrap();
            assert_eq!(event.node(), None, "{payload}");
            assert_eq!(event.generation(), Generation::Live, "{payload}");
            assert_eq!(event.model().as_str(), {
                let v: serde_json::Value = serde_json::from_str(&payload).unwrap();
                v["model"].as_str().unwrap().to_owned()
            });
        }
    }
}

#[test]
fn recorded_v1_metadata_decodes() {
    for line in lines(&golden("v1").join("metadata.jsonl")) {
        let meta = EventMetadata::decode(line.as_bytes()).unwrap_or_else(|e| panic!("{line}: {e}"));
        assert_eq!(meta.version, 1);
    }
}

/// The domain's erasure of an event (what the read models apply) and the codec's (every
/// personal field by the classification) agree on every recorded payload.
#[test]
fn erasing_an_event_in_the_domain_and_in_the_codec_agree() {
    use leadflow_codec::seal::{open_fields, Opening};
    let mut held = 0;
    for entry in fs::read_dir(golden("v1")).expect("tests/golden/v1") {
        let path = entry.unwrap().path();
        let name = path.file_stem().unwrap().to_string_lossy().into_owned();
        if leadflow_codec::lead::current_version(&name).is_none() {
            continue;
        }
        for payload in lines(&path) {
            let event = leadflow_codec::lead::decode(&name, 1, payload.as_bytes()).unwrap();
            let mut json: serde_json::Value =
                serde_json::from_slice(&leadflow_codec::lead::encode(&event)).unwrap();
            let id = uuid::Uuid::nil();
            open_fields(&mut json, &name, &Opening::Erased, id, id).unwrap();
            let by_codec = leadflow_codec::lead::decode(
                &name,
                leadflow_codec::lead::current_version(&name).unwrap(),
                &serde_json::to_vec(&json).unwrap(),
            )
            .unwrap();
            assert_eq!(event.without_personal_data(), by_codec, "{name}: {payload}");
            held += usize::from(event.holds_personal_data());
        }
    }
    assert!(
        held > 10,
        "the recorded payloads hold personal data to erase"
    );
}

/// Every recorded payload, encoded at the current version and sealed, opens in its text
/// (`open_text`) to what a tree opens it to (`open_fields`), with a key and as erased: the
/// codec's own field order always lets the text decide.
#[test]
fn sealed_payloads_open_in_their_text_as_in_a_tree() {
    use leadflow_codec::seal::{open_fields, open_text, seal_payload, Opening, SubjectKey};
    let key = SubjectKey::generate().unwrap();
    let (subject, event) = (uuid::Uuid::from_u128(7), uuid::Uuid::from_u128(9));
    let mut opened = 0;
    for entry in fs::read_dir(golden("v1")).expect("tests/golden/v1") {
        let path = entry.unwrap().path();
        let name = path.file_stem().unwrap().to_string_lossy().into_owned();
        let Some(version) = leadflow_codec::lead::current_version(&name) else {
            continue;
        };
        for payload in lines(&path) {
            let decoded = leadflow_codec::lead::decode(&name, 1, payload.as_bytes()).unwrap();
            let plain = leadflow_codec::lead::encode(&decoded);
            let sealed = seal_payload(&plain, &name, &key, subject, event).unwrap();
            for opening in [Opening::Key(key.clone().into()), Opening::Erased] {
                let mut tree: serde_json::Value = serde_json::from_slice(&sealed).unwrap();
                open_fields(&mut tree, &name, &opening, subject, event).unwrap();
                let text = open_text(&sealed, &name, &opening, subject, event)
                    .unwrap()
                    .unwrap_or_else(|| panic!("{name}: undecided in its text: {payload}"));
                let text: serde_json::Value = serde_json::from_slice(&text).unwrap();
                assert_eq!(text, tree, "{name} {opening:?}: {payload}");
                let by_text = leadflow_codec::lead::decode(
                    &name,
                    version,
                    &serde_json::to_vec(&text).unwrap(),
                )
                .unwrap();
                if matches!(opening, Opening::Key(_)) {
                    assert_eq!(by_text, decoded, "{name}: {payload}");
                    opened += usize::from(sealed != plain);
                }
            }
        }
    }
    assert!(
        opened > 10,
        "the recorded payloads hold personal data to seal"
    );
}

/// A v1 payload, decoded and encoded again at the current version.
type Upcast<'a> = dyn Fn(&str) -> Vec<u8> + 'a;

/// The current version of event type `name` and its upcast, whichever aggregate's it is.
fn table_of(name: &str) -> (u32, Box<Upcast<'_>>) {
    use leadflow_codec::{catalog, lead, ops, subject};
    let bad = move |payload: &str, e: leadflow_codec::CodecError| -> ! {
        panic!("{name} v1 {payload}: {e}")
    };
    if let Some(current) = lead::current_version(name) {
        return (
            current,
            Box::new(move |p: &str| {
                lead::encode(&lead::decode(name, 1, p.as_bytes()).unwrap_or_else(|e| bad(p, e)))
            }),
        );
    }
    if let Some(current) = catalog::current_version(name) {
        return (
            current,
            Box::new(move |p: &str| {
                catalog::encode(
                    &catalog::decode(name, 1, p.as_bytes()).unwrap_or_else(|e| bad(p, e)),
                )
            }),
        );
    }
    if let Some(current) = subject::current_version(name) {
        return (
            current,
            Box::new(move |p: &str| {
                subject::encode(
                    &subject::decode(name, 1, p.as_bytes()).unwrap_or_else(|e| bad(p, e)),
                )
            }),
        );
    }
    let current =
        ops::current_version(name).unwrap_or_else(|| panic!("{name} is no event of this build"));
    (
        current,
        Box::new(move |p: &str| {
            ops::encode(&ops::decode(name, 1, p.as_bytes()).unwrap_or_else(|e| bad(p, e)))
        }),
    )
}

/// The checked-in JSON Schema of `event` at `version` (`schemas/events/<Type>.v<N>.json`).
fn schema(event: &str, version: u32) -> jsonschema::Validator {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../schemas/events")
        .join(format!("{event}.v{version}.json"));
    let raw = fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    let schema: serde_json::Value = serde_json::from_str(&raw).unwrap();
    jsonschema::validator_for(&schema).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Every recorded v1 payload is valid under the v1 schema, and what it upcasts to is valid
/// under the current version's schema: both versions of each event are described, and the
/// upcaster's output is what a consumer of the current schema expects.
#[test]
fn recorded_v1_payloads_validate_under_the_v1_schema_and_upcast_under_the_current_one() {
    let mut checked = 0;
    for entry in fs::read_dir(golden("v1")).expect("tests/golden/v1") {
        let path = entry.unwrap().path();
        let name = path.file_stem().unwrap().to_string_lossy().into_owned();
        if name == "metadata" {
            continue;
        }
        let v1 = schema(&name, 1);
        let (current, upcast) = table_of(&name);
        let now = schema(&name, current);
        for payload in lines(&path) {
            let value: serde_json::Value = serde_json::from_str(&payload).unwrap();
            if let Err(e) = v1.validate(&value) {
                panic!("{name} v1 payload invalid under its v1 schema: {e}\n{payload}");
            }
            let upcast: serde_json::Value = serde_json::from_slice(&upcast(&payload)).unwrap();
            if let Err(e) = now.validate(&upcast) {
                panic!("{name} upcast to v{current} invalid under its schema: {e}\n{upcast}");
            }
            checked += 1;
        }
    }
    assert!(checked >= 84, "only {checked} payloads checked");
}
