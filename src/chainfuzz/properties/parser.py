"""Parser properties: the text a model generates, read back into content, reasoning and tool
calls by the parsers a server runs (`--parser`), whole and streamed.

Inputs are replies a model could generate (`strategies.assistant_replies`), written by the
target's own template (`Context.generation`): what follows the generation prompt, up to the
end-of-turn token, is the text a parser is given. This generalises llama.cpp's ``test-chat``
render-then-parse check from hand-written messages to generated ones.

Comparisons ignore whitespace around content and reasoning (templates trim, parsers strip:
a design choice either way) and compare arguments as JSON values (key order and spacing are
the parser's). A reply that spells one of the template's markers inside its own text is
ambiguous to any parser (the format has no escape for it): what only such replies reach is a
warning keyed ``lenient[marker_in_text]:...``, never an error (`chainfuzz.Failure.lenient`); so
are a template's Python repr of an argument, a reply without reasoning read as reasoning, and a
difference every implementation of the run shares (`LENIENT`).
"""

from __future__ import annotations

import json
import re

from hypothesis import strategies as st

import chainfuzz
from chainfuzz import Failure, ParserCrash, Unsupported, assume, each, messages, strategies


def _replies(ctx):
    return strategies.assistant_replies(ctx.markers)


def _streams(ctx):
    return st.tuples(_replies(ctx), strategies.cuts()).map(lambda t: {**t[0], "grouping": t[1]})


# --- comparing messages ------------------------------------------------------------------------

def _same_json(a, b) -> bool:
    """JSON equality: numbers by value (1 and 1.0 agree), but true is not 1."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return a == b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same_json(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same_json(x, y) for x, y in zip(a, b))
    return type(a) is type(b) and a == b


_INVALID = object()


def _arguments(text):
    """Arguments text as a JSON value (`_INVALID` when it is not JSON)."""
    if isinstance(text, (dict, list)):
        return text
    try:
        return json.loads(text) if isinstance(text, str) and text.strip() else {}
    except ValueError:
        return _INVALID


def _view(content, reasoning, calls) -> dict:
    """A message as the properties compare it: stripped texts, (name, arguments value) calls."""
    return {"content": (content or "").strip(), "reasoning": (reasoning or "").strip(),
            "calls": [(name, _arguments(args)) for name, args in calls]}


def _parsed(msg) -> dict:
    return _view(msg.content, msg.reasoning, [(c.name, c.arguments) for c in msg.tool_calls])


def _difference(got: dict, want: dict, fields=("content", "reasoning", "calls")) -> tuple[str, str] | None:
    """The first field where ``got`` differs from ``want``, as (key, description)."""
    for field in fields:
        if field != "calls":
            if got[field] != want[field]:
                return field, f"{field} {got[field]!r}, expected {want[field]!r}"
            continue
        g, w = got["calls"], want["calls"]
        if len(g) != len(w):
            kind = "lost" if len(g) < len(w) else "extra"
            return f"tool_calls:{kind}", f"{len(g)} tool calls, expected {len(w)}"
        for i, ((gn, ga), (wn, wa)) in enumerate(zip(g, w)):
            if gn != wn:
                return "tool_call:name", f"tool call {i} is named {gn!r}, expected {wn!r}"
            if ga is _INVALID:
                return "tool_call:invalid_json", f"tool call {i}'s arguments are not JSON"
            if not _same_json(ga, wa):
                return "tool_call:arguments", f"tool call {i}'s arguments are {ga!r}, expected {wa!r}"
    return None


def _spells_marker(ctx, case: dict) -> bool:
    """Whether the reply's own text spells a marker of the template (ambiguous to any parser)."""
    msg = case["message"]
    texts = [msg.get("content") or "", msg.get("reasoning_content") or ""]
    for call in msg.get("tool_calls") or ():
        texts.extend(messages.json_strings(call["function"]["arguments"]))
    return any(ctx.has_marker(t) for t in texts)


