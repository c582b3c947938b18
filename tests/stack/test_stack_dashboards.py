"""The dashboards Prometheus serves (/consoles/), and the model server's /docs, in a real browser.

Headless Chromium (Debian's chromium and chromium-driver: `make browser`, a prerequisite of
`make test-stack`) opens the console index, follows its link to every dashboard page and waits
until every panel is drawn: each panel must show data (data-series > 0, set by
console_libraries/modelfleet.lib once drawn), and any error in the browser's log fails.
Screenshots are kept under build/screenshots/. Whether each query is right is proven elsewhere
(tests/monitoring/test_dashboards.py: same queries as Grafana; test_stack_monitoring.py: each
returns data); this test proves the pages draw them.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import re
import shutil
from collections.abc import Collection, Iterator
from pathlib import Path
from urllib.parse import quote, urljoin

import pytest
from selenium import webdriver
from selenium.common.exceptions import TimeoutException
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import WebDriverWait

from tests.monitoring import queries
from tests.stack.stackctl import Stack

ROOT = Path(__file__).resolve().parents[2]
CONSOLES = ROOT / "monitoring" / "prometheus" / "consoles"
SCREENSHOTS = ROOT / "build" / "screenshots"
# Debian's packages; selenium is never left to find or download a driver itself (its
# selenium-manager downloads browsers, which fails here).
CHROMIUM = os.environ.get("MODELFLEET_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("MODELFLEET_CHROMEDRIVER", "/usr/bin/chromedriver")
# The pages' own time control (PromConsole's #pctc hash): the last 10 minutes, until now. A
# fresh stack has only minutes of data, and this keeps the screenshots readable.
TIME_RANGE = "#pctc" + quote(json.dumps({"duration": 600, "endTime": 0}))
# Every panel of a page draws within this (a dozen instant and range queries per page).
DRAW_TIMEOUT = 45

# Done: every panel either drew (data-series) or failed (data-error).
_ALL_PANELS_SETTLED = """
const panels = Array.from(document.querySelectorAll('[data-panel]'));
return panels.length > 0 && panels.every(p => p.dataset.series !== undefined
                                              || p.dataset.error !== undefined);
"""
_PANELS = """
return Array.from(document.querySelectorAll('[data-panel]')).map(p => ({
  title: p.dataset.title, type: p.dataset.panel,
  series: p.dataset.series === undefined ? null : Number(p.dataset.series),
  error: p.dataset.error === undefined ? null : p.dataset.error}));
"""


@pytest.fixture(scope="module")
def browser() -> Iterator[WebDriver]:
    """Headless Chromium driven through Debian's chromedriver, with the browser log kept."""
    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not shutil.which(p)]
    if missing:
        message = f"{', '.join(missing)} missing: run `make browser`"
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(message)
        pytest.skip(message)
    options = Options()
    options.binary_location = CHROMIUM
    for arg in (
        "--headless=new",
        # Root on CI and in containers: Chromium's sandbox needs user namespaces it may lack.
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--window-size=1400,900",
    ):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(30)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    try:
        yield driver
    finally:
        driver.quit()


def _browser_errors(driver: WebDriver) -> list[str]:
    """Errors logged since the last call: JS exceptions, console.error, failed loads.

    Except Chromium's ERR_NETWORK_CHANGED: it aborts requests in flight whenever a network
    interface comes or goes, which Docker does for every container started on the host (other
    stacks included). Not an error of the page: the panels hit still have to draw with data
    (the page redraws them on its next refresh) before the wait ends.
    """
    return [
        e["message"]
        for e in driver.get_log("browser")
        if e["level"] == "SEVERE" and "net::ERR_NETWORK_CHANGED" not in e["message"]
    ]


def _screenshot(driver: WebDriver, name: str) -> Path:
    """A screenshot of the whole page, beyond the window (Chromium's DevTools protocol)."""
    shot = driver.execute_cdp_cmd(
        "Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True}
    )
    path = SCREENSHOTS / f"{name}.png"
    path.write_bytes(base64.b64decode(shot["data"]))
    return path


