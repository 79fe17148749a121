"""Parser properties on the real Qwen2.5 template, with transformers' response parser (Hermes
format, in process) as the clean parser and the same parser with a planted fault
(`chainfuzz.parsers.planted`) as the defect each property must find:

- parser.roundtrip: the whole parse loses its last call (drop_last_call);
- parser.stream_split_invariant: a delta holding two calls loses the second (drop_second_call);
- parser.delta_protocol: the chunk that opens a call reaches content (marker_in_content), an
  arguments fragment cut at a multi-byte character (cut_multibyte), a call's arguments sent
  empty (empty_arguments);
- parser.impls_agree: two implementations, one losing the last call in its whole parse.

vLLM's and llama.cpp's parsers are checked against the same properties in their integration
folders.
"""

from __future__ import annotations

import json

import pytest

pytest.importorskip("transformers.utils.chat_parsing", reason="transformers has no response parser")
pytestmark = pytest.mark.corpus

from chainfuzz import corpus  # noqa: E402
from chainfuzz.context import Context  # noqa: E402
from chainfuzz.internal.runner import RunSettings, make_finding, run_property  # noqa: E402
from chainfuzz.registry import get  # noqa: E402
from chainfuzz.replayer import replay  # noqa: E402
from chainfuzz.strategies import tool_schema_for  # noqa: E402
from chainfuzz.targets import load_target  # noqa: E402
from verdicts import check_once, severity  # noqa: E402

CLEAN = "transformers:hermes"


def _call(name, args):
    return {"id": "call_0000001", "type": "function", "function": {"name": name, "arguments": args}}


CALLS = [_call("get_weather", {"city": "Paris é", "days": 3}), _call("search", {"q": "日本"})]
REPLY = {"message": {"role": "assistant", "content": "Let me check.", "tool_calls": CALLS},
         "tools": [tool_schema_for(c["function"]["name"], c["function"]["arguments"]) for c in CALLS]}
ONE_DELTA = {**REPLY, "grouping": {"at": []}}
EVERY_TOKEN = {**REPLY, "grouping": {"every": True}}

PLANTED = [
    ("parser.roundtrip", ["planted:drop_last_call/" + CLEAN], REPLY, "tool_calls:lost"),
    ("parser.stream_split_invariant", ["planted:drop_second_call/" + CLEAN], ONE_DELTA, "split:tool_calls:lost"),
    ("parser.delta_protocol", ["planted:marker_in_content/" + CLEAN], EVERY_TOKEN, "marker_leak:content"),
    ("parser.delta_protocol", ["planted:cut_multibyte/" + CLEAN], ONE_DELTA, "arguments_invalid_json"),
    ("parser.delta_protocol", ["planted:empty_arguments/" + CLEAN], ONE_DELTA, "arguments_empty"),
    ("parser.impls_agree", [CLEAN, "planted:drop_last_call/" + CLEAN], REPLY,
     f"disagrees_with:{CLEAN}:tool_calls:lost"),
]
# The clean twins: the parser unwrapped, and for impls_agree a second implementation whose
# whole parse is the clean one's (its fault is in streaming only).
TWINS = {"parser.impls_agree": [CLEAN, "planted:drop_second_call/" + CLEAN]}


@pytest.fixture(scope="module")
def qwen25():
    return corpus.templates_dir() / "Qwen-Qwen2.5-7B-Instruct.jinja"


def _ctx(path, parsers):
    return Context(load_target(path), parsers=tuple(parsers)).open({"parser"})


@pytest.mark.parametrize("prop, parsers, case, key", PLANTED, ids=[f"{p[0]}-{p[1][-1].split('/')[0]}" for p in PLANTED])
def test_each_planted_fault_fails_and_its_clean_twin_holds(qwen25, prop, parsers, case, key):
    failure = check_once(_ctx(qwen25, parsers), prop, case)
    assert failure is not None and failure.key.endswith(key), failure and failure.key
    assert severity(prop, failure) == "error"
    assert check_once(_ctx(qwen25, TWINS.get(prop, [CLEAN])), prop, case) is None


