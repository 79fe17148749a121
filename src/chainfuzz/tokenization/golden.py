"""llama.cpp's golden tokenisations: ``ggml-vocab-NAME.gguf.inp`` / ``.out`` pairs.

Each ``.inp`` holds texts separated by ``__ggml_vocab_test__`` lines; the ``.out`` line of the
same index holds the ids the model's own reference tokenizer gives (no BOS, special-token text
not parsed), which llama.cpp's test-tokenizer-0 checks itself against.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

SEPARATOR = "\n__ggml_vocab_test__\n"


@dataclass(frozen=True)
class GoldenCase:
    text: str
    ids: list[int]


def read(gguf: Path) -> list[GoldenCase]:
    """The golden cases beside ``gguf`` (empty when it has none)."""
    inp, out = Path(f"{gguf}.inp"), Path(f"{gguf}.out")
    if not (inp.exists() and out.exists()):
        return []
    # Both files end with a terminator (a separator, a newline), not with an empty case.
    texts = inp.read_text(encoding="utf-8").removesuffix(SEPARATOR).split(SEPARATOR)
    lines = out.read_text(encoding="utf-8").removesuffix("\n").split("\n")
    if len(texts) != len(lines):
        raise ValueError(f"{inp}: {len(texts)} texts but {len(lines)} golden lines")
    return [GoldenCase(t, [int(x) for x in line.split()]) for t, line in zip(texts, lines)]


def mismatches(tok, cases: list[GoldenCase]) -> list[tuple[GoldenCase, list[int]]]:
    """The cases where ``tok`` encodes the text to other ids, with the ids it gave."""
    out = []
    for case in cases:
        ids = tok.encode(case.text, add_special=False, parse_special=False)
        if ids != case.ids:
            out.append((case, ids))
    return out
