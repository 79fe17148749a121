"""``chainfuzz campaign`` end to end, through the real CLI in child processes: planted defects
found within the budget and known on the next run, a fixed case that fails again, SIGKILL and
resume, a hung pair cut off, bad input, and workers sharing one memory through a real Redis."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from programs import need_program

TEMPLATES = Path(__file__).resolve().parents[2] / "templates"
# Each planted template with the property that must find it (`tests/properties` checks the
# same defects one input at a time).
PLANTED = {"renders_defect.jinja": "template.renders",
           "no_repr_leak_defect.jinja": "template.no_repr_leak",
           "generation_prompt_defect.jinja": "template.generation_prompt"}


def config(folder: Path, targets: dict[str, str], *, budget: float, extra: str = "",
           modes: str = '["hypothesis"]') -> Path:
    """A campaign file over ``targets`` (file name -> property), copied into ``folder``."""
    lines = [f"budget = {budget}", extra]
    for name, prop in targets.items():
        lines += ["[[target]]", f'path = "{name}"', f'properties = ["{prop}"]', f"modes = {modes}"]
    path = folder / "campaign.toml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def start(folder: Path, *args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "chainfuzz.cli", "campaign", "campaign.toml",
                             "--out", "out", "--crashes", "crashes", *args], cwd=folder,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def run(folder: Path, *args: str, timeout: float = 300) -> tuple[int, dict, str]:
    proc = start(folder, *args)
    out, err = proc.communicate(timeout=timeout)
    assert "Traceback" not in err, err
    report = json.loads((folder / "out" / "report.json").read_text(encoding="utf-8"))
    return proc.returncode, report, err


@pytest.fixture
def planted(tmp_path) -> Path:
    for name in PLANTED:
        shutil.copy(TEMPLATES / name, tmp_path / name)
    return tmp_path


def test_planted_defects_found_then_known(planted, sources):
    config(planted, PLANTED, budget=24, extra="name = \"planted\"")
    rc, report, err = run(planted, "--seed", "3")
    assert rc == 1, err
    errors = {(f["target"], f["property"]) for f in report["findings"] if f["severity"] == "error"}
    assert errors >= set(PLANTED.items()), errors
    assert all(f["status"] == "new" for f in report["findings"])
    assert {f["signature"] for f in report["changes"]["new"]} == {f["signature"] for f in report["findings"]}
    for f in report["findings"]:  # every finding is a case file, with its minimal input
        case = json.loads(Path(f["case_file"]).read_text(encoding="utf-8"))
        assert case["signature"] == f["signature"] and case["input"] == f["input"]
    for name in ("report.md", "report.html", "junit.xml"):
        assert (planted / "out" / name).stat().st_size > 0
    assert report["run"] == 1 and report["timeline"]
    md = (planted / "out" / "report.md").read_text(encoding="utf-8")
    assert md.index("New") < md.index("template.renders")  # it leads with what changed

    # The second night: the same defects are known, not filed again; nothing new: exit 0.
    before = sorted(p.name for p in (planted / "crashes").iterdir())
    rc, report, err = run(planted, "--seed", "4", "--budget", "12")
    assert rc == 0, err
    assert report["run"] == 2 and not report["changes"]["new"] and not report["changes"]["regressed"]
    assert report["changes"]["known"] >= len(PLANTED)
    assert sorted(p.name for p in (planted / "crashes").iterdir()) == before
    assert [h["run"] for h in report["history"]] == [1, 2]


def test_clean_twin_reports_nothing(tmp_path, sources):
    (tmp_path / "clean.jinja").write_text(sources.clean, encoding="utf-8")
    config(tmp_path, {"clean.jinja": "template.*"}, budget=8)
    rc, report, err = run(tmp_path, "--seed", "3")
    assert rc == 0, err
    assert not [f for f in report["findings"] if f["severity"] == "error"]
    assert {p["property"] for p in report["pairs"]} >= {"template.renders", "template.no_repr_leak"}
    assert all(p["state"] in ("ok", "done") for p in report["pairs"])


def test_a_fixed_case_failing_again_is_a_regression(tmp_path, sources):
    (tmp_path / "t.jinja").write_text(sources.null_crash, encoding="utf-8")
    config(tmp_path, {"t.jinja": "template.renders"}, budget=8)
    rc, report, err = run(tmp_path, "--seed", "1")
    assert rc == 1 and report["changes"]["new"], err
    case_file = Path(next(f["case_file"] for f in report["findings"] if f["key"] == sources.null_crash_key))

    # The vendor fixes the template: the open case no longer fails, and the report says so.
    (tmp_path / "t.jinja").write_text(sources.clean, encoding="utf-8")
    rc, report, err = run(tmp_path, "--seed", "2")
    assert rc == 0, err
    assert str(case_file) in {f["case_file"] for f in report["changes"]["fixed"]}
    assert not report["changes"]["regressed"]

    # The case is marked fixed; then the defect comes back: a regression, and the run fails.
    rec = json.loads(case_file.read_text(encoding="utf-8"))
    case_file.write_text(json.dumps({**rec, "status": "fixed"}), encoding="utf-8")
    (tmp_path / "t.jinja").write_text(sources.null_crash, encoding="utf-8")
    rc, report, err = run(tmp_path, "--seed", "3")
    assert rc == 1, err
    assert rec["signature"] in {f["signature"] for f in report["changes"]["regressed"]}
    assert "Regress" in (tmp_path / "out" / "report.md").read_text(encoding="utf-8")
    junit = (tmp_path / "out" / "junit.xml").read_text(encoding="utf-8")
    assert "<failure" in junit


def test_sigkill_and_resume_lose_nothing(planted):
    """Killed at several moments (while starting, mid-search twice), started again with the
    same command: every finding logged before a kill is in the final report, and the run
    stays within its original budget."""
    config(planted, PLANTED, budget=30)
    logged: set[str] = set()
    log = planted / "out" / "state" / "findings-1.jsonl"
    for delay in (1.5, 9, 8):
        proc = start(planted, "--seed", "5")
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.communicate()
        if log.exists():
            logged |= {json.loads(line)["signature"] for line in log.read_text().splitlines() if line.strip()}
        for f in logged:  # its case file is on disk, complete
            assert any(f in p.name for p in (planted / "crashes").iterdir())
    state = json.loads((planted / "out" / "state" / "campaign.json").read_text())
    assert state["status"] == "running" and state["elapsed"] > 5
    rc, report, err = run(planted, "--seed", "5")
    assert rc == 1, err
    assert report["run"] == 1 and report["resumes"] == 3
    assert logged and logged <= {f["signature"] for f in report["findings"]}
    assert report["elapsed"] <= 30 + 15  # the budget, plus a slice's shrink allowance
    errors = {(f["target"], f["property"]) for f in report["findings"] if f["severity"] == "error"}
    assert errors >= set(PLANTED.items())
    # No worker outlives a kill of the campaign.
    assert subprocess.run(["pgrep", "-f", f"chainfuzz.campaign.worker {planted}"]).returncode == 1


HANGING_PROPERTY = '''
import time
import chainfuzz
from chainfuzz import strategies as cst

@chainfuzz.property("user.sleeps", inputs=lambda ctx: cst.conversations(), applies_to="template")
def sleeps(ctx, case):
    time.sleep(3600)
'''


def test_a_hung_pair_is_cut_off_and_the_rest_go_on(planted):
    (planted / "props").mkdir()
    (planted / "props" / "sleepy.py").write_text(HANGING_PROPERTY, encoding="utf-8")
    config(planted, {"renders_defect.jinja": "template.renders", "no_repr_leak_defect.jinja": "user.sleeps"},
           budget=12, extra='property_dirs = ["props"]\nhang_seconds = 3')
    rc, report, err = run(planted, "--seed", "1")
    assert rc == 1, err
    states = {p["property"]: p for p in report["pairs"]}
    assert states["user.sleeps"]["state"] == "hung" and "did not end" in states["user.sleeps"]["message"]
    assert states["template.renders"]["errors"] >= 1
    assert "hung" in err


RAISING_PROPERTY = '''
import chainfuzz
from chainfuzz import strategies as cst

@chainfuzz.property("user.broken", inputs=lambda ctx: cst.conversations(), applies_to="template")
def broken(ctx, case):
    raise KeyError("a bug in the property itself")
'''


def test_a_property_that_raises_is_an_internal_error(planted):
    (planted / "props").mkdir()
    (planted / "props" / "broken.py").write_text(RAISING_PROPERTY, encoding="utf-8")
    config(planted, {"renders_defect.jinja": "user.broken"}, budget=4, extra='property_dirs = ["props"]')
    rc, report, err = run(planted, "--seed", "1")
    assert rc == 3, err
    pair = next(p for p in report["pairs"] if p["property"] == "user.broken")
    assert pair["state"] == "failed" and "KeyError" in pair["message"]


def test_interrupted_then_resumed(planted):
    """SIGINT (or a pod's SIGTERM): reports written, exit 130; the same command resumes."""
    config(planted, {"renders_defect.jinja": "template.renders"}, budget=20)
    proc = start(planted, "--seed", "1")
    time.sleep(6)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    report = json.loads((planted / "out" / "report.json").read_text(encoding="utf-8"))
    assert report["interrupted"] and report["exit_code"] == 130 and report["elapsed"] < 20
    rc, report, err = run(planted, "--seed", "1")
    assert rc == 1 and report["resumes"] == 1 and not report["interrupted"], err
    assert report["run"] == 1 and 19 <= report["elapsed"] <= 35  # dispatch stops with 0.5 s left


def test_a_redis_that_does_not_answer_is_bad_input(planted, cli_subprocess, one_error_line):
    config(planted, {"renders_defect.jinja": "template.renders"}, budget=4)
    line = one_error_line(cli_subprocess("campaign", "campaign.toml", "--out", "out",
                                         "--redis", "redis://:secret@127.0.0.1:9/0", cwd=planted))
    assert "did not answer" in line and "secret" not in line


@pytest.mark.parametrize("toml, says", [
    ("budget = 5\n", "needs at least one [[target]]"),
    ('budget = 5\n[[target]]\npath = "missing.jinja"\n', "no such file"),
    ('budget = 5\n[[target]]\npath = "t.jinja"\ncorpus = "llama.cpp"\n', "exactly one of path, corpus or url"),
    ('budget = 5\n[[target]]\npath = "t.jinja"\nproperties = ["template.nope*"]\n', "names no property"),
    ('budgett = 5\n[[target]]\npath = "t.jinja"\n', "unknown key 'budgett'"),
    ('budget = -1\n[[target]]\npath = "t.jinja"\n', "budget must be a positive number"),
    ('[[target]]\npath = "t.jinja"\n', "no budget"),
    ("budget = [\n", "not a TOML file"),
])
def test_bad_config_is_one_error_line(tmp_path, sources, cli_subprocess, one_error_line, toml, says):
    (tmp_path / "t.jinja").write_text(sources.clean, encoding="utf-8")
    (tmp_path / "campaign.toml").write_text(toml, encoding="utf-8")
    line = one_error_line(cli_subprocess("campaign", "campaign.toml", "--out", "out"))
    assert says in line, line


def test_a_template_that_does_not_compile_is_bad_input(tmp_path, cli_subprocess, one_error_line):
    (tmp_path / "t.jinja").write_text("{% if %}", encoding="utf-8")
    config(tmp_path, {"t.jinja": "template.renders"}, budget=3)
    line = one_error_line(cli_subprocess("campaign", "campaign.toml", "--out", "out"))
    assert "does not compile" in line and "t.jinja" in line, line


def test_clean_twin_config_is_accepted(tmp_path, sources, cli_subprocess):
    (tmp_path / "t.jinja").write_text(sources.clean, encoding="utf-8")
    config(tmp_path, {"t.jinja": "template.renders"}, budget=3)
    result = cli_subprocess("campaign", "campaign.toml", "--out", "out")
    assert result.rc == 0 and "run 1" in result.out, result.err


def test_two_workers_sharing_redis_find_a_defect_once_and_both_shrink_it(planted, redis_db):
    """Two campaigns, as on two machines: their own --out, one crash folder, one Redis. The
    defect is filed once; both workers shrank it (each logged it: one wrote the case file)."""
    need_program("redis-server")
    redis_url = redis_db()
    config(planted, {"renders_defect.jinja": "template.renders"}, budget=12)
    other = planted / "machine-b"
    other.mkdir()
    shutil.copy(planted / "renders_defect.jinja", other)
    shutil.copy(planted / "campaign.toml", other)
    a = start(planted, "--seed", "1", "--redis", redis_url)
    b = subprocess.Popen([sys.executable, "-m", "chainfuzz.cli", "campaign", "campaign.toml", "--out", "out",
                          "--crashes", str(planted / "crashes"), "--seed", "2", "--redis", redis_url],
                         cwd=other, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    for proc in (a, b):
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 1, err
    logs = [json.loads(line) for d in (planted, other)
            for line in (d / "out" / "state" / "findings-1.jsonl").read_text().splitlines()]
    by_sig: dict[str, list[dict]] = {}
    for r in logs:
        by_sig.setdefault(r["signature"], []).append(r)
    files = sorted(p.name for p in (planted / "crashes").iterdir())
    assert len(files) == len(set(files)) == len(by_sig)  # one case file per defect, none twice
    shared = [rs for rs in by_sig.values() if len({r["worker"] for r in rs}) == 2]
    assert shared, by_sig  # a defect both workers shrank and logged
    for rs in shared:
        assert sum(bool(r["written"]) for r in rs) == 1  # exactly one of them wrote it


def test_sigkill_mid_atheris_slice_keeps_its_findings(planted):
    """An atheris harness writes its findings as events while its slice runs: a campaign killed
    mid-slice has them in the report of the resumed run."""
    pytest.importorskip("atheris")
    config(planted, {"renders_defect.jinja": "template.renders"}, budget=40, modes='["atheris"]')
    proc = start(planted, "--seed", "1")
    deadline, seen = time.monotonic() + 60, set()
    while time.monotonic() < deadline and not seen:
        time.sleep(0.5)
        for events in (planted / "out" / "state").glob("findings-1.atheris-*.jsonl"):
            seen |= {json.loads(line)["signature"] for line in events.read_text().splitlines()
                     if line.strip() and '"event": "finding"' in line}
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    assert seen, "the harness found nothing to kill it over"
    rc, report, err = run(planted, "--seed", "1")
    assert rc == 1 and report["resumes"] == 1, err
    found = {f["signature"]: f for f in report["findings"]}
    assert seen <= set(found) and all(found[s]["mode"] == "atheris" for s in seen)
