"""The "parser" kind: a chat template whose rendered assistant turns the run's ``--parser``
parsers read back, tokenised with the model's (or its family's) tokenizer."""

from __future__ import annotations

from ..errors import ChainfuzzError
from ..internal.lazy import package_versions
from ..kinds import Kind


class ParserKind(Kind):
    """Every template can be one; its properties run only when the command names parsers."""

    name = "parser"
    label = "parsers"
    json_key = "parsers"
    on_request = True

    def recognises(self, target) -> bool:
        return target.source is not None

    def usable(self, ctx) -> bool:
        return bool(ctx.parser_specs)

    def open(self, ctx) -> None:
        from ..kinds import kind

        kind("template").open(ctx)  # its rendered turns are what the parsers read
        ctx.parsers  # noqa: B018 - a parser named outright that cannot run here is bad input
        ctx.parser_tokenizer  # noqa: B018

    def ran(self, ctx) -> list[str]:
        return [p.name for p in ctx.parsers]

    def not_run(self, ctx) -> dict[str, str]:
        return dict(ctx.parsers_unavailable) if "parsers" in ctx.__dict__ else {}

    def record(self, ctx) -> dict:
        """The parser specs, ``auto`` resolved, which replay reopens."""
        return {"parsers": [p.name for p in ctx.parsers]}

    def missing(self, ctx, recorded: dict) -> str:
        try:
            ctx.parsers  # noqa: B018
            ctx.parser_tokenizer  # noqa: B018
        except ChainfuzzError as exc:
            return str(exc)
        return ""

    def versions(self, ctx) -> dict[str, str]:
        from ..kinds import kind

        out = {**kind("template").versions(ctx), **package_versions(ctx.parser_tokenizer.packages)}
        for parser in ctx.parsers:
            out.update(parser.versions())
        return out
