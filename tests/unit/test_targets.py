"""Loading targets: .jinja files, Hugging Face model folders, GGUF files, and unreadable ones."""

from __future__ import annotations

import json

import gguf
import pytest

from chainfuzz.errors import TargetError
from chainfuzz.template.render import Renderer
from chainfuzz.targets import BARE_TEMPLATE_TOKENS, load_target, load_targets

FAST = ("--max-examples", "20", "--seed", "1")

# Shows which tokens reached the template.
TOKENS_PROBE = "[{{ bos_token }}|{{ eos_token }}]{% for m in messages %}{{ m.content }}{% endfor %}"

VOCAB = ["<unk>", "<s>", "</s>", "<|im_start|>", "<|im_end|>", "hello", "<|tool|>"]
# llama.cpp token types: 1 normal, 2 unknown, 3 control, 4 user-defined
VOCAB_TYPES = [2, 3, 3, 3, 3, 1, 4]


def write_gguf(path, chat_template=None, *, tokens=True, extra=None):
    w = gguf.GGUFWriter(str(path), "llama")
    if chat_template is not None:
        w.add_chat_template(chat_template)
    if tokens:
        w.add_token_list(VOCAB)
        w.add_token_types(VOCAB_TYPES)
        w.add_bos_token_id(1)
        w.add_eos_token_id(4)
    if extra:
        extra(w)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def write_json(path, doc):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc), encoding="utf-8")
    return path


# --- .jinja ------------------------------------------------------------------------------------

def test_bare_jinja_file(write_template, sources):
    tpl = write_template("Qwen-chatml.jinja", sources.clean)
    [t] = load_targets(tpl)
    assert t.source == sources.clean
    assert t.name == "Qwen-chatml.jinja"
    assert t.template_name is None
    assert t.special_tokens == BARE_TEMPLATE_TOKENS
    assert load_target(tpl).sha256 == t.sha256
    write_template("Qwen-chatml.jinja", sources.clean + " ")
    assert load_target(tpl).sha256 != t.sha256


def test_folder_of_templates_loads_each(write_template, sources, tmp_path):
    write_template("many/a.jinja", sources.clean)
    write_template("many/b.jinja", sources.null_crash)
    write_template("many/notes.txt", "not a template")
    assert [t.name for t in load_targets(tmp_path / "many")] == ["a.jinja", "b.jinja"]


# --- Hugging Face model folders ---------------------------------------------------------------

def test_hf_folder_tokens_as_strings_and_added_token_dicts(tmp_path):
    folder = tmp_path / "org-model"
    write_json(folder / "tokenizer_config.json", {
        "chat_template": TOKENS_PROBE,
        "bos_token": {"__type": "AddedToken", "content": "<|begin|>", "lstrip": False, "special": True},
        "eos_token": "<|end|>",
        "pad_token": None,
        "added_tokens_decoder": {
            "100": {"content": "<|begin|>", "special": True},
            "101": {"content": "<|end|>", "special": True},
            "102": {"content": "<|start_header|>", "special": True},
            "103": {"content": "not-special", "special": False},
        },
        "additional_special_tokens": ["<|extra|>", {"content": "<|extra2|>"}],
    })
    write_json(folder / "tokenizer.json", {"added_tokens": [
        {"id": 200, "content": "<|tok_json|>", "special": True},
        {"id": 201, "content": "plain", "special": False},
    ]})
    [t] = load_targets(folder)
    assert t.name == "org-model"
    assert t.template_name is None
    assert t.special_tokens == {"bos_token": "<|begin|>", "eos_token": "<|end|>"}
    assert set(t.control_tokens) == {"<|begin|>", "<|end|>", "<|start_header|>", "<|extra|>",
                                     "<|extra2|>", "<|tok_json|>"}
    # the special tokens reach the template as transformers passes them
    out = Renderer(t).render([{"role": "user", "content": "hi"}])
    assert out == "[<|begin|>|<|end|>]hi"
    # naming the config file is the same as naming the folder
    assert load_targets(folder / "tokenizer_config.json") == [t]


