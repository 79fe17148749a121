"""The "tokenizer" kind (a vocabulary, read by every implementation that can) and the "chain"
kind (a template with a tokenizer, or mistral-common's own request encoder)."""

from __future__ import annotations

from ..errors import ChainfuzzError, TargetError
from ..internal.lazy import package_versions
from ..kinds import Kind


class TokenizerKind(Kind):
    """Checked once per file: on the target of its default template, or its only target."""

    name = "tokenizer"
    label = "tokenizer implementations"
    json_key = "tokenizers"

    def recognises(self, target) -> bool:
        return target.tokenizer is not None and target.template_name is None

    def usable(self, ctx) -> bool:
        """Beside a template, a tokenizer nothing reads only drops the tokenizer properties
        (the template is still checked); alone, it is bad input (see `open`)."""
        if ctx.target.source is None:
            return True
        try:
            ctx.loaded  # noqa: B018
        except TargetError:
            return False
        return True

    def open(self, ctx) -> None:
        ctx.loaded  # noqa: B018 - a tokenizer no implementation reads is bad input

    def ran(self, ctx) -> list[str]:
        return _impls(ctx)

    def not_run(self, ctx) -> dict[str, str]:
        try:
            return ctx.loaded.unavailable
        except TargetError as exc:
            return {"tokenizer": str(exc)}

    def record(self, ctx) -> dict:
        """The implementations the finding was checked with: a replay without one is missing."""
        return {"impls": _impls(ctx)}

    def missing(self, ctx, recorded: dict) -> str:
        needed = recorded.get("impls") or []
        if not needed:
            return ""
        try:
            here = set(_impls(ctx))
        except ChainfuzzError as exc:
            return str(exc)
        gone = [i for i in needed if i not in here]
        unavailable = self.not_run(ctx)
        return "; ".join(f"{i} does not run here: {unavailable.get(i, 'not loaded')}" for i in gone)

    def versions(self, ctx) -> dict[str, str]:
        return package_versions([p for t in ctx.tokenizers for p in t.packages])


class ChainKind(TokenizerKind):
    """Prompts as a server builds them: the template rendered, then encoded."""

    name = "chain"

    def open(self, ctx) -> None:
        """A chain renders the template: one that does not compile is bad input here too."""
        from ..kinds import kind

        if ctx.target.source is not None:
            kind("template").open(ctx)
        super().open(ctx)

    def versions(self, ctx) -> dict[str, str]:
        """The template's renderer decides a chain's prompts as much as the tokenizer."""
        from ..kinds import kind

        template = kind("template").versions(ctx) if ctx.target.source is not None else {}
        return {**template, **super().versions(ctx)}

    def recognises(self, target) -> bool:
        from .formats import FORMATS

        return target.tokenizer is not None and (
            target.source is not None or FORMATS[target.tokenizer.format].chat)


def _impls(ctx) -> list[str]:
    """The tokenizer implementations that read the target, reference first."""
    return [t.impl for t in ctx.tokenizers]
