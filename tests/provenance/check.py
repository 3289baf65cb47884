#!/usr/bin/env python3
"""Provenance check: no tracked file is a copy of a third-party package's file.

It compares BYTES ONLY: a tracked file of 512 bytes or more fails the check when it is
byte-identical to a file of a package the build or the tests use:
  - every registry package in `cargo metadata` (the workspace's own members and other path
    packages excluded),
  - the npm packages under tests/node/node_modules and the Python packages in the venv under
    target/pyenv, when the Makefile has installed them.
A copy with a changed byte, a reformatted copy or a translation is not detected: this is a
guard against files copied in verbatim, not a judge of derived work.

Usage: check.py [--repo DIR] [--manifest-path Cargo.toml]
Prints each offending pair (tracked file = package file) and exits 1; exits 0 when none.
"""
import argparse, hashlib, json, os, subprocess, sys, time

MIN_BYTES = 512


def digest(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def tracked(repo):
    """{(size, sha256): [relative path, ...]} of the tracked files of MIN_BYTES or more."""
    out = subprocess.run(["git", "-C", repo, "ls-files", "-z"], check=True,
                         capture_output=True).stdout
    found = {}
    for rel in filter(None, out.decode().split("\0")):
        path = os.path.join(repo, rel)
        if not os.path.isfile(path) or os.path.islink(path):
            continue
        size = os.path.getsize(path)
        if size >= MIN_BYTES:
            found.setdefault((size, digest(path)), []).append(rel)
    return found


def cargo_packages(manifest):
    """(name, version, directory) of every registry package of the workspace's graph."""
    host = subprocess.run(["rustc", "-vV"], check=True, capture_output=True, text=True).stdout
    target = next(l.split(": ", 1)[1] for l in host.splitlines() if l.startswith("host: "))
    meta = json.loads(subprocess.run(
        [os.environ.get("CARGO", "cargo"), "metadata", "--format-version", "1",
         "--filter-platform", target, "--manifest-path", manifest],
        check=True, capture_output=True).stdout)
    members = set(meta["workspace_members"])
    for p in meta["packages"]:
        if p["id"] in members or p.get("source") is None:
            continue  # our own crates and other path packages
        yield f'{p["name"]} {p["version"]}', os.path.dirname(p["manifest_path"])


def installed_packages(repo):
    """The npm and Python package trees the Makefile installs, when present."""
    node = os.path.join(repo, "tests", "node", "node_modules")
    if os.path.isdir(node):
        yield "npm: tests/node/node_modules", node
    pyenv = os.path.join(repo, "target", "pyenv", "lib")
    if os.path.isdir(pyenv):
        for version in sorted(os.listdir(pyenv)):
            site = os.path.join(pyenv, version, "site-packages")
            if os.path.isdir(site):
                yield f"PyPI: target/pyenv/lib/{version}/site-packages", site


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repo", default=os.path.join(os.path.dirname(__file__), "..", ".."),
                        help="the git work tree whose tracked files are checked")
    parser.add_argument("--manifest-path", help="Cargo.toml whose packages are compared "
                        "(default: the repository's)")
    args = parser.parse_args()
    repo = os.path.abspath(args.repo)
    manifest = args.manifest_path or os.path.join(repo, "Cargo.toml")
    started = time.monotonic()
    ours = tracked(repo)
    sizes = {size for size, _ in ours}
    sources = list(cargo_packages(manifest)) + list(installed_packages(repo))
    offences, compared = [], 0
    for label, root in sources:
        if not os.path.isdir(root):
            print(f"warning: {label} is not unpacked at {root}; its files are not compared")
            continue
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames[:] = [d for d in dirnames if d not in (".git", "target")]
            for name in filenames:
                path = os.path.join(dirpath, name)
                try:
                    size = os.path.getsize(path)
                except OSError:
                    continue
                if size not in sizes or os.path.islink(path):
                    continue
                compared += 1
                for rel in ours.get((size, digest(path)), []):
                    offences.append((rel, label, os.path.relpath(path, root)))
    for rel, label, other in sorted(offences):
        print(f"copied: {rel} is byte-identical to {other} of {label}")
    print(f"provenance: {sum(len(v) for v in ours.values())} tracked files of {MIN_BYTES}+ bytes "
          f"against {len(sources)} packages ({compared} same-size files hashed) in "
          f"{time.monotonic() - started:.1f} s: "
          + (f"{len(offences)} copies" if offences else "no copies"))
    return 1 if offences else 0


if __name__ == "__main__":
    sys.exit(main())
