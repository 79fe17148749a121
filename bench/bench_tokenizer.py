"""Tokenizer-check throughput against the raw encode/decode rate of the same tokenizers, in one run.

For real vocabularies (llama.cpp GGUFs, Mistral's tekken and SentencePiece files) and each
tokenizer or chain property that applies, it prints:
- cases, skip, fail: the fixed set of generated cases, and how many of them the property
  skips (the input does not apply) or fails on; both count as completed checks;
- gen/s: cases per second Hypothesis draws for that set (generation alone);
- check/s: the property's checks per second on those cases (no generation);
- e2e/s: inputs per second through the whole Hypothesis search (generation + check + shrinking);
- one raw/s column per implementation: the library's own ``encode`` then ``decode`` of each
  case's text, per second (the text a case gives the tokenizer: its text, its ids' decoding,
  the special token with its surroundings, or the rendered prompt of its conversation). For a
  GGUF, ``llama.cpp`` is llama-cpp-python in this process and ``llama.cpp/worker`` the same
  calls through chainfuzz's worker process, so the two show what process isolation costs;
- overhead: the reference implementation's raw/s divided by check/s (how many plain round
  trips of the reference library one check costs);
- x all: the same against one round trip in every implementation the check drives, as
  chainfuzz drives them (llama.cpp through its worker; for a chain property only the chains'
  implementations), i.e. what the property's own logic (extra encodes, streaming decodes,
  rendering) costs on top of visiting each implementation once. Checks that fail or skip
  stop early, so skip- or fail-heavy rows can come out below 1x.

Loading time per target is printed too: a GGUF's tokenizers include transformers' conversion of
the vocabulary, done on every load.

Usage: python bench/bench_tokenizer.py [--cases N] [--targets NAME_OR_PATH ...]
"""

from __future__ import annotations

import argparse
import math
import os
import time
from pathlib import Path

os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")  # before transformers is imported
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


from measure import draw_cases, rate

from chainfuzz import registry
from chainfuzz.context import Context
from chainfuzz.corpus import corpus_root
from chainfuzz.errors import Failure, Skip
from chainfuzz.messages import all_strings
from chainfuzz.template.render import RenderError
from chainfuzz.internal.runner import RunSettings, run_property
from chainfuzz.targets import load_target

TARGETS = ("ggml-vocab-qwen2.gguf", "ggml-vocab-llama-spm.gguf", "ggml-vocab-phi-3.gguf",
           "tekken_240911.json", "tokenizer.model.v1")


def resolve(name: str) -> Path:
    """A path as given, or a file of the llama.cpp vocab or the mistral tokenizer corpus."""
    p = Path(name).expanduser()
    if p.exists():
        return p
    for corpus, folder in (("llama.cpp", "vocab"), ("mistral", "tokenizers")):
        q = corpus_root(corpus) / folder / name
        if q.exists():
            return q
    raise SystemExit(f"{name}: not a file, nor in the cached corpora "
                     f"(chainfuzz fetch llama.cpp / chainfuzz fetch mistral)")


# --- the raw library calls --------------------------------------------------------------------


def raw_calls(ctx, path: Path) -> dict[str, object]:
    """Per implementation, ``text -> None`` doing the library's own encode then decode.

    The adapters' library objects are reused (``tok.tok``, ``tok.sp``, ``tok.raw``); llama.cpp
    gets its own in-process ``Llama`` beside the worker.
    """
    calls: dict[str, object] = {}
    for tok in ctx.tokenizers:
        if tok.impl == "llama.cpp":
            calls["llama.cpp"] = _llama_in_process(path)

            def worker(text, tok=tok):
                tok.decode(tok.encode(text))

            calls["llama.cpp/worker"] = worker
        elif tok.impl == "hf":
            def hf(text, t=tok.tok):
                t.decode(t.encode(text, add_special_tokens=False))

            calls["hf"] = hf
        elif tok.impl == "sentencepiece":
            def sp(text, s=tok.sp):
                s.decode(s.encode(text, out_type=int))

            calls["sentencepiece"] = sp
        elif tok.impl == "mistral-common":
            def mc(text, r=tok.raw):
                r.decode(r.encode(text, bos=False, eos=False))

            calls["mistral-common"] = mc
    return calls


def _llama_in_process(path: Path):
    """llama-cpp-python in this process, with the very calls the worker makes (``Llama.tokenize``
    and one ``llama_detokenize``), so that the worker column differs only by the isolation.

    (``Llama.detokenize`` is not used: it goes piece by piece in Python, about 4x slower than
    the one C call, and on SentencePiece vocabularies it keeps the leading space that
    ``llama_detokenize`` removes, so it would be a different decode.)
    """
    import llama_cpp

    from chainfuzz.tokenization._llama_worker import detokenize

    # llama.cpp logs a context warning to fd 2 even with verbose=False: keep the table clean.
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
            llm = llama_cpp.Llama(str(path), vocab_only=True, verbose=False)
    finally:
        os.dup2(saved, 2)
        os.close(saved)
    vocab = llm._model.vocab

    def llama(text):
        detokenize(llama_cpp, vocab, llm.tokenize(text.encode("utf-8"), add_bos=False, special=True))

    return llama


