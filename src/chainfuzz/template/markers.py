"""The markers of a template, inferred without model-specific configuration.

- the vocabulary: control tokens plus tag-like strings in the template's literal text;
- open/close pairs matched by name (``<|im_start|>``/``<|im_end|>``, ``[INST]``/``[/INST]``);
- turn markers: pairs that wrap message contents in probe renderings, with the alternative
  closers a template picks in a conditional (Llama 3.1's ``<|eom_id|>`` for ``<|eot_id|>``);
- the balance check of ``template.turns_closed``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import jinja2
import jinja2.ext
from jinja2 import nodes

from .structure import sentinel

# Tag-like strings that templates use as turn and section markers.
_MARKER_RES = (
    re.compile(r"<\|[^<>|\s]{1,60}\|>"),          # <|im_start|>, <|eot_id|>
    re.compile(r"<\uff5c[^<>\uff5c]{1,60}\uff5c>"),  # DeepSeek's <｜Assistant｜>
    re.compile(r"</?[A-Za-z_][A-Za-z0-9_:.\-]{0,40}>"),  # <think>, </tool_call>, <start_of_turn>
    re.compile(r"\[/?[A-Z][A-Z_]{1,30}\]"),          # [INST], [/INST], [TOOL_CALLS]
)


class _GenerationTag(jinja2.ext.Extension):
    """Parses transformers' ``{% generation %}`` block so templates using it can be read."""

    tags = {"generation"}

    def parse(self, parser):
        next(parser.stream)
        return parser.parse_statements(("name:endgeneration",), drop_needle=True)


def _parse(source: str) -> nodes.Template | None:
    env = jinja2.Environment(extensions=["jinja2.ext.loopcontrols", _GenerationTag])
    try:
        return env.parse(source)
    except (jinja2.TemplateSyntaxError, RecursionError):
        return None


def _strings(node: nodes.Node) -> list[str]:
    """Literal text and string constants in ``node`` and below (find_all skips the node itself)."""
    found = [node, *node.find_all((nodes.TemplateData, nodes.Const))]
    return [n.data if isinstance(n, nodes.TemplateData) else n.value for n in found
            if isinstance(n, nodes.TemplateData) or (isinstance(n, nodes.Const) and isinstance(n.value, str))]


def literal_text(source: str) -> str:
    """The template's literal output text and string constants, joined by newlines."""
    tree = _parse(source)
    return source if tree is None else "\n".join(_strings(tree))


def vocabulary(source: str, control_tokens: tuple[str, ...] = ()) -> tuple[str, ...]:
    """Control tokens and tag-like literals, longest first (for greedy matching)."""
    found = {t for t in control_tokens if t and not t.isspace()}
    lit = literal_text(source)
    for rx in _MARKER_RES:
        found.update(rx.findall(lit))
    return tuple(sorted(found, key=lambda m: (-len(m), m)))


# --- pairing by name ---------------------------------------------------------------------

_OPEN_WORDS = frozenset({"start", "begin", "open"})
_CLOSE_WORDS = frozenset({"end", "close"})
_SPLIT = re.compile(r"[<>\[\]|/\uff5c\u2581_\s-]+")
# Sequence delimiters (<s>...</s>, <|begin_of_text|>) bracket the whole prompt, not turns.
_NOT_TURNS = frozenset({"s", "ofsentence", "oftext", "text", "sentence"})


def _words(marker: str) -> list[str]:
    return [w for w in _SPLIT.split(marker.lower()) if w]


def _name_parts(marker: str) -> tuple[str, str]:
    """("open" | "close", name without the open/close word): ("open", "im") for <|im_start|>."""
    words = _words(marker)
    if marker.startswith(("</", "[/")):
        return "close", "".join(words)
    for i, w in enumerate(words):
        if w in _OPEN_WORDS or w in _CLOSE_WORDS:
            kind = "open" if w in _OPEN_WORDS else "close"
            return kind, "".join(words[:i] + words[i + 1:])
    return "open", "".join(words)


def _says_close(marker: str) -> bool:
    return marker.startswith(("</", "[/")) or any(w in _CLOSE_WORDS for w in _words(marker))


def _says_open(marker: str) -> bool:
    return any(w in _OPEN_WORDS for w in _words(marker))


def pairs_by_name(markers: tuple[str, ...]) -> list[tuple[str, str]]:
    """(opener, closer) pairs among ``markers`` whose names match, like <think>/</think>."""
    opens: dict[str, str] = {}
    closes: dict[str, str] = {}
    for m in markers:
        kind, name = _name_parts(m)
        if name and name not in _NOT_TURNS:
            (opens if kind == "open" else closes).setdefault(name, m)
    return sorted((opens[k], closes[k]) for k in opens.keys() & closes.keys() if opens[k] != closes[k])


# --- turn markers --------------------------------------------------------------------------

@dataclass(frozen=True)
class TurnMarkers:
    """How a template opens and closes a turn.

    ``alternatives`` close a turn in place of ``closer``; ``nests`` is true when the template
    itself nests these markers (generic tag systems such as <|open|>name ... <|close|>name).
    """

    opener: str
    closer: str
    alternatives: tuple[str, ...] = ()
    nests: bool = False


