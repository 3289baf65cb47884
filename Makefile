# leadflow: two commands do everything on a fresh machine: `make run` and `make test`.
# Speed targets live in `make bench`, never in timed tests.

CARGO ?= cargo
BENCH ?=
DATA ?= data
LISTEN ?= 127.0.0.1:8080

# Crates that must never appear under the pure domain (IO, async runtimes, servers, stores).
IMPURE := tokio|rusqlite|libsqlite3-sys|axum|hyper|mio|eventstore|tonic|reqwest|async-std

PYENV := target/pyenv
NODE_TESTS := tests/node

.PHONY: help run test lint purity provenance unit smoke bench schemas clean

help: ## list the targets
	@grep -E '^[a-z]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-8s %s\n", $$1, $$2}'

run: ## build and serve GraphQL + GraphiQL on 127.0.0.1:8080 with demo data (created on first start)
	$(CARGO) build --release -p leadflow-cli
	./target/release/leadflow serve --data-dir $(DATA) --listen $(LISTEN) --demo

test: lint unit smoke ## everything CI runs: fmt check, clippy -D warnings, domain purity, every test, the Python smoke

lint: purity provenance ## fmt check, clippy with -D warnings, the domain purity check, the provenance check
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

purity: ## prove leadflow-domain pulls in no IO, async runtime or store, and the read side never the write side
	@deps=$$($(CARGO) tree -p leadflow-domain -e normal --prefix none | sed 's/ .*//' | sort -u); \
	bad=$$(echo "$$deps" | grep -Ex '$(IMPURE)' || true); \
	if [ -n "$$bad" ]; then echo "leadflow-domain must stay pure, but depends on: $$bad"; exit 1; fi; \
	echo "leadflow-domain is pure: $$(echo "$$deps" | wc -l) crates, none of $(IMPURE)"
	@if $(CARGO) tree -p leadflow-projections -e normal --prefix none | sed 's/ .*//' | grep -qx leadflow-engine; then \
	  echo "leadflow-projections must not depend on leadflow-engine (the read side needs the codec and the store, never the write side)"; exit 1; fi; \
	echo "leadflow-projections does not depend on leadflow-engine"

provenance: ## no tracked file of 512+ bytes is byte-identical to a file of a package the build or tests use
	python3 tests/provenance/check.py
	python3 tests/provenance/test_check.py

unit: ## every test of the workspace
	$(CARGO) test --workspace --all-targets
	$(CARGO) test --workspace --doc

# The binary comes from the test build (same features, nothing rebuilt after `make unit`);
# `cargo build -p leadflow-cli` would resolve other features and link every dependency again.
smoke: $(PYENV)/.installed $(NODE_TESTS)/node_modules/.installed ## independent clients against the binary: kurrentdbclient (Python) on `leadflow node`, graphql-js and graphql-core introspection on `leadflow serve`, DuckDB on `export parquet`
	$(CARGO) test --workspace --all-targets --no-run
	$(PYENV)/bin/python tests/python/smoke_kurrentdb.py target/debug/leadflow
	$(PYENV)/bin/python tests/python/introspection.py target/debug/leadflow
	$(PYENV)/bin/python tests/python/parquet_export.py target/debug/leadflow
	node $(NODE_TESTS)/introspection.mjs target/debug/leadflow

$(NODE_TESTS)/node_modules/.installed: $(NODE_TESTS)/package-lock.json
	cd $(NODE_TESTS) && npm ci --no-audit --no-fund --loglevel=error
	touch $@

$(PYENV)/.installed: tests/python/requirements.txt
	python3 -m venv $(PYENV)
	$(PYENV)/bin/pip install --quiet --disable-pip-version-check -r tests/python/requirements.txt
	touch $@

bench: ## the figures of SPEC section 9 beside their raw limits (BENCH=name runs one, LEADS=n sizes the read side)
	$(CARGO) build --release -p leadflow-bench -p leadflow-cli
	./target/release/leadflow-bench $(if $(BENCH),--bench $(BENCH)) $(if $(LEADS),--leads $(LEADS)) --dir target/bench

schemas: ## regenerate schemas/ from the Rust types
	$(CARGO) test -p leadflow-domain --test schemas >/dev/null 2>&1 || true
	$(CARGO) test -p leadflow-domain --test schemas
	$(CARGO) test -p leadflow-graphql --test sdl >/dev/null 2>&1 || true
	$(CARGO) test -p leadflow-graphql --test sdl

clean: ## remove build output and benchmark data
	$(CARGO) clean
