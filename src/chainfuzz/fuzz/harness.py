"""Coverage-guided fuzzing of chainfuzz properties: atheris drives Hypothesis' ``fuzz_one_input``.

A harness is a set of registered properties (`HARNESSES`). Its Hypothesis test draws a
(target, property) index first and then that property's own input (``prop.inputs(ctx)``), so
one atheris process checks every property of the harness on every applicable target at a path,
and libFuzzer's coverage feedback steers all of them. Atheris hands raw bytes to
``fuzz_one_input``, which reads them as Hypothesis' choices: a mutated byte string decodes to
a mutated conversation, text or token stream, never to an ill-formed one (bytes that run out
before a whole case is drawn are rejected, cheaply).

A failing input whose defect (signature) is new is shrunk before it is recorded: it goes
into an in-memory example database, a Hypothesis run with only the reuse and shrink phases
replays and shrinks it while the defect's key stays the same, and the runner's structural
reduction follows, exactly as ``check`` shrinks. It is written to the crash folder in the
standard format (`cases.record`, `cases.write`); a defect already there is not shrunk or
written again. The fuzzer then carries on: a finding is recorded, never a libFuzzer crash.

Crash mode (``--crash``, or ``$CHAINFUZZ_CRASH=1``; OSS-Fuzz and ClusterFuzzLite report only
crashes) is the exception: a new defect is recorded as above and then raised out of
``one_input`` as its property's own exception type (`crash.failure_type`), so libFuzzer stops
and writes the input (``crash-<sha1>``, under ``-artifact_prefix``). A defect already in the
crash folder is still skipped while fuzzing, so a local run finds what is new; but when
libFuzzer runs given files (every positional argument a file, as OSS-Fuzz reproduces a
crash), a recorded defect crashes too, so a reproduction never passes because of a case file
left from an earlier run. ``--crashes ''`` records no case files at all (the libFuzzer
artifact is the record): what the OSS-Fuzz wrappers use, so that a bot's earlier run never
hides a defect.

``python -m chainfuzz.fuzz.harness HARNESS TARGET [--crashes DIR] [--events FILE] [--budget S]
[--crash] [libFuzzer flags and corpus folders]`` runs one harness; ``chainfuzz fuzz`` runs it in a
subprocess. The process searches under the memory limit (`limits.limit_memory`); with
``--budget`` it stops itself once S seconds have passed since it started, start-up and a
shrink in progress included (libFuzzer's ``-max_total_time`` is what start-up left), with a
"budget" event in place of libFuzzer's final line. A start-up slower than S still fuzzes
`MIN_FUZZ_SECONDS`; one slower than S + `LOAD_GRACE_SECONDS` is an error.
"""

from __future__ import annotations

import argparse
import copy
import gc
import os
import sys
import time
import traceback
import types
import unittest
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from hypothesis import HealthCheck, Phase, Verbosity, given, reject, settings
from hypothesis import strategies as st
from hypothesis.database import InMemoryExampleDatabase
from hypothesis.errors import Flaky, Unsatisfiable, UnsatisfiedAssumption

from .. import cases, registry, schema
from . import crash
from ..errors import ChainfuzzError, Failure, UsageError
from ..registry import Property
from ..internal import limits
from ..internal.runner import make_finding, recheck, reduce_failure, signature
from ..internal.text import dumps_json

SHRINK_SECONDS = 5.0  # per new finding, as `RunSettings.shrink_seconds`
# Start-up (imports, loading, instrumenting) measured 3 s for a template; a tokenizer of 30 MB
# adds ~2 s. A start-up that overruns the budget may take this much longer, then fuzzes this little.
LOAD_GRACE_SECONDS = 20.0
MIN_FUZZ_SECONDS = 1.0
STATS_INTERVAL = 0.5  # seconds between "stats" events


@dataclass(frozen=True)
class Harness:
    """A named group of properties fuzzed together, and the target kind they need."""

    name: str
    kind: str  # a row of `chainfuzz.kinds.AVAILABLE_KINDS`
    select: Callable[[Property], bool]
    instrument: tuple[str, ...]  # module prefixes whose Python code atheris instruments


_STREAM = ("tokenizer.stream_decode",)

