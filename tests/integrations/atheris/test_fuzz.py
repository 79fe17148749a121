"""``chainfuzz fuzz``: atheris finds a planted defect, records it shrunk in the standard case
format that ``replay`` reproduces, writes it once, stays quiet on a clean template, and
refuses bad input with one line."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from chainfuzz import cases
from chainfuzz.fuzz.launch import SEEDS
from chainfuzz.internal.runner import signature

pytest.importorskip("atheris")

ROOT = Path(__file__).resolve().parents[3]


def _executions(out: str) -> int:
    return int(re.search(r"(\d+) executions in", out).group(1))


def test_planted_defect_is_found_shrunk_recorded_once_and_replayed(cli, write_template, sources,
                                                                   tmp_path):
    tpl = write_template("nullcrash.jinja", sources.null_crash)
    found = tmp_path / "crashes"
    r = cli("fuzz", tpl, "--harness", "template", "--budget", 15, "--crashes", found, "--seed", 1)
    assert r.rc == 1, r.out + r.err
    assert "Traceback" not in r.err
    assert _executions(r.out) > 0
    [case] = found.glob("template.renders--nullcrash.jinja--*.json")
    assert str(case) in r.out
    rec = cases.read(case)
    assert rec["chainfuzz_case"] == cases.FORMAT and rec["status"] == "open"
    assert rec["severity"] == "error"
    assert rec["key"] == sources.null_crash_key
    assert rec["signature"] == signature("template.renders", "nullcrash.jinja", rec["key"])
    # shrunk: one message with null content; what else is left (at most an assistant's tool
    # results, which cannot go without its tool calls) has empty texts
    messages = rec["input"]["messages"]
    assert [m["content"] for m in messages if m["content"] is not None] == [""] * (len(messages) - 1)
    assert len(messages) <= 3 and not rec["input"].get("tools"), rec["input"]

    # the standard format: what `check` records for the same defect has the same name and fields
    checked = tmp_path / "checked"
    c = cli("check", tpl, "--property", "template.renders", "--max-examples", 50, "--seed", 1,
            "--crashes", checked)
    assert c.rc == 1, c.out + c.err
    [by_check] = checked.glob("*.json")
    assert by_check.name == case.name
    assert set(json.loads(by_check.read_text(encoding="utf-8"))) == set(rec)

    # replay reproduces it
    rp = cli("replay", found)
    assert rp.rc == 1, rp.out
    assert rp.out.startswith("fails ") and "1 case(s): 1 fails" in rp.out

    # found again, it is not written again, and nothing new means exit 0
    again = cli("fuzz", tpl, "--harness", "template", "--budget", 3, "--crashes", found, "--seed", 2)
    assert again.rc == 0, again.out + again.err
    assert "already recorded" in again.out and "0 case(s) written" in again.out
    assert list(found.glob("*.json")) == [case]


def test_clean_template_writes_no_case(cli, write_template, sources, tmp_path):
    tpl = write_template("chatml.jinja", sources.clean)
    r = cli("fuzz", tpl, "--budget", 6, "--crashes", tmp_path / "crashes", "--seed", 1)
    assert r.rc == 0, r.out + r.err
    assert _executions(r.out) > 100
    assert "0 case(s) written" in r.out
    assert not (tmp_path / "crashes").exists() or not list((tmp_path / "crashes").iterdir())


def test_atheris_script_wrapper_runs_the_harness_from_the_seeds(write_template, sources, tmp_path):
    """``fuzz/fuzz_template.py`` is the same harness, with libFuzzer's own flags."""
    tpl = write_template("nullcrash.jinja", sources.null_crash)
    (tmp_path / "work").mkdir()
    proc = subprocess.run(
        [sys.executable, str(ROOT / "fuzz" / "fuzz_template.py"), str(tpl), "--crashes", "found",
         "-seed=1", "-max_total_time=6", "work", str(SEEDS / "template")],
        cwd=tmp_path, capture_output=True, text=True, timeout=120, env=os.environ.copy())
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert re.search(r"^Done \d+ runs", proc.stderr, re.MULTILINE)
    assert len(list((tmp_path / "found").glob("template.renders--nullcrash.jinja--*.json"))) == 1
    assert not list((SEEDS / "template").glob("[0-9a-f]" * 40))  # seeds stay as they are


@pytest.mark.parametrize("args, words", [
    (("missing.jinja", "--budget", "5"), "no such file"),
    (("{tpl}", "--harness", "tokenizer", "--budget", "5"), "needs a tokenizer"),
    (("{tpl}", "--harness", "nonsense", "--budget", "5"), "unknown harness"),
    (("{tpl}",), "--budget"),
    (("{tpl}", "--budget", "-1"), "positive"),
    (("{bad}", "--budget", "5"), "does not compile"),
    (("{tpl}", "--budget", "5", "--inputs", "{tpl}"), "not a folder"),
])
def test_bad_input_is_one_line_and_exit_2(cli, write_template, sources, one_error_line, tmp_path,
                                          args, words):
    tpl = write_template("chatml.jinja", sources.clean)
    bad = write_template("bad.jinja", "{% for %}")
    r = cli("fuzz", *(a.format(tpl=tpl, bad=bad) for a in args), "--crashes", tmp_path / "crashes")
    assert words in one_error_line(r)
