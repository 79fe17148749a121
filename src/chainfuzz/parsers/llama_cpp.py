"""llama.cpp's output parser (``common_chat_parse``), driven as llama-server drives it.

A program built from llama.cpp's own source (`llama_cpp_build`, cached) opens the template
with ``common_chat_templates_apply`` for the request's tools and template arguments, as the
server does for a chat request, and parses with the parser that picks: the whole text at once
(``stream=false``), or a stream the server's way, the accumulated text re-parsed as partial after
each chunk and ``common_chat_msg_diff::compute_diffs`` sent as OpenAI deltas, then the final
non-partial parse's diffs. It runs in a worker process: a ``GGML_ASSERT`` abort or a hang is a
`ParserCrash`, and the next call starts a fresh worker.

The spec is ``llama.cpp`` or ``llama.cpp:REASONING_FORMAT``, the server's ``--reasoning-format``
(default ``deepseek``, the server's own default). The chat format is not a choice: llama.cpp
derives it, and the parser, from the template.
"""

from __future__ import annotations

import os

from ..errors import UsageError
from ..internal import limits
from ..internal.worker import Worker
from . import llama_cpp_build
from .base import Chunk, Delta, Message, Parser, ParserCrash, ParserSetup, Request, ToolCall, ToolCallDelta

# llama-server's --reasoning-format values (common_reasoning_format_from_name).
REASONING_FORMATS = ("deepseek", "deepseek-legacy", "auto", "none")
# A parse takes well under a millisecond and opening a template (llama.cpp analyses it by
# rendering probes) tens of milliseconds (measured): a call this long is a hung worker.
CALL_TIMEOUT = 30.0
# ggml's abort handler runs gdb for a backtrace first, which only slows a crash down.
_WORKER_ENV = {"GGML_NO_BACKTRACE": "1"}


class LlamaCppParser(Parser):
    """``common_chat_parse`` in the format llama.cpp picks for the template and request."""

    implementation = "llama.cpp"
    packages = ("llama-cpp-python",)
    _worker: Worker | None = None  # also for close() after __init__ raised

    def __init__(self, template_source: str, *, reasoning_format: str = "deepseek", name: str = "llama.cpp") -> None:
        program = llama_cpp_build.program_path()  # ImportError where it cannot be built
        self.name = name
        self.reasoning_format = reasoning_format
        self.splits_reasoning = reasoning_format != "none"
        # No BOS/EOS text: the server takes it from the model's vocabulary, and it only ever
        # appears at the start of the prompt, never in the generation prompt the parser reads.
        self._template = {"template": template_source, "reasoning_format": reasoning_format}
        self._built = llama_cpp_build.versions(program.parent)
        self._thinking: dict[bool, bool] = {}  # with tools or not -> enable_thinking (`_kwargs`)
        self._worker = Worker([str(program)], name="llama.cpp parser", crash=ParserCrash,
                              env={**os.environ, **_WORKER_ENV})

    @classmethod
    def from_spec(cls, spec: str, setup: ParserSetup) -> "LlamaCppParser":
        arg = spec.partition(":")[2]
        if arg and arg not in REASONING_FORMATS:
            raise UsageError(f"--parser {spec}: unknown reasoning format {arg!r} "
                             f"(known: {', '.join(REASONING_FORMATS)})")
        if setup.template_source is None:
            raise UsageError(f"--parser {spec}: llama.cpp derives its parser from the chat template, "
                             "and this target has none")
        return cls(setup.template_source, reasoning_format=arg or "deepseek", name=spec)

    def format(self, request: Request | None = None) -> dict:
        """What ``common_chat_templates_apply`` picked for ``request``: ``format`` (the chat
        format's name), ``generation_prompt``, ``supports_thinking``, ``enable_thinking``, ..."""
        return self._call({"op": "format", "setup": self._setup(request or Request())})

    def parse(self, text: str, request: Request) -> Message:
        msg = self._call({"op": "parse", "setup": self._setup(request), "text": text})["msg"]
        return Message(content=msg["content"], reasoning=msg["reasoning_content"],
                       tool_calls=[ToolCall(c["name"], c["arguments"], c["id"] or None) for c in msg["tool_calls"]])

    def stream(self, chunks: list[Chunk], request: Request) -> list[Delta]:
        """One `Delta` per chunk: the OpenAI deltas the server sends for it (several events of
        one chunk joined in one `Delta`), the last chunk's with the final response's added."""
        if not chunks:
            return []
        reply = self._call({"op": "stream", "setup": self._setup(request), "chunks": [c.text for c in chunks]})
        events = reply["deltas"]
        events[-1] = events[-1] + reply["final"]
        return [_delta(chunk_events) for chunk_events in events]

    def versions(self) -> dict[str, str]:
        return {**super().versions(), **self._built}

    def close(self) -> None:
        if self._worker is not None:
            self._worker.close()

    def __del__(self) -> None:
        self.close()

    def _setup(self, request: Request) -> dict:
        return {**self._template, "tools": request.tools, "kwargs": self._kwargs(request)}

    def _kwargs(self, request: Request) -> dict:
        """The request's template arguments, with ``enable_thinking`` as the prompt shows it.

        llama-server turns thinking on wherever the template supports it, and parses in the
        mode of the prompt it rendered itself; chainfuzz renders the prompt with the template's
        own defaults (as vLLM and transformers serve do). The parser must parse in the mode of
        the prompt the model was given: of thinking on and off, the one whose generation prompt
        ends the most like ``request.prompt`` (DeepSeek-V3.1's ``</think>`` is thinking off).
        Decided once per template, with tools and without."""
        kwargs = dict(request.template_kwargs or {})
        if "enable_thinking" in kwargs or not request.prompt:
            return kwargs
        key = bool(request.tools)
        if key not in self._thinking:
            def shared(value: bool) -> int:
                setup = {**self._template, "tools": request.tools, "kwargs": {**kwargs, "enable_thinking": value}}
                prompt = self._call({"op": "format", "setup": setup}).get("generation_prompt") or ""
                return len(os.path.commonprefix([prompt[::-1], request.prompt[::-1]]))

            self._thinking[key] = max((True, False), key=shared)  # a tie keeps the server's default, on
        kwargs["enable_thinking"] = self._thinking[key]
        return kwargs

    def _call(self, request: dict) -> dict:
        """The program's reply; `ParserCrash` if llama.cpp raised (one line), died or hung."""
        try:
            reply = self._worker.call(request, CALL_TIMEOUT)
        except ParserCrash:
            if limits.out_of_budget():
                raise limits.BudgetExhausted() from None
            raise
        if "error" in reply:
            raise ParserCrash(reply["error"].strip().splitlines()[0] if reply["error"].strip() else "error")
        return reply


def _delta(events: list[dict]) -> Delta:
    """One chunk's OpenAI deltas (``server_chat_msg_diff_to_json_oaicompat``'s output) as a Delta."""
    content = [e["content"] for e in events if "content" in e]
    reasoning = [e["reasoning_content"] for e in events if "reasoning_content" in e]
    calls = []
    for event in events:
        for call in event.get("tool_calls", []):
            function = call.get("function", {})
            calls.append(ToolCallDelta(index=call["index"], id=call.get("id"), name=function.get("name"),
                                       arguments=function.get("arguments")))
    return Delta(content="".join(content) if content else None, reasoning="".join(reasoning) if reasoning else None,
                 tool_calls=calls)

