"""``chainfuzz model tiny``: a real-vocabulary model built offline, bit for bit the same each time."""

from __future__ import annotations

import hashlib
import json
import shutil

import pytest

pytest.importorskip("torch")
pytestmark = pytest.mark.corpus


def _digests(folder):
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from chainfuzz.cli import main

    out = tmp_path_factory.mktemp("tiny") / "qwen2"
    assert main(["model", "tiny", "--vocab", "qwen2", "--out", str(out)]) == 0
    return out


def test_the_same_seed_rebuilds_bit_identical_files(tiny, tmp_path):
    from chainfuzz.engines.tiny import TinySpec, build

    again = build(TinySpec("qwen2"), tmp_path / "again")
    assert _digests(again) == _digests(tiny)
    other = build(TinySpec("qwen2", seed=1), tmp_path / "other")
    assert _digests(other)["model.safetensors"] != _digests(tiny)["model.safetensors"]
    assert json.loads((tiny / "chainfuzz_tiny.json").read_text()) == {"vocab": "qwen2", "seed": 0, "template": None}


def test_a_folder_holding_the_same_spec_is_kept_and_another_spec_rebuilds_it(tiny, tmp_path):
    import shutil

    from chainfuzz.engines.tiny import TinySpec, build

    folder = tmp_path / "m"
    shutil.copytree(tiny, folder)
    weights = folder / "model.safetensors"
    before = weights.stat().st_mtime_ns
    build(TinySpec("qwen2"), folder)
    assert weights.stat().st_mtime_ns == before
    build(TinySpec("qwen2", seed=1), folder)
    assert json.loads((folder / "chainfuzz_tiny.json").read_text())["seed"] == 1
    assert _digests(folder)["model.safetensors"] != _digests(tiny)["model.safetensors"]


def test_it_is_a_real_vocabulary_and_template_and_greedy_output_varies(tiny):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny)
    model = AutoModelForCausalLM.from_pretrained(tiny)
    assert len(tok) == model.config.vocab_size == 151936
    prompt = tok.apply_chat_template([{"role": "user", "content": "Hello"}], add_generation_prompt=True,
                                     return_dict=True, return_tensors="pt")
    assert tok.decode(prompt["input_ids"][0]).endswith("<|im_start|>assistant\n")
    with torch.no_grad():
        out = model.generate(**prompt, max_new_tokens=16, do_sample=False)
    new = out[0][prompt["input_ids"].shape[1]:].tolist()
    assert len(new) == 16 and len(set(new)) > 4  # not one token repeated (the init scale's job)


def test_the_model_folder_is_a_template_and_tokenizer_target(tiny, cli, tmp_path):
    report = tmp_path / "report.json"
    r = cli("check", tiny, "--property", "template.renders", "chain.single_bos",
            "--max-examples", "10", "--seed", "0", "--crashes", tmp_path / "c", "--json", report)
    doc = json.loads(report.read_text(encoding="utf-8"))
    assert doc["stats"]["tokenizers"]["qwen2"]["ran"] == ["hf"]
    # The qwen2 GGUF's own template crashes on `content: null`, and the tiny model carries it.
    assert r.rc == 1 and {f["property"] for f in doc["failures"]} == {"template.renders"}
    assert doc["stats"]["targets"]["qwen2"]["chain.single_bos"]["examples"] > 0


def test_an_unknown_vocabulary_is_one_error_line(cli, tmp_path, one_error_line):
    r = cli("model", "tiny", "--vocab", "nope", "--out", tmp_path / "m")
    assert "no vocabulary 'nope'" in one_error_line(r) and "qwen2" in r.err


def test_only_the_kinds_the_chosen_properties_need_are_opened(tiny, cli, tmp_path, monkeypatch, one_error_line):
    """Template properties on a model folder start no engine: naming an engine that cannot
    start here is bad input for engine properties only."""
    monkeypatch.delenv("CHAINFUZZ_VLLM_PYTHON", raising=False)
    monkeypatch.chdir(tmp_path)  # no .venv-vllm here
    common = ("--engine", "vllm", "--max-examples", "3", "--seed", "0", "--crashes", tmp_path / "c")
    r = cli("check", tiny, "--property", "chain.single_bos", *common)
    assert r.rc == 0 and "engines:" not in r.out, r.out + r.err
    r = cli("check", tiny, "--property", "engine.greedy_deterministic", *common)
    assert "engine 'vllm' cannot run here" in one_error_line(r)


def test_a_template_that_does_not_compile_is_bad_input_for_chain_properties_too(tiny, cli, tmp_path,
                                                                               one_error_line):
    """A chain renders the template, so opening the chain kind compiles it first."""
    folder = tmp_path / "broken"
    folder.mkdir()
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(tiny / name, folder / name)
    (folder / "chat_template.jinja").write_text("{% for m in messages %}{{ m.content }", encoding="utf-8")
    r = cli("check", folder, "--property", "chain.single_bos", "--max-examples", "3", "--crashes", tmp_path / "c")
    assert "does not compile" in one_error_line(r)
