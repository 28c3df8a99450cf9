# Countinghouse: `make run` starts the platform, `make test` proves it.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PY := $(BIN)/python
MANAGE := $(PY) manage.py
PYTEST_INTEGRATION := DJANGO_SETTINGS_MODULE=config.settings_integration $(BIN)/pytest tests/integration
# The unit suite's second pass runs with the clock here: late on a 29 February, when zones
# east of UTC are already in March. A test that holds only on the day it was written fails.
MOVED_CLOCK ?= 2028-02-29T23:30:00+00:00

.PHONY: run setup test test-unit test-unit-moved-clock test-integration lint fmt check-migrations bench clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(VENV)/.installed: requirements.txt | $(PY)
	$(PY) -m pip install --quiet -r requirements.txt
	touch $@

$(VENV)/.installed-dev: requirements.txt requirements-dev.txt | $(PY)
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $(VENV)/.installed $@

setup: $(VENV)/.installed
	$(MANAGE) bootstrap

run: setup
	exec $(MANAGE) runplatform

test: $(VENV)/.installed-dev lint check-migrations test-unit test-unit-moved-clock test-integration

test-unit: $(VENV)/.installed-dev
	$(BIN)/pytest tests/unit

test-unit-moved-clock: $(VENV)/.installed-dev
	COUNTINGHOUSE_TEST_CLOCK=$(MOVED_CLOCK) $(BIN)/pytest -q -p no:cacheprovider tests/unit

test-integration: $(VENV)/.installed-dev
	$(PYTEST_INTEGRATION)

lint: $(VENV)/.installed-dev
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .

fmt: $(VENV)/.installed-dev
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

check-migrations: $(VENV)/.installed-dev
	DJANGO_SETTINGS_MODULE=config.settings_test $(MANAGE) makemigrations --check --dry-run

bench: $(VENV)/.installed-dev
	for bench in bench/*.py; do echo "== $$bench"; $(PY) $$bench || exit 1; done

clean:
	rm -rf $(VENV) staticfiles .pytest_cache .ruff_cache
