"""Chat-template invariants. Each is one function registered by its public id.

Every property renders through ``ctx`` (transformers' own renderer, sandboxed) and raises
``chainfuzz.Failure`` when its invariant does not hold. Properties other than
``template.renders`` skip inputs the template refuses, so a crash is charged once.
"""

from __future__ import annotations

import datetime as dt
import html
import json
import random
import re

from hypothesis import strategies as st

import chainfuzz
from chainfuzz import RenderError, assume
from chainfuzz import strategies as cst
from chainfuzz.messages import (BASIC_ROLES, all_strings, error_key, excerpt, expected_texts, json_escaped,
                                json_strings)


def _cases(ctx):
    """Conversations in every shape, with the target's own markers in the text."""
    return cst.conversations(ctx.markers)


def _cases_with_flag(ctx):
    """The whole space, with and without a generation prompt: template.renders' inputs."""
    return st.tuples(_cases(ctx), st.booleans()).map(lambda t: {**t[0], "add_generation_prompt": t[1]})


def _accepted_cases_with_flag(ctx):
    """Conversations the template accepts (`Context.conversations`), with and without a
    generation prompt: the inputs content_preserved, prefix_stable, no_repr_leak,
    deterministic and engines_agree share, so one drawn case serves them all. Two messages at
    least (prefix_stable compares prefixes), and marker fragments but no whole marker in the
    text: content_preserved exempts such texts and prefix_stable skips them."""
    txt = cst.text(ctx.markers, whole_markers=False)
    return st.tuples(ctx.conversations(txt=txt, min_messages=2), st.booleans()).map(
        lambda t: {**t[0], "add_generation_prompt": t[1]})


def _edges(ctx):
    """template.renders' boundary cases (`chainfuzz.strategies.edge_conversations`), the whole
    space: without a generation prompt, and with one where the last message awaits a reply."""
    cases = cst.edge_conversations(ctx.markers)
    return [{**c, "add_generation_prompt": False} for c in cases] + [
        {**c, "add_generation_prompt": True} for c in cases if c["messages"][-1]["role"] == "user"]


def _accepted_edges(ctx):
    """The boundary cases the template accepts (`Context.edge_conversations`)."""
    return [{**c, "add_generation_prompt": False} for c in ctx.edge_conversations()]


def _render_case(ctx, case, *, skip=True, **kw):
    render = ctx.render_or_skip if skip else ctx.render
    return render(case["messages"], tools=case.get("tools"),
                  add_generation_prompt=case.get("add_generation_prompt", False), **kw)


# --- template.renders --------------------------------------------------------------------

_UNBOUNDED = "MemoryLimit:the output or the memory of a render exceeds its limit"


@chainfuzz.property("template.renders", inputs=_cases_with_flag, severity="error", examples=_edges)
def renders(ctx, case):
    """Every schema-valid conversation renders, or the template refuses it deliberately with
    raise_exception (recorded as a constraint, warning tier). TypeError, UndefinedError,
    timeouts and output blow-ups are errors."""
    try:
        _render_case(ctx, case, skip=False)
    except RenderError as err:
        if err.deliberate:
            raise chainfuzz.Failure(
                f"template refuses the conversation: {err.message}",
                key=error_key("constraint", err.message), observed=err.message,
                expected="a rendering", severity="warning") from None
        # Output past the limit and a MemoryError are one defect, text without bound: which
        # limit a render meets first depends on the memory the process holds at the time.
        key = (_UNBOUNDED if err.kind in ("output_limit", "memory_limit")
               else error_key(err.exc_type, err.message, err.site))
        raise chainfuzz.Failure(
            f"render failed: {err}", key=key,
            observed=str(err), expected="a rendering, or a deliberate raise_exception") from None


# --- template.content_preserved ----------------------------------------------------------

