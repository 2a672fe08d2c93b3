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

# Editable install in setuptools' default mode: `package-dir = {"" = "."}` in pyproject.toml
# makes it a plain .pth line with the repo root (like the old `editable_mode=compat`), not an
# import hook, which would cost every `ccc` start-up ~40 more module imports.
$(RUNSTAMP): pyproject.toml | $(VENV)/bin/python
	$(BIN)/pip install -q -e .
	touch $@

$(STAMP): pyproject.toml | $(VENV)/bin/python
	$(BIN)/pip install -q -e '.[dev]'
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
