"""vLLM's offline API as an engine (`chainfuzz.engines.vllm`), on the tiny model.

Needs vLLM's own Python (``make vllm-env``, or ``CHAINFUZZ_VLLM_PYTHON``); skipped without it.
One worker serves the module (vLLM takes 15-45 s to start); the crash tests come last: the
killed worker's restart is the one restart the module pays for, and the hung worker is left dead.
"""

from __future__ import annotations

import os
import signal
import threading

import pytest

from chainfuzz.engines.vllm_env import vllm_python

pytestmark = [
    pytest.mark.corpus,
    pytest.mark.skipif(vllm_python() is None, reason="vLLM is not installed: make vllm-env, "
                       "or set CHAINFUZZ_VLLM_PYTHON to a Python that has vllm"),
]

pytest.importorskip("torch")

from chainfuzz.context import Context  # noqa: E402
from chainfuzz.engines import EngineCrash, EngineError, Unsupported  # noqa: E402
from chainfuzz.targets import load_target  # noqa: E402
from verdicts import encode_prompts, engine_search  # noqa: E402

CONVERSATIONS = [
    [{"role": "user", "content": "Hello"}],
    [{"role": "system", "content": "You are a terse assistant that answers in one word only, please."},
     {"role": "user", "content": "What is the capital of France? Think step by step and explain it."}],
    [{"role": "user", "content": "Bonjour, ça va? 你好"}, {"role": "assistant", "content": "Oui."},
     {"role": "user", "content": "a much longer prompt than the other one " * 6}],
    [{"role": "user", "content": "Bonjour, ça va? 你好"}],
]
N = 16
# transformers (2 threads, its own attention) against vLLM (1 thread, its CPU attention
# kernel): chosen-token logprobs measured to differ by at most 3.8e-6 over 32 tokens.
HF_TOLERANCE = 1e-4


@pytest.fixture(scope="module")
def ctx(tiny):
    return Context(load_target(tiny))


@pytest.fixture(scope="module")
def prompts(tiny):
    return encode_prompts(tiny, CONVERSATIONS)


@pytest.fixture(scope="module")
def engine(tiny):
    from chainfuzz.engines.vllm import VllmEngine

    eng = VllmEngine(tiny)
    yield eng
    pid = eng.pid
    eng.close()
    if pid is not None:  # nothing of the worker's process group outlives close()
        with pytest.raises(ProcessLookupError):
            os.killpg(pid, 0)


def test_without_vllm_the_engine_is_an_import_error(tiny, monkeypatch, tmp_path):
    from chainfuzz.engines.vllm import VllmEngine

    monkeypatch.delenv("CHAINFUZZ_VLLM_PYTHON", raising=False)
    monkeypatch.chdir(tmp_path)  # no .venv-vllm here
    with pytest.raises(ImportError, match="make vllm-env") as err:
        VllmEngine(tiny)
    assert err.value.name == "vllm"


def test_greedy_tokens_match_transformers(engine, tiny, prompts):
    import torch

    from chainfuzz.engines.hf import TransformersEngine

    hf = TransformersEngine(tiny)
    for ids in prompts[:3]:
        out = hf.generate([ids], N)[0]
        tokens = getattr(out, "tokens", out)
        with torch.no_grad():
            logits = hf.model(torch.tensor([ids + tokens])).logits[0]
        steps = torch.log_softmax(logits.float(), -1)
        expected = [steps[len(ids) - 1 + i, t].item() for i, t in enumerate(tokens)]
        got = engine.generate([ids], N)[0]
        assert got.tokens == tokens
        assert len(got.logprobs) == N
        assert max(abs(a - b) for a, b in zip(got.logprobs, expected)) <= HF_TOLERANCE


def test_a_prompt_alone_and_at_every_batch_position_is_bitwise_the_same(engine, prompts):
    assert engine.tolerance == 0.0  # what this test measures
    engine.clear_prefix_cache()
    alone = [engine.generate([ids], N)[0] for ids in prompts]
    for shift in range(len(prompts)):  # each prompt at each position of a batch of 4
        order = prompts[shift:] + prompts[:shift]
        engine.clear_prefix_cache()
        together = engine.generate(order, N)
        for i, out in enumerate(together):
            expected = alone[(i + shift) % len(prompts)]
            assert (out.tokens, out.logprobs) == (expected.tokens, expected.logprobs)


