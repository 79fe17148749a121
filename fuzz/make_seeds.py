"""Regenerate the seed inputs in ``src/chainfuzz/fuzz/seeds/<harness>/`` from Hypothesis' own encoding.

Atheris feeds raw bytes to ``fuzz_one_input``, which reads them as Hypothesis' choices; random
bytes mostly run out before a whole conversation is drawn, and such inputs are rejected. A
good seed is a byte string that decodes to a complete case. This script feeds random byte
strings to each harness on a reference target, keeps the canonical bytes ``fuzz_one_input``
returns for every input that reached a property, and writes, per property, the largest one
under ``--max-bytes`` (the richest case: several messages, tools, tool calls), named
``<property>-<sha1>``. The bytes decode to valid cases on any target: only the texts drawn
from the target's own markers or vocabulary differ.

Reference targets: ``tests/templates/base_clean.jinja`` for the template harness (in the
repository), the cached ``ggml-vocab-qwen2.gguf`` for the tokenizer and stream harnesses
(``chainfuzz fetch`` first).

Usage: python fuzz/make_seeds.py [--harness NAME] [--tries N] [--max-bytes N]
"""

from __future__ import annotations

import argparse
import hashlib
import random
import shutil
from pathlib import Path

from chainfuzz import corpus
from chainfuzz.fuzz import harness as harnesses
from chainfuzz.fuzz.launch import SEEDS

ROOT = Path(__file__).resolve().parents[1]
QWEN2 = "llama-cpp-python-0.3.36/vocab/ggml-vocab-qwen2.gguf"
REFERENCE = {
    "template": lambda: ROOT / "tests" / "templates" / "base_clean.jinja",
    "tokenizer": lambda: corpus.cache_dir() / QWEN2,
    "stream": lambda: corpus.cache_dir() / QWEN2,
}


def seeds(harness: str, tries: int, max_bytes: int, rng: random.Random) -> dict[str, bytes]:
    """Per property id, the largest canonical input of at most ``max_bytes`` bytes."""
    fuzzer = harnesses.Fuzzer(harness, harnesses.load(harness, REFERENCE[harness]()), crashes_dir=None)
    best: dict[str, bytes] = {}
    for _ in range(tries):
        buffer = rng.randbytes(rng.choice((256, 1024, 4096)))
        fuzzer.last_index = None
        try:
            canonical = fuzzer.fuzz_one_input(buffer)
        except Exception:  # noqa: BLE001 - a failing input on the reference target: still a seed
            canonical = None
        if fuzzer.last_index is None or canonical is None or len(canonical) > max_bytes:
            continue
        prop = fuzzer.pairs[fuzzer.last_index][1].id
        if len(canonical) > len(best.get(prop, b"")):
            best[prop] = canonical
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--harness", choices=sorted(harnesses.HARNESSES), action="append")
    parser.add_argument("--tries", type=int, default=3000)
    parser.add_argument("--max-bytes", type=int, default=400)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    for harness in args.harness or harnesses.HARNESSES:
        found = seeds(harness, args.tries, args.max_bytes, random.Random(args.seed))
        out = SEEDS / harness
        shutil.rmtree(out, ignore_errors=True)
        out.mkdir(parents=True)
        for prop, data in sorted(found.items()):
            (out / f"{prop}-{hashlib.sha1(data).hexdigest()[:10]}").write_bytes(data)
        print(f"{harness}: {len(found)} seeds, {sum(map(len, found.values()))} bytes in {out}")


if __name__ == "__main__":
    main()
