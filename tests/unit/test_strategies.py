"""``chainfuzz.strategies.conversations``: schema-shaped cases, and shrinking toward small ones."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, find, given, settings
from hypothesis import strategies as st

from chainfuzz.messages import content_texts
from chainfuzz.internal.reduce import reduce_case
from chainfuzz.strategies import conversations, plain_text

MARKERS = ("<|im_start|>", "<|im_end|>", "<tool_call>")
ROLES = {"system", "developer", "user", "assistant", "tool"}

fuzz = settings(max_examples=60, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
search = settings(max_examples=500, deadline=None, database=None, derandomize=True,
                  suppress_health_check=list(HealthCheck))


def assert_schema_shaped(case: dict) -> None:
    assert set(case) >= {"messages", "tools"}
    messages = case["messages"]
    assert messages, "a conversation has at least one message"
    open_calls: dict[str, str] = {}  # ids of the latest assistant's tool calls -> name
    for i, m in enumerate(messages):
        role = m["role"]
        assert role in ROLES, m
        assert "content" in m
        if m["content"] is None:
            assert role == "assistant", f"message {i}: null content on a {role} message"
        else:
            c = m["content"]
            assert isinstance(c, (str, list, dict)), m
            if isinstance(c, list) and role != "tool":
                assert c and all(p.get("type") == "text" and isinstance(p.get("text"), str) for p in c)
        if role == "tool":
            assert i > 0 and open_calls, f"message {i}: a tool result with no tool call before it"
            assert m["tool_call_id"] in open_calls, (m, open_calls)
            if "name" in m:
                assert m["name"] == open_calls[m["tool_call_id"]]
            continue
        open_calls = {}
        if m.get("tool_calls"):
            assert role == "assistant", m
            for call in m["tool_calls"]:
                assert call["type"] == "function"
                fn = call["function"]
                assert isinstance(fn["name"], str) and fn["name"]
                args = fn["arguments"]
                if isinstance(args, str):
                    args = json.loads(args)
                assert isinstance(args, dict), fn
                assert isinstance(call["id"], str) and call["id"]
                open_calls[call["id"]] = fn["name"]
            assert len(open_calls) == len(m["tool_calls"]), "tool-call ids repeat within a turn"
            # every call is answered, in order, by the tool messages that follow
            results = []
            for later in messages[i + 1:]:
                if later["role"] != "tool":
                    break
                results.append(later["tool_call_id"])
            assert results == [c["id"] for c in m["tool_calls"]], (m, results)
    tools = case["tools"]
    if tools is not None:
        assert isinstance(tools, list) and tools
        for t in tools:
            assert t["type"] == "function" and isinstance(t["function"]["name"], str)
            assert t["function"]["parameters"]["type"] == "object"
        names = [t["function"]["name"] for t in tools]
        assert len(names) == len(set(names))
    json.dumps(case)  # JSON all the way down


@fuzz
@given(conversations(MARKERS))
def test_cases_are_schema_shaped(case):
    assert_schema_shaped(case)


@fuzz
@given(conversations(tools=False, reasoning=False))
def test_no_tools_no_reasoning(case):
    assert_schema_shaped(case)
    assert case["tools"] is None
    for m in case["messages"]:
        assert m["role"] != "tool" and "tool_calls" not in m and "reasoning_content" not in m


@fuzz
@given(conversations(MARKERS, end="assistant"))
def test_end_assistant_is_respected(case):
    assert_schema_shaped(case)
    assert case["messages"][-1]["role"] == "assistant"


@fuzz
@given(conversations(MARKERS, end="user"))
def test_end_user_is_respected(case):
    """end="user" is what a generation prompt needs: the last message is the user's."""
    assert_schema_shaped(case)
    assert case["messages"][-1]["role"] == "user", case["messages"]


@fuzz
@given(conversations(txt=plain_text(max_size=5), max_exchanges=2))
def test_txt_and_max_exchanges_are_respected(case):
    assert_schema_shaped(case)
    users = [m for m in case["messages"] if m["role"] == "user"]
    # each exchange has one user turn, plus at most one irregular extra user turn
    assert 1 <= len(users) <= 4
    for m in case["messages"]:
        for text in content_texts(m["content"]) if isinstance(m["content"], (str, list)) else ():
            assert len(text) <= 5 and text.isascii()


