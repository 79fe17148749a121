"""Running properties: search, shrink, keep searching for other defects, share the time.

A `Search` is the properties of one target that take the same inputs: each input drawn is
checked by all of them (drawing a conversation costs 10-100 times what checking it does).
It searches in rounds. A round is one Hypothesis run; when it fails, Hypothesis shrinks the
input and the finding is recorded under its key. Later rounds treat known keys as
uninteresting, so one run reports every distinct defect of a property, each shrunk on its
own. A search bounded by time also mutates the inputs that showed new behaviour
(`mutate`), and remembers failures and such inputs for the next run (`memory`).

`run_searches` shares a time budget among searches: a floor for each, then slices to the
searches still finding new behaviour or new defects.
"""

from __future__ import annotations

import collections
import contextlib
import copy
import hashlib
import json
import random
import time
import traceback
import warnings
from dataclasses import dataclass, field
from typing import Callable, Iterator, Sequence

from hypothesis import HealthCheck, Phase, Verbosity, given, reject, settings
from hypothesis import seed as hseed
from hypothesis.errors import Flaky, Unsatisfiable, UnsatisfiedAssumption

from .. import schema
from ..errors import ChainfuzzError, Failure
from . import limits
from .memory import Memory
from .mutate import Mutator, copy_json
from .text import clip, clip_value, dumps_json
from .reduce import reduce_case, values
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


# Time-bound searches: the share of the budget every search gets before the rest goes to
# the searches still finding something (HypoFuzz's idea: a floor for each, then the rate).
FLOOR_SHARE = 0.5
MIN_SLICE = 0.5  # seconds; a Hypothesis run costs ~20 ms to start, so slices stay well above
FLOOR_SLICE = 2.0  # seconds: the longest slice of the floor pass
# Of a time-bound search's time after its first Hypothesis run, the share spent mutating its
# corpus: a mutant costs microseconds where a drawn conversation costs milliseconds, while
# Hypothesis keeps reaching structure no corpus holds yet (mutation keeps a case's
# structure). Measured on Qwen2.5 at check --budget 10: 0.5 gave 1,738 checks/s, 0.7 gave
# the rate in bench_search --throughput.
MUTATION_SHARE = 0.7
NEW_KEY_GAIN = 20  # a new defect counts as this many new behaviours when sharing time
MAX_REASONS = 20  # distinct skip reasons counted per property; the rest count as "other"


@dataclass
class RunSettings:
    """How hard to search: examples and seconds per search, the seed, a findings cap, and
    where failures and interesting inputs are remembered between runs."""

    max_examples: int | None = 100  # per property; None: time alone bounds the search
    budget: float | None = None  # seconds per search; None: examples alone bound it
    seed: int | None = None
    max_findings: int = 10
    # Per finding, on top of the search's time (`limits.shrinking`): a cap, not what it takes.
    # 584 of the 588 findings of the 70-template sweep reached a fixed point under the sweep's
    # 10 s (the other 4 met the budget's allowance); the best input so far is kept when it ends.
    shrink_seconds: float = 30.0
    database: object = None  # a Hypothesis ExampleDatabase (see `memory`); None: remember nothing
    known: frozenset[str] = frozenset()  # signatures found before (an earlier pass): not recorded again

    def exhausted(self, result: "PropertyResult") -> bool:
        """Whether ``result`` has used up the examples, or the tries, this allows."""
        if self.max_examples is None:
            return False
        return (result.drawn_examples >= self.max_examples
                or result.tries - result.given >= self.max_examples * MAX_TRIES_PER_EXAMPLE)


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
    minimal: str = ""  # how far shrinking went, and why a large reproducer is that large
    supersedes: str | None = None  # the signature of a lenient finding of the same defect it replaces

    def to_json(self) -> dict:
        return {
            "property": self.property, "severity": self.severity, "message": self.message,
            "key": self.key, "signature": self.signature, "input": self.case,
            "observed": self.observed, "expected": self.expected, "rendered": self.rendered,
            "reproduced": self.reproduced, "minimal": self.minimal,
        }


