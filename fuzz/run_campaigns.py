"""Run the fuzzing campaigns of ``fuzz/campaigns.toml`` one after another (the nightly job).

Each campaign is ``chainfuzz fuzz`` with the campaign's target, harness and budget; the
inputs libFuzzer keeps persist in ``$CHAINFUZZ_CACHE/fuzz-inputs/<name>/`` between nights.
The exit code is the worst of the campaigns' (3 internal error, 2 bad input, 1 new
error-severity cases written, 0 nothing new).

Usage: python fuzz/run_campaigns.py [--campaign NAME ...] [--crashes DIR] [--scale FACTOR]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

try:
    import tomllib
except ImportError:  # Python 3.10
    sys.exit("run_campaigns.py reads TOML with tomllib: Python 3.11 or later")

from chainfuzz import cli
from chainfuzz.corpus import cache_dir

CONFIG = Path(__file__).with_name("campaigns.toml")


def resolve(target: str) -> str:
    return str(cache_dir() / target.removeprefix("cache:")) if target.startswith("cache:") else target


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--campaign", action="append", help="run only these (by name)")
    parser.add_argument("--crashes", default="crashes")
    parser.add_argument("--scale", type=float, default=1.0,
                        help="multiply every budget (0.01 for a smoke run)")
    args = parser.parse_args()
    campaigns = tomllib.loads(CONFIG.read_text(encoding="utf-8"))["campaign"]
    unknown = set(args.campaign or ()) - {c["name"] for c in campaigns}
    if unknown:
        parser.error(f"unknown campaign(s): {', '.join(sorted(unknown))}")
    worst = 0
    for c in campaigns:
        if args.campaign and c["name"] not in args.campaign:
            continue
        print(f"== {c['name']}", flush=True)
        rc = cli.main(["fuzz", resolve(c["target"]), "--harness", c["harness"],
                       "--budget", str(max(1.0, c["budget"] * args.scale)),
                       "--crashes", args.crashes,
                       "--inputs", str(cache_dir() / "fuzz-inputs" / c["name"])])
        if rc == 130:  # interrupted: stop here
            return rc
        worst = max(worst, rc)
    return worst


if __name__ == "__main__":
    sys.exit(main())
