# Two commands on a fresh machine: `make demo` and `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO_DURATION ?= 0

.PHONY: demo test lint typecheck pytest install clean bench soak sysdeps

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

# System packages the tests drive for real: Chromium (dashboard browser test) and promtool (deploy
# checks). Installed from Debian when missing and we are root; otherwise say what is missing.
sysdeps:
	@missing=""; command -v chromium >/dev/null || missing="$$missing chromium"; \
	command -v promtool >/dev/null || missing="$$missing prometheus"; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "installing:$$missing"; apt-get update -qq && \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	  else echo "warning: please install:$$missing (Debian packages)"; fi; \
	fi

demo: $(STAMP)
	$(BIN)/sharebus demo $(if $(filter-out 0,$(DEMO_DURATION)),--duration $(DEMO_DURATION),)

lint: $(STAMP)
	$(BIN)/ruff check streams agents sharebus tests benchmarks examples
	$(BIN)/ruff format --check streams agents sharebus tests benchmarks examples

typecheck: $(STAMP)
	$(BIN)/mypy

pytest: $(STAMP) sysdeps
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

test: lint typecheck pytest

bench: $(STAMP)
	$(BIN)/python -m benchmarks.throughput
	$(BIN)/python -m benchmarks.linkage

# The reliability suite at full sizes (20k-event crash, 10k poison records), repeated for flakiness.
soak: $(STAMP) sysdeps
	$(BIN)/python -m benchmarks.soak --full --scale-out 20

clean:
	rm -rf $(VENV) build *.egg-info
