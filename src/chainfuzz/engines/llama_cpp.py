"""llama.cpp (llama-cpp-python) as an inference engine, on an f32 GGUF of the model folder.

The model runs in a worker process (`_llama_engine_worker`): a native abort or a hang in
llama.cpp ends the worker, raises `EngineCrash` (a finding for the input that did it) and the
next call starts a fresh worker. ``generate`` decodes all prompts in one multi-sequence
``llama_batch`` with a prefix cache on single-prompt requests (what llama-server does);
``complete``, ``stream`` and ``chat`` are llama-cpp-python's own high-level text and chat paths.
"""

from __future__ import annotations

import sys
from pathlib import Path

from ..internal import limits
from ..internal.worker import Worker
from . import gguf_model
from .base import ChatResult, Completion, Engine, EngineCrash, EngineError

# A single call never needs this long (the tiny model decodes ~80 tokens/s on one thread; a
# worker starts in ~1 s); a worker that takes it is hung. Each call's wait ends no later than
# the command's budget (`Worker.read`).
CALL_TIMEOUT = 60.0


class LlamaCppEngine(Engine):
    """llama-cpp-python on ``folder/model-f32.gguf``: F32 weights and KV cache, no flash
    attention, one thread, greedy."""

    name = "llama.cpp"
    packages = ("llama-cpp-python", "gguf")
    # Measured on the tiny qwen2 model: a prompt decoded alone vs in one batch with 1-3 other
    # prompts of other lengths (prompts of 3-700 tokens, 16 greedy steps, every position in
    # the batch): the same tokens, chosen-token logprobs within 1.9e-6; warm prefix cache vs
    # cold vs uncached: within 9.1e-7 (different matmul shapes and KV cell layouts; the
    # thread count is fixed, so one configuration is bitwise repeatable). 1e-4 is a ~50x
    # margin and still far below a difference that could flip a greedy token.
    tolerance = 1e-4
    _worker: Worker | None = None  # also for __del__ after __init__ raised

    def __init__(self, folder: Path) -> None:
        import importlib.util

        if importlib.util.find_spec("llama_cpp") is None:
            raise ImportError("llama-cpp-python is not installed", name="llama-cpp-python")
        self.folder = Path(folder)
        self.path = gguf_model.write(self.folder)
        limits.check_budget()  # the conversion runs in this process: charged once it is done
        self._worker = Worker([sys.executable, "-m", "chainfuzz.engines._llama_engine_worker", str(self.path)],
                              name="llama.cpp", crash=EngineCrash)
        meta = self._call({"op": "info"})
        self.vocab_size = meta["n_vocab"]

    # -- Engine ---------------------------------------------------------------------------------
    def generate(self, prompts: list[list[int]], max_new_tokens: int) -> list[Completion]:
        reply = self._call({"op": "generate", "prompts": [list(p) for p in prompts],
                            "n": max_new_tokens})
        return [Completion(c["tokens"], c["logprobs"]) for c in reply["completions"]]

    def clear_prefix_cache(self) -> None:
        self._call({"op": "clear"})

    def generate_uncached(self, prompt: list[int], max_new_tokens: int) -> Completion:
        """One prompt from an empty KV cache; the prefix cache is forgotten (llama-server's
        slot with ``cache_prompt: false`` overwrites its cache the same way)."""
        [c] = self._call({"op": "uncached", "prompt": list(prompt), "n": max_new_tokens})["completions"]
        return Completion(c["tokens"], c["logprobs"])

    def complete(self, prompt: list[int], max_new_tokens: int, stop: list[str]) -> str:
        return self._call({"op": "complete", "prompt": list(prompt), "n": max_new_tokens,
                           "stop": list(stop or [])})["text"]

    def stream(self, prompt: list[int], max_new_tokens: int, stop: list[str]) -> list[str]:
        return self._call({"op": "stream", "prompt": list(prompt), "n": max_new_tokens,
                           "stop": list(stop or [])})["deltas"]

    def chat(self, messages: list[dict], tools: list | None, max_new_tokens: int) -> ChatResult:
        reply = self._call({"op": "chat", "messages": messages, "tools": tools, "n": max_new_tokens})
        return ChatResult(reply["prompt_ids"], reply["prompt_tokens"], reply["text"])

    def close(self) -> None:
        if self._worker is not None:
            self._worker.close()

    def __del__(self) -> None:
        self.close()

    def _call(self, request: dict) -> dict:
        reply = self._worker.call(request, CALL_TIMEOUT)
        if "refused" in reply:
            # llama.cpp returned an error instead of aborting (it checks ids since 2025): the
            # input is as much a finding, the worker lives on with its caches cleared. The
            # first stderr line is the cause, before llama.cpp's follow-ups.
            raise EngineError(f"llama.cpp refused {request['op']} ({reply['refused']})"
                              f"{self._worker.last_words(first=True)}")
        if "error" in reply:
            raise EngineError(f"llama.cpp refused {request['op']}: {reply['error']}")
        return reply
