"""The pages' shared module in real Chromium: the api token held by the browser (asked for on a
401, kept, sent, retried), an exported comparison that keeps hostile run names as text, an
export of more runs than the old 50, and an unknown `?group=` that falls back to no grouping
and says so. Plus, without a browser: the frontend's ES modules define no top-level function
twice, and the frontend's MAX_COMPARED is the api's."""

import re
from pathlib import Path

import httpx
import pytest

from tests.conftest import module_env
from tests.support import Stack

STATIC = Path(__file__).resolve().parent.parent / "frontend" / "static"
TOKEN = "s3cret-token"
BASE = {
    "teacher": "demo-teacher",
    "student": "demo-student-s",
    "dataset": "demo",
    "max_steps": 12,
    "batch_size": 4,
    "seq_len": 32,
    "eval_interval": 6,
}
# Run names a hostile user might choose: each must stay text in the page and in the export.
HOSTILE = [
    '<a href="https://example.com/">click</a>',
    "<script>window.pwned = 1</script>",
    '<img src="x" onerror="window.pwned = 1">',
    "&lt;a href=x&gt;entity&lt;/a&gt;",
]

# A top-level function: `function f`, `async function f`, `const f = (…) =>` / `= function`,
# exported or not, at the start of a line.
TOP_FUNCTION = re.compile(
    r"^(?:export\s+)?(?:(?:async\s+)?function\s*\*?\s*([A-Za-z_$][\w$]*)"
    r"|(?:const|let|var)\s+([A-Za-z_$][\w$]*)\s*=\s*(?:async\s+)?(?:function\b|\([^)]*\)\s*=>|[A-Za-z_$][\w$]*\s*=>))",
    re.MULTILINE,
)


def _modules() -> list[Path]:
    return sorted(STATIC.glob("*.js"))


def test_no_two_frontend_modules_define_the_same_function():
    where: dict[str, list[str]] = {}
    for path in _modules():
        for m in TOP_FUNCTION.finditer(path.read_text()):
            where.setdefault(m.group(1) or m.group(2), []).append(path.name)
    assert len(where) > 50  # the pattern does find the pages' functions
    twice = {name: files for name, files in where.items() if len(files) > 1}
    assert not twice, f"defined more than once: {twice}"


def test_the_pages_load_only_es_modules_and_plotly():
    for html in sorted(STATIC.parent.glob("*.html")):
        text = html.read_text()
        for tag in re.findall(r"<script\b[^>]*>", text):
            assert 'type="module"' in tag or "plotly" in tag, (html.name, tag)
    for path in _modules():
        assert '"use strict"' not in path.read_text(), path.name  # modules are strict anyway


def test_the_frontends_max_compared_is_the_apis():
    from backend.api.routes import runs

    common = (STATIC / "common.js").read_text()
    m = re.search(r"^export const MAX_COMPARED = (\d+);", common, re.MULTILINE)
    assert m, "common.js exports MAX_COMPARED"
    assert int(m.group(1)) == runs.MAX_COMPARED
    # One constant: no other module holds a limit of its own, and the runs table's sparkline
    # requests (once 50 runs each) use this one.
    for path in _modules():
        if path.name != "common.js":
            assert not re.search(r"\b(MAX_RUNS|MAX_COMPARED)\s*=", path.read_text()), path.name
    assert "MAX_COMPARED" in (STATIC / "runs-table.js").read_text()


# ---- In the browser.


@pytest.fixture(scope="module")
def token_stack(tiny_kit, tmp_path_factory):
    """The api alone, started with DISTILLSCOPE_API_TOKEN set."""
    tmp = tmp_path_factory.mktemp("token-stack")
    s = Stack({**module_env(tiny_kit, tmp), "DISTILLSCOPE_API_TOKEN": TOKEN}, tmp)
    try:
        yield s.start(worker=False)
    finally:
        s.stop()


def _page(browser, errors: list[str]):
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.on("pageerror", lambda e: errors.append(str(e)))
    return page


@pytest.mark.browser
def test_a_401_asks_for_the_token_keeps_it_and_retries(browser, token_stack):
    url = token_stack.url
    assert httpx.post(f"{url}/api/runs", json=BASE).status_code == 401  # the token is needed
    errors: list[str] = []
    page = _page(browser, errors)
    page.goto(url + "/")
    page.wait_for_selector("#preset option", state="attached")
    assert page.locator("#token-dialog").count() == 0 or not page.is_visible("#token-dialog")
    page.fill("#f-name", "launched with a token")
    page.click("#launch-button")
    # The 401 opens the form: what the token is for and where it is set.
    page.wait_for_selector("#token-dialog[open]")
    text = page.text_content("#token-dialog")
    assert "DISTILLSCOPE_API_TOKEN" in text and "token" in text.lower()
    # A wrong token is refused, and the form says so and stays.
    page.fill("#token-input", "wrong")
    page.click("#token-save")
    page.wait_for_function("document.getElementById('token-note').textContent.includes('refused')")
    assert page.is_visible("#token-dialog")
    page.fill("#token-input", TOKEN)
    page.click("#token-save")
    # Retried with the token: the run is created and its page opens.
    page.wait_for_url(re.compile(r"/runs/\d+$"))
    run_id = int(page.url.rsplit("/", 1)[1])
    run = httpx.get(f"{url}/api/runs/{run_id}").json()
    assert run["name"] == "launched with a token"
    assert page.evaluate("localStorage.getItem('distillscope.apiToken')") == TOKEN

    # Kept in the browser: the next change goes through without asking again.
    page.wait_for_selector("#run-title:has-text('launched with a token')")
    page.click("#edit-meta")
    page.fill("#meta-note", "a note, sent with the kept token")
    page.click("#meta-save")
    page.wait_for_function("document.getElementById('meta-editor').hidden")
    assert not page.is_visible("#token-dialog")
    note = httpx.get(f"{url}/api/runs/{run_id}").json()["note"]
    assert note == "a note, sent with the kept token"

    # Cancelling the form leaves the request refused, with the api's reason on the page.
    page.evaluate("localStorage.removeItem('distillscope.apiToken')")
    page.click("#cancel-button")
    page.wait_for_selector("#token-dialog[open]")
    page.click("#token-cancel")
    page.wait_for_selector("#cancel-error:not(:empty)")
    assert "token" in page.text_content("#cancel-error")
    assert httpx.get(f"{url}/api/runs/{run_id}").json()["cancel_requested"] is False
    page.close()
    assert not errors, errors


