"""``chainfuzz campaign``: plan the pairs, run the scheduler over worker processes, report.

The parent process never searches: it plans (targets, pairs, the baseline of known defects),
hands slices to `worker` processes, cuts off a slice that overruns (the pair is *hung*, its
worker restarted), keeps the state on disk (`state`), and writes the reports (`reports`).
"""

from __future__ import annotations

import collections
import datetime as dt
import json
import os
import random
import selectors
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

from .. import cases, registry, report
from ..errors import ChainfuzzError, UsageError
from ..internal import limits
from ..internal.worker import kill_group
from ..targets import load_targets
from . import config as configuration
from .scheduler import PairStats, Scheduler
from .state import StateDir, finding_records, read_lines, write_json
from .worker import OPEN_SECONDS

SAVE_INTERVAL = 2.0  # seconds between state saves: what a SIGKILL can cost of the budget's count
# Replaying the crash folder's cases of the campaign's targets at the start of a run may take
# this share of the budget; the rest are replayed next run.
REPLAY_SHARE = 0.1
TIMELINE_POINTS = 200  # samples of the timeline per run


@dataclass
class Pair:
    """A scheduling unit: one target's properties that share their inputs (one `Search`), or
    one atheris harness on a target file."""

    id: str
    target: str  # the target's name, as in signatures and case files
    path: str
    template_name: str | None
    properties: list[str]
    mode: str  # "hypothesis" or "atheris"
    engines: list[str]
    harness: str | None = None
    slow_open: bool = False  # it starts engines: a first slice may take `worker.OPEN_SECONDS` more


@dataclass
class Options:
    budget: float | None = None
    out: Path = Path("campaign-out")
    crashes: Path = Path("crashes")
    workers: int = 1
    redis: str | None = None
    seed: int | None = None


# --- planning -----------------------------------------------------------------------------

def plan(cfg: configuration.Config) -> list[Pair]:
    """Every pair of the campaign; bad input (an unreadable target, a glob naming nothing)
    raises `UsageError` before anything runs."""
    import importlib.util

    from ..fuzz.harness import HARNESSES, harness_properties
    from ..internal.runner import group

    registry.load_properties(cfg.property_dirs)
    ids = [p.id for p in registry.all_properties()]
    configuration.check_patterns(cfg, ids)
    atheris = importlib.util.find_spec("atheris") is not None
    pairs: list[Pair] = []
    names: dict[str, int] = {}
    for spec in cfg.targets:
        wanted = configuration.select(spec.properties, ids)
        for path in _paths(spec):
            try:
                targets = load_targets(path)
            except ChainfuzzError as exc:
                if spec.source == "corpus":
                    continue  # one unreadable file of a corpus is not the campaign's bad input
                raise UsageError(f"{cfg.path}: target {spec.index}: {exc}") from None
            for t in targets:
                if spec.source == "path" and "template" in t.kinds:
                    from ..template.render import check_compiles

                    try:  # milliseconds, and said before anything runs (a corpus' own are pairs that fail)
                        check_compiles(t)
                    except ChainfuzzError as exc:
                        raise UsageError(f"{cfg.path}: target {spec.index}: {exc}") from None
                label = spec.name or t.name
                if spec.name and len(targets) > 1:
                    label = f"{spec.name}/{t.template_name or t.name}"
                # The kinds the target holds, not those usable here (`Context.kinds`): telling
                # needs the tokenizer loaded, 20 s for a vocabulary GGUF, a worker's job. One
                # that cannot load is a failed pair, with the reason.
                props = registry.select(wanted, t.kinds)
                if "hypothesis" in spec.modes:
                    for alike in group(props):
                        pid = f"{label}::{'+'.join(p.id for p in alike)}"
                        names[pid] = names.get(pid, 0) + 1
                        if names[pid] > 1:
                            pid = f"{pid}#{names[pid]}"
                        pairs.append(Pair(pid, t.name, str(path), t.template_name, [p.id for p in alike],
                                          "hypothesis", list(spec.engines),
                                          slow_open=alike[0].applies_to == "engine"))
            if "atheris" in spec.modes and atheris:
                kinds = {k for t in targets for k in t.kinds}
                for name, h in HARNESSES.items():
                    props = [p.id for p in harness_properties(name) if p.id in wanted]
                    if h.kind in kinds and props:
                        pid = f"{spec.name or Path(path).name}::harness:{name}"
                        names[pid] = names.get(pid, 0) + 1
                        if names[pid] > 1:
                            pid = f"{pid}#{names[pid]}"
                        pairs.append(Pair(pid, Path(path).name, str(path), None, props, "atheris",
                                          list(spec.engines), harness=name))
    if not pairs:
        raise UsageError(f"{cfg.path}: no property applies to any of its targets")
    return pairs