# template: every template property. tokenizer: every tokenizer property but stream decoding
# (roundtrip, special_tokens_inert, impls_agree). stream: stream decoding alone, whose inputs
# (id streams, chunkings) and code paths differ from the others'. Chain properties need a
# template and a tokenizer together and are left to `check`.
HARNESSES = {
    "template": Harness(
        "template", "template", lambda p: p.applies_to == "template",
        ("chainfuzz", "jinja2", "transformers.utils.chat_template_utils")),
    "tokenizer": Harness(
        "tokenizer", "tokenizer", lambda p: p.applies_to == "tokenizer" and p.id not in _STREAM,
        ("chainfuzz", "transformers.tokenization")),
    "stream": Harness(
        "stream", "tokenizer", lambda p: p.id in _STREAM,
        ("chainfuzz", "transformers.tokenization")),
}


def harness_properties(name: str) -> list[Property]:
    """The registered properties a harness checks, sorted by id."""
    return [p for p in registry.all_properties() if HARNESSES[name].select(p)]


def applicable(name: str, target_kinds: set[str]) -> bool:
    """Whether harness ``name`` has anything to check on a target of these kinds."""
    return HARNESSES[name].kind in target_kinds and bool(harness_properties(name))


class _Stop(BaseException):
    """Ends a shrink run at its deadline: Hypothesis propagates non-Exception errors unshrunk."""


class _NewDefect(Exception):
    """Raised out of ``fuzz_one_input`` for a defect not recorded yet (see `_new_defect`)."""


_DEFECT_TYPES: dict[str, type] = {}


def _new_defect(sig: str) -> type:
    """An exception class of its own per signature.

    ``fuzz_one_input`` saves a failing input to the database only when it is the first, or
    the smallest, failure from its origin (exception type and line); a class per defect makes
    every new defect's input an origin of its own, so it is always saved for shrinking.
    """
    if sig not in _DEFECT_TYPES:
        _DEFECT_TYPES[sig] = type(f"NewDefect_{sig}", (_NewDefect,), {})
    return _DEFECT_TYPES[sig]


class _Database(InMemoryExampleDatabase):
    """Holds one failing input between ``fuzz_one_input`` and the shrink run."""

    def clear(self) -> None:
        self.data.clear()


