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

from ..internal.text import clip
from .structure import sentinel

# Tag-like strings that templates use as turn and section markers.
_MARKER_RES = (
    re.compile(r"<\|[^<>|\s]{1,60}\|>"),          # <|im_start|>, <|eot_id|>
    re.compile(r"<\|[A-Za-z_][A-Za-z0-9_]{0,40}>|<[A-Za-z_][A-Za-z0-9_]{0,40}\|>"),  # gemma-4's <|turn> ... <turn|>
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


# A bar on the closing side only closes: gemma-4's <turn|> ends what <|turn> opens.
_BAR_CLOSE = re.compile(r"<[^|<>][^<>]*\|>")


def _name_parts(marker: str) -> tuple[str, str]:
    """("open" | "close", name without the open/close word): ("open", "im") for <|im_start|>."""
    words = _words(marker)
    if marker.startswith(("</", "[/")) or _BAR_CLOSE.fullmatch(marker):
        return "close", "".join(words)
    for i, w in enumerate(words):
        if w in _OPEN_WORDS or w in _CLOSE_WORDS:
            kind = "open" if w in _OPEN_WORDS else "close"
            return kind, "".join(words[:i] + words[i + 1:])
    return "open", "".join(words)


def _says_close(marker: str) -> bool:
    return (marker.startswith(("</", "[/")) or bool(_BAR_CLOSE.fullmatch(marker))
            or any(w in _CLOSE_WORDS for w in _words(marker)))


def _says_open(marker: str) -> bool:
    return any(w in _OPEN_WORDS for w in _words(marker))


def pairs_by_name(markers: tuple[str, ...]) -> list[tuple[str, str]]:
    """(opener, closer) pairs among ``markers`` whose names match, like <think>/</think>."""
    opens: dict[str, str] = {}
    closes: dict[str, str] = {}
    for m in markers:
        kind, name = _name_parts(m)
        # An empty name is a bare word: gpt-oss's <|start|> ... <|end|>.
        if name not in _NOT_TURNS and (name or _words(m)):
            (opens if kind == "open" else closes).setdefault(name, m)
    return sorted((opens[k], closes[k]) for k in opens.keys() & closes.keys() if opens[k] != closes[k])


# --- turn markers --------------------------------------------------------------------------

@dataclass(frozen=True)
class TurnMarkers:
    """How a template opens and closes a turn.

    ``alternatives`` close a turn in place of ``closer``; ``nests`` is true when the template
    itself nests these markers (generic tag systems such as <|open|>name ... <|close|>name).
    Role-token templates open each role's turn with its own token: ``openers`` are the other
    roles' tokens (Phi-3's <|user|> and <|system|> beside <|assistant|>), ``open_ended`` the
    openers whose turn the next opener ends without a closer (DeepSeek's <｜User｜>), and
    ``open_at_end`` the openers whose last turn the template leaves open in every probe, on
    purpose (a message to be continued): only a turn left open before another opens is then
    a defect. ``orphans`` is false where a closer with no turn open proves nothing: the probes
    show no tool message, so a tool result's own opener (DeepSeek's <｜tool▁outputs▁begin｜>)
    is unknown.
    """

    opener: str
    closer: str
    alternatives: tuple[str, ...] = ()
    nests: bool = False
    openers: tuple[str, ...] = ()
    open_ended: tuple[str, ...] = ()
    open_at_end: tuple[str, ...] = ()
    orphans: bool = True

    @property
    def all_openers(self) -> tuple[str, ...]:
        return (self.opener, *self.openers)

    @property
    def closers(self) -> tuple[str, ...]:
        return (self.closer, *self.alternatives)


Samples = list[tuple[tuple[str, ...], str]]


def turn_markers(source: str, markers: tuple[str, ...], samples: Samples) -> list[TurnMarkers]:
    """The pairs that wrap message contents in probe renderings ``samples`` (roles,
    rendering): turn markers, as opposed to section tags like <think> inside a turn.
    Pairs come first; a template without one may open each role's turn with its own token."""
    if not samples:
        return []
    return (_paired_turns(source, markers, samples)
            or _role_turns(source, _with_rendered(markers, samples), samples))


def _with_rendered(markers: tuple[str, ...], samples: Samples) -> tuple[str, ...]:
    """``markers`` plus the tag-like strings of the probe renderings: tokens a template builds
    at render time (Hy3's '<｜hy_User{}｜>'.format(...)) are markers only once rendered."""
    found = set(markers)
    for _, text in samples:
        for rx in _MARKER_RES:
            found.update(rx.findall(text))
    return tuple(sorted(found, key=lambda m: (-len(m), m)))


def _paired_turns(source: str, markers: tuple[str, ...], samples: Samples) -> list[TurnMarkers]:
    """Opener/closer pairs: matched by name and wrapping the contents of some probe (its last
    message may be left open), or any two markers wrapping every message of every probe."""
    named = pairs_by_name(markers)
    found = [(o, c) for o, c in named
             if any(_encloses(o, c, len(r), t) or _encloses(o, c, len(r), t, last_open=True)
                    for r, t in samples)]
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
        turn = TurnMarkers(o, c, alternatives, nests)
        # A template that leaves the last message's turn open in every probe does so on purpose.
        if all(_last_left_open(turn, o, r, t) for r, t in samples):
            turn = TurnMarkers(o, c, alternatives, nests, open_at_end=(o,))
        turns.append(turn)
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


def _encloses(opener: str, closer: str, n: int, text: str, last_open: bool = False) -> bool:
    """Whether each of the ``n`` sentinel contents in ``text`` sits inside opener ... closer;
    with ``last_open``, whether each but the last does (at least one) and the last follows an
    opener that nothing closes (a template that leaves the last turn open)."""
    if last_open and n < 2:
        return False
    for i in range(n):
        at = text.find(sentinel(i))
        before = text[:at]
        o, c = before.rfind(opener), before.rfind(closer)
        next_o, next_c = text.find(opener, at), text.find(closer, at)
        if last_open and i == n - 1:
            return o >= 0 and c < o and next_c < 0 and next_o < 0
        if o < 0 or c > o or next_c < 0 or 0 <= next_o < next_c:
            return False
    return True


def _last_left_open(turn: TurnMarkers, opener: str, roles: tuple[str, ...], text: str) -> bool:
    """Whether the last message of a probe sits in a turn ``opener`` opened and nothing closes."""
    at = text.rfind(sentinel(len(roles) - 1))
    o = text.rfind(opener, 0, at)
    return (o >= 0 and not any(c in text[o:] for c in turn.closers)
            and not any(m in text[at:] for m in turn.all_openers))


# --- role tokens ---------------------------------------------------------------------------

def _messages(roles: tuple[str, ...], text: str) -> list[tuple[int, int, int]]:
    """(glue start, content start, content end) of each message of a probe rendering: the
    glue before a message runs from the previous message's content (or the text's start)."""
    out, pos = [], 0
    for i in range(len(roles)):
        at = text.find(sentinel(i), pos)
        out.append((pos, at, at + len(sentinel(i))))
        pos = at + len(sentinel(i))
    return out


def _role_tokens(candidates: list[str], samples: Samples) -> dict[str, frozenset[str]]:
    """Markers that head turns of some roles: each in the glue before every message that starts
    a turn of those roles, never before a message of another role, at most once per glue (the
    text before the first message may hold more: a default system turn)."""
    heads: dict[str, frozenset[str]] = {}
    for m in candidates:
        starts: dict[str, bool] = {}
        after: set[str] = set()  # roles of the messages m stands before (not first)
        for roles, text in samples:
            for i, (g, a, _) in enumerate(_messages(roles, text)):
                glue = text[g:a]
                if i == 0 or roles[i - 1] != roles[i]:
                    starts[roles[i]] = starts.get(roles[i], True) and m in glue
                if i and m in glue:
                    after.add(roles[i] if glue.count(m) == 1 else "")
        headed = frozenset(r for r, v in starts.items() if v)
        if headed and after <= headed:
            heads[m] = headed
    return heads


# Words of role tokens. One that is not shaped as a closer (</user>, <|/user|>) opens the next
# turn even where it is written after every message of a role: DeepSeek's <｜Assistant｜>
# after each user message, or a template that opens the assistant turn after every user message.
_ROLE_WORDS = frozenset({"user", "assistant", "system", "model", "human", "bot", "ai", "gpt",
                         "tool", "prompt", "answer", "response"})


def _names_role(marker: str) -> bool:
    return not marker.startswith(("</", "[/", "<|/")) and any(
        w in _ROLE_WORDS for w in re.split(r"[^a-z]+", marker.lower()))


def _role_turns(source: str, markers: tuple[str, ...], samples: Samples) -> list[TurnMarkers]:
    """Role tokens (<|user|>, <|assistant|>) with the closer that ends their turns: the marker
    after every message of a role, before the next turn opens, in every probe. A role whose
    turns nothing closes is open-ended: the next role token ends it. One closed role at least."""
    sections = {m for pair in pairs_by_name(markers) for m in pair}
    candidates = [m for m in markers if m not in sections and not _says_close(m)
                  and _name_parts(m)[1] not in _NOT_TURNS]
    heads = _role_tokens(candidates, samples)

    def reach(m: str) -> int:  # the token farthest before the content heads the turn
        return min(t.rfind(m, 0, t.find(sentinel(0))) for _, t in samples if m in t)

    # Tokens of one role first: a closer the template writes before every next turn (Apex's
    # <|eos|><|user|>) also stands before messages of several roles.
    openers: dict[str, frozenset[str]] = {}
    for m in sorted(heads, key=lambda m: (len(heads[m]), reach(m), m)):
        if not any(heads[m] & rs for rs in openers.values()):
            openers[m] = heads[m]
    if not openers:
        return []
    spans = _turn_spans(tuple(openers), samples)
    closer_of: dict[str, set[str]] = {}
    for o in openers:
        mid = [span for opener, span, last in spans if opener == o and not last]
        if mid:
            closer_of[o] = {m for m in markers if m not in openers and m not in sections
                            and not _names_role(m)
                            and all(m in s for s in mid)}
    votes = [c for cs in closer_of.values() for c in cs]
    if not votes:
        return []
    # The closer most roles share, then the one nearest after the content.
    def nearest(c: str) -> int:
        return min(s.find(c) for _, s, last in spans if c in s and not last)

    closer = min(set(votes), key=lambda c: (-votes.count(c), nearest(c), c))
    alternatives = tuple(a for a in alternative_closers(source, closer, markers) if a not in openers)
    closed = [o for o in openers if closer in closer_of.get(o, ())]
    ended = tuple(o for o in openers if o not in closed)
    last_spans = {o: [s for opener, s, last in spans if opener == o and last] for o in closed}
    # A last turn the template's own probes leave open (Step-Audio leaves the assistant's open,
    # not the user's, behind the same <|BOT|>) is left open on purpose: a message to continue.
    at_end = tuple(o for o in closed
                   if any(not any(c in s for c in (closer, *alternatives)) for s in last_spans[o]))
    primary = next((o for o in closed if "assistant" in openers[o]), closed[0])
    turn = TurnMarkers(primary, closer, alternatives, False,
                       tuple(o for o in openers if o != primary), ended, at_end, orphans=False)
    # The template's own renderings must balance: no close without an open, no turn opened
    # while a closed-role turn is still open.
    for _, text in samples:
        problem = unbalanced(text, [turn])
        if problem and not problem[0].startswith("never_closed"):
            return []
    return [turn]


def why_no_turn_markers(source: str, markers: tuple[str, ...], samples: Samples,
                        failures: list[str] | tuple[str, ...] = ()) -> str:
    """Why `turn_markers` finds none, in words a user can check against the template;
    ``failures`` are the probe errors (`Structure.failures`), named when no probe rendered."""
    if _parse(source) is None:
        return "the template does not parse as Jinja"
    if not samples:
        if not failures:
            return "the template refused every probe conversation"
        why = failures[0].split(": ", 1)[-1].splitlines()[0]
        if why.startswith("sentinel content missing"):
            return "the template does not write message contents as given in any probe conversation"
        return f"the template refused every probe conversation: {clip(why, 200)}"
    markers = _with_rendered(markers, samples)
    roles, text = max(samples, key=lambda s: (len(s[0]), s[0][:2] == ("user", "assistant")))
    msgs = _messages(roles, text)
    between = text[msgs[0][2]:msgs[1][1]] if len(msgs) > 1 else text[msgs[0][2]:]
    glue: list[str] = []  # the template's own text around and between messages
    for r, t in samples:
        spans = _messages(r, t)
        glue += [t[g:a] for g, a, _ in spans] + [t[spans[-1][2]:]]
    example = clip(between, 60)
    if not any(m in g for m in markers if _name_parts(m)[1] not in _NOT_TURNS for g in glue):
        return ("the template writes no tag-like marker (<|x|>, <x>, [X]) around messages, "
                f"roles are plain text: between two messages it writes {example!r}")
    sections = {m for pair in pairs_by_name(markers) for m in pair}
    heads = _role_tokens([m for m in markers if m not in sections and not _says_close(m)
                          and _name_parts(m)[1] not in _NOT_TURNS], samples)
    tokens = ", ".join(sorted(heads, key=lambda m: text.find(m))[:4])
    if heads and not any("assistant" in roles for roles in heads.values()):
        return (f"no marker opens every assistant turn (role tokens: {tokens}; an assistant "
                f"message not after a user message gets none): between two messages the template writes {example!r}")
    if heads:
        return (f"turns have no closing marker: no marker closes every turn the role tokens "
                f"({tokens}) open; the next role token ends a turn, so none can be left open")
    return f"no marker wraps every message the same way: between two messages the template writes {example!r}"


def _turn_spans(openers: tuple[str, ...], samples: Samples) -> list[tuple[str, str, bool]]:
    """(opener, text after the turn's last content up to the next opener, whether the turn
    ends the probe) for every turn an opener heads in the probe renderings."""
    out = []
    for roles, text in samples:
        msgs = _messages(roles, text)
        for i, (g, a, b) in enumerate(msgs):
            heads = [(text.rfind(o, g, a), o) for o in openers if text.rfind(o, g, a) >= 0]
            if not heads:
                continue
            opener = max(heads)[1]
            j = i
            while (j + 1 < len(msgs) and roles[j + 1] == roles[i]
                   and not any(o in text[msgs[j + 1][0]:msgs[j + 1][1]] for o in openers)):
                j += 1
            end = msgs[j][2]
            if j + 1 == len(msgs):
                out.append((opener, text[end:], True))
            else:
                nxt = text[end:msgs[j + 1][1]]
                cut = min((nxt.find(o) for o in openers if o in nxt), default=len(nxt))
                out.append((opener, nxt[:cut], False))
    return out


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
    return [(pos, delta) for pos, delta, _ in _token_events(text, (opener,), closers)]


def _token_events(text: str, openers: tuple[str, ...], closers: tuple[str, ...]) -> list[tuple[int, int, str]]:
    events = [(m.start(), 1, o) for o in openers for m in re.finditer(re.escape(o), text)]
    for tok in closers:
        events += [(m.start(), -1, tok) for m in re.finditer(re.escape(tok), text)]
    return sorted(events)


def _depth_after(text: str, t: TurnMarkers) -> int:
    return sum(delta for _, delta in _events(text, t.opener, (t.closer, *t.alternatives)))


def _max_depth(text: str, opener: str, closers: tuple[str, ...]) -> int:
    depth = top = 0
    for _, delta in _events(text, opener, closers):
        depth += delta
        top = max(top, depth)
    return top


_DISPATCH = frozenset({"role", "type"})
_TYPE_TESTS = frozenset({"string", "mapping", "iterable", "sequence", "none"})


def alternative_closers(source: str, closer: str, markers: tuple[str, ...]) -> tuple[str, ...]:
    """Markers the template ends a turn with instead of ``closer``, chosen in a conditional.

    Llama 3.1 style ``{% if tool_calls %}...<|eom_id|>{% else %}...<|eot_id|>{% endif %}`` or
    ``'<|eom|>' if more else '<|eot|>'``: where one branch ends with the closer, the marker the
    other branch ends with closes the turn another way. An if/elif chain counts when no test
    reads a role or a content type (gpt-oss ends an assistant message with <|call|>,
    <|return|> or <|end|>): a chain on those ends different turns or sections. Section tags paired by name (``</tool_response>``)
    never close turns.
    """
    tree = _parse(source)
    if tree is None:
        return ()
    sections = {m for pair in pairs_by_name(markers) for m in pair}

    def last_marker(branch) -> str | None:
        text = "\n".join(s for n in branch for s in _strings(n))
        ends = [(text.rfind(m) + len(m), len(m), m) for m in markers if m in text]
        return max(ends)[2] if ends else None

    def on_role(test) -> bool:  # a dispatch on the role or the content's type
        parts = [test, *test.find_all(nodes.Node)]  # find_all skips the node itself
        return any(isinstance(n, nodes.Name) and n.name in _DISPATCH
                   or isinstance(n, nodes.Getattr) and n.attr in _DISPATCH
                   or isinstance(n, nodes.Const) and n.value in _DISPATCH
                   or isinstance(n, nodes.Test) and n.name in _TYPE_TESTS for n in parts)

    out: set[str] = set()
    for node in tree.find_all((nodes.If, nodes.CondExpr)):
        if isinstance(node, nodes.If):
            if not node.else_ or (node.elif_ and any(on_role(b.test) for b in (node, *node.elif_))):
                continue
            branches = [node.body, *(b.body for b in node.elif_), node.else_]
        else:
            if node.expr2 is None:
                continue
            branches = [[node.expr1], [node.expr2]]
        lasts = {last_marker(b) for b in branches}
        if closer in lasts:
            out |= {m for m in lasts if m and m != closer and m not in sections}
    return tuple(sorted(out))


def unbalanced(text: str, turns: list[TurnMarkers]) -> tuple[str, str] | None:
    """The first turn-marker imbalance in ``text`` as (key, description), or None. A turn opened
    by an ``open_ended`` token ends where the next opens; one opened by an ``open_at_end`` token
    may stay open at the end of the text."""
    for t in turns:
        depth, current = 0, t.opener
        for pos, delta, tok in _token_events(text, t.all_openers, t.closers):
            if delta > 0 and depth > 0 and current in t.open_ended:
                depth -= 1
            previous = current
            if delta > 0:
                current = tok
            depth += delta
            if depth < 0 and not t.orphans:
                depth = 0
            if depth < 0:
                return (f"orphan_close:{t.closer}",
                        f"a closing marker at offset {pos} closes a turn that {t.opener!r} never opened"
                        if not t.openers else
                        f"{tok!r} at offset {pos} closes a turn that no opener opened")
            if depth > 1 and not t.nests:
                if not t.openers:
                    return (f"reopened:{t.opener}",
                            f"{t.opener!r} at offset {pos} opens a turn while the previous one is still open")
                return (f"reopened:{previous}",
                        f"{tok!r} at offset {pos} opens a turn while the {previous!r} turn is still open")
        if depth > 0 and current not in t.open_ended and current not in t.open_at_end:
            return f"never_closed:{current}", f"{current!r} opens a turn that {t.closer!r} never closes"
    return None
