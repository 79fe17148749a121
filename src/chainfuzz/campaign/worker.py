"""A campaign worker: a process that runs the slices the scheduler hands it, one at a time.

``python -m chainfuzz.campaign.worker`` reads one JSON request per line and answers one line
(`internal.worker.serve`). A worker keeps each pair's opened context and `Search` between
slices, so a pair it ran before continues where it stopped (its Hypothesis rounds, its
mutation corpus); a pair new to it starts from what the example database remembers, which
every worker shares (a folder, or Redis through `memory.open_database`). An atheris pair's
slice is one run of its harness process (`fuzz.launch`), continuing from the inputs it kept.

Findings are recorded the moment they are found: the case file first (`cases.write`, one
writer wins per signature), then one line appended to the campaign's findings log, so a
campaign killed at any moment has both.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

from .. import cases, registry
from ..context import Context
from ..errors import ChainfuzzError
from ..internal import limits
from ..internal.memory import Memory, open_database, target_key
from ..internal.runner import Finding, RunSettings, Search
from ..internal.text import dumps_json
from ..targets import load_target

# Per finding, as `check`'s default: the clock of the slice stops while it shrinks.
SHRINK_SECONDS = 30.0
# Opening a pair's context may start engines: the tiny model's take 5-30 s here (transformers
# and llama.cpp), far longer than a slice. Opening has this long, whatever the slice's length.
OPEN_SECONDS = 300.0
# A slice's budget runs this long past its end: the search stops itself at the end, and a
# budget that ran out mid-check would retire the search's properties for good.
SLACK_SECONDS = 10.0


def append_line(path: Path, record: dict) -> None:
    """Append one JSON line with a single write on an O_APPEND descriptor, then fsync: lines of
    several workers never interleave, and a line written survives a SIGKILL of everything."""
    data = (dumps_json(record, indent=None) + "\n").encode("utf-8")
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)


class Slices:
    """The worker's state: opened contexts and searches, by pair id."""

    def __init__(self, setup: dict) -> None:
        self.crashes = Path(setup["crashes"])
        self.log = Path(setup["findings_log"])
        self.known = frozenset(setup.get("known", ()))
        self.seed = setup.get("seed")
        self.database = open_database(setup.get("database"), setup.get("redis"))
        self.inputs = Path(setup["inputs"])
        self.property_dirs = tuple(setup.get("property_dirs", ()))
        registry.load_properties(self.property_dirs)
        self.contexts: dict[str, Context] = {}
        self.searches: dict[str, Search] = {}
        self.slices = 0  # atheris slices run by this process

    def handle(self, request: dict) -> dict:
        try:
            if request["op"] == "slice":
                return self._slice(request)
            return {"error": f"unknown request {request['op']!r}"}
        except ChainfuzzError as exc:
            return {"failed": str(exc)}
        except limits.BudgetExhausted:
            return {"failed": f"it did not open within {OPEN_SECONDS:g} s"}
        except Exception as exc:  # noqa: BLE001 - chainfuzz's own bug: this pair stops, the worker goes on
            return {"failed": f"internal error: {type(exc).__name__}: {exc}", "internal": True}

    # --- a Hypothesis pair ------------------------------------------------------------------

    def _context(self, pair: dict) -> Context:
        key = f"{pair['path']}\0{pair.get('template_name')}\0{','.join(pair['engines'])}"
        if key not in self.contexts:
            target = load_target(pair["path"], pair.get("template_name"))
            self.contexts[key] = Context(target, engines=tuple(pair["engines"]))
        return self.contexts[key]

    def _slice(self, request: dict) -> dict:
        pair = request["pair"]
        if pair["mode"] == "atheris":
            return self._atheris(request)
        search = self.searches.get(pair["id"])
        started = time.monotonic()
        if search is None:
            ctx = self._context(pair)
            props = [registry.get(p) for p in pair["properties"]]
            with limits.budget(OPEN_SECONDS):
                ctx.open({p.applies_to for p in props})
            run = RunSettings(max_examples=None, seed=request.get("seed", self.seed),
                              shrink_seconds=SHRINK_SECONDS, database=self.database, known=self.known,
                              max_findings=1000)
            memory = None if self.database is None else Memory(self.database, target_key(ctx.target),
                                                               [p.id for p in props])
            search = Search(props, ctx, run, self._recorder(pair, ctx), memory=memory, label=pair["id"])
            self.searches[pair["id"]] = search
        before = _checks(search)
        left = max(0.5, request["seconds"] - (time.monotonic() - started))
        with limits.budget(left + SLACK_SECONDS, shrink_until=time.monotonic() + left + SHRINK_SECONDS):
            gain = search.step(time.monotonic() + left)
        return {"gain": gain, "seconds": time.monotonic() - started,
                "examples": _checks(search) - before,
                "known": sorted(_known_keys(search)),
                "internal_error": next((r.internal_error for r in search.results.values()
                                        if r.internal_error), None),
                "done": search.done, "coverage": len(search.seen)}

    def _recorder(self, pair: dict, ctx: Context):
        def on_finding(finding: Finding) -> None:
            rec = cases.record(finding, ctx, self.crashes)
            path, written = cases.write(rec, self.crashes)
            append_line(self.log, {
                "signature": finding.signature, "pair": pair["id"], "target": ctx.target.name,
                "property": finding.property, "severity": finding.severity, "key": finding.key,
                "message": finding.message, "mode": "hypothesis", "case_file": str(path),
                "written": written, "time": time.time(), "supersedes": finding.supersedes,
                "worker": os.getpid()})

        return on_finding

    # --- an atheris pair --------------------------------------------------------------------

    def _atheris(self, request: dict) -> dict:
        from ..fuzz import launch

        pair = request["pair"]
        seconds = max(1, int(request["seconds"]))
        work = self.inputs / _safe(pair["id"])
        # The harness writes its events as they happen into a file of this slice's own, beside
        # the findings log: the parent reads its findings from there (`run.Campaign._logged`),
        # so a campaign killed mid-slice keeps them.
        self.slices += 1
        events = self.log.with_name(f"{self.log.stem}.atheris-{os.getpid()}-{self.slices}.jsonl")
        run = launch._run(pair["harness"], pair["path"], seconds, self.crashes, request.get("seed"),
                          work, True, self.property_dirs,
                          tuple(pair["properties"]), events=events)
        return {"gain": run.gain, "seconds": run.wall, "examples": run.executions,
                "known": sorted({f"{e['property']}\0{e['signature']}" for e in run.known}),
                "internal_error": run.internal_error, "done": False,
                "coverage": run.coverage}


def _checks(search: Search) -> int:
    """Property checks so far: a slice's inputs, for the scheduler's rate."""
    return sum(r.tries for r in search.results.values())


def _known_keys(search: Search) -> set[str]:
    """The signatures of known defects this search has met again (its "known:" outcomes)."""
    out = set()
    for seen in search.seen:
        if len(seen) == 3 and seen[1].startswith("known:"):
            from ..internal.runner import signature

            out.add(f"{seen[0]}\0{signature(seen[0], search.ctx.target.name, seen[1][6:])}")
    return out


def _safe(text: str) -> str:
    import re

    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text)[:120]


def main() -> None:
    from ..internal.worker import serve

    limits.limit_memory()
    setup = json.loads(Path(sys.argv[1]).read_text(encoding="utf-8"))

    def start():
        return Slices(setup).handle

    serve(start)


if __name__ == "__main__":
    main()
