"""Every template property catches a planted defect and passes the same template without it.

``templates/base_clean.jinja`` is a small ChatML template that renders every input shape the
strategies draw (null content, text parts, tool calls, tool results as objects) and passes all
nine properties. Each ``templates/<property>*_defect.jinja`` is that file with one defect
planted, described in its first line; its clean twin is the base (or ``*_clean.jinja`` where
the fix is not the base). Each defect is checked two ways:

- search: ``run_property`` with a fixed seed must report the defect under the expected key and
  severity, shrunk to a small reproducer where one exists;
- single case: ``prop.check`` on one hand-written conversation must fail on the defect and pass
  on the clean twin, independently of what the search happens to draw.
"""

from __future__ import annotations

import difflib
import functools
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from chainfuzz.context import Context
from chainfuzz.registry import get
from chainfuzz.strategies import tool_schema
from chainfuzz.internal.runner import PropertyResult, RunSettings, run_property
from chainfuzz.targets import Target
from verdicts import check_once, severity

TEMPLATES = Path(__file__).parents[1] / "templates"
SPECIAL_TOKENS = {"bos_token": "<s>", "eos_token": "</s>"}
SEED = 0
MAX_EXAMPLES = 200  # a seeded search; every planted defect shows within it

PROPERTIES = (
    "renders", "content_preserved", "prefix_stable", "generation_prompt", "turns_closed",
    "no_repr_leak", "deterministic", "roundtrip", "engines_agree",
)


def context(name: str, **kw) -> Context:
    path = TEMPLATES / f"{name}.jinja"
    target = Target(source=path.read_text(encoding="utf-8"), path=str(path), name=name,
                            special_tokens=SPECIAL_TOKENS)
    return Context(target, **kw)


@functools.lru_cache(maxsize=None)
def search(name: str, prop: str) -> PropertyResult:
    """One seeded search of ``template.<prop>`` on a template, shared by the tests that read it."""
    result = run_property(get(f"template.{prop}"), context(name),
                          RunSettings(max_examples=MAX_EXAMPLES, seed=SEED))
    assert result.internal_error is None, result.internal_error
    return result


# --- hand-written conversations ----------------------------------------------------------

USER = {"role": "user", "content": "hi there"}
ASSISTANT = {"role": "assistant", "content": "hello"}
SYSTEM = {"role": "system", "content": "be brief"}
CALL = {"role": "assistant", "content": None, "tool_calls": [
    {"id": "call_abc123XYZ", "type": "function",
     "function": {"name": "get_weather", "arguments": {"city": "Paris"}}}]}
RESULT = {"role": "tool", "tool_call_id": "call_abc123XYZ", "content": "sunny"}


def case(*messages, **extra) -> dict:
    return {"messages": list(messages), "tools": None, **extra}


# --- the planted defects -----------------------------------------------------------------

@dataclass(frozen=True)
class Planted:
    template: str  # templates/<template>.jinja
    prop: str  # template.<prop>
    key: str  # the finding's key starts with this
    severity: str
    case: dict  # a hand-written input that must expose the defect
    clean: str = "base_clean"  # the twin with the defect fixed
    max_messages: int | None = None  # bound on the shrunk reproducer, where one is natural
    key_contains: str = ""

    @property
    def id(self) -> str:
        return f"{self.template}:{self.key or self.prop}"


