"""Tokenizer implementations behind one interface, loaded from a target's tokenizer source.

A source gets every implementation that can read it, reference first: a GGUF file gets
llama.cpp (native, through llama-cpp-python) and transformers' conversion; a SentencePiece
``.model`` gets sentencepiece and transformers' conversion; mistral's files get mistral-common
and transformers' conversion. Optional implementations that are not installed, or that cannot
read the file, are listed in ``unavailable`` with the reason instead.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from ..errors import TargetError
from ..targets import TokenizerSource
from .base import Tokenizer, TokenizerCrash

__all__ = ["Loaded", "Tokenizer", "TokenizerCrash", "load"]


@dataclass
class Loaded:
    """The implementations that read a source, and why the others did not."""

    impls: list[Tokenizer] = field(default_factory=list)
    unavailable: dict[str, str] = field(default_factory=dict)


def _hf(source: TokenizerSource) -> Tokenizer:
    from . import hf

    path = Path(source.path)
    loaders: dict[str, Callable[[], Tokenizer]] = {
        "hf": lambda: hf.from_pretrained(path),
        "hf-json": lambda: hf.from_tokenizer_json(path),
        "gguf": lambda: hf.from_gguf(path),
        "sentencepiece": lambda: hf.from_sentencepiece(path),
        "mistral-sentencepiece": lambda: hf.from_sentencepiece(path),
        "tekken": lambda: hf.from_tekken(path),
    }
    return loaders[source.format]()


def _llama_cpp(source: TokenizerSource) -> Tokenizer:
    from .llama_cpp import LlamaCppTokenizer

    return LlamaCppTokenizer(Path(source.path))


def _sentencepiece(source: TokenizerSource) -> Tokenizer:
    from .spm import SentencePieceTokenizer

    path = Path(source.path)
    return SentencePieceTokenizer(path / "tokenizer.model" if path.is_dir() else path)


def _mistral(source: TokenizerSource) -> Tokenizer:
    from .mistral import MistralCommonTokenizer

    return MistralCommonTokenizer(Path(source.path))


# Per format, the implementations to load, reference first; the extra that installs each.
_IMPLS: dict[str, list[tuple[str, Callable[[TokenizerSource], Tokenizer], str]]] = {
    "hf": [("hf", _hf, ""), ("sentencepiece", _sentencepiece, "spm")],
    "hf-json": [("hf", _hf, "")],
    "gguf": [("llama.cpp", _llama_cpp, "llama"), ("hf", _hf, "hf-gguf")],
    "sentencepiece": [("sentencepiece", _sentencepiece, "spm"), ("hf", _hf, "spm")],
    "mistral-sentencepiece": [("mistral-common", _mistral, "mistral"),
                              ("sentencepiece", _sentencepiece, "spm"), ("hf", _hf, "spm")],
    "tekken": [("mistral-common", _mistral, "mistral"), ("hf", _hf, "mistral")],
}

# Per source: what loaded, or why nothing did (a failed load is as slow as a good one).
_CACHE: dict[tuple[str, str, str], Loaded | TargetError] = {}


def load(source: TokenizerSource) -> Loaded:
    """Every implementation that reads ``source`` (cached per process: loading is slow).

    `TargetError` when none does, naming each reason.
    """
    key = (source.format, source.path, source.sha256)
    if key not in _CACHE:
        _CACHE[key] = _load(source)
    loaded = _CACHE[key]
    if isinstance(loaded, TargetError):
        raise TargetError(str(loaded)) from None
    return loaded


def _load(source: TokenizerSource) -> Loaded | TargetError:
    loaded = Loaded()
    for name, loader, extra in _IMPLS[source.format]:
        if source.format == "hf" and name == "sentencepiece" \
                and not (Path(source.path) / "tokenizer.model").exists():
            continue  # a model folder has a SentencePiece model only sometimes
        try:
            loaded.impls.append(loader(source))
        except ImportError as exc:
            hint = f" (pip install 'chainfuzz[{extra}]')" if extra else ""
            loaded.unavailable[name] = f"not installed: {exc.name or exc}{hint}"
        except TokenizerCrash as exc:
            loaded.unavailable[name] = f"crashed loading the file: {exc}"
        except Exception as exc:  # noqa: BLE001 - each library fails its own way on a bad file
            loaded.unavailable[name] = f"cannot read it: {type(exc).__name__}: {_first_line(exc)}"
    if not loaded.impls:
        reasons = "; ".join(f"{k}: {v}" for k, v in loaded.unavailable.items())
        return TargetError(f"{source.path}: no tokenizer implementation can load it ({reasons})")
    return loaded


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:200] if text else "no message"
