"""Which parsers serve which model family, and the tokenizer their text is tokenised with.

One row per family (`FAMILIES`): the corpus templates that belong to it, the ``--parser`` specs
its models are served with (vLLM's recipes and tool-calling docs pair tool and reasoning
parsers with families; transformers serve's own response template where it has one for the
family, else one chainfuzz ships; llama.cpp, which picks its format from the template itself),
and the vocabulary its tokens come from.

No model hub is reachable, so the vocabulary is a corpus GGUF (llama.cpp's test vocabularies)
with the family's own marker tokens added where the test vocabulary lacks them: llama.cpp's
``ggml-vocab-qwen2.gguf`` has ``[PAD151657]`` where Qwen2.5 has ``<tool_call>``. The markers
are added as single, non-special tokens (as Qwen's tokenizer_config has them), so they tokenise
and decode as in the family's real tokenizer; their ids are appended, not the real ones, which
no parser property depends on. A family without a vocabulary of its own in the corpus borrows
one (``stand_in``): its plain text then splits into other tokens than the real model's, which
the split-invariance property does not care about (it tries every grouping anyway).
"""

from __future__ import annotations

import fnmatch
import functools
import hashlib
import json
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ..errors import UsageError


@dataclass(frozen=True)
class Family:
    name: str
    templates: tuple[str, ...]  # corpus template file names (globs, without .jinja)
    parsers: tuple[str, ...]  # --parser specs, as the family is served
    vocab: str  # llama.cpp's ggml-vocab-NAME.gguf
    added: tuple[str, ...] = ()  # marker tokens the test vocabulary lacks
    stand_in: bool = False  # the vocabulary is another family's
    eos: str = ""  # the end-of-sequence text a template writes itself (a server stops on it)


QWEN_TOOLS = ("<tool_call>", "</tool_call>", "<tool_response>", "</tool_response>")
THINK = ("<think>", "</think>")
ARG_TAGS = ("<arg_key>", "</arg_key>", "<arg_value>", "</arg_value>")
DEEPSEEK_END = "<｜end▁of▁sentence｜>"

# Families whose templates write a past reply differently from a generated one (DeepSeek-R1's
# distills and gemma-4 drop past reasoning; the generation prompt opens it) have no row: the
# round trip cannot be built from their templates (`Context.generation` skips every reply).
FAMILIES: tuple[Family, ...] = (
    Family("qwen2.5", ("Qwen-Qwen2.5-*",), ("vllm:hermes", "transformers:serve:qwen2", "llama.cpp"), "qwen2",
           QWEN_TOOLS),
    Family("hermes", ("NousResearch-Hermes-*",), ("vllm:hermes", "transformers:hermes", "llama.cpp"), "llama-bpe",
           QWEN_TOOLS + ("<tools>", "</tools>")),
    Family("qwen3", ("Qwen-Qwen3-*",), ("vllm:hermes+reasoning:qwen3", "transformers:serve:qwen3", "llama.cpp"),
           "qwen2", QWEN_TOOLS + THINK),
    Family("qwen3-coder", ("Qwen3-Coder",), ("vllm:qwen3_coder", "llama.cpp"), "qwen2", QWEN_TOOLS),
    Family("qwen3.5", ("Qwen3.5-*",), ("vllm:qwen3_coder+reasoning:qwen3", "transformers:serve:qwen3_5", "llama.cpp"),
           "qwen35", QWEN_TOOLS + THINK),
    Family("llama3", ("meta-llama-Llama-3.*",), ("vllm:llama3_json", "transformers:llama3_json", "llama.cpp"),
           "llama-bpe", ("<|python_tag|>", "<|eom_id|>")),
    Family("granite4", ("ibm-granite-granite-4.*",), ("vllm:granite4", "llama.cpp"), "qwen2", QWEN_TOOLS,
           stand_in=True),
    Family("glm4.6", ("GLM-4.6",), ("vllm:glm45+reasoning:glm45", "llama.cpp"), "qwen2",
           ("<tool_call>", "</tool_call>", *ARG_TAGS, *THINK), stand_in=True),
    Family("glm4.7", ("GLM-4.7-*",), ("vllm:glm47+reasoning:glm47", "llama.cpp"), "qwen2",
           ("<tool_call>", "</tool_call>", *ARG_TAGS, *THINK), stand_in=True),
    Family("kimi-k2", ("moonshotai-Kimi-K2",), ("vllm:kimi_k2", "llama.cpp"), "qwen2",
           ("<|tool_calls_section_begin|>", "<|tool_calls_section_end|>", "<|tool_call_begin|>",
            "<|tool_call_end|>", "<|tool_call_argument_begin|>"), stand_in=True),
    Family("deepseek-v3.1", ("deepseek-ai-DeepSeek-V3.1",), ("vllm:deepseek_v31", "llama.cpp"), "qwen2",
           ("<｜tool▁calls▁begin｜>", "<｜tool▁calls▁end｜>", "<｜tool▁call▁begin｜>", "<｜tool▁call▁end｜>",
            "<｜tool▁sep｜>", DEEPSEEK_END), stand_in=True, eos=DEEPSEEK_END),
    Family("deepseek-v4", ("deepseek-ai-DeepSeek-V4*",), ("vllm:deepseek_v4+reasoning:deepseek_v4", "llama.cpp"),
           "qwen2", ("<｜DSML｜", DEEPSEEK_END, *THINK), stand_in=True, eos=DEEPSEEK_END),
    Family("minimax-m2", ("MiniMax-M2",), ("vllm:minimax_m2+reasoning:minimax_m2", "llama.cpp"),
           "qwen2", ("<minimax:tool_call>", "</minimax:tool_call>", *THINK, "[e~["), stand_in=True, eos="[e~["),
    Family("seed-oss", ("ByteDance-Seed-OSS",), ("vllm:seed_oss+reasoning:seed_oss", "llama.cpp"), "qwen2",
           ("<seed:tool_call>", "</seed:tool_call>", "<seed:think>", "</seed:think>", "<seed:eos>"),
           stand_in=True),
    Family("step3.5", ("StepFun3.5-*",), ("vllm:step3p5+reasoning:step3p5", "llama.cpp"), "qwen2",
           QWEN_TOOLS + THINK, stand_in=True),
    Family("nemotron3", ("NVIDIA-Nemotron-3-*",), ("vllm:qwen3_coder+reasoning:nemotron_v3", "llama.cpp"), "qwen2",
           QWEN_TOOLS + THINK, stand_in=True),
    Family("ling3", ("inclusionai-ling-3.*",), ("vllm:ling3+reasoning:ling3", "llama.cpp"), "qwen2",
           ("<tool_call>", "</tool_call>", *ARG_TAGS, *THINK), stand_in=True),
    Family("lfm2", ("LFM2.5-8B-*",), ("vllm:lfm2", "llama.cpp"), "qwen2",
           ("<|tool_call_start|>", "<|tool_call_end|>", *THINK), stand_in=True),
)


def family_of(template: str | Path) -> Family | None:
    """The family a template belongs to, by its corpus file name (None for any other)."""
    stem = Path(template).name.removesuffix(".jinja")
    return next((f for f in FAMILIES if any(fnmatch.fnmatchcase(stem, g) for g in f.templates)), None)


def auto_specs(template: str | Path) -> tuple[str, ...]:
    """``--parser auto``: the family's parsers, or `UsageError` for a template no row names."""
    fam = family_of(template)
    if fam is None:
        raise UsageError(f"--parser auto: {Path(template).name} is not a template of a known family "
                         f"({', '.join(f.name for f in FAMILIES)}); name the parser with --parser")
    return fam.parsers


def tokenizer_dir(fam: Family) -> Path:
    """A folder holding the family's HF tokenizer: its vocabulary (converted from the corpus
    GGUF once, ~20 s for transformers' GGUF conversion, and kept) with its markers added
    (a second), both built into chainfuzz's cache once and reused."""
    from tokenizers import AddedToken
    from transformers import AutoTokenizer

    def build():
        tok = AutoTokenizer.from_pretrained(str(_vocab_dir(fam.vocab)))
        tok.add_tokens([AddedToken(m, special=False, normalized=False) for m in fam.added if m not in tok.get_vocab()])
        return tok

    key = hashlib.sha256(json.dumps([fam.vocab, fam.added]).encode()).hexdigest()[:12]
    return _cached(f"{fam.vocab}-{key}", build)


@functools.lru_cache(maxsize=8)
def load_tokenizer(folder: Path):
    """The tokenizer in ``folder``, loaded once per process (1-2 s for a 150k vocabulary: a
    replay of a folder of parser cases loads each family's once)."""
    from ..tokenization.hf import from_pretrained

    return from_pretrained(folder)


def _vocab_dir(vocab: str) -> Path:
    """The corpus vocabulary ``vocab`` converted to an HF tokenizer folder, once."""
    from .. import corpus
    from ..tokenization.hf import from_gguf

    return _cached(f"{vocab}-base", lambda: from_gguf(corpus.fetch() / "vocab" / f"ggml-vocab-{vocab}.gguf").tok)


def _cached(name: str, build) -> Path:
    """``cache/parsers/tokenizers/NAME``: the tokenizer ``build()`` returns, saved whole (a
    temporary folder renamed into place: another process may publish it first)."""
    from .. import corpus

    folder = corpus.cache_dir() / "parsers" / "tokenizers" / name
    if (folder / "tokenizer.json").is_file():
        return folder
    tok = build()
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=folder.parent, prefix=folder.name + "."))
    tok.save_pretrained(str(tmp))
    try:
        tmp.rename(folder)
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)
    return folder
