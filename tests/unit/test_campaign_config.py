"""The campaign file: what each key means and every mistake said in one line before anything
runs (the CLI's exit code 2 is checked end to end in tests/integrations/campaign/)."""

from __future__ import annotations

import pytest

from chainfuzz.campaign import config
from chainfuzz.errors import UsageError


def write(tmp_path, text: str):
    (tmp_path / "t.jinja").write_text("{{ messages }}", encoding="utf-8")
    (tmp_path / "model").mkdir(exist_ok=True)
    path = tmp_path / "c.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_a_full_file_reads_as_written(tmp_path, monkeypatch):
    monkeypatch.setenv("CHAINFUZZ_CACHE", str(tmp_path))
    cfg = config.load(write(tmp_path, '''
name = "nightly"
budget = 60
schedule = "equal"
hang_seconds = 5
[[target]]
path = "t.jinja"
properties = ["template.*"]
modes = ["hypothesis"]
[[target]]
url = "http://127.0.0.1:8080/v1"
model = "model"
[[target]]
path = "cache:model"
engines = ["transformers", "llama.cpp"]
[[target]]
corpus = "mistral"
'''))
    assert (cfg.name, cfg.budget, cfg.schedule, cfg.hang_seconds) == ("nightly", 60.0, "equal", 5.0)
    local, server, cached, corpus = cfg.targets
    assert local.value == str(tmp_path / "t.jinja") and local.modes == ("hypothesis",)
    assert server.engines == ("http://127.0.0.1:8080/v1",) and server.model == str(tmp_path / "model")
    assert cached.value == str(tmp_path / "model") and cached.engines == ("transformers", "llama.cpp")
    assert corpus.source == "corpus" and corpus.modes == config.MODES
    assert cfg.fingerprint == config.load(tmp_path / "c.toml").fingerprint


@pytest.mark.parametrize("text, says", [
    ('budget = 5\n[[target]]\nurl = "http://127.0.0.1:1/v1"\n', "a url needs model"),
    ('budget = 5\n[[target]]\nurl = "ftp://x"\nmodel = "model"\n', "must start with http"),
    ('budget = 5\n[[target]]\npath = "t.jinja"\nmodel = "model"\n', "model goes with url only"),
    ('budget = 5\n[[target]]\ncorpus = "nope"\n', "unknown corpus"),
    ('budget = 5\n[[target]]\npath = "t.jinja"\nmodes = ["afl"]\n', "unknown mode"),
    ('budget = 5\nschedule = "fast"\n[[target]]\npath = "t.jinja"\n', "schedule must be one of"),
    ('budget = 5\nhang_seconds = 0\n[[target]]\npath = "t.jinja"\n', "hang_seconds must be"),
    ('budget = true\n[[target]]\npath = "t.jinja"\n', "budget must be"),
    ('budget = 5\n[[target]]\npath = "t.jinja"\nproperties = "template.*"\n', "must be a list"),
    ('budget = 5\n[[target]]\npath = "cache:models/tiny-none"\n', "chainfuzz model tiny"),
])
def test_each_mistake_is_one_usage_error(tmp_path, monkeypatch, text, says):
    monkeypatch.setenv("CHAINFUZZ_CACHE", str(tmp_path))
    with pytest.raises(UsageError, match=says):
        config.load(write(tmp_path, text))


def test_globs_select_in_registry_order_and_a_glob_naming_nothing_is_refused(tmp_path):
    ids = ["template.renders", "template.roundtrip", "tokenizer.roundtrip"]
    assert config.select(("*.roundtrip",), ids) == ["template.roundtrip", "tokenizer.roundtrip"]
    assert config.select((), ids) == ids
    cfg = config.load(write(tmp_path, 'budget = 5\n[[target]]\npath = "t.jinja"\nproperties = ["engine.*"]\n'))
    with pytest.raises(UsageError, match="names no property"):
        config.check_patterns(cfg, ids)
    config.check_patterns(config.load(write(tmp_path, 'budget = 5\n[[target]]\npath = "t.jinja"\n'
                                                       'properties = ["template.*"]\n')), ids)
