"""vLLM's output parsers (`chainfuzz.parsers.vllm`), driven as its OpenAI server drives them.

Needs vLLM's own Python (``make vllm-env``, or ``CHAINFUZZ_VLLM_PYTHON``); skipped without it.
The tokenizer is the tiny model's Qwen2 vocabulary with the markers Qwen2.5 and Qwen3 add
(``<tool_call>``, ``</tool_call>``, ``<think>``, ``</think>``, not special, as in Qwen). Each
worker starts in ~10 s, so one per parser serves the module; the crash tests come last.
"""

from __future__ import annotations

import json
import os
import signal

import pytest

from chainfuzz.engines.vllm_env import vllm_python

pytestmark = [
    pytest.mark.corpus,
    pytest.mark.skipif(vllm_python() is None, reason="vLLM is not installed: make vllm-env, "
                       "or set CHAINFUZZ_VLLM_PYTHON to a Python that has vllm"),
]

from chainfuzz.errors import Unsupported, UsageError  # noqa: E402
from chainfuzz.parsers import Chunk, Delta, Message, ParserCrash, ParserSetup, Request, open_parser  # noqa: E402

MARKERS = ["<tool_call>", "</tool_call>", "<think>", "</think>"]
TOOLS = [{"type": "function", "function": {
    "name": "get_weather", "description": "The weather in a city.",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
                   "required": ["city"]}}}]
ONE_CALL = ('Let me check.\n<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris", "days": 3}}\n'
            '</tool_call>')
TWO_CALLS = ('Checking both.\n<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>\n'
             '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Rome", "days": 2}}\n</tool_call>')
THINKING = ('<think>\nThe user wants the weather.\n</think>\n\n'
            '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Oslo"}}\n</tool_call>')


@pytest.fixture(scope="module")
def qwen_tokenizer(tiny, tmp_path_factory):
    """The tiny model's tokenizer with Qwen's tool and thinking markers added, saved as a
    tokenizer folder; and the transformers tokenizer that made it (to cut texts into tokens)."""
    from transformers import AddedToken, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny)
    tok.add_tokens([AddedToken(m, special=False, normalized=False) for m in MARKERS])
    folder = tmp_path_factory.mktemp("qwen-tokenizer")
    tok.save_pretrained(folder)
    return folder, tok


@pytest.fixture(scope="module")
def hermes(qwen_tokenizer):
    parser = open_parser("vllm:hermes", ParserSetup(tokenizer_dir=qwen_tokenizer[0]))
    yield parser
    parser.close()


@pytest.fixture(scope="module")
def qwen3(qwen_tokenizer):
    parser = open_parser("vllm:hermes+reasoning:qwen3", ParserSetup(tokenizer_dir=qwen_tokenizer[0]))
    yield parser
    parser.close()


def token_chunks(tok, text: str) -> list[Chunk]:
    """``text`` as one chunk per token (texts here are ASCII: each token decodes alone)."""
    ids = tok.encode(text, add_special_tokens=False)
    chunks = [Chunk(tok.decode([i]), (i,)) for i in ids]
    assert "".join(c.text for c in chunks) == text
    return chunks


def one_chunk(tok, text: str) -> list[Chunk]:
    return [Chunk(text, tuple(tok.encode(text, add_special_tokens=False)))]


def assembled(deltas: list[Delta]) -> dict:
    """What a client makes of the deltas: content and reasoning joined, each call's name and
    its argument fragments joined by index."""
    calls: dict[int, dict] = {}
    for d in deltas:
        for t in d.tool_calls:
            call = calls.setdefault(t.index, {"name": "", "arguments": ""})
            call["name"] += t.name or ""
            call["arguments"] += t.arguments or ""
    return {"content": "".join(d.content or "" for d in deltas) or None,
            "reasoning": "".join(d.reasoning or "" for d in deltas) or None,
            "tool_calls": [(c["name"], json.loads(c["arguments"])) for _, c in sorted(calls.items())]}


def as_parsed(message: Message) -> dict:
    return {"content": message.content or None, "reasoning": message.reasoning or None,
            "tool_calls": [(c.name, json.loads(c.arguments)) for c in message.tool_calls]}


def test_hermes_parses_a_qwen_tool_call_after_content(hermes):
    message = hermes.parse(ONE_CALL, Request(tools=TOOLS))
    assert message.content == "Let me check.\n"
    assert message.reasoning is None
    assert [(c.name, json.loads(c.arguments)) for c in message.tool_calls] == [
        ("get_weather", {"city": "Paris", "days": 3})]
    assert message.tool_calls[0].id  # vLLM's hermes gives each call an id


