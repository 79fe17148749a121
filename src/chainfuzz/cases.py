"""Case files: readable, version-independent JSON reproducers of findings of every severity,
in ``crashes/`` by default.

A record holds the property id, the target's fingerprint, the package versions that found it,
the minimal input, what was observed and expected, and a signature that de-duplicates it. The
file name is ``<property>--<target>--<signature>.json``, so a defect found again is not
written twice. ``status`` is "open" until the defect is fixed; pytest runs open cases as strict
xfails and fixed ones as regression tests.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import errno
import json
import os
import re
import secrets
import stat
from pathlib import Path

from . import registry
from .casefile import FORMAT, is_case
from .errors import ChainfuzzError, TargetError, UsageError
from .internal import files
from .internal.runner import Finding
from .internal.text import clip, dumps_json, json_type, printable
from .kinds import core_versions, kind
from .schema import legacy_key

__all__ = ["FORMAT", "UnreadableCase", "case_files", "file_name", "is_case", "read", "record",
           "resolve_path", "same_key", "write"]


# What `read` accepts: a case file is JSON of at most this many bytes (the largest real one
# is ~30 KB; a record's free text is clipped to 20,000 characters when found).
READ_LIMIT = files.JSON_BYTES


class UnreadableCase(UsageError):
    """A file that should be a case file and is not one: replay gives it its own status."""


def record(finding: Finding, ctx, crashes_dir: Path) -> dict:
    """The JSON record of ``finding`` on ``ctx``'s target; the target path is stored relative
    to ``crashes_dir``. The property's kind adds what replay needs to rebuild the same
    implementations (`chainfuzz.kinds.Kind.record`) and the versions that decide it. Free text
    comes clipped (`internal.runner.make_finding`); the input never is."""
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
        "reproduced": finding.reproduced,
        "minimal": finding.minimal,
        "versions": {**core_versions(), **row.versions(ctx)},
        "found": dt.datetime.now(dt.timezone.utc).replace(microsecond=0).isoformat(),
    }


def same_key(recorded: object, key: str) -> bool:
    """Whether a replay's failure ``key`` is the recorded one (recorded keys are clipped,
    `internal.runner.make_finding`). A key written before keys named their site and input
    tier (``TypeError:...`` for ``TypeError@line 3:...``) matches the key it became
    (`schema.legacy_key`), so old case files keep replaying."""
    if not isinstance(recorded, str):
        return False
    key = clip(key)
    return key == recorded or (legacy_key(recorded) == recorded and legacy_key(key) == recorded)


def file_name(rec: dict) -> str:
    prop = re.sub(r"[^A-Za-z0-9_.-]+", "_", rec["property"])[:80]
    target = re.sub(r"[^A-Za-z0-9_.-]+", "_", rec["target"]["name"])[:60]
    return f"{prop}--{target}--{rec['signature']}.json"


def write(rec: dict, crashes_dir: Path) -> tuple[Path, bool]:
    """Write ``rec`` unless a case with its signature exists; returns (path, written).

    Atomic and race-free: the JSON goes to a temporary file of a name no other writer uses,
    published with a hard link that fails if the case exists, so of several processes writing
    the same signature exactly one writes it (``written``) and none sees a partial file. A
    write that fails (read-only folder, full disk) is a `ChainfuzzError`; cases written
    before stay on disk."""
    path = crashes_dir / file_name(rec)
    if path.exists():
        return path, False
    data = dumps_json(rec).encode("utf-8") + b"\n"  # strict UTF-8: dumps_json escapes surrogates
    tmp = crashes_dir / f".{path.stem[:80]}.{os.getpid()}.{secrets.token_hex(6)}.tmp"
    try:
        crashes_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            return path, _publish(tmp, path)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
    except OSError as exc:
        raise ChainfuzzError(f"cannot write case file {path}: {exc.strerror or exc}") from None


def _publish(tmp: Path, path: Path) -> bool:
    """Give ``tmp`` the name ``path`` unless ``path`` exists; whether this call did."""
    try:
        os.link(tmp, path)
    except FileExistsError:
        return False  # another writer of the same signature won
    except OSError as exc:
        if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV, errno.EMLINK,
                             errno.ENOSYS):
            raise
        if path.exists():  # no hard links on this file system: replace, racing only here
            return False
        os.replace(tmp, path)
    return True


def read(path: Path) -> dict:
    """Load and validate one case file; `UnreadableCase` (one line saying why) if it is not a
    chainfuzz case replay can use: not a regular file (a FIFO is never waited on, a device
    never read), larger than `READ_LIMIT`, not UTF-8, not JSON (or nested too deep), or a
    record whose fields replay needs are missing or of the wrong type."""
    raw = _read_bytes(Path(path))
    try:
        rec = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise UnreadableCase(f"{_shown(path)}: not UTF-8 (byte {exc.start})") from None
    except RecursionError:
        raise UnreadableCase(f"{_shown(path)}: JSON nested too deeply to read") from None
    except ValueError as exc:  # JSONDecodeError, or an integer past Python's digit limit
        raise UnreadableCase(f"{_shown(path)}: not JSON ({clip(str(exc), 200)})") from None
    if not isinstance(rec, dict):
        raise UnreadableCase(f"{_shown(path)}: not a chainfuzz case (a JSON {json_type(rec)}, "
                             "not an object)")
    missing = [k for k in ("chainfuzz_case", "property", "target", "input") if k not in rec]
    if missing:
        raise UnreadableCase(f"{_shown(path)}: not a chainfuzz case (missing {', '.join(missing)})")
    if problem := _field_problem(rec):
        raise UnreadableCase(f"{_shown(path)}: {problem}")
    return rec


def read_or_none(path: str | Path | None) -> dict | None:
    """The case at ``path``, or None when there is none or it cannot be read (a campaign's
    report shows a finding whose file went away without it)."""
    if not path:
        return None
    try:
        return read(Path(path))
    except ChainfuzzError:
        return None


def _read_bytes(path: Path) -> bytes:
    """At most `READ_LIMIT` bytes of the regular file ``path`` (`internal.files`: a FIFO is
    refused rather than waited on, a device never read)."""
    try:
        return files.read_bytes(path, READ_LIMIT)
    except TargetError as exc:
        raise UnreadableCase(printable(exc, 500)) from None


# The fields replay reads, and the types they must have (None: may be null).
_FIELDS = {"chainfuzz_case": (int,), "property": (str,), "target": (dict,), "input": (dict,),
           "key": (str, type(None)), "status": (str,)}
_TARGET_FIELDS = {"path": (str,), "name": (str,), "template_name": (str, type(None)),
                  "sha256": (str, type(None)), "engines": (list, type(None)),
                  "impls": (list, type(None)), "parsers": (list, type(None))}


def _field_problem(rec: dict) -> str:
    """What is wrong with the fields of ``rec`` that replay uses ("" if nothing)."""
    for fields, where, prefix in ((_FIELDS, rec, ""), (_TARGET_FIELDS, rec.get("target"), "target.")):
        for name, types in fields.items():
            if name in where and (not isinstance(where[name], types) or isinstance(where[name], bool)):
                wanted = " or ".join("null" if t is type(None) else json_type(t()) for t in types)
                return f'"{prefix}{name}" is a JSON {json_type(where[name])}, expected {wanted}'
    if "path" not in rec["target"]:
        return 'not a chainfuzz case (missing "target.path")'
    for name in ("engines", "impls", "parsers"):
        if not all(isinstance(x, str) for x in rec["target"].get(name) or []):
            return f'"target.{name}" must be a list of strings'
    if rec["chainfuzz_case"] > FORMAT:
        return f"case format {rec['chainfuzz_case']} is newer than this chainfuzz reads ({FORMAT})"
    return ""


def _shown(path: Path) -> str:
    return printable(str(path), 300)


def case_files(paths: list[Path]) -> list[Path]:
    """The case files named by ``paths``: files as named, and in folders each ``*.json``
    that holds the case marker (`is_case`) or is no regular file at all (a FIFO, a device:
    `read` says why it is unreadable rather than replay passing over it)."""
    out = []
    for p in paths:
        if p.is_dir():
            out += sorted(q for q in p.rglob("*.json") if is_case(q) or _not_a_file(q))
        elif p.exists() or p.is_symlink():
            out.append(p)
        else:
            raise UsageError(f"{_shown(p)}: no such file or directory")
    return out


def _not_a_file(path: Path) -> bool:
    """Neither a regular file nor a folder (``rglob`` lists folders named ``*.json`` too)."""
    try:
        mode = path.stat().st_mode
    except OSError:
        return True  # a dangling link
    return not (stat.S_ISREG(mode) or stat.S_ISDIR(mode))


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
