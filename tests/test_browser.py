"""The dashboard in real headless Chromium (Playwright driving the system's chromium): launch
the demo preset from the form and watch the run page's charts gain points live."""

import shutil

import pytest

from tests.support import Stack, unavailable

pytestmark = pytest.mark.browser

CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture
def browser():
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        unavailable("Chromium", "no chromium executable on PATH (apt-get install chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as exc:
        unavailable("Playwright", str(exc))
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=path, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def stack(env, tmp_path):
    s = Stack(env, tmp_path)
    try:
        yield s.start()
    finally:
        s.stop()


def _points(page, chart: str, trace: int) -> int:
    return page.evaluate(
        "([c, t]) => { const d = document.getElementById(c).data; return d ? d[t].x.length : 0 }",
        [chart, trace],
    )


def test_launch_demo_preset_and_watch_the_chart_grow(browser, stack):
    page = browser.new_page()
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(stack.url + "/")
    page.wait_for_function("document.querySelectorAll('#preset option').length > 0")
    assert page.input_value("#preset") == "demo"
    assert page.input_value("#f-teacher") == "demo-teacher"
    # A bad value is refused inline, next to its field, with the api's message.
    page.fill("#f-temperature", "0")
    page.click("#launch-button")
    page.wait_for_selector("#err-temperature:not(:empty)")
    assert "greater than 0" in page.text_content("#err-temperature")
    page.fill("#f-temperature", "2")  # back to the preset's value
    page.click("#launch-button")
    page.wait_for_url("**/runs/*")
    # Live: the soft-loss trace gains points while the run trains, without reloading.
    page.wait_for_function(
        "() => { const d = document.getElementById('chart-losses').data; "
        "return d && d[0].x.length > 0 }",
        timeout=60_000,
    )
    first = _points(page, "chart-losses", 0)
    page.wait_for_function(
        f"() => document.getElementById('chart-losses').data[0].x.length > {first}", timeout=60_000
    )
    page.wait_for_function(
        "document.getElementById('run-status').textContent === 'succeeded'", timeout=120_000
    )
    page.wait_for_function(
        "document.getElementById('chart-losses').data[0].x.length === 200", timeout=30_000
    )
    assert _points(page, "chart-losses", 0) == 200  # soft, every step
    assert _points(page, "chart-losses", 1) == 200  # hard, every step
    assert _points(page, "chart-eval", 0) == 4  # eval every 50 steps
    assert not errors, errors
    # The runs page lists it as succeeded with its latest losses.
    page.goto(stack.url + "/")
    page.wait_for_selector("#runs-table .status-succeeded")
    assert page.text_content("#runs-table tbody tr td:nth-child(2)") == "demo"
