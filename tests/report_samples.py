"""Campaign result dicts (the contract of ``chainfuzz.campaign.reports``) for the reports' tests:
a realistic run, and the edge cases (nothing found, no timeline, a first run)."""

from __future__ import annotations

import copy
import zlib

HOSTILE = "</pre><script>alert(1)</script> | `x` ``` *b*"

TARGETS = ["qwen2.jinja", "llama3.jinja", "mistral.jinja"]
PROPERTIES = ["template.renders", "template.roles", "template.generation-prompt",
              "chain.roundtrip", "template.tools"]


def finding(target: str, prop: str, key: str, *, status: str = "new", severity: str = "error",
            message: str | None = None, mode: str = "hypothesis", first_run: int = 3, found_at: float = 12.5,
            content: str = "hi") -> dict:
    """One finding with a small reproducer."""
    return {"signature": f"{prop}|{target}|{key}", "target": target, "property": prop, "severity": severity,
            "key": key, "message": message or key, "status": status, "mode": mode,
            "case_file": f"crashes/{prop}-{target}-{zlib.crc32(key.encode()):08x}.json",
            "input": {"messages": [{"role": "user", "content": content}], "add_generation_prompt": True},
            "found_at": found_at, "first_run": first_run}


def fixed(target: str, prop: str, key: str, since_run: int = 3) -> dict:
    return {"signature": f"{prop}|{target}|{key}", "target": target, "property": prop, "key": key,
            "case_file": f"crashes/{prop}-{target}-fixed.json", "since_run": since_run}


def pair(target: str, prop: str, *, errors: int = 0, warnings: int = 0, state: str = "done",
         message: str | None = None, mode: str = "hypothesis", rate: float = 40.0) -> dict:
    return {"id": f"{target}::{prop}", "target": target, "property": prop, "mode": mode, "seconds": 60.0,
            "slices": 6, "examples": int(rate * 60), "examples_per_second": rate, "gain": 3,
            "coverage": 120 if mode == "atheris" else None, "errors": errors, "warnings": warnings,
            "state": state, "message": message}


def sample_report() -> dict:
    """Run 3 of a campaign: 3 targets x 5 properties and one atheris pair; 2 new findings (one
    an error with a hostile message), a regression, 3 known, a fixed case, a hung pair, a
    timeline of 20 points and 3 runs of history."""
    new = [finding("qwen2.jinja", "template.roles", "TypeError@line 2:NoneType", message=HOSTILE,
                   content="```` and `` in </pre>"),
           finding("llama3.jinja", "template.tools", "lenient[null-content]:KeyError", severity="warning")]
    regressed = [finding("mistral.jinja", "template.generation-prompt", "missing generation prompt",
                         status="regressed", first_run=1)]
    known = [finding("qwen2.jinja", "template.renders", "UndefinedError@line 9", status="known", first_run=1),
             finding("llama3.jinja", "template.roles", "roles must alternate", status="known", first_run=2),
             finding("llama3.jinja", "chain.roundtrip", "lost token", status="known", severity="warning",
                     first_run=2, mode="atheris")]
    counts = {}
    for f in new + regressed + known:
        e, w = counts.get((f["target"], f["property"]), (0, 0))
        counts[(f["target"], f["property"])] = (e + (f["severity"] == "error"), w + (f["severity"] == "warning"))
    pairs = []
    for i, target in enumerate(TARGETS):
        for j, prop in enumerate(PROPERTIES):
            e, w = counts.get((target, prop), (0, 0))
            hung = (target, prop) == ("mistral.jinja", "template.tools")
            pairs.append(pair(target, prop, errors=e, warnings=w, state="hung" if hung else "done",
                              message="no example finished in 30 s" if hung else None,
                              rate=10.0 + 7 * i + 3 * j))
    pairs.append(pair("llama3.jinja", "harness:template", mode="atheris", rate=900.0))
    fixes = [fixed("qwen2.jinja", "template.generation-prompt", "double generation prompt")]
    timeline = [{"t": 30.0 * k, "examples": 400 * k, "findings": min(k // 3, 6), "errors": min(k // 4, 4),
                 "coverage": 80 + 5 * k} for k in range(20)]
    history = [{"run": 1, "ended": "2025-01-01T03:00:00Z", "elapsed": 3600.0, "new": 4, "regressed": 0,
                "fixed": 0, "errors": 3, "warnings": 1},
               {"run": 2, "ended": "2025-01-02T03:00:00Z", "elapsed": 3600.0, "new": 1, "regressed": 0,
                "fixed": 2, "errors": 2, "warnings": 1},
               {"run": 3, "ended": "2025-01-03T03:00:00Z", "elapsed": 600.0, "new": 2, "regressed": 1,
                "fixed": 1, "errors": 4, "warnings": 2}]
    return {"chainfuzz_campaign": 1, "name": "nightly", "config": "campaigns/nightly.toml", "run": 3,
            "started": "2025-01-03T02:50:00Z", "ended": "2025-01-03T03:00:00Z", "budget": 600.0,
            "elapsed": 600.0, "workers": 2, "redis": "redis://127.0.0.1:6379/0", "seed": 7, "exit_code": 1,
            "interrupted": False, "resumes": 1,
            "changes": {"new": new, "regressed": regressed, "fixed": fixes, "known": len(known)},
            "findings": new + regressed + known, "fixed": fixes, "pairs": pairs, "timeline": timeline,
            "history": history}


def clean_report() -> dict:
    """The sample with nothing found: no findings, nothing fixed, every pair done."""
    data = sample_report()
    data.update(exit_code=0, findings=[], fixed=[], changes={"new": [], "regressed": [], "fixed": [], "known": 0})
    for p in data["pairs"]:
        p.update(errors=0, warnings=0, state="done", message=None)
    for point in data["timeline"]:
        point.update(findings=0, errors=0)
    return data


def first_run_report() -> dict:
    """A first run: every finding new, no history before it, an empty timeline (killed at once)."""
    data = sample_report()
    for f in data["findings"]:
        f.update(status="new", first_run=1)
    data.update(run=1, fixed=[], timeline=[], history=data["history"][:1], resumes=0,
                changes={"new": list(data["findings"]), "regressed": [], "fixed": [], "known": 0})
    data["history"][0].update(run=1)
    return data


def many_findings_report(n: int = 500) -> dict:
    """The sample with ``n`` new errors, each with a long message and reproducer."""
    data = sample_report()
    many = [finding(TARGETS[k % 3], PROPERTIES[k % 5], f"KeyError {k} " + "k" * 150, message="m" * 2000,
                    content="c" * 3000) for k in range(n)]
    data["findings"] = many + data["findings"]
    data["changes"]["new"] = many + data["changes"]["new"]
    return copy.deepcopy(data)