# A property's own lenient rules (`Failure.lenient`): replies no parser can be held to.
LENIENT = {
    "marker_in_text": "the reply spells a marker of the template, which no parser can tell from the format's own",
    "python_repr": "the template writes a Python repr (None, True, False) of an argument, which a parser "
                   "cannot read back as JSON (template.no_repr_leak's finding)",
    "no_reasoning": "the reply has no reasoning, and the parser reads its text as reasoning: a reasoning "
                    "parser may assume the model always thinks first",
    "every_parser": "every parser implementation of the run reads the text back the same way, so the "
                    "template's rendering of the reply is the likelier culprit",
}


def _fail(ctx, case: dict, parser, key: str, message: str, lenient: str | None = None, **kw) -> None:
    """Raise the finding; on a reply a lenient rule covers (`LENIENT`; a marker in its text is
    checked here, the others by the caller), a warning keyed ``lenient[rule]:...``, which
    shrinking may leave for a reply no rule covers, where it becomes the error it is."""
    if lenient is None and _spells_marker(ctx, case):
        lenient = "marker_in_text"
    if lenient:
        raise Failure(f"{parser.name}: {message} ({LENIENT[lenient]})", key=f"{parser.name}:{key}",
                      lenient=lenient, **kw)
    raise Failure(f"{parser.name}: {message}", key=f"{parser.name}:{key}", **kw)


def _writes_repr(text: str, case: dict) -> bool:
    """Whether the generated text holds the Python repr of a null or boolean argument."""
    leaves = {repr(v) for c in case["message"].get("tool_calls") or ()
              for v in _leaves(c["function"]["arguments"]) if v is None or isinstance(v, bool)}
    return any(re.search(rf"\b{word}\b", text) for word in leaves)


def _leaves(value):
    if isinstance(value, dict):
        for v in value.values():
            yield from _leaves(v)
    elif isinstance(value, list):
        for v in value:
            yield from _leaves(v)
    else:
        yield value


def _rule(text: str, case: dict, written: str = "", got: str = "") -> str | None:
    """The lenient rule a difference on the generated ``text`` falls under, if any: the
    template wrote a Python repr of an argument, or it wrote no reasoning (``written``) and
    the parser read some (``got``)."""
    if _writes_repr(text, case):
        return "python_repr"
    if not written and got:
        return "no_reasoning"
    return None


def _parse(ctx, case, parser, text, request):
    try:
        return parser.parse(text, request)
    except ParserCrash as exc:
        _fail(ctx, case, parser, f"raises:{str(exc).split(':', 1)[0]}", f"raises on the text: {exc}",
              _rule(text, case), observed=str(exc), expected=text)


def _stream(ctx, case, parser, chunks, request):
    try:
        return parser.stream(chunks, request)
    except ParserCrash as exc:
        _fail(ctx, case, parser, f"stream_raises:{str(exc).split(':', 1)[0]}", f"raises while streaming: {exc}",
              _rule("".join(c.text for c in chunks), case), observed=str(exc), expected=[c.text for c in chunks])


def _generation(ctx, case: dict):
    """The reply as generated (`Context.generation`). Calls in a reply to a request that
    offered no tools are not parsed by servers (vLLM returns them as content): not an input."""
    assume(case["tools"] or not case["message"].get("tool_calls"), "tool calls, but no tools offered")
    return ctx.generation(case["message"], case["tools"])


def _expected(ctx, case: dict) -> tuple[dict, tuple[str, ...], set[str]]:
    """What the reply says; the fields to compare: those the template wrote into the text and
    the empty ones (a parser must not invent them; a field whose removal does not change the
    rendering, such as Llama 3.1's content beside a tool call, is not the parser's to recover);
    and the fields the template wrote something for (an empty reasoning may still be
    ``<think></think>``)."""
    msg = case["message"]
    calls = [(c["function"]["name"], c["function"]["arguments"]) for c in msg.get("tool_calls") or ()]
    want = _view(msg.get("content"), msg.get("reasoning_content"), calls)
    user = {"role": "user", "content": "What now?"}
    full = ctx.render_or_skip([user, msg], tools=case["tools"])
    writes = set()
    for field, key, empty in (("content", "content", ""), ("reasoning", "reasoning_content", None),
                              ("calls", "tool_calls", None)):
        if key not in msg:
            continue
        without = {k: v for k, v in msg.items() if k != key}
        if empty is not None:
            without[key] = empty
        try:
            if ctx.render([user, without], tools=case["tools"]) != full:
                writes.add(field)
        except chainfuzz.RenderError:
            writes.add(field)
    fields = tuple(f for f in ("content", "reasoning", "calls") if f in writes or not want[f])
    return want, fields, writes


