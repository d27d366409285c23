# Quickstart: `make up` runs the embedded stack, `make test` runs the tests.
# Both create .venv and install the project on first use.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: up test test-fast demo bench lint clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $(STAMP)

up: $(STAMP)
	$(BIN)/envbranch up

demo: $(STAMP)
	$(BIN)/envbranch demo

test: $(STAMP)
	$(BIN)/python -m pytest

test-fast: $(STAMP)
	$(BIN)/python -m pytest -m "not slow"

bench: $(STAMP)
	$(BIN)/python bench/write_path.py
	$(BIN)/python bench/read_path.py
	$(BIN)/python bench/concurrent_writers.py
	$(BIN)/python bench/scale_out.py
	$(BIN)/python bench/clone.py
	$(BIN)/python bench/vectors.py
	$(BIN)/python bench/replay.py
	$(BIN)/python bench/json_limits.py
	$(BIN)/python bench/growth.py

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy domain contract application consumers envbranch

clean:
	rm -rf $(VENV) .envbranch .pytest_cache .mypy_cache .ruff_cache *.egg-info
