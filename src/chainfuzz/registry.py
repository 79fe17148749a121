"""The property registry and the ``@chainfuzz.property`` decorator.

A property is one function registered under a stable dotted id. The runner asks the registry
which properties apply to a target and which Hypothesis strategy feeds each one.
"""

from __future__ import annotations

import importlib
import importlib.util
import pkgutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from .errors import UsageError

SEVERITIES = ("error", "warning")
APPLIES_TO = ("template", "tokenizer", "chain", "engine")


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


_REGISTRY: dict[str, Property] = {}


def property(  # noqa: A001 - the public name mirrors the concept
    id: str,  # noqa: A002
    *,
    inputs: Callable[[Any], Any],
    applies_to: str = "template",
    severity: str = "error",
) -> Callable[[Callable], Callable]:
    """Register ``fn(ctx, case)`` as the invariant ``id``.

    ``inputs(ctx)`` returns the Hypothesis strategy of cases for a target; ``applies_to`` names
    the target capability it needs: "template", "tokenizer", "chain" (a template with a
    tokenizer, or mistral-common's request encoder) or "engine" (a model folder with weights). The docstring of ``fn`` is the property's
    definition shown by ``chainfuzz properties``.
    """
    if applies_to not in APPLIES_TO:
        raise ValueError(f"applies_to must be one of {APPLIES_TO}, not {applies_to!r}")
    if severity not in SEVERITIES:
        raise ValueError(f"severity must be one of {SEVERITIES}, not {severity!r}")
    if id.count(".") < 1:
        raise ValueError(f"property ids are dotted, like 'template.renders'; got {id!r}")

    def decorate(fn: Callable) -> Callable:
        existing = _REGISTRY.get(id)
        if existing is not None and existing.module != fn.__module__:
            raise ValueError(f"property {id!r} is already registered by {existing.module}")
        doc = " ".join((fn.__doc__ or "").split())
        _REGISTRY[id] = Property(id, fn, inputs, applies_to, severity, doc, fn.__module__)
        return fn

    return decorate


def all_properties() -> list[Property]:
    """Every registered property, built-in and user-defined, sorted by id."""
    load_properties()
    return [_REGISTRY[k] for k in sorted(_REGISTRY)]


def get(prop_id: str) -> Property:
    load_properties()
    try:
        return _REGISTRY[prop_id]
    except KeyError:
        known = ", ".join(sorted(_REGISTRY))
        raise UsageError(f"unknown property {prop_id!r} (known: {known})") from None


def select(ids: list[str] | None, applies_to: set[str]) -> list[Property]:
    """The properties to run on a target of kinds ``applies_to``: the named ones (all of
    them, or every registered one) that apply to it. An unknown name is a `UsageError`."""
    chosen = [get(i) for i in ids] if ids else all_properties()
    return [p for p in chosen if p.applies_to in applies_to]


_loaded_dirs: set[Path] = set()


def load_properties(extra_dirs: list[Path] | None = None) -> None:
    """Import the built-in properties and every ``*.py`` in ``./properties`` and ``extra_dirs``."""
    import chainfuzz.properties as builtin

    for info in pkgutil.iter_modules(builtin.__path__):
        importlib.import_module(f"{builtin.__name__}.{info.name}")
    builtin_dirs = {Path(p).resolve() for p in builtin.__path__}
    for d in [Path.cwd() / "properties", *(extra_dirs or [])]:
        d = d.resolve()
        if d in builtin_dirs or d in _loaded_dirs or not d.is_dir():
            continue
        _loaded_dirs.add(d)
        for path in sorted(d.glob("*.py")):
            if path.name.startswith("_"):
                continue
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
