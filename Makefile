# Two commands on a fresh machine: `make demo` and `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO_DURATION ?= 0

.PHONY: demo test lint typecheck pytest install clean bench

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/sharebus demo $(if $(filter-out 0,$(DEMO_DURATION)),--duration $(DEMO_DURATION),)

lint: $(STAMP)
	$(BIN)/ruff check streams agents tests benchmarks examples
	$(BIN)/ruff format --check streams agents tests benchmarks examples

typecheck: $(STAMP)
	$(BIN)/mypy

pytest: $(STAMP)
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

test: lint typecheck pytest

bench: $(STAMP)
	$(BIN)/python benchmarks/throughput.py
	$(BIN)/python benchmarks/linkage.py

clean:
	rm -rf $(VENV) build *.egg-info
