"""OpenAI-compatible servers as engines (`chainfuzz.engines.http`), on the tiny model.

Real servers on 127.0.0.1, started here by `chainfuzz.engines.servers`: llama-cpp-python's on
the tiny model's F32 GGUF (needs ``chainfuzz[server]``) and vLLM's on the model folder (needs
vLLM's own Python: ``make vllm-env`` or ``CHAINFUZZ_VLLM_PYTHON``). One server of each kind
serves the module (vLLM takes 30-90 s to start on 2 loaded cores); the test that kills vLLM's
engine comes last.
"""

from __future__ import annotations

import http.server
import os
import re
import signal
import threading
import time
import urllib.request

import pytest

pytestmark = pytest.mark.corpus

pytest.importorskip("torch")

from chainfuzz.engines import EngineCrash, EngineError, Unsupported  # noqa: E402
from chainfuzz.engines.http import OpenAIEngine  # noqa: E402
from chainfuzz.engines.servers import ServerError, free_port, llama_server, vllm_server  # noqa: E402
from chainfuzz.engines.vllm_env import vllm_python  # noqa: E402
from chainfuzz.errors import UsageError  # noqa: E402
from verdicts import encode_prompts, engine_context, engine_search  # noqa: E402

CONVERSATIONS = [
    [{"role": "user", "content": "Hello"}],
    [{"role": "system", "content": "You are a terse assistant that answers in one word only, please."},
     {"role": "user", "content": "What is the capital of France? Think step by step and explain it."}],
    [{"role": "user", "content": "Bonjour, ça va? 你好"}],
]
N = 8  # llama-cpp-python takes ~0.2 s per token when logprobs are asked for
# transformers against each server's engine, chosen-token logprobs: measured at most 4e-6
# (vLLM fp32; llama.cpp F32 GGUF with an F32 KV cache).
HF_TOLERANCE = 1e-4


@pytest.fixture(scope="module")
def prompts(tiny):
    return encode_prompts(tiny, CONVERSATIONS)


@pytest.fixture(scope="module")
def reference(tiny, prompts):
    from chainfuzz.engines.hf import TransformersEngine

    return TransformersEngine(tiny).generate(prompts, N)


@pytest.fixture(scope="module")
def gguf(tiny):
    pytest.importorskip("llama_cpp.server.app", reason="llama-cpp-python's server: pip install 'chainfuzz[server]'")
    gguf_model = pytest.importorskip("chainfuzz.engines.gguf_model")
    return gguf_model.write(tiny)


@pytest.fixture(scope="module")
def llama(tiny, gguf, tmp_path_factory):
    with llama_server(gguf, n_ctx=1024, log=tmp_path_factory.mktemp("llama") / "server.log") as url:
        yield OpenAIEngine(url, tiny)


@pytest.fixture(scope="module")
def vllm(tiny, tmp_path_factory):
    if vllm_python() is None:
        pytest.skip("vLLM is not installed: make vllm-env, or set CHAINFUZZ_VLLM_PYTHON to a Python with vllm")
    with vllm_server(tiny, log=tmp_path_factory.mktemp("vllm") / "server.log") as url:
        engine = OpenAIEngine(url, tiny)
        engine.server = url
        yield engine


@pytest.fixture(params=["llama", "vllm"])
def engine(request):
    return request.getfixturevalue(request.param)


# -- construction -----------------------------------------------------------------------------
def test_an_unreachable_url_is_a_usage_error(tiny):
    url = f"http://127.0.0.1:{free_port()}/v1"
    with pytest.raises(UsageError) as err:
        OpenAIEngine(url, tiny)
    message = str(err.value)
    assert url in message and "connection refused" in message and "\n" not in message


def test_a_server_that_is_not_openai_is_a_usage_error(tiny):
    class Page(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            body = b"<html>hello</html>"
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Page)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        with pytest.raises(UsageError, match=r"GET /models: not JSON") as err:
            OpenAIEngine(f"http://127.0.0.1:{server.server_address[1]}/v1", tiny)
        assert "\n" not in str(err.value)
    finally:
        server.shutdown()
        server.server_close()


def test_a_server_that_dies_while_starting_quotes_its_log(tmp_path):
    pytest.importorskip("llama_cpp.server.app", reason="llama-cpp-python's server: pip install 'chainfuzz[server]'")
    bogus = tmp_path / "bogus.gguf"
    bogus.write_bytes(b"not a gguf file at all")
    with pytest.raises(ServerError, match=r"exited with code \d+ while starting") as err:
        with llama_server(bogus, log=tmp_path / "server.log"):
            pass
    assert str(tmp_path / "server.log") in str(err.value)
    assert len(str(err.value).splitlines()) > 2  # the end of its log


