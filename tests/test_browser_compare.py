"""The compare page's *Export as HTML* in real Chromium: the downloaded file, opened from disk
with the network blocked, draws exactly what the page draws (smoothing, x = tokens, grouping,
only the differing config rows) and keeps a run name that looks like HTML as text."""

import httpx
import pytest

pytestmark = pytest.mark.browser

EVIL = '<a href="x">'
TITLES = [  # compare-data.js KEYS: the page's readable chart titles, never the raw keys
    "soft loss (T²·KL)",
    "hard loss (CE)",
    "total loss",
    "held-out KL(truth ‖ student)",
    "held-out KL(teacher ‖ student)",
    "top-1 agreement with the teacher",
    "held-out cross-entropy",
    "grad norm",
]
# Each chart's traces as Plotly holds them: what is drawn, comparable between page and file.
FIGURES = """() => [...document.querySelectorAll('.js-plotly-plot')].map((d) => ({
    id: d.id, title: d.layout.title.text, xtitle: d.layout.xaxis.title.text,
    ytype: d.layout.yaxis.type,
    traces: d.data.map((t) => ({ name: t.name ?? null, x: t.x, y: t.y, fill: t.fill ?? null })),
}))"""
ROWS = """(sel) => [...document.querySelectorAll(sel + ' tbody tr')].map(
    (r) => [...r.children].map((c) => c.textContent))"""


def _debiased_ema(ys: list[float], w: float) -> list[float]:
    out, last = [], 0.0
    for n, y in enumerate(ys, start=1):
        last = last * w + (1 - w) * y
        out.append(last / (1 - w**n))
    return out


def _download(page, tmp_path, name: str):
    with page.expect_download() as dl:
        page.click("#export")
    out = tmp_path / name
    dl.value.save_as(out)
    return dl.value.suggested_filename, out


def _open_offline(browser, path):
    """The exported file in a fresh page that may load nothing but the file itself."""
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    blocked: list[str] = []
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))

    def only_files(route):
        if route.request.url.startswith("file:"):
            route.continue_()
        else:
            blocked.append(route.request.url)
            route.abort()

    page.route("**/*", only_files)
    page.goto(path.as_uri())
    page.wait_for_function("document.querySelectorAll('.js-plotly-plot .main-svg').length >= 8")
    return page, blocked, errors


def test_export_draws_what_the_page_shows(browser, stack, tmp_path):
    base = {
        "teacher": "demo-teacher",
        "student": "demo-student-s",
        "dataset": "demo",
        "max_steps": 30,
        "batch_size": 4,
        "seq_len": 32,
        "eval_interval": 10,
    }
    specs = [
        {"name": EVIL, "temperature": 1.0, "seed": 0, "tags": ["a", "b"]},
        {"name": "T1 seed 1", "temperature": 1.0, "seed": 1},
        {"name": "T4", "temperature": 4.0, "seed": 0, "warmup_steps": 3},
    ]
    ids = [httpx.post(f"{stack.url}/api/runs", json={**base, **s}).json()["id"] for s in specs]
    for i in ids:
        assert stack.wait_for_status(i, {"succeeded", "failed"})["status"] == "succeeded"
    csv = ",".join(map(str, ids))
    # One way to export: the server's old endpoint is gone.
    assert httpx.get(f"{stack.url}/api/compare/export?runs={csv}").status_code == 404

    page = browser.new_page(viewport={"width": 1280, "height": 900})
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(f"{stack.url}/compare?runs={csv}")
    page.wait_for_selector("body[data-ready]")
    # The run name is text on the page too (not "&lt;a…").
    heads = page.eval_on_selector_all(
        "#summary-table thead th", "ths => ths.map(t => t.textContent)"
    )
    assert heads == ["metric", f"#{ids[0]} {EVIL}", f"#{ids[1]} T1 seed 1", f"#{ids[2]} T4"]

    # Ungrouped first: the run names are in the legends, and must stay text in the file.
    _, plain = _download(page, tmp_path, "plain.html")
    offline, blocked, offline_errors = _open_offline(browser, plain)
    legend = offline.eval_on_selector_all(".legendtext", "ts => ts.map(t => t.textContent)")
    assert f"#{ids[0]} {EVIL}" in legend
    assert offline.locator("a").count() == 0  # no link, in the HTML or in Plotly's SVG
    assert not blocked and not offline_errors, (blocked, offline_errors)
    offline.close()

    # A user's settings: smoothing 0.8, x = tokens seen, grouped by T, only differing fields.
    page.evaluate(
        "() => { const s = document.getElementById('smooth'); s.value = '0.8';"
        " s.dispatchEvent(new Event('input')); }"
    )
    page.select_option("#xaxis", "tokens")
    page.select_option("#group", "temperature")
    page.check("#diff-only")
    page.wait_for_function(
        "document.getElementById('cmp-train-soft_loss').data.some(t => (t.name || '')"
        ".startsWith('T = 1'))"
    )
    shown = page.evaluate(FIGURES)
    assert [f["title"] for f in shown] == TITLES
    assert {f["xtitle"] for f in shown} == {"tokens seen"}
    # Grouped by T (seed, name, tags are what a group spans; warmup_steps varies too but is
    # fixed within each T, so it splits nothing): the two T = 1 seeds form one group, drawn
    # as its smoothed mean.
    soft = shown[0]["traces"]
    names = [t["name"] for t in soft if t["name"]]
    assert names == ["T = 1 (2 runs)", "T = 4 (1 run)"]
    cols = httpx.get(
        f"{stack.url}/api/metrics",
        params={"runs": csv, "keys": "train/soft_loss", "format": "columns"},
    ).json()["runs"]
    a, b = (cols[str(i)]["train/soft_loss"] for i in ids[:2])
    assert a["step"] == b["step"] == list(range(1, 31))
    mean = [
        (u + v) / 2
        for u, v in zip(_debiased_ema(a["value"], 0.8), _debiased_ema(b["value"], 0.8), strict=True)
    ]
    t1 = next(t for t in soft if t["name"] == names[0])
    assert t1["x"] == [s * 4 * 32 for s in range(1, 31)]  # tokens: step × batch × seq_len
    assert t1["y"] == pytest.approx(mean, rel=1e-9)
    config_shown = page.evaluate(ROWS, "#config-compare")
    summary_shown = page.evaluate(ROWS, "#summary-table")

    filename, grouped = _download(page, tmp_path, "grouped.html")
    assert filename == f"distillscope-compare-{'-'.join(map(str, ids))}.html"
    offline, blocked, offline_errors = _open_offline(browser, grouped)
    assert offline.evaluate(FIGURES) == shown  # all 8 charts, the page's very traces
    titles = offline.eval_on_selector_all(".gtitle", "ts => ts.map(t => t.textContent)")
    assert titles == TITLES
    summary = offline.evaluate(ROWS, "#summary-table")
    assert summary == summary_shown and [r[0] for r in summary] == TITLES
    config = offline.evaluate(ROWS, "#config-compare")
    assert config == config_shown
    assert {r[0]: r[1:] for r in config} == {
        "name": [EVIL, "T1 seed 1", "T4"],
        "tags": ["a, b", "–", "–"],
        "temperature": ["1", "1", "4"],
        "warmup_steps": ["–", "–", "3"],
        "seed": ["0", "1", "0"],
    }
    text = offline.inner_text("main")  # what a reader sees (not the inlined scripts)
    assert "None" not in text and "[]" not in text
    assert "tokens seen" in text and "0.8" in text  # the file says how it was drawn
    assert offline.locator("a").count() == 0
    assert not blocked and not offline_errors, (blocked, offline_errors)
    assert not errors, errors
