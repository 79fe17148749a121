"""Parser-check throughput against the same parser's raw parse rate, and the time to shrink a
split-invariance failure, in one run.

On the real Qwen2.5 template (llama.cpp's corpus) with its family's tokenizer, for each parser
given (``--parser`` specs; default: transformers' Hermes template, vLLM's hermes and
llama.cpp's, those that run here), it prints:
- parse/s and stream/s: the parser alone, on a fixed set of generated replies' texts (the
  stream one token per delta);
- roundtrip/s and split/s: ``parser.roundtrip`` and ``parser.stream_split_invariant`` checks
  per second on the same replies (rendering, cutting, tokenising, decoding and comparing
  included), and the overhead: raw calls per check (parse/s / roundtrip/s, and for split
  (1/parse + 1/stream) / (1/split), since a split check parses and streams once each);
- skip: the share of replies a check skips (the template writes them differently, the
  tokenizer does not give the text back).

Then, per parser, ``planted:drop_second_call/PARSER`` (a delta holding two calls loses the
second) searched by ``parser.stream_split_invariant`` from seed 0: seconds to the first
failure, seconds spent shrinking it, and the reproducer's size (cuts, calls, characters).

Usage: python bench/bench_parsers.py [--parser SPEC ...] [--cases N]
"""

from __future__ import annotations

import argparse
import json
import os
import time

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from measure import draw_cases, outcome, rate  # noqa: E402

from chainfuzz import corpus, registry  # noqa: E402
from chainfuzz.context import Context  # noqa: E402
from chainfuzz.errors import ChainfuzzError, Skip  # noqa: E402
from chainfuzz.internal import limits  # noqa: E402
from chainfuzz.internal.runner import RunSettings, run_property  # noqa: E402
from chainfuzz.parsers import ParserCrash  # noqa: E402
from chainfuzz.targets import load_target  # noqa: E402

DEFAULT = ("transformers:hermes", "vllm:hermes", "llama.cpp")


def crashes(call, *args) -> bool:
    """Call the parser; a text it raises on counts as a call (the property checks it too)."""
    try:
        call(*args)
    except ParserCrash:
        return True
    return False


def throughput(path, spec: str, cases: list[dict]) -> str:
    ctx = Context(load_target(path), parsers=(spec,)).open({"parser"})
    try:
        parser = ctx.parsers[0]
        gens = []
        for case in cases:
            try:
                gen = ctx.generation(case["message"], case["tools"])
                gens.append((gen, ctx.stream_chunks(gen.text, {"every": True})))
            except Skip:
                continue
        parse_rate = rate(lambda g: crashes(parser.parse, g[0].text, g[0].request), gens)
        stream_rate = rate(lambda g: crashes(parser.stream, g[1], g[0].request), gens)
        rt, split = registry.get("parser.roundtrip"), registry.get("parser.stream_split_invariant")
        skips = sum(outcome(rt, ctx, c) == "skip" for c in cases)
        rt_rate = rate(lambda c: outcome(rt, ctx, c), cases, repeat=1)
        streams = [{**c, "grouping": {"every": True}} for c in cases]
        split_rate = rate(lambda c: outcome(split, ctx, c), streams, repeat=1)
        raw_split = 1 / (1 / parse_rate + 1 / stream_rate)
        return (f"| {spec} | {len(gens)} | {parse_rate:,.0f} | {stream_rate:,.0f} | {rt_rate:,.0f} | "
                f"{parse_rate / rt_rate:.1f} | {split_rate:,.0f} | {raw_split / split_rate:.1f} | "
                f"{skips / len(cases):.0%} |")
    finally:
        ctx.close()


def shrink(path, spec: str) -> str:
    planted = f"planted:drop_second_call/{spec}"
    ctx = Context(load_target(path), parsers=(planted,)).open({"parser"})
    try:
        settings = RunSettings(max_examples=2000, seed=0, max_findings=1, shrink_seconds=120.0)
        start, pushed = time.monotonic(), limits.extended()
        result = run_property(registry.get("parser.stream_split_invariant"), ctx, settings)
        total, shrinking = time.monotonic() - start, limits.extended() - pushed
    finally:
        ctx.close()
    errors = [f for f in result.findings if f.severity == "error"]
    if not errors:
        return f"| {planted} | not found in {result.examples} checks | | | |"
    case = errors[0].case
    cuts = "every token" if case["grouping"].get("every") else len(case["grouping"].get("at", []))
    calls = len(case["message"].get("tool_calls") or [])
    chars = len(json.dumps(case["message"], ensure_ascii=False))
    return (f"| {planted} | {total - shrinking:.1f} | {shrinking:.1f} | {result.shrink_steps} | "
            f"{cuts} cuts, {calls} calls, {chars} chars |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--parser", action="append", dest="parsers", help="a --parser spec (repeatable)")
    ap.add_argument("--cases", type=int, default=200)
    args = ap.parse_args()
    path = corpus.templates_dir() / "Qwen-Qwen2.5-7B-Instruct.jinja"
    probe = Context(load_target(path), parsers=("transformers:hermes",))
    from chainfuzz.strategies import assistant_replies

    cases = draw_cases(assistant_replies(probe.markers), args.cases)
    specs = []
    for spec in args.parsers or DEFAULT:
        try:
            Context(load_target(path), parsers=(spec,)).open({"parser"}).close()
            specs.append(spec)
        except (ChainfuzzError, ImportError) as exc:
            print(f"{spec}: does not run here ({str(exc).splitlines()[0][:160]})")
    print(f"\nQwen2.5 template, {len(cases)} generated replies\n")
    print("| parser | texts | parse/s | stream/s (one token a delta) | roundtrip checks/s | parses per check | "
          "split checks/s | parse+stream per check | skipped |")
    print("|---|---|---|---|---|---|---|---|---|")
    for spec in specs:
        print(throughput(path, spec, cases), flush=True)
    print("\n| planted fault | seconds to the failure | seconds shrinking | shrink steps | reproducer |")
    print("|---|---|---|---|---|")
    for spec in specs:
        print(shrink(path, spec), flush=True)


if __name__ == "__main__":
    main()
