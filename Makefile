# Thin wrappers over the CLI and pytest. `make run` and `make test` set up .venv on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: help install lint run test migrate status token bench openapi schema-diagram docs clean
.DEFAULT_GOAL := help

help:  ## this list: each target and what it does
	@awk -F ':.*## ' '/^[a-z][a-z-]*:.*## / {printf "  make %-15s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test,lint,bench]'
	touch $@

install: $(BIN)/.installed  ## create .venv with the package and its test, lint and bench tools

# Each linter runs, whatever the one before found; `make lint` fails if any of them did.
LINTERS := "$(BIN)/ruff check ." "$(BIN)/ruff format --check ." "$(BIN)/mypy" \
	"$(BIN)/squawk --config .squawk.toml migrations/*.sql" "$(BIN)/sqlfluff lint --processes 2 sql migrations" \
	"$(BIN)/python -m encounters_service.lint_plpgsql"

lint: $(BIN)/.installed  ## ruff, mypy, squawk, sqlfluff, plpgsql_check; fails on any finding (README "Lint")
	@failed=""; for linter in $(LINTERS); do echo "+ $$linter"; $$linter || failed="$$failed $${linter#$(BIN)/}"; done; \
		if [ -n "$$failed" ]; then echo "make lint: findings from:$$failed"; exit 1; fi

run: $(BIN)/.installed  ## serve on 127.0.0.1:5000 (own local PostgreSQL unless DATABASE_URL is set)
	$(BIN)/encounters-service serve

test: $(BIN)/.installed  ## the whole test suite against a real PostgreSQL
	$(BIN)/python -m pytest

migrate: $(BIN)/.installed  ## apply pending migrations and re-apply sql/functions
	$(BIN)/encounters-service migrate upgrade

status: $(BIN)/.installed  ## applied/pending migrations and deployed function checksums
	$(BIN)/encounters-service migrate status

token: $(BIN)/.installed  ## a read+write token for local use
	$(BIN)/encounters-service token

bench: $(BIN)/.installed  ## service vs SQL floor at 5k and 1M encounters, census on a standby, CPU per call, WAL per write, the census compressed through a shaped link, a request's CPU by component (README "Performance"); QUICK=1 for a 3-minute run
	@command -v wrk >/dev/null || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && apt-get update -qq && apt-get install -y -qq wrk; } \
		|| { echo "make bench needs wrk: apt-get install -y wrk (Debian/Ubuntu), brew install wrk (macOS)"; exit 1; }
	$(BIN)/python bench/bench.py $(if $(QUICK),--quick) $(BENCH_ARGS)
	$(BIN)/python bench/standby_bench.py $(if $(QUICK),--quick)
	$(BIN)/python bench/shaped_link_bench.py $(if $(QUICK),--quick)
	$(BIN)/python bench/profile_requests.py $(if $(QUICK),--requests 2000) --route "get by id" --route "patient_count"

openapi: $(BIN)/.installed  ## write docs/openapi.json, the OpenAPI document the service serves (no database needed)
	$(BIN)/python -m encounters_service.docs_gen openapi

schema-diagram: $(BIN)/.installed  ## redraw docs/schema.md (Mermaid ER diagram) from a throwaway database built by the migrations
	$(BIN)/python -m encounters_service.docs_gen schema

docs: openapi schema-diagram  ## both generated documents: docs/openapi.json and docs/schema.md

clean:  ## remove .venv and the local database (.encounters-data)
	rm -rf $(VENV) .encounters-data