def test_a_reply_that_spells_a_marker_is_only_a_warning(qwen25):
    """`<tool_call>` in content makes the Hermes parser raise: no format can tell it from a call."""
    case = {"message": {"role": "assistant", "content": "<tool_call>"}, "tools": None}
    ctx = _ctx(qwen25, [CLEAN])
    failure = check_once(ctx, "parser.roundtrip", case)
    assert failure is not None and failure.lenient == "marker_in_text"
    failure.case = case
    finding = make_finding(get("parser.roundtrip"), ctx, failure)
    assert finding.severity == "warning" and finding.key.startswith(f"lenient[marker_in_text]:{CLEAN}:raises:")
    twin = {"message": {"role": "assistant", "content": "tool_call"}, "tools": None}
    assert check_once(_ctx(qwen25, [CLEAN]), "parser.roundtrip", twin) is None


def test_fields_the_template_does_not_write_are_not_the_parsers_to_recover(qwen25):
    """Qwen2.5 writes no reasoning: a reply with reasoning still round-trips."""
    case = {"message": {**REPLY["message"], "reasoning_content": "hidden"}, "tools": REPLY["tools"]}
    assert check_once(_ctx(qwen25, [CLEAN]), "parser.roundtrip", case) is None


def _search(path, prop, parsers, examples=150):
    settings = RunSettings(max_examples=examples, seed=0, max_findings=3, shrink_seconds=10.0)
    return run_property(get(prop), _ctx(path, parsers), settings)


def test_a_search_finds_the_split_fault_and_shrinks_it_to_one_delta(qwen25):
    result = _search(qwen25, "parser.stream_split_invariant", ["planted:drop_second_call/" + CLEAN])
    errors = [f for f in result.findings if f.severity == "error"]
    assert errors and errors[0].key.endswith("split:tool_calls:lost")
    case = errors[0].case
    assert case["grouping"] == {"at": []} and len(case["message"]["tool_calls"]) == 2
    assert all(c["function"]["arguments"] == {} for c in case["message"]["tool_calls"])


@pytest.mark.parametrize("prop", ["parser.roundtrip", "parser.stream_split_invariant", "parser.delta_protocol"])
def test_a_search_on_the_clean_parser_finds_no_error(qwen25, prop):
    result = _search(qwen25, prop, [CLEAN])
    assert result.internal_error is None and result.examples > 100
    assert [f.key for f in result.findings if f.severity == "error"] == []
    assert result.skipped < result.examples / 2  # the search checks what it draws


def test_a_parser_case_records_its_parsers_and_replays(qwen25, tmp_path, cli):
    """A finding's case file names the parser specs; replay reopens them: the planted parser
    still fails, the case pointed at the clean parser is fixed."""
    crashes = tmp_path / "crashes"
    result = cli("check", qwen25, "--parser", "planted:drop_last_call/" + CLEAN, "--property", "parser.roundtrip",
                 "--max-examples", "100", "--seed", "0", "--crashes", crashes)
    assert result.rc == 1, result.err
    case_file = next(p for p in crashes.glob("parser.roundtrip--*.json")
                     if json.loads(p.read_text())["severity"] == "error")
    rec = json.loads(case_file.read_text())
    assert rec["target"]["parsers"] == ["planted:drop_last_call/" + CLEAN]
    assert replay(case_file).status == "fails"
    rec["target"]["parsers"] = [CLEAN]
    case_file.write_text(json.dumps(rec))
    assert replay(case_file).status == "fixed"


def test_a_difference_every_implementation_shares_is_only_a_warning(qwen25):
    """Two implementations (transformers, llama.cpp) losing the same call read the text alike:
    the template is the likelier culprit. The twin: one of them alone losing it is an error."""
    from chainfuzz.parsers.llama_cpp_build import program_path

    try:
        program_path()
    except ImportError as exc:
        pytest.skip(f"llama.cpp's parser cannot be built here: {exc}")
    both = ["planted:drop_last_call/" + CLEAN, "planted:drop_last_call/llama.cpp"]
    failure = check_once(_ctx(qwen25, both), "parser.roundtrip", REPLY)
    assert failure is not None and failure.lenient == "every_parser"
    one = ["planted:drop_last_call/" + CLEAN, "llama.cpp"]
    failure = check_once(_ctx(qwen25, one), "parser.roundtrip", REPLY)
    assert failure is not None and failure.lenient is None
