"""The runs page in real headless Chromium: filters, sort, sparklines, a sweep shown as a
group, editing tags and a note, and the sweep builder (with an inline validation message)."""

import httpx
import pytest

pytestmark = pytest.mark.browser

BASE = {
    "teacher": "demo-teacher",
    "student": "demo-student-s",
    "dataset": "demo",
    "max_steps": 12,
    "batch_size": 4,
    "seq_len": 32,
    "eval_interval": 6,
}


def _rows(page) -> list[str]:
    return page.eval_on_selector_all(
        "#runs-table tbody tr.run-row", "rs => rs.map(r => r.dataset.runId)"
    )


def _wait_rows(page, ids: list[int]) -> None:
    """Until the table shows exactly these runs, in this order."""
    want = ",".join(str(i) for i in ids)
    page.wait_for_function(
        "w => [...document.querySelectorAll('#runs-table tbody tr.run-row')]"
        ".map(r => r.dataset.runId).join(',') === w",
        arg=want,
    )


def test_runs_page_filters_sorts_groups_and_edits(browser, stack):
    url = stack.url
    a = httpx.post(
        f"{url}/api/runs", json={**BASE, "name": "cold", "temperature": 1.0, "tags": ["base"]}
    ).json()
    b = httpx.post(f"{url}/api/runs", json={**BASE, "name": "hot", "temperature": 4.0}).json()
    sweep = httpx.post(
        f"{url}/api/sweeps",
        json={"base": {**BASE, "name": "grid"}, "grid": {"seed": [0, 1]}},
    ).json()
    ids = [a["id"], b["id"], *sweep["runs"]]
    for i in ids:
        assert stack.wait_for_status(i, {"succeeded", "failed"})["status"] == "succeeded"
    page = browser.new_page()
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(url + "/")
    page.wait_for_selector("tr.sweep-row")
    # The sweep is one group row (collapsed), with its members' states; singles are rows.
    assert _rows(page) == [str(b["id"]), str(a["id"])]
    group = page.text_content("tr.sweep-row")
    assert "grid" in group and "2 runs (2 succeeded)" in group and "seed ∈ {0, 1}" in group
    page.click(".sweep-toggle")
    page.wait_for_function("document.querySelectorAll('tr.run-row').length === 4")
    # Sparklines hold the soft loss of every step (12 here, fewer than the 60 asked for).
    page.wait_for_function(
        "[...document.querySelectorAll('svg.sparkline')].every(s => s.dataset.points === '12')"
    )
    # Sort by T, ascending: the cold run first; the header shows the direction.
    page.click("th[data-sort=temperature]")
    page.wait_for_function(
        f"document.querySelector('tr.run-row').dataset.runId === '{a['id']}'"
        " && document.querySelector('th[data-sort=temperature]').dataset.dir === 'asc'"
    )
    assert "sort=temperature" in page.url
    # Filters: by tag, by text, by status; each lands in the URL.
    page.select_option("#filter-tag", "base")
    _wait_rows(page, [a["id"]])
    assert "tag=base" in page.url
    page.select_option("#filter-tag", "")
    page.fill("#filter-text", "hot")
    _wait_rows(page, [b["id"]])
    assert "q=hot" in page.url
    page.fill("#filter-text", "")
    page.select_option("#filter-status", "failed")
    page.wait_for_function(
        "document.querySelectorAll('tr.run-row').length === 0"
        " && document.getElementById('runs-count').textContent === '0 runs match'"
    )
    page.select_option("#filter-status", "")
    page.wait_for_function("document.querySelectorAll('tr.run-row').length === 4")
    # Edit tags and a note inline; a bad tag is refused with the api's message.
    page.click(f"tr.run-row[data-run-id='{b['id']}'] .edit-run")
    page.fill("#edit-tags", "keep, " + "x" * 65)  # a tag is at most 64 characters
    page.fill("#edit-note", "T = 4 looked <b>best</b>")
    page.click("#edit-save")
    page.wait_for_selector("#edit-error:not(:empty)")
    assert "tags.1: String should have at most 64 characters" in page.text_content("#edit-error")
    page.fill("#edit-tags", "keep, hot-teacher")
    page.click("#edit-save")
    page.wait_for_selector(f"tr.run-row[data-run-id='{b['id']}'] .note")
    got = httpx.get(f"{url}/api/runs/{b['id']}").json()
    assert got["tags"] == ["keep", "hot-teacher"] and got["note"] == "T = 4 looked <b>best</b>"
    assert page.text_content(f"tr.run-row[data-run-id='{b['id']}'] .note") == got["note"]
    assert page.locator("#runs-table b").count() == 1  # only the sweep's name: notes are text
    # Selecting the sweep's group selects its runs for comparison.
    page.check("tr.sweep-row .select-sweep")
    assert page.text_content("#compare-button") == "Compare 2 runs"
    # A name that looks like a link is drawn as text in Plotly's legend, never as a link.
    evil = '<a href="https://evil.example">click</a>'
    httpx.patch(f"{url}/api/runs/{a['id']}", json={"name": evil}).raise_for_status()
    page.goto(f"{url}/compare?runs={a['id']},{b['id']}")
    page.wait_for_selector("#cmp-train-soft_loss .legend")
    legend = page.text_content("#cmp-train-soft_loss .legend")
    assert evil in legend and page.locator("#cmp-train-soft_loss .legend a").count() == 0
    assert not errors, errors


