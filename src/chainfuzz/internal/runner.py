"""Running properties with Hypothesis: search, shrink, and keep searching for other defects.

Each property is searched in rounds. A round is one Hypothesis run; when it fails, Hypothesis
shrinks the input and the finding is recorded under its key. Later rounds treat known keys as
uninteresting, so one run reports every distinct defect of a property, each shrunk on its own.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import random
import time
import traceback
from dataclasses import dataclass, field
from typing import Callable, Iterator

from hypothesis import HealthCheck, Phase, Verbosity, given, reject, settings
from hypothesis import seed as hseed
from hypothesis.errors import Flaky, Unsatisfiable, UnsatisfiedAssumption

from ..errors import ChainfuzzError, Failure
from . import limits
from .text import clip, clip_value
from .reduce import reduce_case
from ..registry import Property

# Inputs the template refuses do not count as examples; this bounds how many are tried.
MAX_TRIES_PER_EXAMPLE = 3
# Time a shrunk reproducer's re-check may run past the budget: one check renders a few times
# under the 2 s render limit (`template.render.DEFAULT_TIME_LIMIT`).
RECHECK_SECONDS = 5.0


@contextlib.contextmanager
def reproducible_generation() -> Iterator[None]:
    """Generation that depends on the seed alone, not on which modules are loaded.

    Hypothesis (6.131 and later) mixes the string and number literals of every *local*
    module (one outside site-packages and the standard library) into what it draws. The
    same ``--seed`` then searched differently from a checkout than from an installed wheel,
    differently once a lazy import had loaded another chainfuzz module mid-run, and
    differently in each user's project. chainfuzz's searches see no local constants
    (Hypothesis' own global ones stay); a Hypothesis without the feature is left alone.
    """
    try:
        from hypothesis.internal.conjecture import providers

        original, cache = providers._get_local_constants, providers.CONSTANTS_CACHE.cache
        empty = type(providers._local_constants)()  # hypothesis.internal.constants_ast.Constants
    except (ImportError, AttributeError, TypeError):
        yield
        return
    providers._get_local_constants = lambda: empty
    cache.clear()  # drawn values permitted per constraint: computed with the local constants
    try:
        yield
    finally:
        providers._get_local_constants = original
        cache.clear()


class _OutOfTime(BaseException):
    """Ends a Hypothesis run at once: Hypothesis propagates non-Exception errors unshrunk."""


@dataclass
class RunSettings:
    """How hard to search: examples and seconds per property, the seed, and a findings cap."""

    max_examples: int = 100
    budget: float | None = None  # seconds per property; None: examples alone bound the search
    seed: int | None = None
    max_findings: int = 10
    shrink_seconds: float = 5.0  # per finding; the best input so far is kept when it runs out

    def exhausted(self, result: "PropertyResult") -> bool:
        """Whether ``result`` has used up the examples, or the tries, this allows."""
        return (result.examples >= self.max_examples
                or result.tries >= self.max_examples * MAX_TRIES_PER_EXAMPLE)


@dataclass
class Finding:
    """One distinct defect: a property, the key naming the defect, and its minimal input."""

    property: str
    severity: str
    message: str
    key: str
    signature: str
    case: dict
    observed: object = None
    expected: object = None
    rendered: str | None = None
    reproduced: bool = True  # the minimal input failed the same way when checked again

    def to_json(self) -> dict:
        return {
            "property": self.property, "severity": self.severity, "message": self.message,
            "key": self.key, "signature": self.signature, "input": self.case,
            "observed": self.observed, "expected": self.expected, "rendered": self.rendered,
            "reproduced": self.reproduced,
        }


@dataclass
class PropertyResult:
    """What searching one property on one target found, and what it cost."""

    property: Property
    tries: int = 0  # inputs generated
    skipped: int = 0  # of those, inputs the property does not apply to (the template refuses them)
    shrink_steps: int = 0  # inputs tried while shrinking findings
    seconds: float = 0.0
    findings: list[Finding] = field(default_factory=list)
    internal_error: str | None = None
    out_of_budget: bool = False  # the command's budget ended this search

    @property
    def examples(self) -> int:
        """Inputs the property was checked on."""
        return self.tries - self.skipped

    def to_json(self) -> dict:
        return {"examples": self.examples, "skipped": self.skipped, "shrink_steps": self.shrink_steps,
                "seconds": round(self.seconds, 3), "failures": len(self.findings),
                "internal_error": self.internal_error, "out_of_budget": self.out_of_budget}


def signature(prop_id: str, target_name: str, key: str) -> str:
    """Short stable id of a defect: the same defect of the same target gets the same one."""
    digest = hashlib.sha256(f"{prop_id}\0{target_name}\0{key}".encode("utf-8", "surrogatepass")).hexdigest()
    return digest[:12]


def run_property(prop: Property, ctx, run: RunSettings,
                 on_finding: Callable[[Finding], None] = lambda f: None) -> PropertyResult:
    """Search ``prop`` on ``ctx`` until examples, time or the findings cap run out, or the
    command's budget (`limits.budget`): a search it ends keeps what it found."""
    result = PropertyResult(prop)
    start = time.monotonic()
    deadline = min(start + run.budget if run.budget else float("inf"), limits.deadline())
    rng = random.Random(run.seed)
    known: set[str] = set()
    try:
        strategy = prop.inputs(ctx)
        while not run.exhausted(result) and time.monotonic() < deadline \
                and len(result.findings) < run.max_findings:
            failure, shrink_until = _search_round(prop, ctx, strategy, known, run,
                                                  rng.getrandbits(64), deadline, result)
            if failure is None:
                break
            failure = reduce_failure(prop, ctx, failure, shrink_until)
            known.add(failure.key)
            finding = make_finding(prop, ctx, failure, reproduced=recheck(prop, ctx, failure))
            result.findings.append(finding)
            on_finding(finding)
    except limits.BudgetExhausted:
        pass
    except ChainfuzzError:
        raise  # e.g. a case file that cannot be written: the user's problem, not a property bug
    except Exception as exc:  # a bug in a property or strategy, not in the target
        result.internal_error = "".join(traceback.format_exception_only(type(exc), exc)).strip()
    result.out_of_budget = limits.out_of_budget()
    result.seconds = time.monotonic() - start
    return result


def recheck(prop: Property, ctx, failure: Failure) -> bool:
    """Whether a fresh copy of ``failure``'s minimal input fails the same way again, checked
    before it is written: a target that changed the case it was given, or a failure that
    depends on the machine's load, must not be recorded as a reproducer silently."""
    with limits.overtime(RECHECK_SECONDS):
        try:
            prop.check(ctx, copy.deepcopy(failure.case))
        except Failure as again:
            return again.key == failure.key
        except (Exception, limits.BudgetExhausted):  # noqa: BLE001 - a Skip, a crash: not the same failure
            return False
    return False


def reduce_failure(prop: Property, ctx, failure: Failure, until: float) -> Failure:
    """Carry on shrinking ``failure`` by editing its case directly (see `reduce`), until the
    monotonic time ``until``; the fuzzer shrinks its findings with it too."""
    best = failure

    def still_fails(case: dict) -> bool:
        nonlocal best
        if time.monotonic() > until:
            return False
        try:
            prop.check(ctx, case)
        except Failure as f:
            if f.key == failure.key:
                f.case = copy.deepcopy(case)
                best = f
                return True
        except Exception:  # noqa: BLE001 - Skip, or an edit the property cannot take
            pass
        return False

    try:
        reduce_case(failure.case, still_fails)
    except limits.BudgetExhausted:
        pass  # the budget ended the shrinking: the smallest input so far stands
    return best


def make_finding(prop: Property, ctx, failure: Failure, *, reproduced: bool = True) -> Finding:
    """The `Finding` a (shrunk) failure of ``prop`` on ``ctx``'s target is recorded as. Free
    text from the target is clipped (`text.clip`); the input never is. A failure that did
    not fail again when re-checked (an intermittent defect, a machine under load) says so."""
    message = clip(failure.message)
    if not reproduced:
        message += " (intermittent: the same input did not fail this way when checked again)"
    return Finding(
        property=prop.id,
        severity=failure.severity or prop.severity,
        message=message,
        key=clip(failure.key),
        signature=signature(prop.id, ctx.target.name, failure.key),
        case=failure.case,
        observed=clip_value(failure.observed),  # JSON, or its repr
        expected=clip_value(failure.expected),
        rendered=None if failure.rendered is None else clip(failure.rendered),
        reproduced=reproduced,
    )


def _search_round(prop, ctx, strategy, known, run, seed, deadline, result):
    """One Hypothesis run: (the shrunk failure with an unknown key or None, shrink deadline).

    Generation stops at ``deadline``; shrinking stops ``run.shrink_seconds`` after the first
    failure, keeping the smallest failing input found by then. The structural reduction that
    follows shares that shrink deadline.
    """
    state: dict = {"key": None, "failure": None, "stop": deadline}

    def test(case):
        if time.monotonic() > state["stop"]:
            raise _OutOfTime()
        if state["key"] is None:
            if run.exhausted(result):
                raise _OutOfTime()
            result.tries += 1
        else:
            result.shrink_steps += 1
        try:
            prop.check(ctx, case)
        except Failure as f:
            if f.key in known or (state["key"] is not None and f.key != state["key"]):
                reject()  # a defect already reported, or another one: keep shrinking this one
            if state["key"] is None:
                state["key"] = f.key
                state["stop"] = min(deadline, time.monotonic() + run.shrink_seconds)
            f.case = copy.deepcopy(case)
            state["failure"] = f
            raise
        except UnsatisfiedAssumption:
            if state["key"] is None:
                result.skipped += 1
            raise

    search = settings(
        database=None, max_examples=max(1, run.max_examples - result.examples), deadline=None,
        suppress_health_check=list(HealthCheck), report_multiple_bugs=False,
        phases=(Phase.generate, Phase.shrink), verbosity=Verbosity.quiet,
    )(hseed(seed)(given(strategy)(test)))
    failure = None
    try:
        with reproducible_generation():
            search()
    except Failure as f:
        failure = f
    except (_OutOfTime, Flaky, limits.BudgetExhausted):
        failure = state["failure"]
    except Unsatisfiable:
        pass
    return failure, state["stop"]
