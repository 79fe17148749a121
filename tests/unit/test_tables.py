"""The lazy back-end tables: names cost nothing until used, an unknown name is bad input that
lists the known ones, and every built-in row imports to what it says."""

from __future__ import annotations

import subprocess
import sys

import pytest

from chainfuzz.context import Context
from chainfuzz.engines import AVAILABLE_ENGINES, Engine, open_engine
from chainfuzz.errors import UsageError
from chainfuzz.kinds import AVAILABLE_KINDS, Kind, kind, recognised
from chainfuzz.targets import load_target
from chainfuzz.tokenization import AVAILABLE_TOKENIZERS, Tokenizer
from chainfuzz.tokenization.formats import FORMATS, lone_file_format


def test_naming_back_ends_imports_none_of_them():
    """In a fresh interpreter: the tables and `chainfuzz --help` load no back-end."""
    script = ("import sys\n"
              "from chainfuzz.engines import AVAILABLE_ENGINES\n"
              "from chainfuzz.tokenization import AVAILABLE_TOKENIZERS\n"
              "from chainfuzz.cli import build_parser\n"
              "AVAILABLE_ENGINES.names(); AVAILABLE_TOKENIZERS.names(); build_parser().format_help()\n"
              "print(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'transformers', 'llama_cpp')"
              " or m in ('chainfuzz.engines.hf', 'chainfuzz.engines.vllm', 'chainfuzz.tokenization.hf')))\n")
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and proc.stdout.strip() == "[]", proc.stdout + proc.stderr


def test_an_unknown_engine_is_a_usage_error_naming_the_known_ones(tmp_path):
    with pytest.raises(UsageError, match=r"unknown engine 'nope' \(known: transformers, llama.cpp, vllm, http"):
        open_engine("nope", tmp_path)


@pytest.mark.parametrize("table, base", [(AVAILABLE_KINDS, Kind), (AVAILABLE_TOKENIZERS, Tokenizer),
                                         (AVAILABLE_ENGINES, Engine)])
def test_every_built_in_row_is_what_its_table_holds(table, base):
    for name in table.builtin:
        assert issubclass(table.load(name), base), name


def test_every_format_names_implementations_of_the_table():
    for fmt in FORMATS.values():
        assert fmt.readers and all(r.impl in AVAILABLE_TOKENIZERS.builtin for r in fmt.readers), fmt.name


@pytest.mark.parametrize("name, fmt", [("tokenizer.json", "hf-json"), ("tekken_240911.json", "tekken"),
                                       ("tokenizer.model.v3", "mistral-sentencepiece"),
                                       ("spm.model", "sentencepiece"), ("x.gguf", None), ("t.jinja", None),
                                       ("other.json", None)])
def test_lone_files_are_recognised_by_the_format_table(tmp_path, name, fmt):
    assert lone_file_format(tmp_path / name) == fmt


def test_a_template_target_has_the_template_kind_and_the_parser_kind_on_request(write_template, sources):
    target = load_target(write_template("t.jinja", sources.clean))
    assert recognised(target) == ["template"] and target.kinds == {"template"}
    assert recognised(target, on_request=True) == ["template", "parser"]
    assert Context(target).kinds == {"template"}  # parser properties run only with --parser
    assert Context(target, parsers=("transformers",)).kinds == {"template", "parser"}
    assert kind("template").recognises(target) and not kind("chain").recognises(target)
