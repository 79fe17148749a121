"""Inference engines that engine properties run on, named by ``--engine`` specs.

``transformers`` (the reference, in-process), ``llama.cpp`` (llama-cpp-python on a GGUF of the
model, in a worker process), ``vllm`` (vLLM's offline API, in a worker process running vLLM's
own Python environment) and any OpenAI-compatible server by URL (the row of its scheme). The
engines are a lazy table (`AVAILABLE_ENGINES`): an engine's heavy dependency is imported only
when it is asked for, and third parties add engines through the ``chainfuzz.engines``
entry-point group.
"""

from __future__ import annotations

from pathlib import Path

from ..internal.lazy import LazyTable
from .base import ChatResult, Completion, Engine, EngineCrash, EngineError, Unsupported

__all__ = ["AVAILABLE_ENGINES", "ChatResult", "Completion", "Engine", "EngineCrash", "EngineError",
           "Unsupported", "engine_help", "open_engine"]

# Each row is an `Engine` subclass, opened with ``from_spec(spec, folder)``.
AVAILABLE_ENGINES = LazyTable("engine", {
    "transformers": "chainfuzz.engines.hf:TransformersEngine",
    "llama.cpp": "chainfuzz.engines.llama_cpp:LlamaCppEngine",
    "vllm": "chainfuzz.engines.vllm:VllmEngine",
    "http": "chainfuzz.engines.http:OpenAIEngine",
    "https": "chainfuzz.engines.http:OpenAIEngine",
}, group="chainfuzz.engines")


def engine_row(spec: str) -> str:
    """The row of `AVAILABLE_ENGINES` an ``--engine`` spec names: itself, or a URL's scheme."""
    return spec.split("://", 1)[0] if "://" in spec else spec


def open_engine(spec: str, folder: Path) -> Engine:
    """The engine ``spec`` names (a table row, or a URL whose scheme is one), running the
    model in ``folder``."""
    return AVAILABLE_ENGINES.load(engine_row(spec)).from_spec(spec, folder)


def engine_help() -> str:
    """The built-in engines ``--engine`` accepts, for the help text (third-party ones are
    not looked up for it: reading entry points would slow every start)."""
    return ", ".join(f"{n}://HOST:PORT/v1" if n in ("http", "https") else n
                     for n in AVAILABLE_ENGINES.builtin)