@dataclass
class PropertyResult:
    """What searching one property on one target found, and what it cost."""

    property: Property
    tries: int = 0  # inputs drawn for it (generated, mutated or remembered)
    skipped: int = 0  # of those, inputs the property does not apply to (the template refuses them)
    mutants: int = 0  # of the tries, inputs made by mutation
    # Of the tries, remembered failures and boundary examples, and how many of those were
    # skipped: like Hypothesis' explicit examples, they do not count against --max-examples.
    given: int = 0
    given_skipped: int = 0
    shrink_steps: int = 0  # inputs tried while shrinking findings
    seconds: float = 0.0  # the search's time, shared with the properties searched with it
    findings: list[Finding] = field(default_factory=list)
    internal_error: str | None = None
    out_of_budget: bool = False  # the command's budget ended this search
    reasons: collections.Counter = field(default_factory=collections.Counter)  # why inputs were skipped

    @property
    def examples(self) -> int:
        """Inputs the property was checked on."""
        return self.tries - self.skipped

    @property
    def drawn_examples(self) -> int:
        """Examples on inputs the search drew or mutated (what --max-examples counts)."""
        return self.examples - (self.given - self.given_skipped)

    @property
    def checked(self) -> float | None:
        """The fraction of inputs drawn for the property that it checked (None: none drawn)."""
        return self.examples / self.tries if self.tries else None

    def skip(self, reason: str) -> None:
        self.skipped += 1
        reason = reason.split("\n", 1)[0][:160]
        if reason not in self.reasons and len(self.reasons) >= MAX_REASONS:
            reason = "other reasons"
        self.reasons[reason] += 1

    def why_unchecked(self) -> str | None:
        """The most common reason inputs were skipped, if any were."""
        return self.reasons.most_common(1)[0][0] if self.reasons else None

    def to_json(self) -> dict:
        checked = self.checked
        return {"examples": self.examples, "skipped": self.skipped, "mutants": self.mutants,
                "given": self.given - self.given_skipped,
                "checked": None if checked is None else round(checked, 3),
                "skip_reasons": dict(self.reasons.most_common(3)),
                "shrink_steps": self.shrink_steps,
                "seconds": round(self.seconds, 3), "failures": len(self.findings),
                "internal_error": self.internal_error, "out_of_budget": self.out_of_budget}


def signature(prop_id: str, target_name: str, key: str) -> str:
    """Short stable id of a defect: the same defect of the same target gets the same one."""
    digest = hashlib.sha256(f"{prop_id}\0{target_name}\0{key}".encode("utf-8", "surrogatepass")).hexdigest()
    return digest[:12]


def _shape(value) -> object:
    """What an input's behaviour is told apart by: its structure, roles and kinds of text
    (empty, blank, ASCII, other), not the text itself; a few microseconds a case."""
    if isinstance(value, dict):
        return tuple((k, v if k in ("role", "type") else _shape(v)) for k, v in value.items())
    if isinstance(value, list):
        return tuple(_shape(v) for v in value[:6]) + ((len(value) > 6,) if len(value) > 6 else ())
    if isinstance(value, str):
        return "" if not value else "ws" if value.isspace() else "a" if value.isascii() else "u"
    return type(value).__name__


