"""Hostile tokenizers: native libraries that panic (tokenizers' Rust) or abort (llama.cpp), and
a vocabulary too large to convert in the budget. A panic on an input is a finding of the
property that gave it the input; one while loading leaves that implementation not run (or,
if none loads, one error line); a slow load is cut at the budget.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

import planted_tokenizers as pt

needs_llama = pytest.mark.skipif(importlib.util.find_spec("llama_cpp") is None or
                                 importlib.util.find_spec("torch") is None,
                                 reason="llama-cpp-python and torch (transformers' GGUF conversion)")


def _check(hostile, cls, name, path, tmp_path, *more, **kw):
    return hostile(cls, name, "check", path, "--crashes", tmp_path / "crashes",
                   "--json", tmp_path / "report.json", *more, max_seconds=90, **kw)


def _properties_run(tmp_path: Path) -> dict[str, int]:
    """Examples checked per property, from the --json report."""
    doc = json.loads((tmp_path / "report.json").read_text(encoding="utf-8"))
    return {prop: r["examples"] for props in doc["stats"]["targets"].values() for prop, r in props.items()}


# --- 2 native panics -----------------------------------------------------------------------------


def test_panic_on_decode_is_a_finding_that_replays(hostile, tmp_path):
    folder = pt.strip_panic(tmp_path / "strip")
    r = _check(hostile, "2 native panics", "Strip decoder panics on decode", folder, tmp_path,
               "--max-examples", "40", "--budget", "40", "--seed", "1", expect_rc=1)
    panics = [c for c in r.cases() if c["key"].startswith("hf:crash:decode")]
    assert panics, [c["key"] for c in r.cases()]
    assert "panicked on decode" in panics[0]["message"], panics[0]["message"]
    assert "panicked at" not in r.err, "the Rust panic message reached the terminal"
    ran = _properties_run(tmp_path)
    assert ran.get("tokenizer.special_tokens_inert", 0) > 0, ran  # the other properties still ran
    case_file = next(p for p in (tmp_path / "crashes").glob("*.json")
                     if json.loads(p.read_text(encoding="utf-8"))["key"] == panics[0]["key"])
    replay = hostile("2 native panics", "Strip decoder panic replayed", "replay", case_file,
                     expect_rc=(0, 1), max_seconds=60)
    assert "fails" in replay.out, replay.out


def test_panic_while_loading_leaves_the_other_implementation(hostile, tmp_path):
    folder = pt.precompiled_panic(tmp_path / "pre", sentencepiece=True)
    r = _check(hostile, "2 native panics", "Precompiled charsmap panics, sentencepiece beside it", folder,
               tmp_path, "--max-examples", "5", "--budget", "20", expect_rc=(0, 1))
    assert "not run: hf: crashed loading the file: panicked on encode" in r.out, r.out
    assert _properties_run(tmp_path).get("tokenizer.roundtrip", 0) > 0  # sentencepiece was checked


def test_panic_while_loading_the_only_implementation_is_one_line(hostile, tmp_path):
    folder = pt.precompiled_panic(tmp_path / "pre")
    r = _check(hostile, "2 native panics", "Precompiled charsmap panics, nothing beside it", folder, tmp_path,
               "--max-examples", "5", "--budget", "20", expect_rc=2)
    assert "pre: no tokenizer implementation can load it (hf: crashed loading the file: panicked" \
        in r.err_lines[0], r.err


def test_clean_twin_loads_and_decodes(tmp_path):
    """The same tokenizer without the strip step loads and round-trips in-process."""
    from chainfuzz.internal import files
    from chainfuzz.tokenization import load
    from chainfuzz.tokenization.base import TokenizerSource

    folder = pt.write_folder(tmp_path / "clean", pt.byte_level_bpe())
    tok = load(TokenizerSource("hf", str(folder), files.sha256([folder / "tokenizer.json"]))).impls[0]
    assert tok.decode(tok.encode("a b é")) == "a b é"


@needs_llama
def test_llama_cpp_abort_while_probing_is_not_run(hostile, tmp_path):
    gguf = pt.llama_no_byte_tokens(tmp_path / "vocab")
    r = _check(hostile, "2 native panics", "llama.cpp aborts probing a vocabulary without byte tokens", gguf,
               tmp_path, "--max-examples", "5", "--budget", "30", expect_rc=(0, 1))
    assert "not run: llama.cpp: crashed probing its vocabulary: llama.cpp died (signal 6)" in r.out, r.out
    assert _properties_run(tmp_path).get("tokenizer.roundtrip", 0) > 0  # transformers' conversion ran


# --- 4 hangs: a load that takes minutes ----------------------------------------------------------


@needs_llama
def test_a_two_million_token_gguf_is_cut_at_the_budget(hostile, tmp_path):
    gguf = pt.many_tokens_gguf(tmp_path / "many")
    r = hostile("4 hangs", "2-million-token GGUF, --budget 15", "check", gguf, "--crashes", tmp_path / "crashes",
                "--max-examples", "5", "--budget", "15", expect_rc=2, max_seconds=40)
    assert "budget" in r.err_lines[0] and "many-tokens.gguf" in r.err_lines[0], r.err