PLANTED = [
    # Keys name the template line (both defects are on line 26) and the input is standard:
    # null content beside tool calls, as the OpenAI schema allows it.
    Planted("renders_defect", "renders", "TypeError@line 26:unsupported operand type(s) for +: 'NoneType'",
            "error", case(USER, CALL), max_messages=3),
    Planted("renders_defect", "renders", "TypeError@line 26:can only concatenate list", "error",
            case({"role": "user", "content": [{"type": "text", "text": "hi"}]}), max_messages=2),
    Planted("content_preserved_defect", "content_preserved", "dropped:tool:content", "error",
            case(USER, CALL, RESULT, ASSISTANT)),
    Planted("content_preserved_repr_args_defect", "content_preserved",
            "python_repr:assistant:tool_call.arguments", "error", case(USER, CALL, RESULT, ASSISTANT)),
    Planted("content_preserved_moved_system_defect", "content_preserved", "moved:system:content",
            "warning", case(USER, ASSISTANT, SYSTEM, USER)),
    Planted("content_preserved_trim_defect", "content_preserved", "trimmed:", "warning",
            case({"role": "user", "content": "  hi there\n"})),
    Planted("prefix_stable_defect", "prefix_stable", "rewrites:user->assistant", "warning",
            case(SYSTEM, USER, ASSISTANT, USER)),
    Planted("prefix_stable_last_defect", "prefix_stable", "rewrites:assistant->user", "warning",
            case(USER, ASSISTANT, USER), max_messages=4),
    Planted("generation_prompt_defect", "generation_prompt", "flag_ignored", "error",
            case(USER, reply="hello"), max_messages=1),
    Planted("generation_prompt_header_defect", "generation_prompt", "different_header", "error",
            case(USER, reply="hello"), max_messages=1),
    # Ignores the flag and writes an unusual header: flag_ignored, not different_header,
    # so the report changes once the flag is fixed (generation_prompt_header_defect).
    Planted("generation_prompt_flag_header_defect", "generation_prompt", "flag_ignored", "error",
            case(USER, reply="hello"), max_messages=1),
    # A thinking-mode prompt that opens another block than turns render ('<thinking>' vs '<think>').
    Planted("generation_prompt_thinking_defect", "generation_prompt", "different_header", "error",
            case(USER, reply="hello"), clean="generation_prompt_thinking_clean", max_messages=1),
    Planted("generation_prompt_gap_defect", "generation_prompt", "whitespace_gap", "warning",
            case(USER, reply="hello"), max_messages=1),
    Planted("turns_closed_defect", "turns_closed", "never_closed:<|im_start|>", "error",
            case(USER, ASSISTANT), max_messages=2),
    Planted("turns_closed_header_defect", "turns_closed", "never_closed:<|im_start|>", "error",
            case(USER), max_messages=2),
    Planted("no_repr_leak_defect", "no_repr_leak", "repr@assistant.content:None", "error",
            case(USER, {"role": "assistant", "content": None}, add_generation_prompt=False)),
    Planted("no_repr_leak_defect", "no_repr_leak", "repr@user.content:list", "error",
            case({"role": "user", "content": [{"type": "text", "text": "hi"}]},
                 add_generation_prompt=False), max_messages=2),
    Planted("no_repr_leak_tool_calls_defect", "no_repr_leak", "repr@assistant.tool_calls:list", "error",
            case(USER, CALL, RESULT, ASSISTANT, add_generation_prompt=False),
            clean="no_repr_leak_tool_calls_clean", max_messages=4),
    Planted("no_repr_leak_two_sites_defect", "no_repr_leak", "repr@tools:dict", "error",
            case(USER, add_generation_prompt=False, tools=[tool_schema("get_weather")])),
    Planted("no_repr_leak_two_sites_defect", "no_repr_leak", "repr@assistant.tool_call.arguments:dict",
            "error", case(USER, CALL, RESULT, ASSISTANT, add_generation_prompt=False)),
    Planted("no_repr_leak_tools_defect", "no_repr_leak", "repr@tools:dict", "error",
            case(USER, add_generation_prompt=False, tools=[tool_schema("get_weather")])),
    Planted("deterministic_clock_defect", "deterministic", "clock", "warning",
            case(USER, add_generation_prompt=False), max_messages=2),
    Planted("deterministic_random_defect", "deterministic", "run_to_run", "error",
            case(USER, add_generation_prompt=False)),
    Planted("roundtrip_defect", "roundtrip", "roles", "warning",
            case(USER, {"role": "user", "content": "again"}), max_messages=2),
    Planted("roundtrip_merge_defect", "roundtrip", "roles", "warning",
            case(USER, {"role": "user", "content": "again"}), max_messages=2),
    Planted("engines_agree_defect", "engines_agree", "only_minijinja_refuses@line 27:", "warning",
            case(USER, ASSISTANT, add_generation_prompt=False), key_contains="rsplit", max_messages=2),
    Planted("engines_agree_indent_defect", "engines_agree", "differs:indent", "warning",
            case(USER, {"role": "assistant", "content": "two\nlines\n"}, add_generation_prompt=False),
            max_messages=2),
]



def test_every_property_has_a_planted_defect():
    assert {p.prop for p in PLANTED} == set(PROPERTIES)
    # search_*: the default search's targets, run through the CLI by test_search_defaults.py
    assert {t.stem for t in TEMPLATES.glob("*_defect.jinja") if not t.stem.startswith("search_")} == \
        {p.template for p in PLANTED} | {"renders_hang_defect", "renders_constraint_defect"}


