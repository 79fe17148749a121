"""Presenting results: the ``--json`` document and the human-readable tables."""

from __future__ import annotations

import json
from typing import TextIO

from .check import CheckReport, TargetReport
from .internal.runner import Finding

RENDERED_LIMIT = 800


def to_json(report: CheckReport) -> dict:
    """The ``--json`` contract: target, failures (each with its reproducer) and stats."""
    many = len(report.targets) != 1
    failures = []
    for t, f in report.findings:
        item = {"property": f.property, "severity": f.severity, "message": f.message,
                "reproducer": {**f.to_json(), "case_file": t.cases.get(f.signature)}}
        if many:
            item["target"] = t.target.name
        failures.append(item)
    return {
        "target": ({"path": report.path, "targets": [t.target.fingerprint for t in report.targets]}
                   if many else report.targets[0].target.fingerprint if report.targets else
                   {"path": report.path}),
        "failures": failures,
        "stats": {
            "seed": report.seed,
            "seconds": round(report.seconds, 3),
            "interrupted": report.interrupted,
            "internal_errors": report.internal_errors,
            "targets": {t.target.name: {r.property.id: r.to_json() for r in t.results}
                        for t in report.targets},
            "tokenizers": {t.target.name: {"ran": t.impls, "unavailable": t.unavailable}
                           for t in report.targets if t.target.tokenizer is not None},
            "engines": {t.target.name: t.engines for t in report.targets if t.engines},
        },
    }


def write_human(report: CheckReport, out: TextIO) -> None:
    for t in report.targets:
        _target_table(t, out)
        for f in t.findings:
            _finding_block(t, f, out)
    errors = sum(f.severity == "error" for _, f in report.findings)
    warnings = sum(f.severity == "warning" for _, f in report.findings)
    print(f"\n{len(report.targets)} target(s), {errors} error(s), {warnings} warning(s) in "
          f"{report.seconds:.1f}s (seed {report.seed})", file=out)
    for line in report.internal_errors:
        print(f"internal error: {line}", file=out)
    if report.interrupted:
        print("interrupted: results above are partial", file=out)


def _target_table(t: TargetReport, out: TextIO) -> None:
    print(f"\n{t.target.name}  ({t.target.path}, sha256 {t.target.sha256[:12]})", file=out)
    if t.impls:
        print(f"  tokenizer implementations: {', '.join(t.impls)}", file=out)
    for impl, why in t.unavailable.items():
        print(f"  not run: {impl}: {why}", file=out)
    if t.engines:
        print(f"  engines: {', '.join(t.engines)}", file=out)
    width = max([len(r.property.id) for r in t.results] + [8])
    print(f"  {'property':<{width}}  {'examples':>8}  {'skipped':>7}  {'errors':>6}  {'warnings':>8}  "
          f"{'time':>6}", file=out)
    for r in t.results:
        errs = sum(f.severity == "error" for f in r.findings)
        warns = sum(f.severity == "warning" for f in r.findings)
        status = "  INTERNAL ERROR" if r.internal_error else ""
        print(f"  {r.property.id:<{width}}  {r.examples:>8}  {r.skipped:>7}  {errs:>6}  {warns:>8}  "
              f"{r.seconds:>5.1f}s{status}", file=out)


def _finding_block(t: TargetReport, f: Finding, out: TextIO) -> None:
    print(f"\n  {f.severity.upper()} {f.property} [{f.signature}]: {f.message}", file=out)
    print(f"    minimal input: {json.dumps(f.case, ensure_ascii=False)}", file=out)
    if f.rendered is not None:
        shown = f.rendered if len(f.rendered) <= RENDERED_LIMIT else f.rendered[:RENDERED_LIMIT] + " …"
        print(f"    rendered: {json.dumps(shown, ensure_ascii=False)}", file=out)
    print(f"    observed: {json.dumps(f.observed, ensure_ascii=False)}", file=out)
    print(f"    expected: {json.dumps(f.expected, ensure_ascii=False)}", file=out)
    if f.signature in t.cases:
        print(f"    case: {t.cases[f.signature]}", file=out)
