"""What an inference engine offers the engine properties: one interface for every engine.

Every engine decodes greedily from prompt ids (`generate`). The rest are capabilities some
engines have and others lack (a prefix cache, a text API with streaming, a chat path with its
own template); an engine without one raises `Unsupported`, and the property skips that engine
and says so instead of passing it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..errors import Unsupported
from ..internal.lazy import package_versions


class EngineError(RuntimeError):
    """The engine refused a request chainfuzz's reference accepts (an id it rejects, a
    template it cannot render, a 4xx from a server): a finding for the input, not an internal
    error."""


class EngineCrash(EngineError):
    """The engine's process died or hung: a finding for the input that did it, not the end of
    the run (llama.cpp aborts on some inputs)."""


@dataclass
class Completion:
    """One prompt's greedy continuation.

    ``tokens`` are ids where the engine reports them and token strings where it only reports
    text (an OpenAI server without token ids); they are compared within one engine only.
    ``logprobs`` is the chosen token's log-probability at each step, empty if not reported.
    """

    tokens: list
    logprobs: list[float] = field(default_factory=list)
    text: str | None = None


@dataclass
class ChatResult:
    """What an engine's chat path did with a conversation: the prompt ids its own template and
    tokenizer built (None where it does not say), how many there were, and the greedy text."""

    prompt_ids: list[int] | None
    prompt_tokens: int | None
    text: str | None = None


class Engine:
    """Base class: ``name`` says which engine and configuration; ``tolerance`` is the largest
    absolute difference of a chosen token's logprob that two runs which should agree may show
    (0.0 means bitwise, for engines that promise it)."""

    name: str = "engine"
    tolerance: float = 0.0
    packages: tuple[str, ...] = ()  # whose versions a case file records

    @classmethod
    def from_spec(cls, spec: str, folder: Path) -> "Engine":
        """The engine an ``--engine`` spec names, running the model in ``folder``."""
        return cls(folder)

    def versions(self) -> dict[str, str]:
        """Versions of what decides this engine's results, recorded in case files."""
        return package_versions(self.packages)

    def generate(self, prompts: list[list[int]], max_new_tokens: int) -> list[Completion]:
        """Greedy continuations of ``prompts`` run together: one batch, or concurrent requests.

        Exactly ``max_new_tokens`` each where the engine can ignore EOS, so rows compare.
        """
        raise NotImplementedError

    # -- prefix cache ---------------------------------------------------------------------
    def clear_prefix_cache(self) -> None:
        """Forget every cached prefix, so the next prompt runs cold."""
        raise Unsupported(f"{self.name} has no prefix cache")

    def generate_uncached(self, prompt: list[int], max_new_tokens: int) -> Completion:
        """One greedy continuation with the prefix cache off."""
        raise Unsupported(f"{self.name} has no prefix cache")

    # -- text API ---------------------------------------------------------------------------
    def complete(self, prompt: list[int], max_new_tokens: int, stop: list[str]) -> str:
        """The greedy completion's text in one response, cut at the first stop string."""
        raise Unsupported(f"{self.name} has no text completion API")

    def stream(self, prompt: list[int], max_new_tokens: int, stop: list[str]) -> list[str]:
        """The same request streamed: the text deltas in the order they arrived."""
        raise Unsupported(f"{self.name} does not stream")

    # -- chat -------------------------------------------------------------------------------
    def chat(self, messages: list[dict], tools: list | None, max_new_tokens: int) -> ChatResult:
        """The engine's own chat path (its template, its tokenizer) on a conversation."""
        raise Unsupported(f"{self.name} has no chat path of its own")

    def close(self) -> None:
        """Release processes and memory; the engine is not used again."""
