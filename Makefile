# Two commands for a fresh machine: `make demo` and `make test`.
PYTHON ?= $(shell command -v python3.11 2>/dev/null || command -v python3)
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip --disable-pip-version-check -q
OUT    ?= out/demo
PYTEST_ARGS ?=

.PHONY: demo test test-all test-fast bench lint install dev clean

$(PY):
	$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "tradeship needs Python >= 3.11"'
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: pyproject.toml | $(PY)
	$(PIP) install -e .
	touch $@

$(VENV)/.dev-installed: pyproject.toml | $(PY)
	$(PIP) install -e '.[dev]'
	touch $(VENV)/.installed $@

install: $(VENV)/.installed
dev: $(VENV)/.dev-installed

## demo: install, then backtest prophet_momentum on the built-in synthetic data (offline)
demo: $(VENV)/.installed
	$(VENV)/bin/tradeship backtest --strategy prophet_momentum --source demo \
		--start 2022-01-03 --end 2024-12-31 --out $(OUT)
	@echo "open $(OUT)/report.html"

# Tests marked slow (certificates, S&P-scale parity, fresh venvs) run in CI (CI=true) and
# with `make test-all`; a developer's `make test` skips them to stay under 15 minutes.
SLOW   := $(if $(CI),,-m "not slow")

## test: install dev dependencies, lint, run the suite (slow tests too when CI=true)
test: $(VENV)/.dev-installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/pytest -n 2 $(SLOW) $(PYTEST_ARGS)

## test-all: the whole suite, slow tests included (what CI runs)
test-all: $(VENV)/.dev-installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/pytest -n 2 $(PYTEST_ARGS)

## test-fast: skip tests marked slow
test-fast: $(VENV)/.dev-installed
	$(VENV)/bin/pytest -n 2 -m "not slow" $(PYTEST_ARGS)

## bench: speed benchmarks (ratios against named baselines, measured in one run)
bench: $(VENV)/.installed
	$(PY) benchmarks/prophet_backtest.py
	$(PY) benchmarks/sweep_scaling.py
	$(PY) benchmarks/engine_scale.py
	$(PY) benchmarks/export_decide.py
	$(PY) benchmarks/marketdata_load.py

lint: $(VENV)/.dev-installed
	$(VENV)/bin/ruff check .

clean:
	rm -rf $(VENV) out .pytest_cache