def _find_text(out: str, text: str, structured: bool, start: int,
               writes=lambda t: False) -> tuple[int, int, str | None]:
    """(start, end, defect) of ``text`` in ``out`` at or after ``start``; defect None if verbatim.
    A changed form the template writes itself (`Context.template_writes`: "<" of " <" inside
    "<start_of_turn>") proves nothing either way: the defect is then "ambiguous", no finding."""
    forms = [text, json_escaped(text)] if structured else [text]
    for form in forms:
        at = out.find(form, start)
        if at >= 0:
            return at, at + len(form), None
    py_repr = repr(text)[1:-1] if "{'" in out or "['" in out else None
    for form, defect in ((py_repr, "python_repr"), (json_escaped(text), "json_encoded"),
                         (html.escape(text), "html_escaped"), (text.strip(), "trimmed")):
        if form and form != text and out.find(form, start) >= 0:
            at = out.find(form, start)
            return (at, at + len(form), "ambiguous") if writes(form) else (at, at + len(form), defect)
    if text in out:
        return -1, -1, "reordered"
    return -1, -1, "dropped"


_DEFECT_WORDS = {
    "reordered": "appears out of order",
    "python_repr": "is written as part of a Python repr",
    "json_encoded": "is re-encoded as a JSON string",
    "html_escaped": "is HTML-escaped",
    "trimmed": "has its surrounding whitespace trimmed",
    "dropped": "is missing from the output",
}


_JSON = json.JSONDecoder()
_MOVABLE = ("system", "developer")  # roles a template may hoist by design (DeepSeek, Mistral-Nemo)


def _canonical(value) -> str:
    """One spelling of a JSON value, so that values compare as structures (True is not 1)."""
    return json.dumps(value, sort_keys=True, ensure_ascii=False)


def _objects(msg: dict) -> list[tuple[str, object]]:
    """(field, value) of each JSON object a message carries: tool-call arguments given as an
    object, and a content that is a JSON value rather than text (a tool result as an object)."""
    content = msg.get("content")
    found = [("content", content)] if any(s for f, _, s in expected_texts(msg) if f == "content") else []
    return found + [("tool_call.arguments", fn["arguments"]) for call in msg.get("tool_calls") or ()
                    if isinstance((fn := call.get("function") or {}).get("arguments"), (dict, list))]


def _python_repr(value, inputs: list[str]) -> str | None:
    """``value``'s Python repr (what ``{{ value }}`` writes), unless it is also a JSON spelling
    of it ([1, 2]) or some input text contains it: then finding it proves nothing."""
    py = repr(value)
    try:
        if _canonical(json.loads(py)) == _canonical(value):
            return None
    except ValueError:
        pass
    return None if any(py in t for t in inputs) else py


def _find_json(out: str, value, start: int) -> tuple[int, int]:
    """(start, end) of a JSON encoding of ``value`` in ``out`` at or after ``start``, or (-1, -1).
    Decoding at each opening bracket accepts any separators and escaping a tojson writes."""
    want, opener = _canonical(value), "{" if isinstance(value, dict) else "["
    at = out.find(opener, start)
    while at >= 0:
        try:
            got, end = _JSON.raw_decode(out, at)
            if _canonical(got) == want:
                return at, end
        except ValueError:
            pass
        at = out.find(opener, at + 1)
    return -1, -1


def _scan(ctx, case, out: str, texts, objects, indices) -> chainfuzz.Failure | None:
    """The first defect among messages ``indices``, checked in order, or None. An object is
    found as a whole first: its Python repr (before any JSON of it) is an error, a JSON
    encoding keeps it; only where neither is found (arguments written as XML parameters...)
    are its leaves looked for."""
    inputs = all_strings(case)
    cursor = 0
    for i in indices:
        msg, ends, covered = case["messages"][i], [], []
        role = msg.get("role")
        for j, field, value in objects:
            if j != i:
                continue
            py = _python_repr(value, inputs)
            at, end = _find_json(out, value, cursor)
            # A repr after a JSON encoding of the same value is another message's (Mistral-Nemo
            # writes arguments as JSON and an equal tool result as a repr).
            rep = out.find(py, cursor) if py is not None else -1
            if rep >= 0 and (at < 0 or rep < at):
                return chainfuzz.Failure(
                    f"message {i} ({role}) {field} is written as a Python repr, not JSON",
                    key=f"python_repr:{role}:{field}", observed=py, expected=_canonical(value),
                    rendered=out)
            if at >= 0:
                ends.append(end)
                covered += [(field, t) for t in json_strings(value)]
        for _, field, text, structured in (x for x in texts if x[0] == i):
            if (field, text) in covered:
                covered.remove((field, text))
                continue
            at, end, defect = _find_text(out, text, structured, cursor, ctx.template_writes)
            if defect is None:
                ends.append(end)
                continue
            if defect == "ambiguous":
                continue
            return chainfuzz.Failure(
                f"message {i} ({role}) {field} {_DEFECT_WORDS[defect]}",
                key=f"{defect}:{role}:{field}", observed=out[at:end] if at >= 0 else None,
                expected=text, rendered=out,
                severity="warning" if defect == "trimmed" else None)
        if ends:
            cursor = min(ends)
    return None