def _paths(spec: configuration.TargetSpec) -> list[str]:
    """The files or folders a target table names: a corpus' templates and vocabularies."""
    from .. import corpus

    if spec.source == "corpus":
        root = corpus.fetch(spec.value)
        templates = sorted((root / "templates").glob("*.jinja")) if (root / "templates").is_dir() else []
        return [str(p) for p in templates + corpus.tokenizer_paths(spec.value)]
    if spec.source == "url":
        return [spec.model]
    return [spec.value]


# --- the baseline: what was known before this run -----------------------------------------

def baseline(crashes: Path, history: dict, pairs: list[Pair]) -> dict:
    """Signatures known before this run: the crash folder's open cases and earlier runs'
    findings (counted when met again, not filed again), and the cases marked fixed (a
    failure with their defect is a regression)."""
    known: dict[str, dict] = {}
    fixed: dict[str, dict] = {}
    paths = {str(Path(p.path).resolve()) for p in pairs}
    for sig, info in history.get("signatures", {}).items():
        known[sig] = {**info, "source": "earlier run"}
    for path in (cases.case_files([crashes]) if crashes.is_dir() else []):
        try:
            rec = cases.read(path)
        except ChainfuzzError:
            continue
        entry = {"property": rec["property"], "target": rec["target"]["name"], "key": rec.get("key"),
                 "case_file": str(path.resolve()), "severity": rec.get("severity", "error"),
                 "ours": str(cases.resolve_path(rec["target"]["path"], path).resolve()) in paths}
        sig = rec.get("signature") or ""
        (fixed if rec.get("status") == "fixed" else known)[sig] = entry
    for sig in fixed:
        known.pop(sig, None)
    return {"known": known, "fixed": fixed}


def classify(finding: dict, base: dict) -> str:
    """new, known or regressed, against the baseline; a recorded key from before keys named
    their site matches the key it became (`cases.same_key`)."""
    sig = finding["signature"]
    for status, table in (("regressed", base["fixed"]), ("known", base["known"])):
        if sig in table:
            return status
        for entry in table.values():
            if (entry["property"] == finding["property"] and entry["target"] == finding["target"]
                    and finding.get("key") and cases.same_key(entry.get("key"), finding["key"])):
                return status
    return "new"


def replay_cases(base: dict, seconds: float) -> tuple[list[dict], list[dict], int]:
    """Replay the baseline's cases of this campaign's targets: (regressions: fixed cases that
    fail again, now passing: open cases that no longer fail, cases left for lack of time)."""
    from ..replayer import replay

    regressed, passing, left = [], [], 0
    end = time.monotonic() + seconds
    todo = [(s, e, "fixed") for s, e in base["fixed"].items() if e.get("ours")]
    todo += [(s, e, "open") for s, e in base["known"].items() if e.get("ours") and e.get("case_file")]
    for sig, entry, status in todo:
        if time.monotonic() > end:
            left += 1
            continue
        outcome = replay(Path(entry["case_file"]))
        if status == "fixed" and outcome.failing:
            regressed.append({"signature": sig, **_entry(entry), "status": "regressed", "mode": "replay",
                              "message": outcome.detail})
        elif status == "open" and outcome.status == "fixed":
            passing.append({"signature": sig, **_entry(entry)})
    return regressed, passing, left


