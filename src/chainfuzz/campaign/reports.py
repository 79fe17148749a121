"""A campaign's reports: ``report.json``, ``report.md``, ``report.html`` and ``junit.xml``.

The campaign core builds one dict, the machine form of a run's result, and calls
`write_reports`. ``report.json`` is that dict as it is (insertion order, indent 1); the others
are views of it: Markdown for a pull-request comment, one self-contained HTML page (inline CSS,
no script, plots as inline SVG when matplotlib is installed), and JUnit XML for CI.

The dict (format version 1)::

    {"chainfuzz_campaign": 1, "name": str, "config": str, "run": int,
     "started": str, "ended": str,                 # ISO-8601 UTC
     "budget": float, "elapsed": float,            # seconds (elapsed: search time, resumes included)
     "workers": int, "redis": str | None,          # URL without its password
     "seed": int | None, "exit_code": int,         # 0, 1 (new errors or a regression), 3, 130
     "interrupted": bool, "resumes": int,
     "changes": {"new": [finding], "regressed": [finding], "fixed": [fixed], "known": int},
     "findings": [finding], "fixed": [fixed], "pairs": [pair],
     "timeline": [{"t", "examples", "findings", "errors", "coverage"}],      # cumulative
     "history": [{"run", "ended", "elapsed", "new", "regressed", "fixed", "errors", "warnings"}]}
    finding = {"signature", "target", "property", "severity": "error"|"warning", "key", "message",
               "status": "new"|"known"|"regressed", "mode": "hypothesis"|"atheris",
               "case_file": str | None, "input": dict, "found_at": float, "first_run": int}
    fixed   = {"signature", "target", "property", "key", "case_file": str | None, "since_run": int}
    pair    = {"id", "target", "property",            # property id, or "harness:NAME" (atheris)
               "mode", "seconds", "slices", "examples", "examples_per_second", "gain",
               "coverage": int | None, "errors", "warnings",
               "state": "ok"|"done"|"hung"|"failed", "message": str | None}

Every string in it may come from a hostile template (a finding's message, a target's name): each
view escapes it for its own format.
"""

from __future__ import annotations

import html as _html
import io
import re
import xml.etree.ElementTree as ET
from collections import Counter, defaultdict
from pathlib import Path

from ..internal.files import write_atomic
from ..internal.text import clip, dumps_json, printable

# GitHub refuses a comment over 65,536 characters; report.md stays under half of that, so a
# bot may add its own words around it.
MARKDOWN_LIMIT = 30_000
LIST_CAP = 20          # entries per list in report.md (new, regressed, fixed, hung)
TABLE_CAP = 50         # rows of report.md's pair table
REPRO_CAP = 10         # reproducers shown in report.md
REPRO_CHARS = 1_500    # characters of one reproducer in report.md
HTML_REPRO_CAP = 100   # findings shown with their reproducer in report.html
HTML_REPRO_CHARS = 4_000
JUNIT_REPRO_CAP = 5    # reproducers in one test case's failure text (the others listed)
MESSAGE_CHARS = 300    # a finding's message in lists and tables
MAP_CAP = 40           # targets (rows) and properties (columns) of the map plot

PLOT_IDS = ("plot-timeline", "plot-rate", "plot-map", "plot-history")
PLOTS_MISSING = ("The plots need matplotlib, an optional extra: "
                 "pip install 'chainfuzz[campaign]', then run the campaign again.")


