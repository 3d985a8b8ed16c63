# kakin: two commands on a fresh machine.
#   make run    the API on http://127.0.0.1:8000 with the three reference vendors on SQLite (var/kakin.db)
#   make test   every test, on SQLite and PostgreSQL, and the public scenarios
# and:
#   make demo   the reference vendors' worked examples billed into var/kakin.db (demo tenants), invoices printed
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
SHARED_SCENARIOS := ../shared/scenarios

.PHONY: setup run demo test lint bench clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

run: setup
	./scripts/system-deps.sh runtime
	$(BIN)/kakin serve

demo: setup
	./scripts/system-deps.sh runtime
	$(BIN)/kakin demo

test: setup
	./scripts/system-deps.sh
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/mypy --strict src/kakin
	@if [ -f $(SHARED_SCENARIOS)/check.py ]; then $(PYTHON) $(SHARED_SCENARIOS)/check.py $(SHARED_SCENARIOS) --kakin $(BIN)/kakin; fi
	$(BIN)/python -m pytest -q -n 2

lint: setup
	$(BIN)/ruff check src tests benchmarks

bench: setup
	$(BIN)/python benchmarks/billing_run.py

clean:
	rm -rf $(VENV) var .pytest_cache .hypothesis
