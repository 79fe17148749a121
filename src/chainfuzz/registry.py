"""The property registry and the ``@chainfuzz.property`` decorator.

A property is one function registered under a stable dotted id. The runner asks the registry
which properties apply to a target and which Hypothesis strategy feeds each one. Properties
come from three places, and only from where the user says: the built-in ones
(`chainfuzz.properties`), installed packages (modules named in the ``chainfuzz.properties``
entry-point group) and folders given with ``--property-dir`` (every ``*.py`` not starting
with ``_``). A property renamed keeps its old id as an alias, so old case files replay.
"""

from __future__ import annotations

import importlib
import importlib.util
import pkgutil
import sys
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any, Callable, Iterable

from . import kinds
from .errors import UsageError

SEVERITIES = ("error", "warning")
ENTRY_POINTS = "chainfuzz.properties"


@dataclass(frozen=True)
class Property:
    """A registered invariant: ``check(ctx, case)`` raises `Failure` when it does not hold."""

    id: str
    check: Callable[[Any, dict], None]
    inputs: Callable[[Any], Any]
    applies_to: str
    severity: str
    description: str
    module: str = field(compare=False, default="")
    aliases: tuple[str, ...] = ()
    examples: Callable[[Any], list] | None = None  # ctx -> boundary cases checked before any search


_REGISTRY: dict[str, Property] = {}
_ALIASES: dict[str, str] = {}  # old id -> current id


def property(  # noqa: A001 - the public name mirrors the concept
    id: str,  # noqa: A002
    *,
    inputs: Callable[[Any], Any],
    applies_to: str = "template",
    severity: str = "error",
    aliases: tuple[str, ...] = (),
    examples: Callable[[Any], list] | None = None,
) -> Callable[[Callable], Callable]:
    """Register ``fn(ctx, case)`` as the invariant ``id``.

    ``inputs(ctx)`` returns the Hypothesis strategy of cases for a target; ``applies_to`` names
    the kind of target it needs (a row of `chainfuzz.kinds.AVAILABLE_KINDS`): "template",
    "tokenizer", "chain" (a template with a tokenizer, or mistral-common's request encoder)
    or "engine" (a model folder with weights). ``aliases`` are ids it had before a rename.
    ``examples(ctx)``, if given, lists boundary cases checked before the search draws any
    (empty texts, every role alone...): Hypothesis reaches them late or never by chance.
    The docstring of ``fn`` is the property's definition shown by ``chainfuzz properties``.
    """
    if applies_to not in kinds.AVAILABLE_KINDS:
        raise ValueError(f"applies_to must be one of {tuple(kinds.names())}, not {applies_to!r}")
    if severity not in SEVERITIES:
        raise ValueError(f"severity must be one of {SEVERITIES}, not {severity!r}")
    if id.count(".") < 1:
        raise ValueError(f"property ids are dotted, like 'template.renders'; got {id!r}")

    def decorate(fn: Callable) -> Callable:
        existing = _REGISTRY.get(id)
        if existing is not None and existing.module != fn.__module__:
            raise ValueError(f"property {id!r} is already registered by {existing.module}")
        doc = " ".join((fn.__doc__ or "").split())
        _REGISTRY[id] = Property(id, fn, inputs, applies_to, severity, doc, fn.__module__, tuple(aliases),
                                 examples)
        _ALIASES.update({alias: id for alias in aliases})
        return fn

    return decorate


def all_properties() -> list[Property]:
    """Every registered property, built-in and user-defined, sorted by id."""
    load_properties()
    return [_REGISTRY[k] for k in sorted(_REGISTRY)]


def get(prop_id: str) -> Property:
    """The property ``prop_id`` names (its id, or an id it had before a rename)."""
    load_properties()
    try:
        return _REGISTRY[_ALIASES.get(prop_id, prop_id)]
    except KeyError:
        known = ", ".join(sorted(_REGISTRY))
        raise UsageError(f"unknown property {prop_id!r} (known: {known})") from None


def select(ids: list[str] | None, applies_to: set[str]) -> list[Property]:
    """The properties to run on a target of kinds ``applies_to``: the named ones (all of
    them, or every registered one) that apply to it. An unknown name is a `UsageError`."""
    chosen = [get(i) for i in ids] if ids else all_properties()
    return [p for p in chosen if p.applies_to in applies_to]


_loaded_dirs: set[Path] = set()
_entry_points_loaded = False


def load_properties(dirs: Iterable[Path | str] = ()) -> None:
    """Import the built-in properties, the modules of the ``chainfuzz.properties`` entry-point
    group, and every ``*.py`` in ``dirs`` (each folder once per process)."""
    import chainfuzz.properties as builtin

    global _entry_points_loaded
    for info in pkgutil.iter_modules(builtin.__path__):
        importlib.import_module(f"{builtin.__name__}.{info.name}")
    if not _entry_points_loaded:
        _entry_points_loaded = True
        for ep in metadata.entry_points(group=ENTRY_POINTS):
            try:
                ep.load()
            except Exception as exc:
                raise UsageError(f"property plugin {ep.name} ({ep.value}) failed to import: "
                                 f"{type(exc).__name__}: {exc}") from exc
    for d in dirs:
        d = Path(d).resolve()
        if d in _loaded_dirs:
            continue
        if not d.is_dir():
            raise UsageError(f"--property-dir {d}: not a folder")
        _loaded_dirs.add(d)
        for path in sorted(d.glob("*.py")):
            if not path.name.startswith("_"):
                _import_user_module(path)


def _import_user_module(path: Path) -> None:
    name = f"chainfuzz_user_properties.{path.stem}"
    if name in sys.modules:
        return
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise UsageError(f"cannot import property module {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        del sys.modules[name]
        raise UsageError(f"property module {path} failed to import: {type(exc).__name__}: {exc}") from exc
