"""The inspect page in real headless Chromium with a real inspect worker: the temperature
slider re-inspects at its T, and the explainer beside the inspector is built from the answer's
own numbers (the tiny kit's teacher is untrained, so nothing here assumes it is confident)."""

from urllib.parse import parse_qs, urlparse

import httpx
import pytest

pytestmark = pytest.mark.browser

URL = "/inspect?models=demo-teacher,demo-student-s&prompt=the%20lazy&temperatures=1,4&k=5"


def _open(browser, stack, path=URL):
    page = browser.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(stack.url + path)
    page.wait_for_selector("#bars-slider .main-svg", timeout=90_000)
    page.wait_for_selector("#bars-1 .main-svg", timeout=30_000)
    return page, errors


def _slider_shows(page, t: str) -> None:
    page.wait_for_function(
        "t => { const d = document.getElementById('bars-slider');"
        " return d.dataset.t === t && d.data && d.layout.title.text.includes('T = ' + t) }",
        arg=t,
        timeout=60_000,
    )


def test_slider_reinspects_at_its_temperature(browser, inspect_stack):
    page, errors = _open(browser, inspect_stack, URL + "&t=0.5")
    assert page.text_content("#i-t-value") == "T = 0.5"  # the URL's T, restored
    _slider_shows(page, "0.5")
    # Slide to log2(T) = 1.575, i.e. T ≈ 2.98, shown as T = 3.0; 3 is not in the list.
    page.fill("#i-t", "1.575")
    assert page.text_content("#i-t-value") == "T = 3.0"
    _slider_shows(page, "3")
    names = page.evaluate("document.getElementById('bars-slider').data.map(t => t.name)")
    assert names[:2] == ["demo-teacher", "demo-student-s"]  # both models' bars, raw names
    assert all(
        page.evaluate("document.getElementById('bars-slider').data.map(t => t.y.length > 0)")
    )
    page.wait_for_function("new URL(location.href).searchParams.get('t') === '3'")
    # The list's charts stay: one per listed temperature, the slider's T not among them.
    assert page.locator("#bars .chart").count() == 2
    assert page.locator("#stats-table tbody tr").count() == 4
    # The KL-against-T chart includes the slider's T.
    assert 3 in page.evaluate("document.getElementById('chart-kl-t').data[0].x")

    # Quick moves: only the last position counts, whatever order the answers arrive in.
    page.fill("#i-t", "-1")  # T = 0.5
    page.wait_for_timeout(300)  # past the debounce: that request is sent
    page.fill("#i-t", "3")  # T = 8
    _slider_shows(page, "8")
    page.wait_for_timeout(1500)
    assert page.evaluate("document.getElementById('bars-slider').dataset.t") == "8"
    assert parse_qs(urlparse(page.url).query)["t"] == ["8"]
    assert page.text_content("#i-t-value") == "T = 8.0"
    assert not errors, errors


def test_explainer_uses_the_answers_numbers(browser, inspect_stack):
    page, errors = _open(browser, inspect_stack)
    request = page.evaluate("lastRequest")
    assert request["temperatures"] == [1, 4, 2]  # the list, then the slider's default T
    answer = httpx.post(f"{inspect_stack.url}/api/inspect", json=request, timeout=60).json()
    at1 = answer["temperatures"][0]
    assert at1["temperature"] == 1
    top = at1["models"][0]["top"][0]
    shown = page.evaluate("t => visible(t)", top["token"])
    why = page.text_content("#inspect-why")
    assert page.text_content("#why-top1") == f"“{shown}”"
    printed = page.text_content("#why-top1-p")
    assert printed == page.evaluate("p => fmt(p)", top["prob"])
    assert float(page.get_attribute("#why-top1-p", "data-value")) == pytest.approx(top["prob"])
    # The same number the T = 1 bars draw for the teacher's top token.
    bars = page.evaluate(
        "(() => { const d = document.getElementById('bars-0').data[0];"
        " return Object.fromEntries(d.x.map((x, i) => [x, d.y[i]])) })()"
    )
    assert bars[page.evaluate("t => plotlyText(t)", top["token"])] == pytest.approx(top["prob"])
    # Confident or not, the text says what the numbers say.
    if top["prob"] >= 0.9:
        assert "is a confident distribution" in why
    else:
        assert "not a confident distribution" in why
    assert "T²" in why
    assert "the student at T with the teacher at T" in why
    assert "not the student at T with itself at T = 1" in why
    # The KL at the slider's T (2) is the answer's, for the student.
    kl = answer["temperatures"][2]["vs_first"]["demo-student-s"]["kl_ab"][answer["position"]]
    assert page.evaluate("v => fmt(v)", kl) in page.text_content("#why-same-t")
    # What the slider's T (2, above T = 1) does to the runner-ups, named as text, with the
    # entropy it reaches.
    at2 = answer["temperatures"][2]["models"][0]
    reveals = page.text_content("#why-reveals")
    assert "At T = 2 (the slider's)" in reveals
    assert any(page.evaluate("t => visible(t)", t["token"]) in reveals for t in at2["top"][1:4])
    assert f"the entropy is {page.evaluate('v => fmt(v)', at2['entropy'])} nats" in reveals
    assert not errors, errors


