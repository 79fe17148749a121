"""What conversations a template accepts, learned by rendering a few probe conversations.

Most templates refuse part of the space `chainfuzz.strategies.conversations` draws: Mistral's
insist on alternating roles, Qwen2.5 crashes on content parts, Gemma has no system role. Every
property but ``template.renders`` skips a refused input, so on such templates they checked a
few percent of what was drawn. `learn_accepts` renders one small probe per option of the
generator (a system placement, an irregularity, content parts, null content, tool calls...)
and `Accepts` narrows the generator to the options the template renders. A probe counts as
refused whether the template raises deliberately or crashes: either way no property but
``template.renders`` (which keeps drawing everything) can check that shape.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from ..strategies import IRREGULARITY, SYSTEM_PLACEMENT

# Probes that may time out before learning stops and everything is assumed accepted: a
# template that hangs on one probe hangs on the rest (as in `structure.MAX_PROBE_TIMEOUTS`).
MAX_PROBE_TIMEOUTS = 2

Render = Callable[..., str]  # render(messages, tools=None) -> text, raising on a refusal


def _u(text: str = "hello") -> dict:
    return {"role": "user", "content": text}


def _a(text: str = "world") -> dict:
    return {"role": "assistant", "content": text}


def _s(text: str = "be brief") -> dict:
    return {"role": "system", "content": text}


def _parts(text: str) -> list[dict]:
    return [{"type": "text", "text": text}]


def _call(call_id: str = "abcDEF123", name: str = "get_weather", arguments=None) -> dict:
    return {"id": call_id, "type": "function",
            "function": {"name": name, "arguments": {"query": "Paris"} if arguments is None else arguments}}


def _calls(*calls: dict, content="calling", results=None) -> list[dict]:
    """An assistant turn making ``calls``, one tool result per call, and the final answer."""
    results = results or ["sunny"] * len(calls)
    return [{"role": "assistant", "content": content, "tool_calls": list(calls)},
            *({"role": "tool", "tool_call_id": c["id"], "content": r} for c, r in zip(calls, results)),
            _a("done")]


# The tools list probes pass where the template needs one to render anything (Hermes' tool_use).
PROBE_TOOLS = [{"type": "function", "function": {
    "name": "get_weather", "description": "Calls get_weather.",
    "parameters": {"type": "object", "properties": {"query": {"type": "string"}}, "required": ["query"]}}}]

# What each refused option is called in a report.
DESCRIPTIONS = {
    "end_assistant": "a conversation ending with an assistant message",
    "assistant_first": "a conversation starting with an assistant message",
    "placement:none": "no system message",
    "placement:first": "a system message",
    "placement:developer": "a developer message",
    "placement:repeated": "two system messages",
    "placement:mid": "a system message mid-conversation",
    "irregular:double_user": "two user messages in a row",
    "irregular:double_assistant": "two assistant messages in a row",
    "irregular:system_mid": "a system message between user and assistant",
    "irregular:empty_user": "an empty user message after another",
    "content_parts": "content as a list of text parts",
    "null_content": "null assistant content",
    "reasoning": "reasoning_content",
    "tools": "tool calls and tool results",
    "tool_schemas": "a tools list",
    "parallel_calls": "parallel tool calls",
    "call_id_prefix": "tool-call ids other than 9 alphanumerics",
    "string_arguments": "tool-call arguments as a JSON string",
    "object_results": "tool results as JSON objects",
    "no_tool_schemas": "a conversation without a tools list",
    "tools_list": "a tools list (needed to render anything)",
}


@dataclass(frozen=True)
class Accepts:
    """The options of `chainfuzz.strategies.conversations` a template renders.

    The defaults are the whole space: a template learned nothing about (it refuses even a
    lone user message, or hangs) is fuzzed as before, and ``template.renders`` reports why.
    ``refused`` lists (option, the template's message) for the report.
    """

    system_placements: tuple[str, ...] = SYSTEM_PLACEMENT
    irregularities: tuple[str, ...] = IRREGULARITY
    content_parts: bool = True
    null_content: bool = True
    reasoning: bool = True
    tools: bool = True
    tool_schemas: bool = True
    parallel_calls: bool = True
    call_id_prefix: bool = True
    string_arguments: bool = True
    object_results: bool = True
    schemas_required: bool = False
    end_assistant: bool = True
    assistant_first: bool = True
    refused: tuple[tuple[str, str], ...] = field(default=())
    probes: int = 0  # renders spent learning

    def strategy_kwargs(self) -> dict:
        """Keyword arguments for `chainfuzz.strategies.conversations` (and `edge_conversations`)
        that draw only what the template accepts."""
        return {
            "system_placements": self.system_placements, "irregularities": self.irregularities,
            "content_parts": self.content_parts, "null_content": self.null_content,
            "reasoning": self.reasoning, "tools": self.tools, "tool_schemas": self.tool_schemas,
            "parallel_calls": self.parallel_calls, "call_id_prefix": self.call_id_prefix,
            "string_arguments": self.string_arguments, "object_results": self.object_results,
            "schemas_required": self.schemas_required,
            "end": None if self.end_assistant else "user", "assistant_first": self.assistant_first,
        }

    def summary(self) -> str:
        """One line for a report: "refuses: content parts (TypeError: ...), ..."; "" if none."""
        if not self.refused:
            return ""
        return "refuses: " + ", ".join(f"{DESCRIPTIONS.get(k, k)} ({msg})" for k, msg in self.refused)


class _Prober:
    """Renders probes, remembering refusals and counting timeouts."""

    def __init__(self, render: Render) -> None:
        self.render = render
        self.refused: dict[str, str] = {}
        self.count = 0
        self.timeouts = 0
        self.schemas: list | None = None  # passed to every probe once the template needs it

    @property
    def hanging(self) -> bool:
        return self.timeouts >= MAX_PROBE_TIMEOUTS

    def accepts(self, option: str, messages: list[dict], tools: list | None = None) -> bool:
        if self.hanging:
            return True  # nothing more can be learned: leave the option in
        self.count += 1
        try:
            self.render(messages, tools=tools or self.schemas)
        except Exception as exc:  # noqa: BLE001 - a crash and a raise_exception both refuse the shape
            self.timeouts += getattr(exc, "kind", None) == "timeout"
            self.refused.setdefault(option, str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__)
            return False
        return True


def learn_accepts(render: Render) -> Accepts:
    """Render one probe per option of the generator and keep the options the template renders.

    ``render(messages, tools=None)`` renders without a generation prompt and raises on a
    refusal (`Context.render`). Probes end on a user message, which every chat template
    renders; options are probed one at a time on top of the simplest accepted start.
    """
    p = _Prober(render)
    placements = {
        "none": [_u()],
        "first": [_s(), _u()],
        "developer": [{"role": "developer", "content": "be brief"}, _u()],
        "repeated": [_s(), _s("be kind"), _u()],
        "mid": [_s(), _u(), _a(), _s("be kind"), _u("again")],
    }
    placed = tuple(name for name in SYSTEM_PLACEMENT if p.accepts(f"placement:{name}", placements[name]))
    if not placed and not p.hanging and p.accepts("tools_list", [_u()], PROBE_TOOLS):
        # Tool-use templates (Hermes) iterate `tools` unconditionally: probe again with one.
        p.schemas = PROBE_TOOLS
        p.refused = {"no_tool_schemas": p.refused["placement:none"]}
        placed = tuple(name for name in SYSTEM_PLACEMENT if p.accepts(f"placement:{name}", placements[name]))
    if not placed or p.hanging:
        # Not even a lone user message (nor one after a system message) renders: nothing to
        # narrow the generator to. template.renders draws the whole space and reports it.
        return Accepts(refused=tuple(p.refused.items()), probes=p.count)
    head = {"none": [], "first": [_s()], "developer": [placements["developer"][0]]}.get(placed[0], [_s()])

    def probe(option: str, body: list[dict], tools: list | None = None) -> bool:
        return p.accepts(option, head + body, tools)

    irregular = {
        "none": None,
        "double_user": [_u(), _u("again"), _a(), _u("more")],
        "double_assistant": [_u(), _a(), _a("more"), _u("again")],
        "system_mid": [_u(), _s("be kind"), _a(), _u("again")],
        "empty_user": [_u(), _u(""), _a(), _u("again")],
    }
    irregularities = tuple(name for name in IRREGULARITY
                           if irregular[name] is None or probe(f"irregular:{name}", irregular[name]))
    end_assistant = probe("end_assistant", [_u(), _a()])
    assistant_first = p.accepts("assistant_first", [_a(), _u()])
    tail = [] if end_assistant else [_u("again")]
    content_parts = probe("content_parts", [
        {"role": "user", "content": _parts("hello")}, {"role": "assistant", "content": _parts("world")},
        {"role": "user", "content": _parts("again")}])
    null_content = probe("null_content", [_u(), {"role": "assistant", "content": None}, _u("again")])
    reasoning = probe("reasoning", [_u(), {**_a(), "reasoning_content": "thinking"}, _u("again")])
    tools = probe("tools", [_u(), *_calls(_call()), *tail])
    if tools:
        parallel = probe("parallel_calls", [_u(), *_calls(_call(), _call("ghiJKL456", "search")), *tail])
        prefixed = probe("call_id_prefix", [_u(), *_calls(_call("call_abcDEF123")), *tail])
        strings = probe("string_arguments", [_u(), *_calls(_call(arguments='{"query": "Paris"}')), *tail])
        objects = probe("object_results", [_u(), *_calls(_call(), results=[{"sky": "clear"}]), *tail])
    else:
        parallel = prefixed = strings = objects = False
    schemas = p.schemas is not None or probe("tool_schemas", [_u()], PROBE_TOOLS)
    if p.hanging:
        return Accepts(refused=tuple(p.refused.items()), probes=p.count)
    return Accepts(
        system_placements=placed, irregularities=irregularities, content_parts=content_parts,
        null_content=null_content, reasoning=reasoning, tools=tools, tool_schemas=schemas,
        parallel_calls=parallel, call_id_prefix=prefixed, string_arguments=strings,
        object_results=objects, schemas_required=p.schemas is not None, end_assistant=end_assistant, assistant_first=assistant_first,
        refused=tuple(p.refused.items()), probes=p.count)