class Search:
    """Properties of one target that take the same inputs (``props``, one ``inputs``
    function), searched together: every input drawn is checked by each of them."""

    def __init__(self, props: Sequence[Property], ctx, run: RunSettings,
                 on_finding: Callable[[Finding], None] = lambda f: None, *,
                 memory: Memory | None = None, label: str = "") -> None:
        self.props, self.ctx, self.run = list(props), ctx, run
        self.on_finding, self.memory = on_finding, memory
        self.label = label or ", ".join(p.id for p in props)
        self.results = {p.id: PropertyResult(p) for p in props}
        # Keys recorded per property: found on a standard input, or on lenient inputs only
        # (`chainfuzz.schema`; then a standard input failing the same way is still new).
        self.known: dict[str, set[str]] = {p.id: set() for p in props}
        self.known_lenient: dict[str, dict[str, Finding]] = {p.id: {} for p in props}
        self._shrinks = contextlib.ExitStack()  # the shrink under way (`limits.shrinking`)
        self.active = list(props)
        self.rng = random.Random(run.seed if len(props) == 1 else f"{run.seed}:{props[0].id}")
        self.mutator = Mutator(random.Random(f"{run.seed}:mutate:{props[0].id}"))
        self.corpus: list[dict] = []  # inputs with new behaviour, mutation's seeds
        self.seen: set = set()  # behaviours: (property, outcome, shape)
        self.gain = 0  # new behaviours, and new defects weighted by NEW_KEY_GAIN
        self.seconds = 0.0
        self.generated = 0.0  # seconds spent in Hypothesis runs, against mutation's
        self.strategy = None
        # Inputs to check first, each with the properties it is for: remembered failures
        # and the properties' boundary examples.
        self.pending: list[tuple[dict, frozenset[str]]] = []
        self._shaped: tuple[object, object] = (None, None)  # (case, its shape): one per drawn case
        # The end of the slice under way (monotonic time, moved back by shrinking), set by
        # `step`: before the first, every slice has ended.
        self._until: Callable[[], float] = lambda: float("-inf")

    @property
    def done(self) -> bool:
        return not self.active

    # --- one input --------------------------------------------------------------------

    def _shape_of(self, case: dict) -> object:
        """`_shape` of ``case``, computed once for all the properties that check it."""
        if self._shaped[0] is not case:
            self._shaped = (case, _shape(case))
        return self._shaped[1]

    def _observe(self, prop: Property, outcome: str, case: dict) -> None:
        seen = (prop.id, outcome, self._shape_of(case)) if outcome != "skip" else (prop.id, outcome)
        if seen in self.seen:
            return
        self.seen.add(seen)
        self.gain += 1
        if outcome != "skip":
            kept = copy_json(case)
            self.mutator.learn(kept)
            if len(self.corpus) < 1000:
                self.corpus.append(kept)
            else:
                self.corpus[self.rng.randrange(len(self.corpus))] = kept
            if self.memory is not None:
                self.memory.save_interesting(prop.id, kept)

    def _is_known(self, prop: Property, failure: Failure, case: dict) -> bool:
        known, key = self.known[prop.id], failure.key
        if key not in known and self.run.known and signature(prop.id, self.ctx.target.name, key) in self.run.known:
            known.add(key)
        return key in known or (key in self.known_lenient[prop.id] and not schema.is_standard(case, failure))

    def _retire(self, prop: Property) -> None:
        if prop in self.active:
            self.active.remove(prop)

    def _check_direct(self, case: dict, mutant: bool, only: frozenset[str] | None = None) -> None:
        """Check a remembered or mutated input with every active property (``only``: with
        those named); a new defect is shrunk by `reduce_failure` and recorded."""
        for prop in [p for p in self.active if only is None or p.id in only]:
            result = self.results[prop.id]
            result.tries += 1
            result.mutants += mutant
            result.given += not mutant
            try:
                prop.check(self.ctx, case)
            except Failure as f:
                if self._is_known(prop, f, case):
                    self._observe(prop, f"known:{f.key}", case)
                    continue
                f.case = copy_json(case)
                self._observe(prop, f"new:{f.key}", case)
                with limits.shrinking(self.run.shrink_seconds) as stop:
                    self._record(prop, reduce_failure(prop, self.ctx, f, stop))
                return
            except UnsatisfiedAssumption as skip:
                result.skip(str(skip) or "input does not apply")
                result.given_skipped += not mutant
                self._observe(prop, "skip", case)
            except limits.BudgetExhausted:
                raise
            except Exception as exc:  # noqa: BLE001
                if not mutant:  # a boundary or remembered input: the property's own bug
                    result.internal_error = "".join(traceback.format_exception_only(type(exc), exc)).strip()
                    self._retire(prop)
                    continue
                result.skip(f"the property cannot take this input ({type(exc).__name__})")
            else:
                self._observe(prop, "pass", case)
            if self.run.exhausted(result):
                self._retire(prop)

    def _record(self, prop: Property, failure: Failure) -> None:
        finding = make_finding(prop, self.ctx, failure, reproduced=recheck(prop, self.ctx, failure))
        result = self.results[prop.id]
        if schema.is_standard(failure.case, failure):
            self.known[prop.id].add(failure.key)
            # The same defect found on lenient inputs first: this error replaces that warning.
            lenient = self.known_lenient[prop.id].pop(failure.key, None)
            if lenient is not None and lenient in result.findings:
                result.findings.remove(lenient)
                finding.supersedes = lenient.signature
        else:
            self.known_lenient[prop.id][failure.key] = finding
        result.findings.append(finding)
        self.gain += NEW_KEY_GAIN
        self.on_finding(finding)  # the case file first: it is the record that must not be lost
        if self.memory is not None:
            self.memory.save_failure(prop.id, failure.case)
        if len(result.findings) >= self.run.max_findings:
            self._retire(prop)

    # --- a slice of time ----------------------------------------------------------------

    def step(self, until: float) -> int:
        """Search until the monotonic time ``until``, or until every property is done; the
        gain it made. Shrinking what it finds stops the clock (`limits.shrinking`): ``until``
        moves back by the time shrinking took, and `seconds` counts the search alone."""
        gain0, start, pushed = self.gain, time.monotonic(), limits.extended()
        self._until = lambda: until + (limits.extended() - pushed)
        try:
            with warnings.catch_warnings():
                # Hypothesis warns when it builds the repr of a strategy holding a long list
                # (every marker of a template): chainfuzz never shows that repr.
                warnings.filterwarnings("ignore", "Generating overly large repr")
                self._step()
        except limits.BudgetExhausted:
            self.active.clear()
        except ChainfuzzError:
            raise  # e.g. a case file that cannot be written: the user's problem, not a property bug
        except Exception as exc:  # a bug in a strategy, not in the target
            error = "".join(traceback.format_exception_only(type(exc), exc)).strip()
            for prop in self.active:
                self.results[prop.id].internal_error = error
            self.active.clear()
        self.seconds += time.monotonic() - start - (limits.extended() - pushed)
        for result in self.results.values():
            result.seconds = self.seconds
            result.out_of_budget = limits.out_of_budget()
        if self.memory is not None and (self.done or time.monotonic() >= self._until()):
            self.memory.flush()
        return self.gain - gain0

    def _step(self) -> None:
        if self.strategy is None:  # the first slice: what is remembered and listed comes first
            if self.memory is not None:
                self.pending = [(case, frozenset((pid,))) for pid, case in self.memory.failures()]
                remembered = self.memory.corpus()
                for case in remembered:
                    self.mutator.learn(case)
                self.corpus.extend(remembered)
            self.pending += self._examples()
            self.strategy = self._strategy()
        elif self.memory is not None:
            # Failures other processes sharing the database saved since (a campaign's workers):
            # replayed, shrunk and recorded here too. One fetch per property: measured at
            # 1.5-2 ms per property holding 50 failures (the folder and a Redis on 127.0.0.1;
            # Redis's part 0.5 ms), against the slices of 0.5-2 s `run_searches` gives.
            self.pending[:0] = [(case, frozenset((pid,))) for pid, case in self.memory.new_failures()]
        until = self._until
        while self.pending and self.active and time.monotonic() < until():
            case, props = self.pending.pop(0)
            self._check_direct(case, mutant=False, only=props)
        time_bound = self.run.max_examples is None or self.run.budget is not None
        while self.active and time.monotonic() < until():
            mutate = (time_bound and self.corpus and self.generated > 0
                      and self.rng.random() < MUTATION_SHARE)
            if mutate:
                self._mutate(MIN_SLICE)
                continue
            t0, pushed = time.monotonic(), limits.extended()
            stop = min(until(), t0 + MIN_SLICE) if time_bound else until()
            try:
                failure, shrink_until = self._round(stop)
                if failure is not None:
                    prop = failure._chainfuzz_property
                    self._record(prop, reduce_failure(prop, self.ctx, failure, shrink_until, hypothesis=True))
            finally:
                self._shrinks.close()  # the clock runs again
            self.generated += time.monotonic() - t0 - (limits.extended() - pushed)
            if failure is None and not time_bound:
                break  # Hypothesis ran its examples without a new defect

    def _strategy(self):
        return self.props[0].inputs(self.ctx)

    def _examples(self) -> list[tuple[dict, frozenset[str]]]:
        """The properties' boundary cases (`Property.examples`), each once, with the
        properties that listed it: a case is checked by those alone."""
        cases: dict[str, tuple[dict, set[str]]] = {}
        for prop in self.props:
            for case in (prop.examples(self.ctx) if prop.examples else ()):
                cases.setdefault(dumps_json(case), (case, set()))[1].add(prop.id)
        return [(case, frozenset(ids)) for case, ids in cases.values()]

    def _mutate(self, seconds: float) -> None:
        """Check mutants of the corpus for ``seconds`` of search (shrinking not counted)."""
        mutator, corpus = self.mutator, self.corpus
        start, pushed = time.monotonic(), limits.extended()

        def end() -> float:
            return min(self._until(), start + seconds + (limits.extended() - pushed))

        while self.active and time.monotonic() < end():
            self._check_direct(mutator.mutate(corpus[self.rng.randrange(len(corpus))]), mutant=True)

    def _round(self, stop: float):
        """One Hypothesis run: (the shrunk failure with an unknown key or None, shrink deadline).

        Generation stops at ``stop``. The first failure stops the search's clock
        (`limits.shrinking`, left to the caller to close) and Hypothesis shrinks it to its end,
        or for ``run.shrink_seconds`` at most, keeping the smallest failing input found by
        then; the structural reduction that follows shares that shrink deadline. A failure
        found on a standard input (`chainfuzz.schema`) shrinks to standard inputs only.
        """
        run, ctx = self.run, self.ctx
        state: dict = {"prop": None, "failure": None, "stop": stop, "standard": True}

        def test(case):
            if time.monotonic() > state["stop"]:
                raise _OutOfTime()
            target = state["prop"]
            if target is not None:  # shrinking: only the failing property, only its defect
                self.results[target.id].shrink_steps += 1
                try:
                    target.check(ctx, case)
                except Failure as f:
                    standard = schema.is_standard(case, f)
                    if f.key != state["failure"].key or (state["standard"] and not standard):
                        reject()
                    state["standard"] = standard  # once on a standard input, it stays on one
                    f.case = copy_json(case)
                    f._chainfuzz_property = target
                    state["failure"] = f
                    raise
                return
            for prop in [p for p in self.active if run.exhausted(self.results[p.id])]:
                self._retire(prop)
            if not self.active:
                raise _OutOfTime()
            checked = False
            for prop in list(self.active):
                result = self.results[prop.id]
                result.tries += 1
                try:
                    prop.check(ctx, case)
                except Failure as f:
                    if self._is_known(prop, f, case):
                        checked = True
                        self._observe(prop, f"known:{f.key}", case)
                        continue
                    self._observe(prop, f"new:{f.key}", case)
                    state["prop"] = prop
                    state["standard"] = schema.is_standard(case, f)
                    state["stop"] = self._shrinks.enter_context(limits.shrinking(run.shrink_seconds))
                    f.case = copy_json(case)
                    f._chainfuzz_property = prop
                    state["failure"] = f
                    raise
                except UnsatisfiedAssumption as skip:
                    result.skip(str(skip) or "input does not apply")
                    self._observe(prop, "skip", case)
                except (limits.BudgetExhausted, _OutOfTime):
                    raise
                except Exception as exc:  # noqa: BLE001 - a bug in the property, not the target
                    result.internal_error = "".join(traceback.format_exception_only(type(exc), exc)).strip()
                    self._retire(prop)
                else:
                    checked = True
                    self._observe(prop, "pass", case)
            if not checked:
                reject()

        remaining = [run.max_examples - self.results[p.id].drawn_examples for p in self.active] \
            if run.max_examples is not None else [10**9]
        search = settings(
            database=None, max_examples=max(1, max(remaining, default=1)), deadline=None,
            suppress_health_check=list(HealthCheck), report_multiple_bugs=False,
            phases=(Phase.generate, Phase.shrink), verbosity=Verbosity.quiet,
        )(hseed(self.rng.getrandbits(64))(given(self.strategy)(test)))
        failure = None
        try:
            with reproducible_generation():
                search()
        except Failure as f:
            failure = f if getattr(f, "_chainfuzz_property", None) is not None else state["failure"]
        except (_OutOfTime, Flaky, limits.BudgetExhausted):
            failure = state["failure"]
            if failure is not None:
                failure._chainfuzz_cut = True  # Hypothesis' shrinker did not reach its end
            if failure is None and limits.out_of_budget():
                raise limits.BudgetExhausted()
        except Unsatisfiable:
            pass
        return failure, state["stop"]