def test_llama_cpp_python_is_recognised_by_what_it_answers(llama, tiny):
    from chainfuzz.engines import open_engine

    assert open_engine(llama.url, tiny).name == "http(llama-cpp-python)"  # --engine URL
    assert (llama.name, llama.ids_prompt, llama.token_ids) == ("http(llama-cpp-python)", False, False)
    assert llama.extras == {"min_tokens": None}


def test_vllm_is_recognised_by_what_it_answers(vllm):
    assert (vllm.name, vllm.ids_prompt, vllm.token_ids) == ("http(vllm)", True, True)
    assert set(vllm.extras) == {"ignore_eos", "min_tokens", "return_token_ids"} and vllm.tolerance == 0.0


# -- greedy generation ------------------------------------------------------------------------
def test_vllm_greedy_ids_equal_transformers(vllm, prompts, reference):
    got = vllm.generate(prompts, N)
    for mine, ref in zip(got, reference):
        assert mine.tokens == ref.tokens
        assert max(abs(a - b) for a, b in zip(mine.logprobs, ref.logprobs)) <= HF_TOLERANCE


def test_llama_cpp_python_greedy_text_equals_transformers(llama, tiny, prompts, reference):
    # The server takes text prompts and reports token strings, decoded per token with
    # errors="ignore": a token that is part of a UTF-8 character reads "" where transformers
    # decodes it to U+FFFD. The prompts' texts come back from its tokenizer as the same ids.
    tok = llama.tokenizer()
    got = llama.generate(prompts, N)
    for mine, ref in zip(got, reference):
        assert len(mine.tokens) == N and all(isinstance(t, str) for t in mine.tokens)
        assert mine.text == tok.decode(ref.tokens).replace("\ufffd", "")
        assert max(abs(a - b) for a, b in zip(mine.logprobs, ref.logprobs)) <= HF_TOLERANCE


def test_concurrent_requests_give_what_each_gives_alone(engine, prompts):
    alone = [engine.generate([p], N)[0] for p in prompts]
    together = engine.generate(prompts + prompts[::-1], N)
    for mine, ref in zip(together, alone + alone[::-1]):
        assert mine.tokens == ref.tokens
        assert max(abs(a - b) for a, b in zip(mine.logprobs, ref.logprobs)) <= engine.tolerance


def test_a_prompt_that_is_not_a_tokenization_is_unsupported_on_a_text_only_server(llama, prompts):
    # "I" "J" is not how the tokenizer splits "IJ": no text gives these ids.
    with pytest.raises(Unsupported, match="text prompts only"):
        llama.generate([prompts[0] + [40, 41]], 2)


# -- prefix cache -----------------------------------------------------------------------------
def _prefix_hits(engine) -> float:
    with urllib.request.urlopen(f"{engine.base}/metrics", timeout=10) as response:
        text = response.read().decode()
    return sum(float(v) for v in re.findall(r"^vllm:prefix_cache_hits_total\{[^}]*\} (\S+)$", text, re.M))


def test_vllm_prefix_cache_hits_and_changes_nothing(vllm, prompts):
    prompt = prompts[1]
    assert len(prompt) > 32  # at least one full block of the server's 32
    vllm.clear_prefix_cache()
    before = _prefix_hits(vllm)
    cold = vllm.generate([prompt], N)[0]
    warm = vllm.generate([prompt], N)[0]
    hit = _prefix_hits(vllm) - before
    salted = vllm.generate_uncached(prompt, N)
    assert hit >= 32, "the second request did not hit the cache"
    assert _prefix_hits(vllm) - before == hit, "a salted request hit the cache"
    assert cold == warm == salted  # tokens, logprobs and text, bitwise


def test_llama_cpp_python_has_no_prefix_cache_control(llama, prompts):
    with pytest.raises(Unsupported, match="longest prefix"):
        llama.clear_prefix_cache()
    with pytest.raises(Unsupported, match="longest prefix"):
        llama.generate_uncached(prompts[0], N)