@chainfuzz.property("template.content_preserved", inputs=_accepted_cases_with_flag, severity="error",
                    examples=_accepted_edges)
def content_preserved(ctx, case):
    """Every message's text (content, tool-call names and arguments, tool results) appears in
    the output verbatim and in order; objects (arguments, tool results) as JSON, compared as
    structures. Dropping, re-encoding (a Python repr of an object or of the tools list
    included) or reordering text is an error; trimming whitespace, and a system or developer
    message moved elsewhere (a design choice: moved:<role>:<field>), are warnings. Texts that
    spell the template's markers, blank texts, texts that cannot be found unambiguously, and
    tools a template leaves out, are exempt."""
    msgs = case["messages"]
    # Whitespace-only texts are skipped: nothing tells a dropped blank from a trimmed one.
    texts = [(i, f, t, structured) for i, msg in enumerate(msgs)
             for f, t, structured in expected_texts(msg) if not ctx.has_marker(t) and not t.isspace()]
    objects = [(i, f, v) for i, msg in enumerate(msgs) for f, v in _objects(msg)]
    # Each text checked must be findable unambiguously: not inside another message's text or
    # the tool schemas, and, when short, not inside the template's own literal text ("Y"
    # would match "You are..."). Shrinking would otherwise converge on equal texts and blame
    # the wrong message. Such texts are exempt and the others checked: skipping the whole
    # case instead left 49% of accepted inputs on Qwen2.5 unchecked (a called tool's name is
    # always in the tool schemas, and short names and contents repeat).
    elsewhere = [(i, t) for i, _, t, _ in texts] + [(-1, t) for t in all_strings(case.get("tools"))]
    clear = [x for x in texts if not ctx.template_writes(x[2])
             and not any(x[2] in b for j, b in elsewhere if j != x[0])]
    assume(clear or objects or case.get("tools") or not texts, "texts are ambiguous")
    texts = clear
    out = _render_case(ctx, case)
    # Tools a template omits are not charged (a design choice); written as a repr they are lost.
    tools = case.get("tools") or []
    inputs = all_strings(case)
    for value in ([tools] + list(tools)) if tools else ():
        py = _python_repr(value, inputs)
        if py is not None and (at := out.find(py)) >= 0:
            raise chainfuzz.Failure(
                "the tools list is written as a Python repr, not JSON", key="python_repr:tools",
                observed=excerpt(out, at), expected=_canonical(value), rendered=out)
    first = _scan(ctx, case, out, texts, objects, range(len(msgs)))
    movable = [i for i, m in enumerate(msgs) if m.get("role") in _MOVABLE]
    if first is None:
        return
    if not movable:
        raise first
    # A template may hoist system messages (DeepSeek puts them all first, Mistral-Nemo before
    # the last user message): the rest must still be in order, and the one that breaks the
    # order when added back is moved (warning) if its text is intact, else its own defect.
    rest = [i for i in range(len(msgs)) if i not in movable]
    failure = _scan(ctx, case, out, texts, objects, rest)
    if failure is not None:
        raise failure
    for i in movable:
        if _scan(ctx, case, out, texts, objects, sorted([*rest, i])) is None:
            continue
        alone = _scan(ctx, case, out, texts, objects, [i])
        if alone is not None:
            raise alone
        role, field = msgs[i]["role"], next(f for j, f, _, _ in texts if j == i)
        raise chainfuzz.Failure(
            f"message {i} ({role}) {field} appears out of order: the template moves {role} messages",
            key=f"moved:{role}:{field}", observed=None,
            expected=next(t for j, _, t, _ in texts if j == i), rendered=out, severity="warning")
    # Each moved message keeps the order on its own; together they do not. Swapped among
    # themselves, that is the template's moving of them; any other defect stands (gpt-oss
    # drops a second system message, whose text only a later search from 0 finds ambiguous).
    if not first.key.startswith("reordered:"):
        raise first
    i = next((j for j, _, _, _ in texts if j in movable), movable[0])
    raise chainfuzz.Failure(
        f"the {msgs[i]['role']} messages appear out of order among themselves",
        key=f"moved:{msgs[i]['role']}:content", observed=None, expected=None, rendered=out,
        severity="warning")


