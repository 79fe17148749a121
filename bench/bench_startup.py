"""Start-up costs, measured in one run: what chainfuzz adds to pytest in a project that does
not use it, and how long ``chainfuzz --help`` and a minimal ``chainfuzz check`` take.

pytest: two fresh virtualenvs (pytest alone; pytest and the chainfuzz wheel with its
dependencies), the same empty folder with one trivial test, the median of ``--runs`` starts.
Commands: this checkout's ``src``, and with ``--baseline SRC`` an older checkout's ``src`` run
the same way beside it (PYTHONPATH first), so the two are timed under the same load.

    python bench/bench_startup.py [--runs 10] [--baseline /path/to/old/src]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def median_seconds(cmd: list, *, cwd: Path, runs: int, env: dict | None = None) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        proc = subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, capture_output=True, text=True)
        times.append(time.perf_counter() - start)
        if proc.returncode not in (0, 1):
            raise SystemExit(f"{cmd} failed ({proc.returncode}): {proc.stderr[-2000:]}")
    return statistics.median(times)


def venv(where: Path, *packages: str) -> Path:
    subprocess.run([sys.executable, "-m", "venv", where], check=True)
    python = where / "bin" / "python"
    subprocess.run([python, "-m", "pip", "install", "-q", *packages], check=True)
    return python


def pytest_startup(runs: int) -> dict[str, float]:
    """Seconds pytest takes in an empty project: without chainfuzz, with it (and its
    dependencies, whose pytest plugins load too), and with it but one plugin turned off."""
    with tempfile.TemporaryDirectory(prefix="chainfuzz-startup-") as tmp:
        tmp = Path(tmp)
        subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", tmp / "dist", ROOT],
                       check=True)
        wheel = next((tmp / "dist").glob("chainfuzz-*.whl"))
        without = venv(tmp / "without", "pytest")
        with_ = venv(tmp / "with", "pytest", str(wheel))
        project = tmp / "project"
        project.mkdir()
        (project / "test_nothing.py").write_text("def test_nothing():\n    pass\n", encoding="utf-8")
        cmd = ["-m", "pytest", "-q", "-p", "no:cacheprovider"]
        return {
            "pytest alone": median_seconds([without, *cmd], cwd=project, runs=runs),
            "chainfuzz installed": median_seconds([with_, *cmd], cwd=project, runs=runs),
            "  its plugin off (-p no:chainfuzz)": median_seconds([with_, *cmd, "-p", "no:chainfuzz"],
                                                                 cwd=project, runs=runs),
            "  Hypothesis' plugin off (-p no:hypothesispytest)": median_seconds(
                [with_, *cmd, "-p", "no:hypothesispytest"], cwd=project, runs=runs),
        }


def command_startup(src: Path, runs: int) -> tuple[float, float]:
    """(``chainfuzz --help``, ``chainfuzz check`` of one tiny template, one example) seconds."""
    env = {**os.environ, "PYTHONPATH": str(src)}
    with tempfile.TemporaryDirectory(prefix="chainfuzz-startup-") as tmp:
        tmp = Path(tmp)
        (tmp / "t.jinja").write_text("{% for m in messages %}{{ m.content }}{% endfor %}", encoding="utf-8")
        cli = [sys.executable, "-m", "chainfuzz.cli"]
        helps = median_seconds([*cli, "--help"], cwd=tmp, runs=runs, env=env)
        check = median_seconds([*cli, "check", "t.jinja", "--property", "template.renders", "--max-examples", "1",
                                "--seed", "1", "--crashes", tmp / "c"], cwd=tmp, runs=runs, env=env)
        return helps, check


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--baseline", type=Path, help="an older checkout's src folder to time beside this one")
    parser.add_argument("--no-pytest", action="store_true", help="skip the two virtualenvs")
    args = parser.parse_args()
    if not args.no_pytest:
        print("pytest in an empty project (median of {} runs):".format(args.runs))
        times = pytest_startup(args.runs)
        for name, seconds in times.items():
            print(f"  {name:<50} {seconds:.3f}s ({seconds / times['pytest alone']:.2f}x)")
    rows = [("this checkout", ROOT / "src")] + ([("baseline", args.baseline)] if args.baseline else [])
    results = {name: command_startup(src, args.runs) for name, src in rows}
    print(f"{'':<14} {'--help':>8} {'check':>8}")
    for name, (helps, check) in results.items():
        print(f"{name:<14} {helps:>7.3f}s {check:>7.3f}s")
    if args.baseline:
        (h1, c1), (h0, c0) = results["this checkout"], results["baseline"]
        print(f"{'ratio':<14} {h1 / h0:>7.2f}x {c1 / c0:>7.2f}x  (this checkout / baseline)")


if __name__ == "__main__":
    main()
