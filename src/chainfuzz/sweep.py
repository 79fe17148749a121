"""``sweep``: check every template (or tokenizer) of a real corpus, in parallel, into one table.

Each target is checked in its own forked process (cheap: the parent has imported
transformers already). A target that hangs where no alarm reaches, or kills the interpreter,
costs its own row, marked as an error, and never the rest of the sweep. With
``tokenizers=True`` the rows are the corpus' tokenizers (vocab GGUFs, Mistral's files) and the
properties those of kinds "tokenizer" and "chain"; with ``parsers=True`` the rows are the
templates the parser family table knows (`chainfuzz.parsers.families`) and the properties the
parser ones, on the parsers each family is served with (``--parser auto``).

``total_budget`` is the sweep's time to search, shared in two passes: first every row gets an
even floor (`runner.FLOOR_SHARE` of the time), then the rest goes to the rows whose checks
gained most per second (new behaviour, new defects), as `runner.run_searches` shares a check's
time among its properties. Shrinking findings stops a row's clock (`limits.shrinking`), up to
`limits.SHRINK_ALLOWANCE` of the budget past the end. No row starts after the search's end, and
one still running `GRACE_SECONDS` after the shrink allowance is killed. Each row's process runs
under the memory limit (`limits.limit_memory`) and dies with the sweep
(`limits.die_with_parent`).
"""

from __future__ import annotations

import dataclasses
import math
import multiprocessing
import multiprocessing.connection as mp_connection
import os
import random
import time
from pathlib import Path
from typing import Iterator

from . import corpus, registry
from .checker import check
from .errors import ChainfuzzError, UsageError
from .internal import limits
from .internal.text import clip
from .internal.runner import FLOOR_SHARE, RunSettings
from .report import Row, SweepReport

# A sweep surveys many templates: fewer examples, fewer findings per property and a lower
# shrink cap than `check`, which digs into one target (the cap rarely binds: see
# `RunSettings.shrink_seconds`).
SWEEP_SETTINGS = RunSettings(max_examples=25, max_findings=3, shrink_seconds=10.0)
# How long past the sweep's end a row may take to hand its result over before it is killed: a
# check honours its own budget (the same end) within a second or so; the rest is sending the
# row and the process' exit.
GRACE_SECONDS = 5.0
# A second-pass share below this is not worth a row's start-up (loading and learning the
# template take 0.2-1 s of it).
MIN_SECOND_PASS = 3.0


def sweep(corpus_name: str = corpus.DEFAULT, *, property_ids: list[str] | None = None,
          run: RunSettings | None = None, total_budget: float | None = None,
          crashes_dir: Path | None = Path("crashes"), jobs: int | None = None,
          limit: int | None = None, tokenizers: bool = False, parsers: bool = False, progress=None,
          memory_limit: int | None = limits.DEFAULT_MEMORY) -> SweepReport:
    """Check every template (or tokenizer) of ``corpus_name``; ``total_budget`` is wall-clock
    seconds for all; ``memory_limit`` the data-segment bytes of each row's process."""
    run = run or SWEEP_SETTINGS
    seed = run.seed if run.seed is not None else random.SystemRandom().randrange(2**32)
    if tokenizers and parsers:
        raise UsageError("--tokenizers and --parsers: choose one")
    kinds = {"tokenizer", "chain"} if tokenizers else {"parser"} if parsers else {"template"}
    props = [p.id for p in registry.select(property_ids, kinds)]
    if not props:
        raise UsageError(f"none of the named properties applies to {' or '.join(sorted(kinds))}s")
    if tokenizers:
        paths = corpus.tokenizer_paths(corpus_name)
    else:
        paths = sorted(corpus.templates_dir(corpus_name).glob("*.jinja"))
        if parsers:
            from .parsers.families import family_of, tokenizer_dir

            paths = [p for p in paths if family_of(p) is not None]
            for fam in {family_of(p) for p in paths[:limit]}:
                tokenizer_dir(fam)  # built once into the cache (~20 s each), not on the rows' clocks
    paths = paths[:limit]
    jobs = jobs or os.cpu_count() or 1
    floor = FLOOR_SHARE if total_budget else 1.0
    per_template = floor * total_budget * jobs / max(1, len(paths)) if total_budget else None
    settings = dataclasses.replace(run, budget=None, seed=seed)
    specs = ("auto",) if parsers else ()
    tasks = [(str(p), props, settings, per_template, crashes_dir, memory_limit, specs) for p in paths]
    report = SweepReport(corpus_name, seed, props)
    start = time.monotonic()
    limit_s = _task_limit(per_template, settings, len(props))
    clock = _Clock(start, total_budget, jobs)
    tasks = [(*t, clock.cap) for t in tasks]
    rows: dict[str, Row] = {}
    for i, row in enumerate(_run_isolated(tasks, jobs, limit_s, clock), 1):
        rows[row.name] = row
        report.rows.append(row)
        if progress:
            progress(f"[{i}/{len(tasks)}] {row.name}: {_summary(row)}")
    for task, row in _second_pass(tasks, rows, jobs, clock):
        rows[row.name].merge(row)
        if progress:
            progress(f"[more] {row.name}: {_summary(rows[row.name])}")
    report.seconds = time.monotonic() - start
    return report


