# Two commands do all the set-up on a fresh machine with Python 3.11+ and make:
#   make demo   - create .venv if missing, install, run the demo against the local MCE
#   make test   - same set-up, run the test suite
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo test lint clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/nto-etl demo

test: $(STAMP)
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check nto_etl nto_etl_tests scripts
	$(BIN)/ruff format --check nto_etl nto_etl_tests scripts
	$(BIN)/mypy

clean:
	rm -rf $(VENV) .state .pytest_cache .mypy_cache .ruff_cache
