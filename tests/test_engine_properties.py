"""Engine properties on the tiny model: the transformers engine passes, negative controls fail.

Negative controls (the issue's "a configuration that must fail"): sampling at temperature 1
for engine.greedy_deterministic, left padding without an attention mask for
engine.batch_invariant.
"""

from __future__ import annotations

import pytest

pytest.importorskip("torch")
pytestmark = pytest.mark.corpus

from chainfuzz import Failure  # noqa: E402
from chainfuzz.context import Context  # noqa: E402
from chainfuzz.registry import get  # noqa: E402
from chainfuzz.runner import RunSettings, run_property  # noqa: E402
from chainfuzz.targets import load_target  # noqa: E402

RUN = RunSettings(max_examples=8, seed=0, max_findings=1, shrink_seconds=2.0)
CASE = {"messages": [{"role": "user", "content": "Hello"}], "tools": None}
BATCH = {"prompt": CASE, "position": 1,
         "others": [{"messages": [{"role": "user", "content": "a much longer prompt than the other one"}],
                     "tools": None}]}


def _ctx(tiny, **engine):
    from chainfuzz.engines.hf import TransformersEngine

    ctx = Context(load_target(tiny))
    if engine:
        ctx.engines = [TransformersEngine(tiny, **engine)]
    return ctx


def test_the_tiny_model_folder_is_an_engine_target(tiny):
    assert "engine" in load_target(tiny).kinds


@pytest.mark.parametrize("prop, case", [("engine.greedy_deterministic", CASE), ("engine.batch_invariant", BATCH)])
def test_the_reference_engine_keeps_both_properties(tiny, prop, case):
    ctx = _ctx(tiny)
    get(prop).check(ctx, case)  # no Failure on the fixed case
    result = run_property(get(prop), ctx, RUN)
    assert result.findings == [] and result.internal_error is None and result.examples > 0


def test_sampling_is_not_greedy_deterministic(tiny):
    ctx = _ctx(tiny, temperature=1.0)
    result = run_property(get("engine.greedy_deterministic"), ctx, RUN)
    assert [f.key for f in result.findings] == ["transformers(temperature=1):nondeterministic"]
    assert "distinct completions out of 3" in result.findings[0].message


def test_padding_without_an_attention_mask_is_not_batch_invariant(tiny):
    ctx = _ctx(tiny, attention_mask=False)
    with pytest.raises(Failure) as err:
        get("engine.batch_invariant").check(ctx, BATCH)
    assert "transformers(no attention mask):batch changes tokens" == err.value.key
    result = run_property(get("engine.batch_invariant"), ctx, RUN)
    assert [f.key for f in result.findings] == ["transformers(no attention mask):batch changes tokens"]
