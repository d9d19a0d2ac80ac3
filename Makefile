# Two commands on a fresh machine:  `make demo` (install + run the main job)
# and `make test` (install with test extras + run the tests). Each builds .venv itself.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin

.PHONY: demo test lint bench clean chromium

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $@ $(VENV)/.installed

demo: $(VENV)/.installed
	$(BIN)/deleverage run feb-2026

# The report's browser test needs Chromium: in CI (CI set, root) it is installed from
# Debian's packages; elsewhere the test is skipped when there is none.
chromium:
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || \
	{ [ -n "$$CI" ] && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } || \
	echo "note: no chromium; the report's browser test is skipped (apt-get install chromium)"

test: $(VENV)/.installed-dev chromium
	$(BIN)/ruff check src tests benchmarks examples
	$(BIN)/python -m pytest -q -m "not slow"

bench: $(VENV)/.installed-dev
	$(BIN)/python benchmarks/bench_run.py

clean:
	rm -rf $(VENV) deleverage.duckdb