def _summary(row: Row) -> str:
    e = sum(f["severity"] == "error" for f in row.findings)
    return ("not run: the budget ran out first" if row.not_run
            else row.error or f"{e} errors, {len(row.findings) - e} warnings ({row.seconds:.1f}s)")


class _Clock:
    """The sweep's search end (no row starts after it) and the end of its shrink allowance.
    Each row's own clock stops while it shrinks a finding (`limits.shrinking`); the sweep's
    end moves back by the rows' shrinking spread over the jobs, up to the allowance's end."""

    def __init__(self, start: float, budget: float | None, jobs: int) -> None:
        self.end = start + budget if budget else math.inf
        self.cap = start + budget * (1 + limits.SHRINK_ALLOWANCE) if budget else math.inf
        self.jobs = jobs

    def add(self, row: Row) -> None:
        self.end = min(self.cap, self.end + row.shrink_seconds / self.jobs)


def _second_pass(tasks: list, rows: dict[str, Row], jobs: int, clock: _Clock):
    """The time left after the first pass, shared among the rows by their gain per second:
    (task, row) of each second check, as they finish."""
    left = clock.end - time.monotonic()
    if left == math.inf:
        return
    again = second_shares(tasks, rows, jobs, left)
    by_name = {_row_name(t[0]): t for t in again}
    for row in _run_isolated(again, jobs, _task_limit(left, tasks[0][2], len(tasks[0][1])), clock):
        if not row.not_run:
            yield by_name[row.name], row


def second_shares(tasks: list, rows: dict[str, Row], jobs: int, left: float) -> list:
    """The second pass' tasks, largest share first: ``left`` seconds on ``jobs`` workers,
    shared by gain per second in the first pass, best first; a share is at least
    `MIN_SECOND_PASS` (the rows the time does not reach are not run again). Each gets another
    seed, and what its first pass found is not searched for again."""
    rate = {name: (row.gain + 1) / max(row.seconds, 1.0) for name, row in rows.items()
            if not (row.error or row.not_run)}
    by_name = {_row_name(t[0]): t for t in tasks}
    time_left, rate_left = left * jobs, sum(rate.values())
    again = []
    for name in sorted(rate, key=lambda n: -rate[n]):
        share = max(MIN_SECOND_PASS, time_left * rate[name] / rate_left)
        if share > time_left or name not in by_name:
            break
        task = by_name[name]
        found = frozenset(f["signature"] for f in rows[name].findings)
        settings = dataclasses.replace(task[2], seed=task[2].seed + 1, known=found)
        again.append((task[0], task[1], settings, share, *task[4:]))
        time_left -= share
        rate_left -= rate[name]
    return again


def _task_limit(per_template: float | None, run: RunSettings, n_props: int) -> float:
    """Seconds after which a template's process is killed: far beyond any honest search
    (50 ms per example is ten times the usual cost, plus every finding's shrinking)."""
    searching = per_template if per_template else (run.max_examples or 100) * n_props * 0.05
    return 60 + 4 * searching + n_props * run.max_findings * run.shrink_seconds


