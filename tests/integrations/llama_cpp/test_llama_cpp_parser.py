"""llama.cpp's output parser (``common_chat_parse``) through the program chainfuzz builds from
the llama.cpp source, on real templates: the format it picks, whole parses, the server's
streaming, reasoning, crashes, and the build cache."""

from __future__ import annotations

import os
import shutil
import signal

import pytest

pytest.importorskip("llama_cpp")
pytestmark = pytest.mark.corpus

from chainfuzz.corpus import templates_dir  # noqa: E402
from chainfuzz.errors import UsageError  # noqa: E402
from chainfuzz.parsers import Chunk, ParserCrash, ParserSetup, Request, ToolCall, open_parser  # noqa: E402
from chainfuzz.parsers import llama_cpp_build  # noqa: E402
from programs import need_program  # noqa: E402

TOOLS = [
    {"type": "function", "function": {"name": "get_weather", "description": "The weather in a city.",
                                      "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                                                     "required": ["city"]}}},
    {"type": "function", "function": {"name": "add", "parameters": {
        "type": "object", "properties": {"a": {"type": "number"}, "b": {"type": "number"}}}}},
]
WITH_TOOLS = Request(tools=TOOLS)
TWO_CALLS = ('Let me check.\n<tool_call>\n{"name": "get_weather", "arguments": {"city": "Zürich"}}\n</tool_call>\n'
             '<tool_call>\n{"name": "add", "arguments": {"a": 1, "b": 2}}\n</tool_call>')


def _open(template: str, spec: str = "llama.cpp"):
    need_program("g++")
    source = (templates_dir() / template).read_text(encoding="utf-8")
    return open_parser(spec, ParserSetup(template_source=source))


@pytest.fixture(scope="module")
def qwen25():
    parser = _open("Qwen-Qwen2.5-7B-Instruct.jinja")
    yield parser
    parser.close()


def _joined(deltas) -> dict:
    """A stream's deltas put together as a client does: text concatenated, each call's name and
    id from the delta that carries them, its arguments concatenated."""
    calls: dict[int, dict] = {}
    for d in deltas:
        for t in d.tool_calls:
            call = calls.setdefault(t.index, {"name": None, "arguments": "", "id": None, "names": 0})
            if t.name is not None:
                call["name"], call["names"] = t.name, call["names"] + 1
            call["id"] = t.id if t.id is not None else call["id"]
            call["arguments"] += t.arguments or ""
    return {"content": "".join(d.content or "" for d in deltas),
            "reasoning": "".join(d.reasoning or "" for d in deltas),
            "calls": [calls[i] for i in sorted(calls)]}


def test_qwen25_with_tools_gets_a_tool_call_parser(qwen25):
    # This llama.cpp has no "Hermes 2 Pro" format any more: every template gets a PEG parser,
    # generated from the template (peg-native) unless a specialised one matches.
    picked = qwen25.format(WITH_TOOLS)
    assert picked["format"] == "peg-native" and picked["has_parser"]
    assert picked["generation_prompt"] == "<|im_start|>assistant\n"
    assert not picked["supports_thinking"]


def test_content_and_two_tool_calls_parse(qwen25):
    msg = qwen25.parse(TWO_CALLS, WITH_TOOLS)
    assert msg.content == "Let me check.\n" and not msg.reasoning
    assert msg.tool_calls == [ToolCall("get_weather", '{"city": "Zürich"}'), ToolCall("add", '{"a": 1, "b": 2}')]


def test_without_tools_the_same_text_is_content(qwen25):
    msg = qwen25.parse(TWO_CALLS, Request())
    assert msg.content == TWO_CALLS and msg.tool_calls == []


@pytest.mark.parametrize("split", ["char", "whole"])
def test_stream_equals_the_whole_parse(qwen25, split):
    chunks = [Chunk(c) for c in TWO_CALLS] if split == "char" else [Chunk(TWO_CALLS)]
    deltas = qwen25.stream(chunks, WITH_TOOLS)
    assert len(deltas) == len(chunks)
    whole = qwen25.parse(TWO_CALLS, WITH_TOOLS)
    joined = _joined(deltas)
    assert joined["content"] == whole.content and joined["reasoning"] == ""
    assert [(c["name"], c["arguments"]) for c in joined["calls"]] == [(c.name, c.arguments) for c in whole.tool_calls]
    # ids: the server generates them where the parser gives none (here call_0, call_1), once per call
    assert [(c["id"], c["names"]) for c in joined["calls"]] == [("call_0", 1), ("call_1", 1)]


def test_each_stream_starts_fresh(qwen25):
    chunks = [Chunk(TWO_CALLS[:40]), Chunk(TWO_CALLS[40:])]
    assert qwen25.stream(chunks, WITH_TOOLS) == qwen25.stream(chunks, WITH_TOOLS)


@pytest.mark.parametrize("template, text", [
    # Qwen3's generation prompt leaves <think> to the model; DeepSeek-R1's opens it itself.
    ("Qwen-Qwen3-0.6B.jinja", "<think>\nThe user greets me.\n</think>\n\nHello!"),
    ("deepseek-ai-DeepSeek-R1-Distill-Qwen-32B.jinja", "The user greets me.\n</think>\n\nHello!"),
])
def test_think_block_parses_into_reasoning(template, text):
    parser = _open(template)
    try:
        assert parser.format(Request())["supports_thinking"]
        msg = parser.parse(text, Request())
        assert (msg.reasoning.strip(), msg.content.strip()) == ("The user greets me.", "Hello!")
        joined = _joined(parser.stream([Chunk(c) for c in text], Request()))
        assert (joined["reasoning"], joined["content"]) == (msg.reasoning, msg.content)
    finally:
        parser.close()


def test_reasoning_format_none_leaves_the_think_block_in_content():
    text = "<think>\nThe user greets me.\n</think>\n\nHello!"
    parser = _open("Qwen-Qwen3-0.6B.jinja", "llama.cpp:none")
    try:
        msg = parser.parse(text, Request())
        assert not msg.reasoning and "The user greets me." in msg.content and "Hello!" in msg.content
    finally:
        parser.close()


def test_text_the_format_cannot_parse_is_a_parser_crash(qwen25):
    with pytest.raises(ParserCrash, match="does not match the expected peg-native format"):
        qwen25.parse("<tool_call>\n{bad", WITH_TOOLS)
    assert qwen25.parse("fine", WITH_TOOLS).content == "fine"  # the worker lives on


def test_a_hung_worker_is_a_parser_crash_and_the_next_call_starts_a_fresh_one(qwen25, monkeypatch):
    from chainfuzz.parsers import llama_cpp

    qwen25.parse("warm", WITH_TOOLS)
    monkeypatch.setattr(llama_cpp, "CALL_TIMEOUT", 1.0)
    os.kill(qwen25._worker.proc.pid, signal.SIGSTOP)
    with pytest.raises(ParserCrash, match="hung for 1 s"):
        qwen25.parse("hello", WITH_TOOLS)
    assert qwen25.parse("hello", WITH_TOOLS).content == "hello"


def test_bad_specs_are_usage_errors():
    need_program("g++")
    with pytest.raises(UsageError, match="unknown reasoning format 'thinky'.*known: deepseek"):
        open_parser("llama.cpp:thinky", ParserSetup(template_source="{{ messages }}"))
    with pytest.raises(UsageError, match="has none"):
        open_parser("llama.cpp", ParserSetup())


def test_versions_name_llama_cpp_and_the_library(qwen25):
    versions = qwen25.versions()
    assert versions["llama.cpp"].startswith("0.5.0@") and "unknown" not in versions["llama.cpp"]
    assert versions["llama-cpp-python"]


def test_program_is_rebuilt_when_missing_and_reused_when_present(tmp_path, monkeypatch):
    need_program("g++")
    common = llama_cpp_build.build_common()  # common/'s objects: the slow part, cached once
    monkeypatch.setenv("CHAINFUZZ_CACHE", str(tmp_path))
    shutil.copytree(common, llama_cpp_build.common_dir())
    assert not llama_cpp_build.program_dir().exists()
    program = llama_cpp_build.program_path(quiet=True)  # missing: built
    assert program.is_file() and program.parent == llama_cpp_build.program_dir()
    parser = _open("Qwen-Qwen2.5-7B-Instruct.jinja")
    try:
        assert parser.parse(TWO_CALLS, WITH_TOOLS).tool_calls[1].name == "add"
    finally:
        parser.close()
    built = program.stat()

    def no_build(*args, **kwargs):
        raise AssertionError("rebuilt a program the cache holds")

    monkeypatch.setattr(llama_cpp_build, "build", no_build)
    assert llama_cpp_build.program_path() == program and program.stat().st_mtime_ns == built.st_mtime_ns


def test_fetch_builds_it_through_the_cli(cli):
    need_program("g++")
    result = cli("fetch", "llama.cpp-parser")
    assert result.rc == 0 and f"built in {llama_cpp_build.program_dir()}" in result.out


def test_without_a_compiler_the_parser_is_unavailable(tmp_path, monkeypatch, cli):
    monkeypatch.setenv("CHAINFUZZ_CACHE", str(tmp_path / "cache"))  # nothing built there
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv("CXX", raising=False)
    with pytest.raises(ImportError, match="needs a C.. compiler"):
        open_parser("llama.cpp", ParserSetup(template_source="{{ messages }}"))
    result = cli("fetch", "llama.cpp-parser")
    assert result.rc == 2 and len(result.err_lines) == 1 and "needs a C++ compiler" in result.err