class Fuzzer:
    """One harness on the targets at a path: ``one_input(bytes)`` is the atheris entry point.

    ``contexts`` are opened contexts (`Context.open`, see `load`); ``emit`` receives one JSON-able event
    per finding, a "start" event at the first input and a "stats" event every
    `STATS_INTERVAL` seconds. With ``crash``, a new defect is raised out of ``one_input`` once
    recorded (`crash.raise_failure`); with ``crash_known`` too, so is one already recorded.
    """

    def __init__(self, harness: str, contexts: list, crashes_dir: Path | None, *,
                 shrink_seconds: float = SHRINK_SECONDS,
                 emit: Callable[[dict], None] = lambda event: None,
                 crash: bool = False, crash_known: bool = False,
                 properties: list[str] | tuple[str, ...] = ()) -> None:
        self.harness = HARNESSES[harness]
        props = [p for p in harness_properties(harness) if not properties or p.id in properties]
        self.pairs = [(ctx, p) for ctx in contexts if self.harness.kind in ctx.kinds
                      for p in props]
        if not self.pairs:
            raise UsageError(_not_applicable(harness, contexts))
        self.crashes_dir = crashes_dir
        self.shrink_seconds = shrink_seconds
        self.emit = emit
        self.crash = crash
        self.crash_known = crash and crash_known
        self.executions = 0  # inputs atheris passed in
        self.checked = 0  # of those, inputs that decoded to a case and reached a property
        self._next_stats = 0.0
        self.last_index: int | None = None  # the (target, property) pair of the last input
        self.seen: set[str] = set()  # signatures met in this process
        self._db = _Database()
        self._pending: tuple[int, Failure, str, bool] | None = None  # index, failure, key, new
        self._shrinking: dict | None = None
        self.test = self._build()
        self.fuzz_one_input = self.test.hypothesis.fuzz_one_input

    def _build(self):
        """The Hypothesis test: fuzz_one_input drives it; called, it replays and shrinks what
        fuzz_one_input saved (its settings matter to that run only). Not seeded: @seed would
        turn the database off."""
        strategies = [p.inputs(ctx).map(lambda case, i=i: (i, case))
                      for i, (ctx, p) in enumerate(self.pairs)]
        drawn = strategies[0] if len(strategies) == 1 else st.one_of(strategies)
        return settings(
            database=self._db, deadline=None, suppress_health_check=list(HealthCheck),
            report_multiple_bugs=False, phases=(Phase.reuse, Phase.shrink), max_examples=2,
            verbosity=Verbosity.quiet,
        )(given(drawn)(self._body))

    def _body(self, drawn) -> None:
        index, case = drawn
        ctx, prop = self.pairs[index]
        shrinking = self._shrinking
        if shrinking is None:
            self.checked += 1
            self.last_index = index
        if shrinking is not None and time.monotonic() > shrinking["until"]:
            raise _Stop()
        try:
            prop.check(ctx, case)
        except Failure as f:
            if shrinking is not None:  # keep shrinking this defect only, on standard inputs if it was
                standard = schema.is_standard(case, f)
                if (index, f.key) != shrinking["defect"] or (shrinking["standard"] and not standard):
                    reject()
                shrinking["standard"] = standard  # once on a standard input, it stays on one
                f.case = copy.deepcopy(case)
                shrinking["failure"] = f
                raise
            # Keyed as it would be recorded (`schema.finding_key`): a defect met on lenient
            # inputs only is met again, as an error, on a standard one.
            key = schema.finding_key(f.key, case, f)
            sig = signature(prop.id, ctx.target.name, key)
            if sig in self.seen:  # a defect met before is not a finding again
                return
            self.seen.add(sig)
            new = not self._recorded(prop, ctx, sig)
            if not new:
                self.emit({"event": "known", "property": prop.id, "signature": sig,
                           "severity": f.severity or prop.severity, "message": f.message})
                if not self.crash_known:
                    return
            f.case = copy.deepcopy(case)
            self._pending = (index, f, key, new)
            raise _new_defect(sig)() from None
        except UnsatisfiedAssumption:
            raise
        except Exception as exc:  # a bug in a property: chainfuzz's, reported as an internal error
            self.emit({"event": "internal_error", "property": prop.id, "target": ctx.target.name,
                       "message": "".join(traceback.format_exception_only(type(exc), exc)).strip()})
            raise

    def one_input(self, data: bytes) -> None:
        """Check one input; record a new defect (shrunk) and carry on, or in crash mode raise it."""
        if self.executions == 0:
            self.emit({"event": "start", "time": time.time()})
        self.executions += 1
        now = time.monotonic()
        if now >= self._next_stats:  # the process ends inside libFuzzer: report as we go
            self._next_stats = now + STATS_INTERVAL
            self.emit({"event": "stats", "time": time.time(), "executions": self.executions,
                       "checked": self.checked})
        self._pending = None
        try:
            self.fuzz_one_input(data)
        except _NewDefect:
            index, failure, key, new = self._pending
            if new:
                self._record(index, failure)
            else:  # a recorded defect crashing again (crash_known): nothing to shrink or write
                self._db.clear()
        except limits.BudgetExhausted:
            self._stop()
        if limits.out_of_budget():
            self._stop()
        if self.crash and self._pending is not None:  # raised here, outside any handler: one traceback
            ctx, prop = self.pairs[self._pending[0]]
            crash.raise_failure(prop.id, self._pending[2], ctx.target.name)

    def _stop(self) -> None:
        """End the process at its budget: libFuzzer has no way to be told, so say it in an
        event (what its final "Done N runs" line would have said) and exit."""
        self.emit({"event": "budget", "time": time.time(), "executions": self.executions,
                   "checked": self.checked})
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)

    def _recorded(self, prop: Property, ctx, sig: str) -> bool:
        """Whether the crash folder already holds this defect (its file name has the signature)."""
        if self.crashes_dir is None:
            return False
        name = cases.file_name({"property": prop.id, "target": {"name": ctx.target.name},
                                  "signature": sig})
        return (self.crashes_dir / name).exists()

    def _record(self, index: int, failure: Failure) -> None:
        ctx, prop = self.pairs[index]
        start = time.monotonic()
        try:
            # The budget's clock stops while the finding shrinks (as in `check`); Hypothesis'
            # shrinker gets half the time at most, so the structural reducer (standard forms
            # first) always gets its turn.
            with limits.shrinking(self.shrink_seconds) as until:
                shrunk = self._shrink(index, failure, start + (until - start) / 2)
                shrunk = reduce_failure(prop, ctx, shrunk, until, hypothesis=True)
        except limits.BudgetExhausted:  # the unshrunk (or partly shrunk) failure is recorded
            shrunk = failure
        finding = make_finding(prop, ctx, shrunk, reproduced=recheck(prop, ctx, shrunk))
        path, written = None, False
        if self.crashes_dir is not None:
            path, written = cases.write(cases.record(finding, ctx, self.crashes_dir),
                                          self.crashes_dir)
        self.emit({"event": "finding", "time": time.time(), "property": prop.id,
                   "target": ctx.target.name,
                   "severity": finding.severity, "signature": finding.signature,
                   "message": finding.message, "path": None if path is None else str(path),
                   "written": written, "shrink_seconds": round(time.monotonic() - start, 3)})

    def _shrink(self, index: int, failure: Failure, until: float) -> Failure:
        """Hypothesis' shrink of the input ``fuzz_one_input`` just saved, same key only."""
        self._shrinking = {"defect": (index, failure.key), "until": until, "failure": failure,
                           "standard": schema.is_standard(failure.case, failure)}
        cut = False
        try:
            self.test()
        except (_Stop, Flaky, unittest.SkipTest):
            cut = True  # out of time, or (SkipTest) the input did not replay: the best so far is kept
        except (Failure, Unsatisfiable):
            pass
        finally:
            best = self._shrinking["failure"]
            self._shrinking = None
            self._db.clear()
        if cut:
            best._chainfuzz_cut = True  # `runner.minimal_note` does not claim Hypothesis' end
        return best