def test_the_text_mixes_in_markers_and_jinja():
    """The adversarial parts are reachable: markers, Jinja syntax, non-ASCII text."""
    def texts(case):
        return [t for m in case["messages"] for t in content_texts(m["content"])]

    find(conversations(MARKERS), lambda c: any("<|im_end|>" in t for t in texts(c)), settings=search)
    find(conversations(MARKERS), lambda c: any("{{" in t for t in texts(c)), settings=search)
    find(conversations(MARKERS), lambda c: any(not t.isascii() for t in texts(c)), settings=search)


# --- shrinking --------------------------------------------------------------------------------
# chainfuzz shrinks in two passes: Hypothesis on the strategy's choices, then `reduce_case`
# on the conversation itself (Hypothesis alone can stall with a spare exchange left over).

def _non_ascii(case):
    return any(not t.isascii() for m in case["messages"] for t in content_texts(m["content"]))


def _shrink(predicate):
    return reduce_case(find(conversations(), predicate, settings=search), predicate).case


def test_shrinks_to_few_short_messages():
    case = _shrink(_non_ascii)
    messages = case["messages"]
    assert len(messages) <= 2, messages
    assert case["tools"] is None
    text = "".join(t for m in messages for t in content_texts(m["content"]))
    assert len(text) <= 2, text
    assert not any("tool_calls" in m or "reasoning_content" in m for m in messages)


def test_shrinks_null_content_to_a_small_case():
    case = _shrink(lambda c: any(m["content"] is None for m in c["messages"]))
    assert_schema_shaped(case)
    assert len(case["messages"]) <= 2, case
    assert all(t == "" for m in case["messages"] for t in content_texts(m["content"]))


@fuzz
@given(st.data())
def test_markers_strategy_draws_marker_pieces(data):
    from chainfuzz.strategies import marker_fragments

    piece = data.draw(marker_fragments(MARKERS))
    assert piece and any(piece in m for m in MARKERS)


