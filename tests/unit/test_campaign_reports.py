"""The campaign's reports (`chainfuzz.campaign.reports`): report.md leads with what changed and
stays small, junit.xml parses and fails only on new or regressed errors, report.json reads back
as the dict, report.html refers to nothing outside itself, and every view escapes hostile text.
(report.html in a real browser: tests/integrations/browser/.)"""

from __future__ import annotations

import json
import re
import sys
import xml.etree.ElementTree as ET

import pytest
from report_samples import HOSTILE, clean_report, finding, first_run_report, many_findings_report, sample_report

from chainfuzz.campaign import reports
from chainfuzz.campaign.reports import PLOT_IDS, html, junit, markdown, write_reports


def _suite(data: dict) -> ET.Element:
    return ET.fromstring(junit(data).encode("utf-8"))


def _commonmark(text: str) -> str:
    """``text`` rendered as CommonMark with GitHub's tables, raw HTML let through (as GitHub does
    before sanitising)."""
    markdown_it = pytest.importorskip("markdown_it")
    return markdown_it.MarkdownIt("commonmark").enable("table").render(text)


# --- report.md -------------------------------------------------------------------------------


def test_markdown_leads_with_the_changes_then_the_table_then_the_hung_pairs():
    text = markdown(sample_report())
    first = text.splitlines()[0]
    assert first == "## chainfuzz campaign nightly, run 3: 2 new, 1 regressed, 1 fixed, 3 known"
    order = ["### New (2)", "### Regressed (1)", "### Fixed (1)", "already known: 3", "### Reproducers",
             "### Targets and properties", "### Hung or failed (1)"]
    assert [text.index(h) for h in order] == sorted(text.index(h) for h in order)
    assert "hung: mistral.jinja · template.tools: no example finished in 30 s" in text
    # Reproducers only for new and regressed errors: not for the new warning nor the known ones.
    assert text.count("<details>") == 2


def test_markdown_of_a_clean_run_says_nothing_changed():
    text = markdown(clean_report())
    assert "Nothing changed since the last run." in text
    assert "### New" not in text and "<details>" not in text and "### Hung" not in text


def test_markdown_escapes_hostile_text_and_fences_reproducers_past_their_backticks():
    data = sample_report()
    rendered = _commonmark(markdown(data))
    # The planted message shows as text: no element from it, no table cell split by its pipe.
    assert "<script>" not in rendered and "<em>b</em>" not in rendered
    assert "&lt;/pre&gt;&lt;script&gt;alert(1)&lt;/script&gt; | `x` ``` *b*" in rendered
    rows = re.findall(r"<tr>(.*?)</tr>", rendered, re.S)
    assert rows and all(row.count("<td") in (0, 7) for row in rows)
    # The reproducer holding runs of 4 and 2 backticks comes back whole from its code block.
    blocks = [json.loads(_unescape(b)) for b in re.findall(r'<code class="language-json">(.*?)</code>', rendered, re.S)]
    assert data["changes"]["new"][0]["input"] in blocks
    # The clean twin: a plain message is shown as it is.
    data["changes"]["new"][0]["message"] = "plain words"
    assert "TypeError@line 2:NoneType (plain words)" in markdown(data)


def _unescape(text: str) -> str:
    import html as _html

    return _html.unescape(text)


def test_markdown_stays_far_under_githubs_comment_limit_with_500_findings():
    data = many_findings_report(500)
    text = markdown(data)
    assert len(text) <= reports.MARKDOWN_LIMIT < 65_536
    assert "### New (502)" in text and "- and 482 more (report.json lists all)" in text  # 20 listed
    # Reproducers of 502 errors (500, the sample's new one and its regression), 10 shown.
    assert f"and {502 - reports.REPRO_CAP} more reproducers" in text
    # Still valid: every fence it opened is closed, so the table renders.
    assert "<table>" in _commonmark(text)
    # The clean twin: the sample itself lists everything, with no "more".
    assert " more " not in markdown(sample_report())


