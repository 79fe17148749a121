"""Structural reduction of a failing case, after Hypothesis has shrunk it.

Hypothesis shrinks the choices a strategy made, and can stall where removing a message would
need several choices to change at once. Cases are plain conversations, so this pass edits them
directly: it first tries the standard form of each non-standard field (`chainfuzz.schema`), then
deletes whole turns (an assistant message together with its tool results), drops ``tools``
and optional keys, and shortens texts (cut by halves, then quarters..., never to empty:
emptying one can keep the defect's key while changing its cause, as an empty system message
is legitimately dropped), keeping an edit only while the same defect still shows. Every edit
keeps the case schema-shaped. It runs to a fixed point: no single edit keeps the defect.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Callable, Iterator

from ..schema import standard_forms
from .mutate import FIXED_KEYS

_OPTIONAL_KEYS = ("reasoning_content", "name")


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
    if case.get("tools"):
        yield {**case, "tools": None}
    for i, msg in enumerate(messages):
        for key in _OPTIONAL_KEYS:
            if key in msg:
                yield _edit(case, i, lambda m, k=key: m.pop(k))
    yield from _shorter_texts(case)


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
                    edited = copy.deepcopy(case)
                    _set(edited, path, cut)
                    yield edited
            size //= 2


def _no_new_edges(value: str, cut: str) -> bool:
    """A cut that leaves no whitespace at an end, and no double space, the text had not: words
    joined by single spaces stay so, and a trimming defect is not blamed on the shrinker."""
    return ((not cut[:1].isspace() or value[:1].isspace()) and (not cut[-1:].isspace() or value[-1:].isspace())
            and ("  " not in cut or "  " in value))


def _strings(value, path):
    if isinstance(value, dict):
        for k, v in value.items():
            if k not in FIXED_KEYS:
                yield from _strings(v, (*path, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _strings(v, (*path, i))
    elif isinstance(value, str):
        yield path, value


def _get(value, path):
    for p in path:
        value = value[p]
    return value


def _set(value, path, new) -> None:
    _get(value, path[:-1])[path[-1]] = new


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


def _edit(case: dict, index: int, change: Callable[[dict], object]) -> dict:
    edited = copy.deepcopy(case)
    change(edited["messages"][index])
    return edited
