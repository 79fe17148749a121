"""Hostile target files: devices, FIFOs, oversized files, GGUF headers that claim more than
they hold, and tokenizer configs nested too deep or of the wrong types. Each is refused with
one error line naming the file and what is wrong with it, in bounded time and memory.
"""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path

import pytest

ARGS = ("--max-examples", "5", "--budget", "20")

CHATML = "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}"


def _check(hostile, cls: str, name: str, path: Path, tmp_path: Path, **kw):
    return hostile(cls, name, "check", path, "--crashes", tmp_path / "crashes", *ARGS,
                   max_seconds=60, **kw)


def _folder(tmp_path: Path, config: dict | None = None) -> Path:
    folder = tmp_path / "model"
    folder.mkdir(exist_ok=True)
    if config is not None:
        (folder / "tokenizer_config.json").write_text(json.dumps(config), encoding="utf-8")
    return folder


# --- 3 memory: files that read forever or are far larger than any real one ------------------------


def _dev_zero(tmp_path):
    return Path("/dev/zero")


def _jinja_symlink_to_dev_zero(tmp_path):
    folder = _folder(tmp_path)
    (folder / "chat_template.jinja").symlink_to("/dev/zero")
    return folder


def _tokenizer_json_symlink_to_dev_zero(tmp_path):
    (tmp_path / "tokenizer.json").symlink_to("/dev/zero")
    return tmp_path / "tokenizer.json"


def _config_symlink_to_dev_urandom(tmp_path):
    folder = _folder(tmp_path)
    (folder / "tokenizer_config.json").symlink_to("/dev/urandom")
    return folder


def _huge_template(tmp_path):
    p = tmp_path / "huge.jinja"
    p.write_text(CHATML + " " * (5 << 20), encoding="utf-8")  # 5 MiB, over the 4 MiB cap
    return p


def _gguf_header(n_kv: int, body: bytes) -> bytes:
    return b"GGUF" + struct.pack("<IQQ", 3, 0, n_kv) + body


def _gguf_kv_count(tmp_path):
    p = tmp_path / "kv-count.gguf"
    p.write_bytes(_gguf_header(2**60, b"\0" * 64))
    return p


def _gguf_string_length(tmp_path):
    key = b"tokenizer.chat_template"
    p = tmp_path / "string-length.gguf"
    p.write_bytes(_gguf_header(1, struct.pack("<Q", len(key)) + key + struct.pack("<IQ", 8, 2**40) + b"x" * 64))
    return p


def _gguf_array_length(tmp_path):
    key = b"tokenizer.ggml.token_type"
    p = tmp_path / "array-length.gguf"
    p.write_bytes(_gguf_header(1, struct.pack("<Q", len(key)) + key + struct.pack("<IIQ", 9, 5, 2**60) + b"\0" * 64))
    return p


MEMORY = {  # name: (builder, what the error line says)
    "/dev/zero as a template": (_dev_zero, "a character device"),
    "chat_template.jinja -> /dev/zero": (_jinja_symlink_to_dev_zero, "chat_template.jinja: a character device"),
    "tokenizer.json -> /dev/zero": (_tokenizer_json_symlink_to_dev_zero, "tokenizer.json: a character device"),
    "tokenizer_config.json -> /dev/urandom": (_config_symlink_to_dev_urandom,
                                              "tokenizer_config.json: a character device"),
    "a 5 MiB template": (_huge_template, "huge.jinja: 5242"),
    "GGUF claiming 2**60 key-value pairs": (_gguf_kv_count, "kv-count.gguf"),
    "GGUF string of 2**40 bytes": (_gguf_string_length, "string-length.gguf"),
    "GGUF array of 2**60 elements": (_gguf_array_length, "array-length.gguf"),
}


@pytest.mark.parametrize("name", MEMORY)
def test_unbounded_reads_are_refused(hostile, tmp_path, name):
    build, says = MEMORY[name]
    r = _check(hostile, "3 memory", name, build(tmp_path), tmp_path, expect_rc=2)
    assert says in r.err_lines[0], r.err
    assert r.peak_mib < 1500, f"{r.peak_mib:.0f} MiB: the file was read"