# -- text API ---------------------------------------------------------------------------------
def test_stream_deltas_join_to_the_complete_text(engine, prompts):
    prompt = prompts[0]
    full = engine.complete(prompt, 16, [])
    deltas = engine.stream(prompt, 16, [])
    assert len(deltas) > 1 and "".join(deltas) == full
    stop = full[len(full) // 2: len(full) // 2 + 2]  # cuts inside the text, maybe inside a token
    cut = engine.complete(prompt, 16, [stop])
    assert cut == full[: full.index(stop)]
    assert "".join(engine.stream(prompt, 16, [stop])) == cut


# -- chat -------------------------------------------------------------------------------------
def test_vllm_chat_prompt_ids_are_the_reference_ids(vllm, prompts):
    for messages, ids in zip(CONVERSATIONS, prompts):
        result = vllm.chat(messages, None, N)
        assert result.prompt_ids == ids
        assert result.prompt_tokens == len(ids)
        assert result.text == vllm.complete(ids, N, [])


def test_llama_cpp_python_chat_counts_the_reference_prompt(llama, prompts):
    for messages, ids in zip(CONVERSATIONS, prompts):
        result = llama.chat(messages, None, N)
        assert result.prompt_ids is None
        assert result.prompt_tokens == len(ids)
        assert result.text == llama.complete(ids, N, [])


# -- failures ---------------------------------------------------------------------------------
def test_a_refused_request_is_an_engine_error_with_the_servers_message(engine, prompts):
    if engine.flavour == "vllm":
        with pytest.raises(EngineError, match=r"POST /v1/completions: HTTP 400, the server refuses the request: "
                                              r"Token id 10000000 is out of vocabulary"):
            engine.generate([[10**7]], 2)
    else:
        with pytest.raises(EngineError, match=r"POST /v1/completions: HTTP 400, the server refuses the request: "
                                              r"This model's maximum context length is 1024"):
            engine.complete(prompts[0] * 60, 2, [])
    assert engine.generate([prompts[0]], 2)[0].tokens  # and it goes on serving


ENGINE_PROPERTIES = ["engine.greedy_deterministic", "engine.batch_invariant", "engine.prefix_cache_invariant",
                     "engine.chat_matches_completion", "engine.stream_matches_full"]


@pytest.mark.parametrize("prop", ENGINE_PROPERTIES)
def test_the_engine_properties_run_over_http(engine, tiny, prop):
    """Each property searched through a real server: no finding on these seeds, or, where the
    server lacks the capability (llama-cpp-python's prefix cache), every input skipped."""
    result = engine_search(tiny, engine, prop, 3)
    assert result.internal_error is None and result.findings == []
    unsupported = engine.flavour == "llama-cpp-python" and prop == "engine.prefix_cache_invariant"
    assert (result.examples == 0) == unsupported


def test_vllms_developer_role_defect_shows_through_its_server_too(vllm):
    """The defect of crashes/engine.chat_matches_completion--tiny-qwen2-s0--9f6df1ed5c10.json
    (vLLM's chat path turns a developer message into a system one), seen over HTTP."""
    from chainfuzz import Failure
    from chainfuzz.registry import get

    with pytest.raises(Failure) as err:
        get("engine.chat_matches_completion").check(engine_context(vllm.folder, vllm),
                                                    {"messages": [{"role": "developer", "content": ""}],
                                                         "tools": None})
    assert err.value.key == "http(vllm):chat prompt differs"


def test_a_killed_llama_cpp_python_server_is_a_crash(tiny, gguf, prompts):
    with llama_server(gguf, n_ctx=512) as url:
        engine = OpenAIEngine(url, tiny)
        assert engine.generate([prompts[0]], 2)[0].tokens
        url.kill()
        with pytest.raises(EngineCrash, match=r"http\(llama-cpp-python\): POST /v1/completions: no answer: "
                                              r"connection refused"):
            engine.generate([prompts[0]], 2)
        with pytest.raises(EngineCrash, match="no answer"):
            engine.stream(prompts[0], 2, [])


def test_vllm_whose_engine_core_is_killed_is_a_crash(vllm, prompts):
    """Last: it leaves the module's vLLM server dead."""
    children = _children(vllm.server.process.pid)
    assert children, "vLLM's server has no engine process"
    for pid in children:
        os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 30
    with pytest.raises(EngineCrash) as err:
        while time.monotonic() < deadline:  # until the server notices its engine is gone
            vllm.generate([prompts[0]], 2)
            time.sleep(0.5)
    assert re.search(r"http\(vllm\): POST /v1/completions: (HTTP 5\d\d|no answer)", str(err.value)), err.value


def _children(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as stat:
                    fields = stat.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.append(int(entry))
    return found
