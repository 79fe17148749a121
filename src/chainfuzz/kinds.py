"""Target kinds: what "template", "tokenizer", "chain", "engine" and "parser" mean, in one table.

A property applies to one kind. Each row of `AVAILABLE_KINDS` names a `Kind` in the package of
its layer, which says everything the rest of chainfuzz needs to know about that kind:

- which targets have it (`Kind.recognises`) and whether its properties can run on one
  (`Kind.usable`: a GGUF whose vocabulary nothing reads still gets its template checked);
- what must be opened before its properties run, where a failure is bad input (`Kind.open`);
- what the report lists as having run, and what could not (`Kind.ran`, `Kind.not_run`);
- what a case file records so replay rebuilds the same implementations (`Kind.record`), and
  why replay cannot on this machine (`Kind.missing`);
- which package versions decide its findings (`Kind.versions`).

Adding a kind is one row here plus one package. Rows are in dependency order: a kind may ask
about the kinds before it (an engine needs a chain to build its prompts).
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

from .internal.lazy import LazyTable, package_versions

if TYPE_CHECKING:
    from .context import Context
    from .targets import Target

AVAILABLE_KINDS = LazyTable("target kind", {
    "template": "chainfuzz.template.kind:TemplateKind",
    "tokenizer": "chainfuzz.tokenization.kind:TokenizerKind",
    "chain": "chainfuzz.tokenization.kind:ChainKind",
    "engine": "chainfuzz.engines.kind:EngineKind",
    "parser": "chainfuzz.parsers.kind:ParserKind",
}, group="chainfuzz.kinds")

# Recorded in every case file, whatever its kind.
CORE_PACKAGES = ("chainfuzz", "hypothesis")


class Kind:
    """One kind of target. Subclasses set ``name`` and override what differs from "nothing
    to open, nothing to record"."""

    name: str = ""
    label: str = ""  # what the report calls the implementations that ran ("" for none)
    json_key: str = ""  # where the --json report lists them
    # Its properties run only when the command names its implementations (``--parser``): a
    # target's own kinds (`Target.kinds`, its case files' fingerprint) leave it out, and a
    # `Context` adds it when the run names some.
    on_request: bool = False

    def recognises(self, target: Target) -> bool:
        """Whether ``target`` has this kind (from what it holds; nothing is loaded)."""
        raise NotImplementedError

    def usable(self, ctx: Context) -> bool:
        """Whether the kind's properties can run on a target that has it."""
        return True

    def open(self, ctx: Context) -> None:
        """Load or start what the kind's properties use; bad input raises `ChainfuzzError`."""

    def ran(self, ctx: Context) -> list[str]:
        """The implementations the kind's properties run on, for the report."""
        return []

    def not_run(self, ctx: Context) -> dict[str, str]:
        """Implementations that cannot run on this target, and why."""
        return {}

    def record(self, ctx: Context) -> dict:
        """What a case file of this kind stores beside the target's fingerprint."""
        return {}

    def missing(self, ctx: Context, recorded: dict) -> str:
        """Why a case that recorded ``recorded`` cannot replay here ("" when it can)."""
        return ""

    def versions(self, ctx: Context) -> dict[str, str]:
        """Versions of the packages that decide the kind's findings."""
        return {}


@functools.lru_cache(maxsize=None)
def kind(name: str) -> Kind:
    """The `Kind` called ``name`` (`UsageError` for an unknown one)."""
    return AVAILABLE_KINDS.load(name)()


def names() -> list[str]:
    return AVAILABLE_KINDS.names()


def recognised(target: Target, *, on_request: bool = False) -> list[str]:
    """The kinds ``target`` has, in table order; with ``on_request``, also those whose
    properties run only when the command names their implementations (``--parser``)."""
    return [name for name in names() if kind(name).recognises(target) and (on_request or not kind(name).on_request)]


def core_versions() -> dict[str, str]:
    import platform

    return {"python": platform.python_version(), **package_versions(CORE_PACKAGES)}
