"""Streaming detokenizers: how servers turn generated ids into text deltas.

Two algorithms, both as servers run them:

- ``decode_stream``: Hugging Face ``tokenizers.decoders.DecodeStream`` (vLLM's fast path).
- ``offsets``: the prefix/read-offset window of TGI's ``decode_token`` and vLLM's
  ``detokenize_incrementally``: decode a window ending at the new ids and emit what it adds
  over the window without them, holding text back while it ends in U+FFFD (an incomplete
  character).

Each takes the ids in steps (lists of one or more ids) and returns the deltas it emitted.
"""

from __future__ import annotations

from typing import Callable

from .base import Tokenizer, native

REPLACEMENT = "\ufffd"


def offsets(decode: Callable[[list[int]], str], steps: list[list[int]]) -> list[str]:
    """Deltas from the prefix/read-offset algorithm over any ``decode`` function."""
    ids: list[int] = []
    prefix_offset = read_offset = 0
    deltas = []
    for step in steps:
        ids.extend(step)
        prefix_text = decode(ids[prefix_offset:read_offset])
        new_text = decode(ids[prefix_offset:])
        if len(new_text) > len(prefix_text) and not new_text.endswith(REPLACEMENT):
            deltas.append(new_text[len(prefix_text):])
            prefix_offset, read_offset = read_offset, len(ids)
        else:
            deltas.append("")
    return deltas


def decode_stream(backend, steps: list[list[int]]) -> list[str]:
    """Deltas from ``tokenizers``' ``DecodeStream`` stepping on a ``tokenizers.Tokenizer``."""
    from tokenizers.decoders import DecodeStream

    stream = DecodeStream(skip_special_tokens=False)
    with native("decode"):
        return [stream.step(backend, step if len(step) > 1 else step[0]) or "" for step in steps]


def algorithms(tok: Tokenizer) -> dict[str, Callable[[list[list[int]]], list[str]]]:
    """The streaming algorithms that apply to ``tok``, by name."""
    out = {"offsets": lambda steps: offsets(tok.decode, steps)}
    backend = getattr(tok, "backend", None)
    if backend is not None:
        out["DecodeStream"] = lambda steps: decode_stream(backend, steps)
    return out
