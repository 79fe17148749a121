"""report.html opened in real headless Chromium (Debian's, through its ChromeDriver): it shows its
plots, logs no error, asks the network for nothing and runs no script. `check_page` is the
checker; each of its checks has a planted twin (a broken inline script, an external image, a
plot removed) that it must report."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from programs import need_program
from report_samples import HOSTILE, first_run_report, sample_report

from chainfuzz.campaign.reports import PLOT_IDS, write_reports

pytest.importorskip("matplotlib")
webdriver = pytest.importorskip("selenium.webdriver")


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    """One headless Chromium for the module, offline in all but name: no background
    networking, no component updates, a fresh profile; the browser console and the network
    log (ChromeDriver's performance log) recorded."""
    chromium, chromedriver = need_program("chromium"), need_program("chromedriver")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for arg in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    # A Service with a path: Selenium Manager is never run, so nothing is downloaded.
    driver = webdriver.Chrome(service=Service(chromedriver), options=options)
    try:
        yield driver
    finally:
        driver.quit()


# Attributes through which a page can make the browser fetch something.
_FETCHING = "src,href,xlink:href,srcset,poster,data,action,formaction,background,ping"


def check_page(path: Path, driver, plots: tuple[str, ...] = PLOT_IDS) -> list[str]:
    """Problems of the page at ``path`` opened in ``driver`` (empty when it is sound): console
    entries of level SEVERE, a plot ``<svg>`` missing, hidden or of zero size, any network
    request attempted (the network log and Resource Timing), any element referring to
    something outside the page, and any ``<script>`` (report.html has none of its own, so one
    can only come from data)."""
    driver.get_log("browser"), driver.get_log("performance")  # drop what earlier pages left
    driver.get(Path(path).resolve().as_uri())
    problems = []
    for entry in driver.get_log("browser"):
        if entry.get("level") == "SEVERE":
            problems.append(f"console error: {entry.get('message')}")
    page_url = driver.current_url
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message.get("method") == "Network.requestWillBeSent":
            url = message["params"]["request"]["url"]
            if url != page_url and not url.startswith("data:"):
                problems.append(f"network request: {url}")
    for name in driver.execute_script("return performance.getEntriesByType('resource').map(e => e.name)"):
        problems.append(f"resource fetched: {name}")
    for ref in driver.execute_script(
            "const out = [];"
            "for (const el of document.querySelectorAll('*')) for (const a of el.attributes) {"
            "  if (arguments[0].split(',').includes(a.name) && a.value && !a.value.startsWith('#')"
            "      && !a.value.startsWith('data:')) out.push(el.tagName + ' ' + a.name + '=' + a.value); }"
            "return out;", _FETCHING):
        problems.append(f"external reference: {ref}")
    scripts = driver.execute_script("return document.scripts.length")
    if scripts:
        problems.append(f"{scripts} <script> element(s) in the page")
    found = driver.execute_script("return document.querySelectorAll('svg[id^=\"plot-\"]').length")
    if found < len(plots):
        problems.append(f"{found} plots, expected {len(plots)}")
    for plot_id in plots:
        box = driver.execute_script(
            "const el = document.getElementById(arguments[0]);"
            "if (!el) return null; const r = el.getBoundingClientRect();"
            "return {w: r.width, h: r.height, shown: el.checkVisibility()};", plot_id)
        if box is None:
            problems.append(f"plot {plot_id} missing")
        elif not box["shown"] or box["w"] <= 0 or box["h"] <= 0:
            problems.append(f"plot {plot_id} not displayed ({box['w']}x{box['h']})")
    return problems


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> Path:
    return write_reports(sample_report(), tmp_path_factory.mktemp("report"))["report.html"]


def test_the_report_has_no_problems_and_shows_the_hostile_message_as_text(browser, report):
    assert check_page(report, browser) == []
    from selenium.webdriver.common.by import By

    assert HOSTILE in browser.find_element(By.ID, "changes").find_element(By.XPATH, "..").text
    # Every plot is drawn at a readable size.
    for plot_id in PLOT_IDS:
        assert browser.find_element(By.ID, plot_id).size["width"] > 200


def test_a_first_run_with_an_empty_timeline_has_no_problems(browser, tmp_path):
    page = write_reports(first_run_report(), tmp_path)["report.html"]
    assert check_page(page, browser) == []


def _planted(report: Path, tmp_path: Path, old: str, new: str) -> Path:
    text = report.read_text(encoding="utf-8")
    assert old in text
    page = tmp_path / "planted.html"
    page.write_text(text.replace(old, new, 1), encoding="utf-8")
    return page


def test_a_broken_inline_script_is_reported(browser, report, tmp_path):
    problems = check_page(_planted(report, tmp_path, "</body>", "<script>undefinedFn()</script></body>"), browser)
    assert any(p.startswith("console error:") and "undefinedFn" in p for p in problems), problems
    assert "1 <script> element(s) in the page" in problems


def test_an_external_reference_is_reported(browser, report, tmp_path):
    problems = check_page(_planted(report, tmp_path, "</body>", '<img src="http://127.0.0.1:9/x.png"></body>'),
                          browser)
    assert any(p.startswith("network request: http://127.0.0.1:9/x.png") for p in problems), problems
    assert "external reference: IMG src=http://127.0.0.1:9/x.png" in problems


def test_a_missing_plot_is_reported(browser, report, tmp_path):
    problems = check_page(_planted(report, tmp_path, 'id="plot-map"', 'id="removed-map"'), browser)
    assert problems == ["3 plots, expected 4", "plot plot-map missing"]


def test_a_hidden_plot_is_reported(browser, report, tmp_path):
    page = _planted(report, tmp_path, "</style>", "#plot-rate{display:none}</style>")
    assert check_page(page, browser) == ["plot plot-rate not displayed (0x0)"]


def test_a_real_campaigns_report_has_no_problems(browser, tmp_path, sources):
    """The report a real `chainfuzz campaign` writes, not a sample: a planted null crash found."""
    import subprocess
    import sys

    (tmp_path / "t.jinja").write_text(sources.null_crash, encoding="utf-8")
    (tmp_path / "c.toml").write_text('budget = 6\n[[target]]\npath = "t.jinja"\nproperties = ["template.renders"]\n'
                                     'modes = ["hypothesis"]\n', encoding="utf-8")
    proc = subprocess.run([sys.executable, "-m", "chainfuzz.cli", "campaign", "c.toml", "--out", "out",
                           "--crashes", "crashes", "--seed", "1"], cwd=tmp_path, capture_output=True, text=True)
    assert proc.returncode == 1, proc.stderr
    data = json.loads((tmp_path / "out" / "report.json").read_text(encoding="utf-8"))
    assert data["changes"]["new"]
    assert check_page(tmp_path / "out" / "report.html", browser) == []
