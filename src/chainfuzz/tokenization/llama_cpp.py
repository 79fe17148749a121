"""llama.cpp's own tokenizer on a GGUF vocabulary, through llama-cpp-python, in a subprocess.

A native abort in llama.cpp would end chainfuzz's process and lose the run; here it ends the
worker, raises `TokenizerCrash` (which properties report as a finding) and the next call
starts a fresh worker.
"""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import tempfile
from pathlib import Path

from .base import Tokenizer, TokenizerCrash

# A single call never needs this long; a worker that takes it is hung.
CALL_TIMEOUT = 30.0


class LlamaCppTokenizer(Tokenizer):
    """``Llama(path, vocab_only=True)`` behind a JSON-lines pipe."""

    impl = "llama.cpp"
    _proc: subprocess.Popen | None = None  # also for __del__ after __init__ raised

    def __init__(self, path: Path) -> None:
        import importlib.util

        if importlib.util.find_spec("llama_cpp") is None:
            raise ImportError("llama-cpp-python is not installed", name="llama-cpp-python")
        self.path = Path(path)
        self._proc: subprocess.Popen | None = None
        self._stderr = tempfile.TemporaryFile(mode="w+", encoding="utf-8", errors="replace")
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
        proc, self._proc = self._proc, None
        if proc is not None:
            proc.kill()
            proc.wait()

    def _last_words(self) -> str:
        """The last line the dead worker wrote to stderr (llama.cpp's abort message)."""
        self._stderr.seek(0)
        lines = [ln.strip() for ln in self._stderr.read().splitlines() if ln.strip()]
        self._stderr.seek(0)
        self._stderr.truncate()
        return f": {lines[-1][:200]}" if lines else ""

    def __del__(self) -> None:
        self.close()

    def _start(self) -> subprocess.Popen:
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        return subprocess.Popen(
            [sys.executable, "-m", "chainfuzz.tokenization._llama_worker", str(self.path)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._stderr,
            text=True, encoding="utf-8", env=env,
        )

    def _call(self, request: dict) -> dict:
        if self._proc is None or self._proc.poll() is not None:
            self._proc = self._start()
        proc = self._proc
        try:
            proc.stdin.write(json.dumps(request) + "\n")
            proc.stdin.flush()
            ready, _, _ = select.select([proc.stdout], [], [], CALL_TIMEOUT)
            line = proc.stdout.readline() if ready else ""
        except (BrokenPipeError, OSError):
            line = ""
        if not line:
            try:
                proc.wait(timeout=2)  # it closed its stdout: let it finish dying
            except subprocess.TimeoutExpired:
                pass
            hung = proc.poll() is None
            self.close()
            how = "hung" if hung else (f"signal {-proc.returncode}" if proc.returncode < 0
                                        else f"exit code {proc.returncode}")
            raise TokenizerCrash(f"llama.cpp died ({how}) on {request['op']}{self._last_words()}")
        reply = json.loads(line)
        if "error" in reply:
            raise RuntimeError(reply["error"])
        return reply