# --- template.prefix_stable --------------------------------------------------------------

def _prefix_edges(ctx):
    """The accepted boundary cases that have a prefix to compare: two messages or more."""
    return [c for c in _accepted_edges(ctx) if len(c["messages"]) >= 2]


@chainfuzz.property("template.prefix_stable", inputs=_accepted_cases_with_flag, severity="warning",
                    examples=_prefix_edges)
def prefix_stable(ctx, case):
    """The rendering of a conversation's first k messages is a prefix of the rendering of the
    whole conversation: history is not rewritten, so a server's KV cache stays valid."""
    msgs, tools = case["messages"], case.get("tools")
    assume(len(msgs) >= 2, "needs two messages")
    # A text spelling a marker may legitimately change how history renders.
    assume(not ctx.has_marker(" ".join(all_strings(case))), "a text spells a marker")
    whole = ctx.render_or_skip(msgs, tools=tools)
    for k in range(1, len(msgs)):
        try:
            head = ctx.render(msgs[:k], tools=tools)
        except RenderError:
            continue  # the template refuses this prefix on its own
        if whole.startswith(head):
            continue
        d = next((j for j, (a, b) in enumerate(zip(head, whole)) if a != b), min(len(head), len(whole)))
        last, nxt = msgs[k - 1]["role"], msgs[k]["role"]
        raise chainfuzz.Failure(
            f"rendering the first {k} messages is not a prefix of rendering all {len(msgs)}: "
            f"appending a {nxt} message after a {last} message rewrites earlier text at offset {d}",
            key=f"rewrites:{last}->{nxt}", observed=excerpt(whole, d), expected=excerpt(head, d),
            rendered=whole)


# --- template.generation_prompt ----------------------------------------------------------

# Replies of four characters or more: a shorter one may be the template's own text
# (`Context.template_writes`), which the property cannot judge.
_REPLY = st.lists(cst.words(min_size=4), min_size=1, max_size=3).map(" ".join)


def _gen_cases(ctx):
    return st.tuples(ctx.conversations(end="user"), _REPLY).map(
        lambda t: {**t[0], "reply": t[1]})


_EMPTY_REASONING = re.compile(r"\s*<(think|thinking|reasoning|thought)>\s*</\1>\s*")
# Reasoning of the probe turn that recognises thinking mode: distinctive, so finding it
# locates where the template writes a reasoning block's text.
_REASONING = "chainfuzz reasoning probe 7f3a"


def _gen_edges(ctx):
    return [{**c, "reply": "hello there"} for c in ctx.edge_conversations(end="user")]


def _opens_reasoning(ctx, msgs, tools, reply, prompt) -> bool:
    """Whether the generation prompt opens the template's reasoning block (thinking mode on
    by default, as Qwen3's '<think>\\n'): rendered with a reasoning reply, the conversation
    continues the prompt and the reasoning text follows it with nothing but whitespace
    between. Judged by the template's own rendering of a reasoning turn, not by tag names.
    Templates that drop reasoning from history (DeepSeek-R1) cannot be recognised so."""
    turn = {"role": "assistant", "reasoning_content": _REASONING, "content": reply}
    try:
        think = ctx.render([*msgs, turn], tools=tools)
    except RenderError:
        return False
    at = think.find(_REASONING, len(prompt))
    return think.startswith(prompt) and at >= 0 and think[len(prompt):at].strip() == ""


