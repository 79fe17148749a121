"""What the benchmarks share: drawing a fixed set of cases once, and timing calls over them."""

from __future__ import annotations

import math
import time

from hypothesis import HealthCheck, Phase, given, settings

from chainfuzz.errors import Failure, Skip
from chainfuzz.internal.runner import reproducible_generation


def draw_cases(strategy, n: int) -> list[dict]:
    """``n`` cases drawn from ``strategy`` (derandomised: the same cases every run)."""
    cases: list[dict] = []

    @settings(max_examples=n, database=None, deadline=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck), derandomize=True)
    @given(strategy)
    def collect(case):
        cases.append(case)

    with reproducible_generation():
        collect()
    return cases[:n]


def outcome(prop, ctx, case) -> str:
    """A property's verdict on one case: "ok", "skip" or "fail"."""
    try:
        prop.check(ctx, case)
    except Skip:
        return "skip"
    except Failure:
        return "fail"
    return "ok"


def rate(fn, items, repeat: int = 3) -> float:
    """Calls per second over ``items``: the best of ``repeat`` passes, to shed noise."""
    if not items:
        return math.nan
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        for item in items:
            fn(item)
        best = min(best, time.perf_counter() - start)
    return len(items) / best
