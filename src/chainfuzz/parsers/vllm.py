"""vLLM's output parsers (``vllm.parser``: tool parsers and reasoning parsers composed by
``ParserManager``), driven as its OpenAI server drives them, in a worker on vLLM's own Python.

vLLM cannot share chainfuzz's environment (`chainfuzz.engines.vllm_env`), so
``_vllm_parser_worker.py`` runs as a script under vLLM's Python and answers JSON lines. It
loads the target's tokenizer with vLLM's own loader and the parsers, never a model. A parser
that raises on a text is `ParserCrash`; a worker that dies or hangs is `ParserCrash` too, and
the next call starts a fresh worker.

Specs: ``vllm:TOOL`` (``--tool-call-parser TOOL --enable-auto-tool-choice``),
``vllm:TOOL+reasoning:REASONING`` (with ``--reasoning-parser REASONING``) and
``vllm:reasoning:REASONING`` (a reasoning parser alone).
"""

from __future__ import annotations

import re
import time
from pathlib import Path

from ..engines.vllm_env import vllm_environ, vllm_python
from ..errors import Unsupported, UsageError
from ..internal.worker import Worker
from .base import Chunk, Delta, Message, Parser, ParserCrash, ParserSetup, Request, ToolCall, ToolCallDelta

WORKER = Path(__file__).with_name("_vllm_parser_worker.py")
# The worker is ready in 8-19 s on a 2-core machine (importing vLLM ~7 s, then the tokenizer:
# 3 s for Qwen's, 10 s for gemma-4's); a parse takes 0.5-3 ms. A worker past these is hung (a parser's regular expression that
# backtracks without end, say): a crash for the text that did it.
STARTUP_TIMEOUT = 180.0
CALL_TIMEOUT = 60.0
REASONING = "reasoning:"
NAME = re.compile(r"[A-Za-z0-9_.-]+")  # vLLM's registered names: hermes, granite-20b-fc, ...


def parse_spec(spec: str) -> tuple[str | None, str | None]:
    """(tool parser, reasoning parser) that a ``vllm:...`` spec names; `UsageError` if the
    spec is not one of the three forms."""
    args = spec.split(":", 1)[1] if ":" in spec else ""
    if args.startswith(REASONING):
        tool, reasoning = None, args[len(REASONING):]
    else:
        tool, _, reasoning = args.partition("+" + REASONING)
        reasoning = reasoning if _ else None
    if not all(NAME.fullmatch(n) for n in (tool, reasoning) if n is not None) or tool == "":
        raise UsageError(f"bad parser spec {spec!r}: use vllm:TOOL, vllm:TOOL+reasoning:REASONING "
                         "or vllm:reasoning:REASONING")
    return tool, reasoning


class VllmParser(Parser):
    """A vLLM tool parser and/or reasoning parser on one tokenizer folder, behind a worker."""

    implementation = "vllm"
    packages = ("vllm",)
    reads_template = False  # vLLM's parsers read the tokenizer only
    _worker: Worker | None = None  # also for __del__ after __init__ raised

    def __init__(self, spec: str, tokenizer_dir: Path, *, startup_timeout: float = STARTUP_TIMEOUT,
                 call_timeout: float = CALL_TIMEOUT) -> None:
        self.tool, self.reasoning = parse_spec(spec)
        self.splits_reasoning = self.reasoning is not None
        python = vllm_python()
        if python is None:
            raise ImportError("vLLM is not installed: make vllm-env, or set CHAINFUZZ_VLLM_PYTHON", name="vllm")
        self.name = spec
        self.tokenizer_dir = Path(tokenizer_dir).resolve()
        self.startup_timeout, self.call_timeout = startup_timeout, call_timeout
        self.startup_s: float | None = None  # the latest worker's, as it measured it
        self.version: str | None = None
        self._worker = Worker([str(python), str(WORKER), str(self.tokenizer_dir), self.tool or "",
                               self.reasoning or ""], name="vLLM parser", crash=ParserCrash)
        self._ensure()  # start now: a bad name or a tokenizer the parser refuses fails here

    @classmethod
    def from_spec(cls, spec: str, setup: ParserSetup) -> "VllmParser":
        parse_spec(spec)  # a bad spec is a usage error even where vLLM is absent
        if setup.tokenizer_dir is None:
            raise UsageError(f"parser {spec}: vLLM's parsers need the model's tokenizer folder")
        return cls(spec, setup.tokenizer_dir)

    def versions(self) -> dict[str, str]:
        """vLLM runs in its own environment: its worker reports the version it imported."""
        return {"vllm": self.version or "unknown"}

    # -- the Parser interface -------------------------------------------------------------
    def parse(self, text: str, request: Request) -> Message:
        out = self._call({"op": "parse", "text": text, "request": _request(request)})
        return Message(content=out["content"], reasoning=out["reasoning"],
                       tool_calls=[ToolCall(c["name"], c["arguments"], c["id"]) for c in out["tool_calls"]])

    def stream(self, chunks: list[Chunk], request: Request) -> list[Delta]:
        out = self._call({"op": "stream", "chunks": [[c.text, list(c.token_ids)] for c in chunks],
                          "request": _request(request)})
        return [Delta() if d is None else Delta(
            content=d["content"], reasoning=d["reasoning"],
            tool_calls=[ToolCallDelta(t["index"], t["id"], t["name"], t["arguments"]) for t in d["tool_calls"]])
            for d in out["deltas"]]

    def close(self) -> None:
        if self._worker is not None:
            self._worker.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # interpreter shutdown: modules half gone
            pass

    # -- the worker -----------------------------------------------------------------------
    @property
    def pid(self) -> int | None:
        """The running worker's process id, or None."""
        return self._worker.proc.pid if self._worker.running else None

    def _ensure(self) -> None:
        """Start a worker (and wait until it is ready) if none runs."""
        if self._worker.running:
            return
        from ..corpus import cache_dir

        started = time.perf_counter()
        env = vllm_environ(cache_dir() / "vllm")
        env.update({"VLLM_NO_USAGE_STATS": "1", "DO_NOT_TRACK": "1", "OMP_NUM_THREADS": "1"})
        env.setdefault("VLLM_LOGGING_LEVEL", "WARNING")
        self._worker.env = env
        self._worker.start()
        ready = self._worker.read(self.startup_timeout, "startup")
        if "usage" in ready:
            self._worker.close()
            raise UsageError(f"parser {self.name}: {ready['usage']}")
        self.startup_s = ready.get("startup_s", round(time.perf_counter() - started, 2))
        self.version = ready.get("version")

    def _call(self, request: dict) -> dict:
        self._ensure()
        reply = self._worker.call(request, self.call_timeout)
        if "crash" in reply:
            raise ParserCrash(reply["crash"])
        if "refused" in reply:
            raise Unsupported(f"vLLM's request model refuses the request: {reply['refused']}")
        return reply


def _request(request: Request) -> dict:
    """What the worker needs of a `Request`."""
    return {"tools": request.tools, "prompt_ids": list(request.prompt_ids),
            "template_kwargs": request.template_kwargs}
