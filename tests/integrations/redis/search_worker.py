"""One campaign worker in a process of its own, for test_shared_memory.py: a `Search` of
``template.renders`` on a template, remembering in its own folder and a shared Redis database,
recording case files in a shared crash folder. Prints what it found as one JSON line.

    python search_worker.py TEMPLATE LOCAL_DB REDIS_URL CRASHES (search|replay-only)

``replay-only`` narrows the property's inputs to one clean conversation and drops its boundary
cases: such a worker cannot find a defect itself, only replay the failures it is given.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path

from hypothesis import strategies as st

from chainfuzz import cases, registry
from chainfuzz.context import Context
from chainfuzz.internal.memory import Memory, open_database, target_key
from chainfuzz.internal.runner import RunSettings, Search, run_searches
from chainfuzz.targets import load_targets

CLEAN_CASE = {"messages": [{"role": "user", "content": "hello"}], "add_generation_prompt": True}


def main(template: str, local: str, redis_url: str, crashes: str, mode: str) -> None:
    prop = registry.get("template.renders")
    if mode == "replay-only":
        prop = dataclasses.replace(prop, inputs=lambda ctx: st.just(CLEAN_CASE), examples=None)
    (target,) = load_targets(template)
    ctx = Context(target)
    ctx.open({prop.applies_to})
    memory = Memory(open_database(local, redis_url), target_key(target), [prop.id])
    written, folder = [], Path(crashes)

    def on_finding(finding) -> None:
        written.append(cases.write(cases.record(finding, ctx, folder), folder)[1])

    run = RunSettings(max_examples=20, seed=1)
    search = Search([prop], ctx, run, on_finding, memory=memory)
    try:
        run_searches([search], run)
    finally:
        ctx.close()
    result = search.results[prop.id]
    print(json.dumps({"findings": [f.to_json() | {"signature": f.signature} for f in result.findings],
                      "written": written, "given": result.given, "broken": memory.broken,
                      "internal_error": result.internal_error}))


if __name__ == "__main__":
    main(*sys.argv[1:])