@chainfuzz.property("template.generation_prompt", inputs=_gen_cases, severity="error",
                    examples=_gen_edges)
def generation_prompt(ctx, case):
    """render(msgs, add_generation_prompt=True) followed by an assistant reply equals the
    start of render(msgs + [reply]). Checked in order: a flag that changes nothing while the
    reply follows a header (flag_ignored), a prompt that is not the conversation's assistant
    header (different_header), a header the model must finish (incomplete_header); a
    whitespace gap or an empty reasoning block is a warning. A prompt that opens the
    template's own reasoning block (thinking mode) is clean."""
    msgs, tools, reply = case["messages"], case.get("tools"), case["reply"]
    assume(msgs and msgs[-1]["role"] in ("user", "tool"), "the conversation awaits no reply")
    # A short reply inside the template's own text ("a" in "assistant") would be found early.
    assume(not ctx.template_writes(reply), "the reply is ambiguous")
    prompt = ctx.render_or_skip(msgs, tools=tools, add_generation_prompt=True)
    full = ctx.render_or_skip([*msgs, {"role": "assistant", "content": reply}], tools=tools)
    at = full.find(reply, len(prompt) if full.startswith(prompt) else 0)
    assume(at >= 0, "the reply is dropped (content_preserved's finding)")
    # The flag first, on its own: judged after the header comparison, a template that ignores
    # the flag and writes an unusual header read as different_header before and after its
    # flag was fixed. The header is what the conversation puts between the last message's
    # text and the reply; none at all, or one the flagless prompt already ends with
    # (Mistral's '[/INST]'), and ignoring the flag costs nothing.
    if prompt == ctx.render_or_skip(msgs, tools=tools):
        d = next((j for j, (a, b) in enumerate(zip(prompt, full)) if a != b), min(len(prompt), len(full)))
        last = [t for _, t, _ in expected_texts(msgs[-1])]
        end = full.rfind(last[-1], 0, at) + len(last[-1]) if last and last[-1] in full[:at] else min(d, at)
        header, missing = full[end:at], full[max(d, end):at]
        if missing.strip() and not _EMPTY_REASONING.fullmatch(header) and not prompt.endswith(header):
            instead = f" (the prompt writes {prompt[d:d + 40]!r} there)" if d < len(prompt) else ""
            raise chainfuzz.Failure(
                f"add_generation_prompt=True changes nothing: the model would have to generate "
                f"{missing!r} before its reply{instead}", key="flag_ignored", observed=prompt[d:],
                expected=missing, rendered=full)
    if not full.startswith(prompt):
        if _opens_reasoning(ctx, msgs, tools, reply, prompt):
            return
        d = next((j for j, (a, b) in enumerate(zip(prompt, full)) if a != b), len(full))
        raise chainfuzz.Failure(
            "the generation prompt is not how the template renders an assistant turn: "
            f"prompt continues {prompt[d:d + 40]!r}, the conversation continues {full[d:d + 40]!r}",
            key="different_header", observed=prompt[d:], expected=full[d:at], rendered=full)
    gap = full[len(prompt):at]
    if not gap:
        return
    if gap.isspace() or _EMPTY_REASONING.fullmatch(gap):
        what = "whitespace" if gap.isspace() else "an empty reasoning block"
        raise chainfuzz.Failure(
            f"the template puts {what} {gap!r} between the generation prompt and the reply; "
            "the model must generate it", key="whitespace_gap" if gap.isspace() else "reasoning_gap",
            observed=gap, expected="", rendered=full, severity="warning")
    if _opens_reasoning(ctx, msgs, tools, reply, prompt):
        return
    raise chainfuzz.Failure(
        f"the generation prompt stops short: the model would have to generate {gap!r} before its reply",
        key="incomplete_header", observed=gap, expected="", rendered=full)


# --- template.turns_closed ---------------------------------------------------------------

def _closed_cases(ctx):
    txt = st.one_of(cst.plain_text(), st.sampled_from(cst.UNICODE_EDGES))
    return ctx.conversations(txt=txt)


