"""Reading cases: the texts a conversation carries, and stable keys for error messages.

Public (``chainfuzz.messages``): property authors use these to find what a rendering must
contain and to name what differs in a way that stays stable across inputs.
"""

from __future__ import annotations

import json
import re
from typing import Iterator

# The roles every chat template knows; the structure probes use these alone.
BASIC_ROLES = ("system", "user", "assistant")


def is_parts(value) -> bool:
    """Whether ``value`` is a list of typed content parts (``[{"type": ...}, ...]``, any type,
    the empty list included), as opposed to a JSON value given as content."""
    return isinstance(value, list) and all(isinstance(p, dict) and "type" in p for p in value)


def content_texts(content) -> list[str]:
    """The text of a ``content`` value: a string, a list of text parts, or a JSON object's leaves."""
    if isinstance(content, str):
        return [content]
    if is_parts(content):
        return [p["text"] for p in content if p.get("type") == "text" and isinstance(p.get("text"), str)]
    return list(json_strings(content))


def json_strings(value) -> Iterator[str]:
    """Every string (keys included) inside a JSON value, in order."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for k, v in value.items():
            yield k
            yield from json_strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from json_strings(v)


def expected_texts(message: dict) -> list[tuple[str, str, bool]]:
    """(field, text, structured) for each text of ``message`` a template must keep.

    ``structured`` marks leaves of JSON objects, which a template may write JSON-escaped.
    Reasoning is left out: templates drop earlier turns' reasoning by design.
    """
    out = []
    content = message.get("content")
    structured = isinstance(content, (dict, list)) and not is_parts(content)
    out += [("content", t, structured) for t in content_texts(content)]
    for call in message.get("tool_calls") or ():
        fn = call.get("function", {})
        out.append(("tool_call.name", fn.get("name", ""), False))
        args = fn.get("arguments")
        if isinstance(args, str):
            out.append(("tool_call.arguments", args, False))
        else:
            out += [("tool_call.arguments", t, True) for t in json_strings(args)]
    return [(f, t, s) for f, t, s in out if t]


def all_strings(case: dict) -> list[str]:
    """Every string a case carries: message fields, tool calls, tool schemas."""
    return list(json_strings(case))


def json_escaped(text: str) -> str:
    """``text`` as it appears inside a JSON string written by ``tojson``."""
    return json.dumps(text, ensure_ascii=False)[1:-1]


_DIGITS = re.compile(r"\d+")
_DATA = re.compile(r"\{.*\}|\[.*\]")  # JSON or repr a template echoes back from the input
_QUOTED_DATA = re.compile(r"'[^']*[^\w\s.'][^']*'|\"[^\"]*[^\w\s.\"][^\"]*\"")


def error_key(exc_type: str, message: str, site: str | None = None) -> str:
    """A stable de-duplication key for an error message, naming its ``site`` where known
    (``TypeError@line 12:...``: two constructs raising the same exception are two defects,
    each searched, shrunk and replayed on its own).

    Echoed input (JSON, reprs, quoted text with punctuation) and numbers are folded, so one
    defect reached by many inputs gets one key; short quoted names such as the attribute in
    "'str object' has no attribute 'items'" are kept.
    """
    first = message.strip().splitlines()[0] if message.strip() else ""
    first = _QUOTED_DATA.sub("'…'", _DATA.sub("{…}", first))
    return f"{exc_type}{'@' + site if site else ''}:{_DIGITS.sub('N', first)[:160]}"


def excerpt(text: str, at: int, width: int = 60) -> str:
    """A window of ``text`` around offset ``at``, for failure messages."""
    lo = max(0, at - width // 2)
    return ("…" if lo else "") + text[lo: at + width // 2] + ("…" if at + width // 2 < len(text) else "")
