# Two commands on a fresh machine: `make run` serves the platform, `make test` runs every test.
# Installs come from the hashed lock files in requirements/ (`make lock` renews them).
# The newest supported Python here (3.13, then 3.12, then 3.11), or `make test PYTHON=python3.11`.
ifndef PYTHON
PYTHON := $(shell .ci/python)
endif
VENV ?= .venv
BIN := $(VENV)/bin
# one stamp per interpreter: another PYTHON rebuilds the virtualenv with it
STAMP := $(VENV)/.installed-$(notdir $(PYTHON))
PORT ?= 8000
# `make lock` moves every pin to the newest release allowed; `make lock LOCK_FLAGS=` keeps the
# pins and only adds or drops what pyproject.toml now asks
LOCK_FLAGS ?= --upgrade
COMPILE = $(BIN)/uv pip compile pyproject.toml --universal --generate-hashes --python-version 3.11 \
	--custom-compile-command "make lock" --quiet

.PHONY: install run test lint format services chromium bench soak clean lock

$(STAMP): requirements/dev.lock pyproject.toml
	@.ci/venv "$(PYTHON)" "$(VENV)"
	$(BIN)/python -m pip install -q --require-hashes -r requirements/dev.lock
	$(BIN)/python -m pip install -q --no-deps --no-build-isolation -e .
	@touch $(STAMP)

install: $(STAMP)

run: install
	$(BIN)/fse migrate
	$(BIN)/fse seed --demo
	FSE_PORT=$(PORT) $(BIN)/fse serve

services:
	@bash .ci/services

chromium:
	@command -v chromium >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }
	@command -v chromium >/dev/null || { echo "chromium is missing: apt-get install chromium"; exit 1; }

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

# Two pytest runs: Playwright's sync API and pytest-asyncio cannot share a worker process
# (tests/test_suite_layout.py says why).
test: install services chromium lint
	$(BIN)/pytest -n auto --dist worksteal tests
	$(BIN)/pytest -n auto --dist worksteal e2e

# The benchmarks (bench/, beside the product: not in the wheel, not an fse command):
# make bench                               every phase, each on a fresh PostgreSQL database
# make bench REGISTRY_DB=postgresql://...  insured lookups in a registry loaded by fse seed --synthetic
# make bench ARGS="--only-pharmacy"        any option of python -m bench --help
# make soak                                open-loop Claim/$submit, 40 per second for 10 minutes
# make soak ARGS="--rate 20 --minutes 1"   another rate or duration (not in make test)
bench: install services
	$(BIN)/python -m bench $(if $(REGISTRY_DB),--registry-db $(REGISTRY_DB)) $(ARGS)

soak: install services
	$(BIN)/python -m bench --only-soak $(ARGS)

# uv (a dev dependency) resolves for every supported Python, with markers; installing needs pip only
lock: install
	$(COMPILE) $(LOCK_FLAGS) --extra dev -o requirements/dev.lock
	$(COMPILE) $(LOCK_FLAGS) --constraint requirements/dev.lock -o requirements/runtime.lock

clean:
	rm -rf $(VENV) var .pytest_cache .ruff_cache *.egg-info