def _closed_edges(ctx):
    """Boundary cases with no marker in their texts: turns_closed's space (a text spelling
    a turn marker unbalances the rendering by the input's doing, not the template's)."""
    return [c for c in ctx.edge_conversations() if not ctx.has_marker(" ".join(all_strings(c)))]


@chainfuzz.property("template.turns_closed", inputs=_closed_cases, severity="error",
                    examples=_closed_edges)
def turns_closed(ctx, case):
    """Every turn the template opens is closed. Turn markers are inferred without per-model
    configuration: open/close pairs matched by name (<|im_start|>/<|im_end|>, [INST]/[/INST],
    <start_of_turn>/<end_of_turn>, <|turn>/<turn|>) that wrap message contents in probe
    renderings, or role tokens a closer (or the next role token) ends. They must
    balance in every rendering without a generation prompt, whichever role ends it: a template
    that opens the assistant turn regardless of add_generation_prompt fails."""
    assume(ctx.turn_markers, ctx.no_turn_markers)
    out = _render_case(ctx, case)
    problem = ctx.unbalanced_turn(out)
    if problem:
        key, message = problem
        raise chainfuzz.Failure(message, key=key, observed=message, expected="balanced markers",
                                rendered=out)


# --- template.no_repr_leak ---------------------------------------------------------------

_REPR = re.compile(r"\bNone\b|\bTrue\b|\bFalse\b|\{'[^'\n]{0,80}': |\[\{'|\['[^'\n]{0,80}'[,\]]")


def _repr_sites(case: dict) -> list[tuple[str, object]]:
    """(site, value) for every structured value of a case whose Python repr a template could
    write: null or non-text contents first (a template most often prints a field it reads
    directly), then tool calls and their arguments, whole messages, the tools list. Values
    nested in one share its site."""
    contents, calls, rest = [], [], []

    def walk(out, site, value):
        if isinstance(value, (dict, list)) or value is None or isinstance(value, bool):
            out.append((site, value))
        for v in value.values() if isinstance(value, dict) else value if isinstance(value, list) else ():
            walk(out, site, v)

    for msg in case["messages"]:
        role = msg.get("role")
        walk(contents, f"{role}.content", msg.get("content"))
        if msg.get("tool_calls"):
            calls.append((f"{role}.tool_calls", msg["tool_calls"]))
        for call in msg.get("tool_calls") or ():
            calls += [(f"{role}.tool_call", call), (f"{role}.tool_call", call.get("function"))]
            walk(calls, f"{role}.tool_call.arguments", (call.get("function") or {}).get("arguments"))
        rest.append((role, msg))
    rest.append(("messages", case["messages"]))
    if case.get("tools"):
        walk(rest, "tools", case["tools"])
    return contents + calls + rest


def _repr_site(out: str, start: int, end: int, keyword: bool, sites) -> str:
    """The input field whose Python repr covers ``out[start:end]``: the smallest such value
    (None, True, False: a value that is one), or "template" when none does (the template
    wrote it from its own variables)."""
    best = None
    for site, value in sites:
        if keyword != (value is None or isinstance(value, bool)):
            continue
        text = str(value)
        at = out.find(text, max(0, end - len(text)))
        if 0 <= at <= start and (best is None or len(text) < best[0]):
            best = (len(text), site)
    return best[1] if best else "template"


@chainfuzz.property("template.no_repr_leak", inputs=_accepted_cases_with_flag, severity="error",
                    examples=_accepted_edges)
def no_repr_leak(ctx, case):
    """No Python repr of structured input (None, True, {'a': 1}, ['x']) reaches the output.
    The key names the input field whose repr leaked, repr@<site>:<kind> (repr@tools:dict,
    repr@assistant.tool_call.arguments:dict, repr@template:None for the template's own
    values). A repr the template writes literally, or text the input itself contains, is exempt."""
    out = _render_case(ctx, case)
    literal = ctx.literal_text
    inputs = all_strings(case)
    for m in _REPR.finditer(out):
        s = m.group()
        if s in literal or any(s in t for t in inputs):
            continue
        keyword = s in ("None", "True", "False")
        kind = s if keyword else ("dict" if s.startswith("{") else "list")
        site = _repr_site(out, m.start(), m.end(), keyword, _repr_sites(case))
        raise chainfuzz.Failure(
            f"Python repr {s!r} of {site if site != 'template' else 'a value of the template'} in "
            f"the output at offset {m.start()}: {excerpt(out, m.start())!r}",
            key=f"repr@{site}:{kind}", observed=s, expected="JSON or text", rendered=out)