def _runs(url: str, names: list[str]) -> list[int]:
    ids = []
    for i, name in enumerate(names):
        res = httpx.post(
            f"{url}/api/runs", json={**BASE, "name": name, "seed": i, "tags": [name[:60]]}
        )
        assert res.status_code == 201, res.text
        ids.append(res.json()["id"])
    return ids


def _export(page, tmp_path, name: str) -> Path:
    with page.expect_download() as dl:
        page.click("#export")
    out = tmp_path / name
    dl.value.save_as(out)
    return out


def _offline(browser, path: Path, charts: int = 8):
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.route("**/*", lambda r: r.continue_() if r.request.url.startswith("file:") else r.abort())
    page.goto(path.as_uri())
    page.wait_for_function(
        f"document.querySelectorAll('.js-plotly-plot .main-svg').length >= {charts}"
    )
    return page, errors


@pytest.mark.browser
def test_an_export_keeps_hostile_run_names_as_text(browser, shared_api_stack, tmp_path):
    url = shared_api_stack.url
    ids = _runs(url, HOSTILE)
    errors: list[str] = []
    page = _page(browser, errors)
    csv = ",".join(map(str, ids))
    for group in ("", "name"):
        page.goto(f"{url}/compare?runs={csv}&group={group}")
        page.wait_for_selector("body[data-ready]")
        made = "#compare-charts a, #summary-table a, #config-compare a, main img, main script"
        assert page.locator(made).count() == 0
        out = _export(page, tmp_path, f"export-{group or 'plain'}.html")
        html = out.read_text()
        for name in HOSTILE:
            assert name not in html  # never raw, wherever it went
        offline, offline_errors = _offline(browser, out)
        # Only the file's own three scripts; no link or image made from a name, in the HTML
        # or in Plotly's SVG; and no script ran.
        assert offline.locator("script").count() == 3
        assert offline.locator("a, img, iframe, object, embed").count() == 0
        assert offline.evaluate("window.pwned") is None
        text = offline.inner_text("main")
        for name in HOSTILE:
            assert name in text  # shown as the user typed it
        assert not offline_errors, offline_errors
        offline.close()
    page.close()
    assert not errors, errors


@pytest.mark.browser
def test_an_export_holds_up_to_max_compared_runs(browser, shared_api_stack, tmp_path):
    url = shared_api_stack.url
    ids = _runs(url, [f"run {i:03d} of many with a longish name" for i in range(100)])
    errors: list[str] = []
    page = _page(browser, errors)
    page.goto(f"{url}/compare?runs={','.join(map(str, ids))}")
    page.wait_for_selector("body[data-ready]")
    assert page.text_content("#compare-error") == ""
    with page.expect_download() as dl:
        page.click("#export")
    assert len(dl.value.suggested_filename) < 100  # not one id after another
    out = tmp_path / "many.html"
    dl.value.save_as(out)
    offline, offline_errors = _offline(browser, out)
    heads = offline.eval_on_selector_all(
        "#summary-table thead th", "ths => ths.map(t => t.textContent)"
    )
    assert len(heads) == 101 and heads[-1].startswith(f"#{ids[-1]} ")
    assert not offline_errors, offline_errors
    offline.close()
    page.close()
    assert not errors, errors


@pytest.mark.browser
def test_an_unknown_group_falls_back_to_no_grouping_and_says_so(browser, shared_api_stack):
    url = shared_api_stack.url
    ids = _runs(url, ["group a", "group b"])
    errors: list[str] = []
    page = _page(browser, errors)
    page.goto(f"{url}/compare?runs={ids[0]},{ids[1]}&group=foo")
    page.wait_for_selector("body[data-ready]")
    assert page.locator("#compare-charts .js-plotly-plot").count() == 8
    names = page.evaluate(
        "document.getElementById('cmp-train-loss').data.map(t => t.name)"
        ".filter(n => !n.endsWith('(raw)'))"
    )
    assert names == [f"#{ids[0]} group a", f"#{ids[1]} group b"]  # one line per run
    assert page.input_value("#group") == ""
    note = page.text_content("#group-note")
    assert "foo" in note and "no grouping" in note
    assert "group=foo" not in page.url
    # A known group draws as before, and the note goes.
    page.select_option("#group", "temperature")
    page.wait_for_function("document.getElementById('group-note').textContent === ''")
    page.close()
    assert not errors, errors
