"""Engine properties on the tiny model: the reference engine keeps every one, and each has a
negative control (a configuration that must fail):

- engine.greedy_deterministic: sampling at temperature 1;
- engine.batch_invariant: left padding without an attention mask;
- engine.prefix_cache_invariant: a cached prefix reused without cropping it where the prompts
  diverge (a stale KV cache);
- engine.chat_matches_completion: the chat path rendering with a template other than the model's;
- engine.stream_matches_full: a stream that never flushes the text its detokenizer held back.

The llama.cpp, server and vLLM engines are tested against the same properties in their own
modules.
"""

from __future__ import annotations

import pytest

pytest.importorskip("torch")
pytestmark = pytest.mark.corpus

from chainfuzz import Failure  # noqa: E402
from chainfuzz.context import Context  # noqa: E402
from chainfuzz.registry import get  # noqa: E402
from chainfuzz.internal.runner import RunSettings, run_property  # noqa: E402
from chainfuzz.targets import load_target  # noqa: E402

RUN = RunSettings(max_examples=5, seed=0, max_findings=1, shrink_seconds=2.0)
CASE = {"messages": [{"role": "user", "content": "Hello"}], "tools": None}
BATCH = {"prompt": CASE, "position": 1,
         "others": [{"messages": [{"role": "user", "content": "a much longer prompt than the other one"}],
                     "tools": None}]}
SIBLINGS = {"prompt": {"messages": [{"role": "user", "content": "Hello there, a longer prompt"}], "tools": None},
            "sibling_text": "Hi"}
STOPS = {"prompt": CASE, "stop_at": 5, "stop_len": 3}
FIXED = {"engine.greedy_deterministic": CASE, "engine.batch_invariant": BATCH,
         "engine.prefix_cache_invariant": SIBLINGS, "engine.chat_matches_completion": CASE,
         "engine.stream_matches_full": STOPS}
# A ChatML template without Qwen2.5's default system prompt: a server started with the wrong
# --chat-template.
PLAIN_CHATML = ("{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}"
                "<|im_start|>assistant\n")
CONTROLS = [
    ("engine.greedy_deterministic", {"temperature": 1.0}, "transformers(temperature=1):nondeterministic"),
    ("engine.batch_invariant", {"attention_mask": False}, "transformers(no attention mask):batch changes tokens"),
    ("engine.prefix_cache_invariant", {"crop_cache": False},
     "transformers(stale cache):cache warmed by a sibling prompt changes tokens"),
    ("engine.chat_matches_completion", {"chat_template": PLAIN_CHATML},
     "transformers(other chat template):chat prompt differs"),
    ("engine.stream_matches_full", {"flush_stream": False},
     "transformers(stream tail dropped):stream differs: text missing"),
]


def _ctx(tiny, **engine):
    from chainfuzz.engines.hf import TransformersEngine

    ctx = Context(load_target(tiny))
    if engine:
        ctx.engines = [TransformersEngine(tiny, **engine)]
    return ctx


@pytest.fixture(scope="module")
def reference(tiny):
    ctx = _ctx(tiny)
    yield ctx
    ctx.close()


def test_the_tiny_model_folder_is_an_engine_target(tiny):
    assert "engine" in load_target(tiny).kinds


@pytest.mark.parametrize("prop", sorted(FIXED))
def test_the_reference_engine_keeps_every_property(reference, prop):
    get(prop).check(reference, FIXED[prop])  # no Failure on the fixed case
    result = run_property(get(prop), reference, RUN)
    assert result.findings == [] and result.internal_error is None and result.examples > 0


@pytest.mark.parametrize("prop, engine, key", CONTROLS, ids=[c[0] for c in CONTROLS])
def test_each_negative_control_fails_its_property(tiny, prop, engine, key):
    ctx = _ctx(tiny, **engine)
    result = run_property(get(prop), ctx, RUN)
    assert [f.key for f in result.findings] == [key]
    assert result.findings[0].severity == "error"


def test_sampling_reports_distinct_completions_out_of_n(tiny):
    result = run_property(get("engine.greedy_deterministic"), _ctx(tiny, temperature=1.0), RUN)
    assert "distinct completions out of 3" in result.findings[0].message


def test_the_missing_attention_mask_fails_on_the_fixed_batch_and_names_it(tiny):
    with pytest.raises(Failure) as err:
        get("engine.batch_invariant").check(_ctx(tiny, attention_mask=False), BATCH)
    assert "(a batch of 2, at position 1)" in err.value.message


def test_a_batch_failure_shrinks_to_the_smallest_batch_and_prompts(tiny):
    """Two prompts (the defect needs another of a different length) with empty contents."""
    settings = RunSettings(max_examples=5, seed=0, max_findings=1, shrink_seconds=60.0)
    [finding] = run_property(get("engine.batch_invariant"), _ctx(tiny, attention_mask=False), settings).findings
    case = finding.case
    assert len(case["others"]) == 1
    texts = [m["content"] for conv in (case["prompt"], *case["others"]) for m in conv["messages"]]
    assert all(t == "" for t in texts), case


def test_a_stale_cache_is_caught_only_after_a_sibling_warmed_it(tiny):
    """Cold and warm-from-itself agree even with the defect: the sibling step is what finds it."""
    from chainfuzz.engines.hf import TransformersEngine

    engine = TransformersEngine(tiny, crop_cache=False)
    ctx = Context(load_target(tiny))
    ids = ctx.prompt_chain.encode(SIBLINGS["prompt"]["messages"], None)
    sibling = ctx.prompt_chain.encode([{"role": "user", "content": "Hi"}], None)
    cold = engine.generate([ids], 8)[0]
    assert engine.generate([ids], 8)[0].tokens == cold.tokens
    engine.generate([sibling], 8)
    assert engine.generate([ids], 8)[0].tokens != cold.tokens
    assert engine.generate_uncached(ids, 8).tokens == cold.tokens


