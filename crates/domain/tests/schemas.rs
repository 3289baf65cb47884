//! `schemas/events/<Type>.v<N>.json` is generated from the event types and checked in; this
//! test is the generator (rust-analyzer's `ensure_file_contents`). When the code and the files
//! disagree it rewrites the files and fails, so the change shows up in review. It never deletes
//! a file: one that no `(type, version)` of `event_schemas()` produces fails the test by name,
//! for a human to decide (a retired version stays readable through its upcaster, so its schema
//! should be generated from the legacy type rather than linger by hand).

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

fn schemas_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../schemas/events")
}

/// Objects with their keys in sorted order, whatever map serde_json was built with: another
/// crate of the workspace turning on `preserve_order` must not change the generated files.
fn sorted_keys(value: Value) -> Value {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<(String, Value)> = map.into_iter().collect();
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            Value::Object(
                entries
                    .into_iter()
                    .map(|(k, v)| (k, sorted_keys(v)))
                    .collect::<Map<_, _>>(),
            )
        }
        Value::Array(items) => Value::Array(items.into_iter().map(sorted_keys).collect()),
        other => other,
    }
}

#[test]
fn event_schemas_are_up_to_date() {
    let dir = schemas_dir();
    fs::create_dir_all(&dir).expect("create schemas/events");
    let mut expected_files = BTreeSet::new();
    let mut rewritten = Vec::new();
    let every = leadflow_domain::event_schemas()
        .into_iter()
        .chain(leadflow_domain::catalog_event_schemas())
        .chain(leadflow_domain::subject_event_schemas())
        .chain(leadflow_domain::ops_event_schemas());
    let mut unclassified = Vec::new();
    let mut classified = BTreeSet::new();
    // Older versions' schemas stay as they were written: stored payloads of those versions
    // are read forever (through the upcasters), so their description stays too.
    let mut older = BTreeSet::new();
    for (name, version, schema) in every {
        older.extend((1..version).map(|v| format!("{name}.v{v}.json")));
        let file = format!("{name}.v{version}.json");
        let value = serde_json::to_value(&schema).expect("schemas serialise");
        let value = sorted_keys(mark_personal(
            name,
            value,
            &mut classified,
            &mut unclassified,
        ));
        let contents = serde_json::to_string_pretty(&value).expect("schemas serialise") + "\n";
        let path = dir.join(&file);
        if fs::read_to_string(&path).ok().as_deref() != Some(contents.as_str()) {
            fs::write(&path, contents).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
            rewritten.push(file.clone());
        }
        expected_files.insert(file);
    }

    let stale: Vec<String> = fs::read_dir(&dir)
        .expect("read schemas/events")
        .map(|entry| entry.expect("list schemas/events").file_name())
        .map(|name| name.to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".json") && !expected_files.contains(name))
        .filter(|name| !older.contains(name))
        .collect();
    let lost: Vec<&String> = older
        .iter()
        .filter(|file| !dir.join(file).exists())
        .collect();
    assert!(
        lost.is_empty(),
        "schemas/events lost the schemas of older event versions: {lost:?}\n\
         restore them from git: stored payloads of those versions are still read"
    );

    assert!(
        unclassified.is_empty(),
        "string fields neither personal nor not personal (classify each in \
         crates/domain/src/personal.rs, SPEC 3.8):\n{}",
        unclassified.join("\n")
    );
    let named_nothing: Vec<String> = leadflow_domain::personal::FIELDS
        .iter()
        .map(|(e, p, _)| format!("{e} {p}"))
        .filter(|f| !classified.contains(f))
        .collect();
    assert!(
        named_nothing.is_empty(),
        "crates/domain/src/personal.rs classifies fields no event has: {named_nothing:?}"
    );
    assert!(
        rewritten.is_empty(),
        "schemas/events was out of date and has been rewritten: commit the updated files\n\
         rewritten: {rewritten:?}"
    );
    assert!(
        stale.is_empty(),
        "schemas/events holds schemas no event produces: {stale:?}\n\
         remove them, or restore the event version they describe"
    );
}

/// Marks every string field of `schema` (an event's) with `"x-personal": true | false` from
/// `leadflow_domain::personal`, collecting the fields it finds (`"Event path"`) and those it
/// cannot classify. Fields of shared definitions are marked in the definition, so a type used
/// in two places must be classified alike in both (else it is reported).
fn mark_personal(
    event: &str,
    mut schema: Value,
    classified: &mut BTreeSet<String>,
    unclassified: &mut Vec<String>,
) -> Value {
    let mut defs = match schema.as_object_mut().and_then(|o| o.remove("$defs")) {
        Some(Value::Object(defs)) => defs,
        _ => Map::new(),
    };
    let mut walk = Walk {
        event,
        defs: &mut defs,
        classified,
        unclassified,
    };
    walk.node(&mut schema, "");
    if !defs.is_empty() {
        schema
            .as_object_mut()
            .expect("an object schema")
            .insert("$defs".to_owned(), Value::Object(defs));
    }
    schema
}