def test_reduction_keeps_tool_results_with_their_call():
    """Deleting a turn takes an assistant's tool results with it, so reduced cases stay valid."""
    call = {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": {}}}
    case = {"messages": [
        {"role": "system", "content": "s"}, {"role": "user", "content": "u"},
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": "call_1", "content": "r"},
        {"role": "assistant", "content": "a", "reasoning_content": "think"},
    ], "tools": [{"type": "function", "function": {"name": "f"}}]}
    reduced = reduce_case(case, lambda c: any(m["role"] == "tool" for m in c["messages"])).case
    assert [m["role"] for m in reduced["messages"]] == ["assistant", "tool"]
    assert reduced["messages"][0]["tool_calls"] == [call]
    assert reduced["tools"] is None and "reasoning_content" not in str(reduced)
    assert_schema_shaped(reduced)


@pytest.mark.parametrize("field, value, standard", [
    ("arguments", '{"city": "Paris"}', {"city": "Paris"}),
    ("result", {"sky": "clear"}, '{"sky": "clear"}'),
])
def test_reduction_prefers_the_standard_form(field, value, standard):
    """The reducer tries each non-standard field's standard form first (`chainfuzz.schema`):
    a defect the standard form still shows is kept on it; one only the lenient shape shows
    keeps that shape, and the reduction is a fixed point either way."""
    from chainfuzz import schema

    args = value if field == "arguments" else {"city": "Paris"}
    result = value if field == "result" else "sunny"
    case = {"messages": [
        {"role": "user", "content": "weather?"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": args}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": result},
    ], "tools": None}
    assert not schema.is_standard(case)
    anywhere = reduce_case(case, lambda c: len(c["messages"]) == 3)
    assert schema.is_standard(anywhere.case) and anywhere.fixed_point
    got = anywhere.case["messages"][1]["tool_calls"][0]["function"]["arguments"] if field == "arguments" \
        else anywhere.case["messages"][2]["content"]
    assert type(got) is type(standard)  # then its texts are shortened too
    only_lenient = reduce_case(case, lambda c: not schema.is_standard(c))
    assert schema.nonstandard(only_lenient.case) == schema.nonstandard(case) and only_lenient.fixed_point


# --- narrowing to what a template accepts, and boundary cases ----------------------------------

NARROW = dict(system_placements=("first",), irregularities=("none",), developer=False,
              content_parts=False, null_content=False, parallel_calls=False, call_id_prefix=False,
              string_arguments=False, object_results=False, tool_schemas=False, reasoning=False)


@fuzz
@given(conversations(MARKERS, **NARROW))
def test_narrowed_conversations_stay_in_their_space(case):
    from chainfuzz.strategies import allowed

    assert_schema_shaped(case)
    assert allowed(case, **NARROW), case
    messages = case["messages"]
    assert messages[0]["role"] == "system" and case["tools"] is None
    roles = [m["role"] for m in messages if m["role"] != "tool" and not m.get("tool_calls")]
    assert all(a != b for a, b in zip(roles[1:], roles[2:])), roles  # strictly alternating
    for m in messages:
        assert m["content"] is not None and not isinstance(m["content"], list) or m["role"] == "tool"
        for call in m.get("tool_calls", ()):
            assert len(call["id"]) == 9 and isinstance(call["function"]["arguments"], dict)
        assert len(m.get("tool_calls", ())) <= 1


@fuzz
@given(conversations(MARKERS, min_messages=2, end="user", irregularities=("none",)))
def test_min_messages_keeps_the_end(case):
    assert_schema_shaped(case)
    assert len(case["messages"]) >= 2 and case["messages"][-1]["role"] == "user"


@fuzz
@given(conversations(MARKERS))
def test_the_default_space_is_allowed(case):
    from chainfuzz.strategies import allowed

    assert allowed(case)


def test_texts_put_markers_and_whitespace_at_their_edges():
    from chainfuzz.strategies import text

    heads = {m[:i] for m in MARKERS for i in range(2, len(m))}
    tails = {m[i:] for m in MARKERS for i in range(1, len(m) - 1)}
    find(text(MARKERS), lambda t: any(t.startswith(p) and len(t) > len(p) for p in tails), settings=search)
    find(text(MARKERS), lambda t: any(t.endswith(p) and len(t) > len(p) for p in heads), settings=search)
    find(text(MARKERS), lambda t: t.startswith(" ") and t.endswith("\n") and t.strip(), settings=search)
    # whole markers can be left out, fragments stay
    find(text(MARKERS, whole_markers=False), lambda t: "<|im_" in t, settings=search)


def test_edge_conversations_cover_the_boundaries():
    from chainfuzz.strategies import edge_conversations

    cases = edge_conversations(MARKERS)
    for case in cases:
        assert_schema_shaped(case)
    shapes = [tuple(m["role"] for m in c["messages"]) for c in cases]
    for role in ("system", "developer", "user", "assistant"):
        assert (role,) in shapes
    assert {(a, b) for a in ("system", "user", "assistant") for b in ("system", "user", "assistant")} <= set(shapes)
    assert ("user", "assistant", "tool") in shapes  # a tool result right after its call
    contents = [m["content"] for c in cases for m in c["messages"] if isinstance(m["content"], str)]
    assert {"", "a", " hello "} <= set(contents)
    for m in MARKERS:
        assert {m + "hello", "hel" + m + "lo", "hello" + m} <= set(contents)
    # the simplest come first: a runner feeding them in order starts with one short message
    assert cases[0]["messages"] == [{"role": "user", "content": "hello"}]
    # narrowing leaves out what the space excludes
    narrow = edge_conversations(MARKERS, tools=False, irregularities=("none",), developer=False)
    assert narrow and all(m["role"] not in ("tool", "developer") for c in narrow for m in c["messages"])
    assert ("user", "user") not in [tuple(m["role"] for m in c["messages"]) for c in narrow]