def group(props: Sequence[Property]) -> list[list[Property]]:
    """Properties grouped by the inputs they take (the same ``inputs`` function and kind),
    in their order: each group is one `Search`."""
    groups: dict[tuple, list[Property]] = {}
    for prop in props:
        groups.setdefault((prop.inputs, prop.applies_to), []).append(prop)
    return list(groups.values())


def run_searches(searches: Sequence[Search], run: RunSettings, total_budget: float | None = None,
                 progress: Callable[[Search], None] | None = None) -> None:
    """Run ``searches`` to the end of their examples, or share ``total_budget`` seconds (or
    ``run.budget`` each) among them: first a floor for each (`FLOOR_SHARE` of the time,
    evenly), then slices to the searches with the most gain per second in their last slices.
    The command's budget (`limits.budget`) ends everything, keeping what was found."""
    if not searches:
        return
    start, pushed = time.monotonic(), limits.extended()
    if total_budget is None and run.budget is not None:
        total_budget = run.budget * len(searches)
    if total_budget is None:
        for search in searches:
            if progress:
                progress(search)
            if not limits.out_of_budget():
                search.step(limits.deadline())
        return
    # Shrinking stops the clock (`limits.shrinking`): the end moves back by what it took.
    start_end = start + total_budget

    def until() -> float:
        return min(start_end + (limits.extended() - pushed), limits.deadline())

    floor = FLOOR_SHARE * total_budget / len(searches)
    recent: dict[int, collections.deque] = {id(s): collections.deque(maxlen=2) for s in searches}
    # The floor is given round-robin in slices of at most FLOOR_SLICE, so every search (its
    # boundary examples first) starts within seconds even when the floor is long: given in
    # one piece, a 60 s budget made the fifth search wait 24 s for its first input.
    while time.monotonic() < until():
        behind = [s for s in searches if not s.done and s.seconds < floor]
        if not behind:
            break
        for search in behind:
            if time.monotonic() >= until():
                break
            if progress:
                progress(search)
            t0, spent = time.monotonic(), search.seconds
            gain = search.step(min(until(), t0 + min(FLOOR_SLICE, floor - search.seconds)))
            recent[id(search)].append((gain, search.seconds - spent))
    while time.monotonic() < until() - 0.01:
        live = [s for s in searches if not s.done]
        if not live:
            break

        def rate(s: Search) -> float:
            gained = sum(g for g, _ in recent[id(s)])
            spent = sum(t for _, t in recent[id(s)])
            return (gained + 1) / (spent + MIN_SLICE)

        search = max(live, key=lambda s: (rate(s), -s.seconds))
        left = until() - time.monotonic()
        t0, spent = time.monotonic(), search.seconds
        if progress:
            progress(search)
        gain = search.step(min(until(), t0 + max(MIN_SLICE, left / (2 * len(live)))))
        recent[id(search)].append((gain, search.seconds - spent))
    for search in searches:
        if search.memory is not None:
            search.memory.flush()


