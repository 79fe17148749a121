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