def test_the_prefix_cache_hits_and_changes_nothing(engine, prompts):
    ids = prompts[2]
    assert len(ids) > 64  # two full 32-token blocks at least
    engine.clear_prefix_cache()
    cold = engine.generate([ids], N)[0]
    assert engine.cached_tokens == [0]
    warm = engine.generate([ids], N)[0]
    (hit,) = engine.cached_tokens
    assert hit % 32 == 0 and len(ids) - 32 <= hit < len(ids)  # every full block but the last
    salted = engine.generate_uncached(ids, N)
    assert engine.cached_tokens == [0]
    salted_again = engine.generate_uncached(ids, N)
    assert engine.cached_tokens == [0]  # a fresh salt each time: nothing to hit
    engine.clear_prefix_cache()
    cleared = engine.generate([ids], N)[0]
    assert engine.cached_tokens == [0]
    for out in (warm, salted, salted_again, cleared):
        assert (out.tokens, out.logprobs) == (cold.tokens, cold.logprobs)


def test_complete_cuts_the_text_before_a_stop_string(engine, prompts):
    full = engine.complete(prompts[0], 24, [])
    assert len(full) > 12
    stop = full[8:11]
    cut = engine.complete(prompts[0], 24, [stop])
    assert cut == full[:full.index(stop)]


def test_the_offline_api_does_not_stream(engine, prompts):
    with pytest.raises(Unsupported):
        engine.stream(prompts[0], 4, [])


def test_the_chat_path_builds_the_reference_prompt(engine, ctx, prompts):
    for messages, ids in zip(CONVERSATIONS[:3], prompts):
        chat = engine.chat(messages, None, 8)
        assert chat.prompt_ids == ids and chat.prompt_tokens == len(ids)
        assert chat.text == engine.complete(ids, 8, [])  # the same greedy reply either way


@pytest.mark.parametrize("prop", ["engine.greedy_deterministic", "engine.batch_invariant",
                                  "engine.prefix_cache_invariant", "engine.chat_matches_completion"])
def test_the_engine_properties_pass_on_vllm(engine, tiny, prop):
    result = engine_search(tiny, engine, prop, 6)
    assert result.internal_error is None
    assert result.findings == [] and result.examples > 0


def test_a_refused_request_is_an_error_and_the_worker_lives_on(engine, prompts):
    pid = engine.pid
    with pytest.raises(EngineError, match="max_tokens"):
        engine.complete(prompts[0], 0, [])
    assert engine.pid == pid


def test_a_worker_killed_mid_run_is_a_crash_and_the_next_call_restarts_it(engine, prompts):
    expected = engine.generate([prompts[1]], 4)[0]
    pid = engine.pid
    killer = threading.Timer(1.0, os.kill, (pid, signal.SIGKILL))
    killer.start()
    try:
        with pytest.raises(EngineCrash, match=r"signal 9\) on generate"):
            engine.generate([prompts[1]] * 8, 2000)  # ~20 s of work: the kill lands mid-run
    finally:
        killer.cancel()
    with pytest.raises(ProcessLookupError):
        os.killpg(pid, 0)  # nothing of the dead worker is left
    assert engine.generate([prompts[1]], 4)[0] == expected
    assert engine.pid not in (None, pid)


def test_a_hung_worker_is_a_crash_and_is_killed(engine, prompts):
    engine.generate([prompts[0]], 4)
    pid = engine.pid
    os.kill(pid, signal.SIGSTOP)
    engine.call_timeout = 2.0
    try:
        with pytest.raises(EngineCrash, match=r"hung for 2 s\) on generate"):
            engine.generate([prompts[0]], 4)
    finally:
        engine.call_timeout = 120.0
    assert engine.pid is None
    with pytest.raises(ProcessLookupError):
        os.killpg(pid, 0)
    # The next call would start a fresh worker, as the test above shows: not paid for twice.
