"""How many drawn inputs each template property actually checks, per real template.

A property skips an input the template refuses (``ctx.render_or_skip``) or that it cannot
judge (``assume``); a skipped input checks nothing. For every template in ``--templates`` and
every template property this runs the seeded search ``chainfuzz check`` runs and prints
``examples / (examples + skipped)``, then per property the minimum over templates, the
number of templates under ``--threshold``, and the commonest skip reasons.

Usage: python bench/checked_fraction.py [--templates DIR] [--max-examples N] [--seed S]
       [--jobs J] [--only NAME ...] [--properties ID ...]
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import multiprocessing
import os
import re
import sys
import time
from pathlib import Path

os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")  # before transformers is imported


def _reason(exc: BaseException) -> str:
    """A skip's reason with the echoed input folded, so one cause counts once."""
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return re.sub(r"\d+", "N", text)[:110]


def _one(args) -> tuple[str, dict]:
    """(template name, {property: (examples, skipped, Counter of skip reasons, seconds)})."""
    path, max_examples, seed, prop_ids = args
    from chainfuzz import registry
    from chainfuzz.context import Context
    from chainfuzz.errors import Skip
    from chainfuzz.internal.runner import RunSettings, run_property
    from chainfuzz.targets import load_targets
    from hypothesis.errors import UnsatisfiedAssumption

    out: dict = {}
    try:
        target = load_targets(path)[0]
        ctx = Context(target).open({"template"})
    except Exception as exc:  # noqa: BLE001 - a template that does not load is reported, not fatal
        return Path(path).stem, {"error": str(exc)[:200]}
    start = time.monotonic()
    learn_cost = None
    if hasattr(Context, "accepts"):
        ctx.accepts  # noqa: B018 - learned once per template, timed on its own
        learn_cost = time.monotonic() - start
    for prop in registry.select(prop_ids, {"template"}):
        reasons: collections.Counter = collections.Counter()

        def check(c, case, _check=prop.check, _reasons=reasons):
            try:
                _check(c, case)
            except (Skip, UnsatisfiedAssumption) as exc:
                _reasons[_reason(exc)] += 1
                raise

        wrapped = dataclasses.replace(prop, check=check)
        t0 = time.monotonic()
        result = run_property(wrapped, ctx, RunSettings(max_examples=max_examples, seed=seed,
                                                        shrink_seconds=0.5, max_findings=3))
        out[prop.id] = (result.examples, result.skipped, reasons, time.monotonic() - t0,
                        result.internal_error)
    out["_learn"] = learn_cost
    ctx.close()
    return Path(path).stem, out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--templates", type=Path,
                    default=Path.home() / ".cache/chainfuzz/llama-cpp-python-0.3.36/templates")
    ap.add_argument("--max-examples", type=int, default=200)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--threshold", type=float, default=0.8)
    ap.add_argument("--only", nargs="*", help="template names (stems) to measure")
    ap.add_argument("--properties", nargs="*", help="property ids (default: every template property)")
    ap.add_argument("--quiet", action="store_true", help="print the summary only")
    a = ap.parse_args(argv)

    paths = sorted(a.templates.glob("*.jinja"))
    if a.only:
        paths = [p for p in paths if p.stem in set(a.only)]
    tasks = [(str(p), a.max_examples, a.seed, a.properties) for p in paths]
    start = time.monotonic()
    with multiprocessing.get_context("fork").Pool(a.jobs, maxtasksperchild=1) as pool:
        rows = dict(pool.imap_unordered(_one, tasks))
    wall = time.monotonic() - start

    props = sorted({k for r in rows.values() for k in r if not k.startswith("_") and k != "error"})
    short = {p: p.split(".", 1)[-1][:10] for p in props}
    frac: dict[str, dict[str, float]] = {p: {} for p in props}
    reasons: dict[str, collections.Counter] = {p: collections.Counter() for p in props}
    if not a.quiet:
        print(f"{'template':<48}" + "".join(f"{short[p]:>11}" for p in props))
    for name in sorted(rows):
        row = rows[name]
        if "error" in row:
            print(f"{name:<48} error: {row['error']}")
            continue
        cells = []
        for p in props:
            ex, sk, why, _, internal = row[p]
            f = ex / (ex + sk) if ex + sk else 0.0
            frac[p][name] = f
            reasons[p].update({f"{r}": n for r, n in why.items()})
            cells.append(f"{f:>10.0%}{'!' if internal else ' '}")
        if not a.quiet:
            print(f"{name[:47]:<48}" + "".join(cells))
    print(f"\n{len(rows)} templates, --max-examples {a.max_examples} --seed {a.seed}, {wall:.0f}s wall")
    learn = [r["_learn"] for r in rows.values() if r.get("_learn") is not None]
    if learn:
        print(f"constraint learning: mean {sum(learn) / len(learn):.3f}s, max {max(learn):.3f}s per template")
    print(f"\n{'property':<30}{'min':>6}{'mean':>7}{'<' + format(a.threshold, '.0%'):>6}   under threshold")
    for p in props:
        vals = frac[p]
        if not vals:
            continue
        under = sorted((n for n, f in vals.items() if f < a.threshold), key=lambda n: vals[n])
        print(f"{p:<30}{min(vals.values()):>6.0%}{sum(vals.values()) / len(vals):>7.0%}{len(under):>6}   "
              + ", ".join(f"{n} {vals[n]:.0%}" for n in under[:6]) + (" ..." if len(under) > 6 else ""))
    print("\ntop skip reasons (inputs skipped, shrinking included)")
    for p in props:
        top = reasons[p].most_common(4)
        if top:
            print(f"  {p}:")
            for r, n in top:
                print(f"    {n:>6}  {r}")
    internal = [(n, p, rows[n][p][4]) for n in rows if "error" not in rows[n] for p in props if rows[n][p][4]]
    for n, p, e in internal:
        print(f"internal error: {n} {p}: {e}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
