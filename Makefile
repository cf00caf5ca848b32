# melflow: `make help` lists the targets.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.install-stamp
PROFILE ?= default
export PREFECT_SERVER_ANALYTICS_ENABLED := false
export DO_NOT_TRACK := true
export MLFLOW_DISABLE_TELEMETRY := true

.DEFAULT_GOAL := help
.PHONY: help install deps-system run test test-fast lint bench bench-quick clean

help: ## Show this help
	@grep -hE '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  \033[36m%-12s\033[0m %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $(STAMP)

install: $(STAMP) ## Create .venv (torch CPU first, then melflow[dev]); idempotent

deps-system: ## Debian packages the tests use (chromium renders report.html); needs root
	@command -v chromium >/dev/null || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null; \
	  else echo "chromium missing and not root: its report test will be skipped" >&2; fi; }

run: install ## Run the whole pipeline on the built-in demo corpus (PROFILE=default)
	$(BIN)/melflow run --profile $(PROFILE)

test: install deps-system ## Run the full test suite (what CI runs)
	$(BIN)/pytest -q -p no:cacheprovider

test-fast: install ## Unit tests only (no slow or integration tests)
	$(BIN)/pytest -q -m "not slow and not integration"

lint: install ## ruff + mypy
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

bench: install ## Benchmarks vs the naive baseline -> bench/results/<UTC>.json + README table
	$(BIN)/python -m bench.run

bench-quick: install ## A small benchmark run (< 3 min, no targets asserted)
	$(BIN)/python -m bench.run --quick

clean: ## Remove generated data, caches and the venv
	rm -rf data $(VENV) .pytest_cache .mypy_cache .ruff_cache *.egg-info
