"""The tokenizer adapters, loading and streaming that the tokenizer properties stand on.

- each implementation of a vocabulary answers the same questions the same way (a real GGUF
  through llama.cpp and transformers; Mistral's SentencePiece model through mistral-common,
  sentencepiece and transformers);
- llama.cpp's native aborts become `TokenizerCrash` and the next call gets a fresh worker;
- `load` says why an implementation is missing, and a file nothing reads is a one-line
  `TargetError` (exit 2 from the CLI);
- a target's kinds follow from what it holds;
- the streaming algorithms reproduce the full decode, holding back partial characters.
"""

from __future__ import annotations

import gc
import json
import shutil
import sys
from pathlib import Path

import planted_tokenizers as pt
import pytest

from chainfuzz import tokenization
from chainfuzz.context import Context
from chainfuzz.errors import Skip, TargetError
from chainfuzz.strategies import split
from chainfuzz.targets import load_target, load_targets
from chainfuzz.tokenization import Tokenizer, TokenizerCrash
from chainfuzz.tokenization.stream import REPLACEMENT, algorithms, decode_stream, offsets

# Plain text every implementation of a vocabulary must agree on and round-trip: no special-
# token text, no leading space and, for SentencePiece, no run of spaces (transformers'
# conversions of SentencePiece models split both differently: tokenizer.impls_agree's findings).
SPM_TEXTS = ("Hello world", "a newline\nand a tab\tthen", "naïve café 日本語", "emoji 😀!", "12345")
TEXTS = (*SPM_TEXTS, "two  spaces,   three")


# --- GGUF: llama.cpp and transformers' conversion ------------------------------------------------

@pytest.fixture(scope="module")
def vocab_dir():
    from chainfuzz import corpus

    return corpus.fetch() / "vocab"


@pytest.fixture(scope="module")
def phi3(vocab_dir):
    pytest.importorskip("llama_cpp")
    pytest.importorskip("torch")  # transformers' GGUF conversion needs it
    target = load_target(vocab_dir / "ggml-vocab-phi-3.gguf")
    return target, tokenization.load(target.tokenizer)


@pytest.mark.corpus
def test_gguf_is_read_by_llama_cpp_and_transformers_alike(phi3):
    target, loaded = phi3
    assert [t.impl for t in loaded.impls] == ["llama.cpp", "hf"] and loaded.unavailable == {}
    cpp, hf = loaded.impls
    assert hf.origin == "hf-from-gguf"
    assert (cpp.vocab_size, cpp.bos_id, cpp.eos_id) == (hf.vocab_size, hf.bos_id, hf.eos_id)
    assert cpp.bos_text == hf.bos_text == target.special_tokens["bos_token"]
    assert cpp.adds_bos and hf.adds_bos
    for text in TEXTS:
        ids = cpp.encode(text)
        assert hf.encode(text) == ids, text
        assert cpp.decode(ids) == hf.decode(ids) == text
        assert cpp.encode(text, add_special=True) == hf.encode(text, add_special=True) == [cpp.bos_id, *ids]


@pytest.mark.corpus
def test_gguf_control_tokens_are_parsed_only_when_asked(phi3):
    _, loaded = phi3
    for tok in loaded.impls:
        end = tok.special["<|end|>"]
        assert tok.encode("<|end|>", parse_special=True) == [end], tok.impl
        split_ids = tok.encode("<|end|>", parse_special=False)
        assert end not in split_ids and tok.decode(split_ids) == "<|end|>", tok.impl


@pytest.mark.corpus
def test_gguf_conversion_is_what_from_pretrained_gives_not_a_saved_copy(phi3, tmp_path):
    from transformers import AutoTokenizer

    from chainfuzz import tokenization

    target, loaded = phi3
    path = Path(target.tokenizer.path)
    direct = AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)
    direct.save_pretrained(tmp_path)
    reloaded = AutoTokenizer.from_pretrained(tmp_path)
    ours = loaded.impls[1].encode("</s>", parse_special=False)
    assert ours == direct.encode("</s>", add_special_tokens=False, split_special_tokens=True)
    # Saving and reloading changes the tokenizer, which is why the conversion is not cached
    # on disk (it was once, and the findings then depended on the cache's state).
    assert ours != reloaded.encode("</s>", add_special_tokens=False, split_special_tokens=True)
    assert tokenization.load(target.tokenizer) is loaded  # kept for the process instead


