"""``chainfuzz fuzz``: run atheris harnesses on a target, each in a subprocess, and summarise.

Each harness runs as ``python -m chainfuzz.fuzz.harness`` under libFuzzer's ``-max_total_time``.
Several harnesses share the budget in two passes, as `runner.run_searches` shares a check's:
first an even floor each (`runner.FLOOR_SHARE` of the budget), then the rest to the harnesses
that gained most per second (new coverage features in libFuzzer's log, new defects), each
continuing from the inputs it kept in the first pass. libFuzzer ends its
process with ``exit()``, so the harness reports through a JSON-lines event file (findings, and
running counts) and libFuzzer's own ``Done N runs`` line, read back here.

Seeds are package data (`SEEDS`, one folder per harness); the inputs libFuzzer keeps go to
``--inputs DIR/<harness>`` (or a temporary folder), never into the seeds.

``--budget`` is the command's wall-clock time: each harness run gets its share of what is
left when it starts, start-up included, and stops itself at its end (``harness --budget``),
shrinking included; a harness still running `STARTUP_SECONDS` + `GRACE_SECONDS` past it is
killed. A harness process dies with chainfuzz (`limits.die_with_parent`) and searches under
the memory limit. Its log and event file are read back up to a size cap.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ..context import Context
from ..errors import ChainfuzzError, UsageError
from ..internal import limits
from ..internal.runner import FLOOR_SHARE, NEW_KEY_GAIN
from ..report import FuzzReport, HarnessRun
from ..targets import load_targets

SEEDS = Path(__file__).resolve().parent / "seeds"  # package data: one folder per harness
MAX_LEN = 4096  # bytes per input: plenty for Hypothesis' choices of one conversation
# How far past its share a harness may run before it is killed: a start-up slower than the
# share (`harness.LOAD_GRACE_SECONDS`) and its minimum fuzzing time.
STARTUP_SECONDS = 21
# Past its own budget a harness has this long to exit before it is killed.
GRACE_SECONDS = 5
# What is read back of a harness' log (the head holds start-up errors, the tail libFuzzer's
# final "Done N runs") and of its event file (~200 bytes a second of statistics, ~3 KB a finding).
LOG_HEAD, LOG_TAIL = 64 << 10, 256 << 10
MAX_EVENTS_BYTES = 16 << 20
# A second run of a harness pays its start-up again (2-5 s measured: imports, loading,
# instrumenting): a second-pass share below this is not worth it.
MIN_SECOND_PASS = 10


def plan(path: str | Path, harness: str, budget: float) -> list[tuple[str, int]]:
    """(harness, whole seconds) to run; `UsageError` when nothing applies or atheris is missing."""
    from .harness import HARNESSES, applicable

    names = list(HARNESSES) if harness == "all" else [harness]
    if harness != "all" and harness not in HARNESSES:
        raise UsageError(f"unknown harness {harness!r} (known: {', '.join(HARNESSES)}, all)")
    # An uncompilable template or an unreadable tokenizer is bad input, said before any run.
    contexts = [Context(t) for t in load_targets(path)]
    kinds = {k for ctx in contexts for k in ctx.kinds}
    names = [h for h in names if applicable(h, kinds)]
    for ctx in contexts:  # what the chosen harnesses need must open: else it is bad input
        ctx.open({HARNESSES[h].kind for h in names}).close()
    if not names:
        what = " or ".join(sorted(kinds)) or "nothing"
        need = "a template or a tokenizer" if harness == "all" else f"a {HARNESSES[harness].kind}"
        raise UsageError(f"harness {harness} needs {need}; {path} holds a {what}")
    if importlib.util.find_spec("atheris") is None:
        raise UsageError("atheris is not installed: pip install 'chainfuzz[fuzz]'")
    share = max(1, round(budget / len(names)))
    return [(h, share) for h in names]


def fuzz(path: str | Path, *, harness: str = "all", budget: float = 60, crashes_dir: Path,
         seed: int | None = None, inputs_dir: Path | None = None, instrument: bool = True,
         property_dirs: tuple[str, ...] | list[str] = (), progress=None) -> FuzzReport:
    """Fuzz the targets at ``path`` with ``harness`` ("all": every one that applies);
    ``property_dirs`` are user property folders, loaded in each harness process too."""
    if inputs_dir is not None and inputs_dir.exists() and not inputs_dir.is_dir():
        raise UsageError(f"--inputs {inputs_dir}: not a folder")
    report = FuzzReport(str(path))
    end = time.monotonic() + budget
    harnesses = plan(path, harness, budget)
    # One harness, or too little time for a second pass: an even share each, in one pass.
    floor = FLOOR_SHARE if len(harnesses) > 1 and budget * (1 - FLOOR_SHARE) >= 2 * MIN_SECOND_PASS else 1.0
    runs: dict[str, HarnessRun] = {}
    with tempfile.TemporaryDirectory(prefix="chainfuzz-inputs-") as kept:
        work = {name: (inputs_dir or Path(kept)) / name for name, _ in harnesses}
        for i, (name, _) in enumerate(harnesses):  # what is left (planning took some), shared
            left = end - time.monotonic()
            seconds = max(1, round(min(left / (len(harnesses) - i), floor * budget / len(harnesses))))
            if progress:
                progress(f"fuzzing {path} with the {name} harness for {seconds}s")
            runs[name] = _run(name, path, seconds, crashes_dir, seed, work[name], instrument, property_dirs)
            report.runs.append(runs[name])
        for name, seconds in _second_pass(runs, end - time.monotonic()):
            if progress:
                progress(f"fuzzing {path} with the {name} harness for {seconds}s more")
            runs[name].merge(_run(name, path, seconds, crashes_dir, seed, work[name], instrument,
                                  property_dirs))
    return report


def _second_pass(runs: dict[str, HarnessRun], left: float) -> list[tuple[str, int]]:
    """(harness, seconds) of the second pass: ``left`` shared by gain per second."""
    if len(runs) < 2 or left < MIN_SECOND_PASS:
        return []
    rate = {name: (run.gain + 1) / max(run.wall, 1.0) for name, run in runs.items()
            if not run.internal_error}
    total = sum(rate.values())
    shares = [(name, int(left * r / total)) for name, r in rate.items()]
    chosen = [(name, s) for name, s in shares if s >= MIN_SECOND_PASS]
    spare = left - sum(s for _, s in chosen)  # shares too small to run go to the best
    if chosen:
        best = max(chosen, key=lambda c: rate[c[0]])
        chosen = [(n, s + int(spare) if n == best[0] else s) for n, s in chosen]
    return sorted(chosen, key=lambda c: -rate[c[0]])


def _run(harness: str, path, seconds: int, crashes_dir: Path, seed: int | None,
         work: Path, instrument: bool, property_dirs, properties: tuple[str, ...] = (),
         events: Path | None = None) -> HarnessRun:
    """One harness process; ``events``: where it writes its events as they happen (a new
    file; default a temporary one), for a caller that must not lose them if it is killed."""
    with tempfile.TemporaryDirectory(prefix="chainfuzz-fuzz-") as tmp:
        tmp = Path(tmp)
        try:
            work.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UsageError(f"--inputs {work.parent}: cannot create {work}: {exc.strerror}") from None
        seeds = SEEDS / harness
        events, log = events or tmp / "events.jsonl", tmp / "fuzz.log"
        own_budget = seconds + STARTUP_SECONDS  # when it is killed
        cmd = [sys.executable, "-m", "chainfuzz.fuzz.harness", harness, str(path),
               "--crashes", str(crashes_dir), "--events", str(events), "--budget", str(seconds),
               *(a for d in property_dirs for a in ("--property-dir", str(Path(d).resolve()))),
               *(a for p in properties for a in ("--property", p)),
               *([] if instrument else ["--no-instrument"]),
               f"-max_total_time={seconds}", f"-max_len={MAX_LEN}", "-print_final_stats=1",
               f"-artifact_prefix={tmp}/", *([f"-seed={seed}"] if seed is not None else []),
               str(work), *([str(seeds)] if seeds.is_dir() else [])]
        started = time.time()
        parent = os.getpid()
        with log.open("w", encoding="utf-8") as out:
            try:
                # `chainfuzz fuzz` records findings and goes on: never crash mode, whatever
                # $CHAINFUZZ_CRASH says (it is for OSS-Fuzz's fuzzers, see harness.py)
                env = {k: v for k, v in os.environ.items() if k != "CHAINFUZZ_CRASH"}
                proc = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                      timeout=own_budget + GRACE_SECONDS, env=env,
                                      preexec_fn=lambda: limits.die_with_parent(parent))
                rc = proc.returncode
            except subprocess.TimeoutExpired:
                rc = None
        ended = time.time()
        text = _read_capped(log, LOG_HEAD, LOG_TAIL).decode("utf-8", errors="replace")
        run = _result(harness, seconds, rc, text, _read_events(events), ended,
                      limit=own_budget + GRACE_SECONDS)
        run.wall = ended - started
        return run


def _read_capped(path: Path, head: int, tail: int = 0) -> bytes:
    """The first ``head`` and last ``tail`` bytes of ``path`` (all of it if that is smaller)."""
    try:
        with path.open("rb") as f:
            size = os.fstat(f.fileno()).st_size
            if size <= head + tail:
                return f.read(head + tail)
            first = f.read(head)
            f.seek(size - tail)
            return first + b"\n" + f.read(tail)
    except FileNotFoundError:
        return b""


def _read_events(path: Path) -> list[dict]:
    out = []
    for line in _read_capped(path, MAX_EVENTS_BYTES).decode("utf-8", errors="replace").splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:  # a line cut short by a crash
            pass
    return out


def _result(harness: str, seconds: int, rc: int | None, log: str, events: list[dict],
            ended: float, limit: float | None = None) -> HarnessRun:
    """What a harness run did, from its exit status, log and events; ``limit``: the seconds
    after which it was killed."""
    run = HarnessRun(harness, seconds)
    errors = [line for line in log.splitlines() if line.startswith("chainfuzz: error: ")]
    if rc == 2 and errors:
        raise ChainfuzzError(errors[-1].removeprefix("chainfuzz: error: "))
    start = next((e["time"] for e in events if e["event"] == "start"), None)
    stats = [e for e in events if e["event"] == "stats"]
    done = re.search(r"^Done (\d+) runs in", log, re.MULTILINE)
    stopped = next((e for e in events if e["event"] == "budget"), None)  # it stopped itself
    run.executions = (int(done.group(1)) if done else stopped["executions"] if stopped
                      else stats[-1]["executions"] if stats else 0)
    run.checked = stats[-1]["checked"] if stats else 0
    if done and stats and stats[-1]["executions"]:  # scale the last count to the final total
        run.checked = round(run.checked * run.executions / stats[-1]["executions"])
    run.seconds = ended - start if start else 0.0
    run.findings = [e for e in events if e["event"] == "finding"]
    features = [int(n) for n in re.findall(r"\bft: (\d+)", log)]  # libFuzzer's coverage features
    run.gain = (features[-1] - features[0] if features else 0) + NEW_KEY_GAIN * len(run.findings)
    run.coverage = features[-1] if features else None
    run.known = [e for e in events if e["event"] == "known"]
    internal = [e for e in events if e["event"] == "internal_error"]
    if internal:
        e = internal[0]
        run.internal_error = f"{e['property']} on {e['target']}: {e['message']}"
    elif rc is None:
        run.internal_error = f"the {harness} harness did not stop within {limit or seconds:g}s"
    elif rc != 0 or not (done or stopped):
        tail = "\n".join(log.splitlines()[-15:])
        run.internal_error = f"the {harness} harness exited with status {rc}:\n{tail}"
    return run
