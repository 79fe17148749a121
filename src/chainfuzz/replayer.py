"""Re-running recorded cases: does each defect still show, or is it fixed?

A case file may come from anyone: it is read with bounds (`cases.read`: a file that is not a
usable case gets the status ``unreadable``, and the rest of a folder replays), and replay says
which paths and URLs each case will read or contact (`touches`) before it runs it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

from hypothesis.errors import UnsatisfiedAssumption

from . import cases, registry, schema
from .context import Context
from .errors import ChainfuzzError, Failure
from .kinds import kind
from .report import Outcome, ReplayReport, Touch
from .targets import load_target

OnTouch = Callable[[Path, list[Touch]], None]


def replay(path: Path, on_touch: OnTouch | None = None) -> Outcome:
    """Run the recorded property once on the recorded input against the target as it is now.
    ``on_touch`` sees the paths and URLs the case names before anything is opened."""
    try:
        rec = cases.read(path)
    except cases.UnreadableCase as exc:
        return Outcome(path, "?", "unreadable", str(exc))
    seen = touches(rec, path)
    if on_touch:
        on_touch(path, seen)
    try:
        return _replay(path, rec, seen)
    except ChainfuzzError as exc:
        return Outcome(path, rec["property"], "error", str(exc), touches=seen)
    except Exception as exc:  # noqa: BLE001 - chainfuzz failing on one case must not end the folder
        return Outcome(path, rec["property"], "error",
                       f"chainfuzz failed on this case: {type(exc).__name__}: {exc}", touches=seen)


def _replay(path: Path, rec: dict, seen: list[Touch]) -> Outcome:
    prop = registry.get(rec["property"])
    where = cases.resolve_path(rec["target"]["path"], path)
    if not where.exists():
        return Outcome(path, prop.id, "missing", f"target {where} is not on this machine", touches=seen)
    target = load_target(where, rec["target"].get("template_name"))
    changed = target.sha256 != rec["target"].get("sha256")
    ctx = Context(target, engines=tuple(rec["target"].get("engines") or ("transformers",)),
                  parsers=tuple(rec["target"].get("parsers") or ()))
    try:
        if absent := kind(prop.applies_to).missing(ctx, rec["target"]):
            return Outcome(path, prop.id, "missing", absent, changed, touches=seen)
        return _outcome(path, prop, ctx, rec, changed, seen)
    finally:
        ctx.close()


def touches(rec: dict, case_file: Path) -> list[Touch]:
    """The paths and URLs replaying ``rec`` reads or contacts. A path outside the project the
    case file lives in (the folder holding its crash folder) and outside chainfuzz's cache, and
    every URL, is marked: a case from elsewhere can name ``/etc/...`` or a server to call, and
    replay does as it says (a user's own cases name their own targets), but says so first."""
    from .corpus import cache_dir

    where = cases.resolve_path(rec["target"]["path"], case_file)
    real = os.path.realpath(where)
    project = os.path.dirname(os.path.dirname(os.path.realpath(case_file)))
    near = any(_under(real, root) for root in (project, os.path.realpath(cache_dir())))
    out = [Touch(os.path.normpath(where), "" if near else "outside the case's project and the chainfuzz cache")]
    for spec in rec["target"].get("engines") or []:
        if "://" in spec:
            out.append(Touch(spec, "a server to contact"))
    return out


def _under(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def replay_all(paths: list[Path], on_outcome=None, on_touch: OnTouch | None = None) -> ReplayReport:
    """Replay every case file under ``paths``; ``on_touch`` sees what each case will touch
    before it runs, ``on_outcome`` each outcome as it is known."""
    report = ReplayReport()
    for path in cases.case_files(paths):
        outcome = replay(path, on_touch)
        report.outcomes.append(outcome)
        if on_outcome:
            on_outcome(outcome)
    return report


def _outcome(path: Path, prop, ctx: Context, rec: dict, changed: bool, seen: list[Touch]) -> Outcome:
    try:
        prop.check(ctx, rec["input"])
    except Failure as f:
        key = schema.finding_key(f.key, rec["input"], f)  # as the search recorded it
        status = "fails" if cases.same_key(rec.get("key"), key) else "fails-differently"
        return Outcome(path, prop.id, status, f.message, changed, seen)
    except UnsatisfiedAssumption as skip:  # chainfuzz.Skip, or Hypothesis' own assume/reject
        return Outcome(path, prop.id, "skipped", f"the input no longer applies: {skip}", changed, seen)
    except Exception as exc:  # a property bug must not hide the other cases' results
        return Outcome(path, prop.id, "error", f"{type(exc).__name__}: {exc}", changed, seen)
    return Outcome(path, prop.id, "fixed", "the property holds now", changed, seen)
