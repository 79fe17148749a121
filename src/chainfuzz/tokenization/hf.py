"""Hugging Face tokenizers through transformers, which is what servers load.

Sources: a model folder or ``tokenizer.json`` (honouring ``tokenizer_config.json``), a GGUF
vocabulary converted by transformers' GGUF support (needs torch), a SentencePiece
``.model`` and a mistral ``tekken.json`` converted by transformers' own converters.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from ..internal import files
from .base import Tokenizer, TokenizerSource, native

# Normalisers that change text by design; a round trip through them is lossy on purpose.
_BY_DESIGN = {"Lowercase", "NFC", "NFD", "NFKC", "NFKD", "StripAccents", "Precompiled"}


class HFTokenizer(Tokenizer):
    """A transformers tokenizer (``PreTrainedTokenizerFast`` or its v5 successor)."""

    impl = "hf"
    packages = ("transformers", "tokenizers")

    @classmethod
    def from_source(cls, source: TokenizerSource) -> "HFTokenizer":
        """transformers' own loading of the source, or its conversion of another format."""
        loaders = {"hf": from_pretrained, "hf-json": from_tokenizer_json, "gguf": from_gguf,
                   "sentencepiece": from_sentencepiece, "mistral-sentencepiece": from_sentencepiece,
                   "tekken": from_tekken}
        return loaders[source.format](Path(source.path))

    def __init__(self, tok, *, origin: str = "hf") -> None:
        self.tok = tok
        self.origin = origin  # how it was obtained: "hf", "hf-from-gguf", "hf-from-spm", ...
        self.vocab_size = len(tok)
        self.bos_id = tok.bos_token_id
        self.eos_id = tok.eos_token_id
        self.unk_id = tok.unk_token_id
        self.special, self.added = {}, {}
        for i, added in tok.added_tokens_decoder.items():
            (self.special if added.special else self.added)[added.content] = i
        for text, i in zip(tok.all_special_tokens, tok.all_special_ids):
            if i is not None:
                self.special.setdefault(text, i)
        self.normalizer = _by_design_normalizer(tok)
        with_special = self.encode("a", add_special=True)
        self.adds_bos = self.bos_id is not None and bool(with_special) and with_special[0] == self.bos_id \
            and self.encode("a")[:1] != [self.bos_id]

    @property
    def backend(self):
        """The underlying ``tokenizers.Tokenizer`` (what ``DecodeStream`` steps on)."""
        return self.tok.backend_tokenizer

    def encode(self, text: str, *, add_special: bool = False, parse_special: bool = True) -> list[int]:
        with native("encode"):
            return list(self.tok.encode(text, add_special_tokens=add_special,
                                        split_special_tokens=not parse_special))

    def decode(self, ids: list[int]) -> str:
        with native("decode"):
            return self.tok.decode(list(ids), skip_special_tokens=False)


# What transformers may open in a model folder (or beside a GGUF): configs, chat templates,
# vocabulary and merges files, SentencePiece and tiktoken models.
_READ_SUFFIXES = {".json", ".jinja", ".txt", ".model", ".tiktoken"}


def _regular_files_only(folder: Path) -> None:
    """transformers opens whichever of a folder's files it knows (config.json,
    added_tokens.json, vocab files...): each must be a regular file, so that no FIFO blocks
    and no device is read (`chainfuzz.internal.files`)."""
    for entry in (folder, folder / "additional_chat_templates"):
        if entry.is_dir():
            for p in sorted(entry.iterdir()):
                if p.suffix in _READ_SUFFIXES and not p.is_dir():
                    files.check_regular(p)


def _by_design_normalizer(tok) -> str | None:
    """The first normalising step of ``tok`` that changes text on purpose (lowercasing...)."""
    try:
        spec = json.loads(tok.backend_tokenizer.to_str()).get("normalizer")
    except Exception:  # noqa: BLE001 - a tokenizer without a serialisable backend
        return None
    stack = [spec]
    while stack:
        node = stack.pop(0)
        if not isinstance(node, dict):
            continue
        kind = node.get("type")
        if kind in _BY_DESIGN:
            return kind
        if kind == "BertNormalizer" and (node.get("lowercase") or node.get("strip_accents")):
            return "BertNormalizer(lowercase)" if node.get("lowercase") else "BertNormalizer(strip_accents)"
        stack.extend(node.get("normalizers") or [])
    return None


def from_pretrained(folder: Path) -> HFTokenizer:
    """A model folder, as ``AutoTokenizer.from_pretrained`` loads it offline."""
    from transformers import AutoTokenizer

    _regular_files_only(folder)
    return HFTokenizer(AutoTokenizer.from_pretrained(str(folder), local_files_only=True))


def from_tokenizer_json(path: Path) -> HFTokenizer:
    """A bare ``tokenizer.json`` (no config beside it)."""
    from transformers import PreTrainedTokenizerFast

    return HFTokenizer(PreTrainedTokenizerFast(tokenizer_file=str(path)))


def from_gguf(path: Path) -> HFTokenizer:
    """transformers' conversion of a GGUF vocabulary, as ``from_pretrained(gguf_file=...)``
    gives it.

    Not cached on disk: saving the converted tokenizer and loading it back gives a different
    tokenizer (Qwen2's gains an NFC normaliser, Phi-3's ``</s>`` changes), and the reference is
    what users get from the GGUF. `chainfuzz.tokenization.load` keeps it for the process.
    """
    import torch  # noqa: F401 - transformers' GGUF loader needs it; fail here with ImportError
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    _regular_files_only(path.parent)
    try:
        tok = AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)
    except Exception:  # noqa: BLE001 - AutoTokenizer knows fewer architectures than the converter
        tok = PreTrainedTokenizerFast.from_pretrained(str(path.parent), gguf_file=path.name)
    return HFTokenizer(tok, origin="hf-from-gguf")


def from_sentencepiece(path: Path) -> HFTokenizer:
    """transformers' conversion of a SentencePiece ``.model`` (Llama-style)."""
    from transformers import LlamaTokenizer

    with tempfile.TemporaryDirectory() as tmp:
        os.symlink(path.resolve(), Path(tmp) / "tokenizer.model")
        return HFTokenizer(LlamaTokenizer.from_pretrained(tmp), origin="hf-from-spm")


def from_tekken(path: Path) -> HFTokenizer:
    """transformers' conversion of a mistral ``tekken.json``."""
    from transformers.integrations.mistral import convert_tekken_tokenizer

    return HFTokenizer(convert_tekken_tokenizer(str(path)), origin="hf-from-tekken")
