"""Hostile inputs against recording: text no encoder takes (class 1), and writers racing or
failing (class 8). Every finding ends up on disk as a complete, strict-UTF-8 case file, the
``--json`` report too, and each replays.
"""

from __future__ import annotations

import json
import multiprocessing
import os
from pathlib import Path

import pytest

from chainfuzz import cases

UNRECORDABLE = "1 unrecordable text"
RACE = "8 write race"

SEARCH = ("--max-examples", "30", "--seed", "1")


def _with_defect(null_crash: str, before_loop: str) -> str:
    """The planted null crash with ``before_loop`` rendered before the messages."""
    return null_crash.replace("{%- for m in messages -%}", before_loop + "{%- for m in messages -%}", 1)


def _build(name: str, root: Path, sources) -> Path:
    """The hostile target ``name`` under ``root``."""
    if name == "emits-lone-surrogate":  # every rendering holds U+D800, and null content crashes
        path = root / "emit.jinja"
        path.write_text(_with_defect(sources.null_crash, "{{ '\\ud800' }}"), encoding="utf-8")
    elif name == "raises-lone-surrogate":  # a deliberate refusal whose text holds U+D800
        path = root / "raise.jinja"
        path.write_text(sources.clean.replace(
            "{%- for m in messages -%}\n",
            "{%- for m in messages -%}\n{%- if m.role == 'developer' -%}"
            "{{ raise_exception('bad \\ud800 developer') }}{%- endif -%}\n", 1), encoding="utf-8")
    elif name == "bos-token-lone-surrogate":  # valid JSON: "\ud800" in tokenizer_config.json
        path = root / "bos"
        path.mkdir()
        (path / "tokenizer_config.json").write_text(json.dumps(
            {"chat_template": _with_defect(sources.null_crash, "{{ bos_token }}"), "bos_token": "\ud800"}),
            encoding="utf-8")
    elif name == "file-name-not-utf8":  # Python holds the name surrogate-escaped: t\udcff.jinja
        path = Path(os.fsdecode(os.fsencode(root) + b"/t\xff.jinja"))
        path.write_text(sources.null_crash, encoding="utf-8")
    elif name == "raises-10-million-characters":  # a 200 MB case file before the records' bound
        path = root / "huge.jinja"
        path.write_text(sources.clean.replace(
            "{%- for m in messages -%}\n",
            "{%- for m in messages -%}\n{%- if m.role == 'developer' -%}"
            "{{ raise_exception('E' * 10000000) }}{%- endif -%}\n", 1), encoding="utf-8")
    else:
        raise AssertionError(name)
    return path


@pytest.mark.parametrize("name,rc,escaped", [
    ("emits-lone-surrogate", 1, "\\ud800"),
    ("raises-lone-surrogate", 0, "\\ud800"),
    ("bos-token-lone-surrogate", 1, "\\ud800"),
    ("file-name-not-utf8", 1, "\\udcff"),
    ("raises-10-million-characters", 0, "characters cut"),
])
def test_any_text_is_recorded_reported_and_replayed(hostile, tmp_path, sources, name, rc, escaped):
    target = _build(name, tmp_path, sources)
    crashes, report = tmp_path / "crashes", tmp_path / "report.json"
    r = hostile(UNRECORDABLE, name, "check", target, *SEARCH, "--crashes", crashes, "--json", report,
                expect_rc=rc, max_seconds=90)
    found = r.cases()  # strict UTF-8 JSON, no temporary file left (the harness checks)
    assert found, r.out
    raw = b"".join(p.read_bytes() for p in crashes.glob("*.json")) + report.read_bytes()
    assert escaped.encode() in raw  # lone surrogates written as their escape: readable, valid
    doc = json.loads(report.read_bytes().decode("utf-8"))
    assert {f["reproducer"]["signature"] for f in doc["failures"]} == {c["signature"] for c in found}
    assert escaped in r.out  # the human report shows it escaped, and did not crash on it
    for case in found:
        assert len(json.dumps(case)) < 200_000  # free text clipped; the input never is
    if name == "file-name-not-utf8":
        assert {os.fsencode(c["target"]["name"]) for c in found} == {b"t\xff.jinja"}  # lossless
    if name == "raises-lone-surrogate":
        assert "bad \ud800 developer" in [c["observed"] for c in found]  # reads back the same str
    replayed = hostile(UNRECORDABLE, f"{name} (replay)", "replay", crashes, expect_rc=(0, 1), max_seconds=90)
    assert f"{len(found)} case(s): {len(found)} fails" in replayed.out, replayed.out


