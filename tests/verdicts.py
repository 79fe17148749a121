"""One property's verdict on one hand-written case, shared by the property test modules."""

from __future__ import annotations

import pytest
from hypothesis.errors import UnsatisfiedAssumption

import chainfuzz
from chainfuzz.registry import get


def check_once(ctx, prop: str, case: dict) -> chainfuzz.Failure | None:
    """The property's verdict on one case: the Failure, or None when it holds."""
    try:
        get(prop).check(ctx, case)
    except chainfuzz.Failure as failure:
        return failure
    except UnsatisfiedAssumption as skip:  # the case must apply, or the test proves nothing
        pytest.fail(f"{prop} skipped the hand-written case: {skip}")
    return None


def severity(prop: str, failure: chainfuzz.Failure) -> str:
    """The failure's severity: its own, or the property's default."""
    return failure.severity or get(prop).severity


def engine_context(folder, engine):
    """A context on the model ``folder`` whose only engine is ``engine`` (already started)."""
    from chainfuzz.context import Context
    from chainfuzz.targets import load_target

    ctx = Context(load_target(folder))
    ctx.engines = [engine]
    return ctx


def engine_search(folder, engine, prop: str, examples: int):
    """A seeded search of ``prop`` on ``engine`` alone (`chainfuzz.internal.runner.PropertyResult`)."""
    from chainfuzz.internal.runner import RunSettings, run_property

    settings = RunSettings(max_examples=examples, seed=0, max_findings=1, shrink_seconds=2.0)
    return run_property(get(prop), engine_context(folder, engine), settings)


def encode_prompts(folder, conversations: list[list[dict]]) -> list[list[int]]:
    """Each conversation's prompt ids, as the engine properties build them (the reference chain)."""
    from chainfuzz.context import Context
    from chainfuzz.targets import load_target

    chain = Context(load_target(folder)).prompt_chain
    return [chain.encode(messages, None) for messages in conversations]