def _not_applicable(harness: str, contexts: list) -> str:
    kinds = " or ".join(sorted({k for ctx in contexts for k in ctx.kinds})) or "nothing"
    path = contexts[0].target.path if contexts else "the target"
    return (f"harness {harness} needs a {HARNESSES[harness].kind}; {path} holds a {kinds}"
            if harness_properties(harness) else f"harness {harness} has no properties")


# --- coverage instrumentation ---------------------------------------------------------------

def instrument(prefixes: tuple[str, ...], contexts: list) -> int:
    """Add atheris' coverage instrumentation to the already imported functions of the modules
    under ``prefixes`` (like ``atheris.instrument_all``, but scoped: instrumenting Hypothesis
    or all of transformers would slow every input for no useful feedback), and to each
    target's compiled template, whose branches are the template's own. Returns the count."""
    import atheris

    def wanted(module) -> bool:
        return isinstance(module, str) and module != __name__ and any(
            module == p or module.startswith(p + ".") for p in prefixes)

    funcs = [o for o in gc.get_objects()
             if isinstance(o, types.FunctionType) and wanted(getattr(o, "__module__", None))]
    funcs += _compiled_templates(contexts)
    count = 0
    for fn in funcs:
        try:
            atheris.instrument_func(fn)
            count += 1
        except Exception:  # noqa: BLE001 - some code objects cannot be patched; skip them
            pass
    return count


def _compiled_templates(contexts: list) -> list:
    """The render functions of the targets' templates as transformers compiled them (cached,
    so the renderer runs these very function objects); macros are nested in them."""
    from transformers.utils import chat_template_utils as tcu

    out = []
    for ctx in contexts:
        if ctx.target.source is None:
            continue
        tpl = tcu._compile_jinja_template(ctx.target.source)
        out += [tpl.root_render_func, *tpl.blocks.values()]
    return out


# --- the harness process ----------------------------------------------------------------------

def load(harness: str, path: str | Path) -> list:
    """Contexts of the targets at ``path`` with the harness' kind opened, and nothing else
    (bad targets raise `ChainfuzzError`)."""
    from ..context import Context
    from ..targets import load_targets

    if harness not in HARNESSES:
        raise UsageError(f"unknown harness {harness!r} (known: {', '.join(HARNESSES)})")
    registry.load_properties()
    return [Context(t).open({HARNESSES[harness].kind}) for t in load_targets(path)]


def _events(path: str | None) -> Callable[[dict], None]:
    if path is None:
        return lambda event: None
    out = open(path, "a", encoding="utf-8")  # noqa: SIM115 - open for the process's life

    def emit(event: dict) -> None:
        out.write(dumps_json(event, indent=None) + "\n")  # a lone surrogate in a message too
        out.flush()

    return emit


