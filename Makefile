# Two commands for a fresh machine: `make demo` and `make test`.
PYTHON ?= $(shell command -v python3.11 2>/dev/null || command -v python3)
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip --disable-pip-version-check -q
OUT    ?= out/demo
PYTEST_ARGS ?=

.PHONY: demo test test-fast bench lint install dev clean

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

## test: install dev dependencies, lint, run the whole suite (slow tests included)
test: $(VENV)/.dev-installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/pytest -n 2 $(PYTEST_ARGS)

## test-fast: skip tests marked slow
test-fast: $(VENV)/.dev-installed
	$(VENV)/bin/pytest -n 2 -m "not slow" $(PYTEST_ARGS)

## bench: speed benchmarks (ratios against named baselines, measured in one run)
bench: $(VENV)/.installed
	$(PY) benchmarks/prophet_backtest.py
	$(PY) benchmarks/sweep_scaling.py

lint: $(VENV)/.dev-installed
	$(VENV)/bin/ruff check .

clean:
	rm -rf $(VENV) out .pytest_cache
