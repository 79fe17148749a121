"""``sweep``: check every template of a real-template corpus, in parallel, into one table.

Each template is checked in a worker process, so a template that wedges the interpreter costs
one worker's task, and the table is built from what every worker sent back.
"""

from __future__ import annotations

import multiprocessing
import os
import random
import time
from dataclasses import dataclass, field
from pathlib import Path

from . import corpus, registry
from .check import check
from .errors import ChainfuzzError
from .runner import RunSettings


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
        lines = ["| template | " + " | ".join(short) + " |", "|---" * (len(short) + 1) + "|"]
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
        lines.append("| **templates with errors** | " + " | ".join(map(str, failing)) + " |")
        n_err = sum(r.count(p, "error") for r in self.rows for p in self.properties)
        n_warn = sum(r.count(p, "warning") for r in self.rows for p in self.properties)
        lines.append("")
        lines.append(f"{len(self.rows)} templates, {n_err} error and {n_warn} warning findings, "
                     f"{self.seconds:.0f}s wall time (seed {self.seed}).")
        return "\n".join(lines) + "\n"


def sweep(corpus_name: str = corpus.DEFAULT, *, property_ids: list[str] | None = None,
          run: RunSettings | None = None, total_budget: float | None = None,
          crashes_dir: Path | None = Path("crashes"), jobs: int | None = None,
          limit: int | None = None, progress=None) -> SweepReport:
    """Check every template of ``corpus_name``; ``total_budget`` is wall-clock seconds for all."""
    run = run or SWEEP_SETTINGS
    seed = run.seed if run.seed is not None else random.SystemRandom().randrange(2**32)
    props = [p.id for p in registry.select(property_ids, {"template"})]
    paths = sorted(corpus.templates_dir(corpus_name).glob("*.jinja"))[:limit]
    jobs = jobs or os.cpu_count() or 1
    per_template = total_budget * jobs / max(1, len(paths)) if total_budget else None
    settings = RunSettings(run.max_examples, None, seed, run.max_findings, run.shrink_seconds)
    tasks = [(str(p), props, settings, per_template, crashes_dir) for p in paths]
    report = SweepReport(corpus_name, seed, props)
    start = time.monotonic()
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(jobs, maxtasksperchild=8) as pool:
        for i, row in enumerate(pool.imap_unordered(_check_one, tasks), 1):
            report.rows.append(row)
            if progress:
                e = sum(f["severity"] == "error" for f in row.findings)
                w = len(row.findings) - e
                progress(f"[{i}/{len(tasks)}] {row.name}: {e} errors, {w} warnings ({row.seconds:.1f}s)")
    report.seconds = time.monotonic() - start
    return report


def _check_one(task) -> Row:
    path, props, settings, budget, crashes_dir = task
    row = Row(Path(path).stem)
    try:
        result = check(path, property_ids=props, run=settings, total_budget=budget,
                       crashes_dir=crashes_dir)
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
