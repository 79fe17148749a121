"""Re-running recorded cases: does each defect still show, or is it fixed?"""

from __future__ import annotations

from pathlib import Path

from hypothesis.errors import UnsatisfiedAssumption

from . import cases, registry
from .context import Context
from .errors import ChainfuzzError, Failure
from .kinds import kind
from .report import Outcome, ReplayReport
from .targets import load_target


def replay(path: Path) -> Outcome:
    """Run the recorded property once on the recorded input against the target as it is now."""
    try:
        rec = cases.read(path)
        prop = registry.get(rec["property"])
        where = cases.resolve_path(rec["target"]["path"], path)
        if not where.exists():
            return Outcome(path, prop.id, "missing", f"target {where} is not on this machine")
        target = load_target(where, rec["target"].get("template_name"))
    except ChainfuzzError as exc:
        return Outcome(path, "?", "error", str(exc))
    changed = target.sha256 != rec["target"].get("sha256")
    ctx = Context(target, engines=tuple(rec["target"].get("engines") or ("transformers",)))
    try:
        if absent := kind(prop.applies_to).missing(ctx, rec["target"]):
            return Outcome(path, prop.id, "missing", absent, changed)
        return _outcome(path, prop, ctx, rec, changed)
    finally:
        ctx.close()


def replay_all(paths: list[Path], on_outcome=None) -> ReplayReport:
    """Replay every case file under ``paths``; ``on_outcome`` sees each as it is known."""
    report = ReplayReport()
    for path in cases.case_files(paths):
        outcome = replay(path)
        report.outcomes.append(outcome)
        if on_outcome:
            on_outcome(outcome)
    return report


def _outcome(path: Path, prop, ctx: Context, rec: dict, changed: bool) -> Outcome:
    try:
        prop.check(ctx, rec["input"])
    except Failure as f:
        same = f.key == rec.get("key")
        return Outcome(path, prop.id, "fails" if same else "fails-differently", f.message, changed)
    except UnsatisfiedAssumption as skip:  # chainfuzz.Skip, or Hypothesis' own assume/reject
        return Outcome(path, prop.id, "skipped", f"the input no longer applies: {skip}", changed)
    except Exception as exc:  # a property bug must not hide the other cases' results
        return Outcome(path, prop.id, "error", f"{type(exc).__name__}: {exc}", changed)
    return Outcome(path, prop.id, "fixed", "the property holds now", changed)
