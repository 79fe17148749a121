#!/bin/bash -eu
# Builds chainfuzz's atheris harnesses for OSS-Fuzz (projects/chainfuzz/build.sh) and for
# ClusterFuzzLite (.clusterfuzzlite/build.sh runs this file). See oss-fuzz/README.md.
#
# Python projects build each fuzzer with compile_python_fuzzer (base-builder-python): PyInstaller
# makes $OUT/<script name> from a .py file. One fuzzer per (harness, target): a copy of
# oss-fuzz/chainfuzz_fuzzer.py named fuzz_<harness>_<name>.py, bundling its target. Real targets
# are never committed: they come from llama-cpp-python's sdist on PyPI (`chainfuzz fetch`).

cd "$SRC/chainfuzz"
pip3 install '.[fuzz]'

export CHAINFUZZ_CACHE="$WORK/chainfuzz-cache"
corpus=$(python3 -c 'from chainfuzz import corpus; print(corpus.fetch("llama.cpp"))')

# harness, fuzzer name, target file under the corpus root: a small fixed set of real targets.
FUZZERS=(
  "template qwen2_5 templates/Qwen-Qwen2.5-7B-Instruct.jinja"
  "template llama3_1 templates/meta-llama-Llama-3.1-8B-Instruct.jinja"
  "template mistral_nemo templates/mistralai-Mistral-Nemo-Instruct-2407.jinja"
  "tokenizer qwen2 vocab/ggml-vocab-qwen2.gguf"
  "tokenizer phi3 vocab/ggml-vocab-phi-3.gguf"
  "stream qwen2 vocab/ggml-vocab-qwen2.gguf"
  "stream phi3 vocab/ggml-vocab-phi-3.gguf"
)

# chainfuzz names its back-ends and properties by "module:attribute" strings that PyInstaller
# cannot follow, so its submodules and package data (the seeds) are collected whole.
PYI_ARGS=(
  --collect-submodules=chainfuzz
  --collect-data=chainfuzz
  --collect-data=transformers
  --copy-metadata=transformers
)

wrappers="$WORK/chainfuzz-fuzzers"
mkdir -p "$wrappers"
for spec in "${FUZZERS[@]}"; do
  read -r harness name file <<<"$spec"
  fuzzer="fuzz_${harness}_${name}"
  cp oss-fuzz/chainfuzz_fuzzer.py "$wrappers/$fuzzer.py"
  compile_python_fuzzer "$wrappers/$fuzzer.py" "${PYI_ARGS[@]}" \
    --add-data="$corpus/$file:chainfuzz_target"
  # Seeds: whole cases in Hypothesis' choice encoding (fuzz/make_seeds.py).
  zip -q -j "$OUT/${fuzzer}_seed_corpus.zip" "src/chainfuzz/fuzz/seeds/$harness"/*
done
