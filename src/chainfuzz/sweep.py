"""``sweep``: check every template (or tokenizer) of a real corpus, in parallel, into one table.

Each target is checked in its own forked process (cheap: the parent has imported
transformers already). A target that hangs where no alarm reaches, or kills the interpreter,
costs its own row, marked as an error, and never the rest of the sweep. With
``tokenizers=True`` the rows are the corpus' tokenizers (vocab GGUFs, Mistral's files) and the
properties those of kinds "tokenizer" and "chain".
"""

from __future__ import annotations

import dataclasses
import multiprocessing
import multiprocessing.connection as mp_connection
import os
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from . import corpus, registry
from .check import check
from .errors import ChainfuzzError, UsageError
from .internal.runner import RunSettings

# A sweep surveys many templates: fewer examples, fewer findings per property and shorter
# shrinking than `check`, which digs into one target.
SWEEP_SETTINGS = RunSettings(max_examples=25, max_findings=3, shrink_seconds=1.0)


@dataclass
class Row:
    """One template's results, reduced to what the table and the JSON report need."""

    name: str
    findings: list[dict] = field(default_factory=list)
    examples: int = 0
    seconds: float = 0.0
    internal_errors: list[str] = field(default_factory=list)
    error: str | None = None  # the template could not be loaded or compiled

    def count(self, prop: str, severity: str) -> int:
        return sum(f["property"] == prop and f["severity"] == severity for f in self.findings)


@dataclass
class SweepReport:
    corpus: str
    seed: int
    properties: list[str]
    rows: list[Row] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def exit_code(self) -> int:
        if any(r.internal_errors for r in self.rows):
            return 3
        return 1 if any(f["severity"] == "error" for r in self.rows for f in r.findings) else 0

    def to_json(self) -> dict:
        return {"corpus": self.corpus, "seed": self.seed, "seconds": round(self.seconds, 1),
                "templates": {r.name: {"findings": r.findings, "examples": r.examples,
                                       "seconds": round(r.seconds, 2), "error": r.error,
                                       "internal_errors": r.internal_errors} for r in self.rows}}

    def markdown(self) -> str:
        """Findings per template: ``2E 1W`` is two error and one warning findings, ``·`` none."""
        short = [p.split(".", 1)[1] for p in self.properties]
        lines = ["| target | " + " | ".join(short) + " |", "|---" * (len(short) + 1) + "|"]
        for r in sorted(self.rows, key=lambda r: r.name.lower()):
            if r.error:
                lines.append(f"| {r.name} | " + " | ".join(["n/a"] * len(short)) + " |")
                continue
            cells = []
            for p in self.properties:
                e, w = r.count(p, "error"), r.count(p, "warning")
                cells.append(" ".join(x for x in (f"{e}E" if e else "", f"{w}W" if w else "") if x) or "·")
            lines.append(f"| {r.name} | " + " | ".join(cells) + " |")
        failing = [sum(1 for r in self.rows if r.count(p, "error")) for p in self.properties]
        lines.append("| **targets with errors** | " + " | ".join(map(str, failing)) + " |")
        n_err = sum(r.count(p, "error") for r in self.rows for p in self.properties)
        n_warn = sum(r.count(p, "warning") for r in self.rows for p in self.properties)
        lines.append("")
        lines.append(f"{len(self.rows)} targets, {n_err} error and {n_warn} warning findings, "
                     f"{self.seconds:.0f}s wall time (seed {self.seed}).")
        return "\n".join(lines) + "\n"


def sweep(corpus_name: str = corpus.DEFAULT, *, property_ids: list[str] | None = None,
          run: RunSettings | None = None, total_budget: float | None = None,
          crashes_dir: Path | None = Path("crashes"), jobs: int | None = None,
          limit: int | None = None, tokenizers: bool = False, progress=None) -> SweepReport:
    """Check every template (or tokenizer) of ``corpus_name``; ``total_budget`` is wall-clock
    seconds for all."""
    run = run or SWEEP_SETTINGS
    seed = run.seed if run.seed is not None else random.SystemRandom().randrange(2**32)
    kinds = {"tokenizer", "chain"} if tokenizers else {"template"}
    props = [p.id for p in registry.select(property_ids, kinds)]
    if not props:
        raise UsageError(f"none of the named properties applies to {' or '.join(sorted(kinds))}s")
    paths = (corpus.tokenizer_paths(corpus_name) if tokenizers
             else sorted(corpus.templates_dir(corpus_name).glob("*.jinja")))[:limit]
    jobs = jobs or os.cpu_count() or 1
    per_template = total_budget * jobs / max(1, len(paths)) if total_budget else None
    settings = dataclasses.replace(run, budget=None, seed=seed)
    tasks = [(str(p), props, settings, per_template, crashes_dir) for p in paths]
    report = SweepReport(corpus_name, seed, props)
    start = time.monotonic()
    limit_s = _task_limit(per_template, settings, len(props))
    for i, row in enumerate(_run_isolated(tasks, jobs, limit_s), 1):
        report.rows.append(row)
        if progress:
            e = sum(f["severity"] == "error" for f in row.findings)
            w = len(row.findings) - e
            summary = row.error or f"{e} errors, {w} warnings ({row.seconds:.1f}s)"
            progress(f"[{i}/{len(tasks)}] {row.name}: {summary}")
    report.seconds = time.monotonic() - start
    return report


def _task_limit(per_template: float | None, run: RunSettings, n_props: int) -> float:
    """Seconds after which a template's process is killed: far beyond any honest search
    (50 ms per example is ten times the usual cost, plus every finding's shrinking)."""
    searching = per_template if per_template else run.max_examples * n_props * 0.05
    return 60 + 4 * searching + n_props * run.max_findings * run.shrink_seconds


def _run_isolated(tasks: list, jobs: int, limit_s: float) -> Iterator[Row]:
    """Run each task in a forked process, ``jobs`` at a time; yield rows as they finish."""
    ctx = multiprocessing.get_context("fork")
    pending = list(tasks)
    running: dict = {}  # process -> (task, connection, start)
    while pending or running:
        while pending and len(running) < jobs:
            task = pending.pop(0)
            receive, send = ctx.Pipe(duplex=False)
            proc = ctx.Process(target=_child, args=(task, send), daemon=True)
            proc.start()
            send.close()
            running[proc] = (task, receive, time.monotonic())
        ready = mp_connection.wait([r for _, r, _ in running.values()] + [p.sentinel for p in running],
                                   timeout=1.0)
        for proc, (task, receive, started) in list(running.items()):
            row = None
            if receive in ready or proc.sentinel in ready:
                row = _collect(proc, task, receive)
            elif time.monotonic() - started > limit_s:
                proc.kill()
                row = Row(_row_name(task[0]), error=f"killed after {limit_s:.0f}s without a result")
            if row is not None:
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


def _child(task, send) -> None:
    send.send(_check_one(task))
    send.close()


def _check_one(task) -> Row:
    path, props, settings, budget, crashes_dir = task
    row = Row(_row_name(path))
    try:
        result = check(path, property_ids=props, run=settings, total_budget=budget,
                       crashes_dir=crashes_dir, strict=False)
    except ChainfuzzError as exc:
        row.error = str(exc)
        return row
    row.seconds = result.seconds
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
