"""The dashboard in real headless Chromium (Playwright driving the system's chromium): launch
the demo preset from the form and watch the run page's charts gain points live."""

import json
import re

import pytest

from tests.support import Stack, page_modules

pytestmark = pytest.mark.browser


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
    assert "greater than or equal to 0.05" in page.text_content("#err-temperature")
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
    # Named from its config (the form's name was left empty).
    assert page.text_content("#runs-table tbody tr td:nth-child(3)") == "T=2 α=0.5 demo-student-s"


def test_run_page_cancel_and_download(browser, stack):
    import httpx

    body = {
        "name": "long",
        "teacher": "demo-teacher",
        "student": "demo-student-s",
        "dataset": "demo",
        "max_steps": 100_000,
        "batch_size": 4,
        "seq_len": 32,
        "eval_interval": 1000,
    }
    run = httpx.post(f"{stack.url}/api/runs", json=body).json()
    page = browser.new_page()
    page.goto(f"{stack.url}/runs/{run['id']}")
    # Plotly draws the charts once its script has run: until then the div has no data.
    page.wait_for_function(
        "() => { const d = document.getElementById('chart-losses').data; "
        "return d && d[0].x.length > 5 }",
        timeout=60_000,
    )
    # The stacked chart holds α·soft and (1 − α)·hard per step.
    contrib = page.evaluate("document.getElementById('chart-contrib').data.map(t => t.x.length)")
    assert contrib[0] > 0 and contrib[1] > 0
    with page.expect_download() as dl:
        page.click("#download-csv")
    text = open(dl.value.path()).read().splitlines()
    assert text[0] == "key,step,value,time,flag" and any(
        ln.startswith("train/soft_loss,1,") for ln in text
    )
    # Every text the status shows from the click on, with the time since the click.
    page.evaluate(
        """() => { const s = document.getElementById('run-status');
        window.seen = []; window.t0 = null; window.answered = null;
        document.addEventListener('click', () => { window.t0 = performance.now(); }, true);
        const f = window.fetch;
        window.fetch = async (...a) => { const r = await f(...a);
          if (String(a[0]).endsWith('/cancel')) window.answered = performance.now() - window.t0;
          return r; };
        new MutationObserver(() => {
          if (window.t0 !== null) window.seen.push([s.textContent, performance.now() - window.t0]);
        }).observe(s, {childList: true, characterData: true, subtree: true}); }"""
    )
    page.click("#cancel-button")
    page.wait_for_function(
        "document.getElementById('run-status').textContent === 'cancelled'", timeout=60_000
    )
    seen, answered = page.evaluate("[window.seen, window.answered]")
    texts = [t for t, _ in seen]
    # At once (before the api answers the cancel, let alone the worker): "cancelling…", never
    # "running" again, then "cancelled".
    assert answered is not None and texts and texts[0] == "cancelling…", (seen, answered)
    assert seen[0][1] <= answered, (seen, answered)
    assert texts.index("cancelled") > 0 and "running" not in texts, seen
    assert page.is_hidden("#cancel-button")


def test_compare_two_runs_diff_smoothing_and_export(browser, stack, tmp_path):
    import httpx

    base = {
        "teacher": "demo-teacher",
        "student": "demo-student-s",
        "dataset": "demo",
        "max_steps": 30,
        "batch_size": 4,
        "seq_len": 32,
        "eval_interval": 10,
    }
    ids = [
        httpx.post(
            f"{stack.url}/api/runs", json={**base, "name": f"T{t}", "temperature": t}
        ).json()["id"]
        for t in (1.0, 4.0)
    ]
    for i in ids:
        assert stack.wait_for_status(i, {"succeeded", "failed"})["status"] == "succeeded"
    page = browser.new_page()
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(stack.url + "/")
    page.wait_for_selector(".select-run")
    for i in ids:
        page.check(f".select-run[value='{i}']")
    page.click("#compare-button")
    page.wait_for_url("**/compare?runs=*")
    page.wait_for_selector("#cmp-train-soft_loss .main-svg")
    names = page.evaluate("document.getElementById('cmp-train-soft_loss').data.map(t => t.name)")
    assert f"#{ids[0]} T1.0" in names and f"#{ids[1]} T4.0" in names
    # Smoothing is TensorBoard's debiased EMA: a constant stays constant, known values hold.
    page_modules(page, "compare-groups")
    assert page.evaluate("smoothEma([1, 1, 1], 0.9)") == pytest.approx([1, 1, 1])
    assert page.evaluate("smoothEma([2, 4], 0.5)") == pytest.approx([2, 10 / 3])
    # Only the fields that differ: the name and the temperature.
    page.check("#diff-only")
    fields = page.eval_on_selector_all(
        "#config-compare tbody tr", "rs => rs.map(r => r.dataset.field)"
    )
    assert sorted(fields) == ["name", "temperature"]
    assert "diff=1" in page.url  # the page state lives in the URL
    # Grouping by temperature draws a mean line and a band per group.
    page.select_option("#group", "temperature")
    page.wait_for_function("document.getElementById('cmp-train-soft_loss').data.length === 6")
    # The export is one self-contained HTML file, built in the browser from the page's own
    # charts: saved to disk, it opens with the network blocked and draws all 8 of them.
    with page.expect_download() as dl:
        page.click("#export")
    out = tmp_path / dl.value.suggested_filename
    dl.value.save_as(out)
    offline = browser.new_page()
    offline.route(
        "**/*",
        lambda route: (
            route.abort() if not route.request.url.startswith("file:") else route.continue_()
        ),
    )
    offline.goto(out.as_uri())
    offline.wait_for_function(
        "window.Plotly && document.querySelectorAll('.js-plotly-plot .main-svg').length >= 8"
    )
    assert offline.evaluate("document.querySelectorAll('.js-plotly-plot').length") == 8
    assert not errors, errors