def write_reports(data: dict, out: Path) -> dict[str, Path]:
    """Write ``report.json``, ``report.md``, ``report.html`` and ``junit.xml`` into ``out``
    (created if missing), each atomically; their paths by name."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    views = {"report.json": lambda: dumps_json(data, indent=1) + "\n", "report.md": lambda: markdown(data),
             "report.html": lambda: html(data), "junit.xml": lambda: junit(data)}
    paths = {}
    for name, view in views.items():
        paths[name] = write_atomic(out / name, view())
    return paths


# ---------------------------------------------------------------------------------------------
# Shared summaries


def headline(data: dict) -> str:
    """What changed since the last run, in one line: the reports' title and the CLI's last line."""
    ch = data.get("changes", {})
    parts = [f"{len(ch.get('new', []))} new", f"{len(ch.get('regressed', []))} regressed",
             f"{len(ch.get('fixed', []))} fixed", f"{ch.get('known', 0)} known"]
    return ", ".join(parts)


def _duration(seconds: float) -> str:
    seconds = float(seconds or 0)
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def _pair_order(pair: dict) -> tuple:
    """Pairs that need a look first: hung or failed, then most errors, warnings."""
    return (pair.get("state") not in ("hung", "failed"), -pair.get("errors", 0), -pair.get("warnings", 0),
            str(pair.get("target")), str(pair.get("property")))


def _reproducer(finding: dict, limit: int) -> str:
    return clip(dumps_json(finding.get("input"), indent=1), limit)


# ---------------------------------------------------------------------------------------------
# report.md

# Characters with a meaning in GitHub Markdown inline text (CommonMark lets any ASCII
# punctuation be backslash-escaped; these are the ones that start a construct).
_MD_SPECIAL = re.compile(r"([\\`*_\[\]<>|~#!&()])")


def md_text(text: object, limit: int = MESSAGE_CHARS) -> str:
    """Untrusted text as one line of Markdown that renders as itself: control characters made
    visible (`printable`), clipped, and every character that starts a construct escaped."""
    return _MD_SPECIAL.sub(r"\\\1", printable(text, limit))


def md_fence(text: str, info: str = "json") -> str:
    """``text`` in a fenced block whose fence is longer than any backtick run inside it."""
    longest = max((len(m) for m in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}{info}\n{text}\n{fence}"


def _md_finding(f: dict) -> str:
    return (f"- **{md_text(f.get('severity'), 20)}** {md_text(f.get('target'), 120)} · "
            f"{md_text(f.get('property'), 80)}: {md_text(f.get('key'), 160)}"
            + (f" ({md_text(f.get('message'))})" if f.get("message") and f.get("message") != f.get("key") else ""))


def _md_fixed(f: dict) -> str:
    return (f"- {md_text(f.get('target'), 120)} · {md_text(f.get('property'), 80)}: "
            f"{md_text(f.get('key'), 160)} (fixed since run {int(f.get('since_run') or 0)})")


def _md_list(lines: list[str], items: list, render, cap: int = LIST_CAP) -> None:
    lines.extend(render(item) for item in items[:cap])
    if len(items) > cap:
        lines.append(f"- and {len(items) - cap} more (report.json lists all)")


def markdown(data: dict) -> str:
    """``report.md``: short enough for a pull-request comment. What changed since the last run
    first (new, regressed, fixed, known), then the reproducers of new and regressed errors,
    the target x property table, and the hung or failed pairs."""
    ch = data.get("changes", {})
    new, regressed, fixed = ch.get("new", []), ch.get("regressed", []), ch.get("fixed", [])
    lines = [f"## chainfuzz campaign {md_text(data.get('name'), 120)}, run {int(data.get('run') or 0)}: "
             f"{headline(data)}", ""]
    lines.append(f"Exit code {int(data.get('exit_code', 0))}"
                 + (" (interrupted)" if data.get("interrupted") else "")
                 + f"; searched {_duration(data.get('elapsed'))} of {_duration(data.get('budget'))}"
                 + f" with {int(data.get('workers') or 1)} worker(s); ended {md_text(data.get('ended'), 40)}.")
    lines.append("")
    if not (new or regressed or fixed):
        lines += ["Nothing changed since the last run.", ""]
    for title, items, render in (("New", new, _md_finding), ("Regressed", regressed, _md_finding),
                                 ("Fixed", fixed, _md_fixed)):
        if items:
            lines += [f"### {title} ({len(items)})", ""]
            _md_list(lines, items, render)
            lines.append("")
    if ch.get("known"):
        lines += [f"Seen again, already known: {int(ch['known'])}.", ""]

    repro = [f for f in regressed + new if f.get("severity") == "error"]
    if repro:
        lines += ["### Reproducers", ""]
        for f in repro[:REPRO_CAP]:
            # The summary line is an HTML block, where Markdown escapes do not apply: HTML-escape it.
            summary = printable(f"{f.get('target')} · {f.get('property')}: {f.get('key')}", 300)
            lines += [f"<details><summary>{_e(summary)}</summary>", "",
                      md_fence(_reproducer(f, REPRO_CHARS)), "", "</details>", ""]
        if len(repro) > REPRO_CAP:
            lines += [f"and {len(repro) - REPRO_CAP} more reproducers (report.html and the case files)", ""]

    pairs = sorted(data.get("pairs", []), key=_pair_order)
    if pairs:
        lines += ["### Targets and properties", "",
                  "| target | property | mode | errors | warnings | examples/s | state |",
                  "|---|---|---|---:|---:|---:|---|"]
        for p in pairs[:TABLE_CAP]:
            lines.append(f"| {md_text(p.get('target'), 80)} | {md_text(p.get('property'), 60)} | "
                         f"{md_text(p.get('mode'), 12)} | {int(p.get('errors', 0))} | {int(p.get('warnings', 0))} | "
                         f"{float(p.get('examples_per_second') or 0):.1f} | {md_text(p.get('state'), 12)} |")
        if len(pairs) > TABLE_CAP:
            lines.append(f"\nand {len(pairs) - TABLE_CAP} more pairs (report.html lists all)")
        lines.append("")
    stuck = [p for p in pairs if p.get("state") in ("hung", "failed")]
    if stuck:
        lines += [f"### Hung or failed ({len(stuck)})", ""]
        _md_list(lines, stuck, lambda p: f"- {md_text(p.get('state'), 12)}: {md_text(p.get('target'), 120)} · "
                 f"{md_text(p.get('property'), 80)}: {md_text(p.get('message') or 'no message')}")
        lines.append("")
    text = "\n".join(lines)
    if len(text) > MARKDOWN_LIMIT:  # only with huge names: every list above is capped
        text = text[:MARKDOWN_LIMIT - 200].rsplit("\n", 1)[0]
        text = _close_fences(text) + "\n\n(report cut here: report.json and report.html hold the rest)"
    return text + "\n"


def _close_fences(text: str) -> str:
    """``text`` with a fenced block left open by a cut closed again."""
    open_fence = None
    for line in text.split("\n"):
        m = re.match(r"(`{3,})", line)
        if m and open_fence is None:
            open_fence = m.group(1)
        elif open_fence is not None and line == open_fence:
            open_fence = None
    return text + ("\n" + open_fence + "\n</details>" if open_fence else "")


# ---------------------------------------------------------------------------------------------
# junit.xml

# Characters XML 1.0 cannot hold at all, even escaped: C0 controls but tab, newline and carriage
# return; lone surrogates; U+FFFE and U+FFFF.
_XML_FORBIDDEN = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def xml_text(text: object) -> str:
    """``text`` with each character XML 1.0 forbids written as a visible ``\\xNN`` /
    ``\\uNNNN`` escape."""
    text = text if isinstance(text, str) else str(text)
    return _XML_FORBIDDEN.sub(lambda m: f"\\x{ord(m.group()):02x}" if ord(m.group()) < 0x100
                              else f"\\u{ord(m.group()):04x}", text)


def _finding_line(f: dict) -> str:
    return (f"[{f.get('status')}] {f.get('severity')} {f.get('target')} / {f.get('property')}: {f.get('key')}"
            + (f" ({clip(str(f.get('message')), MESSAGE_CHARS)})"
               if f.get("message") and f.get("message") != f.get("key") else "")
            + (f" case: {f.get('case_file')}" if f.get("case_file") else ""))


def _owner(finding: dict, cases: dict) -> tuple:
    """The test case a finding belongs to: its (target, property) pair, else the atheris pair of
    its target (a harness finds defects of several properties), else one of its own."""
    key = (finding.get("target"), finding.get("property"))
    if key in cases:
        return key
    if finding.get("mode") == "atheris":
        for (target, prop), pair in cases.items():
            if target == key[0] and pair.get("mode") == "atheris":
                return target, prop
    cases[key] = {"target": key[0], "property": key[1], "mode": finding.get("mode"), "seconds": 0.0}
    return key


def junit(data: dict) -> str:
    """``junit.xml``: one test case per (target, property) pair. New or regressed errors fail it
    (their reproducers in the failure's text); a hung or failed pair is an error; known findings
    and warnings are listed in ``system-out`` only, so known defects do not fail CI (as the exit
    code does not)."""
    cases: dict[tuple, dict] = {}
    for p in data.get("pairs", []):
        cases.setdefault((p.get("target"), p.get("property")), p)
    failing: dict[tuple, list] = defaultdict(list)
    other: dict[tuple, list] = defaultdict(list)
    for f in data.get("findings", []):
        owner = _owner(f, cases)
        if f.get("severity") == "error" and f.get("status") in ("new", "regressed"):
            failing[owner].append(f)
        else:
            other[owner].append(f)

    suite = ET.Element("testsuite", name=xml_text(f"chainfuzz campaign {data.get('name')}"),
                       timestamp=xml_text(data.get("started") or ""),
                       time=f"{float(data.get('elapsed') or 0):.3f}")
    failures = errors = 0
    for key, p in cases.items():
        case = ET.SubElement(suite, "testcase", classname=xml_text(p.get("target")),
                             name=xml_text(p.get("property")), time=f"{float(p.get('seconds') or 0):.3f}")
        if failing[key]:
            failures += 1
            first = failing[key][0]
            more = f" (and {len(failing[key]) - 1} more)" if len(failing[key]) > 1 else ""
            message = clip(f"{first.get('status')}: {first.get('message') or first.get('key')}", MESSAGE_CHARS)
            failure = ET.SubElement(case, "failure", type=xml_text(first.get("key")),
                                    message=xml_text(message + more))
            failure.text = xml_text("\n\n".join(
                _finding_line(f) + ("\nreproducer:\n" + _reproducer(f, HTML_REPRO_CHARS) if i < JUNIT_REPRO_CAP else "")
                for i, f in enumerate(failing[key])))
        if p.get("state") in ("hung", "failed"):
            errors += 1
            ET.SubElement(case, "error", type=xml_text(p.get("state")),
                          message=xml_text(clip(str(p.get("message") or p.get("state")), MESSAGE_CHARS)))
        if other[key]:
            out = ET.SubElement(case, "system-out")
            out.text = xml_text("\n".join(_finding_line(f) for f in other[key]))
    suite.set("tests", str(len(cases)))
    suite.set("failures", str(failures))
    suite.set("errors", str(errors))
    suite.set("skipped", "0")
    ET.indent(suite, space=" ")
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(suite, encoding="unicode") + "\n"


# ---------------------------------------------------------------------------------------------
# report.html

_CSS = """
body{font:14px/1.45 system-ui,sans-serif;margin:0 auto;max-width:1200px;padding:1em 2em;color:#1b1b1b}
h1{font-size:1.5em}h2{font-size:1.2em;border-bottom:1px solid #ccc;padding-bottom:.2em;margin-top:2em}
h3{font-size:1em;margin-bottom:.3em}
table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #ddd;padding:2px 6px;text-align:left;
vertical-align:top}td.n{text-align:right}
pre{background:#f5f5f5;padding:.5em;overflow:auto;max-height:30em;white-space:pre-wrap;word-break:break-all}
.error{color:#a00}.warning{color:#965c00}.new,.regressed{font-weight:bold}.hung,.failed{background:#fde2e2}
.meta{color:#555}figure{margin:1em 0}svg{max-width:100%;height:auto}
.note{background:#fff4d6;padding:.5em 1em;border-left:4px solid #e0a800}
ul.findings{padding-left:1.2em}ul.findings li{margin:.3em 0}
"""


def _e(value: object, limit: int | None = None) -> str:
    """Untrusted text for HTML: clipped, characters HTML forbids (controls, lone surrogates) made
    visible as in XML, then escaped (quotes too: it may land in an attribute)."""
    text = value if isinstance(value, str) else "" if value is None else str(value)
    return _html.escape(xml_text(clip(text, limit) if limit else text), quote=True)


def _html_finding(f: dict, with_repro: bool) -> str:
    sev, status = str(f.get("severity")), str(f.get("status"))
    head = (f'<span class="{_e(sev)}">{_e(sev)}</span> <span class="{_e(status)}">{_e(status)}</span> '
            f"<code>{_e(f.get('key'), 400)}</code>")
    if f.get("message") and f.get("message") != f.get("key"):
        head += f": {_e(f.get('message'), 500)}"
    extra = (f" <span class=meta>({_e(f.get('mode'))}, found at {float(f.get('found_at') or 0):.0f} s,"
             f" first in run {int(f.get('first_run') or 0)}"
             + (f", case <code>{_e(f.get('case_file'), 300)}</code>" if f.get("case_file") else "") + ")</span>")
    body = head + extra
    if with_repro:
        body += ("<details><summary>minimal reproducer</summary><pre>"
                 f"{_e(_reproducer(f, HTML_REPRO_CHARS))}</pre></details>")
    return f"<li>{body}</li>"


def _html_changes(data: dict) -> str:
    ch = data.get("changes", {})
    new, regressed, fixed = ch.get("new", []), ch.get("regressed", []), ch.get("fixed", [])
    parts = [f"<h2 id=changes>Since the last run: {_e(headline(data))}</h2>"]
    if not (new or regressed or fixed):
        parts.append("<p>Nothing changed since the last run.</p>")
    for title, items in (("New", new), ("Regressed", regressed)):
        if items:
            parts.append(f"<h3>{title} ({len(items)})</h3><ul class=findings>")
            parts += [f"<li>{_e(f.get('target'), 200)} · {_e(f.get('property'), 100)}: "
                      f"{_html_finding(f, False)[4:-5]}</li>" for f in items[:HTML_REPRO_CAP]]
            if len(items) > HTML_REPRO_CAP:
                parts.append(f"<li>and {len(items) - HTML_REPRO_CAP} more (report.json)</li>")
            parts.append("</ul>")
    if fixed:
        parts.append(f"<h3>Fixed ({len(fixed)})</h3><ul class=findings>")
        parts += [f"<li>{_e(f.get('target'), 200)} · {_e(f.get('property'), 100)}: "
                  f"<code>{_e(f.get('key'), 400)}</code>"
                  f" (since run {int(f.get('since_run') or 0)}"
                  + (f", case <code>{_e(f.get('case_file'), 300)}</code>" if f.get("case_file") else "") + ")</li>"
                  for f in fixed[:HTML_REPRO_CAP]]
        if len(fixed) > HTML_REPRO_CAP:
            parts.append(f"<li>and {len(fixed) - HTML_REPRO_CAP} more (report.json)</li>")
        parts.append("</ul>")
    if ch.get("known"):
        parts.append(f"<p>Seen again, already known: {int(ch['known'])}.</p>")
    return "\n".join(parts)


def _html_findings(data: dict) -> str:
    findings = data.get("findings", [])
    parts = [f"<h2 id=findings>Findings ({len(findings)})</h2>"]
    if not findings:
        return parts[0] + "<p>No findings.</p>"
    # New and regressed first, errors before warnings: those get the reproducers under the cap.
    rank = {"regressed": 0, "new": 1, "known": 2}
    ordered = sorted(findings, key=lambda f: (rank.get(f.get("status"), 3), f.get("severity") != "error"))
    shown = {id(f) for f in ordered[:HTML_REPRO_CAP]}
    groups: dict[tuple, list] = defaultdict(list)
    for f in findings:
        groups[(str(f.get("target")), str(f.get("property")))].append(f)
    target = None
    for (t, prop), items in sorted(groups.items()):
        if t != target:
            parts.append(f"<h3>{_e(t, 300)}</h3>")
            target = t
        parts.append(f"<p><b>{_e(prop, 200)}</b> ({len(items)})</p><ul class=findings>")
        parts += [_html_finding(f, id(f) in shown) for f in items]
        parts.append("</ul>")
    if len(findings) > HTML_REPRO_CAP:
        parts.append(f"<p class=meta>Reproducers shown for {HTML_REPRO_CAP} of {len(findings)} findings "
                     "(new and regressed first); the case files hold every one.</p>")
    return "\n".join(parts)


def _html_pairs(data: dict) -> str:
    pairs = sorted(data.get("pairs", []), key=_pair_order)
    head = f"<h2 id=pairs>Targets and properties ({len(pairs)} pairs)</h2>"
    if not pairs:
        return head + "<p>No pairs were scheduled.</p>"
    rows = ["<table><tr><th>target</th><th>property</th><th>mode</th><th>seconds</th><th>slices</th>"
            "<th>examples</th><th>examples/s</th><th>gain</th><th>coverage</th><th>errors</th><th>warnings</th>"
            "<th>state</th><th>message</th></tr>"]
    for p in pairs:
        state = str(p.get("state"))
        cov = p.get("coverage")
        rows.append(f'<tr class="{_e(state)}"><td>{_e(p.get("target"), 200)}</td><td>{_e(p.get("property"), 100)}</td>'
                    f"<td>{_e(p.get('mode'))}</td><td class=n>{float(p.get('seconds') or 0):.1f}</td>"
                    f"<td class=n>{int(p.get('slices') or 0)}</td><td class=n>{int(p.get('examples') or 0)}</td>"
                    f"<td class=n>{float(p.get('examples_per_second') or 0):.1f}</td>"
                    f"<td class=n>{int(p.get('gain') or 0)}</td><td class=n>{'' if cov is None else int(cov)}</td>"
                    f"<td class=n>{int(p.get('errors') or 0)}</td><td class=n>{int(p.get('warnings') or 0)}</td>"
                    f"<td>{_e(state)}</td><td>{_e(p.get('message'), 500)}</td></tr>")
    return head + "\n".join(rows) + "</table>"


def _html_history(data: dict) -> str:
    history = data.get("history", [])
    if not history:
        return ""
    rows = ["<h2 id=history>Runs</h2><table><tr><th>run</th><th>ended</th><th>searched</th><th>new</th>"
            "<th>regressed</th><th>fixed</th><th>errors</th><th>warnings</th></tr>"]
    for h in history[-50:]:
        rows.append(f"<tr><td class=n>{int(h.get('run') or 0)}</td><td>{_e(h.get('ended'), 40)}</td>"
                    f"<td class=n>{_e(_duration(h.get('elapsed')))}</td>"
                    + "".join(f"<td class=n>{int(h.get(k) or 0)}</td>"
                              for k in ("new", "regressed", "fixed", "errors", "warnings")) + "</tr>")
    return "\n".join(rows) + "</table>"


def html(data: dict) -> str:
    """``report.html``: one self-contained page (no external reference, no script): what changed
    since the last run, the plots, the findings per target and property with their minimal
    reproducers, the pairs and the runs."""
    redis = f", redis {_e(data.get('redis'), 200)}" if data.get("redis") else ""
    seed = f", seed {int(data['seed'])}" if data.get("seed") is not None else ""
    meta = (f"<p class=meta>Config <code>{_e(data.get('config'), 300)}</code>, run {int(data.get('run') or 0)}, "
            f"{_e(data.get('started'), 40)} to {_e(data.get('ended'), 40)}; searched "
            f"{_e(_duration(data.get('elapsed')))} of {_e(_duration(data.get('budget')))} with "
            f"{int(data.get('workers') or 1)} worker(s){redis}{seed}; resumed {int(data.get('resumes') or 0)} time(s); "
            f"exit code {int(data.get('exit_code') or 0)}{' (interrupted)' if data.get('interrupted') else ''}.</p>")
    body = [f"<h1>chainfuzz campaign {_e(data.get('name'), 200)}</h1>", meta, _html_changes(data),
            "<h2 id=plots>Plots</h2>", plots(data), _html_findings(data), _html_pairs(data), _html_history(data)]
    return ("<!DOCTYPE html>\n<html lang=en><head><meta charset=utf-8>"
            '<meta name=viewport content="width=device-width,initial-scale=1">'
            f"<title>chainfuzz campaign {_e(data.get('name'), 200)}</title><style>{_CSS}</style></head>\n<body>\n"
            + "\n".join(body) + "\n</body></html>\n")


# ---------------------------------------------------------------------------------------------
# Plots (matplotlib, optional)


def plots(data: dict) -> str:
    """The four plots as HTML figures holding inline ``<svg id=plot-...>`` elements; without
    matplotlib, a note saying how to get them."""
    try:
        from matplotlib.backends.backend_svg import FigureCanvasSVG
        from matplotlib.figure import Figure
    except ImportError:
        return f"<p class=note id=plots-missing>{_e(PLOTS_MISSING)}</p>"
    drawn = []
    for plot_id, title, draw in (("plot-timeline", "Findings and coverage over time", _draw_timeline),
                                 ("plot-rate", "Examples per second per property", _draw_rate),
                                 ("plot-map", "Findings per target and property", _draw_map),
                                 ("plot-history", "Findings per run", _draw_history)):
        fig = Figure(figsize=(8, 3.2), layout="constrained")
        draw(fig, data)
        drawn.append(f"<figure>{_svg(fig, FigureCanvasSVG, plot_id, title)}"
                     f"<figcaption>{_e(title)}</figcaption></figure>")
    return "\n".join(drawn)


def _svg(fig, canvas_class, plot_id: str, title: str) -> str:
    """``fig`` as an inline ``<svg>`` with ``id=plot_id``: deterministic (no date, ids salted by
    the plot's id, so four plots in one page share none), text kept as text, and the XML
    prolog and namespace declarations (URLs, needless inline in HTML) left out."""
    import matplotlib

    buf = io.StringIO()
    with matplotlib.rc_context({"svg.hashsalt": plot_id, "svg.fonttype": "none"}):
        canvas_class(fig).print_svg(buf, metadata={"Date": None, "Creator": None, "Format": None, "Type": None})
    svg = buf.getvalue()
    svg = svg[svg.index("<svg"):]
    svg = re.sub(r"<metadata>.*?</metadata>\s*", "", svg, flags=re.S)
    svg = re.sub(r'\s+xmlns(:\w+)?="[^"]*"', "", svg, count=0)
    svg = svg.replace("<svg", f'<svg id="{plot_id}" role="img" aria-label="{_e(title)}"', 1)
    return svg


def _label(text: object, limit: int = 40) -> str:
    """A target or property name as a plot label: one visible line, clipped."""
    return printable(text, limit)


def _integer_ticks():
    from matplotlib.ticker import MaxNLocator

    return MaxNLocator(integer=True)


def _empty(ax, what: str) -> None:
    ax.text(0.5, 0.5, what, ha="center", va="center", transform=ax.transAxes, color="#777")
    ax.set_xticks([])
    ax.set_yticks([])


def _draw_timeline(fig, data: dict) -> None:
    timeline = data.get("timeline", [])
    top, bottom = fig.subplots(2, 1, sharex=True)
    if not timeline:
        _empty(top, "no timeline yet")
        _empty(bottom, "")
        return
    t = [p.get("t", 0) for p in timeline]
    top.step(t, [p.get("findings", 0) for p in timeline], where="post", label="findings")
    top.step(t, [p.get("errors", 0) for p in timeline], where="post", label="errors")
    top.set_ylabel("findings")
    top.yaxis.set_major_locator(_integer_ticks())
    top.legend(loc="upper left")
    bottom.plot(t, [p.get("coverage", 0) for p in timeline], color="tab:green", label="coverage")
    bottom.set_ylabel("coverage")
    bottom.set_xlabel("seconds into the run")


def _draw_rate(fig, data: dict) -> None:
    ax = fig.subplots()
    rate: Counter = Counter()
    for p in data.get("pairs", []):
        rate[str(p.get("property"))] += float(p.get("examples_per_second") or 0)
    if not rate:
        return _empty(ax, "no pairs")
    names = sorted(rate, key=lambda k: rate[k])[-MAP_CAP:]
    fig.set_figheight(max(2.5, 0.3 * len(names) + 1))
    ax.barh(range(len(names)), [rate[n] for n in names])
    ax.set_yticks(range(len(names)), labels=[_label(n) for n in names], parse_math=False)
    ax.set_xlabel("examples per second (pairs summed)")


def _draw_map(fig, data: dict) -> None:
    ax = fig.subplots()
    pairs = data.get("pairs", [])
    if not pairs:
        return _empty(ax, "no pairs")
    counts: Counter = Counter()
    hung = set()
    for p in pairs:
        key = (str(p.get("target")), str(p.get("property")))
        counts[key] += int(p.get("errors") or 0) + int(p.get("warnings") or 0)
        if p.get("state") in ("hung", "failed"):
            hung.add(key)
    by_target, by_prop = Counter(), Counter()
    for (t, prop), n in counts.items():
        by_target[t] += n
        by_prop[prop] += n
    # The busiest rows and columns when there are too many to read, then in name order.
    targets = sorted(sorted(by_target, key=lambda k: -by_target[k])[:MAP_CAP])
    props = sorted(sorted(by_prop, key=lambda k: -by_prop[k])[:MAP_CAP])
    grid = [[counts.get((t, p), 0) for p in props] for t in targets]
    fig.set_figheight(max(2.5, 0.35 * len(targets) + 1.5))
    top = max(1, max(max(row) for row in grid))
    image = ax.imshow(grid, cmap="Reds", aspect="auto", vmin=0, vmax=top)
    fig.colorbar(image, ax=ax, label="errors + warnings", ticks=_integer_ticks())
    ax.set_yticks(range(len(targets)), labels=[_label(t) for t in targets], parse_math=False)
    ax.set_xticks(range(len(props)), labels=[_label(p, 30) for p in props], parse_math=False,
                  rotation=30, ha="right")
    for i, t in enumerate(targets):
        for j, p in enumerate(props):
            n = grid[i][j]
            text = (f"{n} hung" if n else "hung") if (t, p) in hung else str(n) if n else ""
            if text:  # white on the darker half of the scale
                ax.text(j, i, text, ha="center", va="center", fontsize=8, fontweight="bold",
                        color="white" if n > top / 2 else "black")
    hidden = len(by_target) - len(targets), len(by_prop) - len(props)
    if any(hidden):
        ax.set_title(f"{hidden[0]} targets and {hidden[1]} properties with fewest findings not shown", fontsize=9)


def _draw_history(fig, data: dict) -> None:
    ax = fig.subplots()
    history = data.get("history", [])[-50:]
    if not history:
        return _empty(ax, "no runs yet")
    runs = [int(h.get("run") or 0) for h in history]
    errors = [int(h.get("errors") or 0) for h in history]
    warnings = [int(h.get("warnings") or 0) for h in history]
    ax.bar(runs, errors, label="errors", color="tab:red")
    ax.bar(runs, warnings, bottom=errors, label="warnings", color="tab:orange")
    ax.plot(runs, [int(h.get("new") or 0) for h in history], "o-", color="black", label="new")
    ax.plot(runs, [int(h.get("fixed") or 0) for h in history], "s--", color="tab:green", label="fixed")
    ax.set_xticks(runs)
    ax.set_xlabel("run")
    ax.set_ylabel("findings")
    ax.yaxis.set_major_locator(_integer_ticks())
    ax.legend(loc="upper left")