def _accumulate(deltas) -> tuple[dict, list, list[str]]:
    """A stream's final message (`_view`), its tool calls' indices in order, and each call's
    arguments as the stream spelled them (joined fragments)."""
    content, reasoning, calls = [], [], {}
    for d in deltas:
        content.append(d.content or "")
        reasoning.append(d.reasoning or "")
        for t in d.tool_calls:
            call = calls.setdefault(t.index, {"name": None, "args": []})
            if t.name:
                call["name"] = (call["name"] or "") + t.name
            call["args"].append(t.arguments or "")
    ordered = [calls[i] for i in sorted(calls)]
    args = ["".join(c["args"]) for c in ordered]
    return _view("".join(content), "".join(reasoning),
                 [(c["name"], a) for c, a in zip(ordered, args)]), sorted(calls), args


# --- the properties ----------------------------------------------------------------------------

@chainfuzz.property("parser.roundtrip", inputs=_replies, applies_to="parser")
def roundtrip(ctx, case):
    """An assistant reply (content, reasoning, 0-3 tool calls) rendered by the model's template
    and parsed back from the generated part gives the reply: the same content and reasoning,
    and the same tool calls in order, arguments equal as JSON. Only what the template writes
    is compared."""
    gen = _generation(ctx, case)
    want, fields, writes = _expected(ctx, case)
    written = want["reasoning"] if "reasoning" in writes else ""

    def check_one(parser):
        if "reasoning" in writes and not parser.splits_reasoning:
            raise Unsupported(f"{parser.name} leaves reasoning in content by its configuration")
        got = _parsed(_parse(ctx, case, parser, gen.text, gen.request))
        if diff := _difference(got, want, fields):
            _fail(ctx, case, parser, diff[0], diff[1], _rule(gen.text, case, written, got["reasoning"]),
                  observed=got, expected=want)

    try:
        each(ctx.parsers, check_one)
    except Failure as failure:
        if (failure.lenient is None and len({p.implementation for p in ctx.parsers}) > 1
                and set(failure.failing) == {p.name for p in ctx.parsers}):
            failure.lenient = "every_parser"
            failure.message += f" ({LENIENT['every_parser']})"
        raise


@chainfuzz.property("parser.stream_split_invariant", inputs=_streams, applies_to="parser")
def stream_split_invariant(ctx, case):
    """The generated text, tokenised by the model's tokenizer and streamed to the parser in any
    grouping of tokens into deltas (one delta, one token each, several tokens a delta, cuts
    inside multi-byte characters and inside markers), gives the same final content,
    reasoning and tool calls as the whole text parsed at once."""
    gen = _generation(ctx, case)
    chunks = ctx.stream_chunks(gen.text, case["grouping"])

    def check_one(parser):
        whole = _parsed(_parse(ctx, case, parser, gen.text, gen.request))
        streamed, _, _ = _accumulate(_stream(ctx, case, parser, chunks, gen.request))
        if diff := _difference(streamed, whole):
            _fail(ctx, case, parser, f"split:{diff[0]}", f"streamed in {len(chunks)} deltas: {diff[1]}",
                  _rule(gen.text, case), observed=streamed, expected=whole)

    each(ctx.parsers, check_one)


