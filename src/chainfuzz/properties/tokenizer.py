"""Tokenizer properties: what every implementation of a vocabulary must do with text and ids.

Each property runs on every implementation the target has (llama.cpp, transformers,
sentencepiece, mistral-common); a finding's key starts with the implementations it fails in
("llama.cpp+hf:..."), so one implementation's defect never hides another's.
"""

from __future__ import annotations

import unicodedata

from hypothesis import strategies as st
from hypothesis.errors import UnsatisfiedAssumption

import chainfuzz
from chainfuzz import Failure, TokenizerCrash, assume, strategies
from chainfuzz.strategies import split

REPLACEMENT = "\ufffd"  # what a decoder writes for bytes that are not (yet) a whole character


def _texts(ctx):
    return st.fixed_dictionaries({"text": strategies.vocab_text(ctx.vocab)})


def call(tok, what: str, fn, *args, **kw):
    """Run one implementation call; a native crash, or an exception on valid input, is a
    finding of its own."""
    try:
        return fn(*args, **kw)
    except TokenizerCrash as exc:
        raise Failure(f"{tok.impl} crashed on {what}: {exc}", key=f"{tok.impl}:crash:{what}") from None
    except (Failure, UnsatisfiedAssumption):
        raise
    except Exception as exc:  # noqa: BLE001 - the library refuses valid input
        raise Failure(f"{tok.impl} raised on {what}: {type(exc).__name__}: {exc}",
                      key=f"{tok.impl}:raises on {what}:{type(exc).__name__}") from None


def _each(tokenizers, check_one) -> None:
    """`chainfuzz.each` over the implementations, named by ``impl`` (keys are "IMPL:KIND")."""
    chainfuzz.each(tokenizers, check_one, name=lambda tok: tok.impl)


# --- tokenizer.roundtrip --------------------------------------------------------------------

def _difference(text: str, back: str, tok) -> str:
    """A stable name for how ``back`` differs from ``text``."""
    if text.startswith(" ") and back == text[1:]:
        return "leading space dropped"
    if back == " " + text or (back.startswith(" ") and back[1:] == text):
        return "leading space added"
    if back.count(REPLACEMENT) > text.count(REPLACEMENT):
        return "characters became U+FFFD"
    unk = next((t for t, i in tok.special.items() if i == tok.unk_id), None)
    if unk and back.count(unk) > text.count(unk):
        return "characters became the unknown token"
    if "".join(back.split()) == "".join(text.split()):
        return "whitespace changed"
    if back.lower() == text.lower():
        return "case changed"
    return "text changed"


_UNICODE_FORMS = ("NFKC", "NFKD", "NFC", "NFD")


def _normalised(text: str, normalizer: str) -> str:
    """``text`` as the normaliser a tokenizer names would leave it (lowercasing, a unicode
    form, accent stripping), so that a round trip that gives exactly this is by design."""
    form = next((f for f in _UNICODE_FORMS if f in normalizer), "NFKC" if "Precompiled" in normalizer else None)
    out = unicodedata.normalize(form, text) if form else text
    if "strip_accents" in normalizer or "StripAccents" in normalizer:
        out = "".join(c for c in unicodedata.normalize("NFD", out) if not unicodedata.combining(c))
    return out.lower() if "owercase" in normalizer else out


@chainfuzz.property("tokenizer.roundtrip", inputs=_texts, applies_to="tokenizer")
def roundtrip(ctx, case):
    """``decode(encode(text)) == text`` in every implementation; a tokenizer that normalises by
    design (lowercasing, NFKC) is a warning naming the normaliser."""
    _each(ctx.tokenizers, lambda tok: _roundtrip_one(tok, case["text"]))


def _roundtrip_one(tok, text: str) -> None:
    back = call(tok, "decode", tok.decode, call(tok, "encode", tok.encode, text))
    if back == text:
        return
    kind = _difference(text, back, tok)
    # BERT's (WPM) and SentencePiece's (Precompiled) normalisers also split and rejoin
    # whitespace by design; lowercasing and the unicode forms keep it, so a space lost
    # under them is the tokenizer's defect, not the normaliser's design.
    expected = _normalised(text, tok.normalizer) if tok.normalizer else None
    loose = bool(tok.normalizer) and any(n in tok.normalizer for n in ("Bert", "WPM", "Precompiled"))
    if expected is not None and (back == expected or (loose and back.split() == expected.split())):
        raise Failure(f"{tok.impl}: the {tok.normalizer} normaliser changes text by design ({kind})",
                      key=f"{tok.impl}:normalised:{tok.normalizer}", observed=back, expected=text,
                      severity="warning")
    raise Failure(f"{tok.impl}: decode(encode(text)) != text: {kind}",
                  key=f"{tok.impl}:{kind}", observed=back, expected=text)


# --- tokenizer.stream_decode ----------------------------------------------------------------


def _streams(ctx):
    source = st.one_of(
        st.fixed_dictionaries({"text": strategies.vocab_text(ctx.vocab)}),
        st.fixed_dictionaries({"ids": strategies.token_ids(ctx.vocab)}),
    )
    return st.tuples(source, strategies.chunks()).map(lambda sc: {**sc[0], "chunks": sc[1]})


