"""llama.cpp's own tokenizer on a GGUF vocabulary, through llama-cpp-python, in a subprocess.

A native abort in llama.cpp would end chainfuzz's process and lose the run; here it ends the
worker, raises `TokenizerCrash` (which properties report as a finding) and the next call
starts a fresh worker.
"""

from __future__ import annotations

import sys
from pathlib import Path

from ..internal.worker import Worker
from .base import Tokenizer, TokenizerCrash

# A single call never needs this long; a worker that takes it is hung.
CALL_TIMEOUT = 30.0


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
                              name="llama.cpp", crash=TokenizerCrash)
        meta = self._call({"op": "info"})
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

    def _call(self, request: dict) -> dict:
        reply = self._worker.call(request, CALL_TIMEOUT)
        if "error" in reply:
            raise RuntimeError(reply["error"])
        return reply
