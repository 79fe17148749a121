"""The runner's search: shared inputs, time shared among searches, mutation, memory between runs.

Each behaviour is shown on planted properties (registry.Property objects built here) on a
trivial template, with a twin where the behaviour must not show.
"""

from __future__ import annotations

import re
import time

import pytest
from hypothesis import strategies as st
from hypothesis.database import InMemoryExampleDatabase

from chainfuzz import Failure, registry
from chainfuzz.context import Context
from chainfuzz.internal import mutate
from chainfuzz.internal.memory import Memory, target_key
from chainfuzz.internal.runner import RunSettings, Search, group, run_property, run_searches
from chainfuzz.targets import Target


def _ctx() -> Context:
    return Context(Target("{{ messages[0]['content'] }}", "inline", "t"))


def _prop(pid: str, check, inputs) -> registry.Property:
    return registry.Property(id=pid, check=check, inputs=inputs, applies_to="template",
                             severity="error", description="")


def _texts(ctx):
    return st.fixed_dictionaries({"messages": st.lists(
        st.fixed_dictionaries({"role": st.sampled_from(["user", "assistant"]), "content": st.text()}),
        min_size=1, max_size=3)})


def test_properties_that_take_the_same_inputs_share_each_drawn_input():
    seen: dict[str, list] = {"a": [], "b": [], "c": []}
    a = _prop("t.a", lambda ctx, case: seen["a"].append(id(case)), _texts)
    b = _prop("t.b", lambda ctx, case: seen["b"].append(id(case)), _texts)
    c = _prop("t.c", lambda ctx, case: seen["c"].append(id(case)), lambda ctx: _texts(ctx))
    groups = group([a, b, c])
    assert [[p.id for p in g] for g in groups] == [["t.a", "t.b"], ["t.c"]]
    run = RunSettings(max_examples=30, seed=1)
    search = Search(groups[0], _ctx(), run)
    run_searches([search], run)
    assert len(seen["a"]) == 30 and seen["a"] == seen["b"]  # the very same inputs, in order
    assert not seen["c"]


def test_a_failure_of_one_property_is_shrunk_and_recorded_for_it_alone():
    def needs_two(ctx, case):
        if len(case["messages"]) >= 2:
            raise Failure("two messages", key="two")

    a = _prop("t.two", needs_two, _texts)
    b = _prop("t.ok", lambda ctx, case: None, _texts)
    run = RunSettings(max_examples=100, seed=3)
    search = Search([a, b], _ctx(), run)
    run_searches([search], run)
    found = search.results["t.two"].findings
    assert [f.key for f in found] == ["two"] and len(found[0].case["messages"]) == 2
    assert not search.results["t.ok"].findings and search.results["t.ok"].examples >= 99


def test_a_time_bound_search_is_not_capped_by_examples():
    prop = _prop("t.ok", lambda ctx, case: None, _texts)
    capped = run_property(prop, _ctx(), RunSettings(max_examples=20, seed=1))
    # 3 s: at 1.5 s a full run on a loaded 2-core machine once spent it all on Hypothesis rounds
    # (812 examples, no mutant); the claim is about what bounds the search, not its speed.
    timed = run_property(prop, _ctx(), RunSettings(max_examples=None, budget=3.0, seed=1))
    assert capped.examples == 20
    assert timed.examples > 200 and timed.mutants > 0


def _needle(ctx, case):
    """Fails when one message repeats another's text: rare in generation (two equal long
    strings), two edits away by mutation (one text spliced into another field)."""
    texts = [m["content"] for m in case["messages"] if len(m["content"]) >= 6]
    if len(texts) != len(set(texts)):
        raise Failure("a text repeated", key="repeat")


def test_mutation_finds_what_splicing_reaches_and_shrinks_it():
    prop = _prop("t.needle", _needle, _texts)
    run = RunSettings(max_examples=None, budget=8, seed=2, shrink_seconds=2)
    result = run_property(prop, _ctx(), run)
    assert result.mutants > 0
    assert [f.key for f in result.findings] == ["repeat"]
    case = result.findings[0].case
    assert len(case["messages"]) == 2 and all(len(m["content"]) == 6 for m in case["messages"])


