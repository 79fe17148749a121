"""Small tokenizers with one planted defect each, and their clean twins (a helper, not tests).

Each builder writes one target into the folder it is given and returns the path to load:
a Hugging Face model folder (``tokenizer.json`` + ``tokenizer_config.json``, with a chat
template where a chain property needs one) built with the ``tokenizers`` library, or, for
``tokenizer.impls_agree``, a copy of a real vocab-only GGUF (llama.cpp against transformers'
conversion) with one metadata key set. A defect and its clean twin differ only in the planted
component; `differences` names what differs, so a test can check that.

The clean base is byte-level BPE over all 256 bytes plus a few merges (so words take several
ids and multi-byte characters split into partial-character ids): it round-trips every string,
streams exactly, and parses its ChatML control tokens only when asked to.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Callable

from tokenizers import AddedToken, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors

CHATML = ("<|im_start|>", "<|im_end|>", "<|endoftext|>")
MERGES = (("h", "e"), ("l", "l"), ("he", "ll"), ("Ġ", "t"), ("Ġt", "h"), ("Ã", "©"))

# What a server passes beside the files: no cleanup of spaces before punctuation (it corrupts
# byte-level text), the fast tokenizer class, and the ChatML end token.
BASE_CONFIG = {"tokenizer_class": "PreTrainedTokenizerFast", "clean_up_tokenization_spaces": False,
               "eos_token": "<|im_end|>"}


# --- building blocks -----------------------------------------------------------------------------


def byte_level_bpe(*, special: tuple[str, ...] = CHATML, plain: tuple[str, ...] = ()) -> Tokenizer:
    """Byte-level BPE (GPT-2 style) with ``special`` added as special tokens and ``plain``
    added as ordinary added tokens (matched in text whatever the special-token setting)."""
    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    vocab = {c: i for i, c in enumerate(alphabet)}
    for a, b in MERGES:
        vocab.setdefault(a + b, len(vocab))
    tok = Tokenizer(models.BPE(vocab=vocab, merges=list(MERGES)))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in special])
    if plain:
        tok.add_tokens([AddedToken(t, special=False, normalized=False) for t in plain])
    return tok


BYTE_FALLBACK_FIRST = 3  # <unk> <s> </s>, then <0x00>..<0xFF>


def byte_id(b: int) -> int:
    """The id of the byte token ``<0xNN>`` in `byte_fallback_bpe`."""
    return BYTE_FALLBACK_FIRST + b


def byte_fallback_bpe() -> Tokenizer:
    """A SentencePiece-style BPE (Llama's shape): ``▁`` for spaces, a ``<0xNN>`` token for
    every byte that no piece covers, and the ByteFallback decoder."""
    vocab = {"<unk>": 0, "<s>": 1, "</s>": 2}
    vocab.update({f"<0x{b:02X}>": byte_id(b) for b in range(256)})
    pieces = ["▁", *"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.,!?"]
    merges = [("▁", "t"), ("h", "e"), ("▁t", "he"), ("l", "l")]
    for p in pieces + [a + b for a, b in merges]:
        vocab.setdefault(p, len(vocab))
    tok = Tokenizer(models.BPE(vocab=vocab, merges=merges, unk_token="<unk>", byte_fallback=True))
    tok.normalizer = normalizers.Replace(" ", "▁")
    tok.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse()])
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in ("<unk>", "<s>", "</s>")])
    return tok


def write_folder(folder: Path, tok: Tokenizer, *, config: dict | None = None,
                 chat_template: str | list | None = None) -> Path:
    """``folder`` as a model folder: tokenizer.json and tokenizer_config.json."""
    folder.mkdir(parents=True, exist_ok=True)
    tok.save(str(folder / "tokenizer.json"))
    config = dict(BASE_CONFIG if config is None else config)
    if chat_template is not None:
        config["chat_template"] = chat_template
    (folder / "tokenizer_config.json").write_text(json.dumps(config, indent=1), encoding="utf-8")
    return folder


def chatml(*, bos: str = "", sanitise: bool = False) -> str:
    """A ChatML template rendering every input shape the strategies draw; ``bos`` is written
    first; ``sanitise`` splits ``<|`` in everything taken from the input (content, tool calls,
    tools), so no input text can spell a control token."""
    open_, close = ("{%- filter replace('<|', '< |') -%}", "{%- endfilter -%}") if sanitise else ("", "")
    return "\n".join([
        bos,
        "{%- macro render_content(content) -%}",
        "    {%- if content is string -%}{{- content -}}",
        "    {%- elif content is none -%}",
        "    {%- elif content is mapping -%}{{- content | tojson -}}",
        "    {%- else -%}{%- for part in content -%}{%- if part.type == 'text' -%}{{- part.text -}}"
        "{%- endif -%}{%- endfor -%}",
        "    {%- endif -%}",
        "{%- endmacro -%}",
        "{%- if tools -%}",
        "    {{- '<|im_start|>system\\n# Tools\\n' -}}",
        open_,
        "    {%- for tool in tools -%}{{- tool | tojson -}}{{- '\\n' -}}{%- endfor -%}",
        close,
        "    {{- '<|im_end|>\\n' -}}",
        "{%- endif -%}",
        "{%- for message in messages -%}",
        "    {{- '<|im_start|>' + message.role + '\\n' -}}",
        open_,
        "    {{- render_content(message.content) -}}",
        "    {%- for call in message.tool_calls or [] -%}",
        "        {{- '<tool_call>\\n' -}}{{- call.function.name -}}{{- ' ' -}}",
        "        {%- if call.function.arguments is string -%}{{- call.function.arguments -}}",
        "        {%- else -%}{{- call.function.arguments | tojson -}}{%- endif -%}",
        "        {{- '\\n</tool_call>' -}}",
        "    {%- endfor -%}",
        close,
        "    {{- '<|im_end|>\\n' -}}",
        "{%- endfor -%}",
        "{%- if add_generation_prompt -%}{{- '<|im_start|>assistant\\n' -}}{%- endif -%}",
    ])


# --- the clean base (twin of the roundtrip, stream_decode and special_tokens_inert defects) --------


def clean(folder: Path) -> Path:
    """Byte-level BPE with ChatML control tokens marked special."""
    return write_folder(folder, byte_level_bpe())


# --- tokenizer.roundtrip -------------------------------------------------------------------------


def roundtrip_strip_defect(folder: Path) -> Path:
    """The decoder strips one leading space from the decoded text: " hi" comes back "hi"."""
    tok = byte_level_bpe()
    tok.decoder = decoders.Sequence([decoders.ByteLevel(), decoders.Strip(" ", 1, 0)])
    return write_folder(folder, tok)


def roundtrip_lowercase_defect(folder: Path) -> Path:
    """A Lowercase normaliser: lossy by design, so a warning naming the normaliser."""
    tok = byte_level_bpe()
    tok.normalizer = normalizers.Lowercase()
    return write_folder(folder, tok)


# --- tokenizer.stream_decode ---------------------------------------------------------------------


def stream_replacement_defect(folder: Path) -> Path:
    """The decoder spells U+FFFD as "?": a window ending in part of a character no longer ends
    in U+FFFD, so the streaming algorithms emit "?" instead of holding the bytes back."""
    tok = byte_level_bpe()
    tok.decoder = decoders.Sequence([decoders.ByteLevel(), decoders.Replace("\ufffd", "?")])
    return write_folder(folder, tok)


def stream_byte_fallback_defect(folder: Path) -> Path:
    """Llama-style byte fallback: the ByteFallback decoder turns a whole run of byte tokens
    into U+FFFDs when the run is not valid UTF-8, valid bytes included, so ``<0x41>`` streams
    as "A" and then turns into U+FFFD in the full decode once ``<0x80>`` follows it."""
    return write_folder(folder, byte_fallback_bpe(),
                        config={**BASE_CONFIG, "eos_token": "</s>", "bos_token": "<s>",
                                "unk_token": "<unk>"})


# --- tokenizer.special_tokens_inert --------------------------------------------------------------


def inert_not_special_defect(folder: Path) -> Path:
    """The ChatML markers are added tokens but not marked special: text spelling them is
    matched even with ``split_special_tokens=True``. (transformers promotes ``<|im_end|>`` to
    special, as the config names it the EOS token; ``<|im_start|>`` stays an added token.)"""
    return write_folder(folder, byte_level_bpe(special=("<|endoftext|>",),
                                               plain=("<|im_start|>", "<|im_end|>")))


# --- chain.single_bos ---------------------------------------------------------------------------

BOS_SPECIALS = ("<s>", "</s>", "<|im_start|>", "<|im_end|>")


def _bos_folder(folder: Path, *, adds_bos: bool, template: str) -> Path:
    tok = byte_level_bpe(special=BOS_SPECIALS)
    if adds_bos:
        tok.post_processor = processors.TemplateProcessing(single="<s> $A", pair="<s> $A <s> $B",
                                                           special_tokens=[("<s>", tok.token_to_id("<s>"))])
    config = {**BASE_CONFIG, "bos_token": "<s>", "eos_token": "</s>", "add_bos_token": adds_bos}
    return write_folder(folder, tok, config=config, chat_template=template)


def bos_double_defect(folder: Path) -> Path:
    """The tokenizer adds BOS (post-processor, ``add_bos_token``) and the template writes
    ``{{ bos_token }}`` as well: two BOS."""
    return _bos_folder(folder, adds_bos=True, template=chatml(bos="{{- bos_token -}}"))


def bos_double_clean(folder: Path) -> Path:
    """The same tokenizer; the template leaves BOS to it."""
    return _bos_folder(folder, adds_bos=True, template=chatml())


def bos_not_first_defect(folder: Path) -> Path:
    """The tokenizer adds nothing; the template writes a newline before ``{{ bos_token }}``."""
    return _bos_folder(folder, adds_bos=False, template=chatml(bos="{{- '\\n' + bos_token -}}"))


def bos_template_clean(folder: Path) -> Path:
    """The tokenizer adds nothing; the template writes BOS first."""
    return _bos_folder(folder, adds_bos=False, template=chatml(bos="{{- bos_token -}}"))


# --- chain.no_role_injection ---------------------------------------------------------------------


def injection_defect(folder: Path) -> Path:
    """A ChatML template writing message text as is, with the markers special tokens: a user
    message spelling ``<|im_end|>`` becomes a real turn boundary once the prompt is parsed."""
    return write_folder(folder, byte_level_bpe(), chat_template=chatml())


def injection_clean(folder: Path) -> Path:
    """The same, with the template splitting ``<|`` in everything it takes from the input."""
    return write_folder(folder, byte_level_bpe(), chat_template=chatml(sanitise=True))


# --- tokenizer.impls_agree -----------------------------------------------------------------------


@functools.lru_cache(maxsize=2)
def _read_gguf(path: Path):
    from gguf import GGUFReader

    return GGUFReader(path)  # seconds for a real vocabulary: read once for both twins


def copy_gguf(src: Path, dst: Path, booleans: dict[str, bool]) -> Path:
    """``src`` rewritten to ``dst`` with the boolean keys ``booleans`` set (vocab-only files:
    metadata, no tensors). Deterministic, so transformers' conversion cache keeps hitting."""
    from gguf import GGUFValueType, GGUFWriter

    reader = _read_gguf(src)
    writer = GGUFWriter(str(dst), reader.fields["general.architecture"].contents())
    for field in reader.fields.values():
        if field.name.startswith("GGUF.") or field.name == "general.architecture" or field.name in booleans:
            continue
        kind = field.types[0]
        writer.add_key_value(field.name, field.contents(), kind,
                             sub_type=field.types[-1] if kind == GGUFValueType.ARRAY else None)
    for key, value in booleans.items():
        writer.add_bool(key, value)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return dst


def gguf_space_prefix_defect(folder: Path, phi3: Path) -> Path:
    """phi-3's vocabulary stating ``add_space_prefix = false``: llama.cpp honours it ("hello"
    encodes without the leading ``▁``), transformers' GGUF conversion does not."""
    folder.mkdir(parents=True, exist_ok=True)
    return copy_gguf(phi3, folder / "phi3-no-space-prefix.gguf", {"tokenizer.ggml.add_space_prefix": False})


def gguf_space_prefix_clean(folder: Path, phi3: Path) -> Path:
    """The same copy stating ``add_space_prefix = true`` (what phi-3 means by default)."""
    folder.mkdir(parents=True, exist_ok=True)
    return copy_gguf(phi3, folder / "phi3-space-prefix.gguf", {"tokenizer.ggml.add_space_prefix": True})


BUILDERS: dict[str, Callable[[Path], Path]] = {
    f.__name__: f for f in (
        clean, roundtrip_strip_defect, roundtrip_lowercase_defect, stream_replacement_defect,
        stream_byte_fallback_defect, inert_not_special_defect, bos_double_defect, bos_double_clean,
        bos_not_first_defect, bos_template_clean, injection_defect, injection_clean,
    )
}
GGUF_BUILDERS = {f.__name__: f for f in (gguf_space_prefix_defect, gguf_space_prefix_clean)}


# --- twins ---------------------------------------------------------------------------------------


def differences(a: Path, b: Path) -> set[str]:
    """What differs between two built targets: ``file:key`` for the top-level keys of JSON
    files in two folders, the metadata keys of two GGUF files."""
    if a.suffix == ".gguf":
        from gguf import GGUFReader

        fa, fb = GGUFReader(a).fields, GGUFReader(b).fields
        return {k for k in {*fa, *fb} - {"GGUF.kv_count"}
                if k not in fa or k not in fb or fa[k].contents() != fb[k].contents()}
    out = set()
    for name in sorted({p.name for p in a.iterdir()} | {p.name for p in b.iterdir()}):
        pa, pb = a / name, b / name
        if not (pa.exists() and pb.exists()):
            out.add(name)
            continue
        ja, jb = (json.loads(p.read_text(encoding="utf-8")) for p in (pa, pb))
        out |= {f"{name}:{k}" for k in {*ja, *jb} if ja.get(k) != jb.get(k)}
    return out


# --- hostile tokenizers: native libraries that panic or abort -------------------------------------
# (tests/hostile/test_tokenizers.py; each is verified to panic or abort with the installed version)

STRIP_PANIC_CONTENT = "Ġ"  # byte-level BPE's space: two bytes in UTF-8


def strip_panic(folder: Path) -> Path:
    """Byte-level BPE whose decoder strips up to two ``Ġ`` from the right of each token
    first: tokenizers 0.23 counts the strip in characters but cuts bytes, and panics
    ("index out of bounds") decoding a token that is a lone ``Ġ`` (a space before a
    character with no merge)."""
    tok = byte_level_bpe()
    tok.decoder = decoders.Sequence([decoders.Strip(content=STRIP_PANIC_CONTENT, left=0, right=2),
                                     decoders.ByteLevel()])
    return write_folder(folder, tok)


def precompiled_panic(folder: Path, *, sentencepiece: bool = False) -> Path:
    """Byte-level BPE with a ``Precompiled`` normaliser whose charsmap is junk: it loads, and
    panics on the first text it normalises. With ``sentencepiece``, a real SentencePiece
    ``tokenizer.model`` (trained here) sits beside it, so another implementation still reads
    the folder."""
    folder = write_folder(folder, byte_level_bpe())
    spec = json.loads((folder / "tokenizer.json").read_text(encoding="utf-8"))
    spec["normalizer"] = {"type": "Precompiled", "precompiled_charsmap": "AAAAAAAAAAAA"}
    (folder / "tokenizer.json").write_text(json.dumps(spec), encoding="utf-8")
    if sentencepiece:
        train_sentencepiece(folder / "tokenizer.model")
    return folder


def train_sentencepiece(path: Path) -> Path:
    """A small real SentencePiece BPE model (byte fallback on) trained on a few lines."""
    import io

    import sentencepiece as spm

    lines = ["hello world, the quick brown fox jumps over the lazy dog."] * 20 + \
        ["Tokenizers split text into pieces; pieces become ids."] * 20
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(sentence_iterator=iter(lines), model_writer=model, vocab_size=400,
                                   model_type="bpe", byte_fallback=True, character_coverage=1.0,
                                   minloglevel=2)
    path.write_bytes(model.getvalue())
    return path


def gguf_vocab(path: Path, tokens: list[str], types: list[int], *, model: str = "llama",
               scores: list[float] | None = None, merges: list[str] | None = None) -> Path:
    """A vocab-only GGUF (no tensors) holding just a tokenizer."""
    from gguf import GGUFWriter

    w = GGUFWriter(str(path), "llama")
    w.add_tokenizer_model(model)
    w.add_token_list(tokens)
    w.add_token_types(types)
    if scores is not None:
        w.add_token_scores(scores)
    if merges is not None:
        w.add_token_merges(merges)
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def llama_no_byte_tokens(folder: Path) -> Path:
    """A SentencePiece-style (``llama``) GGUF vocabulary without the ``<0xNN>`` byte tokens:
    llama.cpp (0.3.x) loads it and aborts (``std::out_of_range``) on the first character no
    piece covers, as byte fallback looks the byte token up; transformers' conversion reads it."""
    folder.mkdir(parents=True, exist_ok=True)
    pieces = ["<unk>", "<s>", "</s>", "▁", *"abcdefghijklmnopqrstuvwxyz", "▁the", "▁a"]
    types = [2, 3, 3] + [1] * (len(pieces) - 3)
    return gguf_vocab(folder / "no-byte-tokens.gguf", pieces, types, scores=[0.0] * len(pieces))


def many_tokens_gguf(folder: Path, n: int = 2_000_000) -> Path:
    """A GGUF of ``n`` distinct plain tokens (a gpt2 vocabulary without merges): transformers'
    GGUF conversion takes minutes on two million (175 s measured), printing nothing."""
    folder.mkdir(parents=True, exist_ok=True)
    tokens = ["<unk>", "<s>", "</s>", *(f"t{i}" for i in range(n - 3))]
    return gguf_vocab(folder / "many-tokens.gguf", tokens, [2, 3, 3] + [1] * (n - 3),
                      scores=[0.0] * n)
