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
        .chain(leadflow_domain::catalog_event_schemas());
    for (name, version, schema) in every {
        let file = format!("{name}.v{version}.json");
        let value = sorted_keys(serde_json::to_value(&schema).expect("schemas serialise"));
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
        .collect();

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
