"""Tokenizer file formats: how each is recognised and which implementations read it.

One table (`FORMATS`) answers both questions that used to be spread over the target loader
and the implementation loader. Implementations are named here and found in
`chainfuzz.tokenization.AVAILABLE_TOKENIZERS`; a third-party implementation joins the
formats its class lists in ``formats``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Reader:
    """An implementation that reads a format: its name in the implementation table, the pip
    extra that installs what it needs, and a file the source folder must hold (else it is
    not tried: a model folder has a SentencePiece model only sometimes)."""

    impl: str
    extra: str = ""
    needs: str | None = None


@dataclass(frozen=True)
class Format:
    """``file``: the file names of a lone file in this format (None: a model folder or a GGUF,
    which the target loader opens itself because they hold templates too). ``chat``: the
    implementation encodes chat requests itself (mistral-common), so the tokenizer is a chain
    target without a template."""

    name: str
    readers: tuple[Reader, ...]  # the reference first
    file: re.Pattern | None = None
    chat: bool = False


# In the order a lone file is matched against them.
FORMATS: dict[str, Format] = {f.name: f for f in (
    Format("hf", (Reader("hf"), Reader("sentencepiece", "spm", needs="tokenizer.model"))),
    Format("gguf", (Reader("llama.cpp", "llama"), Reader("hf", "hf-gguf")), re.compile(r"\.gguf$")),
    Format("hf-json", (Reader("hf"),), re.compile(r"^tokenizer\.json$")),
    Format("tekken", (Reader("mistral-common", "mistral"), Reader("hf", "mistral")),
           re.compile(r"^tekken.*\.json$"), chat=True),
    Format("mistral-sentencepiece",
           (Reader("mistral-common", "mistral"), Reader("sentencepiece", "spm"), Reader("hf", "spm")),
           re.compile(r"(^tokenizer\.model\.v\d+|\.model\.v\d+m?\d*)$"), chat=True),
    Format("sentencepiece", (Reader("sentencepiece", "spm"), Reader("hf", "spm")), re.compile(r"\.model$")),
)}


def lone_file_format(p: Path) -> str | None:
    """The format of a tokenizer file that is not a GGUF ("tokenizer.json", "tekken*.json",
    "*.model", ...), or None."""
    return next((f.name for f in FORMATS.values()
                 if f.file is not None and f.name != "gguf" and f.file.search(p.name)), None)


def is_tokenizer_file(p: Path) -> bool:
    """Whether ``p`` names a tokenizer file chainfuzz reads (a GGUF may hold a template too)."""
    return any(f.file is not None and f.file.search(p.name) for f in FORMATS.values())


def readers(fmt: str) -> tuple[Reader, ...]:
    """Who reads ``fmt``: the built-in readers, then third-party implementations listing it."""
    from . import AVAILABLE_TOKENIZERS

    extra = []
    for name in AVAILABLE_TOKENIZERS.names():
        if name in AVAILABLE_TOKENIZERS.builtin:
            continue
        try:
            cls = AVAILABLE_TOKENIZERS.load(name)
        except ImportError:
            continue
        if fmt in getattr(cls, "formats", ()):
            extra.append(Reader(name))
    return FORMATS[fmt].readers + tuple(extra)