def test_markdown_cut_by_long_names_still_closes_its_code_block():
    data = many_findings_report(50)
    for f in data["findings"]:  # every field at its cap, and escaping doubles each character
        f.update(target="|" * 500, key="_" * 500, message="*" * 5000)
    text = markdown(data)
    assert len(text) <= reports.MARKDOWN_LIMIT
    rendered = _commonmark(text)
    assert rendered.rstrip().endswith("<p>(report cut here: report.json and report.html hold the rest)</p>")
    # The clean twin: the sample is not cut.
    assert "report cut here" not in markdown(sample_report())


# --- junit.xml -------------------------------------------------------------------------------


def test_junit_counts_fail_on_new_and_regressed_errors_only():
    suite = _suite(sample_report())
    assert suite.tag == "testsuite" and suite.get("name") == "chainfuzz campaign nightly"
    cases = suite.findall("testcase")
    assert len(cases) == 16 == int(suite.get("tests"))
    failed = {(c.get("classname"), c.get("name")): c.find("failure") for c in cases if c.find("failure") is not None}
    assert set(failed) == {("qwen2.jinja", "template.roles"), ("mistral.jinja", "template.generation-prompt")}
    assert suite.get("failures") == "2" and suite.get("skipped") == "0"
    assert failed["qwen2.jinja", "template.roles"].get("type") == "TypeError@line 2:NoneType"
    assert HOSTILE in failed["qwen2.jinja", "template.roles"].get("message")
    assert '"content": "```` and `` in </pre>"' in failed["qwen2.jinja", "template.roles"].text
    errors = [c for c in cases if c.find("error") is not None]
    assert [(c.get("classname"), c.get("name")) for c in errors] == [("mistral.jinja", "template.tools")]
    assert suite.get("errors") == "1" and errors[0].find("error").get("message") == "no example finished in 30 s"
    # Known findings and the new warning pass, listed in system-out; the atheris finding of a
    # property without a pair of its own is listed under its target's harness.
    by_name = {(c.get("classname"), c.get("name")): c for c in cases}
    known = by_name["llama3.jinja", "template.roles"].find("system-out").text
    assert known.startswith("[known] error llama3.jinja / template.roles: roles must alternate case: crashes/")
    assert by_name["llama3.jinja", "template.tools"].find("failure") is None
    assert float(by_name["llama3.jinja", "harness:template"].get("time")) == 60.0


def test_junit_of_a_clean_run_has_no_failure():
    suite = _suite(clean_report())
    assert (suite.get("tests"), suite.get("failures"), suite.get("errors")) == ("16", "0", "0")
    assert suite.find(".//failure") is None and suite.find(".//error") is None


def test_junit_holds_control_characters_and_lone_surrogates_as_visible_escapes():
    data = sample_report()
    data["changes"]["new"][0]["message"] = "bell\x07 nul\x00 lone\ud800 esc\x1b[31m"
    data["changes"]["new"][0]["key"] = "Key\x0bError"
    failure = _suite(data).find(".//failure")
    assert failure.get("message") == "new: bell\\x07 nul\\x00 lone\\ud800 esc\\x1b[31m"
    assert failure.get("type") == "Key\\x0bError"
    junit(data).encode("utf-8")  # strict UTF-8: no lone surrogate left


def test_junit_gives_a_finding_without_a_pair_a_test_case_of_its_own():
    data = sample_report()
    extra = finding("gemma.jinja", "template.renders", "orphan")
    data["findings"].append(extra)
    suite = _suite(data)
    assert suite.get("tests") == "17" and suite.get("failures") == "3"


# --- report.json and write_reports ------------------------------------------------------------


def test_write_reports_writes_the_four_files_and_json_reads_back_as_the_dict(tmp_path):
    data = sample_report()
    data["changes"]["new"][0]["message"] = "lone \ud800 surrogate"
    out = tmp_path / "new" / "folder"
    paths = write_reports(data, out)
    assert sorted(paths) == ["junit.xml", "report.html", "report.json", "report.md"]
    assert sorted(p.name for p in out.iterdir()) == sorted(paths)  # no temporary file left
    back = json.loads(paths["report.json"].read_text(encoding="utf-8"))
    assert back == data and list(back) == list(data)
    assert paths["report.json"].read_text(encoding="utf-8").startswith('{\n "chainfuzz_campaign": 1,\n "name"')
    # Written again (the next run): replaced whole.
    write_reports(clean_report(), out)
    assert json.loads(paths["report.json"].read_text(encoding="utf-8"))["findings"] == []


