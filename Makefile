# The two commands a newcomer needs: `make run` and `make test`. Both bootstrap .venv.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
CONFIG ?= orchestrator.example.toml

.DEFAULT_GOAL := help
.PHONY: help run test test-fast lint fmt bench docs clean

help:
	@echo "make run    - run the most complete thing on the embedded default ($(CONFIG))"
	@echo "make test   - all tests: unit, integration (own redis-server), e2e"
	@echo "make lint   - ruff + mypy --strict"
	@echo "make fmt    - ruff format + import sort"
	@echo "make bench  - side-by-side benchmarks (long)"
	@echo "make docs   - regenerate the README's config reference"
	@echo "make clean  - remove the venv, caches and run state"

# (Re)install when the venv is missing or pyproject.toml changed since the last install.
$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

# The most complete thing on the embedded default: embedded Redis and simulator, the service with
# the three example strategies trading on their sub-accounts, a live status screen (status lines
# when stdout is not a terminal). Ctrl-C stops it cleanly (every order cancelled).
# `make run RUN_ARGS="--duration 30"` stops by itself.
RUN_ARGS ?=
run: $(STAMP)
	$(BIN)/orchestrator run --config $(CONFIG) $(RUN_ARGS)

# pytest's exit 5 means "no tests collected": not a failure of the suite.
test: $(STAMP)
	$(BIN)/python -m pytest tests -m "" ; rc=$$?; [ $$rc -eq 5 ] && exit 0; exit $$rc

test-fast: $(STAMP)
	$(BIN)/python -m pytest tests -m "not integration and not e2e"

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

fmt: $(STAMP)
	$(BIN)/ruff check --fix --select I .
	$(BIN)/ruff format .

bench: $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[dev,bench]'
	$(BIN)/orchestrator bench

docs: $(STAMP)
	$(BIN)/python -m orchestrator.config_doc --write README.md

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .run build *.egg-info
