"""The llama.cpp engine on the tiny model: real llama-cpp-python on the f32 GGUF chainfuzz
writes, against transformers on the same weights."""

from __future__ import annotations

import shutil

import pytest

pytest.importorskip("llama_cpp")
pytest.importorskip("torch")
pytestmark = pytest.mark.corpus

from chainfuzz.engines import EngineCrash, EngineError, open_engine  # noqa: E402
from chainfuzz.engines import gguf_model  # noqa: E402
from verdicts import encode_prompts, engine_context, engine_search  # noqa: E402

CHATS = [
    [{"role": "user", "content": "Hello"}],
    [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "What is 2+2?"}],
    [{"role": "user", "content": "Écris un haïku sur la pluie 🌧"},
     {"role": "assistant", "content": "Gouttes sur le toit"}, {"role": "user", "content": "Encore"}],
]
N = 12
# transformers fp32 vs llama.cpp f32 GGUF + F32 KV cache: the same greedy tokens, chosen-token
# logprobs within 6.7e-6 on these chats over 32 steps (measured); 1e-4 is a ~15x margin.
HF_TOLERANCE = 1e-4


@pytest.fixture(scope="module")
def engine(tiny):
    engine = open_engine("llama.cpp", tiny)
    yield engine
    engine.close()


@pytest.fixture(scope="module")
def prompts(tiny):
    return encode_prompts(tiny, CHATS)


def _hf_logprobs(model, prompt, tokens):
    """transformers' log-softmax of each chosen token, teacher-forced on prompt + tokens."""
    import torch

    with torch.no_grad():
        logits = model(torch.tensor([prompt + tokens])).logits[0].double()
    rows = torch.log_softmax(logits[len(prompt) - 1:-1], -1)
    return [rows[i, t].item() for i, t in enumerate(tokens)]


def _close(a, b, tol):
    return max(abs(x - y) for x, y in zip(a, b, strict=True)) <= tol


def test_greedy_tokens_and_logprobs_match_transformers(tiny, engine, prompts):
    from chainfuzz.engines.hf import TransformersEngine

    hf = TransformersEngine(tiny)
    expected = [getattr(r, "tokens", r) for r in hf.generate(prompts, N)]
    engine.clear_prefix_cache()
    for prompt, want in zip(prompts, expected):
        got = engine.generate([prompt], N)[0]
        assert got.tokens == want
        assert _close(got.logprobs, _hf_logprobs(hf.model, prompt, want), HF_TOLERANCE)


def test_the_gguf_is_byte_deterministic_and_reused(tiny, engine, tmp_path):
    gguf = tiny / gguf_model.FILENAME  # written by the engine fixture
    copy = tmp_path / tiny.name
    shutil.copytree(tiny, copy, ignore=shutil.ignore_patterns("*.gguf"))
    assert gguf_model.write(copy).read_bytes() == gguf.read_bytes()
    before = (copy / gguf_model.FILENAME).stat().st_mtime_ns
    assert gguf_model.write(copy).stat().st_mtime_ns == before  # newer than its inputs: kept


def test_a_prompt_alone_and_in_a_batch_agree(engine, prompts):
    engine.clear_prefix_cache()
    alone = engine.generate([prompts[0]], N)[0]
    others = [prompts[1], prompts[2], prompts[0][:5]]
    for batch, at in (([prompts[0], others[0]], 0), ([others[1], prompts[0]], 1),
                      ([others[2], others[0], prompts[0], others[1]], 2)):
        got = engine.generate(batch, N)[at]
        assert got.tokens == alone.tokens
        assert _close(got.logprobs, alone.logprobs, engine.tolerance)


def test_prefix_cache_cold_warm_and_uncached_agree(engine, prompts):
    prompt = prompts[2]
    engine.clear_prefix_cache()
    cold = engine.generate([prompt], N)[0]
    engine.generate([prompt[:len(prompt) // 2] + [9707, 11]], N)  # a sibling sharing a prefix
    warm = engine.generate([prompt], N)[0]
    again = engine.generate([prompt], N)[0]  # the whole prompt cached but its last token
    uncached = engine.generate_uncached(prompt, N)
    for run in (warm, again, uncached):
        assert run.tokens == cold.tokens
        assert _close(run.logprobs, cold.logprobs, engine.tolerance)
    assert uncached.logprobs == cold.logprobs  # both from an empty KV cache: bitwise


def test_stream_joins_to_complete_and_both_honour_a_stop_string(engine, prompts):
    full = engine.complete(prompts[0], N, [])
    deltas = engine.stream(prompts[0], N, [])
    assert "".join(deltas) == full and len(deltas) > 1
    stop = full[len(full) // 2:len(full) // 2 + 2]
    cut = full[:full.index(stop)]
    assert engine.complete(prompts[0], N, [stop]) == cut
    assert "".join(engine.stream(prompts[0], N, [stop])) == cut


def test_chat_reports_the_prompt_ids_it_evaluated(engine, prompts):
    for messages, ids in zip(CHATS, prompts):
        result = engine.chat(messages, None, 4)
        assert len(result.prompt_ids) == result.prompt_tokens
        assert result.prompt_ids == ids  # llama-cpp-python's Jinja2 rendering = transformers'
        assert isinstance(result.text, str)


def test_a_bad_id_is_refused_and_the_engine_goes_on(engine, prompts):
    """llama.cpp checks ids since 2025: an out-of-range id is refused (EngineError, not the
    EngineCrash of a dead worker), and the worker serves on."""
    engine.clear_prefix_cache()
    before = engine.generate([prompts[0]], 4)[0]
    for bad in (engine.vocab_size, -1):
        with pytest.raises(EngineError, match="llama.cpp refused") as err:
            engine.generate([prompts[0][:3] + [bad]], 4)
        assert not isinstance(err.value, EngineCrash)
    with pytest.raises(EngineError, match="invalid token"):
        engine.complete([prompts[0][0], engine.vocab_size + 7], 4, [])
    assert engine.generate([prompts[0]], 4)[0].tokens == before.tokens


@pytest.mark.parametrize("prop", ["engine.greedy_deterministic", "engine.batch_invariant",
                                  "engine.prefix_cache_invariant", "engine.stream_matches_full"])
def test_the_engine_properties_pass_on_llama_cpp(engine, tiny, prop):
    result = engine_search(tiny, engine, prop, 4)
    assert result.internal_error is None
    assert result.findings == [] and result.examples > 0


def test_llama_cpp_does_not_nfc_normalise_what_transformers_does(engine, tiny):
    """The defect of crashes/engine.chat_matches_completion--tiny-qwen2-s0--5c13ce964835.json:
    a decomposed "e" + U+0301 is one NFC id for transformers' Qwen2 tokenizer, two for
    llama.cpp's chat path."""
    from chainfuzz import Failure
    from chainfuzz.registry import get

    ctx = engine_context(tiny, engine)
    case = {"messages": [{"role": "user", "content": "e\u0301"}], "tools": None}
    with pytest.raises(Failure) as err:
        get("engine.chat_matches_completion").check(ctx, case)
    assert err.value.key == "llama.cpp:chat prompt differs"
    get("engine.chat_matches_completion").check(ctx, {**case, "messages": [{"role": "user", "content": "\u00e9"}]})


def test_a_killed_worker_is_replaced(engine, prompts):
    engine._worker.proc.kill()
    engine._worker.proc.wait()
    assert len(engine.generate([prompts[0]], 2)[0].tokens) == 2
