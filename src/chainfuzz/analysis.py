"""What chainfuzz infers about a template without model-specific configuration.

- the marker vocabulary: control tokens plus tag-like strings in the template's literal text;
- open/close marker pairs, paired by name (``<|im_start|>``/``<|im_end|>``, ``[INST]``/``[/INST]``);
- the turn structure: the text a template puts around each message, learned by rendering probe
  conversations with sentinel contents, and a parser that reads a rendering back into messages.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Callable

import jinja2
import jinja2.ext
from jinja2 import nodes

# Tag-like strings that templates use as turn and section markers.
_MARKER_RES = (
    re.compile(r"<\|[^<>|\s]{1,60}\|>"),          # <|im_start|>, <|eot_id|>
    re.compile(r"<\uff5c[^<>\uff5c]{1,60}\uff5c>"),  # DeepSeek's <｜Assistant｜>
    re.compile(r"</?[A-Za-z_][A-Za-z0-9_:.\-]{0,40}>"),  # <think>, </tool_call>, <start_of_turn>
    re.compile(r"\[/?[A-Z][A-Z_]{1,30}\]"),          # [INST], [/INST], [TOOL_CALLS]
)


def literal_text(source: str) -> str:
    """The template's literal output text and string constants, joined by newlines."""
    env = jinja2.Environment(extensions=["jinja2.ext.loopcontrols"])
    env.add_extension(_GenerationTag)
    try:
        tree = env.parse(source)
    except (jinja2.TemplateSyntaxError, RecursionError):
        return source
    parts = [n.data for n in tree.find_all(nodes.TemplateData)]
    parts += [n.value for n in tree.find_all(nodes.Const) if isinstance(n.value, str)]
    return "\n".join(parts)


class _GenerationTag(jinja2.ext.Extension):
    """Parses transformers' ``{% generation %}`` block so analysis can read such templates."""

    tags = {"generation"}

    def parse(self, parser):
        next(parser.stream)
        body = parser.parse_statements(("name:endgeneration",), drop_needle=True)
        return body


def marker_vocabulary(source: str, control_tokens: tuple[str, ...] = ()) -> tuple[str, ...]:
    """Control tokens and tag-like literals, longest first (for greedy matching)."""
    found = set(t for t in control_tokens if t and not t.isspace())
    lit = literal_text(source)
    for rx in _MARKER_RES:
        found.update(rx.findall(lit))
    return tuple(sorted(found, key=lambda m: (-len(m), m)))


_OPEN_WORDS = frozenset({"start", "begin", "open"})
_CLOSE_WORDS = frozenset({"end", "close"})
_SPLIT = re.compile(r"[<>\[\]|/\uff5c\u2581_\s-]+")
# Sequence delimiters (<s>...</s>, <|begin_of_text|>) bracket the whole prompt, not turns.
_NOT_TURNS = frozenset({"s", "ofsentence", "oftext", "text", "sentence"})


def _name_parts(marker: str) -> tuple[str, str]:
    """("open" | "close", name without the open/close word): ("open", "im") for <|im_start|>."""
    words = [w for w in _SPLIT.split(marker.lower()) if w]
    if marker.startswith(("</", "[/")):
        return "close", "".join(words)
    for i, w in enumerate(words):
        if w in _OPEN_WORDS or w in _CLOSE_WORDS:
            kind = "open" if w in _OPEN_WORDS else "close"
            return kind, "".join(words[:i] + words[i + 1:])
    return "open", "".join(words)


def marker_pairs(markers: tuple[str, ...]) -> list[tuple[str, str]]:
    """(opener, closer) pairs among ``markers``, matched by name: no per-model configuration."""
    opens: dict[str, str] = {}
    closes: dict[str, str] = {}
    for m in markers:
        kind, name = _name_parts(m)
        if name and name not in _NOT_TURNS:
            (opens if kind == "open" else closes).setdefault(name, m)
    return sorted((opens[k], closes[k]) for k in opens.keys() & closes.keys() if opens[k] != closes[k])


def unbalanced(text: str, pairs: list[tuple[str, str]]) -> tuple[str, str] | None:
    """The first open/close imbalance in ``text`` as (key, description), or None."""
    for opener, closer in pairs:
        events = []
        for tok, delta in ((opener, 1), (closer, -1)):
            events += [(m.start(), delta) for m in re.finditer(re.escape(tok), text)]
        depth = 0
        for pos, delta in sorted(events):
            depth += delta
            if depth < 0:
                return (f"orphan_close:{closer}",
                        f"{closer!r} at offset {pos} closes a turn that {opener!r} never opened")
            if depth > 1:
                return (f"reopened:{opener}",
                        f"{opener!r} at offset {pos} opens a turn while the previous one is still open")
        if depth > 0:
            return f"never_closed:{opener}", f"{opener!r} opens a turn that {closer!r} never closes"
    return None