@pytest.mark.parametrize("planted", PLANTED, ids=lambda p: p.id)
def test_defect_is_a_twin_of_its_clean_template(planted):
    """A defect file differs from its clean twin in a few lines, so the twin isolates it."""
    def body(name):  # the first line is the comment that describes the file
        return (TEMPLATES / f"{name}.jinja").read_text(encoding="utf-8").splitlines()[1:]

    diff = [d for d in difflib.unified_diff(body(planted.clean), body(planted.template), n=0)
            if d[:1] in "+-" and not d.startswith(("+++", "---"))]
    assert 0 < len(diff) <= 16, "\n".join(diff)


@pytest.mark.parametrize("prop", PROPERTIES)
def test_clean_base_passes(prop):
    """The clean base has no finding at all, of either severity, for any property."""
    result = search("base_clean", prop)
    assert result.findings == [], [(f.key, f.message, f.case) for f in result.findings]
    assert result.examples >= MAX_EXAMPLES // 2, "the property skipped most inputs"


def test_thinking_mode_prompt_is_clean():
    """A generation prompt that opens the reasoning block the template renders for reasoning
    turns (Qwen3's '<think>\\n') is thinking mode, not a defect."""
    result = search("generation_prompt_thinking_clean", "generation_prompt")
    assert result.findings == [], [(f.key, f.message, f.case) for f in result.findings]
    assert result.examples >= MAX_EXAMPLES // 2, "the property skipped most inputs"


def test_tojson_tool_calls_twin_passes():
    result = search("no_repr_leak_tool_calls_clean", "no_repr_leak")
    assert result.findings == [], [(f.key, f.message, f.case) for f in result.findings]


@pytest.mark.parametrize("planted", PLANTED, ids=lambda p: p.id)
def test_search_finds_planted_defect(planted):
    """A seeded search reports the defect with its key and severity, shrunk small."""
    result = search(planted.template, planted.prop)
    found = [f for f in result.findings
             if f.key.startswith(planted.key) and planted.key_contains in f.key]
    assert found, f"expected a {planted.key!r} finding, got {[(f.severity, f.key) for f in result.findings]}"
    finding = found[0]
    assert finding.severity == planted.severity, (finding.key, finding.message)
    assert finding.property == f"template.{planted.prop}"
    if planted.max_messages is not None:
        assert len(finding.case["messages"]) <= planted.max_messages, finding.case
    # The reproducer still fails the property when replayed on its own.
    failure = check_once(context(planted.template), f"template.{planted.prop}", finding.case)
    assert failure is not None and failure.key == finding.key


@pytest.mark.parametrize("planted", PLANTED, ids=lambda p: p.id)
def test_single_case_fails_defect_and_passes_twin(planted):
    failure = check_once(context(planted.template), f"template.{planted.prop}", planted.case)
    assert failure is not None, f"{planted.template} passes template.{planted.prop} on {planted.case}"
    assert failure.key.startswith(planted.key) and planted.key_contains in failure.key, failure.key
    assert severity(f"template.{planted.prop}", failure) == planted.severity, failure.message
    assert check_once(context(planted.clean), f"template.{planted.prop}", planted.case) is None


# --- warning-only defects: findings, but never an error ----------------------------------

@pytest.mark.parametrize("template, prop, key", [
    ("renders_constraint_defect", "renders", "constraint:roles must alternate"),
    ("content_preserved_trim_defect", "content_preserved", "trimmed:"),
    ("content_preserved_moved_system_defect", "content_preserved", "moved:system:content"),
    ("generation_prompt_gap_defect", "generation_prompt", "whitespace_gap"),
    ("deterministic_clock_defect", "deterministic", "clock"),
])
def test_warning_defect_yields_only_warnings(template, prop, key):
    """A deliberate raise_exception, trimming, a moved system message, a whitespace gap and
    a clock dependence are warning-tier: the search reports them and nothing of error severity."""
    result = search(template, prop)
    assert result.findings, f"{template}: no finding"
    assert all(f.severity == "warning" and f.key.startswith(key) for f in result.findings), \
        [(f.severity, f.key, f.case) for f in result.findings]


def test_trimming_is_a_warning_and_blank_texts_are_not_charged():
    """Trimming the whitespace around a text is a warning; a blank text trimmed away is not
    charged at all, since nothing tells it from a dropped one."""
    ctx = context("content_preserved_trim_defect")
    failure = check_once(ctx, "template.content_preserved",
                         case({"role": "user", "content": "a b"}, {"role": "assistant", "content": " hello "}))
    assert failure is not None
    assert (severity("template.content_preserved", failure), failure.key) == \
        ("warning", "trimmed:assistant:content"), failure.message
    assert check_once(ctx, "template.content_preserved",
                      case({"role": "user", "content": "a b"}, {"role": "assistant", "content": " "})) is None
    assert check_once(context("base_clean"), "template.content_preserved",
                      case({"role": "user", "content": "a b"}, {"role": "assistant", "content": " hello "})) is None


