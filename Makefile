# `make demo` and `make test` work on a fresh machine: they create .venv and install first.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed

.PHONY: install demo test test-all lint bench clean

$(INSTALLED): pyproject.toml package-lock.json
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	$(BIN)/python -m pip install --quiet -e '.[dev,chain]'
	npm ci --no-audit --no-fund --loglevel=error  # anvil and solcjs for the chain face, into ./node_modules
	touch $(INSTALLED)

install: $(INSTALLED)

demo: $(INSTALLED)
	$(BIN)/veriml demo

test: $(INSTALLED)
	$(BIN)/ruff check .
	$(BIN)/pytest -m "not slow" -q

test-all: $(INSTALLED)
	$(BIN)/pytest -q

lint: $(INSTALLED)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

bench: $(INSTALLED)
	$(BIN)/python -m pip install --quiet -e '.[dev,bench]'
	$(BIN)/python benchmarks/bench_receipts.py
	$(BIN)/python benchmarks/bench_tlog.py
	$(BIN)/python benchmarks/bench_chain.py

clean:
	rm -rf $(VENV) build dist .pytest_cache .ruff_cache .hypothesis
