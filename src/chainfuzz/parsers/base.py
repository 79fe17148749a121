"""What an output parser offers the parser properties: one interface for every parser.

A parser turns the text a model generated back into a message (content, reasoning, tool
calls), all at once (`Parser.parse`) or from a stream of deltas (`Parser.stream`), as a server
does for ``stream=false`` and ``stream=true``. vLLM's parsers, transformers' response parser
and llama.cpp's ``common_chat_parse`` each implement it (`chainfuzz.parsers.AVAILABLE_PARSERS`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..internal.lazy import package_versions


class ParserCrash(RuntimeError):
    """The parser raised on a text (or its worker died): a server answering 500, a finding for
    the input, not an internal error of chainfuzz."""


@dataclass(frozen=True)
class ToolCall:
    """One parsed call. ``arguments`` is the JSON text the parser emitted (compared as JSON by
    the properties, so key order and spacing do not matter); ``id`` is None where the parser
    gives none."""

    name: str
    arguments: str
    id: str | None = None


@dataclass
class Message:
    """A parsed assistant message. None and "" both mean "no content" / "no reasoning"."""

    content: str | None = None
    reasoning: str | None = None
    tool_calls: list[ToolCall] = field(default_factory=list)

    def as_json(self) -> dict:
        return {"content": self.content, "reasoning": self.reasoning,
                "tool_calls": [{"name": c.name, "arguments": c.arguments, "id": c.id} for c in self.tool_calls]}


@dataclass(frozen=True)
class ToolCallDelta:
    """One tool call's part of a streamed delta, as OpenAI's ``delta.tool_calls[i]``: the call's
    ``index``, and ``id``, ``name`` and an ``arguments`` fragment where this delta carries them."""

    index: int
    id: str | None = None
    name: str | None = None
    arguments: str | None = None


@dataclass
class Delta:
    """What the parser emitted for one chunk of generated text (all None/empty: nothing yet)."""

    content: str | None = None
    reasoning: str | None = None
    tool_calls: list[ToolCallDelta] = field(default_factory=list)

    def as_json(self) -> dict:
        return {"content": self.content, "reasoning": self.reasoning,
                "tool_calls": [{"index": t.index, "id": t.id, "name": t.name, "arguments": t.arguments}
                               for t in self.tool_calls]}


@dataclass(frozen=True)
class Chunk:
    """One delta of generated output as a server hands it to its parser: the new text and the
    ids it was decoded from. The last chunk of a stream is the finished one."""

    text: str
    token_ids: tuple[int, ...] = ()


@dataclass
class Request:
    """What the parser knows of the request: the tools offered (OpenAI's shape), the rendered
    prompt (text and ids: some parsers read the generation prompt's own markers, such as an
    opening ``<think>``), and the template's keyword arguments (``enable_thinking``)."""

    tools: list[dict] | None = None
    prompt: str = ""
    prompt_ids: list[int] = field(default_factory=list)
    template_kwargs: dict = field(default_factory=dict)

    def as_json(self) -> dict:
        return {"tools": self.tools, "prompt": self.prompt, "prompt_ids": list(self.prompt_ids),
                "template_kwargs": self.template_kwargs}


@dataclass
class Generation:
    """A reply as the model generated it (`chainfuzz.Context.generation`): the rendered
    ``prompt``, the generated ``text`` after it, and the `Request` a parser is given."""

    prompt: str
    text: str
    request: Request


@dataclass
class ParserSetup:
    """What opening a parser may need from the target: a folder holding the model's HF
    tokenizer (``tokenizer.json``, ``tokenizer_config.json``, where a model's response template
    also lives) and the chat template's source."""

    tokenizer_dir: Path | None = None
    template_source: str | None = None


class Parser:
    """Base class. ``name`` is the spec it was opened from (``vllm:hermes+reasoning:qwen3``);
    ``implementation`` the row it belongs to (``vllm``), which `parser.impls_agree` compares
    across."""

    name: str = "parser"
    implementation: str = "parser"
    packages: tuple[str, ...] = ()  # whose versions a case file records
    # Whether it is configured to split reasoning from content (vLLM without a reasoning
    # parser, a response template without a thinking field: reasoning stays content by design).
    splits_reasoning: bool = True
    # Whether opening it reads the chat template (llama.cpp derives its parser from it; vLLM's
    # parsers read only the tokenizer, so one serves every template of a family).
    reads_template: bool = True

    @classmethod
    def from_spec(cls, spec: str, setup: ParserSetup) -> "Parser":
        """The parser ``spec`` names (its table row, then ``:ARGS``); bad args raise `UsageError`,
        a parser that cannot run here raises `ImportError` or `ParserCrash`."""
        raise NotImplementedError

    def parse(self, text: str, request: Request) -> Message:
        """The whole generated ``text`` parsed at once; `ParserCrash` if the parser raises."""
        raise NotImplementedError

    def stream(self, chunks: list[Chunk], request: Request) -> list[Delta]:
        """One `Delta` per chunk, fed in order to a fresh streaming parser, the last chunk
        marked finished; `ParserCrash` if the parser raises."""
        raise NotImplementedError

    def versions(self) -> dict[str, str]:
        return package_versions(self.packages)

    def close(self) -> None:
        """Stop the parser's worker process, if it has one."""