def _open_dashboard(driver: WebDriver, url: str) -> list[dict]:
    """Open a console page, wait until every panel settled; its panels' states."""
    driver.get(url)
    # A timeout is reported by the caller, panel by panel.
    with contextlib.suppress(TimeoutException):
        WebDriverWait(driver, DRAW_TIMEOUT, poll_frequency=0.5).until(
            lambda d: d.execute_script(_ALL_PANELS_SETTLED)
        )
    return driver.execute_script(_PANELS)


def _assert_drawn_with_data(
    name: str, panels: list[dict], errors: list[str], gates: Collection[str] = ()
) -> None:
    """Every panel drawn without error, with series; the ``gates`` panels (data only while
    two versions of a model answer) drawn, with or without."""
    assert panels, f"{name}: no panels on the page"
    bad = [
        p
        for p in panels
        if p["error"] is not None
        or p["series"] is None
        or (not p["series"] and p["title"] not in gates)
    ]
    assert not bad, f"{name}: panels without data:\n" + "\n".join(map(str, bad))
    assert not errors, f"{name}: browser errors:\n" + "\n".join(errors)


def test_every_dashboard_page_draws_every_panel_with_data(
    loaded_stack: Stack, browser: WebDriver
) -> None:
    index_url = f"{loaded_stack.prometheus_url}/consoles/index.html"
    browser.get(index_url)
    assert browser.title.startswith("Dashboards")
    links = {
        a.text: a.get_attribute("href")
        for a in browser.find_elements(By.CSS_SELECTOR, "a.mf-dashboard")
    }
    pages = sorted(p.name for p in CONSOLES.glob("*.html") if p.name != "index.html")
    assert sorted(Path(h).name for h in links.values()) == pages, links
    assert not (errors := _browser_errors(browser)), errors
    _screenshot(browser, "index")

    drawn = 0
    gates = queries.two_version_panels()
    for title, url in links.items():
        name = Path(url).stem
        panels = _open_dashboard(browser, url + TIME_RANGE)
        errors = _browser_errors(browser)
        _screenshot(browser, name)
        _assert_drawn_with_data(title, panels, errors, gates[name])
        drawn += len(panels)
    print(f"dashboard pages: {len(links)}, panels drawn with data: {drawn}")


def test_the_model_parameter_narrows_the_panels_to_one_model(
    loaded_stack: Stack, browser: WebDriver
) -> None:
    """`?model=` is Grafana's $model: the overview then shows that model's series only."""
    url = f"{loaded_stack.prometheus_url}/consoles/overview.html?model=diabetes{TIME_RANGE}"
    panels = _open_dashboard(browser, url)
    _assert_drawn_with_data("overview?model=diabetes", panels, _browser_errors(browser))
    options = [o.text for o in browser.find_elements(By.CSS_SELECTOR, "select[name=model] option")]
    assert options[0] == "All" and "diabetes" in options and len(set(options)) == len(options)
    selected = browser.find_element(By.CSS_SELECTOR, "select[name=model] option:checked")
    assert selected.text == "diabetes"
    legend = browser.find_element(
        By.XPATH, "//section[@data-title='Requests/s by model']//div[contains(@class,'legend')]"
    ).text
    assert re.findall(r"\S+", legend) == ["diabetes"], legend
    _screenshot(browser, "overview-diabetes")


def test_model_server_docs_page_renders_through_the_load_balancer(
    stack: Stack, browser: WebDriver
) -> None:
    browser.get(urljoin(stack.lb_url, "/docs"))
    assert "ModelFleet" in browser.title
    headings = [h.text for h in browser.find_elements(By.CSS_SELECTOR, "h2")]
    assert any(h.startswith("GET") and "/predict_data" in h for h in headings), headings
    assert browser.find_element(By.TAG_NAME, "h2").is_displayed()
    assert not (errors := _browser_errors(browser)), errors
    _screenshot(browser, "docs")
