# Two commands on a fresh machine: `make run` serves the platform, `make test` runs every test.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
PORT ?= 8000

.PHONY: install run test lint format services chromium bench clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
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

test: install services chromium lint
	$(BIN)/pytest -n auto --dist worksteal

# make bench                               the FHIR API phases on a fresh PostgreSQL database
# make bench REGISTRY_DB=postgresql://...  insured lookups in a registry loaded by fse seed --synthetic
bench: install services
	$(BIN)/fse bench $(if $(REGISTRY_DB),--registry-db $(REGISTRY_DB))

clean:
	rm -rf $(VENV) var .pytest_cache .ruff_cache *.egg-info
