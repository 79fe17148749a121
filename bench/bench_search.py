"""How well chainfuzz's search finds defects and spends its time, measured in one run.

Default: time to first detection of each planted defect of ``tests/properties/
test_search_defaults.py`` (the ``search_*`` templates, the tokenizer that strips a leading
space), median over seeds, beside a plain-Hypothesis baseline:

- chainfuzz: ``chainfuzz check PATH --budget CAP --seed S --crashes DIR`` in a subprocess, at
  default settings otherwise; detection is the appearance of a case file of the property with
  the expected key (written once the finding is shrunk and re-checked), timed from the launch
  of the process (start-up included; what a one-input check costs is printed). The process is
  stopped once every defect of its target is found.
- baseline: what a user writes in ten lines of plain Hypothesis: ``messages`` drawn from
  ``st.lists(st.fixed_dictionaries({"role": sampled_from(four roles), "content": st.text()}))``
  (assistant messages may carry tool calls where the defect is in them; ``{"text": st.text()}``
  for a tokenizer), checked by the same property function in this process. Detection is
  Hypothesis reporting a `chainfuzz.Failure` with the expected key (after its own shrinking),
  timed from the start of the Hypothesis run; other failures count as passes.

Both stop at CAP seconds ("not found"); ratio is baseline over chainfuzz (above 1: chainfuzz
is faster).

``--checked``: the fraction of generated inputs each template property really checks
(examples / (examples + skipped), from ``check --json`` at ``--max-examples 200 --seed 1``)
over the real templates: per property the minimum, the median, and how many templates fall
under 80%.

``--throughput``: inputs checked per second end to end (``check --budget B`` on one template,
all properties: examples over the run's seconds) against transformers' raw render rate on the
same template (`bench_template.raw_renderer`), for bench_template's three templates; target:
at least 25%.

Usage: python bench/bench_search.py [--seeds N] [--cap S] [--checked [--jobs N] [--limit N]] [--throughput [--budget B]]
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")  # before transformers is imported
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # planted_tokenizers

import planted_tokenizers as pt  # noqa: E402
from hypothesis import HealthCheck, Phase, given, settings  # noqa: E402
from hypothesis import seed as hseed  # noqa: E402
from hypothesis.errors import Flaky  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from measure import draw_cases, rate  # noqa: E402

from chainfuzz import Failure, corpus  # noqa: E402
from chainfuzz.context import Context  # noqa: E402
from chainfuzz.registry import get  # noqa: E402
from chainfuzz.targets import load_target  # noqa: E402

TEMPLATES = ROOT / "tests" / "templates"
POLL = 0.05  # seconds between looks at the crashes folder


@dataclass(frozen=True)
class Defect:
    name: str  # what the table calls it
    target: str  # templates/<target>.jinja, or a planted_tokenizers builder
    prop: str
    key: str  # the finding's key starts with this
    tool_calls: bool = False  # the baseline's assistant messages may carry tool calls


DEFECTS = [
    Defect("tool results dropped", "search_tool_drop_defect", "template.content_preserved",
           "dropped:tool:content"),
    Defect("last message dropped", "search_alternate_defect", "template.content_preserved", "dropped:"),
    Defect("null content crash", "search_null_args_defect", "template.renders",
           "TypeError:unsupported operand type(s) for +: 'NoneType'", tool_calls=True),
    Defect("tool-call args dropped", "search_null_args_defect", "template.content_preserved",
           "dropped:assistant:tool_call.arguments", tool_calls=True),
    Defect("leading space stripped", "roundtrip_strip_defect", "tokenizer.roundtrip",
           "hf:leading space dropped"),
]


def target_path(name: str, folder: Path) -> Path:
    if name in pt.BUILDERS:
        path = folder / name
        return path if path.exists() else pt.BUILDERS[name](path)
    return TEMPLATES / f"{name}.jinja"


def cli(*args) -> list[str]:
    return [sys.executable, "-m", "chainfuzz", *map(str, args)]


# --- time to first detection -------------------------------------------------------------

def chainfuzz_detection(path: Path, defects: list[Defect], seed: int, cap: float) -> dict[str, float]:
    """Seconds from launching ``check`` to each defect's case file (``inf`` if none by ``cap``)."""
    found = {d.name: math.inf for d in defects}
    with tempfile.TemporaryDirectory() as tmp:
        crashes = Path(tmp) / "crashes"
        start = time.monotonic()
        proc = subprocess.Popen(cli("check", path, "--budget", cap, "--seed", seed, "--crashes", crashes),
                                cwd=tmp, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        seen: set[Path] = set()
        try:
            while True:
                done = proc.poll() is not None  # a last look at the folder once it has exited
                now = time.monotonic() - start
                for case in sorted(crashes.glob("*.json")) if crashes.is_dir() else ():
                    if case in seen:
                        continue
                    seen.add(case)
                    rec = json.loads(case.read_text(encoding="utf-8"))
                    for d in defects:
                        if rec["property"] == d.prop and rec["key"].startswith(d.key):
                            found[d.name] = min(found[d.name], now)
                if done or now > cap or all(math.isfinite(t) for t in found.values()):
                    break
                time.sleep(POLL)
        finally:
            proc.kill()
            proc.wait()
    return {k: (v if v <= cap else math.inf) for k, v in found.items()}


def baseline_cases(defect: Defect):
    """The strategy a user writes in plain Hypothesis for the defect's property."""
    if defect.prop.startswith("tokenizer."):
        return st.fixed_dictionaries({"text": st.text()})
    roles = st.sampled_from(["system", "user", "assistant", "tool"])
    optional = {}
    if defect.tool_calls:
        call = st.fixed_dictionaries({"id": st.text(), "type": st.just("function"), "function": st.fixed_dictionaries(
            {"name": st.text(), "arguments": st.dictionaries(st.text(), st.text())})})
        optional = {"tool_calls": st.lists(call, min_size=1, max_size=2)}
    message = st.fixed_dictionaries({"role": roles, "content": st.text()}, optional=optional)
    return st.fixed_dictionaries({"messages": st.lists(message), "tools": st.none()})


class _Capped(BaseException):
    """Ends a baseline run at the cap (Hypothesis lets BaseExceptions through)."""


def baseline_detection(ctx, defect: Defect, seed: int, cap: float) -> float:
    """Seconds until plain Hypothesis reports the defect on ``ctx`` (``inf`` if not by ``cap``)."""
    prop = get(defect.prop)
    start = [time.monotonic()]

    @hseed(seed)
    @settings(max_examples=10**9, deadline=None, database=None, suppress_health_check=list(HealthCheck),
              phases=[Phase.generate, Phase.shrink], report_multiple_bugs=False)
    @given(baseline_cases(defect))
    def test(case):
        if time.monotonic() - start[0] > cap:
            raise _Capped()
        try:
            prop.check(ctx, case)
        except Failure as failure:
            if failure.key.startswith(defect.key):
                raise
        except Exception:  # noqa: BLE001 - a Skip, or another error: not the defect looked for
            pass

    try:
        test()
    except (Failure, Flaky):  # found; Flaky: it did not fail again while shrinking
        return time.monotonic() - start[0]
    except _Capped:
        pass
    return math.inf


def startup_seconds() -> float:
    """What a check costs before its search: ``check`` of the clean base template on one input
    of one property (start-up, imports, loading the template, writing nothing)."""
    start = time.monotonic()
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(cli("check", TEMPLATES / "base_clean.jinja", "--property", "template.renders",
                           "--max-examples", 1, "--crashes", tmp), stdout=subprocess.DEVNULL, check=True)
    return time.monotonic() - start


def show(t: float) -> str:
    return "not found" if math.isinf(t) else f"{t:.2f}"


def bench_detection(seeds: int, cap: float) -> None:
    print(f"time to first detection: median of {seeds} seeds, capped at {cap:g}s "
          f"(found/seeds in brackets); a check of one input takes {startup_seconds():.2f}s "
          "from launch, and is in chainfuzz's times")
    with tempfile.TemporaryDirectory() as tmp:
        paths = {d.target: target_path(d.target, Path(tmp)) for d in DEFECTS}
        ours: dict[str, list[float]] = {d.name: [] for d in DEFECTS}
        theirs: dict[str, list[float]] = {d.name: [] for d in DEFECTS}
        for target, path in paths.items():
            defects = [d for d in DEFECTS if d.target == target]
            for s in range(seeds):
                for name, t in chainfuzz_detection(path, defects, s, cap).items():
                    ours[name].append(t)
            ctx = Context(load_target(path))
            for d in defects:
                theirs[d.name] = [baseline_detection(ctx, d, s, cap) for s in range(seeds)]
            ctx.close()
    print(f"  {'defect':<24} {'property':<28} {'chainfuzz s':>15} {'baseline s':>15} {'ratio':>7}")
    for d in DEFECTS:
        a, b = statistics.median(ours[d.name]), statistics.median(theirs[d.name])
        hits_a = sum(math.isfinite(t) for t in ours[d.name])
        hits_b = sum(math.isfinite(t) for t in theirs[d.name])
        ratio = "-" if math.isinf(a) else (f">{cap / a:.1f}" if math.isinf(b) else f"{b / a:.2f}")
        print(f"  {d.name:<24} {d.prop:<28} {show(a) + f' ({hits_a}/{seeds})':>15} "
              f"{show(b) + f' ({hits_b}/{seeds})':>15} {ratio:>7}")


# --- checked fraction over the real templates -----------------------------------------------

def check_json(path: Path, *args) -> dict:
    """``check --json`` on ``path`` with ``args``; its report (case files go to a scratch folder)."""
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "report.json"
        subprocess.run(cli("check", path, "--json", report, "--crashes", Path(tmp) / "crashes", *args),
                       cwd=tmp, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=1800)
        return json.loads(report.read_text(encoding="utf-8")) if report.exists() else {}


def bench_checked(jobs: int, limit: int | None) -> None:
    paths = sorted(corpus.templates_dir().glob("*.jinja"))[:limit]
    fractions: dict[str, list[tuple[float, str]]] = {}
    failed = []
    with concurrent.futures.ThreadPoolExecutor(jobs) as pool:  # each check is its own process
        reports = pool.map(lambda p: (p, check_json(p, "--max-examples", 200, "--seed", 1)), paths)
        for path, report in reports:
            if not report.get("stats"):
                failed.append(path.stem)
                continue
            for per_target in report["stats"]["targets"].values():
                for prop, s in per_target.items():
                    tried = s["examples"] + s["skipped"]
                    if tried:
                        why = next(iter(s.get("skip_reasons") or {}), "")
                        fractions.setdefault(prop, []).append((s["examples"] / tried, path.stem, why))
    print(f"\nchecked fraction, examples/(examples+skipped), over {len(paths)} templates "
          f"(--max-examples 200 --seed 1)")
    print(f"  {'property':<28} {'min':>6} {'median':>7} {'<80%':>5}  lowest")
    for prop, values in sorted(fractions.items()):
        low = min(values)
        print(f"  {prop:<28} {low[0]:>6.0%} {statistics.median(v for v, _, _ in values):>7.0%} "
              f"{sum(v < 0.8 for v, _, _ in values):>5}  {low[1]}")
    under = sorted((v, stem, prop, why) for prop, values in fractions.items() for v, stem, why in values if v < 0.8)
    if under:
        print("\n  under 80%, and the report's reason:")
        for v, stem, prop, why in under:
            print(f"  {v:>5.0%}  {stem:<45} {prop:<28} {why[:110]}")
    if failed:
        print(f"  no report for: {', '.join(failed)}")


# --- end-to-end throughput -----------------------------------------------------------------

def bench_throughput(budget: float, cases: int) -> None:
    from bench_template import TEMPLATES as THREE, raw_renderer

    print(f"\nthroughput: check --budget {budget:g} (all properties, examples over the run's seconds) "
          f"against transformers' raw renders of {cases} conversations")
    print(f"  {'template':<40} {'checked/s':>10} {'raw/s':>9} {'ratio':>7}")
    for name in THREE:
        path = corpus.templates_dir() / f"{name}.jinja"
        report = check_json(path, "--budget", budget, "--seed", 0)
        per_target = next(iter(report["stats"]["targets"].values()))
        checked = sum(s["examples"] for s in per_target.values()) / report["stats"]["seconds"]
        target = load_target(path)
        raw = raw_renderer(target)
        drawn = draw_cases(get("template.renders").inputs(Context(target)), cases)
        raw(drawn[0])  # compile outside the timing
        raws = rate(raw, drawn)
        print(f"  {name:<40} {checked:>10.0f} {raws:>9.0f} {checked / raws:>7.0%}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--cap", type=float, default=60.0, help="seconds before 'not found'")
    parser.add_argument("--checked", action="store_true", help="checked fraction over the real templates")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--limit", type=int, help="--checked: only the first N templates (alphabetical)")
    parser.add_argument("--throughput", action="store_true", help="end-to-end rate against raw renders")
    parser.add_argument("--budget", type=float, default=10.0, help="--throughput's check budget")
    parser.add_argument("--cases", type=int, default=200, help="--throughput's raw-render cases")
    args = parser.parse_args()
    if not (args.checked or args.throughput):
        bench_detection(args.seeds, args.cap)
    if args.checked:
        bench_checked(args.jobs, args.limit)
    if args.throughput:
        bench_throughput(args.budget, args.cases)


if __name__ == "__main__":
    main()
