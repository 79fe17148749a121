"""Tokenizer implementations behind one interface, loaded from a target's tokenizer source.

A source gets every implementation that can read it (`formats.FORMATS`), reference first: a
GGUF file gets llama.cpp (native, through llama-cpp-python) and transformers' conversion; a
SentencePiece ``.model`` gets sentencepiece and transformers' conversion; mistral's files get
mistral-common and transformers' conversion. Optional implementations that are not installed,
or that cannot read the file, are listed in ``unavailable`` with the reason instead.
Implementations are a lazy table (`AVAILABLE_TOKENIZERS`); third parties add theirs through
the ``chainfuzz.tokenizers`` entry-point group.

Each implementation loads (and probes its vocabulary) under a time limit clipped to the
command's budget; one that panics, aborts or takes too long is not run, with the reason.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..errors import TargetError
from ..internal import files, limits
from ..internal.lazy import LazyTable
from .base import Tokenizer, TokenizerCrash, TokenizerSource, native

__all__ = ["AVAILABLE_TOKENIZERS", "Loaded", "Tokenizer", "TokenizerCrash", "TokenizerSource", "load"]

# Each row is a `Tokenizer` subclass: ``from_source(source)`` opens it, ``packages`` are
# recorded in case files.
AVAILABLE_TOKENIZERS = LazyTable("tokenizer implementation", {
    "hf": "chainfuzz.tokenization.hf:HFTokenizer",
    "llama.cpp": "chainfuzz.tokenization.llama_cpp:LlamaCppTokenizer",
    "sentencepiece": "chainfuzz.tokenization.spm:SentencePieceTokenizer",
    "mistral-common": "chainfuzz.tokenization.mistral:MistralCommonTokenizer",
}, group="chainfuzz.tokenizers")


@dataclass
class Loaded:
    """The implementations that read a source, and why the others did not."""

    impls: list[Tokenizer] = field(default_factory=list)
    unavailable: dict[str, str] = field(default_factory=dict)


# The longest one implementation may take to load and probe its vocabulary. Measured: the
# slowest real vocabulary, Gemma 4's (262k tokens) in transformers' GGUF conversion, takes
# 44 s on a loaded machine (llama.cpp: 1.2 s); a 2-million-token GGUF takes 175 s there.
LOAD_SECONDS = 120.0

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
    from .formats import readers

    if not Path(source.path).is_dir():  # a source from elsewhere (a case file): still a regular file
        files.check_regular(source.path)
    loaded = Loaded()
    for reader in readers(source.format):
        if reader.needs and not (Path(source.path) / reader.needs).exists():
            continue
        limits.check_budget()
        try:
            loaded.impls.append(_load_one(reader.impl, source))
        except (_TookTooLong, TargetError) as exc:  # TargetError: a file beside it is refused
            loaded.unavailable[reader.impl] = str(exc)
        except ImportError as exc:
            hint = f" (pip install 'chainfuzz[{reader.extra}]')" if reader.extra else ""
            loaded.unavailable[reader.impl] = f"not installed: {exc.name or exc}{hint}"
        except TokenizerCrash as exc:
            stage = "probing its vocabulary" if isinstance(exc, _ProbeCrash) else "loading the file"
            loaded.unavailable[reader.impl] = f"crashed {stage}: {_first_line(exc)}"
        except Exception as exc:  # noqa: BLE001 - each library fails its own way on a bad file
            loaded.unavailable[reader.impl] = f"cannot read it: {type(exc).__name__}: {_first_line(exc)}"
    if not loaded.impls:
        reasons = "; ".join(f"{k}: {v}" for k, v in loaded.unavailable.items())
        return TargetError(f"{source.path}: no tokenizer implementation can load it ({reasons})")
    return loaded


class _TookTooLong(Exception):
    """An implementation did not load within `LOAD_SECONDS`."""


class _ProbeCrash(TokenizerCrash):
    """An implementation loaded, then died on the first text it was given (the probe)."""


def _load_one(impl: str, source: TokenizerSource) -> Tokenizer:
    """Open implementation ``impl`` on ``source`` and probe its vocabulary (what the search
    will ask of it first), within `LOAD_SECONDS` and the budget; a panic is a `TokenizerCrash`."""
    from ..template.render import TimeLimitExceeded, time_limit

    seconds = limits.call_timeout(LOAD_SECONDS)
    tok = None
    try:
        with time_limit(seconds), native("loading"):
            tok = AVAILABLE_TOKENIZERS.load(impl).from_source(source)
            try:
                tok.partial_ids  # noqa: B018 - probed here, so a vocabulary it dies on is not run
            except TokenizerCrash as exc:
                raise _ProbeCrash(str(exc)) from None
        return tok
    except TimeLimitExceeded:
        if tok is not None:
            tok.close()
        if limits.out_of_budget():
            raise limits.BudgetExhausted() from None
        raise _TookTooLong(f"took longer than {LOAD_SECONDS:g}s to load") from None
    except BaseException:
        if tok is not None:
            tok.close()
        raise


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:200] if text else "no message"
