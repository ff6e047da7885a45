# Two commands do all the set-up on a fresh machine with Python 3.11+ and make:
#   make demo   - create .venv if missing, install, run the demo against the local MCE
#   make test   - same set-up, run the test suite
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install openssh demo test lint dev bench reliability clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

# OpenSSH's sftp client: large transfers go through it when installed (nto_etl/openssh.py), and
# the tests and benchmarks use it. Installed with apt when missing and allowed.
openssh:
	@command -v sftp >/dev/null || { command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ] && \
	  apt-get update -qq && apt-get install -y -qq openssh-client >/dev/null; } || \
	  { echo "OpenSSH's sftp client is missing (Debian: apt-get install openssh-client)"; exit 1; }

demo: $(STAMP)
	$(BIN)/nto-etl demo

test: $(STAMP) openssh
	$(BIN)/python -m pytest

# The Dagster UI against a local MCE (started in the background, state in .state/mce).
dev: $(STAMP)
	mkdir -p .state/dagster_home
	cp -n dagster.yaml .state/dagster_home/dagster.yaml || true
	$(BIN)/nto-etl mce-local --state-dir .state/mce --info-file .state/mce-local.json > .state/mce-local.log & \
	  trap 'kill $$!' EXIT; sleep 3; DAGSTER_HOME=$(CURDIR)/.state/dagster_home $(BIN)/dagster dev -w workspace.yaml

# Benchmarks (not part of the test suite): about 25 minutes on two cores; writes docs/PERFORMANCE.md.
bench: $(STAMP) openssh
	$(BIN)/python -m benchmarks.run

# Fault drills, a fault soak and the bad-input corpus; writes docs/RELIABILITY.md.
reliability: $(STAMP)
	$(BIN)/nto-etl reliability-report --out docs/RELIABILITY.md

lint: $(STAMP)
	$(BIN)/ruff check nto_etl nto_etl_tests scripts benchmarks
	$(BIN)/ruff format --check nto_etl nto_etl_tests scripts benchmarks
	$(BIN)/mypy

clean:
	rm -rf $(VENV) .state .pytest_cache .mypy_cache .ruff_cache