def test_gguf_claims_say_what_is_wrong(tmp_path):
    """The GGUF refusals name the claim, not a parser's error."""
    from chainfuzz.errors import TargetError
    from chainfuzz.targets import load_targets

    for build, says in ((_gguf_kv_count, "key-value pairs"), (_gguf_string_length, "past the end"),
                        (_gguf_array_length, "claims 1152921504606846976 elements")):
        with pytest.raises(TargetError, match=says):
            load_targets(build(tmp_path))


def test_a_real_template_and_tokenizer_json_still_load(tmp_path, sources):
    """The clean twins: a regular template and a regular tokenizer.json under the caps."""
    from chainfuzz.targets import load_targets

    p = tmp_path / "t.jinja"
    p.write_text(sources.clean, encoding="utf-8")
    assert load_targets(p)[0].source == sources.clean
    link = tmp_path / "linked.jinja"
    link.symlink_to(p)  # a symlink to a regular file is fine
    assert load_targets(link)[0].source == sources.clean


# --- 4 hangs: FIFOs, which block an open until a writer comes --------------------------------------


def _fifo(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    os.mkfifo(path)
    return path


FIFOS = {  # name: (builder, the file the error line names)
    "x.jinja": (lambda tmp: _fifo(tmp / "x.jinja"), "x.jinja: a FIFO"),
    "x.gguf": (lambda tmp: _fifo(tmp / "x.gguf"), "x.gguf: a FIFO"),
    "x.model": (lambda tmp: _fifo(tmp / "x.model"), "x.model: a FIFO"),
    "tokenizer.json": (lambda tmp: _fifo(tmp / "tokenizer.json"), "tokenizer.json: a FIFO"),
    "tekken.json": (lambda tmp: _fifo(tmp / "tekken.json"), "tekken.json: a FIFO"),
    "tokenizer_config.json in a folder": (lambda tmp: _fifo(tmp / "m" / "tokenizer_config.json").parent,
                                          "tokenizer_config.json: a FIFO"),
    "chat_template.jinja in a folder": (lambda tmp: _fifo(tmp / "m" / "chat_template.jinja").parent,
                                        "chat_template.jinja: a FIFO"),
    "a.jinja in a folder of templates": (lambda tmp: _fifo(tmp / "many" / "a.jinja").parent, "a.jinja: a FIFO"),
}


@pytest.mark.parametrize("name", FIFOS)
def test_fifos_are_refused_without_blocking(hostile, tmp_path, name):
    build, says = FIFOS[name]
    r = _check(hostile, "4 hangs", f"FIFO {name}", build(tmp_path), tmp_path, expect_rc=2)
    assert says in r.err_lines[0], r.err


def test_a_fifo_that_transformers_would_open_is_refused(hostile, tmp_path):
    """added_tokens.json beside a tokenizer: transformers opens it; chainfuzz refuses it first."""
    from planted_tokenizers import byte_level_bpe, write_folder

    folder = write_folder(tmp_path / "m", byte_level_bpe())
    _fifo(folder / "added_tokens.json")
    r = _check(hostile, "4 hangs", "FIFO added_tokens.json beside a tokenizer", folder, tmp_path, expect_rc=2)
    assert "added_tokens.json: a FIFO" in r.err_lines[0], r.err


# --- 6 bad input: tokenizer_config.json nested too deep or of the wrong types ----------------------


def _nested(depth: int) -> str:
    return '{"chat_template": "x", "deep": ' + "[" * depth + "]" * depth + "}"


BAD_CONFIGS = {  # name: (tokenizer_config.json, what the error line says)
    "nested 3000 deep": (_nested(3000), "nested too deeply"),
    "chat_template name a list": ({"chat_template": [{"name": ["a"], "template": CHATML}]},
                                  "chat_template[0].name is an array"),
    "chat_template name an object": ({"chat_template": [{"name": {"a": 1}, "template": CHATML}]},
                                     "chat_template[0].name is an object"),
    "two chat_template entries without a name": (
        {"chat_template": [{"template": CHATML}, {"template": CHATML + "!"}]}, "chat_template[0].name is missing"),
    "chat_template named default twice": (
        {"chat_template": [{"name": "default", "template": CHATML}, {"name": "default", "template": "x"}]},
        "names the template 'default' twice"),
    "bos_token a number": ({"chat_template": CHATML, "bos_token": 5}, "bos_token must be a string"),
    "eos_token a list": ({"chat_template": CHATML, "eos_token": ["</s>"]}, "eos_token must be a string"),
    "pad_token an object without content": ({"chat_template": CHATML, "pad_token": {"id": 3}},
                                            "pad_token must be a string or an AddedToken object, not an object"),
    "added_tokens_decoder entry a string": ({"chat_template": CHATML, "added_tokens_decoder": {"0": "<s>"}},
                                            "added_tokens_decoder['0'] must be an object"),
    "added_tokens_decoder content a number": (
        {"chat_template": CHATML, "added_tokens_decoder": {"0": {"content": 7, "special": True}}},
        "added_tokens_decoder['0'] must be a string or an AddedToken object"),
    "additional_special_tokens item a number": ({"chat_template": CHATML, "additional_special_tokens": ["<a>", 3]},
                                                "additional_special_tokens[1] must be"),
}


@pytest.mark.parametrize("name", BAD_CONFIGS)
def test_bad_tokenizer_configs_are_one_line(hostile, tmp_path, name):
    config, says = BAD_CONFIGS[name]
    folder = _folder(tmp_path)
    text = config if isinstance(config, str) else json.dumps(config)
    (folder / "tokenizer_config.json").write_text(text, encoding="utf-8")
    r = _check(hostile, "6 bad input", f"tokenizer_config.json: {name}", folder, tmp_path, expect_rc=2)
    assert "tokenizer_config.json" in r.err_lines[0] and says in r.err_lines[0], r.err


def test_tokenizer_json_added_token_of_the_wrong_type(hostile, tmp_path):
    folder = _folder(tmp_path, {"chat_template": CHATML})
    (folder / "tokenizer.json").write_text(json.dumps({"added_tokens": ["<s>"]}), encoding="utf-8")
    r = _check(hostile, "6 bad input", "tokenizer.json: added_tokens item a string", folder, tmp_path,
               expect_rc=2)
    assert "tokenizer.json: added_tokens[0] must be an object" in r.err_lines[0], r.err


@pytest.mark.parametrize("name,path", [
    ("a name of 100,000 characters", "a" * 100_000),
    ("a folder name past NAME_MAX", "/tmp/" + "a" * 300 + "/x.jinja"),
])
def test_paths_the_system_refuses_are_one_line(hostile, tmp_path, name, path):
    """``stat`` raising ENAMETOOLONG was an internal error (exit 3)."""
    r = hostile("6 bad input", f"path: {name}", "check", path, "--crashes", tmp_path / "crashes",
                expect_rc=2)
    assert "File name too long" in r.err_lines[0] or "no such file" in r.err_lines[0], r.err


def test_named_templates_and_token_objects_still_load(tmp_path):
    """The clean twin: distinct names, tokens as strings and AddedToken objects, null tokens."""
    from chainfuzz.targets import load_targets

    folder = _folder(tmp_path, {
        "chat_template": [{"name": "default", "template": CHATML}, {"name": "tool_use", "template": CHATML + "T"}],
        "bos_token": {"content": "<s>", "special": True}, "eos_token": "</s>", "pad_token": None,
        "added_tokens_decoder": {"5": {"content": "<|im_end|>", "special": True}},
        "additional_special_tokens": ["<|im_start|>", {"content": "<x>"}],
    })
    targets = load_targets(folder)
    assert {t.template_name for t in targets} == {None, "tool_use"}
    assert targets[0].special_tokens == {"bos_token": "<s>", "eos_token": "</s>"}
    assert {"<|im_end|>", "<|im_start|>", "<x>"} <= set(targets[0].control_tokens)
