"""``chainfuzz fuzz``: run atheris harnesses on a target, each in a subprocess, and summarise.

Each harness runs as ``python -m chainfuzz.fuzz.harness`` under libFuzzer's ``-max_total_time``;
the budget is shared equally by the harnesses that apply to the target. libFuzzer ends its
process with ``exit()``, so the harness reports through a JSON-lines event file (findings, and
running counts) and libFuzzer's own ``Done N runs`` line, read back here.

Seeds come from ``corpus/<harness>/`` of the source tree when it is there; new inputs libFuzzer
keeps go to ``--corpus DIR/<harness>`` (or a temporary folder), never into the seeds.
"""

from __future__ import annotations

import importlib.util
import json
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from ..check import prepare
from ..errors import ChainfuzzError, UsageError
from ..targets import load_targets

SEEDS = Path(__file__).resolve().parent / "seeds"  # package data: one folder per harness
MAX_LEN = 4096  # bytes per input: plenty for Hypothesis' choices of one conversation
# Past the budget: starting up (imports, loading tokenizers, instrumenting) and the last shrink.
GRACE_SECONDS = 180


@dataclass
class HarnessRun:
    """What one harness process did."""

    harness: str
    budget: int
    executions: int = 0
    checked: int = 0  # inputs that decoded to a case and reached a property
    seconds: float = 0.0  # from the first input to the end
    wall: float = 0.0  # the whole process: starting up (imports, loading, instrumenting) too
    findings: list[dict] = field(default_factory=list)  # new: shrunk and written
    known: list[dict] = field(default_factory=list)  # already in the crash folder
    internal_error: str | None = None

    @property
    def rate(self) -> float:
        return self.executions / self.seconds if self.seconds > 0 else 0.0


@dataclass
class FuzzReport:
    path: str
    runs: list[HarnessRun] = field(default_factory=list)

    @property
    def findings(self) -> list[dict]:
        return [f for r in self.runs for f in r.findings]

    @property
    def exit_code(self) -> int:
        """3 on an internal error, 1 when an error-severity case was written, else 0."""
        if any(r.internal_error for r in self.runs):
            return 3
        return 1 if any(f["severity"] == "error" and f["written"] for f in self.findings) else 0


def plan(path: str | Path, harness: str, budget: float) -> list[tuple[str, int]]:
    """(harness, whole seconds) to run; `UsageError` when nothing applies or atheris is missing."""
    from .harness import HARNESSES, applicable

    names = list(HARNESSES) if harness == "all" else [harness]
    if harness != "all" and harness not in HARNESSES:
        raise UsageError(f"unknown harness {harness!r} (known: {', '.join(HARNESSES)}, all)")
    # An uncompilable template or an unreadable tokenizer is bad input, said before any run.
    kinds = {k for t in load_targets(path) for k in prepare(t).kinds}
    names = [h for h in names if applicable(h, kinds)]
    if not names:
        what = " or ".join(sorted(kinds)) or "nothing"
        need = "a template or a tokenizer" if harness == "all" else f"a {HARNESSES[harness].kind}"
        raise UsageError(f"harness {harness} needs {need}; {path} holds a {what}")
    if importlib.util.find_spec("atheris") is None:
        raise UsageError("atheris is not installed: pip install 'chainfuzz[fuzz]'")
    share = max(1, round(budget / len(names)))
    return [(h, share) for h in names]


def fuzz(path: str | Path, *, harness: str = "all", budget: float = 60, crashes_dir: Path,
         seed: int | None = None, corpus_dir: Path | None = None, instrument: bool = True,
         progress=None) -> FuzzReport:
    """Fuzz the targets at ``path`` with ``harness`` ("all": every one that applies)."""
    if corpus_dir is not None and corpus_dir.exists() and not corpus_dir.is_dir():
        raise UsageError(f"--corpus {corpus_dir}: not a folder")
    report = FuzzReport(str(path))
    for name, seconds in plan(path, harness, budget):
        if progress:
            progress(f"fuzzing {path} with the {name} harness for {seconds}s")
        report.runs.append(_run(name, path, seconds, crashes_dir, seed, corpus_dir, instrument))
    return report


