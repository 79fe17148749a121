"""llama.cpp's own tokenizer on a GGUF vocabulary, through llama-cpp-python, in a subprocess.

A native abort in llama.cpp would end chainfuzz's process and lose the run; here it ends the
worker, raises `TokenizerCrash` (which properties report as a finding) and the next call
starts a fresh worker.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from ..internal import limits
from ..internal.worker import Worker
from .base import Tokenizer, TokenizerCrash

# A single call never needs this long; a worker that takes it is hung.
CALL_TIMEOUT = 30.0
# Loading and listing a vocabulary's special tokens: 1.2 s for Gemma 4's 262k tokens
# (measured); the limit is `chainfuzz.tokenization.LOAD_SECONDS`, this only a ceiling.
INFO_TIMEOUT = 120.0
# ggml's abort handler runs gdb for a backtrace first: 1.5 s per crash instead of 0.3 s.
_WORKER_ENV = {"GGML_NO_BACKTRACE": "1"}


class LlamaCppTokenizer(Tokenizer):
    """``Llama(path, vocab_only=True)`` behind a JSON-lines pipe."""

    impl = "llama.cpp"
    packages = ("llama-cpp-python",)
    _worker: Worker | None = None  # also for __del__ after __init__ raised

    def __init__(self, path: Path) -> None:
        import importlib.util

        if importlib.util.find_spec("llama_cpp") is None:
            raise ImportError("llama-cpp-python is not installed", name="llama-cpp-python")
        self.path = Path(path)
        self._worker = Worker([sys.executable, "-m", "chainfuzz.tokenization._llama_worker", str(self.path)],
                              name="llama.cpp", crash=TokenizerCrash, env={**os.environ, **_WORKER_ENV})
        meta = self._call({"op": "info"}, INFO_TIMEOUT)
        self.vocab_size = meta["n_vocab"]
        self.bos_id, self.eos_id = meta["bos"], meta["eos"]
        self.adds_bos = meta["add_bos"] and self.bos_id is not None
        self.special, self.added = meta["special"], meta["added"]
        self.unk_id = meta["unk"] if meta["unk"] >= 0 else None
        self.normalizer = "WPM(lowercase, strip_accents)" if meta["wpm"] else None

    def encode(self, text: str, *, add_special: bool = False, parse_special: bool = True) -> list[int]:
        text.encode("utf-8")  # a lone surrogate is the caller's error, not a worker crash
        return self._call({"op": "encode", "text": text, "add_special": add_special,
                           "parse_special": parse_special})["ids"]

    def decode(self, ids: list[int]) -> str:
        return self._call({"op": "decode", "ids": list(ids)})["text"]

    def close(self) -> None:
        if self._worker is not None:
            self._worker.close()

    def __del__(self) -> None:
        self.close()

    def _call(self, request: dict, seconds: float = CALL_TIMEOUT) -> dict:
        """The worker's reply; `TokenizerCrash` if it dies or hangs, `BudgetExhausted` if
        the command's budget ran out while it worked."""
        try:
            reply = self._worker.call(request, limits.call_timeout(seconds))
        except TokenizerCrash:
            if limits.out_of_budget():
                raise limits.BudgetExhausted() from None
            raise
        if "error" in reply:
            raise RuntimeError(reply["error"])
        return reply