def test_the_stream_holds_back_a_stop_string_that_spans_deltas(reference):
    engine = reference.engines[0]
    ids = reference.prompt_chain.encode(CASE["messages"], None)
    full = engine.complete(ids, 24, [])
    stop = full[6:10]
    deltas = engine.stream(ids, 24, [stop])
    assert "".join(deltas) == full[:full.find(stop)] == engine.complete(ids, 24, [stop])
    assert all(stop not in d for d in deltas)


def test_an_engine_without_the_capability_is_left_out_not_passed(tiny):
    """A property no engine of the run can do skips every input: 0 examples, not a pass."""
    from chainfuzz.engines.base import Engine

    ctx = Context(load_target(tiny))
    ctx.engines = [Engine()]  # the base class: greedy generation only, no cache, text or chat
    for prop in ("engine.prefix_cache_invariant", "engine.chat_matches_completion", "engine.stream_matches_full"):
        result = run_property(get(prop), ctx, RunSettings(max_examples=3, seed=0))
        assert result.examples == 0 and result.findings == [] and result.skipped > 0


# --- the CLI and replay ------------------------------------------------------------------------

@pytest.mark.parametrize("engine, says", [
    ("bogus", "--engine bogus: unknown engine"),
    ("http://127.0.0.1:9/v1", "127.0.0.1:9"),
])
def test_an_engine_that_cannot_start_is_bad_input(cli, one_error_line, tiny, tmp_path, engine, says):
    result = cli("check", tiny, "--engine", engine, "--property", "engine.greedy_deterministic",
                 "--max-examples", "1", "--crashes", tmp_path)
    assert says in one_error_line(result)
    assert not list(tmp_path.glob("*.json"))


def test_an_engine_that_is_not_installed_is_bad_input(cli, one_error_line, tiny, tmp_path, monkeypatch):
    monkeypatch.delenv("CHAINFUZZ_VLLM_PYTHON", raising=False)
    monkeypatch.chdir(tmp_path)  # no .venv-vllm here
    result = cli("check", tiny, "--engine", "transformers", "--engine", "vllm", "--max-examples", "1",
                 "--property", "engine.greedy_deterministic", "--crashes", tmp_path)
    assert "engine 'vllm' cannot run here: vLLM is not installed" in one_error_line(result)


def test_an_engine_finding_records_its_engines_and_replays_with_them(tiny, tmp_path, monkeypatch):
    """A case stores the ``--engine`` specs it was found with; replay rebuilds exactly those
    engines, and a recorded engine that cannot start here makes the case "missing"."""
    import json

    from chainfuzz.cases import record, write
    from chainfuzz.replayer import replay
    from chainfuzz.internal.runner import run_property as run

    ctx = _ctx(tiny, crop_cache=False)
    finding = run(get("engine.prefix_cache_invariant"), ctx, RUN).findings[0]
    path, _ = write(record(finding, ctx, tmp_path), tmp_path)
    written = json.loads(path.read_text())
    assert written["target"]["engines"] == ["transformers"] and written["target"]["impls"] == ["hf"]
    assert {"torch", "transformers", "tokenizers"} <= set(written["versions"])  # what decides it
    # The recorded engine is the clean transformers engine, so the case replays as fixed: the
    # defect lived in the engine's configuration, which a spec names.
    assert replay(path).status == "fixed"
    rec = json.loads(path.read_text())
    rec["target"]["engines"] = ["llama.cpp"] if _has_llama_cpp() else ["vllm"]
    path.write_text(json.dumps(rec))
    monkeypatch.delenv("CHAINFUZZ_VLLM_PYTHON", raising=False)
    monkeypatch.chdir(tmp_path)  # no .venv-vllm here
    outcome = replay(path)
    assert outcome.status in ("fixed", "missing"), outcome
    assert (outcome.status == "fixed") == _has_llama_cpp()


def _has_llama_cpp() -> bool:
    import importlib.util

    return importlib.util.find_spec("llama_cpp") is not None


@pytest.mark.parametrize("error, key", [("EngineError", "refusing:refuses"), ("EngineCrash", "refusing:crashed")])
def test_an_engine_that_refuses_or_dies_is_a_finding_not_an_internal_error(tiny, error, key):
    import chainfuzz.engines as engines

    class Refusing(engines.Engine):
        name = "refusing"

        def generate(self, prompts, max_new_tokens):
            raise getattr(engines, error)("no")

    ctx = Context(load_target(tiny))
    ctx.engines = [Refusing()]
    with pytest.raises(Failure) as err:
        get("engine.greedy_deterministic").check(ctx, CASE)
    assert err.value.key == key


def test_engines_failing_the_same_way_are_named_together_and_none_hides_another(tiny):
    from chainfuzz.engines.hf import TransformersEngine

    ctx = Context(load_target(tiny))
    ctx.engines = [TransformersEngine(tiny), TransformersEngine(tiny, attention_mask=False),
                   TransformersEngine(tiny, temperature=1.0, attention_mask=False)]
    with pytest.raises(Failure) as err:
        get("engine.batch_invariant").check(ctx, BATCH)
    assert err.value.key == ("transformers(no attention mask)+transformers(temperature=1)(no attention mask)"
                             ":batch changes tokens")
    assert err.value.message.startswith("transformers(no attention mask), transformers(temperature=1)")
