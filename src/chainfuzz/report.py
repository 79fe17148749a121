"""Every command's results and how they are shown: the one place output and exit codes are made.

``check`` fills a `CheckReport`, ``sweep`` a `SweepReport`, ``fuzz`` a `FuzzReport` and
``replay`` a `ReplayReport`; each says its own exit code (`exit_code`) and is written as a
human-readable text (``write_human`` / ``markdown``) or JSON (``to_json``) here.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

if TYPE_CHECKING:
    from .internal.runner import Finding, PropertyResult
    from .targets import Target

# Exit codes of every command.
OK = 0  # no error-severity finding (warnings may exist)
FINDINGS = 1  # at least one error-severity finding (or, for replay, a case still failing)
BAD_INPUT = 2  # unreadable target, bad flag, unknown property: one "chainfuzz: error:" line
INTERNAL = 3  # chainfuzz itself failed (a property raised); findings so far are kept
INTERRUPTED = 130

RENDERED_LIMIT = 800  # characters of a rendering shown beside a finding


def exit_code(*, internal: bool, errors: bool) -> int:
    """An internal error outranks findings: a run that broke cannot vouch for what it missed."""
    return INTERNAL if internal else FINDINGS if errors else OK


# --- check --------------------------------------------------------------------------------

@dataclass
class TargetReport:
    """One target's results; ``ran`` lists, per kind's label ("tokenizer implementations",
    "engines"), the implementations its properties ran on, ``unavailable`` those that could
    not run and why."""

    target: Target
    results: list[PropertyResult] = field(default_factory=list)
    cases: dict[str, str] = field(default_factory=dict)  # signature -> case file
    ran: dict[str, list[str]] = field(default_factory=dict)
    json_keys: dict[str, str] = field(default_factory=dict)  # label -> key in --json's stats
    unavailable: dict[str, str] = field(default_factory=dict)

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
        if self.interrupted:
            return INTERRUPTED
        return exit_code(internal=bool(self.internal_errors),
                         errors=any(f.severity == "error" for _, f in self.findings))

    def to_json(self) -> dict:
        """The ``--json`` contract: target, failures (each with its reproducer) and stats."""
        many = len(self.targets) != 1
        failures = []
        for t, f in self.findings:
            item = {"property": f.property, "severity": f.severity, "message": f.message,
                    "reproducer": {**f.to_json(), "case_file": t.cases.get(f.signature)}}
            if many:
                item["target"] = t.target.name
            failures.append(item)
        stats = {
            "seed": self.seed,
            "seconds": round(self.seconds, 3),
            "interrupted": self.interrupted,
            "internal_errors": self.internal_errors,
            "targets": {t.target.name: {r.property.id: r.to_json() for r in t.results}
                        for t in self.targets},
        }
        for t in self.targets:  # "tokenizers": what ran and what could not; "engines": what ran
            for label, names in t.ran.items():
                key = t.json_keys[label]
                stats.setdefault(key, {})[t.target.name] = (
                    {"ran": names, "unavailable": t.unavailable} if key == "tokenizers" else names)
            if t.unavailable and "tokenizers" not in {t.json_keys.get(lb) for lb in t.ran}:
                stats.setdefault("tokenizers", {})[t.target.name] = {"ran": [], "unavailable": t.unavailable}
        return {
            "target": ({"path": self.path, "targets": [t.target.fingerprint for t in self.targets]}
                       if many else self.targets[0].target.fingerprint if self.targets else
                       {"path": self.path}),
            "failures": failures,
            "stats": stats,
        }

    def write_human(self, out: TextIO) -> None:
        for t in self.targets:
            _target_table(t, out)
            for f in t.findings:
                _finding_block(t, f, out)
        errors = sum(f.severity == "error" for _, f in self.findings)
        warnings = sum(f.severity == "warning" for _, f in self.findings)
        print(f"\n{len(self.targets)} target(s), {errors} error(s), {warnings} warning(s) in "
              f"{self.seconds:.1f}s (seed {self.seed})", file=out)
        for line in self.internal_errors:
            print(f"internal error: {line}", file=out)
        if self.interrupted:
            print("interrupted: results above are partial", file=out)


def _target_table(t: TargetReport, out: TextIO) -> None:
    print(f"\n{t.target.name}  ({t.target.path}, sha256 {t.target.sha256[:12]})", file=out)
    for label, names in t.ran.items():
        print(f"  {label}: {', '.join(names)}", file=out)
    for impl, why in t.unavailable.items():
        print(f"  not run: {impl}: {why}", file=out)
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


# --- sweep --------------------------------------------------------------------------------

@dataclass
class Row:
    """One template's (or tokenizer's) results, reduced to what the table and the JSON need."""

    name: str
    findings: list[dict] = field(default_factory=list)
    examples: int = 0
    seconds: float = 0.0
    internal_errors: list[str] = field(default_factory=list)
    error: str | None = None  # the target could not be loaded or compiled

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
        return exit_code(internal=any(r.internal_errors for r in self.rows),
                         errors=any(f["severity"] == "error" for r in self.rows for f in r.findings))

    def to_json(self) -> dict:
        return {"corpus": self.corpus, "seed": self.seed, "seconds": round(self.seconds, 1),
                "templates": {r.name: {"findings": r.findings, "examples": r.examples,
                                       "seconds": round(r.seconds, 2), "error": r.error,
                                       "internal_errors": r.internal_errors} for r in self.rows}}

    def markdown(self) -> str:
        """Findings per target: ``2E 1W`` is two error and one warning findings, ``·`` none."""
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


# --- fuzz ---------------------------------------------------------------------------------

@dataclass
class HarnessRun:
    """What one harness process did."""

    harness: str
    budget: int
    executions: int = 0
    checked: int = 0  # inputs that decoded to a case and reached a property
    seconds: float = 0.0  # from the first input to the end
    wall: float = 0.0  # the whole process: starting up (imports, loading, instrumenting) too
    findings: list[dict] = field(default_factory=list)  # new: shrunk and written
    known: list[dict] = field(default_factory=list)  # already in the crash folder
    internal_error: str | None = None

    @property
    def rate(self) -> float:
        return self.executions / self.seconds if self.seconds > 0 else 0.0


@dataclass
class FuzzReport:
    path: str
    runs: list[HarnessRun] = field(default_factory=list)

    @property
    def findings(self) -> list[dict]:
        return [f for r in self.runs for f in r.findings]

    @property
    def exit_code(self) -> int:
        """An error-severity case written counts; a defect already recorded does not."""
        return exit_code(internal=any(r.internal_error for r in self.runs),
                         errors=any(f["severity"] == "error" and f["written"] for f in self.findings))

    def write_human(self, out: TextIO) -> None:
        """Per harness, executions, rate, and the findings with their case files."""
        print(f"fuzz {self.path}", file=out)
        for r in self.runs:
            print(f"\n  {r.harness:<10} {r.executions} executions in {r.seconds:.1f}s "
                  f"({r.rate:.0f}/s, budget {r.budget}s), {r.checked} inputs checked; "
                  f"{len(r.findings)} new finding(s), {len(r.known)} already recorded", file=out)
            for f in r.findings:
                print(f"    {f['severity'].upper():<7} {f['property']}: {f['message']}", file=out)
                print(f"            {f['path'] if f['written'] else '(not written)'}", file=out)
            for f in r.known:
                print(f"    known   {f['property']}: {f['message']} ({f['signature']})", file=out)
            if r.internal_error:
                print(f"    INTERNAL ERROR {r.internal_error}", file=out)
        written = [f for f in self.findings if f["written"]]
        errors = sum(f["severity"] == "error" for f in written)
        print(f"\n{len(written)} case(s) written ({errors} error(s), {len(written) - errors} warning(s)); "
              f"{sum(len(r.known) for r in self.runs)} defect(s) found again, already recorded",
              file=out)


# --- replay -------------------------------------------------------------------------------

@dataclass
class Outcome:
    """One case replayed. ``status``: "fails" (same defect), "fails-differently", "fixed",
    "skipped", "missing" (the target or an implementation is not on this machine) or
    "error"."""

    path: Path
    property: str
    status: str
    detail: str
    target_changed: bool = False

    @property
    def failing(self) -> bool:
        return self.status in ("fails", "fails-differently")

    def write_human(self, out: TextIO) -> None:
        """Printed as it comes: a replay of many engine cases takes a while."""
        note = " (target changed since recorded)" if self.target_changed else ""
        print(f"{self.status:<18} {self.property:<28} {self.path}{note}\n{'':<18} {self.detail}", file=out)


@dataclass
class ReplayReport:
    outcomes: list[Outcome] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for o in self.outcomes:
            out[o.status] = out.get(o.status, 0) + 1
        return out

    @property
    def exit_code(self) -> int:
        """A case that cannot replay here is bad input; one still failing is a finding."""
        counts = self.counts()
        if counts.get("error") or counts.get("missing"):
            return BAD_INPUT
        return FINDINGS if any(o.failing for o in self.outcomes) else OK

    def write_summary(self, out: TextIO) -> None:
        summary = ", ".join(f"{n} {s}" for s, n in sorted(self.counts().items())) or "no cases"
        print(f"\n{len(self.outcomes)} case(s): {summary}", file=out)
