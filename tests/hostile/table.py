"""The README's hostile-input table from a ``CHAINFUZZ_HOSTILE_LOG`` file: per class, inputs
tried, inputs handled (the contract held), and the largest time and peak memory seen.

    CHAINFUZZ_HOSTILE_LOG=/tmp/h.jsonl .venv/bin/python -m pytest tests/hostile -q
    .venv/bin/python tests/hostile/table.py /tmp/h.jsonl
"""

from __future__ import annotations

import json
import sys
from collections import defaultdict


def table(lines: list[dict]) -> str:
    by_class: dict[str, list[dict]] = defaultdict(list)
    for rec in lines:
        by_class[rec["class"]].append(rec)
    out = ["| class | inputs | handled | exit codes | slowest | peak memory |",
           "|---|---:|---:|---|---:|---:|"]
    for cls, recs in sorted(by_class.items(), key=lambda kv: int(kv[0].split()[0])):
        codes = ", ".join("killed by the test" if c == -9 else str(c) for c in sorted({r["rc"] for r in recs}))
        peak = max(r["peak_mib"] for r in recs)  # 0: the test killed the CLI, nothing to reap
        out.append(f"| {cls} | {len(recs)} | {sum(r['ok'] for r in recs)} | {codes} | "
                   f"{max(r['seconds'] for r in recs):.1f} s | {f'{peak} MiB' if peak else '–'} |")
    total = sum(len(r) for r in by_class.values())
    ok = sum(r["ok"] for recs in by_class.values() for r in recs)
    out.append(f"| **all** | {total} | {ok} | | | |")
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    with open(sys.argv[1], encoding="utf-8") as f:
        print(table([json.loads(line) for line in f if line.strip()]), end="")