@pytest.fixture
def two_worker_stack(env, tmp_path):
    """Two training workers with one torch thread each: the 30 short runs go two at a time."""
    s = Stack({**env, "DISTILLSCOPE_TORCH_THREADS": "1"}, tmp_path)
    try:
        s.start()
        s.start_worker("train", name="worker-2")
        yield s
    finally:
        s.stop()


def test_built_in_experiment_button_runs_and_states_its_result(browser, two_worker_stack):
    stack = two_worker_stack
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(stack.url + "/")
    # The button's own request, with a 30-step budget per run instead of 300 (the test's
    # time; the experiment's wiring and words are the same).
    page.route(
        "**/api/experiments/temperature",
        lambda route: route.continue_(post_data=json.dumps({"max_steps": 30})),
    )
    page.click("#experiment-button")
    page.wait_for_url("**/compare?runs=*experiment=*")
    page.wait_for_selector("#experiment-panel:not([hidden])")
    # The panel shows before its finals are fetched; the status follows them.
    page.wait_for_selector("#experiment-status:not(:empty)")
    # While runs wait, the table says so in their own words (never "running…" for all).
    status = page.text_content("#experiment-status")
    assert re.match(r"^(\d+ of 30 runs finished \(|All 30 runs finished)", status), status
    assert "running…" not in page.text_content("#experiment-table")
    page.wait_for_function(
        "document.getElementById('experiment-status').textContent.startsWith('All 30')",
        timeout=300_000,
    )
    page.wait_for_function(
        "document.getElementById('experiment-explainer').textContent.includes('Measured here')"
    )
    rows = page.eval_on_selector_all(
        "#experiment-table tbody tr",
        "rs => rs.map(r => [...r.children].map(c => c.textContent))",
    )
    assert [r[0] for r in rows] == [
        "hard labels only",
        *[
            f"{t} teacher, T={x}"
            for t in ("calibrated", "fine-tuned (peaked)", "memorised")
            for x in (1, 2, 4)
        ],
    ]
    assert all("(3 seeds)" in r[1] for r in rows), rows
    # The explainer states the numbers measured, whichever way they point (the tiny test
    # teachers are untrained, so here distillation must not be claimed to win).
    text = page.text_content("#experiment-explainer")
    hard = float(rows[0][1].split(" ")[0])
    assert f"{hard:.3f}" in text and "memorised teacher" in text
    assert "From the fine-tuned (peaked) teacher" in text
    best = min(float(r[1].split(" ")[0]) for r in rows[1:4])
    assert ("lower than hard labels" in text) == (best < 0.9 * hard)
    from urllib.parse import parse_qs, urlparse

    for link in ("#experiment-inspect", "#experiment-inspect-peaked"):
        models = parse_qs(urlparse(page.get_attribute(link, "href")).query)["models"][0]
        first, *students = models.split(",")
        assert first.startswith("demo-teacher") and students
        assert all(s.startswith("run:") for s in students), models
    # The panel fits a 1,280 px window.
    assert page.evaluate(
        "(() => { const p = document.getElementById('experiment-panel');"
        " return p.scrollWidth <= p.clientWidth + 1 })()"
    )
    assert not errors, errors