def case_text(ctx, case: dict) -> str | None:
    """The text a case hands the tokenizers; None where there is none (a refused render)."""
    if "text" in case:
        return case["text"]
    if "ids" in case:
        ref = ctx.tokenizer
        if not all(0 <= i < ref.vocab_size for i in case["ids"]):
            return None
        try:
            return ref.decode(case["ids"])
        except Exception:  # noqa: BLE001 - ids the reference does not decode
            return None
    if "token" in case:
        return case["before"] + case["token"] + case["after"]
    if "messages" in case:
        if ctx.target.source is None:  # mistral-common's chain: no template, the fields' text
            return "\n".join(all_strings(case))
        try:
            return ctx.render(case["messages"], tools=case.get("tools"), add_generation_prompt=True)
        except RenderError:
            return None
    raise ValueError(f"no text in a case with keys {sorted(case)}")


# --- one target ---------------------------------------------------------------------------------


def driven_columns(ctx, prop, cols: list[str]) -> list[str]:
    """The raw columns of the implementations a check drives, as chainfuzz drives them: every
    implementation for a tokenizer property, the chains' for a chain property (mistral-common
    alone on a Mistral file); llama.cpp through its worker."""
    impls = {t.impl for t in ctx.tokenizers} if prop.applies_to == "tokenizer" \
        else {chain.tokenizer.impl for chain in ctx.chains}
    return [c for c in cols if c != "llama.cpp" and c.split("/")[0] in impls]


def bench_target(name: str, n: int) -> None:
    path = resolve(name)
    start = time.perf_counter()
    target = load_target(path)
    if target.tokenizer is None:
        print(f"\n{path.name}: no tokenizer, nothing to time")
        return
    ctx = Context(target)
    target_s = time.perf_counter() - start  # reading the file: GGUF metadata, hashing
    start = time.perf_counter()
    ctx.loaded  # noqa: B018 - every implementation, loaded now
    load_s = time.perf_counter() - start
    ctx.vocab  # noqa: B018 - what the generators draw from (a few encodes: not timed)
    start = time.perf_counter()
    raws = raw_calls(ctx, path)
    raw_load_s = time.perf_counter() - start

    impls = [t.impl for t in ctx.tokenizers]
    print(f"\n{path.name}: {', '.join(impls)}; target {target_s:.1f}s, tokenizers {load_s:.1f}s, "
          f"raw setup {raw_load_s:.1f}s")
    for impl, why in ctx.unavailable.items():
        print(f"  not run: {impl}: {why}")

    ref = next(iter(raws))
    cols = list(raws)
    print(f"  {'property':<30} {'cases':>5} {'skip':>4} {'fail':>4} {'gen/s':>6} {'check/s':>8} {'e2e/s':>6} "
          + " ".join(f"{c:>{max(9, len(c))}}" for c in cols) + f" {'overhead':>9} {'x all':>7}")
    for prop in registry.all_properties():
        if prop.applies_to not in ("tokenizer", "chain") or prop.applies_to not in ctx.kinds:
            continue
        start = time.perf_counter()
        cases = draw_cases(prop.inputs(ctx), n)
        gen = len(cases) / (time.perf_counter() - start)
        outcome = {"ok": 0, "skip": 0, "fail": 0}

        def check(case, tally=None):
            try:
                prop.check(ctx, case)
                kind = "ok"
            except Skip:
                kind = "skip"
            except Failure:
                kind = "fail"
            if tally is not None:
                tally[kind] += 1

        for case in cases:  # warm caches (worker, renderer, stream decoders) and count outcomes
            check(case, outcome)
        checks = rate(check, cases, repeat=5)

        texts = [t for c in cases if (t := case_text(ctx, c)) is not None]
        rates = {}
        for col, fn in raws.items():
            for t in texts[:3]:
                fn(t)
            rates[col] = rate(fn, texts, repeat=5)

        # One round trip in every implementation the check drives.
        driven = driven_columns(ctx, prop, cols)
        all_rate = 1 / sum(1 / rates[c] for c in driven) if texts else math.nan

        res = run_property(prop, ctx, RunSettings(max_examples=n, seed=0, shrink_seconds=0.01))
        e2e = (res.tries + res.shrink_steps) / res.seconds if res.seconds else math.nan

        print(f"  {prop.id:<30} {len(cases):>5} {outcome['skip']:>4} {outcome['fail']:>4} "
              f"{gen:>6.0f} {checks:>8.0f} {e2e:>6.0f} "
              + " ".join(f"{rates[c]:>{max(9, len(c))}.0f}" for c in cols)
              + f" {rates[ref] / checks:>8.1f}x {all_rate / checks:>6.1f}x")
        if res.internal_error:
            print(f"    internal error in the e2e run: {res.internal_error.splitlines()[-1][:150]}")
    for tok in ctx.tokenizers:
        tok.close()


def import_libraries() -> None:
    import importlib

    for module in ("torch", "transformers", "llama_cpp", "sentencepiece",
                   "mistral_common.tokens.tokenizers.mistral"):
        try:
            importlib.import_module(module)
        except ImportError:
            pass  # its implementation is listed as not run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=100)
    parser.add_argument("--targets", nargs="+", default=list(TARGETS), metavar="NAME_OR_PATH",
                        help="GGUF, tekken or SentencePiece files, or names in the cached corpora")
    args = parser.parse_args()
    start = time.perf_counter()
    import_libraries()  # once, so that the first target's load time is its own
    print(f"libraries imported in {time.perf_counter() - start:.1f}s")
    for name in args.targets:
        bench_target(name, args.cases)
    print(f"\ntotal {time.perf_counter() - start:.0f}s wall")


if __name__ == "__main__":
    main()