# --- template.deterministic --------------------------------------------------------------

_OTHER_NOW = dt.datetime(2031, 7, 4, 23, 59, 58)


def _render_as_run(ctx, case, run_seed: int, **kw) -> str:
    """Render as a fresh process would: Python's global random state seeded anew (Jinja's
    ``random`` filter uses it), and restored afterwards so the search is not disturbed."""
    state = random.getstate()
    random.seed(run_seed)
    try:
        return _render_case(ctx, case, fresh=True, **kw)
    finally:
        random.setstate(state)


@chainfuzz.property("template.deterministic", inputs=_accepted_cases_with_flag, severity="error",
                    examples=_accepted_edges)
def deterministic(ctx, case):
    """The same input renders identically across runs (error when not: randomness) and at
    different dates and times (warning: strftime_now puts the date in the prompt)."""
    # Seeds 0 and 1 pick different items from any sequence of 2 to 5 with random.choice.
    first = _render_as_run(ctx, case, 0)
    again = _render_as_run(ctx, case, 1)
    if again != first:
        d = next(j for j, (a, b) in enumerate(zip(first, again + "\0")) if a != b)
        raise chainfuzz.Failure(
            f"two runs render the same input differently at offset {d}", key="run_to_run",
            observed=excerpt(again, d), expected=excerpt(first, d), rendered=first)
    later = _render_as_run(ctx, case, 0, now=_OTHER_NOW)
    if later != first:
        d = next(j for j, (a, b) in enumerate(zip(first, later + "\0")) if a != b)
        raise chainfuzz.Failure(
            f"the rendering depends on the clock (strftime_now): offset {d} differs between "
            f"{ctx.renderer.now:%Y-%m-%d %H:%M} and {_OTHER_NOW:%Y-%m-%d %H:%M}",
            key="clock", observed=excerpt(later, d), expected=excerpt(first, d), rendered=first,
            severity="warning")


# --- template.roundtrip ------------------------------------------------------------------

_ROUNDTRIP_TEXT = st.lists(cst.words(), min_size=1, max_size=3).map(" ".join)


def _roundtrip_cases(ctx):
    """Accepted conversations of string contents in the basic roles (`BASIC_ROLES`): what
    the learned structure can read back."""
    return ctx.conversations(tools=False, reasoning=False, content_parts=False, null_content=False,
                             developer=False, txt=_ROUNDTRIP_TEXT)


_WORDS = re.compile(r"[A-Za-z0-9]+( [A-Za-z0-9]+)*")


def _roundtrip_edges(ctx):
    """Boundary cases in roundtrip's own space: basic roles, contents of words."""
    cases = ctx.edge_conversations(tools=False, reasoning=False, content_parts=False,
                                   null_content=False, developer=False)
    return [c for c in cases if all(m["role"] in BASIC_ROLES and isinstance(m["content"], str)
                                    and _WORDS.fullmatch(m["content"]) for m in c["messages"])]


@chainfuzz.property("template.roundtrip", inputs=_roundtrip_cases, severity="warning",
                    examples=_roundtrip_edges)
def roundtrip(ctx, case):
    """The conversation can be recovered from its rendering: turn markers are inferred by
    rendering probe conversations, the output is parsed back and compared with the input."""
    structure = ctx.structure
    assume(structure.start, ctx.no_turn_markers)
    out = _render_case(ctx, case)
    want = [(m["role"], m["content"]) for m in case["messages"]]
    got = structure.parse(out)
    if got is None:
        raise chainfuzz.Failure(
            "the rendering cannot be parsed back with the turn markers the template uses for "
            "the same roles elsewhere", key="unparseable", observed=out, expected=want, rendered=out)
    if [r for r, _ in got] != [r for r, _ in want]:
        raise chainfuzz.Failure(
            f"parsed roles {[r for r, _ in got]} differ from the input's {[r for r, _ in want]}",
            key="roles", observed=got, expected=want, rendered=out)
    for (role, text), (_, back) in zip(want, got):
        if back != text:
            ws = back.strip() == text.strip()
            raise chainfuzz.Failure(
                f"{role} content {text!r} reads back as {back!r}",
                key="whitespace" if ws else "content", observed=back, expected=text, rendered=out)