def test_hermes_leaves_text_without_a_call_as_content(hermes):
    text = "Paris is sunny. No tool needed: {\"name\": \"get_weather\"}"
    message = hermes.parse(text, Request(tools=TOOLS))
    assert (message.content, message.tool_calls) == (text, [])


def test_without_tools_the_server_parses_no_calls(hermes, qwen_tokenizer):
    """A request without tools has tool_choice "none": the call stays in the content."""
    assert hermes.parse(ONE_CALL, Request()) == Message(content=ONE_CALL)
    deltas = hermes.stream(token_chunks(qwen_tokenizer[1], ONE_CALL), Request())
    assert assembled(deltas) == {"content": ONE_CALL, "reasoning": None, "tool_calls": []}


def test_streaming_one_chunk_and_one_token_per_chunk_give_the_parsed_message(hermes, qwen_tokenizer):
    tok = qwen_tokenizer[1]
    request = Request(tools=TOOLS)
    parsed = as_parsed(hermes.parse(TWO_CALLS, request))
    assert parsed["tool_calls"] == [("get_weather", {"city": "Paris"}), ("get_weather", {"city": "Rome", "days": 2})]
    for chunks in (one_chunk(tok, TWO_CALLS), token_chunks(tok, TWO_CALLS)):
        deltas = hermes.stream(chunks, request)
        assert len(deltas) == len(chunks)
        assert assembled(deltas) == parsed
        ids = [t.id for d in deltas for t in d.tool_calls if t.id]
        assert len(ids) == 2  # each call's id exactly once


def test_a_token_per_chunk_streams_arguments_in_pieces(hermes, qwen_tokenizer):
    deltas = hermes.stream(token_chunks(qwen_tokenizer[1], ONE_CALL), Request(tools=TOOLS))
    pieces = [t.arguments for d in deltas for t in d.tool_calls if t.arguments]
    assert len(pieces) > 1
    assert Delta() in deltas  # the markers' tokens emit nothing


def test_qwen3_reasoning_then_a_hermes_call(qwen3, qwen_tokenizer):
    request = Request(tools=TOOLS)
    message = qwen3.parse(THINKING, request)
    assert message.reasoning == "\nThe user wants the weather.\n"
    assert not (message.content or "").strip()
    assert [(c.name, json.loads(c.arguments)) for c in message.tool_calls] == [("get_weather", {"city": "Oslo"})]
    for chunks in (one_chunk(qwen_tokenizer[1], THINKING), token_chunks(qwen_tokenizer[1], THINKING)):
        streamed = assembled(qwen3.stream(chunks, request))
        assert (streamed["reasoning"], streamed["tool_calls"]) == (message.reasoning, as_parsed(message)["tool_calls"])


def test_qwen3_without_a_think_block_is_all_content(qwen3):
    """Qwen3's reasoning parser with no ``<think>`` in the prompt or the text: no reasoning."""
    text = "Just an answer."
    message = qwen3.parse(text, Request(tools=TOOLS, template_kwargs={"enable_thinking": False}))
    assert (message.content, message.reasoning, message.tool_calls) == (text, None, [])


def test_a_request_vllm_refuses_is_unsupported_not_a_crash(hermes):
    """vLLM's request model refuses a tool without a function (the server's 400): no parser
    ran, so it is no finding for the parser; the worker goes on."""
    pid = hermes.pid
    with pytest.raises(Unsupported, match="request model refuses"):
        hermes.parse(ONE_CALL, Request(tools=[{"type": "function"}]))
    assert hermes.pid == pid
    assert len(hermes.parse(ONE_CALL, Request(tools=TOOLS)).tool_calls) == 1


def test_a_bad_spec_is_one_usage_error_line(qwen_tokenizer):
    setup = ParserSetup(tokenizer_dir=qwen_tokenizer[0])
    for spec, says in [("vllm:no_such_parser", "hermes"), ("vllm:hermes+reasoning:nope", "qwen3"),
                       ("vllm:hermes+qwen3", "vllm:TOOL+reasoning:REASONING"),
                       ("vllm:", "vllm:reasoning:REASONING")]:
        with pytest.raises(UsageError) as err:
            open_parser(spec, setup)
        assert "\n" not in str(err.value) and says in str(err.value), (spec, str(err.value))


def test_a_tokenizer_the_parser_refuses_is_a_usage_error_with_vllms_message(qwen_tokenizer):
    """llama3_json needs ``<|python_tag|>`` in the vocabulary; the Qwen one lacks it."""
    with pytest.raises(UsageError) as err:
        open_parser("vllm:llama3_json", ParserSetup(tokenizer_dir=qwen_tokenizer[0]))
    assert "\n" not in str(err.value) and "<|python_tag|>" in str(err.value)