def test_run_models_are_labelled_readably(browser, inspect_stack):
    page = browser.new_page()
    page.goto(inspect_stack.url + URL)
    page.wait_for_selector("#bars-0 .main-svg", timeout=90_000)
    assert page.evaluate("readable('run:3@200')") == "student of run 3 @ step 200"
    assert page.evaluate("readable('run:3')") == "student of run 3"
    assert page.evaluate("readable('demo-teacher')") == "demo-teacher"
    # Model strings travel unchanged into the request.
    page.fill("#i-models", "demo-teacher, run:7@40")
    assert page.evaluate("readForm().models") == ["demo-teacher", "run:7@40"]


def test_explainer_for_a_confident_teacher_and_a_run_checkpoint(browser, inspect_stack):
    """The tiny kit's teacher is untrained, so the confident case is drawn from a made-up
    answer: a peaked teacher at T = 1, its runner-ups lifted at T = 4, a run's checkpoint."""
    page = browser.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(inspect_stack.url + URL)
    page.wait_for_selector("#bars-0 .main-svg", timeout=90_000)

    def block(t, probs, entropy, kl):
        top = [{"id": i, "token": tok, "prob": p} for i, (tok, p) in enumerate(probs)]
        model = {"top": top, "entropy": entropy, "mass_outside_top_k": 1 - sum(p for _, p in probs)}
        return {
            "temperature": t,
            "models": [{**model, "model": "demo-teacher"}, {**model, "model": "run:3@200"}],
            "vs_first": {"run:3@200": {k: [0, 0, kl] for k in ("kl_ab", "kl_ba", "js", "tv")}},
        }

    out = {
        "tokens": ["<bos>", "the", "lazy"],
        "position": 2,
        "vocab_size": 80,
        "models": ["demo-teacher", "run:3@200"],
        "temperatures": [
            block(1, [("cat", 0.97), ("kit ten", 0.02), ("<b>x</b>", 0.005)], 0.15, 0.1),
            block(4, [("cat", 0.5), ("kit ten", 0.2), ("<b>x</b>", 0.1)], 1.9, 0.02),
        ],
        "truth": None,
    }
    page.evaluate("out => renderWhy(out, out.temperatures, out.temperatures[1])", out)
    why = page.text_content("#inspect-why")
    assert "is a confident distribution" in why
    assert page.text_content("#why-top1") == "“cat”"
    assert page.text_content("#why-top1-p") == "0.97"
    assert "lifts the runner-ups" in page.text_content("#why-reveals")
    assert "“kit␣ten” 0.02 → 0.2" in why and "“<b>x</b>” 0.005 → 0.1" in why  # tokens as text
    assert page.locator("#inspect-why b").count() == 0
    assert "KL(demo-teacher ‖ student of run 3 @ step 200) = 0.02 nats" in why
    assert "the factor is 16" in why and "16 × 0.02 = 0.32" in why
    assert not errors, errors