@chainfuzz.property("tokenizer.stream_decode", inputs=_streams, applies_to="tokenizer")
def stream_decode(ctx, case):
    """Decoding ids incrementally, as servers stream them (DecodeStream, and the prefix/read-
    offset window of vLLM and TGI; one id or several per step), concatenates to the full decode,
    and no U+FFFD appears mid-stream that the full decode does not contain."""
    _each(ctx.tokenizers, lambda tok: _stream_one(tok, case))


def _stream_one(tok, case: dict) -> None:
    ids = case.get("ids")
    if ids is None:
        ids = call(tok, "encode", tok.encode, case["text"])
    assume(ids and all(0 <= i < tok.vocab_size for i in ids), "ids outside this vocabulary")
    full = call(tok, "decode", tok.decode, ids)
    for mode, sizes in (("one id per step", []), ("chunked", case.get("chunks") or [])):
        if mode == "chunked" and not sizes:
            continue
        for name, stream in tok.stream_decoders().items():
            deltas = call(tok, "decode", stream, split(ids, sizes))
            _compare(tok.impl, name, mode, "".join(deltas), full)


def _compare(impl: str, algorithm: str, mode: str, streamed: str, full: str) -> None:
    where = f"{impl} {algorithm} ({mode})"
    if streamed.count(REPLACEMENT) > full.count(REPLACEMENT):
        raise Failure(f"{where}: the stream emits U+FFFD that the full decode does not contain",
                      key=f"{impl}:{algorithm}:{mode}:replacement", observed=streamed, expected=full)
    # The algorithms hold text back while it ends in an incomplete character, and a stream that
    # ends there never flushes it: servers behave so, and it is not what this property is after.
    if streamed == full or (full.startswith(streamed) and full.endswith(REPLACEMENT)):
        return
    raise Failure(f"{where}: the streamed deltas do not add up to the full decode",
                  key=f"{impl}:{algorithm}:{mode}:mismatch", observed=streamed, expected=full)


# --- tokenizer.special_tokens_inert ---------------------------------------------------------


def _spelled(ctx):
    specials = ctx.vocab.specials or ("",)  # the empty token: every input is skipped
    around = strategies.vocab_text(ctx.vocab, max_parts=2)
    return st.fixed_dictionaries({"before": around, "token": st.sampled_from(specials), "after": around})


@chainfuzz.property("tokenizer.special_tokens_inert", inputs=_spelled, applies_to="tokenizer")
def special_tokens_inert(ctx, case):
    """Text spelling a special or control token, encoded the way untrusted message content is
    meant to be (HF ``split_special_tokens``, llama.cpp ``parse_special=False``), never yields a
    control id; and a special token's own string encodes to exactly its id when special-token
    parsing is on."""
    assume(case["token"] != "", "the vocabulary has no special tokens")
    _each(ctx.tokenizers, lambda tok: _inert_one(tok, case))


def _inert_one(tok, case: dict) -> None:
    text = case["before"] + case["token"] + case["after"]
    control = tok.control_ids
    forged = [i for i in call(tok, "encode", tok.encode, text, parse_special=False) if i in control]
    if forged:
        name = control[forged[0]]
        marked = "marked special" if name in tok.special else "an added token not marked special"
        raise Failure(f"{tok.impl}: untrusted text spelling {name!r} ({marked}) encodes to its id "
                      f"{forged[0]} even with special-token parsing off",
                      key=f"{tok.impl}:parsed with parsing off:{marked}",
                      observed=forged, expected=[])
    own = tok.special.get(case["token"])
    if own is None or not tok.parses_special:
        return  # it never parses special-token text: nothing is intended to match
    ids = call(tok, "encode", tok.encode, case["token"], parse_special=True)
    if ids != [own]:
        raise Failure(f"{tok.impl}: the special token {case['token']!r} encodes to {ids}, not its "
                      f"id {own}, with special-token parsing on",
                      key=f"{tok.impl}:special token text does not encode to its id",
                      observed=ids, expected=[own])


# --- tokenizer.impls_agree ------------------------------------------------------------------


@chainfuzz.property("tokenizer.impls_agree", inputs=_texts, applies_to="tokenizer")
def impls_agree(ctx, case):
    """The implementations of one vocabulary (llama.cpp vs transformers' GGUF conversion, HF vs
    sentencepiece, HF vs mistral-common) give the same ids and the same decoded text."""
    impls = ctx.tokenizers
    assume(len(impls) > 1, "only one implementation reads this tokenizer")
    text = case["text"]
    assume(not any(s in text for s in ctx.vocab.specials), "special-token text (special_tokens_inert's concern)")
    ref = impls[0]
    ref_ids = call(ref, "encode", ref.encode, text)
    for other in impls[1:]:
        pair = f"{ref.impl}~{other.impl}"
        ids = call(other, "encode", other.encode, text)
        if ids != ref_ids:
            raise Failure(f"{pair}: different ids for the same text", key=f"{pair}:ids",
                          observed={other.impl: ids}, expected={ref.impl: ref_ids})
        if any(i >= other.vocab_size for i in ids):
            continue
        a, b = call(ref, "decode", ref.decode, ids), call(other, "decode", other.decode, ids)
        if a != b:
            raise Failure(f"{pair}: the same ids decode to different text", key=f"{pair}:decode",
                          observed={other.impl: b}, expected={ref.impl: a})
