"""Template-check throughput against transformers' raw render rate, measured in one run.

For three real templates and each property it prints:
- check/s: the property's checks per second on a fixed set of generated cases (no generation);
- e2e/s: inputs per second through the whole Hypothesis search (generation + check);
- raw/s: transformers' ``render_jinja_template`` calls per second on the same cases;
- overhead: raw/s divided by check/s (how many plain renders one check costs).
With ``--sweep`` it also times the whole real-template sweep at its default settings.

Usage: python bench/bench_template.py [--cases N] [--sweep]
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")  # before transformers is imported

from measure import draw_cases, rate
from transformers.utils.chat_template_utils import render_jinja_template

from chainfuzz import corpus, registry
from chainfuzz.context import Context
from chainfuzz.errors import Failure, Skip
from chainfuzz.internal.runner import RunSettings, run_property
from chainfuzz.targets import load_target

TEMPLATES = ("Qwen-Qwen2.5-7B-Instruct", "meta-llama-Llama-3.1-8B-Instruct",
             "mistralai-Mistral-Nemo-Instruct-2407")


def raw_renderer(target):
    """``raw(case)``: transformers' own render of ``case`` with ``target``'s template, failures
    ignored: what one plain render costs, the unit the throughput ratios are measured in."""

    def raw(case):
        try:
            render_jinja_template(conversations=[case["messages"]], tools=case.get("tools"),
                                  chat_template=target.source,
                                  add_generation_prompt=case.get("add_generation_prompt", False),
                                  **target.special_tokens)
        except Exception:  # noqa: BLE001 - the raw call fails where the template does
            pass

    return raw


def bench_template(name: str, n: int) -> None:
    target = load_target(corpus.templates_dir() / f"{name}.jinja")
    print(f"\n{name}")
    print(f"  {'property':<28} {'check/s':>9} {'e2e/s':>9} {'raw/s':>9} {'overhead':>9}")
    for prop in registry.select(None, {"template"}):
        ctx = Context(target)
        cases = draw_cases(prop.inputs(ctx), n)

        def check(case):
            try:
                prop.check(ctx, case)
            except (Failure, Skip):
                pass

        raw = raw_renderer(target)

        check(cases[0])  # warm caches (compiled template, probes) outside the timing
        raw(cases[0])
        checks = rate(check, cases)
        raws = rate(raw, cases)
        res = run_property(prop, Context(target),
                           RunSettings(max_examples=n, seed=0, max_findings=1, shrink_seconds=0.01))
        e2e = (res.tries + res.shrink_steps) / res.seconds
        print(f"  {prop.id:<28} {checks:>9.0f} {e2e:>9.0f} {raws:>9.0f} {raws / checks:>8.1f}x")


def bench_sweep() -> None:
    from chainfuzz.sweep import sweep

    start = time.perf_counter()
    report = sweep(crashes_dir=None, total_budget=100)
    print(f"\nsweep of {len(report.rows)} templates at default settings: "
          f"{time.perf_counter() - start:.1f}s wall")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=200)
    parser.add_argument("--sweep", action="store_true")
    args = parser.parse_args()
    for name in TEMPLATES:
        bench_template(name, args.cases)
    if args.sweep:
        bench_sweep()


if __name__ == "__main__":
    main()
