"""The "engine" kind: a model folder with weights, run on every engine the run names."""

from __future__ import annotations

from ..errors import ChainfuzzError
from ..kinds import kind
from ..tokenization.kind import ChainKind


class EngineKind(ChainKind):
    """Prompts come from the chain (the template with transformers' tokenizer), so an engine
    target is a chain target whose folder also holds weights."""

    name = "engine"
    label = "engines"
    json_key = "engines"

    def recognises(self, target) -> bool:
        return (target.model is not None and target.template_name is None
                and kind("chain").recognises(target))

    def open(self, ctx) -> None:
        super().open(ctx)  # the chain its prompts come from
        ctx.engines  # noqa: B018 - an engine that cannot start here is bad input

    def ran(self, ctx) -> list[str]:
        return [e.name for e in ctx.engines]

    def not_run(self, ctx) -> dict[str, str]:
        return {}

    def record(self, ctx) -> dict:
        """The tokenizer implementations and the ``--engine`` specs, which replay reopens."""
        return {**super().record(ctx), "engines": list(ctx.engine_specs)}

    def missing(self, ctx, recorded: dict) -> str:
        """Why a recorded engine cannot run here: not installed, or no server at its URL."""
        if why := super().missing(ctx, recorded):
            return why
        try:
            ctx.engines  # noqa: B018
        except ChainfuzzError as exc:
            return str(exc)
        return ""

    def versions(self, ctx) -> dict[str, str]:
        out = super().versions(ctx)
        for engine in ctx.engines:
            out.update(engine.versions())
        return out
