"""What a finding promises: its tier (standard or lenient input), a key that names its site,
and a minimal reproducer shrunk outside the search's clock."""

from __future__ import annotations

import json
import time

import pytest

from chainfuzz import schema
from chainfuzz.checker import check
from chainfuzz.internal import limits
from chainfuzz.internal.reduce import reduce_case
from chainfuzz.internal.runner import RunSettings
from chainfuzz.replayer import replay

RENDERS = ["template.renders"]

# A ChatML template that renders every shape: tool results as objects and JSON-string
# arguments included. Each planted defect below replaces one of its lines.
CLEAN = """\
{%- for m in messages -%}
<|im_start|>{{ m.role }}
{% if m.content is string %}{{ m.content }}{% elif m.content is mapping %}{{ m.content | tojson }}{% elif m.content %}{% for p in m.content %}{{ p.text }}{% endfor %}{% endif %}
{%- for c in m.tool_calls or [] %}<tool_call>{{ c.function.name }} {% if c.function.arguments is string %}{{ c.function.arguments }}{% else %}{{ c.function.arguments | tojson }}{% endif %}</tool_call>{% endfor %}<|im_end|>
{% endfor -%}
"""
LINE_3 = ("{% if m.content is string %}{{ m.content }}{% elif m.content is mapping %}{{ m.content | tojson }}"
          "{% elif m.content %}{% for p in m.content %}{{ p.text }}{% endfor %}{% endif %}")
# Crashes on a tool result given as an object (lenient): the result is concatenated.
OBJECT_RESULT_CRASH = CLEAN.replace("{{ m.content | tojson }}", "{{ '' + m.content }}")
# Crashes on null assistant content, which standard inputs carry beside tool calls.
NULL_CRASH = CLEAN.replace("{% if m.content is string %}", "{% if m.content is none %}{{ m.content + '' }}"
                           "{% elif m.content is string %}")
# Two defects raising the same TypeError on two lines: text parts in a system message, and in
# a user message. Each twin fixes one of them.
_PARTS = "{% elif m.content %}{% for p in m.content %}{{ p.text }}{% endfor %}{% endif %}"
TWO_SITES = CLEAN.replace(LINE_3, LINE_3.replace(_PARTS, "{% elif m.role == 'system' %}{{ 'system: ' + m.content }}"
                                                 "\n{% elif m.content %}{{ 'user: ' + m.content }}{% endif %}"))
SYSTEM_FIXED = TWO_SITES.replace("{{ 'system: ' + m.content }}", "{% for p in m.content %}{{ p.text }}{% endfor %}")


def _findings(report):
    return [f for t in report.targets for f in t.findings]


def _search(write_template, source, name, crashes, seed=0, examples=200):
    tpl = write_template(name, source)
    return tpl, check(tpl, property_ids=RENDERS, run=RunSettings(max_examples=examples, seed=seed),
                      crashes_dir=crashes)


# --- tiers --------------------------------------------------------------------------------

@pytest.mark.parametrize("rule, lenient, standard", [
    ("null_content", {"role": "assistant", "content": None},
     {"role": "assistant", "content": None, "reasoning_content": "hmm"}),
    ("object_result", {"role": "tool", "tool_call_id": "abcDEF123", "content": {"sky": "clear"}},
     {"role": "tool", "tool_call_id": "abcDEF123", "content": [{"type": "text", "text": "clear"}]}),
    ("string_arguments", {"role": "assistant", "content": None, "tool_calls": [
        {"id": "abcDEF123", "type": "function", "function": {"name": "f", "arguments": '{"a": 1}'}}]},
     {"role": "assistant", "content": None, "tool_calls": [
         {"id": "abcDEF123", "type": "function", "function": {"name": "f", "arguments": {"a": 1}}}]}),
])
def test_each_rule_tells_a_lenient_message_from_its_standard_twin(rule, lenient, standard):
    user = {"role": "user", "content": "hi"}
    assert schema.nonstandard({"messages": [user, lenient]}) == (rule,)
    assert schema.is_standard({"messages": [user, standard]})
    forms = list(schema.standard_forms({"messages": [user, lenient]}))
    assert forms and all(schema.is_standard(f) for f in forms)
    if rule == "null_content":  # "" first; then null kept, beside reasoning
        assert [f["messages"][1]["content"] for f in forms] == ["", None]
    assert schema.finding_key("TypeError@line 3:x", {"messages": [lenient]}) == f"lenient[{rule}]:TypeError@line 3:x"
    assert schema.legacy_key(f"lenient[{rule}]:TypeError@line 3:x") == "TypeError:x"


def test_a_defect_only_lenient_input_reaches_is_a_warning_naming_the_field(write_template, tmp_path):
    _, report = _search(write_template, OBJECT_RESULT_CRASH, "objcrash.jinja", tmp_path / "crashes")
    [finding] = [f for f in _findings(report) if "TypeError" in f.key]
    assert finding.severity == "warning"
    assert finding.key.startswith("lenient[object_result]:TypeError@line 3:")
    assert "a tool result given as an object" in finding.message
    assert schema.nonstandard(finding.case) == ("object_result",)