@pytest.mark.corpus
def test_llama_cpp_abort_is_a_crash_and_the_next_call_gets_a_fresh_worker(vocab_dir):
    pytest.importorskip("llama_cpp")
    from chainfuzz.tokenization.llama_cpp import LlamaCppTokenizer

    tok = LlamaCppTokenizer(vocab_dir / "ggml-vocab-phi-3.gguf")
    try:
        ids = tok.encode("Hello world")
        first = tok._worker.proc.pid
        for bad in ([-1], [tok.vocab_size]):  # llama.cpp aborts on an out-of-range id
            with pytest.raises(TokenizerCrash, match=r"llama\.cpp died \(.+\) on decode"):
                tok.decode(bad)
            assert tok._worker.proc is None  # the dead worker is gone
            assert tok.encode("Hello world") == ids  # ...and a fresh one answers
            assert tok._worker.proc.pid != first
            first = tok._worker.proc.pid
        assert tok.decode(ids) == "Hello world"
    finally:
        tok.close()


@pytest.mark.corpus
def test_an_implementation_that_cannot_read_the_file_is_reported_with_why(vocab_dir):
    """transformers' GGUF conversion knows no BERT (WordPiece) vocabulary; llama.cpp does."""
    pytest.importorskip("llama_cpp")
    loaded = tokenization.load(load_target(vocab_dir / "ggml-vocab-bert-bge.gguf").tokenizer)
    assert [t.impl for t in loaded.impls] == ["llama.cpp"]
    assert set(loaded.unavailable) == {"hf"}
    reason = loaded.unavailable["hf"]
    assert reason.startswith(("cannot read it: ", "not installed: ")), reason
    assert "\n" not in reason
    if reason.startswith("cannot read it"):
        assert "bert" in reason


@pytest.mark.corpus
def test_a_missing_library_is_reported_as_not_installed(vocab_dir, monkeypatch):
    pytest.importorskip("torch")
    monkeypatch.setitem(sys.modules, "llama_cpp", None)  # as if llama-cpp-python were absent
    monkeypatch.setattr(tokenization, "_CACHE", {})
    ignored = []  # exceptions raised where nothing can catch them (__del__ of the half-made adapter)
    monkeypatch.setattr(sys, "unraisablehook", ignored.append)
    loaded = tokenization.load(load_target(vocab_dir / "ggml-vocab-phi-3.gguf").tokenizer)
    gc.collect()
    assert [t.impl for t in loaded.impls] == ["hf"]
    assert loaded.unavailable["llama.cpp"].startswith("not installed: llama-cpp-python")
    assert [repr(u.exc_value) for u in ignored] == []


# --- SentencePiece: sentencepiece, mistral-common and transformers' conversion -------------------

@pytest.fixture(scope="module")
def mistral_v1():
    """Mistral 7B v0.1's SentencePiece model, as mistral-common ships it."""
    mistral_common = pytest.importorskip("mistral_common")
    pytest.importorskip("sentencepiece")
    return Path(mistral_common.__file__).parent / "data" / "tokenizer.model.v1"


def test_mistral_model_is_read_by_mistral_common_sentencepiece_and_transformers(mistral_v1, tmp_path):
    path = tmp_path / "tokenizer.model.v1"
    shutil.copy(mistral_v1, path)
    ctx = Context(load_target(path))
    assert ctx.target.kinds == {"tokenizer", "chain"}
    assert [t.impl for t in ctx.tokenizers] == ["mistral-common", "sentencepiece", "hf"]
    mc, sp, hf = ctx.tokenizers
    assert mc.bos_id == sp.bos_id == hf.bos_id and mc.eos_id == sp.eos_id == hf.eos_id
    for text in SPM_TEXTS:
        ids = mc.encode(text)
        assert sp.encode(text) == hf.encode(text) == ids, text
        assert [t.decode(ids) for t in ctx.tokenizers] == [text] * 3
        # Control ids are spelled out, the text around them decoded as text.
        framed = [mc.bos_id, *ids, mc.eos_id]
        assert mc.decode(framed) == sp.decode(framed) == f"<s>{text}</s>"
    assert mc.encode("Hello", add_special=True) == sp.encode("Hello", add_special=True) \
        == [mc.bos_id, *mc.encode("Hello")]


