"""Standard and lenient inputs: which conversations the OpenAI chat schema allows.

Public (``chainfuzz.schema``). A case is *standard* when it is valid under the OpenAI Chat
Completions request schema as a server hands it to the template; otherwise it is *lenient*:
a shape some clients still send, outside the schema. Standard inputs can produce errors; a
finding that only lenient inputs reach is a warning that names the non-standard field
(`finding_key`, `describe`). Each rule of `RULES` is one such shape, with the standard form a
shrinker may try in its place (`standard_forms`). The rules and their sources (vLLM's
request model, transformers' documentation) are listed in the README, under "Standard and
lenient inputs".
"""

from __future__ import annotations

import copy
import json
import re
from dataclasses import dataclass
from typing import Callable, Iterator


def _parts(content) -> bool:
    """Whether ``content`` is a list of text parts (``{"type": "text", "text": ...}``)."""
    return isinstance(content, list) and all(
        isinstance(p, dict) and p.get("type") == "text" and isinstance(p.get("text"), str) for p in content)


def _null_content(msg: dict) -> bool:
    return (msg.get("role") == "assistant" and "content" in msg and msg["content"] is None
            and not msg.get("tool_calls") and msg.get("reasoning_content") is None
            and msg.get("reasoning") is None)


def _object_result(msg: dict) -> bool:
    return msg.get("role") == "tool" and not isinstance(msg.get("content"), str) and not _parts(msg.get("content"))


def _string_arguments(msg: dict) -> bool:
    return any(isinstance((c.get("function") or {}).get("arguments"), str) for c in msg.get("tool_calls") or ())


def _fix_null_content(msg: dict) -> None:
    msg["content"] = ""


def _fix_null_beside_reasoning(msg: dict) -> None:
    # The one standard place for null content without tool calls: beside reasoning, as a
    # reasoning server returns a turn that only reasoned and clients send it back.
    msg["reasoning_content"] = "thinking"


def _fix_object_result(msg: dict) -> None:
    msg["content"] = json.dumps(msg["content"], ensure_ascii=False)


def _fix_string_arguments(msg: dict) -> None:
    # What vLLM does before rendering (`_postprocess_messages`): parse the string, and give
    # an empty object for one that is not a JSON object.
    for call in msg.get("tool_calls") or ():
        fn = call.get("function") or {}
        if isinstance(fn.get("arguments"), str):
            try:
                parsed = json.loads(fn["arguments"])
            except ValueError:
                parsed = None
            fn["arguments"] = parsed if isinstance(parsed, dict) else {}


@dataclass(frozen=True)
class Rule:
    """One shape outside the schema: ``deviates(message)`` tells it; each of ``fixes`` makes
    the message standard in place, keeping what it says where the schema can (the first is
    the plainest)."""

    name: str  # short id, used in finding keys: "lenient[object_result]:..."
    what: str  # the non-standard field, in words
    standard: str  # what the schema allows instead, and where that is said
    deviates: Callable[[dict], bool]
    fixes: tuple[Callable[[dict], None], ...]


RULES: tuple[Rule, ...] = (
    Rule("null_content", "assistant content null with neither tool calls nor reasoning",
         "the OpenAI schema allows null assistant content only beside tool_calls",
         _null_content, (_fix_null_content, _fix_null_beside_reasoning)),
    Rule("object_result", "a tool result given as an object",
         "the OpenAI schema allows a string or text parts",
         _object_result, (_fix_object_result,)),
    Rule("string_arguments", "tool-call arguments as a JSON string",
         "vLLM parses them into an object before rendering, as transformers documents",
         _string_arguments, (_fix_string_arguments,)),
)
_BY_NAME = {r.name: r for r in RULES}


def deviations(case: dict) -> list[tuple[int, Rule]]:
    """(message index, rule) for each non-standard field of ``case``; empty when standard.
    Cases without messages (a tokenizer's text) are standard."""
    msgs = case.get("messages") if isinstance(case, dict) else None
    if not isinstance(msgs, list):
        return []
    return [(i, rule) for i, msg in enumerate(msgs) if isinstance(msg, dict)
            for rule in RULES if rule.deviates(msg)]


def nonstandard(case: dict, failure=None) -> tuple[str, ...]:
    """The names of the rules ``case`` breaks, sorted; empty when it is standard. With the
    ``failure`` a property raised on it, also the property's own rule (`Failure.lenient`: an
    input no implementation can be held to, such as a reply spelling its format's markers)."""
    own = getattr(failure, "lenient", None)
    return tuple(sorted({rule.name for _, rule in deviations(case)} | ({own} if own else set())))


def is_standard(case: dict, failure=None) -> bool:
    return not nonstandard(case, failure)


def standard_forms(case: dict) -> Iterator[dict]:
    """``case`` with every non-standard field made standard (each rule's plainest fix), then
    each field alone in each of its standard forms: what a shrinker tries first, so a finding
    is kept on a standard input wherever one shows it."""
    found = deviations(case)
    if not found:
        return
    batches = [[(i, rule.fixes[0]) for i, rule in found]]
    batches += [[(i, fix)] for i, rule in found for fix in rule.fixes if len(found) > 1 or fix is not rule.fixes[0]]
    for batch in batches:
        edited = copy.deepcopy(case)
        for i, fix in batch:
            fix(edited["messages"][i])
        yield edited


def describe(names: tuple[str, ...] | list[str]) -> str:
    """The non-standard fields ``names`` stand for, in words, with what the schema allows."""
    return "; ".join(f"{_BY_NAME[n].what} ({_BY_NAME[n].standard})" for n in names if n in _BY_NAME)


_LENIENT = re.compile(r"^lenient\[[a-z_,]+\]:")
_SITE = re.compile(r"^([^:@]*)@[^:]*")


def finding_key(key: str, case: dict, failure=None) -> str:
    """The key a failure of ``key`` on ``case`` is recorded under: the property's own key on a
    standard input, marked ``lenient[rules]:`` on a lenient one (the failure's own rule
    counts, `nonstandard`), so the two are told apart."""
    names = nonstandard(case, failure)
    return f"lenient[{','.join(names)}]:{key}" if names else key


def legacy_key(key: str) -> str:
    """``key`` as chainfuzz wrote it before keys named their site (``TypeError@line 3:...`` was
    ``TypeError:...``) or their input tier: old case files compare with this."""
    return _SITE.sub(r"\1", _LENIENT.sub("", key))
