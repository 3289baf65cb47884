//! Compiles the EventStoreDB protocol (`proto/`) into server stubs, without `protoc`, and
//! copies the published client crates' own stream suites (`tests/api/streams.rs` and
//! `tests/common.rs` of `eventstore` 4.0.0 and `kurrentdb` 1.2.0, as cargo unpacked them) into
//! the build's output directory, unmodified, for `tests/client_suites.rs` to compile. They
//! are never copied into the repository.

use std::path::{Path, PathBuf};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let files = [
        "proto/streams.proto",
        "proto/serverfeatures.proto",
        "proto/gossip.proto",
        "proto/persistent.proto",
    ];
    for f in files.iter().chain(&[
        "proto/shared.proto",
        "proto/status.proto",
        "proto/code.proto",
    ]) {
        println!("cargo:rerun-if-changed={f}");
    }
    let fds = protox::compile(files, ["proto"])?;
    tonic_build::configure()
        .build_client(false)
        .build_server(true)
        .extern_path(".event_store.client.Empty", "()")
        .compile_fds(fds)?;

    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    let packages = locate(&["eventstore", "kurrentdb"]);
    for name in ["eventstore", "kurrentdb"] {
        let target = out.join("suites").join(name);
        std::fs::create_dir_all(&target)?;
        match packages.as_ref().map(|p| p.iter().find(|(n, _)| n == name)) {
            Ok(Some((_, dir))) => {
                for file in ["tests/common.rs", "tests/api/streams.rs"] {
                    let from = dir.join(file);
                    println!("cargo:rerun-if-changed={}", from.display());
                    let to = target.join(Path::new(file).file_name().expect("a file name"));
                    std::fs::copy(&from, &to)
                        .map_err(|e| format!("copying {}: {e}", from.display()))?;
                }
            }
            found => {
                // Only the suite harness fails to build; the node itself does not need them.
                let why = match found {
                    Err(e) => e.clone(),
                    _ => format!("cargo metadata does not list the {name} package"),
                };
                let stub = format!("compile_error!({why:?});\n");
                std::fs::write(target.join("common.rs"), &stub)?;
                std::fs::write(target.join("streams.rs"), &stub)?;
            }
        }
    }
    Ok(())
}

/// The unpacked source directory of each named package, from `cargo metadata`.
fn locate(names: &[&str]) -> Result<Vec<(String, PathBuf)>, String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").map_err(|e| e.to_string())?)
        .join("Cargo.toml");
    let output = std::process::Command::new(cargo)
        .args(["metadata", "--format-version", "1", "--filter-platform"])
        .arg(std::env::var("TARGET").map_err(|e| e.to_string())?)
        .arg("--manifest-path")
        .arg(&manifest)
        .output()
        .map_err(|e| format!("cannot run cargo metadata: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "cargo metadata failed: {}",
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    let meta: serde_json::Value =
        serde_json::from_slice(&output.stdout).map_err(|e| e.to_string())?;
    let mut found = Vec::new();
    for p in meta["packages"].as_array().into_iter().flatten() {
        let name = p["name"].as_str().unwrap_or_default();
        if names.contains(&name) {
            if let Some(manifest) = p["manifest_path"].as_str() {
                let dir = Path::new(manifest)
                    .parent()
                    .expect("a package dir")
                    .to_path_buf();
                found.push((name.to_owned(), dir));
            }
        }
    }
    Ok(found)
}
