"""llama.cpp's golden tokenisations of 15 real vocabularies, replayed as property tests.

llama.cpp must reproduce every golden case; wherever transformers' conversion of the same
GGUF does not, ``tokenizer.impls_agree`` must report it, and wherever both agree with the
golden ids it must pass. The vocabularies come from llama-cpp-python's sdist (see corpus.py).
"""

from __future__ import annotations

import pytest

from chainfuzz import corpus
from chainfuzz.tokenization import golden
from chainfuzz.context import Context
from chainfuzz.errors import Failure, Skip
from chainfuzz.registry import get
from chainfuzz.targets import tokenizer_target

pytestmark = pytest.mark.corpus

VOCAB = corpus.fetch("llama.cpp") / "vocab"
GOLDEN = sorted(p.name for p in VOCAB.glob("ggml-vocab-*.gguf") if golden.read(p))


@pytest.fixture(scope="module", params=GOLDEN)
def vocab(request):
    path = VOCAB / request.param
    return Context(tokenizer_target(path, "gguf")), golden.read(path)


def _impl(ctx, name):
    found = [t for t in ctx.tokenizers if t.impl == name]
    if not found:
        pytest.skip(f"{name} does not read this vocabulary here: {ctx.unavailable.get(name)}")
    return found[0]


def test_there_are_golden_vocabularies():
    assert len(GOLDEN) >= 15
    assert {"ggml-vocab-llama-spm.gguf", "ggml-vocab-qwen2.gguf", "ggml-vocab-gemma-4.gguf"} <= set(GOLDEN)


def test_llama_cpp_reproduces_every_golden_tokenisation(vocab):
    pytest.importorskip("llama_cpp")
    ctx, cases = vocab
    wrong = golden.mismatches(_impl(ctx, "llama.cpp"), cases)
    assert [(c.text, c.ids, got) for c, got in wrong] == []


def test_impls_agree_reports_each_golden_case_the_conversion_gets_wrong(vocab):
    pytest.importorskip("llama_cpp")
    ctx, cases = vocab
    hf = _impl(ctx, "hf")
    wrong = {c.text for c, _ in golden.mismatches(hf, cases)}
    prop = get("tokenizer.impls_agree")
    missed, false_alarms = [], []
    for case in cases:
        try:
            prop.check(ctx, {"text": case.text})
        except Failure as f:
            if case.text not in wrong and f.key.endswith(":ids"):
                false_alarms.append((case.text, f.message))
            continue
        except Skip:
            continue  # spells a special token: special_tokens_inert's concern
        if case.text in wrong:
            missed.append(case.text)
    assert missed == [] and false_alarms == []