struct Walk<'a> {
    event: &'a str,
    defs: &'a mut Map<String, Value>,
    classified: &'a mut BTreeSet<String>,
    unclassified: &'a mut Vec<String>,
}

impl Walk<'_> {
    /// Walks `node` at `path`; answers whether a string value sits at `path` itself (through
    /// nullables, unions and references, not through arrays or objects).
    fn node(&mut self, node: &mut Value, path: &str) -> bool {
        let Some(object) = node.as_object_mut() else {
            return false;
        };
        let mut here = false;
        if let Some(Value::String(reference)) = object.get("$ref") {
            let name = reference.rsplit('/').next().unwrap_or_default().to_owned();
            // A recursive type is walked once.
            if let Some(mut def) = self.defs.remove(&name) {
                here |= self.node(&mut def, path);
                self.defs.insert(name, def);
            }
        }
        let types: Vec<&str> = match object.get("type") {
            Some(Value::String(t)) => vec![t.as_str()],
            Some(Value::Array(ts)) => ts.iter().filter_map(Value::as_str).collect(),
            _ => vec![],
        };
        let fixed = object.contains_key("enum") || object.contains_key("const");
        let structured = matches!(
            object.get("format").and_then(Value::as_str),
            Some("uuid" | "date-time")
        );
        if types.contains(&"string") && !fixed && !structured {
            here = true;
        }
        if let Some(Value::Object(properties)) = object.get_mut("properties") {
            for (key, property) in properties.iter_mut() {
                let sub = if path.is_empty() {
                    key.clone()
                } else {
                    format!("{path}.{key}")
                };
                let direct = self.node(property, &sub);
                let items = property
                    .get_mut("items")
                    .map(|items| self.node(items, &format!("{sub}[]")))
                    .unwrap_or(false);
                for (leaf, at) in [(direct, sub.clone()), (items, format!("{sub}[]"))] {
                    if leaf {
                        self.mark(property, &at);
                    }
                }
            }
        }
        for union in ["oneOf", "anyOf", "allOf"] {
            if let Some(Value::Array(branches)) = object.get_mut(union) {
                for branch in branches.iter_mut() {
                    let tag = branch
                        .get("properties")
                        .and_then(Value::as_object)
                        .and_then(|ps| {
                            ps.iter().find_map(|(name, p)| {
                                p.get("const")
                                    .and_then(Value::as_str)
                                    .map(|value| format!("{name}={value}"))
                            })
                        });
                    let at = match tag {
                        Some(tag) => format!("{path}<{tag}>"),
                        None => path.to_owned(),
                    };
                    here |= self.node(branch, &at);
                }
            }
        }
        here
    }

    /// Marks `property` as holding the string field `path`.
    fn mark(&mut self, property: &mut Value, path: &str) {
        let field = format!("{} {path}", self.event);
        match leadflow_domain::personal::class_of(self.event, path) {
            None => self.unclassified.push(field),
            Some(class) => {
                let personal = class == leadflow_domain::personal::Class::Personal;
                if let Some(object) = property.as_object_mut() {
                    match object.get("x-personal").and_then(Value::as_bool) {
                        Some(held) if held != personal => self.unclassified.push(format!(
                            "{field}: a shared definition is classified both ways"
                        )),
                        _ => {
                            object.insert("x-personal".to_owned(), Value::Bool(personal));
                        }
                    }
                }
                self.classified.insert(field);
            }
        }
    }
}

#[test]
fn a_string_field_classified_neither_way_is_reported() {
    #[derive(schemars::JsonSchema)]
    #[allow(dead_code)]
    struct LeadRegistered {
        title: String,
        nickname: Option<String>,
        tags: Vec<String>,
        count: u32,
    }
    let schema = serde_json::to_value(schemars::schema_for!(LeadRegistered)).unwrap();
    let (mut classified, mut unclassified) = (BTreeSet::new(), Vec::new());
    mark_personal("LeadRegistered", schema, &mut classified, &mut unclassified);
    unclassified.sort();
    assert_eq!(
        unclassified,
        [
            "LeadRegistered nickname",
            "LeadRegistered tags[]",
            "LeadRegistered title"
        ],
        "every string field needs its class; numbers need none"
    );
}