def test_mistral_common_is_its_own_chain(mistral_v1, tmp_path):
    path = tmp_path / "tokenizer.model.v1"
    shutil.copy(mistral_v1, path)
    ctx = Context(load_target(path))
    assert [c.name for c in ctx.chains] == ["mistral-common"]
    chain = ctx.chains[0]
    ids = chain.encode([{"role": "user", "content": "Hello world"}], None)
    hello = chain.tokenizer.encode("Hello world")
    assert ids[0] == chain.tokenizer.bos_id
    assert any(ids[i:i + len(hello)] == hello for i in range(len(ids)))
    with pytest.raises(Skip):  # mistral-common refuses a conversation that starts with the assistant
        chain.encode([{"role": "assistant", "content": "hi"}], None)


def test_plain_sentencepiece_model_spells_control_tokens(mistral_v1, tmp_path):
    path = tmp_path / "tokenizer.model"
    shutil.copy(mistral_v1, path)
    loaded = tokenization.load(load_target(path).tokenizer)
    assert [t.impl for t in loaded.impls] == ["sentencepiece", "hf"]
    sp = loaded.impls[0]
    assert {"<unk>", "<s>", "</s>"} <= set(sp.special) and sp.added == {}
    assert sp.adds_bos and sp.normalizer is None
    ids = sp.encode("Hello world")
    assert sp.decode([sp.bos_id, *ids, sp.eos_id, *ids]) == "<s>Hello world</s>Hello world"


def test_model_folder_with_a_sentencepiece_model_gets_both_but_chains_only_where_markers_parse(
        mistral_v1, tmp_path):
    folder = tmp_path / "model"
    folder.mkdir()
    shutil.copy(mistral_v1, folder / "tokenizer.model")
    (folder / "tokenizer_config.json").write_text(
        '{"bos_token": "<s>", "eos_token": "</s>", "chat_template": '
        '"{% for m in messages %}[INST]{{ m.content }}[/INST]{% endfor %}"}', encoding="utf-8")
    ctx = Context(load_target(folder))
    assert [t.impl for t in ctx.tokenizers] == ["hf", "sentencepiece"]
    # sentencepiece cannot turn the rendered "<s>" into BOS, so it is no chain of its own.
    assert [c.name for c in ctx.chains] == ["template+hf"]


# --- load errors ---------------------------------------------------------------------------------

def test_a_file_nothing_reads_is_a_one_line_target_error_naming_each_reason(tmp_path):
    bad = tmp_path / "broken.model"
    bad.write_bytes(b"\x00not a sentencepiece model\n")
    target = load_target(bad)  # reading the target only hashes the file
    assert target.kinds == {"tokenizer"}
    with pytest.raises(TargetError) as err:
        tokenization.load(target.tokenizer)
    message = str(err.value)
    assert "\n" not in message and message.startswith(f"{bad}: no tokenizer implementation can load it")
    assert "sentencepiece: " in message and "hf: " in message


def test_a_broken_tokenizer_json_is_a_target_error(tmp_path):
    bad = tmp_path / "tokenizer.json"
    bad.write_text('{"version": "1.0", "model": {"type": "Nonsense"}}', encoding="utf-8")
    with pytest.raises(TargetError, match=r"tokenizer\.json: no tokenizer implementation can load it \(hf: "):
        tokenization.load(load_target(bad).tokenizer)


@pytest.mark.parametrize("name, content", [
    ("tokenizer.json", '{"version": "1.0", "model": {"type": "Nonsense"}}'),
    ("broken.model", "not a model"),
])
def test_cli_reports_an_unreadable_tokenizer_in_one_line(cli, one_error_line, tmp_path, name, content):
    bad = tmp_path / name
    bad.write_text(content, encoding="utf-8")
    result = cli("check", bad, "--max-examples", "5", "--seed", "0", "--crashes", tmp_path / "crashes")
    line = one_error_line(result)
    assert name in line and "no tokenizer implementation can load it" in line
    assert result.out == ""


