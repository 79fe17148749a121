"""Every command's results and how they are shown: the one place output and exit codes are made.

``check`` fills a `CheckReport`, ``sweep`` a `SweepReport`, ``fuzz`` a `FuzzReport` and
``replay`` a `ReplayReport`; each says its own exit code (`exit_code`) and is written as a
human-readable text (``write_human`` / ``markdown``) or JSON (``to_json``) here.

Text from templates and targets (messages, names, paths, server answers) goes through
`internal.text.printable` before it reaches a terminal, so a template cannot clear the screen
or forge a line of the report; JSON documents are written with `internal.text.dumps_json`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from .internal.text import clip_value, printable

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
SHOWN_LIMIT = 2000  # characters of any other text from a target shown on a terminal


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
    written: set[str] = field(default_factory=set)  # the case files this run wrote (not found there)
    ran: dict[str, list[str]] = field(default_factory=dict)
    json_keys: dict[str, str] = field(default_factory=dict)  # label -> key in --json's stats
    unavailable: dict[str, str] = field(default_factory=dict)
    # What the template refuses, as learned (`template.constraints.Accepts.summary`): the
    # shapes its properties other than template.renders were not fed.
    refuses: str = ""

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
    gain: int = 0  # new behaviours and defects its searches found (`runner.Search.gain`)
    shrink_seconds: float = 0.0  # of `seconds`, shrinking findings: not charged to the budget

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
            reproducer = f.to_json()  # free text clipped where the finding was made
            item = {"property": f.property, "severity": f.severity, "message": f.message,
                    "reproducer": {**reproducer, "case_file": t.cases.get(f.signature)}}
            if many:
                item["target"] = t.target.name
            failures.append(item)
        stats = {
            "seed": self.seed,
            "seconds": round(self.seconds, 3),
            "interrupted": self.interrupted,
            "internal_errors": [clip_value(e) for e in self.internal_errors],
            "targets": {t.target.name: {r.property.id: r.to_json() for r in t.results}
                        for t in self.targets},
        }
        refusing = {t.target.name: t.refuses for t in self.targets if t.refuses}
        if refusing:
            stats["refuses"] = refusing
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
            print(f"internal error: {printable(line, SHOWN_LIMIT)}", file=out)
        if self.interrupted:
            print("interrupted: results above are partial", file=out)


# A property checked on less of what it was fed than this is mostly blind: the report says why.
BLIND = 0.8


def _target_table(t: TargetReport, out: TextIO) -> None:
    print(f"\n{printable(t.target.name)}  ({printable(t.target.path)}, sha256 {t.target.sha256[:12]})",
          file=out)
    for label, names in t.ran.items():
        print(f"  {label}: {printable(', '.join(names), SHOWN_LIMIT)}", file=out)
    for impl, why in t.unavailable.items():
        print(f"  not run: {printable(impl)}: {printable(why, SHOWN_LIMIT)}", file=out)
    if t.refuses:
        print(f"  the template {printable(t.refuses, SHOWN_LIMIT)}; only template.renders was fed those",
              file=out)
    width = max([len(r.property.id) for r in t.results] + [8])
    print(f"  {'property':<{width}}  {'examples':>8}  {'skipped':>7}  {'checked':>7}  {'errors':>6}  "
          f"{'warnings':>8}  {'time':>6}", file=out)
    for r in t.results:
        errs = sum(f.severity == "error" for f in r.findings)
        warns = sum(f.severity == "warning" for f in r.findings)
        status = "  INTERNAL ERROR" if r.internal_error else ""
        checked = "–" if r.checked is None else f"{r.checked:.0%}"
        print(f"  {printable(r.property.id):<{width}}  {r.examples:>8}  {r.skipped:>7}  {checked:>7}  {errs:>6}  "
              f"{warns:>8}  {r.seconds:>5.1f}s{status}", file=out)
    for r in t.results:
        if r.checked is not None and r.checked < BLIND and r.why_unchecked():
            print(f"  {printable(r.property.id)} checked {r.checked:.0%} of its inputs; most were "
                  f"skipped because: {printable(r.why_unchecked(), SHOWN_LIMIT)}", file=out)


def _finding_block(t: TargetReport, f: Finding, out: TextIO) -> None:
    print(f"\n  {f.severity.upper()} {printable(f.property)} [{f.signature}]: "
          f"{printable(f.message, SHOWN_LIMIT)}", file=out)
    print(f"    minimal input: {_shown_json(f.case, None)}", file=out)
    if f.rendered is not None:
        shown = f.rendered if len(f.rendered) <= RENDERED_LIMIT else f.rendered[:RENDERED_LIMIT] + " …"
        print(f"    rendered: {_shown_json(shown)}", file=out)
    print(f"    observed: {_shown_json(f.observed)}", file=out)
    print(f"    expected: {_shown_json(f.expected)}", file=out)
    if f.signature in t.cases:
        print(f"    case: {printable(t.cases[f.signature])}", file=out)


def _shown_json(value: object, limit: int | None = SHOWN_LIMIT) -> str:
    """``value`` as one line of JSON for a terminal (the minimal input is shown whole)."""
    try:
        text = json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError, RecursionError):
        text = repr(clip_value(value))
    return printable(text, limit)


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
    not_run: bool = False  # the sweep's budget ran out before this row started
    gain: int = 0  # new behaviours and defects its check found: the sweep's second pass goes by it
    shrink_seconds: float = 0.0  # of `seconds`, shrinking findings (the sweep's clock stops for it)

    def merge(self, later: "Row") -> None:
        """Add a later pass over the same target: its examples, time and new findings."""
        known = {f["signature"] for f in self.findings}
        self.findings += [f for f in later.findings if f["signature"] not in known]
        self.examples += later.examples
        self.seconds += later.seconds
        self.shrink_seconds += later.shrink_seconds
        self.gain += later.gain
        self.internal_errors += [e for e in later.internal_errors if e not in self.internal_errors]

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
    def bad_input(self) -> str:
        """Why the sweep checked nothing ("" if it checked something): every target failed to
        load, so its table of ``n/a`` rows vouches for nothing."""
        ran = [r for r in self.rows if not r.not_run]
        if self.rows and not ran:
            return f"the budget ran out before any of the {len(self.rows)} target(s) was checked"
        if ran and all(r.error for r in ran):
            return f"none of the {len(ran)} target(s) could be checked (first: " \
                   f"{ran[0].name}: {ran[0].error})"
        return ""

    @property
    def exit_code(self) -> int:
        if self.bad_input:
            return BAD_INPUT
        return exit_code(internal=any(r.internal_errors for r in self.rows),
                         errors=any(f["severity"] == "error" for r in self.rows for f in r.findings))

    def to_json(self) -> dict:
        return {"corpus": self.corpus, "seed": self.seed, "seconds": round(self.seconds, 1),
                "templates": {r.name: {"findings": r.findings, "examples": r.examples,
                                       "seconds": round(r.seconds, 2), "error": r.error,
                                       "not_run": r.not_run, "internal_errors": r.internal_errors}
                              for r in self.rows}}

    def markdown(self) -> str:
        """Findings per target: ``2E 1W`` is two error and one warning findings, ``·`` none,
        ``n/a`` a target that could not be checked, ``–`` one the budget left unchecked."""
        short = [p.split(".", 1)[1] for p in self.properties]
        lines = ["| target | " + " | ".join(short) + " |", "|---" * (len(short) + 1) + "|"]
        for r in sorted(self.rows, key=lambda r: r.name.lower()):
            if r.error or r.not_run:
                cell = "–" if r.not_run else "n/a"
                lines.append(f"| {printable(r.name)} | " + " | ".join([cell] * len(short)) + " |")
                continue
            cells = []
            for p in self.properties:
                e, w = r.count(p, "error"), r.count(p, "warning")
                cells.append(" ".join(x for x in (f"{e}E" if e else "", f"{w}W" if w else "") if x) or "·")
            lines.append(f"| {printable(r.name)} | " + " | ".join(cells) + " |")
        failing = [sum(1 for r in self.rows if r.count(p, "error")) for p in self.properties]
        lines.append("| **targets with errors** | " + " | ".join(map(str, failing)) + " |")
        n_err = sum(r.count(p, "error") for r in self.rows for p in self.properties)
        n_warn = sum(r.count(p, "warning") for r in self.rows for p in self.properties)
        lines.append("")
        unchecked = sum(r.not_run for r in self.rows)
        lines.append(f"{len(self.rows)} targets, {n_err} error and {n_warn} warning findings, "
                     f"{self.seconds:.0f}s wall time (seed {self.seed})."
                     + (f" {unchecked} not run: the budget ran out first." if unchecked else ""))
        if self.bad_input:
            lines.append(f"Nothing checked: {printable(self.bad_input, SHOWN_LIMIT)}.")
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
    gain: int = 0  # new coverage features and defects: the second pass of `fuzz` goes by it
    coverage: int | None = None  # libFuzzer's coverage features at the end (its last "ft:")

    def merge(self, later: "HarnessRun") -> None:
        """Add a second run of the same harness."""
        self.budget += later.budget
        self.executions += later.executions
        self.checked += later.checked
        self.seconds += later.seconds
        self.wall += later.wall
        self.findings += later.findings
        self.known += later.known
        self.gain += later.gain
        self.coverage = later.coverage if later.coverage is not None else self.coverage
        self.internal_error = self.internal_error or later.internal_error

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
        print(f"fuzz {printable(self.path)}", file=out)
        for r in self.runs:
            print(f"\n  {r.harness:<10} {r.executions} executions in {r.seconds:.1f}s "
                  f"({r.rate:.0f}/s, budget {r.budget}s), {r.checked} inputs checked; "
                  f"{len(r.findings)} new finding(s), {len(r.known)} already recorded", file=out)
            for f in r.findings:
                print(f"    {f['severity'].upper():<7} {printable(f['property'])}: "
                      f"{printable(f['message'], SHOWN_LIMIT)}", file=out)
                print(f"            {printable(f['path']) if f['written'] else '(not written)'}", file=out)
            for f in r.known:
                print(f"    known   {printable(f['property'])}: {printable(f['message'], SHOWN_LIMIT)} "
                      f"({f['signature']})", file=out)
            if r.internal_error:
                print(f"    INTERNAL ERROR {printable(r.internal_error, SHOWN_LIMIT)}", file=out)
        written = [f for f in self.findings if f["written"]]
        errors = sum(f["severity"] == "error" for f in written)
        print(f"\n{len(written)} case(s) written ({errors} error(s), {len(written) - errors} warning(s)); "
              f"{sum(len(r.known) for r in self.runs)} defect(s) found again, already recorded",
              file=out)


# --- replay -------------------------------------------------------------------------------

@dataclass(frozen=True)
class Touch:
    """A path a replay reads or a URL it contacts; ``mark`` says why it deserves a look
    ("" for the case's own project or chainfuzz's cache)."""

    what: str
    mark: str = ""

    def __str__(self) -> str:
        return f"{self.what} [{self.mark}]" if self.mark else self.what


def write_touches(path: Path, touches: list[Touch], out: TextIO) -> None:
    """Before a case runs: the marked paths and URLs it will read or contact."""
    marked = [t for t in touches if t.mark]
    if marked:
        print(f"{'caution':<18} {printable(path)} will touch "
              f"{printable('; '.join(map(str, marked)), SHOWN_LIMIT)}", file=out, flush=True)


# Replay statuses that say the case could not be replayed here: bad input, exit code 2.
NOT_REPLAYED = ("unreadable", "missing", "error")


@dataclass
class Outcome:
    """One case replayed. ``status``: "fails" (same defect), "fails-differently", "fixed",
    "skipped", "missing" (the target or an implementation is not on this machine), "error"
    (the case names something that cannot be loaded, or chainfuzz failed on it) or
    "unreadable" (the file is not a usable case file: not a regular file, too large, not
    UTF-8 JSON, or fields of the wrong type). ``touches``: the paths and URLs it named."""

    path: Path
    property: str
    status: str
    detail: str
    target_changed: bool = False
    touches: list[Touch] = field(default_factory=list)

    @property
    def failing(self) -> bool:
        return self.status in ("fails", "fails-differently")

    def write_human(self, out: TextIO) -> None:
        """Printed as it comes: a replay of many engine cases takes a while."""
        note = " (target changed since recorded)" if self.target_changed else ""
        print(f"{self.status:<18} {printable(self.property):<28} {printable(self.path)}{note}\n"
              f"{'':<18} {printable(self.detail, SHOWN_LIMIT)}", file=out)
        if self.touches:
            print(f"{'':<18} touches: {printable('; '.join(map(str, self.touches)), SHOWN_LIMIT)}",
                  file=out)


@dataclass
class ReplayReport:
    outcomes: list[Outcome] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for o in self.outcomes:
            out[o.status] = out.get(o.status, 0) + 1
        return out

    @property
    def bad_input(self) -> str:
        """Why the replay was bad input ("" if it was not): cases that could not be replayed."""
        counts = self.counts()
        stuck = {s: counts[s] for s in NOT_REPLAYED if counts.get(s)}
        if not stuck:
            return ""
        return (f"{sum(stuck.values())} of {len(self.outcomes)} case(s) could not be replayed ("
                + ", ".join(f"{n} {s}" for s, n in stuck.items()) + ")")

    @property
    def exit_code(self) -> int:
        """A case that cannot replay here (unreadable, missing, error) is bad input, and
        outranks a case still failing (a finding): the run could not vouch for every case, and
        the summary lists both."""
        if self.bad_input:
            return BAD_INPUT
        return FINDINGS if any(o.failing for o in self.outcomes) else OK

    def write_summary(self, out: TextIO) -> None:
        summary = ", ".join(f"{n} {s}" for s, n in sorted(self.counts().items())) or "no cases"
        print(f"\n{len(self.outcomes)} case(s): {summary}", file=out)