def test_hf_folder_named_templates(tmp_path):
    folder = tmp_path / "multi"
    write_json(folder / "tokenizer_config.json", {
        "chat_template": [
            {"name": "default", "template": "D{% for m in messages %}{{ m.content }}{% endfor %}"},
            {"name": "tool_use", "template": "T{% for m in messages %}{{ m.content }}{% endfor %}"},
        ],
        "eos_token": "</s>",
    })
    targets = load_targets(folder)
    assert {(t.name, t.template_name) for t in targets} == {("multi", None), ("multi#tool_use", "tool_use")}
    default = load_target(folder)
    tool_use = load_target(folder, "tool_use")
    assert default.source.startswith("D") and tool_use.source.startswith("T")
    assert Renderer(tool_use).render([{"role": "user", "content": "x"}]) == "Tx"
    with pytest.raises(TargetError, match="no chat template named 'rag'"):
        load_target(folder, "rag")


def test_hf_folder_chat_template_jinja_file(tmp_path, sources):
    folder = tmp_path / "newstyle"
    write_json(folder / "tokenizer_config.json", {"eos_token": "<|im_end|>"})
    (folder / "chat_template.jinja").write_text(sources.clean, encoding="utf-8")
    [t] = load_targets(folder)
    assert t.source == sources.clean
    assert t.special_tokens == {"eos_token": "<|im_end|>"}
    # a folder holding only chat_template.jinja is a model folder too
    (folder / "tokenizer_config.json").unlink()
    assert load_target(folder).source == sources.clean


def test_cli_checks_a_model_folder(cli, tmp_path, sources):
    folder = tmp_path / "mymodel"
    write_json(folder / "tokenizer_config.json", {"chat_template": sources.null_crash,
                                                  "eos_token": {"content": "<|im_end|>"}})
    report = tmp_path / "r.json"
    r = cli("check", folder, *FAST, "--crashes", tmp_path / "c", "--json", report,
            "--property", "template.renders")
    assert r.rc == 1, r.out + r.err
    doc = json.loads(report.read_text(encoding="utf-8"))
    assert doc["target"]["name"] == "mymodel"
    assert [f["property"] for f in doc["failures"]] == ["template.renders"]


# --- GGUF --------------------------------------------------------------------------------------

def test_gguf_file(tmp_path):
    path = write_gguf(tmp_path / "tiny-model.gguf", TOKENS_PROBE)
    [t] = load_targets(path)
    assert t.name == "tiny-model.gguf"
    assert t.source == TOKENS_PROBE
    assert t.special_tokens == {"bos_token": "<s>", "eos_token": "<|im_end|>"}
    # control tokens are the CONTROL-typed ones plus the special tokens; not the user-defined one
    assert set(t.control_tokens) == {"<s>", "</s>", "<|im_start|>", "<|im_end|>"}
    assert Renderer(t).render([{"role": "user", "content": "hi"}]) == "[<s>|<|im_end|>]hi"


def test_gguf_named_templates(tmp_path):
    path = write_gguf(tmp_path / "named.gguf", [
        {"name": "default", "template": "D{{ messages | length }}"},
        {"name": "tool_use", "template": "T{{ messages | length }}"},
    ])
    assert {t.template_name for t in load_targets(path)} == {None, "tool_use"}
    assert load_target(path).source.startswith("D")
    assert load_target(path, "tool_use").source.startswith("T")


def test_cli_checks_a_gguf_file(cli, tmp_path, sources):
    path = write_gguf(tmp_path / "chatml.gguf", sources.clean)
    r = cli("check", path, *FAST, "--crashes", tmp_path / "c",
            "--property", "template.renders", "template.turns_closed")
    assert r.rc == 0, r.out + r.err
    assert "chatml" in r.out and "0 error(s)" in r.out


# --- unreadable targets: TargetError, and exit 2 with one line -----------------------------------