def script_main(harness: str) -> int:
    """The entry of ``fuzz/fuzz_<harness>.py``: the target is ``$CHAINFUZZ_TARGET`` or the
    first argument; chainfuzz's options, libFuzzer's flags and corpus folders follow."""
    args = sys.argv[1:]
    target = os.environ.get("CHAINFUZZ_TARGET")
    if target is None and args and not args[0].startswith("-"):
        target = args.pop(0)
    if target is None:
        sys.exit(f"usage: {sys.argv[0]} TARGET [--crash] [--crashes DIR] [libFuzzer flags] [corpus folders]")
    return main([harness, target, *args])


def _runs_files(libfuzzer: list[str]) -> bool:
    """Whether libFuzzer will run the given files once each rather than fuzz: as its driver
    decides (``AllInputsAreFiles``), every positional argument is a file, and there is one."""
    inputs = [a for a in libfuzzer if not a.startswith("-")]
    return bool(inputs) and all(os.path.isfile(a) for a in inputs)


def main(argv: list[str] | None = None) -> int:
    """Run one harness under atheris; arguments chainfuzz does not know go to libFuzzer."""
    parser = argparse.ArgumentParser(prog="python -m chainfuzz.fuzz.harness", allow_abbrev=False,
                                     description=__doc__.splitlines()[0])
    parser.add_argument("harness", choices=sorted(HARNESSES))
    parser.add_argument("target")
    parser.add_argument("--crashes", default="crashes",
                        help="where cases are written ('' for nowhere)")
    parser.add_argument("--crash", action="store_true",
                        default=os.environ.get("CHAINFUZZ_CRASH") == "1",
                        help="raise a new defect out of the fuzz target, as libFuzzer's crash "
                             "(also on with $CHAINFUZZ_CRASH=1)")
    parser.add_argument("--events", help="append one JSON line per finding here")
    parser.add_argument("--shrink-seconds", type=float, default=SHRINK_SECONDS)
    parser.add_argument("--budget", type=float, help="seconds after which the process stops itself")
    parser.add_argument("--property-dir", action="append", default=[], dest="property_dirs",
                        help="also load the properties of every *.py in this folder")
    parser.add_argument("--property", action="append", default=[], dest="properties", metavar="ID",
                        help="check only these of the harness' properties (repeatable; default all)")
    parser.add_argument("--no-instrument", action="store_true",
                        help="no coverage instrumentation (libFuzzer mutates blind)")
    args, libfuzzer = parser.parse_known_args(argv)
    limits.limit_memory()
    return _main(args, libfuzzer, time.monotonic())


def _main(args, libfuzzer: list[str], started: float) -> int:
    try:
        import atheris
    except ImportError:
        print("chainfuzz: error: atheris is not installed: pip install 'chainfuzz[fuzz]'",
              file=sys.stderr)
        return 2
    load_budget = None if args.budget is None else args.budget + LOAD_GRACE_SECONDS
    try:
        with limits.budget(load_budget):
            registry.load_properties(args.property_dirs)
            contexts = load(args.harness, args.target)
            fuzzer = Fuzzer(args.harness, contexts, Path(args.crashes) if args.crashes else None,
                            emit=_events(args.events), shrink_seconds=args.shrink_seconds,
                            crash=args.crash, crash_known=_runs_files(libfuzzer),
                            properties=args.properties)
            if not args.no_instrument:
                n = instrument(HARNESSES[args.harness].instrument, contexts)
                print(f"INFO: chainfuzz instrumented {n} functions", file=sys.stderr)
    except ChainfuzzError as exc:
        print(f"chainfuzz: error: {exc}", file=sys.stderr)
        return 2
    except limits.BudgetExhausted:
        print("chainfuzz: error: the harness' budget ran out while loading its targets", file=sys.stderr)
        return 2
    fuzzing = None
    if args.budget is not None:  # what start-up left of the budget, the shrink of a late find included
        fuzzing = max(MIN_FUZZ_SECONDS, args.budget - (time.monotonic() - started))
        libfuzzer = [a for a in libfuzzer if not a.startswith("-max_total_time=")]
        libfuzzer.append(f"-max_total_time={max(1, int(fuzzing))}")
    with limits.budget(fuzzing):
        atheris.Setup([sys.argv[0], *libfuzzer], fuzzer.one_input)
        atheris.Fuzz()  # exits the process when libFuzzer is done
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
