"""transformers' response parser (``transformers.utils.chat_parsing``), as ``transformers serve`` runs it.

A declarative ``response_template`` (normally in a model's tokenizer_config.json) drives
``parse_response`` and the streaming ``ResponseParser``. The whole parse goes through the
server's own ``parse_assistant_message`` and the stream through its
``response_events_to_chunks`` (transformers/cli/serving/utils.py), so content, reasoning and
tool calls come out as that server answers them. The parser runs in this process (pure Python
and the ``regex`` module) under the render time limit, like untrusted template code.
"""

from __future__ import annotations

import contextlib
import json
from importlib import resources
from pathlib import Path

from ..errors import TargetError, UsageError
from ..internal import files
from ..internal.text import printable
from ..template.render import DEFAULT_TIME_LIMIT, TimeLimitExceeded, time_limit
from .base import Chunk, Delta, Message, Parser, ParserCrash, ParserSetup, Request, ToolCall, ToolCallDelta

# transformers serve names a request's tool calls f"{request_id}_tool_call_{i}" (a uuid4 per
# request); chainfuzz's one request id keeps ids equal between runs.
REQUEST_ID = "chainfuzz"
# A crash's message, cut: transformers' JSON errors quote the whole region (and the crash
# names it already); 500 characters hold the error and the region's start.
CRASH_CHARS = 500


def builtin_templates() -> dict[str, Path]:
    """The response templates chainfuzz ships (``parsers/response_templates/<family>.json``), by family."""
    folder = resources.files(__package__) / "response_templates"
    return {Path(p.name).stem: Path(str(p)) for p in folder.iterdir() if p.name.endswith(".json")}


def load_builtin(family: str) -> dict:
    """The shipped response template of ``family`` (`builtin_templates`)."""
    return _read_json(builtin_templates()[family], "response template")


def _read_json(path: Path, what: str) -> dict:
    """The JSON object in ``path``; `UsageError` (one line) if it is unreadable or not an object."""
    try:
        data = json.loads(files.read_text(path, files.JSON_BYTES))
    except (OSError, TargetError, ValueError) as exc:
        raise UsageError(f"{what} {path}: {exc}") from None
    if not isinstance(data, dict):
        raise UsageError(f"{what} {path}: not a JSON object")
    return data


def _template_of(spec: str, setup: ParserSetup) -> dict:
    """The response template ``spec`` names: ``transformers`` (the tokenizer folder's
    tokenizer_config.json), ``transformers:FAMILY`` (a shipped one),
    ``transformers:serve:MODEL_TYPE`` (transformers serve's own fallback) or
    ``transformers:PATH.json`` (a file)."""
    row, _, arg = spec.partition(":")
    builtins = builtin_templates()
    if arg.startswith("serve:"):
        return _serve_fallback(spec, arg[len("serve:"):])
    if arg.endswith(".json"):
        return _read_json(Path(arg), "--parser transformers: response template")
    if arg:
        if arg not in builtins:
            raise UsageError(f"--parser {spec}: no response template named {arg!r}; "
                             f"known: {', '.join(sorted(builtins))}, or a PATH.json")
        return load_builtin(arg)
    config = setup.tokenizer_dir / "tokenizer_config.json" if setup.tokenizer_dir else None
    if config is not None and files.is_regular(config):
        template = _read_json(config, "--parser transformers:").get("response_template")
        if template is not None:
            return template
    where = f"{config} has none" if config is not None else "no tokenizer folder"
    raise UsageError(f"--parser {row}: no response template for this target ({where}); name one: "
                     f"transformers:FAMILY ({', '.join(sorted(builtins))}), transformers:serve:MODEL_TYPE "
                     "or transformers:PATH.json")


def _serve_fallback(spec: str, model_type: str) -> dict:
    """The response template ``transformers serve`` falls back to for a model of ``model_type``
    whose tokenizer has none (its ``_RESPONSE_TEMPLATE_FALLBACKS``): what it parses Qwen and
    Gemma 4 output with unless the model ships a template."""
    from transformers.cli.serving.utils import _RESPONSE_TEMPLATE_FALLBACKS

    for model_types, template in _RESPONSE_TEMPLATE_FALLBACKS.items():
        if model_type in model_types:
            return template
    known = sorted(t for model_types in _RESPONSE_TEMPLATE_FALLBACKS for t in model_types)
    raise UsageError(f"--parser {spec}: transformers serve has no response template for model type "
                     f"{model_type!r}; known: {', '.join(known)}")