def run_property(prop: Property, ctx, run: RunSettings,
                 on_finding: Callable[[Finding], None] = lambda f: None) -> PropertyResult:
    """Search ``prop`` alone on ``ctx`` until examples, time or the findings cap run out, or
    the command's budget (`limits.budget`): a search it ends keeps what it found."""
    search = Search([prop], ctx, run, on_finding)
    run_searches([search], run)
    return search.results[prop.id]


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


# Beyond these a reproducer is no longer read at a glance: the case then says why it is larger.
GLANCE_MESSAGES = 4
GLANCE_CHARS = 600


def reduce_failure(prop: Property, ctx, failure: Failure, until: float, *, hypothesis: bool = False) -> Failure:
    """Carry on shrinking ``failure`` by editing its case directly (see `reduce`) to a fixed
    point, or until the monotonic time ``until``; the fuzzer shrinks its findings with it too.
    A failure on a standard input (`chainfuzz.schema`) stays on standard inputs. The result
    says how far it went in ``minimal`` (`minimal_note`); ``hypothesis``: Hypothesis' shrinker
    went first (unless its run says it was cut short)."""
    best = failure
    late = [False]

    def still_fails(case: dict) -> bool:
        nonlocal best
        if time.monotonic() > until:
            late[0] = True
            return False
        try:
            prop.check(ctx, case)
        except Failure as f:
            if schema.is_standard(best.case, best) and not schema.is_standard(case, f):
                return False  # once on a standard input, the reproducer stays on one
            if f.key == failure.key:
                f.case = copy.deepcopy(case)
                best = f
                return True
        except Exception:  # noqa: BLE001 - Skip, or an edit the property cannot take
            pass
        return False

    try:
        reduced = reduce_case(failure.case, still_fails)
        fixed = reduced.fixed_point and not late[0]
    except limits.BudgetExhausted:
        fixed = False  # the budget ended the shrinking: the smallest input so far stands
    cut = getattr(failure, "_chainfuzz_cut", False)
    best.minimal = minimal_note(best.case, fixed and not cut, hypothesis=hypothesis and not cut)
    return best