def turn_markers(source: str, markers: tuple[str, ...],
                 samples: list[tuple[tuple[str, ...], str]]) -> list[TurnMarkers]:
    """The pairs that wrap message contents in probe renderings ``samples`` (roles,
    rendering): turn markers, as opposed to section tags like <think> inside a turn."""
    if not samples:
        return []
    named = pairs_by_name(markers)
    found = [(o, c) for o, c in named if any(_encloses(o, c, len(r), t) for r, t in samples)]
    # Any other two markers (Llama 3's <|start_header_id|> ... <|eot_id|>) must wrap every
    # message of every probe.
    seen = [m for m in markers if all(m in t for _, t in samples)]
    for o in (m for m in seen if not _says_close(m)):
        for c in (m for m in seen if not _says_open(m)):
            if o != c and (o, c) not in found and all(_encloses(o, c, len(r), t) for r, t in samples):
                found.append((o, c))
    turns = []
    for o, c in found:
        alternatives = alternative_closers(source, c, markers)
        nests = any(_max_depth(t, o, (c, *alternatives)) > 1 for _, t in samples)
        turns.append(TurnMarkers(o, c, alternatives, nests))
    # Pairs found by structure alone must also alternate in the template's own renderings of
    # conversations that end with a user message: no close without an open, no open inside an
    # open turn, at most one turn left open. Name-matched pairs need no such evidence, so a
    # template that never closes a turn in any rendering is still caught.
    user_last = [text for roles, text in samples if roles[-1] == "user"]

    def plausible(t: TurnMarkers) -> bool:
        if (t.opener, t.closer) in named:
            return True
        return not any((unbalanced(text, [t]) or ("",))[0].startswith(("orphan", "reopened"))
                       or _depth_after(text, t) > 1 for text in user_last)

    balanced = [t for t in turns if plausible(t)]
    chosen = _one_per_marker([(t.opener, t.closer) for t in balanced], named, samples)
    return [t for t in balanced if (t.opener, t.closer) in chosen]


def _encloses(opener: str, closer: str, n: int, text: str) -> bool:
    """Whether each of the ``n`` sentinel contents in ``text`` sits inside opener ... closer."""
    for i in range(n):
        at = text.find(sentinel(i))
        before = text[:at]
        o, c = before.rfind(opener), before.rfind(closer)
        next_o, next_c = text.find(opener, at), text.find(closer, at)
        if o < 0 or c > o or next_c < 0 or 0 <= next_o < next_c:
            return False
    return True


def _one_per_marker(pairs, named, samples) -> list[tuple[str, str]]:
    """One pair per closer and per opener: name-matched pairs first, then the opener farthest
    before the content (<|begin|> rather than the <|content|> after the role name)."""
    def reach(o: str) -> int:
        return min(t.rfind(o, 0, t.find(sentinel(0))) for _, t in samples if o in t)

    ranked = sorted(pairs, key=lambda p: (p not in named, reach(p[0])))
    chosen: list[tuple[str, str]] = []
    for o, c in ranked:
        if all(o != o2 and c != c2 for o2, c2 in chosen):
            chosen.append((o, c))
    return sorted(chosen)


def _events(text: str, opener: str, closers: tuple[str, ...]) -> list[tuple[int, int]]:
    events = [(m.start(), 1) for m in re.finditer(re.escape(opener), text)]
    for tok in closers:
        events += [(m.start(), -1) for m in re.finditer(re.escape(tok), text)]
    return sorted(events)


def _depth_after(text: str, t: TurnMarkers) -> int:
    return sum(delta for _, delta in _events(text, t.opener, (t.closer, *t.alternatives)))


def _max_depth(text: str, opener: str, closers: tuple[str, ...]) -> int:
    depth = top = 0
    for _, delta in _events(text, opener, closers):
        depth += delta
        top = max(top, depth)
    return top


def alternative_closers(source: str, closer: str, markers: tuple[str, ...]) -> tuple[str, ...]:
    """Markers the template ends a turn with instead of ``closer``, chosen in a conditional.

    Llama 3.1 style ``{% if tool_calls %}...<|eom_id|>{% else %}...<|eot_id|>{% endif %}`` or
    ``'<|eom|>' if more else '<|eot|>'``: where one branch ends with the closer, the marker the
    other branch ends with closes the turn another way. Only plain either/or choices count (an
    if/elif chain dispatches on role or content type and its branches end different turns),
    and section tags paired by name (``</tool_response>``) never close turns.
    """
    tree = _parse(source)
    if tree is None:
        return ()
    sections = {m for pair in pairs_by_name(markers) for m in pair}

    def last_marker(branch) -> str | None:
        text = "\n".join(s for n in branch for s in _strings(n))
        ends = [(text.rfind(m) + len(m), len(m), m) for m in markers if m in text]
        return max(ends)[2] if ends else None

    out: set[str] = set()
    for node in tree.find_all((nodes.If, nodes.CondExpr)):
        if isinstance(node, nodes.If):
            if node.elif_ or not node.else_:
                continue
            branches = [node.body, node.else_]
        else:
            if node.expr2 is None:
                continue
            branches = [[node.expr1], [node.expr2]]
        lasts = {last_marker(b) for b in branches}
        if closer in lasts:
            out |= {m for m in lasts if m and m != closer and m not in sections}
    return tuple(sorted(out))


def unbalanced(text: str, turns: list[TurnMarkers]) -> tuple[str, str] | None:
    """The first turn-marker imbalance in ``text`` as (key, description), or None."""
    for t in turns:
        depth = 0
        for pos, delta in _events(text, t.opener, (t.closer, *t.alternatives)):
            depth += delta
            if depth < 0:
                return (f"orphan_close:{t.closer}",
                        f"a closing marker at offset {pos} closes a turn that {t.opener!r} never opened")
            if depth > 1 and not t.nests:
                return (f"reopened:{t.opener}",
                        f"{t.opener!r} at offset {pos} opens a turn while the previous one is still open")
        if depth > 0:
            return f"never_closed:{t.opener}", f"{t.opener!r} opens a turn that {t.closer!r} never closes"
    return None
