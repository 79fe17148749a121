"""Structure-aware mutation of cases, at microseconds per input.

Drawing a conversation through Hypothesis costs 3-10 ms; rendering it 30-300 us. Once a
search holds inputs with new behaviour (its corpus, and what the example database remembers),
editing them field by field reaches nearby inputs for a fraction of that: a text replaced,
grown at its start, middle or end by a string seen elsewhere (markers, unicode edges, other
fields' texts), emptied or cut to one character; a number swapped for another the same field
held in another input; a flag flipped; a list of numbers or of text parts cut, grown or
reordered. A failure found here is handed to the structural shrinker (`runner.reduce_failure`).

Every mutant stays in the space the property's strategy draws from, so a mutant's failure is
as much a defect as a drawn input's: what ties a conversation together (roles, the order of
messages, ids, tool names, JSON-string arguments, tool schemas) is never edited, and numbers
only take values their field was drawn with (a chunk size of 0, or a token id past the
vocabulary, is no tokenizer's defect). A field drawn as plain words (ASCII letters, digits and
spaces, as ``template.roundtrip`` and ``generation_prompt`` draw theirs) only gets other
values of that field, or two of them joined by a space; a list grows no longer than its field
was seen.
"""

from __future__ import annotations

import random
import re
from typing import Iterator

_PLAIN = re.compile(r"[A-Za-z0-9 ]+")

# Fields mutation leaves alone: they tie a case together (a tool result to its call, a call to
# its schema, a part to its kind), or hold JSON in a string.
FIXED_KEYS = frozenset({"role", "type", "id", "tool_call_id", "name", "arguments", "tools"})
_EDGES = ("", " ", "\n", "a", "  ", "\t", "\u00a0")
MAX_POOL = 2000  # strings kept for splicing; a corpus of 200 conversations yields ~1,500
MAX_NUMBERS = 200  # values kept per numeric field
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


def _slots(value, field: str = "") -> Iterator[tuple[object, object, object, str]]:
    """(container, key or index, value, field) of every editable value below ``value``;
    ``field`` is the nearest dict key above it (the list's name for a list's items)."""
    if isinstance(value, dict):
        for k, v in value.items():
            if k in FIXED_KEYS or k.startswith("tool_call"):
                continue
            yield value, k, v, k
            yield from _slots(v, k)
    elif isinstance(value, list):
        if value and isinstance(value[0], dict) and "role" in value[0]:
            for v in value:  # messages: their fields are edited, never their order or number
                yield from _slots(v, field)
            return
        for i, v in enumerate(value):
            yield value, i, v, field
            yield from _slots(v, field)


def _editable_list(value: list) -> bool:
    """Lists whose items may be cut, copied or reordered: numbers, texts, text parts."""
    return all(isinstance(v, (int, float, str)) and not isinstance(v, bool) for v in value) or all(
        isinstance(v, dict) and v.get("type") == "text" for v in value)


class Mutator:
    """Edits cases with strings and numbers harvested from the inputs it is shown."""

    def __init__(self, rng: random.Random, strings: tuple[str, ...] = ()) -> None:
        self.rng = rng
        self.strings: list[str] = list(dict.fromkeys((*_EDGES, *strings)))
        self._known = set(self.strings)
        self.numbers: dict[str, list] = {}  # field -> values it was drawn with
        self.words: dict[str, list[str]] = {}  # field -> its values, while all are plain words
        self.lengths: dict[str, int] = {}  # field -> the longest list it held

    def learn(self, case: object) -> None:
        """Add ``case``'s strings and numbers to what mutants are spliced from."""
        for _, _, value, field in _slots(case):
            if isinstance(value, list):
                self.lengths[field] = max(self.lengths.get(field, 0), len(value))
            elif isinstance(value, str):
                if value not in self._known and len(self._known) < MAX_POOL:
                    self._known.add(value)
                    self.strings.append(value)
                words = self.words.get(field, [])
                if words is not None and not _PLAIN.fullmatch(value):
                    self.words[field] = None  # not a words-only field after all
                elif words is not None and value not in words and len(words) < MAX_NUMBERS:
                    self.words[field] = [*words, value]
            elif isinstance(value, (int, float)) and not isinstance(value, bool):
                seen = self.numbers.setdefault(field, [])
                if value not in seen and len(seen) < MAX_NUMBERS:
                    seen.append(value)

    def mutate(self, case: dict, edits: int | None = None) -> dict:
        """A copy of ``case`` with 1-3 edits (``edits`` of them when given)."""
        out = copy_json(case)
        for _ in range(edits or self.rng.choice((1, 1, 1, 2, 3))):
            slots = list(_slots(out))
            if not slots:
                break
            self._edit(*self.rng.choice(slots))
        return out

    def _edit(self, parent, key, value, field: str) -> None:
        rng = self.rng
        if isinstance(value, str):
            words = self.words.get(field)
            if words:
                other = rng.choice(words)
                parent[key] = other if rng.random() < 0.5 or len(value) > MAX_TEXT else f"{value} {other}"
            else:
                parent[key] = self._text(value)
        elif isinstance(value, bool):
            parent[key] = not value
        elif isinstance(value, (int, float)):
            parent[key] = rng.choice(self.numbers.get(field) or [value])
        elif isinstance(value, list) and value and _editable_list(value):
            i = rng.randrange(len(value))
            longest = min(MAX_ITEMS, self.lengths.get(field, len(value)))
            op = 0 if len(value) >= longest else rng.randrange(3)
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