def test_mutants_stay_in_the_space_their_inputs_were_drawn_from():
    """Roles, message order, ids, tool names and JSON-string arguments are never edited;
    numbers keep values their field held; words-only fields stay words; sizes stay bounded."""
    import random

    m = mutate.Mutator(random.Random(0), ("<|im_end|>",))
    call = {"id": "abcdefghi", "type": "function", "function": {"name": "f", "arguments": '{"a": 1}'}}
    case = {"messages": [{"role": "user", "content": "hi"},
                         {"role": "assistant", "content": None, "tool_calls": [call]},
                         {"role": "tool", "tool_call_id": "abcdefghi", "content": "x" * 200}],
            "tools": [{"type": "function", "function": {"name": "f"}}],
            "chunks": [1, 2], "reply": "two words", "add_generation_prompt": False}
    m.learn(case)
    m.learn({"chunks": [4], "reply": "other"})
    for _ in range(500):
        case = m.mutate(case)
        assert [msg["role"] for msg in case["messages"]] == ["user", "assistant", "tool"]
        assert case["messages"][1]["tool_calls"] == [call] and case["messages"][2]["tool_call_id"] == "abcdefghi"
        assert case["tools"] == [{"type": "function", "function": {"name": "f"}}]
        assert set(case["chunks"]) <= {1, 2, 4} and 1 <= len(case["chunks"]) <= 2
        assert re.fullmatch(r"[a-z ]+", case["reply"]) and len(case["reply"]) < 200
    assert len(case["messages"][2]["content"]) <= 200
    assert case["messages"][0]["content"] != "hi" or case["messages"][2]["content"] != "x" * 200


def _rare(ctx, case):
    if any(m["content"] == "zebra-7" for m in case["messages"]):
        raise Failure("the rare text", key="rare")


@pytest.mark.parametrize("remembered", [True, False])
def test_a_rerun_checks_remembered_failures_first(remembered):
    """Run 1 is handed the failing input; run 2, with another seed and one example, finds it
    only through the database."""
    prop = _prop("t.rare", _rare, _texts)
    ctx = _ctx()
    db = InMemoryExampleDatabase()
    memory = Memory(db, target_key(ctx.target), [prop.id])
    if remembered:
        memory.save_failure(prop.id, {"messages": [{"role": "user", "content": "zebra-7"}]})
    run = RunSettings(max_examples=1, seed=9, database=db)
    search = Search([prop], ctx, run, memory=Memory(db, target_key(ctx.target), [prop.id]))
    run_searches([search], run)
    assert [f.key for f in search.results[prop.id].findings] == (["rare"] if remembered else [])


def test_interesting_inputs_are_remembered_across_runs_and_the_store_stays_bounded():
    from chainfuzz.internal import memory as memory_module

    prop = _prop("t.ok", lambda ctx, case: None, _texts)
    ctx = _ctx()
    db = InMemoryExampleDatabase()
    run = RunSettings(max_examples=None, budget=1.0, seed=1, database=db)
    first = Search([prop], ctx, run, memory=Memory(db, target_key(ctx.target), [prop.id]))
    run_searches([first], run)
    stored = Memory(db, target_key(ctx.target), [prop.id]).corpus()
    assert 0 < len(stored) <= memory_module.MAX_CORPUS
    other = Memory(db, target_key(Context(Target("{{ 1 }}", "inline", "u")).target), [prop.id])
    assert other.corpus() == []  # keyed by the target


