# Both targets work on a fresh machine: the first run creates .venv and installs chainfuzz.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: sweep test bench

# The main job: check every real chat template that llama-cpp-python's sdist ships
# (downloaded from PyPI into ~/.cache/chainfuzz on first use). Exit code 1 means defects
# were found, which is the job done; 2 (bad input) and 3 (internal error) fail.
sweep: $(STAMP)
	$(BIN)/chainfuzz sweep || test $$? -eq 1

# chainfuzz's own tests, then the recorded cases in crashes/ as regression tests.
test: $(STAMP)
	$(BIN)/chainfuzz fetch
	$(BIN)/python -m pytest -q

bench: $(STAMP)
	$(BIN)/python bench/bench_template.py --sweep

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test]'
	touch $(STAMP)
