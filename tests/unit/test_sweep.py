"""The sweep's process isolation: a template that kills or wedges its process costs one row."""

from __future__ import annotations

import os
import time

from chainfuzz import sweep
from chainfuzz.report import Row, SweepReport


def test_dead_and_hung_checks_become_error_rows_and_the_rest_completes(monkeypatch):
    def fake_check(task):
        name = task[0]
        if name == "dies":
            os._exit(3)  # what a segfaulting extension does to the process, minus the core file
        if name == "hangs":
            time.sleep(60)
        return Row(name, seconds=0.01)

    monkeypatch.setattr(sweep, "_check_one", fake_check)
    tasks = [(name, [], None, None, None) for name in ("fine-1", "dies", "hangs", "fine-2")]
    start = time.monotonic()
    rows = {r.name: r for r in sweep._run_isolated(tasks, jobs=2, limit_s=2.0)}
    assert time.monotonic() - start < 20
    assert set(rows) == {"fine-1", "dies", "hangs", "fine-2"}
    assert rows["fine-1"].error is None and rows["fine-2"].error is None
    assert rows["dies"].error == "the checking process died (exit code 3)"
    assert rows["hangs"].error.startswith("killed after 2s")


def test_a_crashed_template_shows_as_not_applicable_in_the_table():
    report = SweepReport("c", 0, ["template.renders"],
                               rows=[Row("t", error="the checking process died (exit code 3)")])
    assert "| t | n/a |" in report.markdown()


def test_the_sweep_deadline_kills_overrunning_rows_and_starts_no_more(monkeypatch):
    def fake_check(task):
        if task[0] == "hangs":
            time.sleep(60)
        return Row(task[0], seconds=0.01)

    monkeypatch.setattr(sweep, "_check_one", fake_check)
    tasks = [(name, [], None, None, None) for name in ("hangs", "second", "third")]
    start = time.monotonic()
    clock = sweep._Clock(start, 1.0, jobs=1)  # its shrink allowance ends at 1.5 s
    rows = {r.name: r for r in sweep._run_isolated(tasks, jobs=1, limit_s=600, clock=clock)}
    assert time.monotonic() - start < 1.5 + sweep.GRACE_SECONDS + 3
    assert rows["hangs"].error.startswith(f"killed {sweep.GRACE_SECONDS:g}s after the sweep's budget")
    assert rows["second"].not_run and rows["third"].not_run
