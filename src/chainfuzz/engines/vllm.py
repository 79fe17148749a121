"""vLLM's offline API (``vllm.LLM``) as an engine, in a worker process on vLLM's own Python.

vLLM cannot share chainfuzz's environment (`vllm_env`), so ``_vllm_worker.py`` runs as a
script under vLLM's Python and answers JSON lines, like the llama.cpp tokenizer worker: a
worker that dies or hangs raises `EngineCrash` (a finding for the input that did it) and the
next call starts a fresh one.

Configuration, measured on a 2-core CPU (shared with other jobs, load 5-6) with the tiny model:

- fp32, prefix caching on with 32-token blocks, seed 0, ``enforce_eager`` (no torch.compile
  of the model), max_model_len 4096, 1 GiB of KV cache (`vllm_environ`); the worker's
  ``DEFAULTS`` list them.
- The engine core runs inside the worker (``VLLM_ENABLE_V1_MULTIPROCESSING=0``; set it to 1
  in the environment for vLLM's default layout): ready in 22-25 s instead of 33-41 s, ~2.5 GB
  resident instead of ~4 GB over four processes, and nothing that could outlive the worker.
  Both layouts gave bitwise-identical tokens and logprobs. In-process, vLLM does not size
  its OpenMP threads, so the worker gets what vLLM's multiprocess setup gives its model
  worker: every CPU but one (1 here); two threads bound to one core ran ~10x slower.
- ``tolerance = 0.0``: alone vs in a batch of 4 at every position, repeats, prefix cache
  cold vs warm vs salted all gave bitwise-identical tokens and logprobs (tests/test_vllm_engine.py
  checks this on every run). Against transformers (2 threads, its own attention) the greedy
  tokens agree and chosen-token logprobs differ by at most 3.8e-6.
- ~155 new tokens/s for one prompt, ~690/s for a batch of 8.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from pathlib import Path

from ..internal.worker import Worker
from .base import ChatResult, Completion, Engine, EngineCrash, EngineError, Unsupported
from .vllm_env import vllm_environ, vllm_python

WORKER = Path(__file__).with_name("_vllm_worker.py")
# Starting vLLM takes 15-45 s on a 2-core machine, more when it is loaded; a call on the tiny
# model takes well under a second. A worker past these is hung. Both waits end no later than
# the command's budget (`Worker.read`), and a start cut short by it is `BudgetExhausted`.
STARTUP_TIMEOUT = 300.0
CALL_TIMEOUT = 120.0


def _work_dir() -> Path:
    """Where vLLM's caches and temporary files go: under chainfuzz's cache."""
    from ..corpus import cache_dir

    return cache_dir() / "vllm"


class VllmEngine(Engine):
    """``vllm.LLM`` on a model folder, greedy, behind a JSON-lines pipe to a worker process.

    ``options`` override the worker's ``vllm.LLM`` arguments (see ``_vllm_worker.DEFAULTS``).
    After each call ``cached_tokens`` holds vLLM's ``num_cached_tokens`` of every request the
    call made (prefix-cache hits, in prompt tokens).
    """

    name = "vllm"
    tolerance = 0.0
    _worker: Worker | None = None  # also for __del__ after __init__ raised

    def __init__(self, folder: Path, *, options: dict | None = None,
                 startup_timeout: float = STARTUP_TIMEOUT, call_timeout: float = CALL_TIMEOUT) -> None:
        python = vllm_python()
        if python is None:
            raise ImportError("vLLM is not installed: make vllm-env, or set CHAINFUZZ_VLLM_PYTHON", name="vllm")
        self.python = Path(python)
        self.folder = Path(folder).resolve()
        self.options = dict(options or {})
        self.startup_timeout, self.call_timeout = startup_timeout, call_timeout
        self.cached_tokens: list[int] = []
        self.startup_s: float | None = None  # the latest worker's, as it measured it
        self.version: str | None = None
        self._tmp: str | None = None
        self._worker = Worker([str(self.python), str(WORKER), str(self.folder), json.dumps(self.options)],
                              name="vLLM", crash=EngineCrash, own_group=True)  # vLLM starts processes
        self._ensure()  # start now: a model vLLM cannot load fails here, not mid-property

    def versions(self) -> dict[str, str]:
        """vLLM runs in its own environment: its worker reports the version it imported."""
        return {"vllm": self.version or "unknown"}

    # -- the Engine interface -------------------------------------------------------------
    def generate(self, prompts: list[list[int]], max_new_tokens: int) -> list[Completion]:
        reply = self._call({"op": "generate", "prompts": [list(p) for p in prompts], "n": max_new_tokens})
        outs = reply["completions"]
        self.cached_tokens = [o["cached"] for o in outs]
        return [Completion(o["tokens"], o["logprobs"], o["text"]) for o in outs]

    def clear_prefix_cache(self) -> None:
        if not self._call({"op": "reset_prefix_cache"})["reset"]:
            raise RuntimeError("vLLM did not reset its prefix cache (requests still running)")

    def generate_uncached(self, prompt: list[int], max_new_tokens: int) -> Completion:
        out = self._call({"op": "generate_uncached", "prompt": list(prompt), "n": max_new_tokens})
        self.cached_tokens = [out["cached"]]
        return Completion(out["tokens"], out["logprobs"], out["text"])

    def complete(self, prompt: list[int], max_new_tokens: int, stop: list[str]) -> str:
        out = self._call({"op": "complete", "prompt": list(prompt), "n": max_new_tokens, "stop": list(stop)})
        self.cached_tokens = [out["cached"]]
        return out["text"]

    def stream(self, prompt: list[int], max_new_tokens: int, stop: list[str]) -> list[str]:
        raise Unsupported("vLLM's offline API does not stream (vllm serve does: use its URL)")

    def chat(self, messages: list[dict], tools: list | None, max_new_tokens: int) -> ChatResult:
        out = self._call({"op": "chat", "messages": messages, "tools": tools, "n": max_new_tokens})
        self.cached_tokens = [out["cached"]]
        return ChatResult(prompt_ids=out["prompt_ids"], prompt_tokens=len(out["prompt_ids"]), text=out["text"])

    def close(self) -> None:
        """Kill the worker and everything it started (its own process group)."""
        if self._worker is not None:
            self._worker.close()
        tmp, self._tmp = self._tmp, None
        if tmp is not None:  # vLLM's ZMQ sockets and scratch files: a killed worker leaves them
            shutil.rmtree(tmp, ignore_errors=True)

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # interpreter shutdown: modules half gone
            pass

    # -- the worker -----------------------------------------------------------------------
    @property
    def pid(self) -> int | None:
        """The running worker's process id (its process group's too), or None."""
        return self._worker.proc.pid if self._worker.running else None

    def _environ(self) -> dict[str, str]:
        work = _work_dir()
        env = vllm_environ(work)
        self._tmp = tempfile.mkdtemp(prefix="w", dir=work / "tmp")  # short: socket paths in it
        env["TMPDIR"] = self._tmp
        env.update({"VLLM_NO_USAGE_STATS": "1", "DO_NOT_TRACK": "1"})
        env.setdefault("VLLM_LOGGING_LEVEL", "WARNING")  # startup chatter; errors still show
        env.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")  # 1 gives vLLM's default layout
        if env["VLLM_ENABLE_V1_MULTIPROCESSING"] == "0" and "OMP_NUM_THREADS" not in env:
            cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
            env["OMP_NUM_THREADS"] = str(max(1, cpus - 1))
        return env

    def _ensure(self) -> None:
        """Start a worker (and wait until it is ready) if none runs."""
        if self._worker.running:
            return
        self.close()
        started = time.perf_counter()
        self._worker.env = self._environ()
        self._worker.start()
        ready = self._worker.read(self.startup_timeout, "startup")
        self.startup_s = ready.get("startup_s", round(time.perf_counter() - started, 2))
        self.version = ready.get("version")

    def _call(self, request: dict) -> dict:
        self._ensure()
        reply = self._worker.call(request, self.call_timeout)
        if "error" in reply:
            raise EngineError(f"vLLM refused the {request['op']} request: {reply['error']}")
        return reply
