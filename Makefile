# The two commands: `make run` and `make test` do all their own setup on a fresh machine.
# The venv is built on the real interpreter (not a version-manager shim, which adds ~75 ms
# to every `ccc` start-up).
PYTHON ?= $(shell python3 -c 'import sys; print(sys.executable)')
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-dev
RUNSTAMP := $(VENV)/.installed
QUICK ?=

.PHONY: run test bench lint clean

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(RUNSTAMP): pyproject.toml | $(VENV)/bin/python
	$(BIN)/pip install -q --config-settings editable_mode=compat -e .
	touch $@

$(STAMP): pyproject.toml | $(VENV)/bin/python
	$(BIN)/pip install -q --config-settings editable_mode=compat -e '.[dev]'
	touch $@ $(RUNSTAMP)

run: $(RUNSTAMP)
	$(BIN)/ccc-statusd

test: $(STAMP)
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

bench: $(STAMP)
	$(BIN)/python -m ccc_statusd.bench $(if $(QUICK),--quick,)

lint: $(STAMP)
	$(BIN)/ruff check ccc_statusd tests
	$(BIN)/ruff format --check ccc_statusd tests
	$(BIN)/mypy ccc_statusd

clean:
	rm -rf $(VENV) build *.egg-info
