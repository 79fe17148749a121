"""Hostile templates: memory bombs, hangs and templates that change the case they are given.

Each is checked by the real CLI in a child process (the `hostile` fixture): bounded time and
peak memory, the limit hit recorded as the finding of the input that did it, the case file
small, parseable and replaying the same way.
"""

from __future__ import annotations

import json

import pytest

SEARCH = ("--property", "template.renders", "--max-examples", "5", "--seed", "1")

# (name, template, the key prefix of the finding). Each blows memory up in one render; output
# past the limit and a MemoryError are one key (which comes first depends on memory held).
MEMORY_BOMBS = [
    ("center(10**9)", "{{ messages[0].content | center(10**9) }}", ("MemoryLimit",)),
    ("tojson(indent=10**8)", "{{ messages | tojson(indent=10**8) }}", ("MemoryLimit",)),
    ("loop yielding 300 KB a step",
     "{% for i in range(100000) %}{{ 'x' * 300000 }}{% endfor %}", ("MemoryLimit",)),
    ("macro accumulating 30 GB",
     "{% macro m() %}{% for i in range(100000) %}{{ 'x' * 300000 }}{% endfor %}{% endmacro %}{{ m() }}",
     ("MemoryLimit", "Timeout")),
    ("'x' * 10**10", "{{ 'x' * 10**10 }}", ("MemoryLimit",)),
    ("list * 10**9", "{{ ([messages] * 10**9) | length }}", ("MemoryLimit",)),
]


@pytest.mark.parametrize("name,source,keys", MEMORY_BOMBS, ids=[m[0] for m in MEMORY_BOMBS])
def test_a_memory_bomb_is_a_finding_within_the_memory_limit(hostile, write_template, tmp_path,
                                                           name, source, keys):
    tpl = write_template("bomb.jinja", source)
    r = hostile("3 memory", name, "check", tpl, *SEARCH, "--budget", "20",
                "--crashes", tmp_path / "crashes", expect_rc=1, max_seconds=60)
    found = r.cases()  # under load a slow render may also time out: then two findings
    assert found and all(c["key"].startswith((*keys, "Timeout")) for c in found), found
    assert any(c["key"].startswith(keys) for c in found), found
    assert max(p.stat().st_size for p in (tmp_path / "crashes").iterdir()) < 10**5


def test_a_huge_raise_exception_message_is_clipped(hostile, write_template, tmp_path):
    """`raise_exception('E' * 10**8)` once wrote a 200 MB case file."""
    tpl = write_template("shout.jinja", "{{ raise_exception('E' * 10**8) }}")
    r = hostile("3 memory", "raise_exception('E' * 10**8)", "check", tpl, *SEARCH,
                "--crashes", tmp_path / "crashes", expect_rc=0, max_seconds=60)
    [case] = r.cases()
    assert case["severity"] == "warning"
    sizes = [p.stat().st_size for p in (tmp_path / "crashes").iterdir()]
    assert max(sizes) < 100_000, sizes
    assert "characters" in case["message"]  # says how much was cut


# --- hangs ---------------------------------------------------------------------------------

TOP_LEVEL_LOOP = "{% for i in range(10**5) %}{% for j in range(10**5) %}{% endfor %}{% endfor %}"


def _budget_template(name: str, clean: str) -> str:
    if name == "hangs on tools":
        return clean.replace("{%- if tools -%}", "{%- if tools -%}{% for i in range(10**5) %}"
                             "{% for j in range(10**5) %}{% endfor %}{% endfor %}")
    return TOP_LEVEL_LOOP if name == "loop at top level" else clean


def test_a_template_that_hangs_at_top_level_is_a_timeout_finding(hostile, write_template, tmp_path):
    """It compiles; it is not bad input (once "did not compile within 2s", exit 2, and
    load-dependent) but ``template.renders``' Timeout finding."""
    tpl = write_template("loop.jinja", TOP_LEVEL_LOOP)
    r = hostile("4 hangs", "loop at top level", "check", tpl, "--max-examples", "5", "--seed", "1",
                "--budget", "15", "--crashes", tmp_path / "crashes", expect_rc=1, max_seconds=30)
    assert [c["key"].split(":")[0] for c in r.cases()] == ["Timeout"]


@pytest.mark.parametrize("budget", [1, 15])
@pytest.mark.parametrize("name", ["hangs on tools", "loop at top level", "clean"])
def test_the_budget_is_a_wall_clock_promise(hostile, write_template, tmp_path, sources, name, budget):
    """Every property, structure learning included, within a few seconds of ``--budget``
    (the start-up, ~4 s with transformers imported, is on top; once 61-82 s for 15 s)."""
    tpl = write_template("t.jinja", _budget_template(name, sources.clean))
    r = hostile("4 hangs", f"{name}, --budget {budget}", "check", tpl, "--budget", str(budget),
                "--seed", "1", "--crashes", tmp_path / "crashes", expect_rc=(0, 1),
                max_seconds=budget + 12)
    if name != "clean":
        assert any(c["key"].startswith("Timeout") for c in r.cases()) or budget == 1


# --- templates that change the case they are given -----------------------------------------

# jinja2's ImmutableSandboxedEnvironment hides these methods (`is defined` is false); minijinja
# hands templates the caller's objects, so only a minijinja render can change them.
MUTATIONS = [
    ("messages.clear()", "{% if messages.clear is defined %}{{ messages.clear() }}{% endif %}"),
    ("messages.append(1)", "{% if messages.append is defined %}{{ messages.append(1) }}{% endif %}"),
    ("messages.append(messages)",
     "{% if messages.append is defined %}{{ messages.append(messages) }}{% endif %}"),
    ("message.update()", "{% if messages and messages[0].update is defined %}"
                         "{{ messages[0].update({'content': 'changed', 'role': 'x'}) }}{% endif %}"),
    ("messages.pop()", "{% if messages.pop is defined %}{{ messages.pop() }}{% endif %}"),
]


@pytest.mark.parametrize("name,prefix", MUTATIONS, ids=[m[0] for m in MUTATIONS])
def test_a_template_cannot_change_the_recorded_case(hostile, write_template, tmp_path, name, prefix):
    """The finding (transformers and minijinja disagree) is recorded with the input the
    template was given, and replays as failing, not "fixed"."""
    tpl = write_template("mutating.jinja", prefix + "{% for m in messages %}{{ m.role }}{% endfor %}")
    crashes = tmp_path / "crashes"
    r = hostile("5 live case", name, "check", tpl, "--property", "template.engines_agree",
                "--max-examples", "20", "--seed", "1", "--crashes", crashes, expect_rc=0, max_seconds=60)
    cases = r.cases()
    assert cases, r.out
    for case in cases:
        json.dumps(case["input"])  # not self-referencing
        assert case["input"]["messages"], case["input"]  # the template's clear() did not reach it
        assert all(isinstance(m, dict) and m.get("role") != "x" for m in case["input"]["messages"])
        assert case["reproduced"] is True
    replayed = hostile("5 live case", f"{name}: replay", "replay", crashes, expect_rc=1, max_seconds=60)
    assert "fixed" not in replayed.out, replayed.out
