"""``check``: run every applicable property on every target at a path, recording findings.

Findings are written to the crash folder the moment they are found, so an interrupted or
crashed run loses none of them. ``total_budget`` is the call's time to search: loading,
compiling, tokenizer loads, structure learning, engine starts and calls are all charged to it
(`chainfuzz.internal.limits.budget`). Shrinking findings to minimal reproducers stops its
clock, up to `limits.SHRINK_ALLOWANCE` of the budget on top (``shrink_until``: another end).
"""

from __future__ import annotations

import dataclasses
import random
import time
from pathlib import Path
from typing import Callable

from . import cases, registry
from .context import Context
from .errors import ChainfuzzError, UsageError
from .internal import limits
from .internal.memory import Memory, target_key
from .internal.runner import Finding, RunSettings, Search, group, run_searches
from .report import CheckReport, TargetReport
from .targets import load_targets

Progress = Callable[[str], None]


def check(path: str | Path, *, property_ids: list[str] | None = None, run: RunSettings | None = None,
          total_budget: float | None = None, crashes_dir: Path | None = Path("crashes"),
          progress: Progress | None = None, strict: bool = True,
          engines: tuple[str, ...] = ("transformers",), parsers: tuple[str, ...] = (),
          shrink_until: float | None = None) -> CheckReport:
    """Check every target at ``path``; ``total_budget`` seconds are shared across all searches
    (`runner.run_searches`: a floor for each, the rest to those still finding something).

    A named property runs on the targets it applies to; with ``strict``, naming only properties
    that apply to none of them is a `UsageError`. ``engines`` are the ``--engine`` specs that
    run a model folder's engine properties, ``parsers`` the ``--parser`` specs that read a
    template's rendered replies back (the parser properties run only with some). Only the
    kinds the chosen properties need are opened (a model folder's engines start only for
    engine properties).
    """
    run = run or RunSettings()
    seed = run.seed if run.seed is not None else random.SystemRandom().randrange(2**32)
    report = CheckReport(str(path), seed)
    start, pushed = time.monotonic(), limits.extended()
    plan: list = []
    with limits.budget(total_budget, shrink_until=shrink_until):
        try:
            plan = _plan(load_targets(path), property_ids, engines, parsers, path, strict)
        except limits.BudgetExhausted:
            raise ChainfuzzError(f"the budget of {total_budget:g}s ran out while loading {path}, "
                                 "before any input was checked") from None
        searches: list[Search] = []
        for ctx, props in plan:
            treport = _target_report(ctx, props)
            report.targets.append(treport)
            on_finding = _recorder(treport, ctx, crashes_dir)
            for props_alike in group(props):
                memory = None if run.database is None else Memory(
                    run.database, target_key(ctx.target), [p.id for p in props_alike])
                searches.append(Search(props_alike, ctx, dataclasses.replace(run, seed=seed), on_finding,
                                       memory=memory, label=f"{ctx.target.name}: "
                                       + ", ".join(p.id for p in props_alike)))
        try:
            left = None if total_budget is None else max(0.05, total_budget - (time.monotonic() - start))
            run_searches(searches, dataclasses.replace(run, seed=seed), left,
                         progress=(lambda s: progress(s.label)) if progress else None)
        except KeyboardInterrupt:
            report.interrupted = True
        finally:
            for ctx, _ in plan:
                ctx.close()
        report.gain = sum(s.gain for s in searches)
        results = {(id(s.ctx), pid): r for s in searches for pid, r in s.results.items()}
        for treport, (ctx, props) in zip(report.targets, plan):
            treport.results.extend(results[id(ctx), p.id] for p in props)
            learned = ctx.__dict__.get("accepts")  # learned on first use, if a property asked
            treport.refuses = learned.summary() if learned is not None else ""
    report.seconds = time.monotonic() - start
    report.shrink_seconds = limits.extended() - pushed
    return report


def _plan(targets, property_ids, engines, parsers, path, strict) -> list[tuple[Context, list]]:
    """Each target's opened context and the properties to run on it; bad input (a template
    that does not compile, a tokenizer nothing reads, an engine that cannot start) raises
    before any search, and leaves no engine running."""
    plan: list[tuple[Context, list]] = []
    try:
        for target in targets:
            ctx = Context(target, engines=engines, parsers=parsers)
            props = registry.select(property_ids, ctx.kinds)
            plan.append((ctx, props))
            ctx.open({p.applies_to for p in props})
    except BaseException:
        for ctx, _ in plan:
            ctx.close()
        raise
    if strict and property_ids and not any(props for _, props in plan):
        kinds = " and a ".join(sorted({k for ctx, _ in plan for k in ctx.kinds})) or "nothing"
        wanted = " or ".join(sorted({registry.get(p).applies_to for p in property_ids}))
        raise UsageError(f"the named properties apply to a {wanted}; {path} holds a {kinds}")
    return plan


def _target_report(ctx: Context, props: list) -> TargetReport:
    """What the report lists for ``ctx``: per kind's label, the implementations that ran."""
    report = TargetReport(ctx.target, unavailable=ctx.unavailable)
    kinds = {p.applies_to for p in props}
    for k in ctx.kind_rows():
        if k.name in kinds and k.label and k.label not in report.ran:
            report.ran[k.label] = k.ran(ctx)
            report.json_keys[k.label] = k.json_key
    return report


def _recorder(treport: TargetReport, ctx: Context, crashes_dir: Path | None):
    def on_finding(finding: Finding) -> None:
        if crashes_dir is None:
            return
        rec = cases.record(finding, ctx, crashes_dir)
        path, written = cases.write(rec, crashes_dir)
        treport.cases[finding.signature] = str(path)
        # A warning found on lenient inputs alone, before this error showed the same defect on
        # a standard one: its case file, written by this run, goes.
        old = treport.cases.pop(finding.supersedes, None) if finding.supersedes else None
        if old is not None and old in treport.written:
            Path(old).unlink(missing_ok=True)
        if written:
            treport.written.add(str(path))

    return on_finding