# --- template.engines_agree --------------------------------------------------------------

# Characters Python's str.splitlines() breaks at (jinja2's indent) and minijinja does not.
_PY_ONLY_BREAKS = re.compile("[\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029]")
# Characters Python's str.strip() removes (jinja2's trim) and Rust's trim keeps.
_PY_ONLY_SPACE = re.compile("[\x1c-\x1f]")


def _has_null(value) -> bool:
    if value is None:
        return True
    if isinstance(value, dict):
        return any(_has_null(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_null(v) for v in value)
    return False


def _construct(ctx, case, ref: str, other: str, d: int) -> str:
    """Name the template construct most likely behind a transformers/minijinja difference."""
    src = ctx.target.source
    texts = "\0".join(all_strings(case))
    near = ref[d:d + 12] + "\0" + other[d:d + 12]
    if re.search(r"&(#34|#39|lt|gt|amp);", ref[d:d + 8]):
        return "html_escape:Markup concatenation (|safe + str) HTML-escapes in jinja2"
    if re.search(r"\bindent\b", src) and (_PY_ONLY_BREAKS.search(texts) or "\n" in near):
        return "indent:indent splits lines differently (Python's splitlines vs minijinja)"
    if re.search(r"\b(trim|strip)\b", src) and _PY_ONLY_SPACE.search(texts):
        return "strip:str.strip() removes \\x1c-\\x1f in Python, not in minijinja"
    if _has_null(case) and ("None" in near or "none" in near):
        return "none:None (null input) is rendered or tested differently"
    if re.search(r"\btojson\b", src) and re.search(r"[\"{}\[\]]", near):
        return "tojson:JSON serialisation differs"
    return "output"


@chainfuzz.property("template.engines_agree", inputs=_accepted_cases_with_flag, severity="warning",
                    examples=_accepted_edges)
def engines_agree(ctx, case):
    """transformers' jinja2 and minijinja (Rust servers' engine, set up like transformers)
    render the same output, or both refuse; a difference names the construct behind it."""
    # A template that hangs on everything costs each engine its time limit per input:
    # template.renders reports it, and the comparison waits until renders come back.
    assume(not ctx.renderer.hangs, "the template timed out on the last renders")
    try:
        ref = _render_case(ctx, case, skip=False)
    except RenderError as err:
        ref = err
    try:
        other = ctx.minijinja.render(case["messages"], tools=case.get("tools"),
                                     add_generation_prompt=case.get("add_generation_prompt", False))
    except RenderError as err:
        other = err
    if isinstance(ref, RenderError) and isinstance(other, RenderError):
        return
    if isinstance(ref, RenderError) or isinstance(other, RenderError):
        err, who = (other, "minijinja") if isinstance(other, RenderError) else (ref, "transformers")
        raise chainfuzz.Failure(
            f"only {who} refuses: {err}", key=error_key(f"only_{who}_refuses", err.message, err.site),
            observed=str(err), expected="both render or both refuse",
            rendered=ref if isinstance(ref, str) else other)
    if ref == other:
        return
    d = next((j for j, (a, b) in enumerate(zip(ref, other)) if a != b), min(len(ref), len(other)))
    construct = _construct(ctx, case, ref, other, d)
    raise chainfuzz.Failure(
        f"outputs differ at offset {d} ({construct.split(':', 1)[-1]}): transformers "
        f"{ref[d:d + 30]!r} vs minijinja {other[d:d + 30]!r}",
        key=f"differs:{construct.split(':', 1)[0]}", observed=excerpt(other, d), expected=excerpt(ref, d),
        rendered=ref)
