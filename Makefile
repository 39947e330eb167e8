# Thin wrappers over the CLI and pytest. `make run` and `make test` set up .venv on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: run test migrate status token clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

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

clean:
	rm -rf $(VENV) .encounters-data