# --- report.html -----------------------------------------------------------------------------


def _external(page: str) -> list[str]:
    """Whatever in ``page`` could make a browser fetch something."""
    return (re.findall(r"https?:|//[\w.-]+\.\w+/", page)
            + re.findall(r"""\b(?:src|href|srcset|poster|action)\s*=\s*["']?(?!#|data:)[^"'\s>]+""", page)
            + re.findall(r"url\((?!#)", page) + re.findall(r"@import", page))


def test_html_refers_to_nothing_outside_itself_and_has_every_plot():
    pytest.importorskip("matplotlib")
    page = html(sample_report())
    assert _external(page) == []
    assert "<script" not in page.lower()
    for plot_id in PLOT_IDS:
        assert page.count(f'<svg id="{plot_id}"') == 1
    # The planted twin: an external reference is what the check catches.
    assert _external(page.replace("</body>", '<img src="http://127.0.0.1:9/x.png"></body>'))


def test_html_escapes_a_hostile_message_and_hostile_names_in_the_plots():
    pytest.importorskip("matplotlib")
    data = sample_report()
    name = "<script>alert(2)</script>$\\frac{$&\x1b"
    for p in data["pairs"]:
        if p["target"] == "qwen2.jinja":
            p["target"] = name
    data["findings"][0]["input"]["messages"][0]["content"] = "</pre></details><script>alert(3)</script>"
    page = html(data)
    assert "<script" not in page.lower()
    assert "&lt;/pre&gt;&lt;script&gt;alert(1)&lt;/script&gt; | `x` ``` *b*" in page
    assert "&lt;/pre&gt;&lt;/details&gt;&lt;script&gt;alert(3)&lt;/script&gt;" in page
    # In the map's labels too, made one visible line, maths not parsed; the clean twin, a
    # plain name, appears as it is.
    svg = re.search(r'<svg id="plot-map".*?</svg>', page, re.S).group()
    assert ">&lt;script&gt;alert(2)&lt;/script&gt;$\\frac{$&amp;\\x1b<" in svg
    assert ">llama3.jinja<" in svg


def test_html_without_matplotlib_says_how_to_get_the_plots(monkeypatch):
    # The optional extra not installed: importing it fails (None in sys.modules makes import
    # raise ImportError), whether or not another test imported it already.
    for name in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    page = html(sample_report())
    assert "<svg" not in page
    assert "pip install &#x27;chainfuzz[campaign]&#x27;" in page
    assert 'id=changes' in page and 'id=findings' in page and 'id=pairs' in page
    assert _external(page) == []


def test_html_is_the_same_every_time_and_handles_the_edge_cases():
    pytest.importorskip("matplotlib")
    assert html(sample_report()) == html(sample_report())
    first = html(first_run_report())
    assert "no timeline yet" in first and first.count('<svg id="plot-') == 4
    clean = html(clean_report())
    assert "Nothing changed since the last run." in clean and "No findings." in clean


def test_html_and_junit_cap_the_reproducers_of_500_findings():
    pytest.importorskip("matplotlib")
    data = many_findings_report(500)
    page = html(data)
    assert page.count("<summary>minimal reproducer</summary>") == reports.HTML_REPRO_CAP
    assert f"Reproducers shown for {reports.HTML_REPRO_CAP} of 506 findings" in page
    for failure in _suite(data).iter("failure"):
        assert failure.text.count("\nreproducer:\n") <= reports.JUNIT_REPRO_CAP
    # The clean twin: the sample's six findings all show theirs.
    assert html(sample_report()).count("<summary>minimal reproducer</summary>") == 6
