"""Output parsers that parser properties run on, named by ``--parser`` specs.

A spec is a row of `AVAILABLE_PARSERS`, then ``:`` and what that row reads:
``vllm:hermes`` (vLLM's tool parser), ``vllm:qwen3+reasoning:qwen3`` (a tool parser with a
reasoning parser, as ``--tool-call-parser`` and ``--reasoning-parser`` pair them),
``transformers`` (the response template of the model or its family), ``llama.cpp`` (the format
llama.cpp picks for the template), ``planted:FAULT/SPEC`` (a real parser with a planted fault:
a negative control), or ``auto`` (the parsers the family table serves the template's family
with, `chainfuzz.parsers.families`). The table is lazy: vLLM's worker, transformers and the
llama.cpp program are loaded only when a spec asks for them, and third parties add rows through
the ``chainfuzz.parsers`` entry-point group.
"""

from __future__ import annotations

from ..internal.lazy import LazyTable
from .base import Chunk, Delta, Message, Parser, ParserCrash, ParserSetup, Request, ToolCall, ToolCallDelta

__all__ = ["AVAILABLE_PARSERS", "Chunk", "Delta", "Message", "Parser", "ParserCrash", "ParserSetup", "Request",
           "ToolCall", "ToolCallDelta", "open_parser", "parser_help", "parser_row", "release"]

# Each row is a `Parser` subclass, opened with ``from_spec(spec, setup)``.
AVAILABLE_PARSERS = LazyTable("parser", {
    "vllm": "chainfuzz.parsers.vllm:VllmParser",
    "transformers": "chainfuzz.parsers.hf:TransformersParser",
    "llama.cpp": "chainfuzz.parsers.llama_cpp:LlamaCppParser",
    "planted": "chainfuzz.parsers.planted:PlantedParser",
}, group="chainfuzz.parsers")


def parser_row(spec: str) -> str:
    """The row of `AVAILABLE_PARSERS` a ``--parser`` spec names: what precedes its first ``:``."""
    return spec.split(":", 1)[0]


# Parsers handed back by a closed `Context` (`release`), kept for the next one that asks for
# the same spec and setup: replaying a folder of parser cases starts each vLLM worker once
# (8-16 s each) instead of once per case (37 cases replayed in 6.3 min before, most of it
# vLLM's start-up). At most this many wait; the oldest is closed first.
IDLE = 8
_idle: dict[tuple, Parser] = {}


def open_parser(spec: str, setup: ParserSetup) -> Parser:
    """The parser ``spec`` names, set up for one target (an idle one `release`d before, if any)."""
    cls = AVAILABLE_PARSERS.load(parser_row(spec))
    key = (spec, setup.tokenizer_dir, setup.template_source if cls.reads_template else None)
    if key in _idle:
        return _idle.pop(key)
    parser = cls.from_spec(spec, setup)
    parser._pool_key = key
    return parser


def release(parser: Parser) -> None:
    """Hand ``parser`` back when its context closes: kept idle for a context that opens the same
    spec on the same target, or closed (the oldest idle one goes when `IDLE` are waiting)."""
    key = getattr(parser, "_pool_key", None)
    if key is None or key in _idle:
        parser.close()
        return
    _idle[key] = parser
    while len(_idle) > IDLE:
        _idle.pop(next(iter(_idle))).close()


def parser_help() -> str:
    """The built-in parsers ``--parser`` accepts, for the help text."""
    return "vllm:TOOL[+reasoning:REASONING], vllm:reasoning:REASONING, transformers[:FAMILY|:serve:MODEL_TYPE|:PATH.json], llama.cpp[:REASONING_FORMAT], planted:FAULT/SPEC, auto"