def test_sweep_builder_launches_one_run_per_combination(browser, stack):
    page = browser.new_page()
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(stack.url + "/")
    page.wait_for_function("document.querySelectorAll('#preset option').length > 0")
    # Every config field is in the form; an error under "More settings" opens it.
    assert page.is_hidden("#f-max_grad_norm")
    page.evaluate("document.getElementById('f-max_grad_norm').value = '0'")
    page.click("#launch-button")
    page.wait_for_selector("#err-max_grad_norm:not(:empty)")
    assert page.is_visible("#f-max_grad_norm") and "greater than 0" in page.text_content(
        "#err-max_grad_norm"
    )
    page.fill("#f-max_grad_norm", "1")
    page.fill("#f-max_steps", "6")
    page.fill("#f-eval_interval", "3")
    page.click("#sweep-builder summary")
    page.fill("#s-temperature", "1, 0")
    page.fill("#s-seed", "0, 1")
    assert page.text_content("#sweep-button") == "Launch sweep (4 runs)"
    page.click("#sweep-button")  # T = 0 is refused next to the list, nothing is stored
    page.wait_for_selector("#serr-temperature:not(:empty)")
    assert "greater than 0" in page.text_content("#serr-temperature")
    # A base field's error goes next to that field in the form above.
    page.fill("#s-temperature", "1, 4")
    page.fill("#f-alpha", "2")
    page.click("#sweep-button")
    page.wait_for_selector("#err-alpha:not(:empty)")
    assert httpx.get(stack.url + "/api/runs").json()["count"] == 0
    page.fill("#f-alpha", "0.5")
    page.click("#sweep-button")
    page.wait_for_url("**/compare?runs=*")
    runs = httpx.get(stack.url + "/api/runs").json()
    assert runs["count"] == 4 and len(runs["sweeps"]) == 1
    combos = sorted((r["config"]["temperature"], r["config"]["seed"]) for r in runs["data"])
    assert combos == [(1, 0), (1, 1), (4, 0), (4, 1)]
    assert "group=temperature" in page.url
    page.wait_for_selector("#cmp-train-soft_loss .main-svg")
    assert not errors, errors


def test_run_page_explains_with_its_numbers_and_a_click_opens_the_inspector(browser, stack):
    from urllib.parse import parse_qs, urlparse

    stack.start_worker("inspect")
    body = {
        **BASE,
        "name": "explained",
        "max_steps": 20,
        "alpha": 0.7,
        "temperature": 3.0,
        "checkpoint_interval": 5,
        "keep_checkpoints": 1,
        "eval_interval": 10,
    }
    run = httpx.post(f"{stack.url}/api/runs", json=body).json()
    assert stack.wait_for_status(run["id"], {"succeeded", "failed"})["status"] == "succeeded"
    # Checkpoints pruned by keep_checkpoints stay inspectable (weights only); step 20 is the
    # final student.
    ckpts = httpx.get(f"{stack.url}/api/runs/{run['id']}/checkpoints").json()
    assert ckpts["steps"] == [5, 10, 15] and ckpts["final"] is True and ckpts["final_step"] == 20
    page = browser.new_page()
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(f"{stack.url}/runs/{run['id']}")
    page.wait_for_function(
        "() => { const d = document.getElementById('chart-losses').data;"
        " return d && d[0].x.length === 20 }",
        timeout=10_000,
    )
    # The explainer writes the loss with this run's own α, T and latest values.
    formula = page.text_content("#why-formula")
    soft, hard = page.evaluate(
        "[fmt(run.latest['train/soft_loss']), fmt(run.latest['train/hard_loss'])]"
    )
    assert f"0.7 · {soft} + 0.3 · {hard}" in formula and "T² = 9" in formula
    assert "KL(teacher_T ‖ student_T)" in formula
    assert "at T with the teacher at T" in page.text_content("#why-same-t")
    assert "9× less" in page.text_content("#why-t2")
    # A real click on the soft-loss point at step 7 opens the inspector at checkpoint 5.
    x, y = page.evaluate(
        """() => { const gd = document.getElementById('chart-losses');
        const xa = gd._fullLayout.xaxis, ya = gd._fullLayout.yaxis;
        const box = gd.getBoundingClientRect(), y = gd.data[0].y[gd.data[0].x.indexOf(7)];
        return [box.left + xa._offset + xa.l2p(7), box.top + ya._offset + ya.l2p(y)]; }"""
    )
    page.mouse.move(x, y)
    page.mouse.click(x, y)
    page.wait_for_url("**/inspect?*")
    models = parse_qs(urlparse(page.url).query)["models"][0]
    assert models == f"demo-teacher,run:{run['id']}@5"
    page.wait_for_selector("#bars-0 .main-svg", timeout=90_000)
    names = page.evaluate("document.getElementById('bars-0').data.map(t => t.name)")
    assert names[:2] == ["demo-teacher", f"run:{run['id']}@5"]
    # Tags and a note from the run page.
    page.goto(f"{stack.url}/runs/{run['id']}")
    page.click("#edit-meta")
    page.fill("#meta-tags", "explained, t3")
    page.fill("#meta-note", "soft loss flattens after step 10")
    page.click("#meta-save")
    page.wait_for_function(
        "document.getElementById('run-note').textContent === 'soft loss flattens after step 10'"
    )
    assert page.eval_on_selector_all("#run-tags .tag", "ts => ts.map(t => t.textContent)") == [
        "explained",
        "t3",
    ]
    assert not errors, errors
