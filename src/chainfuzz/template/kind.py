"""The "template" kind: a chat template, rendered by transformers (the reference) and minijinja."""

from __future__ import annotations

from ..internal.lazy import package_versions
from ..kinds import Kind


class TemplateKind(Kind):
    name = "template"

    def recognises(self, target) -> bool:
        return target.source is not None

    def open(self, ctx) -> None:
        """A template that does not compile is bad input."""
        from .render import check_compiles

        check_compiles(ctx.target)

    def versions(self, ctx) -> dict[str, str]:
        return package_versions(("transformers", "jinja2", "minijinja"))