# --- class 8: writers racing for one signature, and writes failing ------------------------------------

def _racer(crashes: str, me: int, shared: int, own: int, barrier) -> list[tuple[str, bool]]:
    """One process writing ``shared`` records every racer writes (its own content) and ``own``
    records only it writes; returns (file name, written) per write."""
    barrier.wait()
    out = []
    for i in range(shared + own):
        signature = f"{i:012x}" if i < shared else f"{me:04x}{i:08x}"
        rec = {"chainfuzz_case": 1, "property": "template.renders", "severity": "error",
               "signature": signature, "status": "open", "message": f"writer {me} " + "x" * 4000,
               "key": "k", "target": {"path": "t.jinja", "name": "t.jinja"}, "input": {"writer": me}}
        path, written = cases.write(rec, Path(crashes))
        out.append((path.name, written))
    return out


def test_racing_writers_leave_one_whole_file_per_signature(hostile, tmp_path):
    """8 processes write the same 150 signatures (and 30 of their own) at once: the old shared
    ``.tmp`` name gave 6 corrupt files in 300 trials of 4 processes."""
    crashes = tmp_path / "crashes"
    racers, shared, own = 8, 150, 30
    ctx = multiprocessing.get_context("fork")
    barrier = ctx.Manager().Barrier(racers)
    with ctx.Pool(racers) as pool:
        results = pool.starmap(_racer, [(str(crashes), me, shared, own, barrier) for me in range(racers)])
    writes: dict[str, int] = {}
    for result in results:
        for name, written in result:
            writes[name] = writes.get(name, 0) + written
    assert len(writes) == shared + racers * own
    assert set(writes.values()) == {1}  # exactly one writer says it wrote each file
    assert sorted(p.name for p in crashes.iterdir()) == sorted(writes)  # no temporary file left
    for p in crashes.iterdir():
        rec = json.loads(p.read_bytes().decode("utf-8"))
        assert rec["message"] == f"writer {rec['input']['writer']} " + "x" * 4000  # one writer's whole record
    r = hostile(RACE, "8 processes x 180 writes (replay of the result)", "replay", crashes,
                expect_rc=2, max_seconds=120)  # t.jinja is not there: every case "missing"
    assert f"{len(writes)} case(s): {len(writes)} missing" in r.out


def test_a_write_that_fails_is_one_line_and_keeps_the_cases_written_before(hostile, tmp_path, sources):
    """The file-size limit (RLIMIT_FSIZE, set in the child by a sitecustomize) lets the small
    case of a.jinja be written and fails the large one of b.jinja: one error line, exit 2, the
    first case whole on disk, no temporary file. (Measured: a's case is 1.7 KB, b's 5.1 KB, its
    message and observed text clipped to 2,000 characters each.)"""
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(
        "import resource\nresource.setrlimit(resource.RLIMIT_FSIZE, (3500, resource.RLIM_INFINITY))\n",
        encoding="utf-8")
    targets = tmp_path / "targets"
    targets.mkdir()
    (targets / "a.jinja").write_text(sources.null_crash, encoding="utf-8")
    (targets / "b.jinja").write_text(sources.clean.replace(
        "{%- for m in messages -%}\n",
        "{%- for m in messages -%}\n{{ raise_exception('E' * 100000) }}\n", 1), encoding="utf-8")
    crashes = tmp_path / "crashes"
    env = {"PYTHONPATH": os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH")]))}
    r = hostile(RACE, "case file over the file-size limit", "check", targets, *SEARCH,
                "--property", "template.renders", "--crashes", crashes, env=env, expect_rc=2,
                max_seconds=90)
    assert "cannot write case file" in r.err and "b.jinja" in r.err
    [case] = r.cases()
    assert case["target"]["name"] == "a.jinja" and case["key"] == sources.null_crash_key