def test_repr_leaks_of_two_sites_are_two_findings():
    """The tools and the arguments written as reprs are two findings, keyed by site; the twin
    with either fixed (no_repr_leak_tools_defect: arguments; content_preserved_repr_args_defect:
    tools) leaves the other alone."""
    def sites(name):
        return {f.key for f in search(name, "no_repr_leak").findings}

    assert sites("no_repr_leak_two_sites_defect") == {"repr@tools:dict", "repr@assistant.tool_call.arguments:dict"}
    assert sites("no_repr_leak_tools_defect") == {"repr@tools:dict"}
    assert sites("content_preserved_repr_args_defect") == {"repr@assistant.tool_call.arguments:dict"}


def test_tools_written_as_a_repr_are_not_preserved():
    failure = check_once(context("no_repr_leak_tools_defect"), "template.content_preserved",
                         case(USER, tools=[tool_schema("get_weather")]))
    assert failure is not None and failure.key == "python_repr:tools", failure
    assert check_once(context("base_clean"), "template.content_preserved",
                      case(USER, tools=[tool_schema("get_weather")])) is None


def test_objects_are_compared_as_structures():
    """An object tool result written with {{ content }} is a Python repr (an error, though
    each leaf is verbatim); tojson with any separators keeps it."""
    result = {"role": "tool", "tool_call_id": "call_abc123XYZ", "content": {"temp": 21, "sky": "sunny"}}
    failure = check_once(context("no_repr_leak_defect"), "template.content_preserved",
                         case(USER, CALL, result, ASSISTANT))
    assert failure is not None and failure.key == "python_repr:tool:content", failure
    assert check_once(context("base_clean"), "template.content_preserved",
                      case(USER, CALL, result, ASSISTANT)) is None


def test_random_filter_fails_run_to_run_every_time():
    """The property renders as separate runs (differently seeded random state), so |random
    is caught on every check, not by luck, and the caller's random state is left alone."""
    import random

    ctx = context("deterministic_random_defect")
    random.seed(123)
    expected_next = random.Random(123).random()
    for _ in range(5):
        failure = check_once(ctx, "template.deterministic", case(USER, add_generation_prompt=False))
        assert (severity("template.deterministic", failure), failure.key) == ("error", "run_to_run")
    assert random.random() == expected_next


def test_indent_difference_is_named_indent_whatever_the_text():
    """U+0085 is a line break to Python's splitlines (jinja2's |indent), not to minijinja; the
    difference is indent's, even though the message text happens to read 'None'."""
    failure = check_once(context("engines_agree_indent_defect"), "template.engines_agree",
                         case(USER, {"role": "assistant", "content": "\x85None"},
                              add_generation_prompt=False))
    assert failure is not None
    assert failure.key == "differs:indent", failure.message


# --- hangs -------------------------------------------------------------------------------

def test_hang_is_a_timeout_failure():
    """A template that loops 10^10 times is reported as a Timeout error, within the limit."""
    ctx = context("renders_hang_defect", time_limit=0.5)
    start = time.monotonic()
    result = run_property(get("template.renders"), ctx,
                          RunSettings(max_examples=10, seed=SEED, max_findings=1, shrink_seconds=1.0,
                                      budget=20.0))
    assert result.internal_error is None, result.internal_error
    assert [(f.severity, f.key[:8]) for f in result.findings] == [("error", "Timeout:")]
    assert time.monotonic() - start < 15
    assert check_once(context("base_clean", time_limit=0.5), "template.renders", result.findings[0].case) is None


@pytest.mark.parametrize("content, key", [(" <", None), (" hello", "trimmed:user:content")])
def test_a_trimmed_text_the_template_itself_writes_is_no_finding(content, key):
    """Trimmed, " <" becomes "<", which the template writes in every "<|im_start|>": that
    proves neither a drop nor a trim. " hello" trimmed is the warning it always was."""
    from chainfuzz import Failure

    case = {"messages": [{"role": "user", "content": content}], "tools": None}
    try:
        get("template.content_preserved").check(context("content_preserved_trim_defect"), case)
    except Failure as f:
        assert (f.key, f.severity) == (key, "warning")
    else:
        assert key is None