def glance_size(case: object) -> int:
    """The characters of ``case`` as compact JSON: what `GLANCE_CHARS` bounds."""
    return len(json.dumps(case, ensure_ascii=False, separators=(",", ":")))


def minimal_note(case: dict, fixed_point: bool, *, hypothesis: bool = False) -> str:
    """How minimal ``case`` is, in words: a fixed point of the structural reducer (after
    Hypothesis' shrinker ran to its end, with ``hypothesis``) or not, and, past
    `GLANCE_MESSAGES` messages or `GLANCE_CHARS` characters, what makes it that large."""
    messages = case.get("messages") if isinstance(case, dict) else None
    size = glance_size(case)
    if not fixed_point:
        return ("shrinking stopped at its time limit before a fixed point: a smaller input may "
                "show the same defect")
    note = "a fixed point of the structural reducer" + (
        ", after Hypothesis' shrinker ran to its end" if hypothesis else " (found without Hypothesis: mutated, "
        "remembered or fuzzed)")
    if isinstance(messages, list) and len(messages) > GLANCE_MESSAGES:
        note += (f"; the defect needs all {len(messages)} messages: removing any turn, or "
                 "shortening any text, loses it")
    elif size > GLANCE_CHARS:
        path, longest = max(((p, v) for p, v in values(case, ()) if isinstance(v, str)),
                            key=lambda pv: len(pv[1]), default=((), ""))
        where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path).lstrip(".")
        note += (f"; the defect needs {size} characters: no message, call, value or text can be "
                 f"removed or shortened without losing it (the longest text, {where}, has {len(longest)})")
    return note


