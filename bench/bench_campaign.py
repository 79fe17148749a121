"""Campaigns side by side, in one run: 1 worker against 2, and the scheduler against equal time.

The targets are planted-defect templates (each with the property that must find it) and six
of the tests' clean twins (clean for the property they twin; some have defects of other
properties), every template property on each: most pairs have little or nothing to find, as
on real templates, and a scheduler earns its keep by moving time to the pairs still finding
something.
Each configuration runs ``chainfuzz campaign`` through the CLI from an empty folder with the
same budget and seed (Hypothesis mode: atheris' start-up would dominate a short budget).

Printed per configuration: distinct defects (errors and warnings) and defects per minute; how
many planted templates were detected (a finding of the planted property) and the time to first
detection (median and max, seconds since the run started, start-up included); inputs
checked per second. Ratios against the baseline (1 worker, adaptive) close the table.

Usage: python bench/bench_campaign.py [--budget SECONDS] [--seed N]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TEMPLATES = Path(__file__).resolve().parents[1] / "tests" / "templates"
PLANTED = {
    "renders_defect.jinja": "template.renders",
    "no_repr_leak_tool_calls_defect.jinja": "template.no_repr_leak",
    "generation_prompt_gap_defect.jinja": "template.generation_prompt",
    "turns_closed_defect.jinja": "template.turns_closed",
    "prefix_stable_last_defect.jinja": "template.prefix_stable",
    "content_preserved_trim_defect.jinja": "template.content_preserved",
}
CLEAN = ["base_clean.jinja", "no_repr_leak_tool_calls_clean.jinja", "search_alternate_clean.jinja",
         "search_null_args_clean.jinja", "search_tool_drop_clean.jinja", "generation_prompt_thinking_clean.jinja"]
RUNS = [("1 worker, scheduler", 1, "adaptive"), ("2 workers, scheduler", 2, "adaptive"),
        ("1 worker, equal time", 1, "equal")]


def campaign(folder: Path, budget: float, seed: int, workers: int, schedule: str) -> tuple[dict, float]:
    for name in [*PLANTED, *CLEAN]:
        shutil.copy(TEMPLATES / name, folder / name)
    lines = [f"budget = {budget}", f'schedule = "{schedule}"']
    for name in [*PLANTED, *CLEAN]:
        lines += ["[[target]]", f'path = "{name}"', 'properties = ["template.*"]', 'modes = ["hypothesis"]']
    (folder / "c.toml").write_text("\n".join(lines) + "\n", encoding="utf-8")
    start = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "chainfuzz.cli", "campaign", "c.toml", "--out", "out",
                           "--crashes", "crashes", "--seed", str(seed), "--workers", str(workers)],
                          cwd=folder, capture_output=True, text=True)
    wall = time.monotonic() - start
    if proc.returncode not in (0, 1):
        sys.exit(f"campaign failed ({proc.returncode}): {proc.stderr[-2000:]}")
    return json.loads((folder / "out" / "report.json").read_text(encoding="utf-8")), wall


def measure(report: dict, wall: float) -> dict:
    found = report["findings"]
    first: dict[str, float] = {}
    for f in found:  # three planted defects are warning-tier (trimmed content, a prompt gap, history rewritten)
        if PLANTED.get(f["target"]) == f["property"]:
            first[f["target"]] = min(first.get(f["target"], 1e9), f["found_at"])
    examples = sum(p["examples"] for p in report["pairs"])
    return {"defects": len(found), "errors": sum(f["severity"] == "error" for f in found),
            "per_minute": len(found) / (report["elapsed"] / 60),
            "detected": len(first), "first": sorted(first.values()),
            "rate": examples / max(1e-9, report["elapsed"]), "wall": wall}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=float, default=90)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rows = []
    for label, workers, schedule in RUNS:
        with tempfile.TemporaryDirectory(prefix="chainfuzz-bench-campaign-") as tmp:
            report, wall = campaign(Path(tmp), args.budget, args.seed, workers, schedule)
            rows.append((label, measure(report, wall)))
    print(f"campaign over {len(PLANTED)} planted-defect templates and {len(CLEAN)} twins, every template "
          f"property, {args.budget:g} s budget, seed {args.seed}, {os.cpu_count()} CPUs\n")
    print("| configuration | defects (errors) | defects/min | planted detected | first detection median / max (s) "
          "| inputs/s | wall (s) |")
    print("|---|---|---|---|---|---|---|")
    for label, m in rows:
        firsts = m["first"]
        first = f"{statistics.median(firsts):.1f} / {max(firsts):.1f}" if firsts else "-"
        print(f"| {label} | {m['defects']} ({m['errors']}) | {m['per_minute']:.1f} | {m['detected']} of {len(PLANTED)} "
              f"| {first} | {m['rate']:.0f} | {m['wall']:.0f} |")
    base = rows[0][1]
    print()
    for label, m in rows[1:]:
        print(f"{label} / 1 worker, scheduler: defects/min x{m['per_minute'] / max(base['per_minute'], 1e-9):.2f}, "
              f"inputs/s x{m['rate'] / max(base['rate'], 1e-9):.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