def _run(harness: str, path, seconds: int, crashes_dir: Path, seed: int | None,
         corpus_dir: Path | None, instrument: bool) -> HarnessRun:
    with tempfile.TemporaryDirectory(prefix="chainfuzz-fuzz-") as tmp:
        tmp = Path(tmp)
        work = (corpus_dir / harness) if corpus_dir else tmp / "corpus"
        try:
            work.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UsageError(f"--corpus {corpus_dir}: cannot create {work}: {exc.strerror}") from None
        seeds = SEEDS / harness
        events, log = tmp / "events.jsonl", tmp / "fuzz.log"
        cmd = [sys.executable, "-m", "chainfuzz.fuzz.harness", harness, str(path),
               "--crashes", str(crashes_dir), "--events", str(events),
               *([] if instrument else ["--no-instrument"]),
               f"-max_total_time={seconds}", f"-max_len={MAX_LEN}", "-print_final_stats=1",
               f"-artifact_prefix={tmp}/", *([f"-seed={seed}"] if seed is not None else []),
               str(work), *([str(seeds)] if seeds.is_dir() else [])]
        started = time.time()
        with log.open("w", encoding="utf-8") as out:
            try:
                proc = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT,
                                      timeout=seconds + GRACE_SECONDS)
                rc = proc.returncode
            except subprocess.TimeoutExpired:
                rc = None
        ended = time.time()
        text = log.read_text(encoding="utf-8", errors="replace")
        run = _result(harness, seconds, rc, text, _read_events(events), ended)
        run.wall = ended - started
        return run


def _read_events(path: Path) -> list[dict]:
    if not path.exists():
        return []
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:  # a line cut short by a crash
            pass
    return out


def _result(harness: str, seconds: int, rc: int | None, log: str, events: list[dict],
            ended: float) -> HarnessRun:
    run = HarnessRun(harness, seconds)
    errors = [line for line in log.splitlines() if line.startswith("chainfuzz: error: ")]
    if rc == 2 and errors:
        raise ChainfuzzError(errors[-1].removeprefix("chainfuzz: error: "))
    start = next((e["time"] for e in events if e["event"] == "start"), None)
    stats = [e for e in events if e["event"] == "stats"]
    done = re.search(r"^Done (\d+) runs in", log, re.MULTILINE)
    run.executions = int(done.group(1)) if done else (stats[-1]["executions"] if stats else 0)
    run.checked = stats[-1]["checked"] if stats else 0
    if done and stats and stats[-1]["executions"]:  # scale the last count to the final total
        run.checked = round(run.checked * run.executions / stats[-1]["executions"])
    run.seconds = ended - start if start else 0.0
    run.findings = [e for e in events if e["event"] == "finding"]
    run.known = [e for e in events if e["event"] == "known"]
    internal = [e for e in events if e["event"] == "internal_error"]
    if internal:
        e = internal[0]
        run.internal_error = f"{e['property']} on {e['target']}: {e['message']}"
    elif rc is None:
        run.internal_error = f"the {harness} harness did not stop within {seconds + GRACE_SECONDS}s"
    elif rc != 0 or not done:
        tail = "\n".join(log.splitlines()[-15:])
        run.internal_error = f"the {harness} harness exited with status {rc}:\n{tail}"
    return run


def write_human(report: FuzzReport, out) -> None:
    """The summary: per harness, executions, rate, and the findings with their case files."""
    print(f"fuzz {report.path}", file=out)
    for r in report.runs:
        print(f"\n  {r.harness:<10} {r.executions} executions in {r.seconds:.1f}s "
              f"({r.rate:.0f}/s, budget {r.budget}s), {r.checked} inputs checked; "
              f"{len(r.findings)} new finding(s), {len(r.known)} already recorded", file=out)
        for f in r.findings:
            print(f"    {f['severity'].upper():<7} {f['property']}: {f['message']}", file=out)
            print(f"            {f['path'] if f['written'] else '(not written)'}", file=out)
        for f in r.known:
            print(f"    known   {f['property']}: {f['message']} ({f['signature']})", file=out)
        if r.internal_error:
            print(f"    INTERNAL ERROR {r.internal_error}", file=out)
    written = [f for f in report.findings if f["written"]]
    errors = sum(f["severity"] == "error" for f in written)
    print(f"\n{len(written)} case(s) written ({errors} error(s), {len(written) - errors} warning(s)); "
          f"{sum(len(r.known) for r in report.runs)} defect(s) found again, already recorded",
          file=out)
