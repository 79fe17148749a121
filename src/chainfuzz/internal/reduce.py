"""Structural reduction of a failing case, after Hypothesis has shrunk it.

Hypothesis shrinks the choices a strategy made, and can stall where removing a message would
need several choices to change at once. Cases are plain conversations, so this pass edits them
directly. It tries the standard form of each non-standard field (`chainfuzz.schema`); deletes
whole turns (an assistant message with its tool results), one of parallel tool calls (with its
result), ``tools`` or one tool of several, and optional keys; simplifies structured values
(deletes a key or item of arguments or of an object result, sets a number to 0, deletes one of
several content parts); and cuts texts by halves, then quarters..., never to empty (emptying
one can keep the defect's key while changing its cause: an empty system message is
legitimately dropped). An edit is kept only while the same defect still shows, and every edit
keeps the case schema-shaped. It runs to a fixed point: no single edit keeps the defect.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Callable, Iterator

from ..messages import is_parts
from ..schema import standard_forms
from .mutate import FIXED_KEYS

_OPTIONAL_KEYS = ("reasoning_content", "name")
# Keys whose strings texts are not cut under: ids and names tie calls to results and schemas.
# Argument values are cut (mutation leaves them whole: `mutate.FIXED_KEYS`).
_UNCUT = FIXED_KEYS - {"arguments"}


@dataclass
class Reduced:
    """A reduction's result: the case, and whether it is a fixed point (every single edit was
    tried on it and none kept the defect) or was stopped by ``max_steps``/``still_fails``' clock."""

    case: dict
    fixed_point: bool
    steps: int


def reduce_case(case: dict, still_fails: Callable[[dict], bool], max_steps: int = 2000) -> Reduced:
    """The smallest case reachable by single edits for which ``still_fails`` stays true."""
    steps = 0
    improved = True
    while improved and steps < max_steps:
        improved = False
        for candidate in _candidates(case):
            steps += 1
            if still_fails(candidate):
                case, improved = candidate, True
                break
            if steps >= max_steps:
                break
    return Reduced(case, not improved and steps < max_steps, steps)


def _candidates(case: dict) -> Iterator[dict]:
    yield from standard_forms(case)
    messages = case.get("messages") or []
    for start, stop in _turns(messages):
        if stop - start < len(messages):
            yield {**case, "messages": messages[:start] + messages[stop:]}
    tools = case.get("tools") or []
    if tools:
        yield {**case, "tools": None}
    for k in range(len(tools) if len(tools) > 1 else 0):  # a template may need a tools list
        yield {**case, "tools": tools[:k] + tools[k + 1:]}
    yield from _fewer_calls(case)
    for i, msg in enumerate(messages):
        for key in _OPTIONAL_KEYS:
            if key in msg:
                yield _edit_at(case, ("messages", i), lambda m, k=key: m.pop(k))
    yield from _simpler_values(case)
    yield from _shorter_texts(case)


def _fewer_calls(case: dict) -> Iterator[dict]:
    """The case with one of an assistant's several tool calls removed, with its result."""
    for i, msg in enumerate(case.get("messages") or []):
        calls = msg.get("tool_calls") or []
        for k in range(len(calls) if len(calls) > 1 else 0):
            edited = copy.deepcopy(case)
            gone = edited["messages"][i]["tool_calls"].pop(k).get("id")
            edited["messages"] = [m for m in edited["messages"]
                                  if not (m.get("role") == "tool" and m.get("tool_call_id") == gone)]
            yield edited


def _simpler_values(case: dict) -> Iterator[dict]:
    """The case with one structured value simpler: a key or item of tool-call arguments or of
    an object tool result deleted, a number there set to 0, one of several content parts
    deleted (a part itself stays whole: ``{"type": "text", "text": ...}``)."""
    for root in _data_roots(case):
        data = _get(case, root)
        if is_parts(data):
            for j in range(len(data) if len(data) > 1 else 0):
                yield _edit_at(case, root, lambda v, j=j: v.pop(j))
            continue
        for path, value in values(data, root):
            if isinstance(value, dict):
                for key in value:
                    yield _edit_at(case, path, lambda v, key=key: v.pop(key))
            elif isinstance(value, list):
                for j in range(len(value)):
                    yield _edit_at(case, path, lambda v, j=j: v.pop(j))
            elif isinstance(value, (int, float)) and not isinstance(value, bool) and value != 0:
                yield _edit_at(case, path[:-1], lambda parent, k=path[-1]: parent.__setitem__(k, 0))


def _data_roots(case: dict) -> Iterator[tuple]:
    """Paths of the structured values a case carries: arguments given as objects, tool results
    given as objects, contents given as lists of parts."""
    for i, msg in enumerate(case.get("messages") or []):
        for k, call in enumerate(msg.get("tool_calls") or ()):
            if isinstance((call.get("function") or {}).get("arguments"), (dict, list)):
                yield ("messages", i, "tool_calls", k, "function", "arguments")
        if isinstance(msg.get("content"), (dict, list)):
            yield ("messages", i, "content")


def _edit_at(case: dict, path: tuple, change: Callable[[object], object]) -> dict:
    """A copy of ``case`` with ``change`` applied in place to the value at ``path`` (to replace
    a value, change its parent: ``path[:-1]``); every edit of the reducer is one."""
    edited = copy.deepcopy(case)
    change(_get(edited, path))
    return edited


def values(value, path: tuple) -> Iterator[tuple[tuple, object]]:
    """(path, value) of ``value`` and of every value inside it, ``value`` first."""
    yield path, value
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, inner in items:
        yield from values(inner, (*path, key))


def _shorter_texts(case: dict) -> Iterator[dict]:
    """The case with one text cut: a chunk of 1/2, 1/4, ... of it removed, never emptied;
    the fields mutation never edits (`mutate`) are not cut either."""
    paths = [path for path, value in _strings(case, ()) if len(value) > 1]
    for path in paths:
        value = _get(case, path)
        size = len(value) // 2
        while size >= 1:
            for start in range(0, len(value) - size + 1, size):
                cut = value[:start] + value[start + size:]
                if cut and _no_new_edges(value, cut):
                    yield _edit_at(case, path[:-1], lambda parent, k=path[-1], cut=cut: parent.__setitem__(k, cut))
            size //= 2


def _no_new_edges(value: str, cut: str) -> bool:
    """A cut that leaves no whitespace at an end, and no double space, the text had not: words
    joined by single spaces stay so, and a trimming defect is not blamed on the shrinker."""
    return ((not cut[:1].isspace() or value[:1].isspace()) and (not cut[-1:].isspace() or value[-1:].isspace())
            and ("  " not in cut or "  " in value))


def _strings(value, path: tuple) -> Iterator[tuple[tuple, str]]:
    """(path, text) of the strings inside ``value`` that may be cut: under no `_UNCUT` key."""
    for at, inner in values(value, path):
        if isinstance(inner, str) and _UNCUT.isdisjoint(at):
            yield at, inner


def _get(value, path):
    for p in path:
        value = value[p]
    return value


def _turns(messages: list[dict]) -> Iterator[tuple[int, int]]:
    """[start, stop) spans that can go together: a message, or an assistant with its results."""
    i = 0
    while i < len(messages):
        stop = i + 1
        if messages[i].get("tool_calls"):
            while stop < len(messages) and messages[stop].get("role") == "tool":
                stop += 1
        if messages[i].get("role") != "tool" or i == 0 or not messages[i - 1].get("tool_calls"):
            yield i, stop
        i = stop