# --- target kinds --------------------------------------------------------------------------------

def test_kinds_follow_from_what_a_target_holds(tmp_path, write_template):
    assert load_target(write_template("t.jinja", pt.chatml())).kinds == {"template"}

    folder = pt.clean(tmp_path / "tokenizer-only")
    assert load_target(folder).kinds == {"tokenizer"}
    bare = tmp_path / "bare" / "tokenizer.json"
    bare.parent.mkdir()
    shutil.copy(folder / "tokenizer.json", bare)
    assert load_target(bare).kinds == {"tokenizer"}

    assert load_target(pt.injection_defect(tmp_path / "both")).kinds == {"template", "tokenizer", "chain"}

    template_only = tmp_path / "template-only"
    template_only.mkdir()
    (template_only / "tokenizer_config.json").write_text(json.dumps({"chat_template": pt.chatml()}))
    assert load_target(template_only).kinds == {"template"}

    for name, kinds in (("x.model", {"tokenizer"}), ("tokenizer.model.v3", {"tokenizer", "chain"}),
                        ("tekken_240911.json", {"tokenizer", "chain"})):
        (tmp_path / name).write_bytes(b"only hashed here")
        assert load_target(tmp_path / name).kinds == kinds, name


def test_named_templates_leave_tokenizer_properties_to_the_default(tmp_path):
    """A folder with several templates checks its tokenizer once, on the default template's
    target; every template is a chain with that tokenizer."""
    folder = pt.write_folder(tmp_path / "named", pt.byte_level_bpe(), chat_template=[
        {"name": "default", "template": pt.chatml()},
        {"name": "tool_use", "template": pt.chatml(sanitise=True)},
    ])
    by_name = {t.name: t for t in load_targets(folder)}
    assert by_name == {"named": load_target(folder), "named#tool_use": load_target(folder, "tool_use")}
    assert by_name["named"].kinds == {"template", "tokenizer", "chain"}
    assert by_name["named#tool_use"].kinds == {"template", "chain"}
    assert by_name["named"].tokenizer == by_name["named#tool_use"].tokenizer


@pytest.mark.corpus
def test_gguf_kinds(phi3, vocab_dir):
    assert phi3[0].kinds == {"template", "tokenizer", "chain"}
    assert load_target(vocab_dir / "ggml-vocab-llama-spm.gguf").kinds == {"tokenizer"}


# --- the HF adapter on built tokenizers ----------------------------------------------------------

def _hf(folder: Path):
    loaded = tokenization.load(load_target(folder).tokenizer)
    assert [t.impl for t in loaded.impls] == ["hf"]
    return loaded.impls[0]


def test_hf_adapter_sorts_special_added_and_control_like_tokens(tmp_path):
    tok = _hf(pt.inert_not_special_defect(tmp_path / "a"))
    assert set(tok.special) == {"<|endoftext|>", "<|im_end|>"}  # the config's EOS is promoted
    assert tok.added == tok.control_like == {"<|im_start|>": tok.added["<|im_start|>"]}
    clean = _hf(pt.clean(tmp_path / "b"))
    assert set(clean.special) == set(pt.CHATML) and clean.added == {}
    assert clean.normalizer is None
    assert _hf(pt.roundtrip_lowercase_defect(tmp_path / "c")).normalizer == "Lowercase"


def test_hf_adapter_knows_who_adds_bos(tmp_path):
    adds = _hf(pt.bos_double_clean(tmp_path / "adds"))
    assert adds.adds_bos and adds.bos_text == "<s>"
    assert adds.encode("hi", add_special=True) == [adds.bos_id, *adds.encode("hi")]
    leaves = _hf(pt.bos_template_clean(tmp_path / "leaves"))
    assert not leaves.adds_bos and leaves.bos_id == adds.bos_id
    assert leaves.encode("hi", add_special=True) == leaves.encode("hi")


# --- streaming -----------------------------------------------------------------------------------

