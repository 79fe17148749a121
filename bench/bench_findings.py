"""How trustworthy a sweep's findings are, measured from its case files in one run.

Per template property: error and warning findings, distinct keys, how many error findings
stand on a lenient input (`chainfuzz.schema`: outside the OpenAI chat schema; these should be
none), and the size of error reproducers (messages and characters of the input as compact
JSON: median, max, and how many pass 4 messages or 600 characters, `runner.GLANCE_*`), with
how many of those say why (`minimal`: a fixed point that needs every part).

Default: runs ``chainfuzz sweep --seed 0`` (default budget) into a temporary crash folder.
``--crashes DIR`` reads a folder a sweep already wrote instead; ``--before DIR`` also reads an
older sweep's folder and prints what moved between error and warning, matching findings by
target, property and key as it was before keys named their site (`schema.legacy_key`).

Usage: python bench/bench_findings.py [--crashes DIR] [--before DIR] [--budget S]
"""

from __future__ import annotations

import argparse
import collections
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from chainfuzz import schema
from chainfuzz.internal.runner import GLANCE_CHARS, GLANCE_MESSAGES, glance_size


def load(folder: Path) -> list[dict]:
    return [json.loads(p.read_text(encoding="utf-8")) for p in sorted(folder.glob("*.json"))]


def size(rec: dict) -> tuple[int, int]:
    case = rec["input"]
    msgs = case.get("messages") if isinstance(case, dict) else None
    return len(msgs) if isinstance(msgs, list) else 0, glance_size(case)


def table(recs: list[dict]) -> str:
    by_prop: dict[str, list[dict]] = collections.defaultdict(list)
    for rec in recs:
        by_prop[rec["property"]].append(rec)
    rows = ["| property | errors | warnings | distinct keys | errors on lenient input | error reproducer "
            "messages (median / max) | characters (median / max) | past 4 msgs or 600 chars (says why) |",
            "|---|---|---|---|---|---|---|---|"]
    totals = collections.Counter()
    for prop in sorted(by_prop):
        group = by_prop[prop]
        errors = [r for r in group if r["severity"] == "error"]
        warnings = len(group) - len(errors)
        keys = len({r["key"] for r in group})
        lenient = sum(bool(schema.nonstandard(r["input"])) for r in errors)
        sizes = [size(r) for r in errors]
        big = [r for r, (n, c) in zip(errors, sizes) if n > GLANCE_MESSAGES or c > GLANCE_CHARS]
        why = sum("needs" in (r.get("minimal") or "") for r in big)
        msgs = [n for n, _ in sizes] or [0]
        chars = [c for _, c in sizes] or [0]
        rows.append(f"| {prop} | {len(errors)} | {warnings} | {keys} | {lenient} | "
                    f"{statistics.median(msgs):g} / {max(msgs)} | {statistics.median(chars):g} / {max(chars)} | "
                    f"{len(big)} ({why}) |")
        totals.update(errors=len(errors), warnings=warnings, keys=keys, lenient=lenient, big=len(big), why=why)
    rows.append(f"| **all** | {totals['errors']} | {totals['warnings']} | {totals['keys']} | {totals['lenient']} "
                f"| | | {totals['big']} ({totals['why']}) |")
    return "\n".join(rows)


def moves(before: list[dict], after: list[dict]) -> str:
    """Findings of the same target, property and legacy key whose severity changed, and
    how many legacy keys split into several site keys."""
    def index(recs):
        out = collections.defaultdict(set)
        for r in recs:
            out[(r["target"]["name"], r["property"], schema.legacy_key(r["key"]))].add((r["severity"], r["key"]))
        return out

    b, a = index(before), index(after)
    moved = collections.Counter()
    for k in b.keys() & a.keys():
        was = {s for s, _ in b[k]}
        now = {s for s, _ in a[k]}
        if was != now:
            moved[(k[1], "/".join(sorted(was)), "/".join(sorted(now)))] += 1
    split = sum(len({key for _, key in a[k]}) > 1 for k in a)
    lines = [f"- {prop}: {n} from {w} to {x}" for (prop, w, x), n in sorted(moved.items())]
    lines.append(f"- legacy keys now split into several site keys: {split}")
    lines.append(f"- findings before {len(before)}, after {len(after)}")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--crashes", type=Path, help="a sweep's crash folder to read (default: run a sweep)")
    ap.add_argument("--before", type=Path, help="an older sweep's crash folder to compare with")
    ap.add_argument("--budget", type=float, default=None, help="the sweep's --budget (default: its own)")
    args = ap.parse_args()
    folder = args.crashes
    if folder is None:
        folder = Path(tempfile.mkdtemp(prefix="chainfuzz-findings-"))
        cmd = [sys.executable, "-m", "chainfuzz", "sweep", "--seed", "0", "--crashes", str(folder)]
        if args.budget:
            cmd += ["--budget", str(args.budget)]
        print("running:", " ".join(cmd), file=sys.stderr)
        done = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        print(done.stdout.strip().splitlines()[-1] if done.stdout.strip() else "", file=sys.stderr)
    after = load(folder)
    print(table(after))
    if args.before:
        print()
        print(moves(load(args.before), after))


if __name__ == "__main__":
    main()