def _entry(entry: dict) -> dict:
    return {k: entry.get(k) for k in ("property", "target", "key", "case_file", "severity")}


# --- workers ------------------------------------------------------------------------------

class WorkerProc:
    """One worker process and the slice it is running."""

    def __init__(self, index: int, setup_file: Path, log: Path, hang_seconds: float) -> None:
        self.index, self.setup_file, self.log, self.hang_seconds = index, setup_file, log, hang_seconds
        self.proc: subprocess.Popen | None = None
        self.busy: tuple[str, float, float] | None = None  # (pair id, started, deadline)
        self.opened: set[str] = set()  # pairs whose search lives in this process

    def start(self) -> None:
        parent = os.getpid()
        with open(self.log, "a", encoding="utf-8") as err:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "chainfuzz.campaign.worker", str(self.setup_file)],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err, text=True, encoding="utf-8",
                start_new_session=True,  # Ctrl-C reaches the parent alone, which stops the workers
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
                preexec_fn=lambda: limits.die_with_parent(parent))
        self.opened = set()

    def send(self, request: dict, pair: str, seconds: float, slow_open: bool) -> None:
        if self.proc is None or self.proc.poll() is not None:
            self.start()
        grace = self.hang_seconds + (OPEN_SECONDS if slow_open and pair not in self.opened else 0)
        now = time.monotonic()
        self.busy = (pair, now, now + seconds + grace)
        self.proc.stdin.write(json.dumps(request) + "\n")
        self.proc.stdin.flush()

    def stop(self) -> None:
        if self.proc is not None:
            kill_group(self.proc, grace=2.0)
            for stream in (self.proc.stdin, self.proc.stdout):
                try:
                    stream.close()
                except OSError:
                    pass
            self.proc = None
        self.busy = None


# --- the campaign ---------------------------------------------------------------------------

def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).replace(microsecond=0).isoformat()


