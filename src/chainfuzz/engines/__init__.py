"""Inference engines that engine properties run on, named by ``--engine`` specs.

``transformers`` (the reference, in-process), ``llama.cpp`` (llama-cpp-python on a GGUF of the
model, in a worker process), ``vllm`` (vLLM's offline API, in a worker process running vLLM's
own Python environment) and any OpenAI-compatible server by URL. Each import is lazy: an
engine's heavy dependency is needed only when it is asked for.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import UsageError
from .base import ChatResult, Completion, Engine, EngineCrash, EngineError, Unsupported

__all__ = ["ChatResult", "Completion", "Engine", "EngineCrash", "EngineError", "Unsupported", "KNOWN",
           "open_engine"]

KNOWN = ("transformers", "llama.cpp", "vllm", "http://HOST:PORT/v1")


def open_engine(spec: str, folder: Path) -> Engine:
    """The engine ``spec`` names, running the model in ``folder``."""
    if spec.startswith(("http://", "https://")):
        from .http import OpenAIEngine

        return OpenAIEngine(spec, folder)
    if spec == "transformers":
        from .hf import TransformersEngine

        return TransformersEngine(folder)
    if spec == "llama.cpp":
        from .llama_cpp import LlamaCppEngine

        return LlamaCppEngine(folder)
    if spec == "vllm":
        from .vllm import VllmEngine

        return VllmEngine(folder)
    raise UsageError(f"unknown engine {spec!r} (known: {', '.join(KNOWN)})")
