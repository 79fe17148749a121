"""The parser layer's own logic: how streams group tokens, how messages compare, what the
planted faults do, the family table, and ``--parser``'s bad input (one line, exit 2)."""

from __future__ import annotations

import pytest

from chainfuzz.parsers import AVAILABLE_PARSERS, Chunk, Delta, Message, Parser, ToolCall, ToolCallDelta, parser_row
from chainfuzz.parsers.families import FAMILIES, auto_specs, family_of
from chainfuzz.parsers.planted import FAULTS
from chainfuzz.properties.parser import _accumulate, _difference, _same_json, _view
from chainfuzz.strategies import group_tokens


def test_groupings_cut_where_they_say_and_ignore_cuts_past_the_end():
    ids = [10, 11, 12, 13]
    assert group_tokens(ids, {"at": []}) == [ids]
    assert group_tokens(ids, {"every": True}) == [[10], [11], [12], [13]]
    assert group_tokens(ids, {"at": [1, 3, 9]}) == [[10], [11, 12], [13]]
    assert group_tokens(ids, {"at": [3, 1, 3]}) == [[10], [11, 12], [13]]  # a shrunk case's cuts, out of order
    assert group_tokens([], {"at": [2]}) == group_tokens([], {"every": True}) == []


def test_json_values_compare_by_value_but_true_is_not_one():
    assert _same_json({"a": 1, "b": [1.0]}, {"b": [1], "a": 1.0})
    assert not _same_json({"a": True}, {"a": 1})
    assert not _same_json({"a": "1"}, {"a": 1})
    assert not _same_json({"a": None}, {})


def test_differences_name_the_first_field_that_differs():
    want = _view(" hi ", None, [("f", {"x": 1}), ("g", {})])
    assert _difference(_view("hi", "", [("f", '{"x": 1}'), ("g", "{}")]), want) is None  # whitespace, JSON text
    assert _difference(_view("hi", "", [("f", '{"x": 1}')]), want)[0] == "tool_calls:lost"
    assert _difference(_view("hi", "", [("f", '{"x": 2}'), ("g", "{}")]), want)[0] == "tool_call:arguments"
    assert _difference(_view("hi", "", [("f", '{"x": 1'), ("g", "{}")]), want)[0] == "tool_call:invalid_json"
    assert _difference(_view("ho", "", []), want, fields=("calls",))[0] == "tool_calls:lost"


def test_a_stream_accumulates_by_call_index():
    deltas = [Delta(content="a"), Delta(tool_calls=[ToolCallDelta(0, "id0", "f", '{"x"')]),
              Delta(tool_calls=[ToolCallDelta(0, arguments=": 1}"), ToolCallDelta(1, "id1", "g", "{}")]),
              Delta(content="b")]
    view, indices, spelled = _accumulate(deltas)
    assert view == _view("ab", None, [("f", '{"x": 1}'), ("g", "{}")]) and indices == [0, 1]
    assert spelled == ['{"x": 1}', "{}"]


TWO_CALLS = [Delta(tool_calls=[ToolCallDelta(0, "a", "f", '{"q": "é"}'), ToolCallDelta(1, "b", "g", "{}")])]


@pytest.mark.parametrize("fault, check", [
    ("drop_second_call", lambda out: [t.index for t in out[0].tool_calls] == [0]),
    ("cut_multibyte", lambda out: out[0].tool_calls[0].arguments == '{"q": "'),
    ("marker_in_content", lambda out: out[0].content == "<tool_call>"),
])
def test_each_stream_fault_damages_a_stream_and_leaves_a_plain_one_alone(fault, check):
    _, damage = FAULTS[fault]
    assert check(damage(TWO_CALLS, [Chunk("<tool_call>")]))
    plain = [Delta(content="hello")]
    assert damage(plain, [Chunk("hello")]) == plain


def test_repeat_name_sends_the_name_again_with_later_arguments():
    _, damage = FAULTS["repeat_name"]
    out = damage([Delta(tool_calls=[ToolCallDelta(0, "a", "f", "{")]), Delta(tool_calls=[ToolCallDelta(0, arguments="}")])],
                 [Chunk("x"), Chunk("y")])
    assert out[1].tool_calls[0].name == "f"


def test_drop_last_call_damages_the_whole_parse_only():
    whole, stream = FAULTS["drop_last_call"]
    assert stream is None
    assert whole(Message("c", None, [ToolCall("f", "{}"), ToolCall("g", "{}")])).tool_calls == [ToolCall("f", "{}")]


def test_the_family_table_names_real_rows_and_finds_templates_by_name():
    assert family_of("/x/Qwen-Qwen2.5-7B-Instruct.jinja").name == "qwen2.5"
    assert family_of("Qwen-Qwen3-0.6B.jinja").name == "qwen3"
    assert family_of("mine.jinja") is None
    for fam in FAMILIES:
        assert fam.parsers and all(parser_row(spec) in AVAILABLE_PARSERS for spec in fam.parsers), fam.name
    assert auto_specs("Qwen-Qwen2.5-7B-Instruct.jinja") == family_of("Qwen-Qwen2.5-7B-Instruct.jinja").parsers


@pytest.mark.parametrize("flags, says", [
    (["--parser", "nope:x"], "--parser nope:x: unknown parser"),
    (["--parser", "auto"], "is not a template of a known family"),
    (["--parser", "transformers:hermes"], "parsers need the model's tokenizer"),
    (["--parser", "planted:bogus/transformers:hermes"], "expected planted:FAULT/SPEC"),
])
def test_bad_parser_flags_are_one_error_line(write_template, sources, cli, one_error_line, flags, says):
    path = write_template("mine.jinja", sources.clean)
    result = cli("check", str(path), "--budget", "5", *flags)
    assert says in one_error_line(result)


class _Closes(Parser):
    reads_template = False

    def __init__(self) -> None:
        self.closed = False

    def close(self) -> None:
        self.closed = True


def test_a_released_parser_serves_the_next_context_and_the_oldest_idle_one_closes(monkeypatch):
    from chainfuzz import parsers

    monkeypatch.setattr(parsers, "_idle", {})
    monkeypatch.setattr(parsers.AVAILABLE_PARSERS, "load", lambda row: type("Row", (_Closes,), {
        "from_spec": classmethod(lambda cls, spec, setup: cls())}))
    first = parsers.open_parser("x:a", parsers.ParserSetup(template_source="one"))
    parsers.release(first)
    assert parsers.open_parser("x:a", parsers.ParserSetup(template_source="two")) is first  # reads no template
    assert parsers.open_parser("x:b", parsers.ParserSetup()) is not first
    opened = [parsers.open_parser(f"x:{i}", parsers.ParserSetup()) for i in range(parsers.IDLE + 1)]
    for p in opened:
        parsers.release(p)
    assert opened[0].closed and not any(p.closed for p in opened[1:])