def _unreadable(tmp_path):
    """(name, path) of targets chainfuzz must refuse with one line."""
    out = []
    p = tmp_path / "latin1.jinja"
    p.write_bytes(b"{{ 'caf\xe9' }}")
    out.append(("not UTF-8", p))
    folder = tmp_path / "badjson"
    folder.mkdir()
    (folder / "tokenizer_config.json").write_text('{"chat_template": "x",', encoding="utf-8")
    out.append(("invalid JSON", folder))
    folder = tmp_path / "badtokjson"
    write_json(folder / "tokenizer_config.json", {"chat_template": "x"})
    (folder / "tokenizer.json").write_text("{oops", encoding="utf-8")
    out.append(("invalid JSON", folder))
    folder = tmp_path / "notutf8config"
    folder.mkdir()
    (folder / "tokenizer_config.json").write_bytes(b'{"chat_template": "\xff"}')
    out.append(("not UTF-8", folder))
    folder = tmp_path / "notemplate"
    write_json(folder / "tokenizer_config.json", {"bos_token": "<s>", "eos_token": "</s>"})
    out.append(("no chat template", folder))
    folder = tmp_path / "badtype"
    write_json(folder / "tokenizer_config.json", {"chat_template": 42})
    out.append(("chat_template", folder))
    folder = tmp_path / "badlist"
    write_json(folder / "tokenizer_config.json", {"chat_template": [{"name": "x"}]})
    out.append(("chat_template", folder))
    p = tmp_path / "garbage.gguf"
    p.write_bytes(b"\x00\x01garbage bytes, not a GGUF header\xff" * 10)
    out.append(("GGUF", p))
    p = tmp_path / "empty.gguf"
    p.write_bytes(b"")
    out.append(("GGUF", p))
    full = write_gguf(tmp_path / "full.gguf", "hello")
    p = tmp_path / "truncated.gguf"
    p.write_bytes(full.read_bytes()[:40])
    out.append(("GGUF", p))
    p = write_gguf(tmp_path / "empty-metadata.gguf", None, tokens=False)
    out.append(("neither a chat template nor a vocabulary", p))
    folder = tmp_path / "emptydir"
    folder.mkdir()
    out.append(("holds no template or tokenizer files", folder))
    out.append(("no such file", tmp_path / "missing.jinja"))
    return out


def test_unreadable_targets_raise_target_error(tmp_path):
    for fragment, path in _unreadable(tmp_path):
        with pytest.raises(TargetError) as err:
            load_targets(path)
        message = str(err.value)
        assert fragment in message, (path, message)
        assert "\n" not in message, message


def test_unreadable_targets_are_exit_2_with_one_line(cli, tmp_path, one_error_line):
    # A GGUF whose vocabulary no implementation reads (it names no tokenizer model) and that
    # has no template is bad input too, found when its tokenizer loads.
    unloadable = ("no tokenizer implementation can load it", write_gguf(tmp_path / "vocab-only.gguf", None))
    for fragment, path in [*_unreadable(tmp_path), unloadable]:
        r = cli("check", path, *FAST, "--crashes", tmp_path / "c")
        assert fragment in one_error_line(r), (path, r.err)
        assert r.out == ""


def test_syntax_error_in_a_named_template_is_exit_2(cli, tmp_path, one_error_line):
    folder = tmp_path / "named_broken"
    write_json(folder / "tokenizer_config.json", {"chat_template": [
        {"name": "default", "template": "{{ messages | length }}"},
        {"name": "tool_use", "template": "{% for m in messages %}"},
    ]})
    assert "does not compile" in one_error_line(cli("check", folder, *FAST, "--crashes", tmp_path / "c"))


def test_gguf_chat_template_that_is_not_a_string_is_a_target_error(cli, tmp_path, one_error_line):
    """A GGUF whose tokenizer.chat_template holds a number is unreadable input, not a crash."""
    path = write_gguf(tmp_path / "numeric.gguf", None,
                      extra=lambda w: w.add_uint32("tokenizer.chat_template", 5))
    with pytest.raises(TargetError):
        load_targets(path)
    r = cli("check", path, *FAST, "--crashes", tmp_path / "c", "--property", "template.renders")
    assert "numeric.gguf" in one_error_line(r)


@pytest.mark.parametrize("config, tokenizer_json", [
    ({"chat_template": "x", "added_tokens_decoder": [{"content": "<s>", "special": True}]}, None),
    ({"chat_template": "x", "additional_special_tokens": 7}, None),
    ({"chat_template": "x"}, {"added_tokens": 7}),
], ids=["added_tokens_decoder-list", "additional_special_tokens-int", "tokenizer_json-added_tokens-int"])
def test_malformed_tokenizer_config_is_a_target_error(cli, tmp_path, one_error_line, config,
                                                      tokenizer_json):
    """Valid JSON of the wrong shape is bad input: TargetError and one line, no traceback."""
    folder = tmp_path / "malformed"
    write_json(folder / "tokenizer_config.json", config)
    if tokenizer_json is not None:
        write_json(folder / "tokenizer.json", tokenizer_json)
    with pytest.raises(TargetError):
        load_targets(folder)
    assert "malformed" in one_error_line(cli("check", folder, *FAST, "--crashes", tmp_path / "c"))


def test_gguf_bad_input_in_a_fresh_process(cli_subprocess, tmp_path, one_error_line):
    p = tmp_path / "garbage.gguf"
    p.write_bytes(b"GGUF" + b"\xff" * 64)
    assert "garbage.gguf" in one_error_line(cli_subprocess("check", p, *FAST))
