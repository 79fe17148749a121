"""``check``: run every applicable property on every target at a path, recording findings.

Findings are written to the crash folder the moment they are found, so an interrupted or
crashed run loses none of them.
"""

from __future__ import annotations

import dataclasses
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from . import cases, registry
from .context import Context
from .errors import UsageError
from .template.render import check_compiles
from .internal.runner import Finding, PropertyResult, RunSettings, run_property
from .targets import Target, load_targets


@dataclass
class TargetReport:
    target: Target
    results: list[PropertyResult] = field(default_factory=list)
    cases: dict[str, str] = field(default_factory=dict)  # signature -> case file
    impls: list[str] = field(default_factory=list)  # tokenizer implementations that ran
    unavailable: dict[str, str] = field(default_factory=dict)  # tokenizer impl -> why not run
    engines: list[str] = field(default_factory=list)  # engines that ran the engine properties

    @property
    def findings(self) -> list[Finding]:
        return [f for r in self.results for f in r.findings]


@dataclass
class CheckReport:
    path: str
    seed: int
    targets: list[TargetReport] = field(default_factory=list)
    seconds: float = 0.0
    interrupted: bool = False

    @property
    def findings(self) -> list[tuple[TargetReport, Finding]]:
        return [(t, f) for t in self.targets for f in t.findings]

    @property
    def internal_errors(self) -> list[str]:
        return [f"{t.target.name}: {r.property.id}: {r.internal_error}"
                for t in self.targets for r in t.results if r.internal_error]

    @property
    def exit_code(self) -> int:
        if self.internal_errors:
            return 3
        return 1 if any(f.severity == "error" for _, f in self.findings) else 0


Progress = Callable[[str], None]


def check(path: str | Path, *, property_ids: list[str] | None = None, run: RunSettings | None = None,
          total_budget: float | None = None, crashes_dir: Path | None = Path("crashes"),
          progress: Progress | None = None, strict: bool = True,
          engines: tuple[str, ...] = ("transformers",)) -> CheckReport:
    """Check every target at ``path``; ``total_budget`` seconds are shared across all searches.

    A named property runs on the targets it applies to; with ``strict``, naming only properties
    that apply to none of them is a `UsageError`. ``engines`` are the ``--engine`` specs that
    run a model folder's engine properties.
    """
    run = run or RunSettings()
    seed = run.seed if run.seed is not None else random.SystemRandom().randrange(2**32)
    targets = load_targets(path)
    contexts = [prepare(t, engines) for t in targets]
    plan = [(ctx, registry.select(property_ids, ctx.kinds)) for ctx in contexts]
    if strict and property_ids and not any(props for _, props in plan):
        kinds = " and a ".join(sorted({k for ctx in contexts for k in ctx.kinds})) or "nothing"
        wanted = " or ".join(sorted({registry.get(p).applies_to for p in property_ids}))
        raise UsageError(f"the named properties apply to a {wanted}; {path} holds a {kinds}")
    report = CheckReport(str(path), seed)
    start = time.monotonic()
    searches = sum(len(props) for _, props in plan)
    done = 0
    try:
        for ctx, props in plan:
            target = ctx.target
            impls = [t.impl for t in ctx.tokenizers] if {"tokenizer", "chain"} & ctx.kinds else []
            treport = TargetReport(target, impls=impls, unavailable=ctx.unavailable,
                                   engines=[e.name for e in ctx.engines] if "engine" in ctx.kinds else [])
            report.targets.append(treport)
            for prop in props:
                budget = run.budget
                if total_budget is not None:
                    left = total_budget - (time.monotonic() - start)
                    budget = max(0.05, left / (searches - done))
                settings = dataclasses.replace(run, budget=budget, seed=seed)
                if progress:
                    progress(f"[{done + 1}/{searches}] {target.name}: {prop.id}")
                result = run_property(prop, ctx, settings, _recorder(treport, ctx, crashes_dir))
                treport.results.append(result)
                done += 1
    except KeyboardInterrupt:
        report.interrupted = True
    finally:
        for ctx in contexts:
            ctx.close()
    report.seconds = time.monotonic() - start
    return report


def prepare(target: Target, engines: tuple[str, ...] = ("transformers",)) -> Context:
    """A context whose template compiles, whose tokenizer loads and whose engines start;
    `TargetError` or `UsageError` otherwise."""
    if target.source is not None:
        check_compiles(target)
    ctx = Context(target, engines=engines)
    # Load the tokenizer now: an unreadable one is bad input, not a finding. Beside a template
    # it only drops the tokenizer and chain properties (see Context.kinds).
    if target.tokenizer is not None and target.source is None:
        ctx.loaded  # noqa: B018
    if "engine" in ctx.kinds:
        ctx.engines  # noqa: B018
    return ctx


def _recorder(treport: TargetReport, ctx: Context, crashes_dir: Path | None):
    def on_finding(finding: Finding) -> None:
        if crashes_dir is None:
            return
        rec = cases.record(finding, ctx.target, crashes_dir, engines=ctx.engine_specs)
        path, _ = cases.write(rec, crashes_dir)
        treport.cases[finding.signature] = str(path)

    return on_finding
