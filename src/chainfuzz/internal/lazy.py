"""Lazy tables of back-ends: a name maps to ``"module:attribute"``, imported on first use.

Target kinds, tokenizer implementations and engines are each one such table (Hypothesis'
``AVAILABLE_PROVIDERS`` is the model), so naming a back-end costs nothing until it is used,
and a missing optional dependency shows only when that back-end is asked for. Third-party
packages add rows through an entry-point group; a built-in name cannot be replaced.
"""

from __future__ import annotations

import importlib
from importlib import metadata

from ..errors import UsageError


class LazyTable:
    """Rows ``name -> "module:attribute"``: the built-in ones, then the entry points of
    ``group`` (read once, when a name is first looked up)."""

    def __init__(self, what: str, builtin: dict[str, str], group: str) -> None:
        self.what = what
        self.builtin = dict(builtin)
        self.group = group
        self._rows: dict[str, str] | None = None
        self._loaded: dict[str, object] = {}

    def rows(self) -> dict[str, str]:
        """Every row, built-in first, in table order."""
        if self._rows is None:
            rows = dict(self.builtin)
            for ep in metadata.entry_points(group=self.group):
                rows.setdefault(ep.name, ep.value)
            self._rows = rows
        return self._rows

    def names(self) -> list[str]:
        return list(self.rows())

    def __contains__(self, name: str) -> bool:
        return name in self.rows()

    def load(self, name: str):
        """The object row ``name`` points to; `UsageError` for a name not in the table.
        The import's own `ImportError` (an optional dependency missing) propagates."""
        if name not in self._loaded:
            try:
                path = self.rows()[name]
            except KeyError:
                raise UsageError(f"unknown {self.what} {name!r} (known: {', '.join(self.names())})") from None
            module, _, attr = path.partition(":")
            obj = importlib.import_module(module)
            for part in attr.split(".") if attr else ():
                obj = getattr(obj, part)
            self._loaded[name] = obj
        return self._loaded[name]


def package_versions(packages: tuple[str, ...] | list[str]) -> dict[str, str]:
    """Installed versions of ``packages`` ("not installed" where absent), for case files."""
    out = {}
    for name in packages:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out