def make_finding(prop: Property, ctx, failure: Failure, *, reproduced: bool = True) -> Finding:
    """The `Finding` a (shrunk) failure of ``prop`` on ``ctx``'s target is recorded as. Free
    text from the target is clipped (`text.clip`); the input never is. A failure that did
    not fail again when re-checked (an intermittent defect, a machine under load) says so.
    One whose minimal input is lenient (`chainfuzz.schema`) is a warning, keyed apart."""
    message = clip(failure.message)
    if not reproduced:
        message += " (intermittent: the same input did not fail this way when checked again)"
    severity = failure.severity or prop.severity
    lenient = schema.nonstandard(failure.case, failure)
    if lenient:  # no standard input showed it: a warning that names the non-standard field
        severity = "warning"
        if described := schema.describe(lenient):  # a property's own rule says why in its message
            message += f" (only with non-standard input: {described})"
    key = schema.finding_key(failure.key, failure.case, failure)
    return Finding(
        property=prop.id,
        severity=severity,
        message=message,
        key=clip(key),
        signature=signature(prop.id, ctx.target.name, key),
        case=failure.case,
        observed=clip_value(failure.observed),  # JSON, or its repr
        expected=clip_value(failure.expected),
        rendered=None if failure.rendered is None else clip(failure.rendered),
        reproduced=reproduced,
        minimal=getattr(failure, "minimal", ""),
    )
