//! Compiles the EventStoreDB / KurrentDB protocol into server stubs, without `protoc`, from the
//! `protos/` folder of the `kurrentdb` 1.2.0 package: a build dependency pinned exactly, so that
//! updating the test clients never changes the server's protocol by accident. It also copies
//! the published client crates' own stream suites (`tests/api/streams.rs` and
//! `tests/common.rs` of `eventstore` 4.0.0 and `kurrentdb` 1.2.0, as cargo unpacked them) into
//! the build's output directory, unmodified, for `tests/*_suite.rs` to compile. Neither is
//! ever copied into the repository.

use std::path::{Path, PathBuf};

/// The package the protocol comes from: `[build-dependencies]` in `Cargo.toml`.
const PROTOCOL_PACKAGE: &str = "kurrentdb";

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protos = match protocol_dir() {
        Ok(dir) => dir,
        Err(why) => {
            eprintln!(
                "leadflow-esdb-node: cannot find the protocol: {why}; check that `{PROTOCOL_PACKAGE} = \"=1.2.0\"` is in this crate's [build-dependencies] and that `cargo metadata` runs"
            );
            std::process::exit(1);
        }
    };
    let files = [
        "streams.proto",
        "serverfeatures.proto",
        "gossip.proto",
        "persistent.proto",
    ];
    for f in files
        .iter()
        .chain(&["shared.proto", "status.proto", "code.proto"])
    {
        println!("cargo:rerun-if-changed={}", protos.join(f).display());
    }
    let fds = protox::compile(files, [&protos])?;
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

/// The `protos/` folder of this crate's `kurrentdb` build dependency (not of the test client,
/// whose version may move on its own).
fn protocol_dir() -> Result<PathBuf, String> {
    let meta = metadata()?;
    let ours = meta["resolve"]["nodes"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|n| {
            n["id"].as_str().is_some_and(|id| {
                meta["packages"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|p| p["id"] == id && p["name"] == env!("CARGO_PKG_NAME"))
            })
        })
        .ok_or("cargo metadata does not list this crate")?;
    let build_dep = ours["deps"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|d| {
            d["name"] == PROTOCOL_PACKAGE
                && d["dep_kinds"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|k| k["kind"] == "build")
        })
        .and_then(|d| d["pkg"].as_str())
        .ok_or_else(|| format!("no `{PROTOCOL_PACKAGE}` build dependency"))?;
    let manifest = meta["packages"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|p| p["id"] == build_dep)
        .and_then(|p| p["manifest_path"].as_str())
        .ok_or_else(|| format!("no package {build_dep}"))?;
    let dir = Path::new(manifest)
        .parent()
        .ok_or("a manifest without a folder")?
        .join("protos");
    if !dir.join("streams.proto").is_file() {
        return Err(format!("{} has no streams.proto", dir.display()));
    }
    Ok(dir)
}

fn metadata() -> Result<serde_json::Value, String> {
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
    serde_json::from_slice(&output.stdout).map_err(|e| e.to_string())
}

/// The unpacked source directory of each named package, from `cargo metadata`.
fn locate(names: &[&str]) -> Result<Vec<(String, PathBuf)>, String> {
    let meta = metadata()?;
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
