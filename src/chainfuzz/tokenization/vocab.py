"""What the generators draw tokenizer input from: a target's own vocabulary.

Built once per target from its tokenizer implementations (and its template's markers), so
that adversarial text spells the target's own special tokens and id sequences hit the ids
that decode to part of a character.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

from .base import MULTIBYTE_PROBE, Tokenizer, TokenizerCrash

__all__ = ["MULTIBYTE_PROBE", "Vocab", "build"]


@dataclass(frozen=True)
class Vocab:
    """The drawable parts of a vocabulary.

    ``size`` is the id range valid in every implementation (the smallest vocabulary), so an
    id sequence means the same tokens to each.
    """

    size: int
    specials: tuple[str, ...]
    special_ids: tuple[int, ...]
    partial_ids: tuple[int, ...]
    token_text: Callable[[int], str]


def build(tokenizers: Sequence[Tokenizer], markers: Sequence[str] = ()) -> Vocab:
    """The vocabulary of ``tokenizers`` (reference first) plus a template's ``markers``."""
    ref = tokenizers[0]
    size = min(t.vocab_size for t in tokenizers)
    specials = {text for t in tokenizers for text in (*t.special, *t.control_like) if text}
    specials |= {m for m in markers if m}
    special_ids = sorted({i for t in tokenizers for i in t.special.values() if 0 <= i < size})
    partial = [i for i in ref.partial_ids if i < size]
    return Vocab(
        size=size,
        specials=tuple(sorted(specials, key=lambda s: (len(s), s))),
        special_ids=tuple(special_ids),
        partial_ids=tuple(partial),
        token_text=_drawable_text(ref),
    )


def _drawable_text(tok: Tokenizer) -> Callable[[int], str]:
    """``tok.token_text`` for generators, which spell text with the vocabulary's pieces: an id
    the implementation dies decoding gives U+FFFD, which they leave out. The crash itself is
    the properties' to find, on an input they decode."""

    def text(i: int) -> str:
        try:
            return tok.token_text(i)
        except TokenizerCrash:
            return "\ufffd"

    return text