@chainfuzz.property("parser.delta_protocol", inputs=_streams, applies_to="parser")
def delta_protocol(ctx, case):
    """Streamed deltas keep OpenAI's protocol: each tool call's id and name come exactly once,
    before its arguments; indices start at 0 and each new call takes the next one; the
    arguments of each call join into valid JSON by the end; no marker of the template reaches
    content or reasoning unless the reply wrote it; text held back is flushed by the end."""
    gen = _generation(ctx, case)
    chunks = ctx.stream_chunks(gen.text, case["grouping"])
    msg = case["message"]
    _, _, writes = _expected(ctx, case)
    rule = _rule(gen.text, case)

    def fail(parser, key: str, message: str, **kw) -> None:
        _fail(ctx, case, parser, key, message, rule, **kw)

    def check_one(parser):
        if "reasoning" in writes and not parser.splits_reasoning:
            raise Unsupported(f"{parser.name} leaves reasoning (and its markers) in content by its configuration")
        deltas = _stream(ctx, case, parser, chunks, gen.request)
        ids, names, seen = {}, {}, []
        for n, d in enumerate(deltas):
            for t in d.tool_calls:
                if t.index not in seen:
                    if t.index != len(seen):
                        fail(parser, "index_gap", f"delta {n} opens tool call index {t.index} "
                             f"after {len(seen)} calls", observed=[x.as_json() for x in deltas])
                    seen.append(t.index)
                for field, value, counts in (("id", t.id, ids), ("name", t.name, names)):
                    if value:
                        counts[t.index] = counts.get(t.index, 0) + 1
                        if counts[t.index] > 1:
                            fail(parser, f"{field}_repeated",
                                 f"delta {n} sends tool call {t.index}'s {field} again",
                                 observed=[x.as_json() for x in deltas])
                if t.arguments and t.index not in names:
                    fail(parser, "arguments_before_name",
                         f"delta {n} sends tool call {t.index}'s arguments before its name",
                         observed=[x.as_json() for x in deltas])
        streamed, indices, spelled = _accumulate(deltas)
        for i, (name, args), text in zip(indices, streamed["calls"], spelled):
            if not name:
                fail(parser, "name_missing", f"tool call {i} never got a name",
                     observed=[x.as_json() for x in deltas])
            if i not in ids:
                fail(parser, "id_missing", f"tool call {i} never got an id",
                     observed=[x.as_json() for x in deltas])
            if not text.strip():
                fail(parser, "arguments_empty",
                     f"tool call {i}'s streamed arguments are empty at the end of the stream (not even {{}})",
                     observed=[x.as_json() for x in deltas])
            if args is _INVALID:
                fail(parser, "arguments_invalid_json",
                     f"tool call {i}'s streamed arguments are not JSON at the end of the stream",
                     observed=[x.as_json() for x in deltas])
        for field, own in (("content", msg.get("content") or ""), ("reasoning", msg.get("reasoning_content") or "")):
            leaked = [m for m in ctx.markers if m in streamed[field] and m not in own and len(m) > 2]
            if leaked:
                fail(parser, f"marker_leak:{field}",
                     f"the marker {leaked[0]!r} reached the streamed {field}", observed=streamed[field])
        whole = _parsed(_parse(ctx, case, parser, gen.text, gen.request))
        for field in ("content", "reasoning"):
            got, full = streamed[field], whole[field]
            if got != full and full.startswith(got):
                fail(parser, f"held_back:{field}",
                     f"the stream ends with {full[len(got):]!r} of the {field} never sent", observed=got,
                     expected=full)

    each(ctx.parsers, check_one)


@chainfuzz.property("parser.impls_agree", inputs=_replies, applies_to="parser")
def impls_agree(ctx, case):
    """The parser implementations of the run (vLLM, transformers, llama.cpp) parse the same
    generated text to the same message."""
    assume(len({p.implementation for p in ctx.parsers}) > 1, "one parser implementation only")
    gen = _generation(ctx, case)
    ref = ctx.parsers[0]
    want = _parsed(_parse(ctx, case, ref, gen.text, gen.request))

    reply, _, writes = _expected(ctx, case)
    written = reply["reasoning"] if "reasoning" in writes else ""

    def check_one(parser):
        if parser is ref:
            return
        if parser.splits_reasoning != ref.splits_reasoning:
            raise Unsupported(f"{parser.name} and {ref.name} are configured differently for reasoning")
        got = _parsed(_parse(ctx, case, parser, gen.text, gen.request))
        if diff := _difference(got, want):
            _fail(ctx, case, parser, f"disagrees_with:{ref.name}:{diff[0]}", f"differs from {ref.name}: {diff[1]}",
                  _rule(gen.text, case, written, got["reasoning"] or want["reasoning"]), observed=got, expected=want)

    each(ctx.parsers, check_one)