STREAM_TEXTS = ("Hello world", "héllo wörld", "日本語 and 😀👨‍👩‍👧", "a\n\n\tb  c")


def test_offsets_holds_back_partial_characters_and_emits_each_once():
    """Over a byte decoder, one byte per step, every character comes out whole exactly when
    its last byte arrives, and nothing is emitted while a character is incomplete."""

    def decode(ids):
        return bytes(ids).decode("utf-8", "replace")

    for text in STREAM_TEXTS:
        ids = list(text.encode("utf-8"))
        deltas = offsets(decode, split(ids, []))
        assert [d for d in deltas if d] == list(text)
        for sizes in ([2], [3, 1], [5]):
            deltas = offsets(decode, split(ids, sizes))
            assert "".join(deltas) == text and not any(REPLACEMENT in d for d in deltas)


@pytest.fixture(scope="module")
def byte_level(tmp_path_factory):
    return _hf(pt.clean(tmp_path_factory.mktemp("stream") / "clean"))


def test_both_algorithms_reproduce_the_full_decode(byte_level):
    tok = byte_level
    assert set(algorithms(tok)) == {"offsets", "DecodeStream"}
    for text in STREAM_TEXTS:
        ids = tok.encode(text)
        assert tok.decode(ids) == text
        for name, stream in algorithms(tok).items():
            for sizes in ([], [2], [1, 3], [4]):
                deltas = stream(split(ids, sizes))
                assert len(deltas) == len(split(ids, sizes))
                assert "".join(deltas) == text, (name, sizes, deltas)
                assert not any(REPLACEMENT in d for d in deltas), (name, sizes, deltas)


def test_a_character_split_over_ids_is_emitted_whole_when_complete(byte_level):
    tok = byte_level
    ids = tok.encode("日")
    assert len(ids) == 3  # one byte-level id per UTF-8 byte
    assert offsets(tok.decode, split(ids, [])) == ["", "", "日"]
    assert decode_stream(tok.backend, split(ids, [])) == ["", "", "日"]


class _Bytes(Tokenizer):
    """A tokenizer with no ``tokenizers`` backend: ids are UTF-8 bytes."""

    impl = "bytes"
    vocab_size = 256
    special: dict = {}
    added: dict = {}

    def encode(self, text, *, add_special=False, parse_special=True):
        return list(text.encode("utf-8"))

    def decode(self, ids):
        return bytes(ids).decode("utf-8", "replace")


def test_a_tokenizer_without_a_backend_streams_with_offsets_only():
    tok = _Bytes()
    streams = algorithms(tok)
    assert set(streams) == {"offsets"}
    ids = tok.encode("naïve 😀")
    assert "".join(streams["offsets"](split(ids, [3]))) == "naïve 😀"


def test_an_implementation_that_loads_too_slowly_is_not_run(tmp_path, monkeypatch):
    """transformers' GGUF conversion of 300k tokens takes tens of seconds: under a 2 s load
    limit it is cut short (SIGALRM reaches the Python conversion) and reported, not waited for."""
    pytest.importorskip("torch")
    gguf = pt.many_tokens_gguf(tmp_path, n=300_000)
    monkeypatch.setattr(tokenization, "LOAD_SECONDS", 2.0)
    source = load_target(gguf).tokenizer
    try:
        reason = tokenization.load(source).unavailable["hf"]
    except TargetError as exc:  # llama.cpp too may take longer than 2 s on a loaded machine
        reason = str(exc)
    assert "took longer than 2s to load" in reason, reason


def test_a_panic_is_a_tokenizer_crash_and_stays_off_the_terminal(tmp_path, capfd):
    """tokenizers' PanicException (a BaseException) becomes TokenizerCrash; Rust's own panic
    message does not reach stderr, while a call that does not panic leaves stderr alone."""
    folder = pt.strip_panic(tmp_path / "strip")
    tok = tokenization.load(load_target(folder).tokenizer).impls[0]
    ids = tok.encode("a b")
    with pytest.raises(TokenizerCrash, match="panicked on decode: index out of bounds"):
        tok.decode(ids)
    assert tok.decode(tok.encode("ab")) == "ab"
    assert "panicked" not in capfd.readouterr().err
