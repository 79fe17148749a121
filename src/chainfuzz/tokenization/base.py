"""The one interface every tokenizer implementation is driven through.

Properties compare implementations (Hugging Face, llama.cpp, SentencePiece, mistral-common)
on the same vocabulary, so each adapter answers the same few questions the same way: ids for
text (with or without the special tokens a server adds, with or without parsing special-token
text), text for ids, and which ids are control tokens.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import tempfile
import threading
from abc import ABC, abstractmethod
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Iterator

from ..internal.limits import is_native_panic

# Added tokens that are not marked special but still act as control tokens when they match
# in text: chat markers in the <|...|>, <｜...｜>, [INST] and <start_of_turn> shapes.
_CONTROL_SHAPE = re.compile(r"^(<\|.+\|>|<｜.+｜>|\[/?[A-Z_]{2,}\]|<(start|end)_of_[a-z_]+>|</?s>)$")


@dataclass(frozen=True)
class TokenizerSource:
    """Where a target's tokenizer lives: its format (a row of `formats.FORMATS`), its path and
    the hash of its files."""

    format: str
    path: str
    sha256: str


class TokenizerCrash(Exception):
    """The implementation died (a native abort or panic) or hung on an input: a finding, not a bug."""


# Characters that tokenizers split into several ids (byte-level BPE, byte fallback): the ids
# they encode to that decode to U+FFFD alone are the partial-character ids.
MULTIBYTE_PROBE = (
    "ệ你好世界😀🎉👨‍👩‍👧ñ€Ωж日本語한국어ไทยअआ∑∫≈𝔘𝔫𝔦𝔠🦙🤖ꙮ㐀𠀀𪜀\ue000ᚠ"
    "ⓐ⑴∰⟁⥈🜁𓀀𒀀𐍈"
)


class _Stderr:
    """Rust's panic hook writes its message (and a backtrace under RUST_BACKTRACE) to file
    descriptor 2 before the panic reaches Python. While a native call runs in the main
    thread, descriptor 2 points at a scratch file (one per process: a forked sweep worker
    gets its own); what landed there goes back to the real stderr unless the call panicked
    (the panic's message is in the `TokenizerCrash`). Four system calls a call."""

    def __init__(self) -> None:
        self.depth = 0
        self.saved = -1
        self.panicked = False
        self.sink = None
        self.pid = -1

    def enter(self) -> bool:
        if threading.current_thread() is not threading.main_thread():
            return False
        self.depth += 1
        if self.depth == 1:
            if self.pid != os.getpid():
                self.sink, self.pid = tempfile.TemporaryFile(), os.getpid()
            sys.stderr.flush()
            self.saved = os.dup(2)
            os.dup2(self.sink.fileno(), 2)
        return True

    def leave(self, panicked: bool) -> None:
        self.panicked |= panicked
        self.depth -= 1
        if self.depth > 0:
            return
        keep, self.panicked = not self.panicked, False
        sys.stderr.flush()
        os.dup2(self.saved, 2)
        os.close(self.saved)
        fd = self.sink.fileno()
        end = os.lseek(fd, 0, os.SEEK_CUR)
        if end:
            os.lseek(fd, 0, os.SEEK_SET)
            captured = os.read(fd, end)
            os.lseek(fd, 0, os.SEEK_SET)
            os.ftruncate(fd, 0)
            if keep:
                os.write(2, captured)


_STDERR = _Stderr()


@contextlib.contextmanager
def native(what: str) -> Iterator[None]:
    """Run a call into a native tokenizer library: a Rust panic in it becomes a
    `TokenizerCrash` ("panicked on WHAT: message"), which properties report as a finding
    and loading as an implementation that does not run, and its message stays off the
    terminal."""
    captured = _STDERR.enter()
    panicked = False
    try:
        yield
    except BaseException as exc:
        if not is_native_panic(exc):
            raise
        panicked = True
        text = str(exc).strip().splitlines()
        raise TokenizerCrash(f"panicked on {what}: {text[0][:200] if text else 'no message'}") from None
    finally:
        if captured:
            _STDERR.leave(panicked)


class Tokenizer(ABC):
    """One implementation of one vocabulary.

    ``special`` maps the text of every token the implementation treats as a control token
    (HF ``special=True``, GGUF CONTROL, SentencePiece control symbols) to its id; ``added``
    holds the other added or user-defined tokens, which implementations match in text no
    matter how special-token parsing is set.
    """

    impl: str = "?"
    packages: tuple[str, ...] = ()  # whose versions a case file records
    formats: tuple[str, ...] = ()  # a third-party implementation: the formats it reads
    vocab_size: int = 0
    bos_id: int | None = None
    eos_id: int | None = None
    unk_id: int | None = None
    adds_bos: bool = False  # whether the default encoding (a server's) puts BOS first
    # Whether special-token text can become control ids at all (``parse_special=True``).
    # sentencepiece and mistral-common never do it, so they cannot encode a rendered prompt.
    parses_special: bool = True
    normalizer: str | None = None  # the normalising step that changes text by design, if any
    special: dict[str, int]
    added: dict[str, int]

    @classmethod
    def from_source(cls, source: TokenizerSource) -> "Tokenizer":
        """Open the tokenizer at ``source`` (an `ImportError` when a dependency is missing)."""
        return cls(Path(source.path))

    @abstractmethod
    def encode(self, text: str, *, add_special: bool = False, parse_special: bool = True) -> list[int]:
        """Token ids of ``text``.

        ``add_special`` adds what the tokenizer adds by default (BOS, EOS); ``parse_special``
        turns special-token text into control ids, as servers do on a rendered prompt, while
        ``parse_special=False`` is the setting meant for untrusted text.
        """

    @abstractmethod
    def decode(self, ids: list[int]) -> str:
        """Text of ``ids``, special tokens included, as a server's full (non-streamed) decode."""

    def token_text(self, i: int) -> str:
        """The text one id decodes to on its own (may hold U+FFFD for partial characters)."""
        return self.decode([i])

    def close(self) -> None:
        """Release what the implementation holds (a worker process)."""

    @cached_property
    def partial_ids(self) -> tuple[int, ...]:
        """The ids `MULTIBYTE_PROBE` encodes to that decode to U+FFFD alone (part of a
        character). Probed when the implementation loads, so one that dies on it is not run
        rather than crashing the search that draws from it."""
        probe = self.encode(MULTIBYTE_PROBE, parse_special=False)
        return tuple(sorted({i for i in probe if 0 <= i < self.vocab_size and "\ufffd" in self.token_text(i)}))

    def stream_decoders(self) -> dict:
        """The ways servers decode this tokenizer's ids incrementally, by name: each takes the
        id steps and returns the text deltas (`chainfuzz.tokenization.stream`)."""
        from .stream import algorithms

        return algorithms(self)

    @cached_property
    def control_like(self) -> dict[str, int]:
        """Added tokens that look like chat control tokens but are not marked special."""
        return {t: i for t, i in self.added.items() if _CONTROL_SHAPE.match(t)}

    @cached_property
    def control_ids(self) -> dict[int, str]:
        """Ids that must never come out of untrusted text, with their text: the special and
        control-shaped tokens, less the unknown token (unknown characters legitimately
        become it)."""
        out = {i: t for t, i in {**self.control_like, **self.special}.items()}
        out.pop(self.unk_id, None)
        return out

    @property
    def bos_text(self) -> str | None:
        return next((t for t, i in self.special.items() if i == self.bos_id), None)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.impl} vocab={self.vocab_size}>"
