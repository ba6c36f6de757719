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
	STORE_URL='$(STORE_URL)' PORT='$(PORT)' $(BIN)/gunicorn --bind 127.0.0.1:$(PORT) \
		--workers 1 --threads 8 --access-logfile - app:app

lint: $(DEV_STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(DEV_STAMP)
	$(BIN)/mypy .

pytest: $(DEV_STAMP)
	$(BIN)/pytest

test: lint typecheck pytest

bench: $(DEV_STAMP)
	$(BIN)/python -m bench.ledger_bench --store all --write docs/benchmarks.md
	$(BIN)/python -m bench.webhook_bench --store all --write docs/benchmarks.md
	$(BIN)/python -m bench.tip_bench --store all --write docs/benchmarks.md
	$(BIN)/python -m bench.reconcile_bench --write docs/benchmarks.md

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis
