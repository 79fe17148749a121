"""``chainfuzz model tiny``: a tiny causal LM with a real vocabulary and a real chat template.

No model hub is reachable, so engine properties run on models chainfuzz builds itself: a small
Qwen2-architecture network (random weights from a fixed seed) over a real vocabulary, the
tokenizer transformers converts from one of llama.cpp's vocab GGUFs, with that GGUF's chat
template (or a named one from the template corpus). The same arguments give bit-identical
files, so a finding on a tiny model reproduces anywhere.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from ..errors import UsageError

# Sizes measured to work on every engine chainfuzz drives (vLLM's CPU attention needs a head
# size of at least 32), at ~20M parameters for a 150k vocabulary.
HIDDEN, HEADS, KV_HEADS, LAYERS, INTERMEDIATE = 128, 4, 2, 4, 256
# The default 0.02 makes greedy decoding repeat one token; 0.1 gives varied output.
INIT_SCALE = 0.1


@dataclass(frozen=True)
class TinySpec:
    """What a tiny model is built from; stored beside it as ``chainfuzz_tiny.json``."""

    vocab: str  # llama.cpp vocab name: "qwen2" is ggml-vocab-qwen2.gguf
    seed: int = 0
    template: str | None = None  # a template of the corpus by stem; None: the GGUF's own


def vocab_path(name: str) -> Path:
    """The cached vocab GGUF called ``name`` (fetched on first use)."""
    from ..corpus import fetch

    folder = fetch("llama.cpp") / "vocab"
    path = folder / f"ggml-vocab-{name}.gguf"
    if not path.exists():
        known = sorted(p.name[len("ggml-vocab-"):-len(".gguf")] for p in folder.glob("ggml-vocab-*.gguf"))
        raise UsageError(f"no vocabulary {name!r} (known: {', '.join(known)})")
    return path


def default_folder(spec: TinySpec) -> Path:
    """Where ``chainfuzz model tiny`` writes ``spec`` by default: under the cache, so that
    recorded engine cases find it as ``cache:models/...`` on any machine that built it."""
    from ..corpus import cache_dir

    name = f"tiny-{spec.vocab}-s{spec.seed}" + (f"-{spec.template}" if spec.template else "")
    return cache_dir() / "models" / name


def build(spec: TinySpec, out: Path) -> Path:
    """Write the tiny model of ``spec`` to ``out`` (a Hugging Face model folder); a folder that
    already holds this spec's model is kept as it is (the build is deterministic)."""
    marker = out / "chainfuzz_tiny.json"
    if marker.exists() and (out / "model.safetensors").exists() and \
            json.loads(marker.read_text(encoding="utf-8")) == asdict(spec):
        return out
    try:
        import torch
    except ImportError:
        raise UsageError("building a model needs torch: pip install 'chainfuzz[hf-gguf]'") from None
    from transformers import Qwen2Config, Qwen2ForCausalLM

    from ..targets import load_targets
    from ..tokenization import hf

    gguf = vocab_path(spec.vocab)
    target = load_targets(gguf)[0]
    tok = hf.from_gguf(gguf).tok
    template = _template(spec, target.source)
    config = Qwen2Config(
        vocab_size=len(tok), hidden_size=HIDDEN, intermediate_size=INTERMEDIATE,
        num_hidden_layers=LAYERS, num_attention_heads=HEADS, num_key_value_heads=KV_HEADS,
        max_position_embeddings=4096, initializer_range=INIT_SCALE, tie_word_embeddings=True,
        bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id,
    )
    torch.manual_seed(spec.seed)
    model = Qwen2ForCausalLM(config).to(torch.float32).eval()
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    tok.chat_template = template
    tok.save_pretrained(out)
    marker.write_text(json.dumps(asdict(spec), indent=2) + "\n", encoding="utf-8")
    return out


def _template(spec: TinySpec, own: str | None) -> str:
    if spec.template is None:
        if own is None:
            raise UsageError(f"vocabulary {spec.vocab!r} has no chat template; name one with --template")
        return own
    from ..corpus import templates_dir

    path = templates_dir() / f"{spec.template}.jinja"
    if not path.exists():
        raise UsageError(f"no template {spec.template!r} in the corpus")
    return path.read_text(encoding="utf-8")