def test_time_goes_to_the_search_still_finding_new_behaviour_after_a_floor_for_each():
    """Two searches: one whose inputs keep showing new shapes, one that sees a single input
    over and over. Each gets at least its floor; the rest goes to the first."""
    many = st.fixed_dictionaries({"messages": st.lists(st.fixed_dictionaries(
        {"role": st.sampled_from(["user", "assistant", "system", "tool"]),
         "content": st.lists(st.text(), max_size=4)}), min_size=1, max_size=6)})
    varied = _prop("t.varied", lambda ctx, case: None, lambda ctx: many)
    same = _prop("t.same", lambda ctx, case: time.sleep(0.001),
                 lambda ctx: st.just({"messages": [{"role": "user", "content": "x"}]}))
    run = RunSettings(max_examples=None, seed=1)
    searches = [Search([same], _ctx(), run), Search([varied], _ctx(), run)]
    run_searches(searches, run, total_budget=6.0)
    spent = {s.props[0].id: s.seconds for s in searches}
    assert spent["t.same"] >= 0.8 * 6.0 * 0.5 / 2  # its floor
    assert spent["t.varied"] > 2 * spent["t.same"]


def test_skipped_inputs_are_counted_with_their_reason():
    def picky(ctx, case):
        from chainfuzz import assume

        assume(len(case["messages"]) > 1, "needs two messages")

    result = run_property(_prop("t.picky", picky, _texts), _ctx(), RunSettings(max_examples=40, seed=1))
    assert result.skipped > 0 and result.why_unchecked() == "needs two messages"
    assert result.checked == pytest.approx(result.examples / result.tries)
    assert result.to_json()["skip_reasons"] == {"needs two messages": result.skipped}


def test_a_sweeps_second_pass_goes_to_the_rows_that_gained_most():
    from chainfuzz.report import Row
    from chainfuzz.sweep import MIN_SECOND_PASS, second_shares

    run = RunSettings(seed=5)
    tasks = [(f"/t/{n}.jinja", ["template.renders"], run, 10.0, None, 0) for n in ("busy", "idle", "broken")]
    rows = {"busy": Row("busy", seconds=10, gain=400, findings=[{"signature": "abc"}]),
            "idle": Row("idle", seconds=10, gain=0), "broken": Row("broken", error="does not compile")}
    again = second_shares(tasks, rows, jobs=2, left=20.0)
    assert [t[0] for t in again] == ["/t/busy.jinja"]  # idle's share is under the minimum
    assert again[0][3] > 2 * 20.0 * 0.9 and again[0][2].seed == 6 and again[0][2].known == {"abc"}
    even = {"busy": Row("busy", seconds=10, gain=0), "idle": Row("idle", seconds=10, gain=0)}
    assert [t[3] for t in second_shares(tasks, even, 2, 20.0)] == [20.0, 20.0]
    short = second_shares(tasks, even, 1, MIN_SECOND_PASS * 1.5)  # one minimum share fits
    assert [t[3] for t in short] == [MIN_SECOND_PASS]


def test_fuzz_gives_the_second_pass_to_the_harness_gaining_coverage():
    from chainfuzz.fuzz.launch import MIN_SECOND_PASS, _second_pass
    from chainfuzz.report import HarnessRun

    runs = {"template": HarnessRun("template", 10, wall=12, gain=900), "tokenizer": HarnessRun("tokenizer", 10, wall=12)}
    assert _second_pass(runs, 60) == [("template", 60)]
    flat = {"template": HarnessRun("template", 10, wall=12), "tokenizer": HarnessRun("tokenizer", 10, wall=12)}
    assert sorted(_second_pass(flat, 60)) == [("template", 30), ("tokenizer", 30)]
    assert _second_pass(runs, MIN_SECOND_PASS - 1) == []
    assert _second_pass({"template": runs["template"]}, 60) == []


@pytest.mark.parametrize("listed", [True, False])
def test_a_propertys_boundary_examples_are_checked_before_any_drawn_input(listed):
    rare = {"messages": [{"role": "user", "content": "zebra-7"}]}
    prop = registry.Property(id="t.rare", check=_rare, inputs=_texts, applies_to="template",
                             severity="error", description="",
                             examples=(lambda ctx: [rare, rare]) if listed else None)
    result = run_property(prop, _ctx(), RunSettings(max_examples=1, seed=4))
    assert [f.key for f in result.findings] == (["rare"] if listed else [])
