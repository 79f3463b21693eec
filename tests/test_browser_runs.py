"""The runs page in real headless Chromium: filters, sort, sparklines, a sweep shown as a
group, editing tags and a note, the sweep builder (with an inline validation message), required
fields, automatic names, the table's width at 1,280 px, and cancelling from the run page."""

import httpx
import pytest

from tests.support import Stack, page_modules

pytestmark = pytest.mark.browser


@pytest.fixture
def api_stack(env, tmp_path):
    """The api alone: runs stay queued (nothing trains), so pages show them as launched."""
    s = Stack(env, tmp_path)
    try:
        yield s.start(worker=False)
    finally:
        s.stop()


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
    assert "greater than or equal to 0.05" in page.text_content("#serr-temperature")
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
        timeout=60_000,
    )
    # The explainer writes the loss with this run's own α, T and latest values.
    formula = page.text_content("#why-formula")
    latest = httpx.get(f"{stack.url}/api/runs/{run['id']}").json()["latest"]
    page_modules(page, "common")
    soft, hard = page.evaluate(
        "([s, h]) => [fmt(s), fmt(h)]", [latest["train/soft_loss"], latest["train/hard_loss"]]
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
    # The inspector labels a run's student by its run and step (inspect.js).
    assert names[0].startswith("demo-teacher"), names
    assert f"run {run['id']}" in names[1] and "step 5" in names[1], names
    # Tags and a note from the run page.
    page.goto(f"{stack.url}/runs/{run['id']}")
    page.wait_for_selector("#run-title:has-text('explained')")  # the run has loaded
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


def _open_form(browser, url: str):
    page = browser.new_page()
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(url + "/")
    page.wait_for_function("document.querySelectorAll('#preset option').length > 0")
    page.wait_for_function("document.getElementById('f-teacher').value === 'demo-teacher'")
    return page, errors


def test_an_empty_required_field_is_an_inline_error_and_no_run(browser, api_stack):
    url = api_stack.url
    page, errors = _open_form(browser, url)
    sent = []
    page.on("request", lambda r: sent.append(r.url) if r.method == "POST" else None)
    # Emptied T: an inline error next to it, and nothing is sent (the api would default T = 2).
    page.fill("#f-temperature", "")
    page.click("#launch-button")
    page.wait_for_selector("#err-temperature:not(:empty)")
    assert "required" in page.text_content("#err-temperature")
    assert "invalid" in page.get_attribute("[data-field=temperature]", "class")
    # The optional fields may stay empty: no error next to them.
    for field in ("name", "tags", "warmup_steps", "checkpoint_interval", "teacher_cache_k"):
        assert page.text_content(f"#err-{field}") == "", field
    # An empty required field under "More settings" opens it.
    assert page.is_hidden("#f-max_grad_norm")
    page.fill("#f-temperature", "2")
    page.evaluate("document.getElementById('f-max_grad_norm').value = ''")
    page.click("#launch-button")
    page.wait_for_selector("#err-max_grad_norm:not(:empty)")
    assert page.is_visible("#f-max_grad_norm") and "required" in page.text_content(
        "#err-max_grad_norm"
    )
    assert page.text_content("#err-temperature") == ""  # fixed: its error is gone
    # The sweep builder reads the same form as its base: the same, and no sweep.
    page.fill("#f-max_grad_norm", "1")
    page.fill("#f-alpha", " ")
    page.click("#sweep-builder summary")
    page.fill("#s-seed", "0, 1")
    assert page.text_content("#sweep-button") == "Launch sweep (2 runs)"
    page.click("#sweep-button")
    page.wait_for_selector("#err-alpha:not(:empty)")
    assert "required" in page.text_content("#err-alpha")
    assert "α" in page.text_content("#sweep-error")  # said beside the button pressed too
    page.wait_for_timeout(300)
    assert sent == [] and "/runs/" not in page.url
    assert httpx.get(url + "/api/runs").json()["count"] == 0
    assert not errors, errors


def test_the_demo_preset_launched_from_the_form_gets_a_descriptive_name(browser, api_stack):
    url = api_stack.url
    page, errors = _open_form(browser, url)
    assert page.input_value("#f-name") == ""
    assert "automatic" in page.get_attribute("#f-name", "placeholder")
    page.click("#launch-button")
    page.wait_for_url("**/runs/*")
    page.wait_for_function("document.getElementById('run-title').textContent.includes('T=')")
    assert page.text_content("#run-title").endswith(" T=2 α=0.5 demo-student-s")
    # The hard-labels preset, with one field changed: the name says both.
    page, _ = _open_form(browser, url)
    page.select_option("#preset", "demo-hard")
    page.fill("#f-seed", "3")
    page.click("#launch-button")
    page.wait_for_url("**/runs/*")
    # An explicit name is kept.
    page, _ = _open_form(browser, url)
    page.fill("#f-name", "mine")
    page.click("#launch-button")
    page.wait_for_url("**/runs/*")
    runs = httpx.get(url + "/api/runs", params={"sort": "id"}).json()["data"]
    assert [r["name"] for r in runs] == [
        "T=2 α=0.5 demo-student-s",
        "hard labels demo-student-s seed=3",
        "mine",
    ]
    assert all(r["config"]["name"] == r["name"] for r in runs)
    assert not errors, errors


def test_cancel_says_cancelling_at_once_and_an_error_on_the_page(browser, api_stack):
    from backend.db.models import Run
    from backend.db.session import transaction

    url = api_stack.url
    body = {**BASE, "name": "long", "max_steps": 1000}
    ids = [httpx.post(f"{url}/api/runs", json=body).json()["id"] for _ in range(2)]
    with transaction() as s:  # as if a worker had started them (none runs here)
        for i in ids:
            s.get(Run, i).status = "running"
    page = browser.new_page()
    errors, dialogs = [], []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    # The api refuses: its message is shown on the page (no alert), and the button works again.
    page.route(
        "**/api/runs/*/cancel",
        lambda route: route.fulfill(
            status=409,
            content_type="application/json",
            body='{"detail": "run 1 has already ended (succeeded)"}',
        ),
    )
    page.goto(f"{url}/runs/{ids[0]}")
    page.wait_for_selector("#cancel-button:visible")
    page.click("#cancel-button")
    page.wait_for_selector("#cancel-error:not(:empty)")
    assert "has already ended" in page.text_content("#cancel-error")
    assert page.text_content("#run-status") == "running"
    assert page.is_enabled("#cancel-button") and page.text_content("#cancel-button") == "Cancel run"
    page.unroute("**/api/runs/*/cancel")
    # Accepted: "cancelling…" while the worker has yet to stop the run, kept across a reload.
    page.goto(f"{url}/runs/{ids[1]}")
    page.wait_for_selector("#cancel-button:visible")
    with page.expect_response(lambda r: r.url.endswith("/cancel")):  # sent before the reload
        page.click("#cancel-button")
    page.wait_for_function("document.getElementById('run-status').textContent === 'cancelling…'")
    assert (
        page.is_disabled("#cancel-button") and page.text_content("#cancel-button") == "Cancelling…"
    )
    page.reload()
    page.wait_for_function("document.getElementById('run-status').textContent === 'cancelling…'")
    assert page.is_disabled("#cancel-button")
    assert page.text_content("#cancel-error") == ""
    assert httpx.get(f"{url}/api/runs/{ids[1]}").json()["cancel_requested"] is True
    # The worker stops it: the page says so.
    with transaction() as s:
        s.get(Run, ids[1]).status = "cancelled"
    page.wait_for_function(
        "document.getElementById('run-status').textContent === 'cancelled'", timeout=30_000
    )
    assert page.is_hidden("#cancel-button")
    assert not errors and not dialogs, (errors, dialogs)


def _table_fits(page) -> None:
    """The runs table no wider than its card, and the key columns inside a 1,280 px window."""
    got = page.evaluate(
        """() => {
        const table = document.getElementById('runs-table'), card = document.getElementById('runs');
        const cs = getComputedStyle(card);
        const inner = card.clientWidth - parseFloat(cs.paddingLeft) - parseFloat(cs.paddingRight);
        const heads = [...table.querySelectorAll('thead th')].map(th => th.textContent.trim());
        const cols = {T: heads.indexOf('T'), α: heads.indexOf('α'),
                      soft: heads.indexOf('soft loss'), hard: heads.indexOf('hard')};
        const outside = [];
        for (const row of table.querySelectorAll('tbody tr.run-row')) {
          const cells = [...Object.entries(cols).map(([k, i]) => [k, row.children[i]]),
                         ['✎', row.querySelector('.edit-run')]];
          for (const [k, c] of cells) {
            const r = c.getBoundingClientRect();
            if (r.left < 0 || r.right > window.innerWidth || r.width === 0) outside.push(k);
          }
        }
        const sweep = document.querySelector('tr.sweep-row');
        return {scroll: table.scrollWidth, inner, card: card.getBoundingClientRect().right,
                page: document.documentElement.scrollWidth, outside, cols,
                sweep: sweep ? sweep.getBoundingClientRect().right : 0};
    }"""
    )
    assert all(i >= 0 for i in got["cols"].values()), got
    assert got["scroll"] <= got["inner"] + 1, got
    assert got["card"] <= 1280 and got["page"] <= 1280 and got["sweep"] <= got["card"], got
    assert not got["outside"], got


def _as_if_trained(url: str, steps: int) -> None:
    """Every run succeeded, with a soft and hard loss per step (no worker runs here)."""
    from backend.db.models import Run
    from backend.db.session import transaction
    from backend.services.metrics import point_row, write_points

    ids = [r["id"] for r in httpx.get(f"{url}/api/runs", params={"limit": 500}).json()["data"]]
    with transaction() as s:
        for i in ids:
            run = s.get(Run, i)
            run.status, run.step = "succeeded", min(steps, run.total_steps)
            run.latest = {"train/soft_loss": 0.012345678, "train/hard_loss": 4.3210987}
        rows = [
            point_row(i, key, step, 1.0 / step + (i % 3) * 0.01)
            for i in ids
            for step in range(1, steps + 1, 10)
            for key in ("train/soft_loss", "train/hard_loss")
        ]
        write_points(s, rows)


def test_the_runs_table_fits_1280_px_with_a_sweep_row(browser, api_stack):
    url = api_stack.url
    assert httpx.post(f"{url}/api/experiments/temperature").status_code == 201
    names = ["cold", "a rather long run name that has to wrap in its cell", "x" * 60]
    for i, name in enumerate(names):
        body = {**BASE, "name": name, "temperature": 1.0 + i, "tags": ["baseline", "hot-teacher"]}
        assert httpx.post(f"{url}/api/runs", json=body).status_code == 201
    auto = httpx.post(f"{url}/api/runs", json={**BASE, "max_steps": 100_000}).json()
    note = "the baseline: labels only, the teacher's soft loss logged for comparison " * 3
    httpx.patch(f"{url}/api/runs/{auto['id']}", json={"note": note}).raise_for_status()
    _as_if_trained(url, steps=300)  # latest losses and sparklines, as the widest rows have
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(url + "/")
    page.wait_for_selector("tr.sweep-row")
    page.wait_for_function("document.querySelectorAll('tr.run-row').length === 4")
    page.wait_for_function("document.querySelectorAll('svg.sparkline polyline').length === 4")
    assert "300/100000" in page.text_content("#runs-table tbody")
    _table_fits(page)  # the sweep collapsed, with the single runs
    page.click(".sweep-toggle")
    page.wait_for_function("document.querySelectorAll('tr.run-row').length > 20")
    _table_fits(page)  # expanded: its runs too
    # Teacher → student and the divergence are there on demand, and still fit.
    assert page.is_hidden("tr.run-row .pair")
    page.check("#show-details")
    assert page.is_visible("tr.run-row .pair")
    assert "demo-teacher-memorised" in page.text_content("#runs-table tbody")
    assert "details=1" in page.url
    _table_fits(page)
    assert not errors, errors


def test_the_real_kit_preset_says_how_to_prepare_the_kit_when_missing(browser, api_stack):
    page, errors = _open_form(browser, api_stack.url)
    label = page.eval_on_selector("#preset option[value='smollm2-cpu']", "o => o.textContent")
    assert label.endswith("(not prepared)")
    page.select_option("#preset", "smollm2-cpu")
    note = page.text_content("#preset-description")
    assert "make real" in note and "warning" in page.get_attribute("#preset-description", "class")
    assert page.input_value("#f-teacher") == "smollm2-135m-instruct"
    page.select_option("#preset", "demo")  # an available preset drops the warning
    assert "make real" not in page.text_content("#preset-description")
    assert "warning" not in (page.get_attribute("#preset-description", "class") or "")
    assert not errors, errors


def _stored_runs(n: int) -> list[int]:
    """`n` succeeded runs written straight to the database (the api lists them like any)."""
    from backend.db.models import Run
    from backend.db.session import transaction

    config = {**BASE, "temperature": 2.0, "alpha": 0.5}
    with transaction() as s:
        runs = [
            Run(
                name=f"stored {i}",
                tags=[],
                config=config,
                status="succeeded",
                step=12,
                total_steps=12,
                latest={},
            )
            for i in range(n)
        ]
        s.add_all(runs)
        s.flush()
        return [r.id for r in runs]


def test_the_runs_table_pages_through_many_runs(browser, api_stack):
    url = api_stack.url
    ids = _stored_runs(230)  # three pages of 100, newest first
    page = browser.new_page()
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(url + "/")
    newest = sorted(ids, reverse=True)
    _wait_rows(page, newest[:100])
    assert page.text_content("#runs-count") == "230 runs · 1–100 listed"
    assert page.text_content("#page-info") == "runs 1–100 of 230 · page 1 of 3"
    assert page.is_disabled("#page-prev") and page.is_enabled("#page-next")
    page.click("#page-next")
    _wait_rows(page, newest[100:200])
    assert "page=2" in page.url
    page.click("#page-next")
    _wait_rows(page, newest[200:])
    assert page.text_content("#page-info") == "runs 201–230 of 230 · page 3 of 3"
    assert page.text_content("#runs-count") == "230 runs · 201–230 listed"
    assert page.is_disabled("#page-next")
    # The page is in the URL (a reload keeps it); a new sort starts again at the first page.
    page.reload()
    _wait_rows(page, newest[200:])
    page.click("th[data-sort=id]")
    _wait_rows(page, sorted(ids)[:100])
    assert "page=" not in page.url
    # A filter with fewer runs than a page hides the pager.
    page.fill("#filter-text", "stored 229")
    _wait_rows(page, [ids[229]])
    assert page.is_hidden("#runs-pager")
    assert page.text_content("#runs-count") == "1 run match"
    assert not errors, errors