def test_without_a_tokenizer_folder_it_is_a_usage_error():
    with pytest.raises(UsageError):
        open_parser("vllm:hermes", ParserSetup())


def test_without_vllm_the_parser_is_an_import_error(qwen_tokenizer, monkeypatch, tmp_path):
    monkeypatch.delenv("CHAINFUZZ_VLLM_PYTHON", raising=False)
    monkeypatch.chdir(tmp_path)  # no .venv-vllm here
    with pytest.raises(ImportError):
        open_parser("vllm:hermes", ParserSetup(tokenizer_dir=qwen_tokenizer[0]))


def test_close_leaves_no_process(qwen_tokenizer):
    parser = open_parser("vllm:reasoning:qwen3", ParserSetup(tokenizer_dir=qwen_tokenizer[0]))
    pid = parser.pid
    assert pid is not None
    assert parser.parse("<think>a</think>b", Request()).content == "b"
    parser.close()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_a_parser_that_raises_is_a_crash_and_the_worker_lives_on(qwen_tokenizer, hermes):
    """vLLM's ``openai`` tool parser is a stub outside the Harmony path (a gpt-oss model's
    config): on any other model it raises on every text, as ``vllm serve`` answers 500."""
    parser = open_parser("vllm:openai", ParserSetup(tokenizer_dir=qwen_tokenizer[0]))
    try:
        pid = parser.pid
        for call in (lambda: parser.parse(ONE_CALL, Request(tools=TOOLS)),
                     lambda: parser.stream(one_chunk(qwen_tokenizer[1], ONE_CALL), Request(tools=TOOLS))):
            with pytest.raises(ParserCrash) as err:
                call()
            assert str(err.value).startswith("NotImplementedError: GptOssToolParser is a stub")
            assert "\n" not in str(err.value)
        assert parser.pid == pid
    finally:
        parser.close()
    assert len(hermes.parse(ONE_CALL, Request(tools=TOOLS)).tool_calls) == 1  # its clean twin


def test_a_killed_worker_is_a_crash_and_the_next_call_starts_a_fresh_one(hermes):
    pid = hermes.pid
    os.kill(pid, signal.SIGKILL)
    with pytest.raises(ParserCrash, match="signal 9"):
        hermes.parse(ONE_CALL, Request(tools=TOOLS))
    assert len(hermes.parse(ONE_CALL, Request(tools=TOOLS)).tool_calls) == 1
    assert hermes.pid not in (None, pid)


def test_a_hung_worker_is_a_crash_and_is_killed(hermes):
    hermes.call_timeout = 2.0
    pid = hermes.pid
    os.kill(pid, signal.SIGSTOP)
    with pytest.raises(ParserCrash, match="hung"):
        hermes.parse(ONE_CALL, Request(tools=TOOLS))
    assert hermes.pid is None
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


# --- the parser properties on vLLM, against a vLLM issue found from generated inputs ------------

def _search(template: str, spec: str, prop: str):
    from chainfuzz import corpus
    from chainfuzz.context import Context
    from chainfuzz.internal.runner import RunSettings, run_property
    from chainfuzz.registry import get
    from chainfuzz.targets import load_target

    ctx = Context(load_target(corpus.templates_dir() / template), parsers=(spec,)).open({"parser"})
    try:
        return run_property(get(prop), ctx, RunSettings(max_examples=150, seed=0, max_findings=2, shrink_seconds=30.0))
    finally:
        ctx.close()


def test_a_search_refinds_vllm_48294_llama3_json_loses_a_call_sent_in_one_delta():
    """vllm #48294: llama3_json's streaming parser drops a tool call when the whole message
    arrives in one delta (stream_interval > 1, speculative decoding). Found from generated
    replies and shrunk to one call, no arguments, no cut."""
    result = _search("meta-llama-Llama-3.1-8B-Instruct.jinja", "vllm:llama3_json", "parser.stream_split_invariant")
    errors = [f for f in result.findings if f.severity == "error"]
    assert errors and errors[0].key == "vllm:llama3_json:split:tool_calls:lost"
    case = errors[0].case
    assert case["grouping"] == {"at": []} and len(case["message"]["tool_calls"]) == 1


def test_hermes_streams_what_it_parses_on_the_same_search():
    """The clean twin: hermes on Qwen2.5 splits no call, however the stream is cut."""
    result = _search("Qwen-Qwen2.5-7B-Instruct.jinja", "vllm:hermes", "parser.stream_split_invariant")
    assert result.examples > 100 and [f.key for f in result.findings if f.severity == "error"] == []
