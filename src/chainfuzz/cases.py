"""Case files: readable, version-independent JSON reproducers of findings of every severity,
in ``crashes/`` by default.

A record holds the property id, the target's fingerprint, the package versions that found it,
the minimal input, what was observed and expected, and a signature that de-duplicates it. The
file name is ``<property>--<target>--<signature>.json``, so a defect found again is not
written twice. ``status`` is "open" until the defect is fixed; pytest runs open cases as strict
xfails and fixed ones as regression tests.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
from pathlib import Path

from . import registry
from .casefile import FORMAT, is_case
from .errors import ChainfuzzError, UsageError
from .internal.runner import Finding
from .kinds import core_versions, kind

__all__ = ["FORMAT", "case_files", "file_name", "is_case", "read", "record", "resolve_path", "write"]


def record(finding: Finding, ctx, crashes_dir: Path) -> dict:
    """The JSON record of ``finding`` on ``ctx``'s target; the target path is stored relative
    to ``crashes_dir``. The property's kind adds what replay needs to rebuild the same
    implementations (`chainfuzz.kinds.Kind.record`) and the versions that decide it."""
    row = kind(registry.get(finding.property).applies_to)
    fingerprint = dict(ctx.target.fingerprint)
    fingerprint["path"] = portable_path(Path(ctx.target.path), crashes_dir)
    fingerprint.update(row.record(ctx))
    return {
        "chainfuzz_case": FORMAT,
        "property": finding.property,
        "severity": finding.severity,
        "signature": finding.signature,
        "status": "open",
        "message": finding.message,
        "key": finding.key,
        "target": fingerprint,
        "input": finding.case,
        "observed": finding.observed,
        "expected": finding.expected,
        "rendered": finding.rendered,
        "versions": {**core_versions(), **row.versions(ctx)},
        "found": dt.datetime.now(dt.timezone.utc).replace(microsecond=0).isoformat(),
    }


def file_name(rec: dict) -> str:
    target = re.sub(r"[^A-Za-z0-9_.-]+", "_", rec["target"]["name"])[:60]
    return f"{rec['property']}--{target}--{rec['signature']}.json"


def write(rec: dict, crashes_dir: Path) -> tuple[Path, bool]:
    """Write ``rec`` unless a case with its signature exists; returns (path, written)."""
    path = crashes_dir / file_name(rec)
    if path.exists():
        return path, False
    tmp = path.with_suffix(".tmp")
    try:
        crashes_dir.mkdir(parents=True, exist_ok=True)
        tmp.write_text(json.dumps(rec, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        os.replace(tmp, path)
    except OSError as exc:
        raise ChainfuzzError(f"cannot write case file {path}: {exc.strerror}") from None
    return path, True


def read(path: Path) -> dict:
    """Load and validate one case file; `UsageError` if it is not a chainfuzz case."""
    try:
        rec = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UsageError(f"{path}: not a readable case file ({exc})") from None
    missing = [k for k in ("chainfuzz_case", "property", "target", "input") if k not in rec]
    if not isinstance(rec, dict) or missing:
        raise UsageError(f"{path}: not a chainfuzz case (missing {', '.join(missing)})")
    return rec


def case_files(paths: list[Path]) -> list[Path]:
    """The case files named by ``paths`` (files, or folders searched for ``*.json``)."""
    out = []
    for p in paths:
        if p.is_dir():
            out += sorted(q for q in p.rglob("*.json") if is_case(q))
        elif p.exists():
            out.append(p)
        else:
            raise UsageError(f"{p}: no such file or directory")
    return out


def portable_path(target: Path, crashes_dir: Path) -> str:
    """``target`` as a record stores it: under the cache as ``cache:...``, else relative."""
    from .corpus import cache_dir

    target = target.resolve()
    try:
        return "cache:" + target.relative_to(cache_dir().resolve()).as_posix()
    except ValueError:
        pass
    try:
        return Path(os.path.relpath(target, crashes_dir.resolve())).as_posix()
    except ValueError:  # another drive on Windows
        return str(target)


def resolve_path(stored: str, case_file: Path) -> Path:
    """Where a record's target lives on this machine."""
    from .corpus import cache_dir

    if stored.startswith("cache:"):
        return cache_dir() / stored.removeprefix("cache:")
    p = Path(stored)
    return p if p.is_absolute() else (case_file.parent / p)
