"""Structure-aware mutation of cases, at microseconds per input.

Drawing a conversation through Hypothesis costs 3-10 ms; rendering it 30-300 us. Once a
search holds inputs with new behaviour (its corpus, and what the example database remembers),
editing them field by field reaches nearby inputs for a fraction of that: a text replaced,
grown at its start, middle or end by a string seen elsewhere (markers, unicode edges, other
fields' texts), emptied or cut to one character; a role swapped for another role seen; a
message deleted, duplicated or swapped with its neighbour; a flag flipped. Edits keep the
case JSON-shaped and the kind of every value, so most mutants stay inputs the property takes.
A failure found here is handed to the structural shrinker (`runner.reduce_failure`).
"""

from __future__ import annotations

import random
from typing import Iterator

# Values that tie a case together (a tool result to its call, a part to its kind): editing
# them makes inputs every template refuses, so mutation leaves them alone. "role" is edited
# only to another role the corpus holds.
_FIXED_KEYS = frozenset({"type", "id", "tool_call_id"})
_EDGES = ("", " ", "\n", "a", "  ", "\t", "\u00a0")
MAX_POOL = 2000  # strings kept for splicing; a corpus of 200 conversations yields ~1,500
# Past these sizes edits only cut: mutants that grow without bound render ever slower (a
# corpus left to grow reached 0.5 ms a render on Qwen2.5, four times a drawn case's cost).
MAX_TEXT = 64
MAX_ITEMS = 6


def copy_json(value):
    """A copy of a JSON-shaped value: 5-10 times faster than `copy.deepcopy` on a case."""
    if isinstance(value, dict):
        return {k: copy_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [copy_json(v) for v in value]
    return value


def _slots(value, parent=None, key=None) -> Iterator[tuple[object, object, object]]:
    """(container, key or index, value) of every value below ``value``."""
    if isinstance(value, dict):
        for k, v in value.items():
            yield value, k, v
            yield from _slots(v, value, k)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield value, i, v
            yield from _slots(v, value, i)


class Mutator:
    """Edits cases with strings and roles harvested from the inputs it is shown."""

    def __init__(self, rng: random.Random, strings: tuple[str, ...] = ()) -> None:
        self.rng = rng
        self.strings: list[str] = list(dict.fromkeys((*_EDGES, *strings)))
        self._known = set(self.strings)
        self.roles: list[str] = []

    def learn(self, case: object) -> None:
        """Add ``case``'s strings and roles to what mutants are spliced from."""
        for parent, key, value in _slots(case):
            if not isinstance(value, str):
                continue
            if key == "role":
                if value not in self.roles:
                    self.roles.append(value)
            elif key not in _FIXED_KEYS and value not in self._known and len(self._known) < MAX_POOL:
                self._known.add(value)
                self.strings.append(value)

    def mutate(self, case: dict, edits: int | None = None) -> dict:
        """A copy of ``case`` with 1-3 edits (``edits`` of them when given)."""
        out = copy_json(case)
        for _ in range(edits or self.rng.choice((1, 1, 1, 2, 3))):
            slots = [s for s in _slots(out) if s[1] not in _FIXED_KEYS]
            if not slots:
                break
            self._edit(*self.rng.choice(slots))
        return out

    def _edit(self, parent, key, value) -> None:
        rng = self.rng
        if key == "role" and isinstance(value, str):
            if len(self.roles) > 1:
                parent[key] = rng.choice([r for r in self.roles if r != value])
        elif isinstance(value, str):
            parent[key] = self._text(value)
        elif isinstance(value, bool):
            parent[key] = not value
        elif isinstance(value, (int, float)):
            parent[key] = rng.choice((0, -1, 1, value + 1, value - 1, value * 2, 10**12))
        elif isinstance(value, list) and value:
            i = rng.randrange(len(value))
            op = 0 if len(value) >= MAX_ITEMS else rng.randrange(3)
            if op == 0 and len(value) > 1:
                del value[i]
            elif op == 1:
                value.insert(i, copy_json(value[i]))
            elif i + 1 < len(value):
                value[i], value[i + 1] = value[i + 1], value[i]

    def _text(self, text: str) -> str:
        rng = self.rng
        other = rng.choice(self.strings)
        op = rng.choice((4, 6)) if len(text) > MAX_TEXT else rng.randrange(7)
        if op == 0:
            return other
        if op == 1:
            return other + text
        if op == 2:
            return text + other
        if op == 3:
            cut = rng.randint(0, len(text))
            return text[:cut] + other + text[cut:]
        if op == 4:
            return text[:1]
        if op == 5:
            return rng.choice(_EDGES[1:]) + text + rng.choice(_EDGES)
        return text[: rng.randint(0, len(text))]
