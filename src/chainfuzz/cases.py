"""Crash records: readable, version-independent JSON reproducers in ``crashes/``.

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
import platform
import re
from importlib import metadata
from pathlib import Path

from . import registry, tokenization
from .errors import ChainfuzzError, UsageError
from .internal.runner import Finding
from .targets import Target

FORMAT = 1
_VERSIONED = ("chainfuzz", "transformers", "jinja2", "minijinja", "hypothesis", "tokenizers",
              "llama-cpp-python", "sentencepiece", "mistral-common")


def versions() -> dict[str, str]:
    """Versions of the packages that decide a finding, recorded with every case."""
    out = {"python": platform.python_version()}
    for name in _VERSIONED:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def record(finding: Finding, target: Target, crashes_dir: Path, *, engines: tuple[str, ...] = ()) -> dict:
    """The JSON record of ``finding``; the target path is stored relative to ``crashes_dir``.
    An engine finding also stores the ``--engine`` specs it was found with, for replay."""
    fingerprint = dict(target.fingerprint)
    fingerprint["path"] = portable_path(Path(target.path), crashes_dir)
    if target.tokenizer is not None and registry.get(finding.property).applies_to != "template":
        # The implementations the finding was checked with: a replay without one is "missing".
        fingerprint["impls"] = [t.impl for t in tokenization.load(target.tokenizer).impls]
    if registry.get(finding.property).applies_to == "engine":
        fingerprint["engines"] = list(engines)
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
        "versions": versions(),
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


def is_case(path: Path) -> bool:
    """Whether ``path`` looks like a chainfuzz case file (read from its first bytes)."""
    try:
        with path.open(encoding="utf-8") as f:
            return '"chainfuzz_case"' in f.read(200)
    except (OSError, UnicodeDecodeError):
        return False


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
