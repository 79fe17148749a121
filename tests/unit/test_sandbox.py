"""Templates are untrusted: time and size limits, no evaluation of input, error classification."""

from __future__ import annotations

import json
import time

import pytest

from chainfuzz import registry
from chainfuzz.context import Context
from chainfuzz.template.render import Renderer, RenderError
from chainfuzz.internal.runner import RunSettings, run_property
from chainfuzz.targets import BARE_TEMPLATE_TOKENS, Target

USER_HI = [{"role": "user", "content": "hi"}]


def target(source: str, name: str = "t") -> Target:
    return Target(source=source, path=f"{name}.jinja", name=name,
                          special_tokens=dict(BARE_TEMPLATE_TOKENS))


# --- time limit ----------------------------------------------------------------------------------

def test_a_hanging_render_times_out(sources):
    ctx = Context(target(sources.looping), time_limit=0.5)
    start = time.monotonic()
    with pytest.raises(RenderError) as err:
        ctx.render(USER_HI)
    assert time.monotonic() - start < 3
    assert err.value.kind == "timeout"
    assert err.value.exc_type == "Timeout"
    # the alarm is cleared afterwards: nothing fires later, and normal renders still work
    time.sleep(0.7)
    assert Context(target("{{ messages | length }}")).render(USER_HI) == "1"


def test_a_hanging_template_is_a_renders_failure_keyed_timeout(sources):
    ctx = Context(target(sources.looping, "loop"), time_limit=0.5)
    start = time.monotonic()
    result = run_property(registry.get("template.renders"), ctx,
                          RunSettings(max_examples=2, seed=1, shrink_seconds=1.0))
    assert time.monotonic() - start < 10
    assert result.internal_error is None
    assert [f.key.startswith("Timeout") for f in result.findings] == [True]
    assert result.findings[0].severity == "error"


def test_a_hanging_template_via_the_cli(cli, write_template, sources, tmp_path):
    tpl = write_template("loop.jinja", sources.looping)
    report = tmp_path / "r.json"
    start = time.monotonic()
    r = cli("check", tpl, "--budget", "2", "--seed", "1", "--crashes", tmp_path / "c",
            "--json", report, "--property", "template.renders")
    assert time.monotonic() - start < 15
    assert r.rc == 1, r.out + r.err
    doc = json.loads(report.read_text(encoding="utf-8"))
    [failure] = doc["failures"]
    assert failure["property"] == "template.renders"
    assert failure["reproducer"]["key"].startswith("Timeout")


def test_a_template_that_hangs_on_everything_is_a_timeout_finding(cli, write_template, tmp_path):
    """A template that does not finish even an empty conversation compiles: its hang is
    ``template.renders``' Timeout finding, not bad input, and costs the run seconds (after
    a few timeouts in a row the other properties skip without rendering)."""
    tpl = write_template("hang_always.jinja",
                         "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}")
    report = tmp_path / "r.json"
    start = time.monotonic()
    r = cli("check", tpl, "--max-examples", "5", "--seed", "1", "--crashes", tmp_path / "c",
            "--json", report)
    assert time.monotonic() - start < 40
    assert r.rc == 1, r.out + r.err
    doc = json.loads(report.read_text(encoding="utf-8"))
    assert [f["reproducer"]["key"].split(":")[0] for f in doc["failures"]] == ["Timeout"]


# --- output limit --------------------------------------------------------------------------------

BLOWUP = "{% for m in messages %}{% for i in range(1000) %}{{ m.content }}xxxxxxxxxx{% endfor %}{% endfor %}"


def test_output_over_the_limit_is_output_limit():
    with pytest.raises(RenderError) as err:
        Context(target(BLOWUP), max_output=5000).render(USER_HI)
    assert err.value.kind == "output_limit"
    assert "5000" in str(err.value)
    # under a larger limit the same render succeeds
    assert len(Context(target(BLOWUP), max_output=20000).render(USER_HI)) == 12000


def test_output_blowup_is_a_renders_failure():
    ctx = Context(target(BLOWUP, "blowup"), max_output=5000)
    result = run_property(registry.get("template.renders"), ctx, RunSettings(max_examples=5, seed=1))
    assert result.internal_error is None
    assert [f.key.split(":")[0] for f in result.findings] == ["MemoryLimit"]  # unbounded output


# --- input is data, never template code -----------------------------------------------------------

INJECTIONS = ["{{ 7*7 }}", "{% if true %}yes{% endif %}", "{{ raise_exception('boom') }}",
              "{% for x in range(3) %}{{ x }}{% endfor %}", "{# hidden #}"]


@pytest.mark.parametrize("payload", INJECTIONS)
def test_jinja_in_message_content_is_not_evaluated(sources, payload):
    ctx = Context(target(sources.clean))
    messages = [
        {"role": "system", "content": payload},
        {"role": "user", "content": [{"type": "text", "text": payload}]},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_1", "type": "function",
             "function": {"name": "f", "arguments": {"q": payload}}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": payload},
    ]
    expected = (f"<|im_start|>system\n{payload}<|im_end|>\n"
                f"<|im_start|>user\n{payload}<|im_end|>\n"
                f"<|im_start|>assistant\n<tool_call>f {json.dumps({'q': payload})}</tool_call><|im_end|>\n"
                f"<|im_start|>tool\n{payload}<|im_end|>\n")
    assert ctx.render(messages) == expected
    assert ctx.minijinja.render(messages) == expected