class _Tokenizer:
    """What the server's ``parse_assistant_message`` asks of a tokenizer, given text rather than ids:
    its ``response_template``, ``parse_response`` (the library function the tokenizer method
    wraps after decoding ids) and ``decode`` (the text is already decoded)."""

    def __init__(self, template: dict) -> None:
        from transformers.utils.chat_parsing import parse_response

        self.response_template = template
        self.parse_response = parse_response

    @staticmethod
    def decode(text: str) -> str:
        return text


class TransformersParser(Parser):
    """transformers' response parser over one response template."""

    implementation = "transformers"
    packages = ("transformers", "regex")

    @classmethod
    def from_spec(cls, spec: str, setup: ParserSetup) -> "TransformersParser":
        import transformers.utils.chat_parsing  # noqa: F401  (ImportError here: transformers absent or too old)

        return cls(spec, _template_of(spec, setup))

    def __init__(self, name: str, template: dict, *, time_limit: float = DEFAULT_TIME_LIMIT) -> None:
        from transformers.utils.chat_parsing.response_templates import load_response_template

        try:
            self.template = load_response_template(template)  # compiled once, not per call
        except (ValueError, TypeError) as exc:
            raise UsageError(f"--parser {name}: bad response template: {' '.join(str(exc).split())}") from None
        self.name = name
        self.time_limit = time_limit
        self.splits_reasoning = bool({"thinking", "reasoning_content"} & set(self.template.fields))

    def parse(self, text: str, request: Request) -> Message:
        """``parse_assistant_message``, the server's non-streaming path."""
        from transformers.cli.serving.utils import parse_assistant_message

        tokenizer = _Tokenizer(self.template)
        with self._crashes("parse"):
            content, reasoning, calls = parse_assistant_message(
                tokenizer, None, text, input_ids=request.prompt, tools=request.tools)
        return Message(content=content, reasoning=reasoning,
                       tool_calls=[ToolCall(c.name, c.arguments, f"{REQUEST_ID}_tool_call_{i}")
                                   for i, c in enumerate(calls or [])])

    def stream(self, chunks: list[Chunk], request: Request) -> list[Delta]:
        """The server's ``DirectStreamer``: the prefix's events go out first, each chunk is
        one ``feed``, ``finalize`` at the end (a ValueError or RuntimeError there drops the
        tail, as the server does), events become deltas through ``response_events_to_chunks``
        and the SSE loop numbers the tool calls."""
        from transformers.cli.serving.utils import ReasoningText, ToolCall as ServerToolCall
        from transformers.cli.serving.utils import response_events_to_chunks
        from transformers.utils.chat_parsing import ResponseParser

        deltas: list[Delta] = []
        calls = 0

        def delta(events: list[dict], into: Delta) -> Delta:
            nonlocal calls
            for item in response_events_to_chunks(events):
                if isinstance(item, ServerToolCall):
                    into.tool_calls.append(ToolCallDelta(calls, f"{REQUEST_ID}_tool_call_{calls}",
                                                         item.name, item.arguments))
                    calls += 1
                elif isinstance(item, ReasoningText):
                    into.reasoning = (into.reasoning or "") + item
                else:
                    into.content = (into.content or "") + item
            return into

        with self._crashes("stream"):
            parser = ResponseParser(self.template, prefix=request.prompt, tools=request.tools)
            pending = list(parser.initial_events)
            for chunk in chunks:
                deltas.append(delta(pending + parser.feed(chunk.text), Delta()))
                pending = []
            if deltas:
                try:
                    _, final = parser.finalize()
                except (ValueError, RuntimeError):
                    final = []  # DirectStreamer.end logs a warning and drops the tail events
                delta(final, deltas[-1])
        return deltas

    def _crashes(self, what: str):
        """Any exception the parser raises, or running past the time limit, as `ParserCrash`."""
        return _crashes(self.time_limit, what)


@contextlib.contextmanager
def _crashes(seconds: float, what: str):
    """`TransformersParser._crashes`."""
    try:
        with time_limit(seconds):
            yield
    except TimeLimitExceeded:
        raise ParserCrash(f"TimeLimitExceeded: {what} took longer than {seconds:g}s") from None
    except Exception as exc:  # the parser's own errors: a server's 500 (or its error event mid-stream)
        raise ParserCrash(printable(f"{type(exc).__name__}: {exc}", CRASH_CHARS)) from None
