"""Hostile case files (class 6): whatever a file named like a case holds, ``replay`` gives it
its own ``unreadable`` status with a one-line reason, replays the rest, counts it in the
summary and exits 2 with one error line. And replay of an untrusted case says which paths and
URLs it will touch before it runs it (class 10).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from chainfuzz.checker import check
from chainfuzz.internal.runner import RunSettings

BAD_INPUT = "6 bad input"
SMALLER = "10 smaller"


@pytest.fixture(scope="module")
def recorded_once(tmp_path_factory, sources):
    """templates/nullcrash.jinja and its one case in cases/ (found once, copied per test)."""
    root = tmp_path_factory.mktemp("replay")
    (root / "templates").mkdir()
    (root / "templates" / "nullcrash.jinja").write_text(sources.null_crash, encoding="utf-8")
    report = check(root / "templates" / "nullcrash.jinja", property_ids=["template.renders"],
                   run=RunSettings(max_examples=20, seed=1), crashes_dir=root / "cases")
    assert report.exit_code == 1
    return root


@pytest.fixture
def good(recorded_once, tmp_path) -> Path:
    """A case that replays as "fails", in tmp_path/cases (not the harness' crashes folder,
    whose every file it parses)."""
    for sub in ("templates", "cases"):
        shutil.copytree(recorded_once / sub, tmp_path / sub)
    [case] = (tmp_path / "cases").glob("*.json")
    return case


def _case_with(good: Path, **changes) -> bytes:
    """The good case with fields changed: ``target__path=7`` sets ``rec["target"]["path"]``."""
    rec = json.loads(good.read_text(encoding="utf-8"))
    for dotted, value in changes.items():
        *path, last = dotted.split("__")
        obj = rec
        for part in path:
            obj = obj[part]
        obj[last] = value
    return json.dumps(rec).encode()


# name -> the bytes of x.json, given the good case (a function: some build on it)
CONTENTS = {
    "number": lambda good: b"5",
    "null": lambda good: b"null",
    "array": lambda good: b"[]",
    "string": lambda good: b'"chainfuzz_case"',
    "input-is-a-number": lambda good: _case_with(good, input=5),
    "target-is-a-string": lambda good: _case_with(good, target="x"),
    "property-is-a-number": lambda good: _case_with(good, property=3),
    "target-path-is-a-number": lambda good: _case_with(good, target__path=7),
    "engines-are-numbers": lambda good: _case_with(good, target__engines=[1, 2]),
    "nested-3000-deep": lambda good: b'{"chainfuzz_case": 1, "input": ' + b"[" * 3000 + b"]" * 3000 + b"}",
    "not-utf8": lambda good: b'{"chainfuzz_case": 1, "property": "\xff\xfe"}',
    "70-MiB": lambda good: b'{"chainfuzz_case": 1, "pad": "' + b" " * (70 << 20) + b'"}',
    "truncated": lambda good: good.read_bytes()[:200],
}
REASONS = {"number": "a JSON number", "null": "a JSON null", "array": "a JSON array",
           "string": "a JSON string", "input-is-a-number": '"input" is a JSON number',
           "target-is-a-string": '"target" is a JSON string', "property-is-a-number": '"property" is a JSON number',
           "target-path-is-a-number": '"target.path" is a JSON number',
           "engines-are-numbers": '"target.engines" must be a list of strings',
           "nested-3000-deep": "nested too deeply", "not-utf8": "not UTF-8", "70-MiB": "more than the 64 MiB",
           "truncated": "not JSON"}


@pytest.mark.parametrize("name", list(CONTENTS))
def test_a_bad_case_file_is_unreadable_and_the_rest_replays(hostile, good, tmp_path, name):
    bad = good.parent / "x.json"
    bad.write_bytes(CONTENTS[name](good))
    r = hostile(BAD_INPUT, f"case file: {name}", "replay", good, bad, expect_rc=2, max_seconds=60)
    assert "could not be replayed (1 unreadable)" in r.err
    [line] = [ln for ln in r.out.splitlines() if ln.startswith("unreadable")]
    assert "x.json" in line
    assert REASONS[name] in r.out
    assert "2 case(s): 1 fails, 1 unreadable" in r.out


@pytest.mark.parametrize("name", ["fifo", "symlink-to-dev-zero", "dangling-symlink"])
def test_a_case_file_that_is_no_regular_file_never_blocks_a_folder(hostile, good, name):
    """In a folder, a FIFO (nobody writes to it: a blocking open waits forever) or a link to
    /dev/zero named ``x.json`` is reported unreadable; the folder's case still replays."""
    bad = good.parent / "x.json"
    if name == "fifo":
        os.mkfifo(bad)
    elif name == "symlink-to-dev-zero":
        bad.symlink_to("/dev/zero")
    else:
        bad.symlink_to(good.parent / "nowhere.json")
    r = hostile(BAD_INPUT, f"case file: {name}", "replay", good.parent, expect_rc=2, max_seconds=60)
    assert "2 case(s): 1 fails, 1 unreadable" in r.out, r.out
    assert "x.json" in r.err or "x.json" in r.out


def test_a_folder_named_like_a_case_file_is_passed_over(hostile, good):
    (good.parent / "x.json").mkdir()
    r = hostile(BAD_INPUT, "case file: a folder named x.json", "replay", good.parent, expect_rc=1,
                max_seconds=60)
    assert "1 case(s): 1 fails" in r.out


def test_an_unreadable_case_named_alone_is_one_line(hostile, tmp_path):
    bad = tmp_path / "x.json"
    bad.write_bytes(b"5")
    r = hostile(BAD_INPUT, "case file: a lone unreadable file", "replay", bad, expect_rc=2, max_seconds=60)
    assert "1 case(s): 1 unreadable" in r.out


# --- class 10: replay says what an untrusted case touches ------------------------------------------

def test_replay_marks_a_path_outside_the_project_before_running(hostile, good, tmp_path):
    bad = good.parent / "elsewhere.json"
    bad.write_bytes(_case_with(good, target__path="../../../../../../../../etc/hostname"))
    r = hostile(SMALLER, "case naming ../../../etc/hostname", "replay", bad, expect_rc=(0, 1, 2),
                max_seconds=60)  # /etc/hostname is text, so a template: replay does as told
    lines = r.out.splitlines()
    assert lines[0].startswith("caution") and "elsewhere.json will touch" in lines[0]  # said first
    assert "/etc/hostname [outside the case's project and the chainfuzz cache]" in lines[0]
    assert lines[1].split()[0] in ("fails", "fails-differently", "fixed", "skipped", "error")


def test_replay_marks_a_server_url_and_leaves_local_targets_unmarked(hostile, good):
    url = "http://127.0.0.1:9/v1"
    (good.parent / "remote.json").write_bytes(_case_with(good, target__engines=[url]))
    r = hostile(SMALLER, "case naming a server URL", "replay", good.parent, expect_rc=1, max_seconds=60)
    assert f"{url} [a server to contact]" in r.out
    assert r.out.count("caution") == 1  # the URL; the project's own template is not marked
    assert "2 case(s): 2 fails" in r.out  # a template property opens no engine: nothing contacted
