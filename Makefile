# Two commands matter: `make demo` and `make test`. Both create .venv and install
# the pinned dependency set (requirements.lock) with uv, bootstrapped from PyPI,
# on any machine with Python 3.11+.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
UV_VERSION := 0.13.8
STAMP := $(VENV)/.installed

.PHONY: demo test bench bench-large lint format typecheck serve eval install lock clean help

help:
	@echo "make demo    run the demo (embedded Postgres, offline model; no keys, no Docker)"
	@echo "make test    run the whole test suite (notebooks included)"
	@echo "make bench   run the benchmarks under bench/ (make bench-large for 1M rows)"
	@echo "make serve   serve the agent over the Responses API on http://127.0.0.1:8000"
	@echo "make eval    evaluate memory across threads, users, updates and forgetting (MLflow)"
	@echo "make lint | format | typecheck | lock | clean"

install: $(STAMP)

$(STAMP): requirements.lock pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11+ is required; set PYTHON=/path/to/python3.11")'
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python -m pip install --quiet --disable-pip-version-check "uv==$(UV_VERSION)"
	@# Bytecode is compiled at install time: it halves CLI start-up on machines
	@# where PYTHONDONTWRITEBYTECODE keeps Python from caching it.
	$(BIN)/uv pip install --python $(BIN)/python --quiet --compile-bytecode -r requirements.lock
	$(BIN)/uv pip install --python $(BIN)/python --quiet --compile-bytecode --no-deps -e .
	@touch $(STAMP)

lock:
	$(BIN)/uv pip compile pyproject.toml --universal --extra dev --python-version 3.11 --no-annotate --no-header -o requirements.lock

demo: $(STAMP)
	$(BIN)/python -m cli.demo

test: $(STAMP)
	$(BIN)/python -m pytest

bench: $(STAMP)
	$(BIN)/python -m bench $(if $(LOCOMO_DATA),--locomo-data $(LOCOMO_DATA))

bench-large: $(STAMP)
	$(BIN)/python -m bench --large $(if $(LOCOMO_DATA),--locomo-data $(LOCOMO_DATA))

serve: $(STAMP)
	$(BIN)/python -m serving.server

eval: $(STAMP)
	$(BIN)/python -m evaluation.evaluate

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

typecheck: $(STAMP)
	$(BIN)/mypy

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