def test_a_defect_standard_input_reaches_is_an_error_on_a_standard_reproducer(write_template, tmp_path):
    """Null content crashes the template: with tool calls beside it (standard) as well as
    alone (lenient). The finding is the error, on a standard input."""
    _, report = _search(write_template, NULL_CRASH, "nullcrash.jinja", tmp_path / "crashes")
    crashes = [f for f in _findings(report) if "NoneType" in f.key]
    assert [(f.severity, f.key.split(":")[0]) for f in crashes] == [("error", "TypeError@line 3")], \
        [(f.severity, f.key) for f in crashes]
    assert schema.is_standard(crashes[0].case)
    # The clean twin renders both.
    _, twin = _search(write_template, CLEAN, "clean.jinja", tmp_path / "twin")
    assert _findings(twin) == []


# --- keys that name the site --------------------------------------------------------------

def test_two_defects_of_one_exception_get_two_keys_and_replay_apart(write_template, tmp_path):
    crashes = tmp_path / "crashes"
    tpl, report = _search(write_template, TWO_SITES, "twosites.jinja", crashes)
    keys = sorted(f.key for f in _findings(report) if f.key.startswith("TypeError"))
    assert [k.split(":")[0] for k in keys] == ["TypeError@line 3", "TypeError@line 4"], keys
    assert len({k.split(":", 1)[1] for k in keys}) == 1  # the same message: only the site differs
    tpl.write_text(SYSTEM_FIXED, encoding="utf-8")  # the vendor fixes one of them
    outcomes = {json.loads(p.read_text())["key"].split(":")[0]: replay(p).status
                for p in crashes.glob("*.json")}
    assert outcomes == {"TypeError@line 3": "fixed", "TypeError@line 4": "fails"}, outcomes


def test_a_case_file_written_before_keys_had_sites_still_replays(write_template, tmp_path):
    crashes = tmp_path / "crashes"
    _, report = _search(write_template, NULL_CRASH, "nullcrash.jinja", crashes)
    [path] = [p for p in crashes.glob("*.json") if "NoneType" in json.loads(p.read_text())["key"]]
    rec = json.loads(path.read_text())
    rec["key"] = schema.legacy_key(rec["key"])  # "TypeError:unsupported operand..." as 0.1 wrote it
    assert "@" not in rec["key"]
    path.write_text(json.dumps(rec))
    assert replay(path).status == "fails"
    rec["key"] = "TypeError@line 9:" + rec["key"].split(":", 1)[1]  # another site: another defect
    path.write_text(json.dumps(rec))
    assert replay(path).status == "fails-differently"


# --- minimal reproducers ------------------------------------------------------------------

def test_every_recorded_reproducer_is_a_fixed_point_of_the_reducer(write_template, tmp_path):
    from chainfuzz.context import Context
    from chainfuzz.errors import Failure
    from chainfuzz.registry import get
    from chainfuzz.targets import load_target

    tpl, report = _search(write_template, TWO_SITES, "twosites.jinja", tmp_path / "crashes")
    prop = get("template.renders")
    ctx = Context(load_target(tpl))
    for finding in _findings(report):
        assert finding.minimal.startswith("a fixed point of the structural reducer"), finding.minimal

        def still_fails(case, key=finding.key):
            try:
                prop.check(ctx, case)
            except Failure as f:
                return schema.finding_key(f.key, case) == key
            return False

        again = reduce_case(finding.case, still_fails)
        assert again.case == finding.case and again.fixed_point


def test_shrinking_stops_the_budgets_clock():
    """The budget's end moves back by what shrinking took, up to the shrink allowance."""
    with limits.budget(1.0):
        end = limits.deadline()
        with limits.shrinking(10.0) as stop:
            assert stop == pytest.approx(end + limits.SHRINK_ALLOWANCE, abs=0.05)  # a share of the budget
            time.sleep(0.2)
        assert limits.deadline() == pytest.approx(end + 0.2, abs=0.05)
        assert limits.extended() >= 0.2


def test_a_time_bound_search_gets_its_budget_besides_its_shrinking(write_template, tmp_path):
    tpl = write_template("twosites.jinja", TWO_SITES)
    report = check(tpl, property_ids=RENDERS, run=RunSettings(max_examples=None, seed=0), total_budget=2.0,
                   crashes_dir=tmp_path / "crashes")
    assert _findings(report) and report.shrink_seconds > 0
    assert report.seconds == pytest.approx(2.0 + report.shrink_seconds, abs=0.6)
    assert report.seconds <= 2.0 * (1 + limits.SHRINK_ALLOWANCE) + 0.6


def test_a_lenient_reproducer_moves_to_a_standard_form_and_stays_there(write_template):
    """Null content alone crashes the template; so does null content beside reasoning, the
    standard shape. The reducer moves the reproducer there and does not drop the reasoning
    again to get smaller (that would make it lenient)."""
    from chainfuzz.context import Context
    from chainfuzz.errors import Failure
    from chainfuzz.internal.runner import reduce_failure
    from chainfuzz.registry import get
    from chainfuzz.targets import load_target

    ctx = Context(load_target(write_template("nullcrash.jinja", NULL_CRASH)))
    prop = get("template.renders")
    lenient = {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": None}],
               "tools": None}
    with pytest.raises(Failure) as caught:
        prop.check(ctx, lenient)
    failure = caught.value
    failure.case = lenient
    shrunk = reduce_failure(prop, ctx, failure, time.monotonic() + 10)
    assert schema.is_standard(shrunk.case), shrunk.case
    [msg] = shrunk.case["messages"]  # the reasoning text cut to one character, never dropped
    assert msg["content"] is None and len(msg["reasoning_content"]) == 1, msg
    assert shrunk.minimal.startswith("a fixed point")