def test_seven_times_seven_stays_literal(sources):
    out = Context(target(sources.clean)).render([{"role": "user", "content": "{{ 7*7 }}"}])
    assert "{{ 7*7 }}" in out
    assert "49" not in out


def test_the_template_cannot_mutate_its_input():
    messages = [{"role": "user", "content": "hi"}]
    with pytest.raises(RenderError) as err:
        Renderer(target("{{ messages.append({'role': 'user'}) }}")).render(messages)
    assert err.value.kind == "error"
    assert err.value.exc_type == "SecurityError"
    assert messages == [{"role": "user", "content": "hi"}]


# --- error classification ------------------------------------------------------------------------

REFUSES = ("{% for m in messages %}{% if m.role == 'system' %}"
           "{{ raise_exception('System role not supported') }}{% endif %}{{ m.content }}{% endfor %}")


def test_raise_exception_is_kind_raised():
    with pytest.raises(RenderError) as err:
        Renderer(target(REFUSES)).render([{"role": "system", "content": "x"}])
    assert err.value.kind == "raised"
    assert err.value.deliberate
    assert str(err.value) == "System role not supported"
    assert Renderer(target(REFUSES)).render(USER_HI) == "hi"


@pytest.mark.parametrize("source, exc_type", [
    ("{{ messages[0].content + 1 }}", "TypeError"),
    ("{{ messages[0].content.no_such_method() }}", "UndefinedError"),
    ("{{ 1 / 0 }}", "ZeroDivisionError"),
])
def test_accidental_errors_are_kind_error(source, exc_type):
    with pytest.raises(RenderError) as err:
        Renderer(target(source)).render(USER_HI)
    assert err.value.kind == "error"
    assert not err.value.deliberate
    assert err.value.exc_type == exc_type


def test_deliberate_refusal_is_a_warning_and_a_crash_an_error():
    renders = registry.get("template.renders")
    ctx = Context(target(REFUSES, "refuses"))
    result = run_property(renders, ctx, RunSettings(max_examples=30, seed=1))
    assert result.findings, "30 conversations and none with a system message?"
    assert {f.severity for f in result.findings} == {"warning"}
    assert all(f.key.startswith("constraint:") for f in result.findings)


def test_the_issue_example_range_of_a_billion_is_a_renders_failure():
    """``{% for i in range(10**9) %}`` is a template.renders error at once, not a hung run."""
    source = "{% for i in range(10**9) %}x{% endfor %}{% for m in messages %}{{ m.content }}{% endfor %}"
    start = time.monotonic()
    result = run_property(registry.get("template.renders"), Context(Target(source, "inline", "t")),
                          RunSettings(max_examples=10, seed=0, max_findings=1, shrink_seconds=0.5))
    assert [(f.severity, f.key.split(":")[0]) for f in result.findings] == [("error", "OverflowError@line 1")]
    assert time.monotonic() - start < 10


def test_an_alarm_swallowed_by_a_gc_callback_fires_again():
    """An exception raised while a gc callback runs is "unraisable" and lost (Hypothesis
    installs such a callback): it is raised again, so the limit holds."""
    import gc

    from chainfuzz.template.render import TimeLimitExceeded, time_limit

    def slow_callback(phase, info):  # the first collection spans the alarm's moment
        while time.monotonic() - start < 0.6:
            pass

    start = time.monotonic()
    gc.callbacks.append(slow_callback)
    try:
        with pytest.raises(TimeLimitExceeded):
            with time_limit(0.3):
                while time.monotonic() - start < 10:
                    [[] for _ in range(1000)]  # tracked objects: collections run
        assert time.monotonic() - start < 3
    finally:
        gc.callbacks.remove(slow_callback)
    time.sleep(0.3)  # and nothing fires once the block is left


# --- re-checking a reproducer -----------------------------------------------------------------

def _property(check) -> "registry.Property":
    from hypothesis import strategies as st

    return registry.Property(id="test.flaky", check=check, inputs=lambda ctx: st.just({"n": 1}),
                             applies_to="template", severity="error", description="")


@pytest.mark.parametrize("fails_every_time", [True, False])
def test_a_finding_is_checked_again_before_it_is_recorded(fails_every_time):
    """A failure that does not happen again on a fresh copy of its input is recorded, but as
    intermittent (``reproduced`` false); a steady one is confirmed."""
    import chainfuzz

    calls = []

    def check(ctx, case):
        calls.append(case)
        if fails_every_time or len(calls) == 1:
            raise chainfuzz.Failure("boom", key="boom")

    result = run_property(_property(check), Context(target("{{ 1 }}")),
                          RunSettings(max_examples=1, seed=1, shrink_seconds=0.1))
    [finding] = result.findings
    assert finding.reproduced is fails_every_time
    assert ("intermittent" in finding.message) is not fails_every_time
    assert finding.severity == "error"
