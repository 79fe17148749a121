"""Real parsers with a planted fault: the negative controls of the parser properties.

``planted:FAULT/SPEC`` opens the parser ``SPEC`` names and damages its output the way
2026's parser bugs did (`FAULTS`). Each parser property has a fault it must find and the
undamaged parser as its clean twin; users run them to see that a property, a grouping
strategy or a new parser row still detects what it should.
"""

from __future__ import annotations

from dataclasses import replace

from ..errors import UsageError
from .base import Chunk, Delta, Message, Parser, ParserSetup, Request


def _drop_second_call(deltas: list[Delta]) -> list[Delta]:
    """A delta holding parts of two tool calls loses the later one (vllm #47907, #48294: calls
    dropped when one delta holds several tokens)."""
    out = []
    for d in deltas:
        first = min((t.index for t in d.tool_calls), default=None)
        out.append(replace(d, tool_calls=[t for t in d.tool_calls if t.index == first]))
    return out


def _marker_in_content(deltas: list[Delta], chunks: list[Chunk]) -> list[Delta]:
    """The chunk that opens a tool call also reaches content (vllm #28297: ``<tool_call>`` in
    content)."""
    return [replace(d, content=(d.content or "") + c.text) if any(t.name for t in d.tool_calls) else d
            for d, c in zip(deltas, chunks)]


def _cut_multibyte(deltas: list[Delta]) -> list[Delta]:
    """An arguments fragment ends at its first multi-byte character, or at the ``\\u`` escape
    that spells one in JSON (a detokenizer's held-back byte taken for the end of the text)."""
    def cut(text: str | None) -> str | None:
        if text is None:
            return None
        ends = [i for i, ch in enumerate(text) if len(ch.encode("utf-8")) > 1]
        if "\\u" in text:
            ends.append(text.index("\\u"))
        return text[:min(ends)] if ends else text

    return [replace(d, tool_calls=[replace(t, arguments=cut(t.arguments)) for t in d.tool_calls]) for d in deltas]


def _repeat_name(deltas: list[Delta]) -> list[Delta]:
    """Every arguments fragment comes with its call's name again (vllm #19056-style duplicates)."""
    names: dict[int, str] = {}
    out = []
    for d in deltas:
        parts = []
        for t in d.tool_calls:
            if t.name:
                names[t.index] = t.name
            elif t.arguments and t.index in names:
                t = replace(t, name=names[t.index])
            parts.append(t)
        out.append(replace(d, tool_calls=parts))
    return out


def _empty_arguments(deltas: list[Delta]) -> list[Delta]:
    """A call whose name and arguments come in one delta loses the arguments (vllm #55082:
    step3's arguments empty unless each token arrives in its own delta)."""
    return [replace(d, tool_calls=[replace(t, arguments="") if t.name else t for t in d.tool_calls]) for d in deltas]


def _drop_last_call(msg: Message) -> Message:
    """The whole-text parse loses its last tool call."""
    return replace(msg, tool_calls=msg.tool_calls[:-1])


# fault -> (what it does to a whole parse, what it does to a stream); None leaves it alone.
FAULTS = {
    "drop_second_call": (None, lambda deltas, chunks: _drop_second_call(deltas)),
    "marker_in_content": (None, _marker_in_content),
    "cut_multibyte": (None, lambda deltas, chunks: _cut_multibyte(deltas)),
    "repeat_name": (None, lambda deltas, chunks: _repeat_name(deltas)),
    "empty_arguments": (None, lambda deltas, chunks: _empty_arguments(deltas)),
    "drop_last_call": (_drop_last_call, None),
}


class PlantedParser(Parser):
    """``SPEC``'s parser with ``FAULT`` applied to what it returns."""

    def __init__(self, fault: str, inner: Parser) -> None:
        self.fault, self.inner = fault, inner
        self.name = f"planted:{fault}/{inner.name}"
        self.implementation = f"planted:{fault}/{inner.implementation}"
        self._whole, self._stream = FAULTS[fault]
        self.splits_reasoning = inner.splits_reasoning

    @classmethod
    def from_spec(cls, spec: str, setup: ParserSetup) -> "PlantedParser":
        from . import open_parser

        fault, sep, inner = spec.partition(":")[2].partition("/")
        if fault not in FAULTS or not sep or not inner:
            raise UsageError(f"--parser {spec}: expected planted:FAULT/SPEC with FAULT one of {', '.join(FAULTS)}")
        return cls(fault, open_parser(inner, setup))

    def parse(self, text: str, request: Request) -> Message:
        msg = self.inner.parse(text, request)
        return self._whole(msg) if self._whole else msg

    def stream(self, chunks: list[Chunk], request: Request) -> list[Delta]:
        deltas = self.inner.stream(chunks, request)
        return self._stream(deltas, chunks) if self._stream else deltas

    def versions(self) -> dict[str, str]:
        return self.inner.versions()

    def close(self) -> None:
        self.inner.close()