@dataclass
class Campaign:
    cfg: configuration.Config
    opts: Options
    progress: Callable[[str], None] | None = None
    live: Callable[[dict], None] | None = None

    def run(self) -> dict:
        """Run (or resume) the campaign; the report's data, with its ``exit_code``."""
        opts, cfg = self.opts, self.cfg
        budget = opts.budget if opts.budget is not None else cfg.budget
        if budget is None:
            raise UsageError(f"{cfg.path}: no budget: give budget = SECONDS in the file or --budget")
        if opts.redis:
            from ..internal.memory import open_database

            open_database(None, opts.redis)  # a URL that does not answer is bad input, said now
        pairs = plan(cfg)
        state_dir = StateDir(opts.out)
        history = state_dir.load_history()
        state = state_dir.load()
        resume = (state is not None and state["status"] == "running"
                  and state["config"] == cfg.fingerprint and state["budget"] == budget)
        if resume:
            state["resumes"] += 1
            self._say(f"resuming run {state['run']}: {state['elapsed']:.0f} of {budget:g} s spent")
        else:
            if state is not None and state["status"] == "running":
                # A run that was stopped and is not resumed (the file or the budget changed):
                # what it found is known from now on.
                for r in (r for path in state_dir.finding_files(state["run"])
                          for r in finding_records(read_lines(path))):
                    history["signatures"].setdefault(r["signature"], {
                        "first_run": state["run"], "last_run": state["run"], "property": r["property"],
                        "target": r.get("target"), "key": r.get("key"), "severity": r.get("severity"),
                        "case_file": r.get("case_file")})
                history["runs"].append({"run": state["run"], "ended": _now(), "elapsed": state["elapsed"],
                                        "new": 0, "regressed": 0, "fixed": 0, "errors": 0, "warnings": 0,
                                        "stopped": True})
                state_dir.save_history(history)
            run_no = len(history["runs"]) + 1
            seed = opts.seed if opts.seed is not None else random.SystemRandom().randrange(2**31)
            base = baseline(opts.crashes, history, pairs)
            state = {"format": 1, "name": cfg.name, "config": cfg.fingerprint, "budget": budget,
                     "run": run_no, "status": "running", "started": _now(), "elapsed": 0.0,
                     "resumes": 0, "seed": seed, "pairs": {}, "timeline": [], "baseline": base,
                     "replay": None}
        self.state, self.history, self.state_dir, self.pairs = state, history, state_dir, pairs
        stats = {p.id: PairStats(**state["pairs"].get(p.id, {})) for p in pairs}
        self.stats = stats
        self.known_met: set[str] = set(state.get("known_met", []))
        self._log_cache: dict = {"offsets": {}, "found": {}}  # the findings log read so far (`_logged`)
        self._announced: set[str] = set()  # signatures said on the progress stream
        self._t0, self._spent0 = time.monotonic(), state["elapsed"]
        interrupted = False
        old = signal.signal(signal.SIGTERM, _raise_interrupt)
        try:
            if state["replay"] is None:
                self._replay(budget)
            self._loop(budget)
        except KeyboardInterrupt:
            interrupted = True
        finally:
            signal.signal(signal.SIGTERM, old)
            self._stop_workers()
            self._save()
        return self._finish(interrupted)

    # --- the loop -------------------------------------------------------------------------

    def elapsed(self) -> float:
        return self._spent0 + (time.monotonic() - self._t0)

    def _replay(self, budget: float) -> None:
        base = self.state["baseline"]
        ours = sum(1 for t in (base["fixed"], base["known"]) for e in t.values() if e.get("ours"))
        if ours:
            self._say(f"replaying {ours} recorded case(s) of these targets")
        regressed, passing, left = replay_cases(base, REPLAY_SHARE * budget)
        self.state["replay"] = {"regressed": regressed, "passing": passing, "left": left}
        for r in regressed:
            self._say(f"REGRESSION {r['property']} on {r['target']}: {r['case_file']}")
        self._save()

    def _setup(self) -> Path:
        opts, st = self.opts, self.state
        base = st["baseline"]
        found = set(self._logged())
        setup = {"crashes": str(opts.crashes.resolve()),
                 "findings_log": str(self.state_dir.findings_log(st["run"]).resolve()),
                 "known": sorted(set(base["known"]) | found), "seed": st["seed"],
                 "database": str(self.state_dir.examples.resolve()), "redis": opts.redis,
                 "inputs": str(self.state_dir.inputs.resolve()),
                 "property_dirs": list(self.cfg.property_dirs)}
        path = self.state_dir.root / "worker-setup.json"
        write_json(path, setup)
        return path

    def _loop(self, budget: float) -> None:
        opts = self.opts
        pairs = {p.id: p for p in self.pairs}
        ranks, seen = {}, collections.Counter()
        for p in self.pairs:  # each pair's place among its target's
            ranks[p.id], seen[p.path] = seen[p.path], seen[p.path] + 1
        scheduler = Scheduler(self.stats, {p.id: p.mode for p in self.pairs}, budget,
                              seed=self.state["seed"], equal=self.cfg.schedule == "equal", ranks=ranks)
        setup = self._setup()
        self.workers = [WorkerProc(i, setup, self.state_dir.root / f"worker-{i}.log", self.cfg.hang_seconds)
                        for i in range(max(1, opts.workers))]
        sel = selectors.DefaultSelector()
        last_save = last_sample = 0.0
        interval = max(1.0, budget / TIMELINE_POINTS)
        while True:
            left = budget - self.elapsed()
            running = {w.busy[0] for w in self.workers if w.busy}
            for w in self.workers:
                if w.busy or left <= 0.5:
                    continue
                choice = scheduler.next(left, running)
                if choice is None and running and len(self.workers) > 1:
                    # More workers than pairs to run: a second worker searches a busy pair
                    # with another seed; what either finds, the other replays (`memory`).
                    choice = scheduler.next(left, running, allow_busy=True)
                if choice is None:
                    continue
                pid, seconds = choice
                w.send({"op": "slice", "pair": asdict(pairs[pid]), "seconds": seconds,
                        "seed": (self.state["seed"] * 1000003 + w.index * 7919 + self.stats[pid].slices) % 2**32},
                       pid, seconds, pairs[pid].slow_open)
                if w.proc is not None:
                    try:
                        sel.register(w.proc.stdout, selectors.EVENT_READ, w)
                    except KeyError:
                        pass
                running.add(pid)
            busy = [w for w in self.workers if w.busy]
            if not busy:
                break
            soonest = min(w.busy[2] for w in busy)
            for key, _ in sel.select(timeout=max(0.05, min(1.0, soonest - time.monotonic()))):
                w = key.data
                line = w.proc.stdout.readline() if w.proc else ""
                if not line:
                    self._worker_died(w, sel)
                else:
                    self._reply(w, json.loads(line))
            for w in self.workers:
                if w.busy and time.monotonic() > w.busy[2]:
                    self._hung(w, sel)
            now = time.monotonic()
            if now - last_sample >= interval:
                last_sample = now
                self._sample()
            if now - last_save >= SAVE_INTERVAL:
                last_save = now
                self._save()
            if self.live:
                self.live(self._live_status(budget))
        self._sample()

    def _reply(self, w: WorkerProc, reply: dict) -> None:
        pid = w.busy[0]
        w.busy = None
        w.opened.add(pid)
        st = self.stats[pid]
        if "failed" in reply or "error" in reply:
            st.state, st.message = "failed", reply.get("failed") or reply.get("error")
            st.internal = bool(reply.get("internal"))
            self._say(f"{pid}: failed: {st.message}")
            return
        st.add(reply["seconds"], reply["examples"], reply["gain"])
        if reply.get("coverage") is not None:
            st.coverage = reply["coverage"]
        for entry in reply.get("known", []):
            self.known_met.add(entry.split("\0")[-1])
        if reply.get("internal_error"):
            st.state, st.message = "failed", f"internal error: {reply['internal_error']}"
            st.internal = True
            self._say(f"{pid}: {st.message}")
        elif reply.get("done"):
            st.state = "done"
        self._announce()

    def _worker_died(self, w: WorkerProc, sel) -> None:
        pid = w.busy[0] if w.busy else None
        code = w.proc.poll() if w.proc else None
        self._unregister(w, sel)
        w.stop()
        if pid:
            st = self.stats[pid]
            st.state, st.message = "failed", f"its worker died (exit status {code}); see {w.log}"
            self._say(f"{pid}: {st.message}")

    def _hung(self, w: WorkerProc, sel) -> None:
        pid, started, deadline = w.busy
        self._unregister(w, sel)
        w.stop()
        st = self.stats[pid]
        st.state = "hung"
        st.message = f"a slice did not end within {deadline - started:.0f} s: cut off, its worker restarted"
        st.seconds += time.monotonic() - started
        self._say(f"{pid}: hung: {st.message}")

    @staticmethod
    def _unregister(w: WorkerProc, sel) -> None:
        if w.proc is not None:
            try:
                sel.unregister(w.proc.stdout)
            except (KeyError, ValueError):
                pass

    def _stop_workers(self) -> None:
        for w in getattr(self, "workers", []):
            w.stop()

    # --- findings ---------------------------------------------------------------------------

    def findings(self) -> list[dict]:
        """This run's findings, one per signature, classified against the baseline."""
        base = self.state["baseline"]
        out = dict(self._logged())
        for sig in [f["supersedes"] for f in out.values() if f.get("supersedes")]:
            out.pop(sig, None)  # a lenient warning replaced by the same defect's error
        for r in (self.state.get("replay") or {}).get("regressed", []):
            if r["signature"] not in out:
                rec = cases.read_or_none(r.get("case_file"))
                out[r["signature"]] = {**r, "input": (rec or {}).get("input", {}), "found_at": 0.0,
                                       "first_run": self.state["run"]}
        for sig in self.known_met & set(base["fixed"]):  # atheris met a fixed case's defect
            if sig not in out:
                e = base["fixed"][sig]
                rec = cases.read_or_none(e.get("case_file"))
                out[sig] = {"signature": sig, **_entry(e), "status": "regressed", "mode": "atheris",
                            "message": (rec or {}).get("message", ""), "input": (rec or {}).get("input", {}),
                            "found_at": 0.0, "first_run": self.state["run"]}
        return list(out.values())

    def _logged(self) -> dict[str, dict]:
        """The findings logged so far, one per signature, classified: the workers' findings log
        and the atheris harnesses' event files beside it (each read on from where the last
        call stopped: a sample or a reply reads them, and a campaign logs thousands)."""
        cache = self._log_cache
        started = dt.datetime.fromisoformat(self.state["started"]).timestamp()
        for path in self.state_dir.finding_files(self.state["run"]):
            for r in finding_records(read_lines(path, cache["offsets"])):
                if r["signature"] in cache["found"]:
                    continue
                rec = cases.read_or_none(r.get("case_file"))
                f = {"signature": r["signature"], "target": r.get("target") or "", "property": r["property"],
                     "severity": r.get("severity", "error"), "key": r.get("key") or (rec or {}).get("key") or "",
                     "message": r.get("message", ""), "mode": r.get("mode", "hypothesis"),
                     "case_file": r.get("case_file"), "input": (rec or {}).get("input", {}),
                     "found_at": max(0.0, r.get("time", started) - started),
                     "first_run": self.history["signatures"].get(r["signature"], {}).get("first_run",
                                                                                          self.state["run"]),
                     "supersedes": r.get("supersedes")}
                f["status"] = classify(f, self.state["baseline"])
                cache["found"][r["signature"]] = f
        return cache["found"]

    def _announce(self) -> None:
        seen = self._announced
        for f in self.findings():
            if f["signature"] not in seen:
                seen.add(f["signature"])
                if f["status"] != "known":
                    self._say(f"{f['status'].upper()} {f['severity']} {f['property']} on {f['target']}: "
                              f"{f['message'][:200]} ({f.get('case_file') or 'no case file'})")

    # --- state and reports ----------------------------------------------------------------

    def _sample(self) -> None:
        found = self.findings()
        self.state["timeline"].append({
            "t": round(self.elapsed(), 2), "examples": sum(s.examples for s in self.stats.values()),
            "findings": len(found), "errors": sum(f["severity"] == "error" for f in found),
            "coverage": sum(s.coverage or 0 for s in self.stats.values())})

    def _save(self) -> None:
        self.state["elapsed"] = round(self.elapsed(), 3)
        self.state["pairs"] = {pid: asdict(s) for pid, s in self.stats.items()}
        self.state["known_met"] = sorted(self.known_met)
        self.state_dir.save(self.state)

    def _live_status(self, budget: float) -> dict:
        running = [w.busy[0] for w in self.workers if w.busy]
        found = self._announced
        rate = sum(s.examples for s in self.stats.values()) / max(1e-9, sum(s.seconds for s in self.stats.values()))
        return {"left": max(0.0, budget - self.elapsed()), "running": running, "findings": len(found),
                "rate": rate, "pairs": len(self.stats)}

    def _finish(self, interrupted: bool) -> dict:
        st, base = self.state, self.state["baseline"]
        failed = [s for s in self.stats.values() if s.state == "failed" and not s.slices and not s.internal]
        if not interrupted and len(failed) == len(self.stats):  # nothing could even start
            raise UsageError(f"no pair could run: {failed[0].message}")
        found = self.findings()
        internal = any(getattr(s, "internal", False) for s in self.stats.values())
        new = [f for f in found if f["status"] == "new"]
        regressed = [f for f in found if f["status"] == "regressed"]
        errors = any(f["severity"] == "error" for f in new) or bool(regressed)
        code = report.INTERRUPTED if interrupted else report.exit_code(internal=internal, errors=errors)
        passing = (st.get("replay") or {}).get("passing", [])
        fixed = [{"signature": p["signature"], "target": p["target"], "property": p["property"],
                  "key": p.get("key") or "", "case_file": p.get("case_file"), "since_run": st["run"]}
                 for p in passing]
        known_count = len({f["signature"] for f in found if f["status"] == "known"}
                          | (self.known_met & set(base["known"])))
        if not interrupted:
            st["status"] = "finished"
            summary = {"run": st["run"], "ended": _now(), "elapsed": round(self.elapsed(), 1),
                       "new": len(new), "regressed": len(regressed), "fixed": len(fixed),
                       "errors": sum(f["severity"] == "error" for f in found),
                       "warnings": sum(f["severity"] == "warning" for f in found)}
            self.history["runs"] = [r for r in self.history["runs"] if r["run"] != st["run"]] + [summary]
            for f in found:
                info = self.history["signatures"].setdefault(f["signature"], {
                    "first_run": st["run"], "property": f["property"], "target": f["target"],
                    "key": f["key"], "severity": f["severity"], "case_file": f.get("case_file")})
                info["last_run"] = st["run"]
            self.state_dir.save_history(self.history)
        self.state_dir.save(st)
        pairs = []
        for p in self.pairs:
            s = self.stats[p.id]
            for prop in (p.properties if p.mode == "hypothesis" else [f"harness:{p.harness}"]):
                mine = [f for f in found if f["target"] == p.target and f["property"] == prop
                        or (p.mode == "atheris" and f.get("mode") == "atheris" and f["target"] == p.target)]
                pairs.append({"id": p.id, "target": p.target, "property": prop, "mode": p.mode,
                              "seconds": round(s.seconds, 2), "slices": s.slices, "examples": s.examples,
                              "examples_per_second": round(s.examples / s.seconds, 1) if s.seconds else 0.0,
                              "gain": s.gain, "coverage": s.coverage,
                              "errors": sum(f["severity"] == "error" for f in mine),
                              "warnings": sum(f["severity"] == "warning" for f in mine),
                              "state": s.state, "message": s.message})
        from ..internal.memory import safe_url

        data = {
            "chainfuzz_campaign": 1, "name": self.cfg.name, "config": str(self.cfg.path), "run": st["run"],
            "started": st["started"], "ended": _now(), "budget": st["budget"],
            "elapsed": round(self.elapsed(), 2), "workers": self.opts.workers,
            "redis": safe_url(self.opts.redis) if self.opts.redis else None, "seed": st["seed"],
            "exit_code": code, "interrupted": interrupted, "resumes": st["resumes"],
            "changes": {"new": new, "regressed": regressed, "fixed": fixed, "known": known_count},
            "findings": [{k: v for k, v in f.items() if k != "supersedes"} for f in found],
            "fixed": fixed, "pairs": pairs, "timeline": st["timeline"], "history": self.history["runs"],
        }
        from .reports import write_reports

        write_reports(data, self.opts.out)
        return data

    def _say(self, text: str) -> None:
        if self.progress:
            self.progress(text)


def _raise_interrupt(signum, frame):  # SIGTERM (a CronJob's pod stopping) ends it like Ctrl-C
    raise KeyboardInterrupt


def campaign(config_path: str | Path, opts: Options, *, progress=None, live=None) -> dict:
    """Load ``config_path`` and run the campaign; the report's data."""
    cfg = configuration.load(config_path)
    return Campaign(cfg, opts, progress, live).run()
