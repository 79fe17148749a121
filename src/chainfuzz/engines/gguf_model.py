"""A model folder (Qwen2, fp32 safetensors) as an f32 GGUF that llama.cpp runs.

Written with the ``gguf`` package alone (no llama.cpp converter script): the weights of
``model.safetensors`` under llama.cpp's tensor names, the hyperparameters of ``config.json``,
and the tokenizer exactly as llama.cpp's own vocab GGUF (named in ``chainfuzz_tiny.json``)
defines it, with the model folder's chat template. Every tensor stays F32: with an F32 KV
cache llama.cpp then matches transformers' fp32 logits to ~1e-5.

The same folder gives the same bytes (no timestamps, fixed key and tensor order).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from ..errors import UsageError
from ..internal.gguf_kv import read_kv

FILENAME = "model-f32.gguf"

# HF Qwen2 tensor name (after ``model.layers.N.``) -> llama.cpp's (after ``blk.N.``).
_LAYER_TENSORS = {
    "input_layernorm.weight": "attn_norm.weight",
    "self_attn.q_proj.weight": "attn_q.weight",
    "self_attn.q_proj.bias": "attn_q.bias",
    "self_attn.k_proj.weight": "attn_k.weight",
    "self_attn.k_proj.bias": "attn_k.bias",
    "self_attn.v_proj.weight": "attn_v.weight",
    "self_attn.v_proj.bias": "attn_v.bias",
    "self_attn.o_proj.weight": "attn_output.weight",
    "post_attention_layernorm.weight": "ffn_norm.weight",
    "mlp.gate_proj.weight": "ffn_gate.weight",
    "mlp.up_proj.weight": "ffn_up.weight",
    "mlp.down_proj.weight": "ffn_down.weight",
}
# Files the GGUF is built from besides the weights: a newer one means a stale GGUF.
_INPUTS = ("model.safetensors", "config.json", "tokenizer_config.json", "chat_template.jinja",
           "chainfuzz_tiny.json")


def write(folder: Path) -> Path:
    """``folder/model-f32.gguf``, written unless it exists and is newer than its inputs."""
    folder = Path(folder)
    out = folder / FILENAME
    weights = folder / "model.safetensors"
    if not weights.exists():
        raise UsageError(f"{folder} has no model.safetensors to convert to GGUF")
    newest = max((folder / name).stat().st_mtime_ns for name in _INPUTS if (folder / name).exists())
    if out.exists() and out.stat().st_mtime_ns > newest:
        return out
    tmp = out.with_name(f".{FILENAME}.{os.getpid()}.tmp")
    try:
        _write(folder, tmp)
        os.replace(tmp, out)  # never a half-written GGUF under the real name
    finally:
        tmp.unlink(missing_ok=True)
    return out


def _write(folder: Path, path: Path) -> None:
    import gguf
    import numpy as np
    from safetensors.numpy import load_file

    from ..targets import load_target
    from .tiny import vocab_path

    config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    if config.get("model_type") != "qwen2":
        raise UsageError(f"GGUF conversion knows Qwen2 models only, not {config.get('model_type')!r}")
    spec_path = folder / "chainfuzz_tiny.json"
    if not spec_path.exists():
        raise UsageError(f"{folder} has no chainfuzz_tiny.json naming its llama.cpp vocabulary")
    vocab = read_kv(vocab_path(json.loads(spec_path.read_text(encoding="utf-8"))["vocab"]))
    n_vocab = len(vocab["tokenizer.ggml.tokens"][1])

    tensors = load_file(str(folder / "model.safetensors"))
    embed = tensors["model.embed_tokens.weight"]
    if embed.shape[0] < n_vocab:
        raise UsageError(f"the embedding has {embed.shape[0]} rows but the vocabulary "
                         f"{n_vocab} tokens: the model cannot be run on that vocabulary")
    # transformers' GGUF-to-HF tokenizer conversion can invent ids past the GGUF's vocabulary
    # (padding the embedding up); llama.cpp checks token_embd against n_vocab, and no GGUF
    # token can reach those rows, so the GGUF keeps the first n_vocab rows only.
    embed = embed[:n_vocab]

    rope = config.get("rope_theta")
    if rope is None:  # transformers 5 nests it
        rope = (config.get("rope_parameters") or {}).get("rope_theta", 10000.0)
    writer = gguf.GGUFWriter(path, "qwen2")
    writer.add_context_length(int(config["max_position_embeddings"]))
    writer.add_embedding_length(int(config["hidden_size"]))
    writer.add_block_count(int(config["num_hidden_layers"]))
    writer.add_feed_forward_length(int(config["intermediate_size"]))
    writer.add_head_count(int(config["num_attention_heads"]))
    writer.add_head_count_kv(int(config.get("num_key_value_heads") or config["num_attention_heads"]))
    writer.add_rope_freq_base(float(rope))
    writer.add_layer_norm_rms_eps(float(config["rms_norm_eps"]))
    writer.add_file_type(gguf.LlamaFileType.ALL_F32)

    for name, (kind, value, sub) in vocab.items():
        if name.startswith("tokenizer.") and name != "tokenizer.chat_template":
            writer.add_key_value(name, value, gguf.GGUFValueType(kind),
                                 sub_type=None if sub is None else gguf.GGUFValueType(sub))
    template = load_target(folder).source  # the folder's own: it may override the vocab's
    if template is not None:
        writer.add_chat_template(template)

    f32 = lambda a: np.ascontiguousarray(a, dtype=np.float32)  # noqa: E731
    writer.add_tensor("token_embd.weight", f32(embed))
    for i in range(int(config["num_hidden_layers"])):
        for hf, ll in _LAYER_TENSORS.items():
            writer.add_tensor(f"blk.{i}.{ll}", f32(tensors[f"model.layers.{i}.{hf}"]))
    writer.add_tensor("output_norm.weight", f32(tensors["model.norm.weight"]))
    # Tied embeddings: no output.weight, and llama.cpp's qwen2 loader falls back to token_embd
    # (checked: the logits match transformers' within 1e-5 without it).
    if not config.get("tie_word_embeddings", False):
        writer.add_tensor("output.weight", f32(tensors["lm_head.weight"][:n_vocab]))

    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
