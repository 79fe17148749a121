# Both targets work on a fresh machine: the first run creates .venv and installs chainfuzz.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
FULL := $(VENV)/.installed-extras

.PHONY: sweep test bench

include mk/vllm.mk

# The main job: check every real chat template that llama-cpp-python's sdist ships
# (downloaded from PyPI into ~/.cache/chainfuzz on first use). Exit code 1 means defects
# were found, which is the job done; 2 (bad input) and 3 (internal error) fail.
sweep: $(STAMP)
	$(BIN)/chainfuzz sweep || test $$? -eq 1

# chainfuzz's own tests, then the recorded cases in crashes/ as regression tests. They need
# every tokenizer implementation and engine, so the optional extras and vLLM's own
# environment are installed first.
test: $(FULL) $(VLLM_STAMP)
	$(BIN)/chainfuzz fetch llama.cpp
	$(BIN)/chainfuzz fetch mistral
	$(BIN)/chainfuzz fetch llama.cpp-parser
	$(BIN)/chainfuzz model tiny
	$(BIN)/python -m pytest -q

bench: $(FULL) $(VLLM_STAMP)
	$(BIN)/python bench/bench_template.py --sweep
	$(BIN)/python bench/bench_search.py
	$(BIN)/python bench/bench_search.py --checked --throughput
	$(BIN)/python bench/bench_findings.py
	$(BIN)/python bench/bench_tokenizer.py
	$(BIN)/python bench/bench_fuzz.py
	$(BIN)/python bench/bench_campaign.py
	$(BIN)/python bench/bench_parsers.py
	$(BIN)/python bench/bench_startup.py
	$(BIN)/python bench/bench_engine.py --engines transformers llama.cpp vllm serve:llama serve:vllm

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test]'
	touch $(STAMP)

# torch's CPU build is pinned first so that the hf-gguf extra's range takes it, not a CUDA
# build; llama-cpp-python compiles from its sdist once (pip caches the wheel), portably.
$(FULL): $(STAMP)
	$(BIN)/python -m pip install -q torch==2.13.0
	CMAKE_ARGS="-DGGML_NATIVE=OFF" $(BIN)/python -m pip install -q -e '.[test,all]'
	touch $(FULL)
