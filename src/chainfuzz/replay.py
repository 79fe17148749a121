"""Re-running recorded cases: does each defect still show, or is it fixed?"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from hypothesis.errors import UnsatisfiedAssumption

from . import cases, registry
from .context import Context
from .errors import ChainfuzzError, Failure
from .targets import load_target


@dataclass
class Outcome:
    """``status``: "fails" (same defect), "fails-differently", "fixed", "skipped", "missing"
    (the target is not on this machine) or "error"."""

    path: Path
    property: str
    status: str
    detail: str
    target_changed: bool = False

    @property
    def failing(self) -> bool:
        return self.status in ("fails", "fails-differently")


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
    if absent := _absent_impls(ctx, rec["target"].get("impls") or []) or _absent_engines(ctx, prop):
        return Outcome(path, prop.id, "missing", absent, changed)
    try:
        return _outcome(path, prop, ctx, rec, changed)
    finally:
        ctx.close()


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


def _absent_engines(ctx: Context, prop) -> str:
    """Why a recorded engine cannot run here: not installed, or no server at its URL."""
    if prop.applies_to != "engine":
        return ""
    try:
        ctx.engines  # noqa: B018
    except ChainfuzzError as exc:
        return str(exc)
    return ""


def _absent_impls(ctx: Context, needed: list[str]) -> str:
    """Why a recorded tokenizer implementation cannot run here ("" when all can)."""
    if not needed:
        return ""
    try:
        here = {t.impl for t in ctx.tokenizers}
    except ChainfuzzError as exc:
        return str(exc)
    gone = [i for i in needed if i not in here]
    return "; ".join(f"{i} does not run here: {ctx.unavailable.get(i, 'not loaded')}" for i in gone)
