"""Engine-check throughput against one plain generate call of the same engine, in one run.

On the tiny model (built into a temporary folder unless ``--model`` names one), for each
engine given and each engine property, it prints:
- cases, skip, fail: the fixed set of generated cases, and how many the property skips (the
  engine lacks the capability, or the input does not apply) or fails on;
- checks/min: the property's checks per minute on those cases (generation excluded);
- generate/s: the same engine's plain ``generate([prompt], NEW_TOKENS)`` calls per second on
  the same cases' prompts, with its prefix cache cleared before each (a cold request);
- cost: how many plain generate calls one check costs (generate/s x 60 / checks/min). The
  properties' own design sets most of it: greedy_deterministic runs 3 generates,
  batch_invariant 2 (one a batch), prefix_cache_invariant 5, stream_matches_full 2-3 text
  requests of 24 tokens (3x the 8 of a plain call).

Engines are ``--engine`` specs (an OpenAI server's URL too), or ``serve:llama`` /
``serve:vllm``: llama-cpp-python's or vLLM's server, started here for the run.

Usage: python bench/bench_engine.py [--engines transformers llama.cpp vllm serve:vllm URL] [--cases N]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from measure import draw_cases, outcome, rate  # noqa: E402

from chainfuzz import registry  # noqa: E402
from chainfuzz.properties import engine as engine_properties  # noqa: E402
from chainfuzz.context import Context  # noqa: E402
from chainfuzz.engines import Unsupported  # noqa: E402
from chainfuzz.targets import load_target  # noqa: E402

PROPERTIES = ("engine.greedy_deterministic", "engine.batch_invariant", "engine.prefix_cache_invariant",
              "engine.chat_matches_completion", "engine.stream_matches_full")


def plain_rate(ctx, engine, cases, new_tokens: int) -> float:
    """Plain cold generate calls per second on the prompts of ``cases``."""
    prompts = [ctx.prompt_chain.encode(c["messages"], None) for c in cases]

    def one(ids):
        try:
            engine.clear_prefix_cache()
        except Unsupported:
            pass
        engine.generate([ids], new_tokens)

    one(prompts[0])  # the first call pays one-off costs (transformers' warm-up, lazy compiles)
    return rate(one, prompts, repeat=2)


def bench_engine(spec: str, model: Path, n: int) -> None:
    ctx = Context(load_target(model), engines=(spec,))
    start = time.perf_counter()
    engine = ctx.engines[0]
    print(f"\n{engine.name}: started in {time.perf_counter() - start:.1f}s")
    convs = draw_cases(engine_properties._conversations(ctx), n)
    plain = plain_rate(ctx, engine, convs, engine_properties.NEW_TOKENS)
    print(f"  plain generate ({engine_properties.NEW_TOKENS} new tokens, cold): {plain:.2f}/s")
    print(f"  {'property':<32} {'cases':>5} {'skip':>4} {'fail':>4} {'checks/min':>10} {'cost':>8}")
    for pid in PROPERTIES:
        prop = registry.get(pid)
        cases = draw_cases(prop.inputs(ctx), n)
        outcomes: list[str] = []
        checks = rate(lambda c: outcomes.append(outcome(prop, ctx, c)), cases, repeat=1) * 60
        skip, fail = outcomes.count("skip"), outcomes.count("fail")
        if skip == len(cases):  # the engine lacks the capability: nothing was checked
            print(f"  {pid:<32} {len(cases):>5} {skip:>4} {fail:>4} {'-':>10} {'-':>8}")
            continue
        print(f"  {pid:<32} {len(cases):>5} {skip:>4} {fail:>4} {checks:>10.1f} {plain * 60 / checks:>7.1f}x")
    ctx.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--engines", nargs="+", default=["transformers", "llama.cpp"])
    parser.add_argument("--cases", type=int, default=10)
    parser.add_argument("--model", type=Path, help="a model folder (default: build the tiny qwen2 model)")
    args = parser.parse_args()
    registry.load_properties()
    with tempfile.TemporaryDirectory() as tmp:
        model = args.model
        if model is None:
            from chainfuzz.engines.tiny import TinySpec, build

            model = build(TinySpec("qwen2"), Path(tmp) / "tiny")
        for spec in args.engines:
            try:
                with _served(spec, model) as engine_spec:
                    bench_engine(engine_spec, model, args.cases)
            except Exception as exc:  # noqa: BLE001 - one engine missing here must not end the bench
                print(f"\n{spec}: not run: {exc}")


@contextlib.contextmanager
def _served(spec: str, model: Path):
    """``spec`` itself, or for ``serve:llama`` / ``serve:vllm`` the URL of that server, started
    on 127.0.0.1 for the bench (llama-cpp-python's on the model's GGUF, vLLM's on the folder)."""
    if not spec.startswith("serve:"):
        yield spec
        return
    from chainfuzz.engines import gguf_model, servers

    kind = spec.removeprefix("serve:")
    start = time.perf_counter()
    server = servers.llama_server(gguf_model.write(model)) if kind == "llama" else servers.vllm_server(model)
    with server as url:
        print(f"\n{spec}: server up in {time.perf_counter() - start:.1f}s at {url}")
        yield url


if __name__ == "__main__":
    main()
