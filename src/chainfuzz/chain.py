"""The template+tokenizer chain: messages in, prompt ids out, as a serving stack does it.

A server renders the conversation with the model's template and encodes the prompt with the
tokenizer's defaults (special-token text parsed, BOS added where the tokenizer adds it), as
llama.cpp's server and TGI do. mistral-common is its own chain: it encodes a chat request
directly, never parsing special-token text.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from .tokenization import Tokenizer


@dataclass(frozen=True)
class Chain:
    """One way a stack turns ``(messages, tools)`` into prompt ids (generation prompt on).

    ``render`` is the text step where there is one (None for mistral-common's encoder).
    """

    name: str
    tokenizer: Tokenizer
    encode: Callable[[list, list | None], list[int]]
    render: Callable[[list, list | None], str] | None = None

    @property
    def control_ids(self):
        """Ids that delimit turns or otherwise steer the model (`Tokenizer.control_ids`, whose
        keys are computed once per tokenizer)."""
        return self.tokenizer.control_ids.keys()


def template_chain(ctx, tok: Tokenizer) -> Chain:
    """Render with the reference renderer, then encode the way servers encode a prompt."""

    def render(messages: list, tools: list | None) -> str:
        return ctx.render_or_skip(messages, tools=tools, add_generation_prompt=True)

    def encode(messages: list, tools: list | None) -> list[int]:
        return tok.encode(render(messages, tools), add_special=True, parse_special=True)

    return Chain(f"template+{tok.impl}", tok, encode, render)


def mistral_chain(tok) -> Chain:
    """mistral-common's reference encoding of a chat request."""
    from .errors import Skip
    from .tokenization.base import TokenizerCrash

    def encode(messages: list, tools: list | None) -> list[int]:
        try:
            return tok.encode_chat(messages, tools)
        except TokenizerCrash:
            raise  # a crash (a panic in tiktoken) is a finding, not a refusal
        except Exception as exc:  # noqa: BLE001 - its validation refuses the request
            raise Skip(f"mistral-common refuses the request: {type(exc).__name__}") from None

    return Chain("mistral-common", tok, encode)
