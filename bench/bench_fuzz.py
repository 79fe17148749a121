"""Atheris throughput per harness: executions per second of ``chainfuzz fuzz``, measured.

For each (target, harness) it runs the harness exactly as ``chainfuzz fuzz`` does (a
subprocess under libFuzzer, seeds from ``src/chainfuzz/fuzz/seeds/``, findings into a throw-away folder) and
prints:
- exec/s: inputs libFuzzer ran per second, from the first input to the end;
- checked: the share of those inputs that decoded to a whole case and reached a property
  (the rest ran out of bytes or were filtered: cheap, but they check nothing);
- checks/s: exec/s times checked, the rate that compares with ``check``'s examples/s;
- startup: seconds before the first input (imports, loading tokenizers, instrumenting);
- new: findings shrunk and written during the run (their shrinking counts in the time).
With ``--uninstrumented`` each row is run again without coverage instrumentation, to show
what it costs.

Targets: the cached Qwen2.5 and Llama-3.1 templates, and the qwen2 and phi-3 vocab GGUFs
(``chainfuzz fetch`` first). Usage: python bench/bench_fuzz.py [--seconds N] [--uninstrumented]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from chainfuzz import corpus
from chainfuzz.fuzz import launch

ROWS = (
    ("templates/Qwen-Qwen2.5-7B-Instruct.jinja", "template"),
    ("templates/meta-llama-Llama-3.1-8B-Instruct.jinja", "template"),
    ("vocab/ggml-vocab-qwen2.gguf", "tokenizer"),
    ("vocab/ggml-vocab-qwen2.gguf", "stream"),
    ("vocab/ggml-vocab-phi-3.gguf", "tokenizer"),
    ("vocab/ggml-vocab-phi-3.gguf", "stream"),
)


def measure(path: Path, harness: str, seconds: int, instrument: bool) -> launch.HarnessRun:
    with tempfile.TemporaryDirectory() as tmp:
        report = launch.fuzz(path, harness=harness, budget=seconds, crashes_dir=Path(tmp),
                              seed=1, instrument=instrument)
    [run] = report.runs
    if run.internal_error:
        raise SystemExit(f"{path.name} {harness}: {run.internal_error}")
    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=20, help="fuzzing time per row")
    parser.add_argument("--uninstrumented", action="store_true")
    args = parser.parse_args()
    root = corpus.fetch("llama.cpp")
    print(f"{'target':<38} {'harness':<10} {'instr':<5} {'execs':>7} {'exec/s':>7} "
          f"{'checked':>7} {'checks/s':>8} {'startup':>7} {'new':>4}")
    for rel, harness in ROWS:
        for instrument in (True, False) if args.uninstrumented else (True,):
            run = measure(root / rel, harness, args.seconds, instrument)
            share = run.checked / run.executions if run.executions else 0.0
            print(f"{Path(rel).name:<38} {harness:<10} {'yes' if instrument else 'no':<5} "
                  f"{run.executions:>7} {run.rate:>7.0f} {share:>7.0%} {run.rate * share:>8.0f} "
                  f"{run.wall - run.seconds:>6.1f}s {len(run.findings):>4}", flush=True)


if __name__ == "__main__":
    main()
