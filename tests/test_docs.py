"""/docs (Swagger UI) and /redoc (ReDoc) work offline: their scripts, stylesheets and favicon
are vendored files served by the app, never a CDN; in Chromium with every request that leaves
the machine aborted, both render the API's operations."""

import re
from urllib.parse import urlparse

import httpx
import pytest

PAGES = ["/docs", "/redoc"]
ASSET = re.compile(r"<(?:script|link)\b[^>]*?\b(?:src|href)=[\"']([^\"']+)[\"']", re.I)


@pytest.mark.parametrize("path", PAGES)
def test_docs_pages_name_only_assets_the_app_serves(client, path):
    res = client.get(path)
    assert res.status_code == 200
    # Nor may the page's scripts reach out (ReDoc's sidebar logo comes from its vendor's CDN).
    assert "img-src 'self'" in res.headers["content-security-policy"]
    assert re.findall(r"https?://[^\s\"'<>]*", res.text) == []  # nothing outside the server
    assets = ASSET.findall(res.text)
    assert any(a.endswith(".js") for a in assets) and any("icon" in a for a in assets), assets
    for url in assets:
        assert url.startswith("/"), url
        got = client.get(url)
        assert got.status_code == 200 and got.content, url


def test_swagger_oauth2_redirect_is_served(client):
    res = client.get("/docs/oauth2-redirect")
    assert res.status_code == 200 and "oauth2" in res.text.lower()


@pytest.fixture(scope="module")
def api(shared_api_stack):
    """The docs read nothing but the schema: one api serves the module."""
    return shared_api_stack


def _offline_page(browser):
    """A page whose requests to anything but this machine are aborted (and recorded)."""
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    outside: list[str] = []
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))

    def local_only(route):
        if urlparse(route.request.url).hostname in ("127.0.0.1", "localhost"):
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()

    page.route("**/*", local_only)
    return page, outside, errors


def _operations(url: str) -> int:
    spec = httpx.get(f"{url}/openapi.json").json()
    return sum(len(ops) for ops in spec["paths"].values())


@pytest.mark.browser
def test_swagger_ui_shows_the_operations_offline(browser, api):
    page, outside, errors = _offline_page(browser)
    page.goto(f"{api.url}/docs")
    page.wait_for_selector(".opblock", timeout=20_000)
    assert page.locator(".opblock").count() == _operations(api.url)
    assert "distillscope" in page.text_content(".swagger-ui .title")
    paths = page.eval_on_selector_all(".opblock-summary-path", "ps => ps.map(p => p.textContent)")
    assert "/api/runs" in paths
    assert not outside and not errors, (outside, errors)


@pytest.mark.browser
def test_redoc_renders_the_api_offline(browser, api):
    page, outside, errors = _offline_page(browser)
    page.goto(f"{api.url}/redoc")
    page.wait_for_selector("h1 >> text=distillscope", timeout=20_000)
    page.wait_for_function(
        "n => document.querySelectorAll(\"[data-section-id^='operation/']\").length === n",
        arg=_operations(api.url),
    )
    headings = page.eval_on_selector_all(
        "[data-section-id^='operation/'] h2", "hs => hs.map(h => h.textContent.trim())"
    )
    assert "Create Run" in headings  # POST /api/runs, summarised from its function's name
    assert not outside and not errors, (outside, errors)


# A docstring or a page that cites a file (`docs/x.md`, `README.md`, `docs/x.png`), optionally a
# section of it (`docs/x.md ("Heading")`), cites one this repository has.
CITATION = re.compile(
    r"(?<![\w/.-])((?:[\w-]+/)*[\w.-]+\.md|docs/[\w./-]*\w)(?:\s*\(\"([^\"]+)\"\))?"
)
SOURCE_DIRS = ("backend", "worker", "tests", "bench", "frontend")


def _docstrings(path) -> list[str]:
    import ast

    tree = ast.parse(path.read_text(encoding="utf-8"))
    nodes = [tree] + [
        n
        for n in ast.walk(tree)
        if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)
    ]
    return [d for d in map(ast.get_docstring, nodes) if d]


def _citations():
    from tests.support import ROOT

    texts = [
        (py, doc)
        for folder in SOURCE_DIRS
        for py in sorted((ROOT / folder).rglob("*.py"))
        for doc in _docstrings(py)
    ]
    texts += [(md, md.read_text(encoding="utf-8")) for md in [ROOT / "README.md"]]
    texts += [(md, md.read_text(encoding="utf-8")) for md in sorted((ROOT / "docs").glob("*.md"))]
    for source, text in texts:
        for m in CITATION.finditer(text):
            yield source, m.group(1), m.group(2)


def test_every_file_a_docstring_cites_is_in_the_repo():
    from tests.support import ROOT

    found, missing = 0, []
    for source, cited, section in _citations():
        found += 1
        target = next(
            (p for p in (ROOT / cited, source.parent / cited) if p.is_file()),
            None,
        )
        where = f"{source.relative_to(ROOT)} cites {cited}"
        if target is None:
            missing.append(f"{where}: no such file in the repo")
        elif section and not re.search(
            rf"^#+\s+{re.escape(section)}\s*$", target.read_text(encoding="utf-8"), re.M
        ):
            missing.append(f'{where} ("{section}"): no such heading there')
    assert found, "no citation found: the pattern is broken"
    assert not missing, "\n".join(missing)