def turn_pairs(markers: tuple[str, ...], named: list[tuple[str, str]],
               samples: list[tuple[int, str]]) -> list[tuple[str, str]]:
    """Marker pairs that wrap message contents in probe renderings: turn markers, as opposed to
    section tags such as <think> or <tool_call> that sit inside a turn.

    A pair matched by name qualifies if it wraps every message of some probe; any other two
    markers (Llama 3's <|start_header_id|> ... <|eot_id|>) only if they wrap every message of
    every probe.
    """
    def encloses(opener: str, closer: str, n: int, text: str) -> bool:
        for i in range(n):
            at = text.find(sentinel(i))
            before = text[:at]
            o, c = before.rfind(opener), before.rfind(closer)
            next_o, next_c = text.find(opener, at), text.find(closer, at)
            if o < 0 or c > o or next_c < 0 or 0 <= next_o < next_c:
                return False
        return True

    if not samples:
        return []
    pairs = [(o, c) for o, c in named if any(encloses(o, c, n, t) for n, t in samples)]
    seen = [m for m in markers if all(m in t for _, t in samples)]
    for o in seen:
        for c in seen:
            if o != c and (o, c) not in pairs and all(encloses(o, c, n, t) for n, t in samples):
                pairs.append((o, c))
    # One pair per closer: the opener nearest the content (the last one to open) is the turn's.
    best: dict[str, tuple[str, str]] = {}
    for o, c in pairs:
        best.setdefault(c, (o, c))
    return sorted(best.values())


# --- turn structure ---------------------------------------------------------------------

SENTINEL = "zq{}x"  # ASCII, no markers, unlikely in any template literal
PROBE_ROLES = ("system", "user", "assistant")


def sentinel(i: int) -> str:
    return SENTINEL.format(i)


@dataclass
class Structure:
    """The text a template puts between messages, learned from probe renderings.

    ``start[r]``: text before a first message of role r; ``glue[(r1, r2)]``: text between a
    message of role r1 and the next of role r2; ``end[r]``: text after a last message of role r.
    Each maps to the set of variants seen across probes.
    """

    start: dict[str, set[str]] = field(default_factory=dict)
    glue: dict[tuple[str, str], set[str]] = field(default_factory=dict)
    end: dict[str, set[str]] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)
    samples: list[tuple[int, str]] = field(default_factory=list)  # (messages, rendering) learned

    def learn(self, roles: list[str], rendered: str) -> bool:
        """Record the glue of one probe rendering; False when a sentinel is missing or moved."""
        pos, spans = 0, []
        for i in range(len(roles)):
            at = rendered.find(sentinel(i), pos)
            if at < 0:
                return False
            spans.append((at, at + len(sentinel(i))))
            pos = at + len(sentinel(i))
        self.start.setdefault(roles[0], set()).add(rendered[: spans[0][0]])
        for i in range(1, len(roles)):
            g = rendered[spans[i - 1][1]: spans[i][0]]
            self.glue.setdefault((roles[i - 1], roles[i]), set()).add(g)
        self.end.setdefault(roles[-1], set()).add(rendered[spans[-1][1]:])
        self.samples.append((len(roles), rendered))
        return True

    def parse(self, rendered: str) -> list[tuple[str, str]] | None:
        """Read ``rendered`` back into (role, content) pairs, or None when it does not parse."""
        for role, variants in self.start.items():
            for s in sorted(variants, key=len, reverse=True):
                if rendered.startswith(s):
                    out = self._parse_from(rendered, len(s), role, 0)
                    if out is not None:
                        return out
        return None

    def _parse_from(self, text: str, pos: int, role: str, depth: int):
        if depth > 64:
            return None
        ends = sorted(self.end.get(role, ()), key=len, reverse=True)
        nexts = sorted(
            ((g, r2) for (r1, r2), gs in self.glue.items() if r1 == role for g in gs if g),
            key=lambda x: -len(x[0]),
        )
        # Contents hold no markers, so the earliest place a known separator fits is the
        # content's end; try later places only when the rest does not parse.
        for cut in range(pos, len(text) + 1):
            for e in ends:
                if text.endswith(e) and cut == len(text) - len(e):
                    return [(role, text[pos:cut])]
            for g, r2 in nexts:
                if text.startswith(g, cut):
                    rest = self._parse_from(text, cut + len(g), r2, depth + 1)
                    if rest is not None:
                        return [(role, text[pos:cut]), *rest]
        return None


def probe_conversations() -> list[list[str]]:
    """Role sequences whose renderings teach `Structure` every transition between probe roles:
    each ordered pair alone and after a user/assistant exchange, plus common full shapes."""
    pairs = [[a, b] for a in PROBE_ROLES for b in PROBE_ROLES]
    return [
        ["user"], ["system", "user"], ["user", "assistant", "user"],
        ["system", "user", "assistant", "user", "assistant"],
        *pairs,
        *(["user", "assistant", *p] for p in pairs),
    ]


def learn_structure(render: Callable[[list[dict]], str]) -> Structure:
    """Render every probe with sentinel contents; probes the template refuses are skipped."""
    s = Structure()
    for roles in probe_conversations():
        msgs = [{"role": r, "content": sentinel(i)} for i, r in enumerate(roles)]
        try:
            out = render(msgs)
        except Exception as exc:  # noqa: BLE001 - a refused probe only narrows what is learned
            s.failures.append(f"{roles}: {exc}")
            continue
        if not s.learn(roles, out):
            s.failures.append(f"{roles}: sentinel content missing or reordered")
    return s