def _run_isolated(tasks: list, jobs: int, limit_s: float, clock: _Clock | None = None) -> Iterator[Row]:
    """Run each task in a forked process, ``jobs`` at a time; yield rows as they finish. A task
    gets its own budget, ending no later than ``clock.end`` (monotonic); none starts after it,
    and one still running `GRACE_SECONDS` after the shrink allowance (``clock.cap``) is killed."""
    clock = clock or _Clock(time.monotonic(), None, jobs)
    ctx = multiprocessing.get_context("fork")
    pending = list(tasks)
    running: dict = {}  # process -> (task, connection, start)
    parent = os.getpid()
    while pending or running:
        while pending and len(running) < jobs:
            if time.monotonic() >= clock.end:
                for task in pending:
                    yield Row(_row_name(task[0]), not_run=True)
                pending = []
                break
            task = pending.pop(0)
            left = clock.end - time.monotonic()
            if left < math.inf:
                task = (*task[:3], min(task[3] or math.inf, left), *task[4:])
            receive, send = ctx.Pipe(duplex=False)
            proc = ctx.Process(target=_child, args=(task, send, parent), daemon=True)
            proc.start()
            send.close()
            running[proc] = (task, receive, time.monotonic())
        if not running:
            continue
        wait = min(1.0, max(0.0, max(clock.end, clock.cap) + GRACE_SECONDS - time.monotonic()))
        ready = mp_connection.wait([r for _, r, _ in running.values()] + [p.sentinel for p in running],
                                   timeout=wait)
        for proc, (task, receive, started) in list(running.items()):
            row = None
            now = time.monotonic()
            if receive in ready or proc.sentinel in ready:
                row = _collect(proc, task, receive)
            elif now - started > limit_s:
                proc.kill()
                row = Row(_row_name(task[0]), error=f"killed after {limit_s:.0f}s without a result")
            elif now > max(clock.end, clock.cap) + GRACE_SECONDS:
                proc.kill()
                row = Row(_row_name(task[0]), error=f"killed {GRACE_SECONDS:g}s after the sweep's "
                          "budget and shrink allowance ran out, without a result")
            if row is not None:
                clock.add(row)
                proc.join()
                receive.close()
                del running[proc]
                yield row


def _collect(proc, task, receive) -> Row:
    try:
        return receive.recv()
    except (EOFError, OSError):
        proc.join()
        return Row(_row_name(task[0]), error=f"the checking process died (exit code {proc.exitcode})")


def _child(task, send, parent: int) -> None:
    """A row's process: it dies with the sweep and searches under the memory limit."""
    limits.die_with_parent(parent)
    limits.limit_memory(task[5] if len(task) > 5 else limits.DEFAULT_MEMORY)
    try:
        row = _check_one(task)
    except MemoryError:
        row = Row(_row_name(task[0]), error="ran out of memory (the row's memory limit)")
    except KeyboardInterrupt:  # Ctrl-C reaches the whole process group: the parent reports it
        os._exit(130)
    except Exception as exc:  # a bug in chainfuzz: the row says so, the sweep goes on
        row = Row(_row_name(task[0]), internal_errors=[f"{type(exc).__name__}: {clip(str(exc), 300)}"])
    send.send(row)
    send.close()


def _check_one(task) -> Row:
    path, props, settings, budget, crashes_dir = task[:5]
    row = Row(_row_name(path))
    try:
        result = check(path, property_ids=props, run=settings, total_budget=budget,
                       crashes_dir=crashes_dir, strict=False, parsers=task[6],
                       shrink_until=task[7] if len(task) > 7 and task[7] != math.inf else None)
    except ChainfuzzError as exc:
        row.error = str(exc)
        return row
    row.seconds = result.seconds
    row.shrink_seconds = result.shrink_seconds
    row.gain = result.gain
    row.internal_errors = result.internal_errors
    for t in result.targets:
        row.examples += sum(r.examples for r in t.results)
        row.findings += [{"property": f.property, "severity": f.severity, "key": f.key,
                          "message": f.message, "signature": f.signature,
                          "case_file": t.cases.get(f.signature)} for f in t.findings]
    return row


def _row_name(path: str) -> str:
    """A template's stem ("Qwen-Qwen2.5-7B-Instruct"), a tokenizer's file name."""
    p = Path(path)
    return p.stem if p.suffix == ".jinja" else p.name
