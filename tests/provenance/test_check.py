#!/usr/bin/env python3
"""The provenance check fails on a file planted from a package and passes without it.

A temporary git tree gets one file of our own and then a verbatim copy of a registry
package's file (the first of 512+ bytes found in `cargo metadata`'s packages); the check,
run against the repository's packages, passes before the plant and names the pair after.
"""
import json, os, shutil, subprocess, sys, tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", ".."))
CHECK = os.path.join(HERE, "check.py")


def run(tree):
    return subprocess.run([sys.executable, CHECK, "--repo", tree,
                           "--manifest-path", os.path.join(REPO, "Cargo.toml")],
                          capture_output=True, text=True)


def a_package_file():
    meta = json.loads(subprocess.run(
        [os.environ.get("CARGO", "cargo"), "metadata", "--format-version", "1",
         "--manifest-path", os.path.join(REPO, "Cargo.toml")],
        check=True, capture_output=True).stdout)
    for p in meta["packages"]:
        if p.get("source") and p["name"] == "serde":
            path = os.path.join(os.path.dirname(p["manifest_path"]), "src", "lib.rs")
            if os.path.getsize(path) >= 512:
                return path, f'serde {p["version"]}'
    raise SystemExit("no serde package in cargo metadata")


def main():
    failures = 0
    with tempfile.TemporaryDirectory() as tree:
        subprocess.run(["git", "init", "-q", tree], check=True)
        with open(os.path.join(tree, "ours.rs"), "w") as f:
            f.write("// written here\n" * 64)
        subprocess.run(["git", "-C", tree, "add", "."], check=True)
        clean = run(tree)
        ok = clean.returncode == 0 and "no copies" in clean.stdout
        print(("ok: " if ok else "FAIL: ") + "a tree without copies passes")
        failures += not ok

        source, label = a_package_file()
        shutil.copy(source, os.path.join(tree, "planted.rs"))
        subprocess.run(["git", "-C", tree, "add", "."], check=True)
        planted = run(tree)
        ok = (planted.returncode == 1
              and f"copied: planted.rs is byte-identical to src/lib.rs of {label}" in planted.stdout)
        print(("ok: " if ok else "FAIL: ") + "a planted copy fails and is named with its package")
        if not ok:
            print(planted.stdout, planted.stderr)
        failures += not ok
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
