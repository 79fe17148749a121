"""The turn structure of a template, learned by rendering probe conversations.

Each probe gives every message a sentinel content; the text between sentinels is what the
template puts around messages. `Structure` keeps it per role transition and reads renderings
back into messages (``template.roundtrip``); the probe renderings also show which markers wrap
message contents (`markers.turn_markers`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from ..messages import BASIC_ROLES

SENTINEL = "zq{}x"  # ASCII, no markers, unlikely in any template literal


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
    samples: list[tuple[tuple[str, ...], str]] = field(default_factory=list)  # (roles, rendering)

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
        self.samples.append((tuple(roles), rendered))
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
    pairs = [[a, b] for a in BASIC_ROLES for b in BASIC_ROLES]
    return [
        ["user"], ["system", "user"], ["user", "assistant", "user"],
        ["system", "user", "assistant", "user", "assistant"],
        *pairs,
        *(["user", "assistant", *p] for p in pairs),
    ]


# Probes that may time out before learning stops: a template that hangs on one probe hangs
# on the rest (40 probes at the 2 s render limit were 80 s of a `check --budget 15`).
MAX_PROBE_TIMEOUTS = 2


def learn_structure(render: Callable[[list[dict]], str]) -> Structure:
    """Render every probe with sentinel contents; probes the template refuses are skipped."""
    s = Structure()
    timeouts = 0
    for roles in probe_conversations():
        msgs = [{"role": r, "content": sentinel(i)} for i, r in enumerate(roles)]
        try:
            out = render(msgs)
        except Exception as exc:  # noqa: BLE001 - a refused probe only narrows what is learned
            s.failures.append(f"{roles}: {exc}")
            timeouts += getattr(exc, "kind", None) == "timeout"
            if timeouts >= MAX_PROBE_TIMEOUTS:
                s.failures.append("learning stopped: the template keeps timing out")
                break
            continue
        if not s.learn(roles, out):
            s.failures.append(f"{roles}: sentinel content missing or reordered")
    return s
