"""The inspect page in real headless Chromium with a real inspect worker, one stack for the
module: the default view shows the fine-tuned (peaked) teacher beside the truth; every shown
token has every model's real bar; one y-axis for every temperature (with a switch); the
temperature slider re-inspects at its T; and the explainer's words follow the numbers, down to
telling runner-ups that T reveals from plain flattening toward uniform. The tiny kit's plain
teacher is untrained, so nothing here assumes it is confident; its fine-tuned teacher is
peaked by the kit's own fine-tuning."""

import shutil
from urllib.parse import parse_qs, quote, urlparse

import httpx
import pytest

from tests.support import Stack, page_modules

pytestmark = pytest.mark.browser

URL = "/inspect?models=demo-teacher,demo-student-s&prompt=the%20lazy&temperatures=1,4&k=5"


def _open(browser, stack, path=URL):
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(stack.url + path)
    page.wait_for_selector("#bars-slider .main-svg", timeout=90_000)
    page.wait_for_selector("#bars-0 .main-svg", timeout=30_000)
    page_modules(page, "common", "inspect-text", "inspect-why", "inspect")
    return page, errors


def _bars(page, chart: str) -> list[dict]:
    return page.evaluate(
        f"document.getElementById('{chart}').data.map(t => ({{name: t.name, x: t.x, y: t.y}}))"
    )


def test_default_view_shows_the_peaked_fine_tuned_teacher_beside_the_truth(
    browser, shared_inspect_stack
):
    page, errors = _open(browser, shared_inspect_stack, "/inspect")
    request = page.evaluate("last.request")
    assert request["models"][0] == "demo-teacher-finetuned" and request["prompt"] == "the lazy"
    assert request["temperatures"][0] == 1
    answer = httpx.post(f"{shared_inspect_stack.url}/api/inspect", json=request, timeout=60).json()
    at1 = answer["temperatures"][0]["models"][0]
    # Peaked at T = 1 on the default prompt, and the page says so with that number.
    assert at1["top"][0]["prob"] >= 0.9
    assert float(page.get_attribute("#why-top1-p", "data-value")) == pytest.approx(
        at1["top"][0]["prob"]
    )
    assert "is a confident distribution" in page.text_content("#why-plain")
    # Every shown token has a bar for every model: its real probability, also outside the
    # model's own top k (no bar read as 0).
    bars = _bars(page, "bars-0")
    assert bars[0]["name"] == "demo-teacher-finetuned" and bars[1]["name"] == "demo-teacher"
    shown = [s["token"] for s in answer["shown"]]
    for trace, model in zip(bars, answer["temperatures"][0]["models"], strict=False):
        assert len(trace["y"]) == len(shown)
        assert trace["y"] == pytest.approx(model["shown_probs"])
    # The truth at T = 1, labelled so, the same in every temperature's chart.
    truth = [t for t in bars if t["name"].startswith("truth")]
    assert len(truth) == 1 and "T = 1" in truth[0]["name"]
    assert _bars(page, "bars-2")[-1]["y"] == truth[0]["y"]
    # One y-axis for every temperature's chart; the switch frees them (and the URL says so).
    ranges = page.evaluate(
        "[...document.querySelectorAll('#bars .chart, #bars-slider')]"
        ".map(d => d._fullLayout.yaxis.range.map(v => +v.toFixed(6)))"
    )
    assert len(ranges) == 4 and all(r == ranges[0] for r in ranges)
    assert ranges[0][1] >= max(max(t["y"]) for t in bars)
    page.uncheck("#same-y")
    page.wait_for_function("new URL(location.href).searchParams.get('y') === 'free'")
    free = page.evaluate(
        "[...document.querySelectorAll('#bars .chart')].map(d => d._fullLayout.yaxis.range[1])"
    )
    assert len(set(round(v, 6) for v in free)) > 1
    assert not errors, errors


def test_inspector_shows_both_models_at_two_temperatures(browser, shared_inspect_stack):
    page, errors = _open(browser, shared_inspect_stack)
    for i in (0, 1):
        names = page.evaluate(f"document.getElementById('bars-{i}').data.map(t => t.name)")
        assert names[:2] == ["demo-teacher", "demo-student-s"]  # both models' bars
        assert any(n.startswith("truth (demo language") for n in names)
    assert page.locator("#stats-table tbody tr").count() == 4  # 2 temperatures × 2 models
    assert page.text_content("#tokens .token.current") == "lazy"
    page.click("#tokens .token >> nth=1")  # move to the position after "the"
    page.wait_for_selector("#tokens .token.current >> text=the")
    assert not errors, errors


def _slider_shows(page, t: str) -> None:
    page.wait_for_function(
        "t => { const d = document.getElementById('bars-slider');"
        " return d.dataset.t === t && d.data && d.layout.title.text.includes('T = ' + t) }",
        arg=t,
        timeout=60_000,
    )


def test_slider_reinspects_at_its_temperature(browser, shared_inspect_stack):
    page, errors = _open(browser, shared_inspect_stack, URL + "&t=0.5")
    assert page.text_content("#i-t-value") == "T = 0.5"  # the URL's T, restored
    _slider_shows(page, "0.5")
    # Slide to log2(T) = 1.575, i.e. T ≈ 2.98, shown as T = 3.0; 3 is not in the list.
    page.fill("#i-t", "1.575")
    assert page.text_content("#i-t-value") == "T = 3.0"
    _slider_shows(page, "3")
    names = page.evaluate("document.getElementById('bars-slider').data.map(t => t.name)")
    assert names[:2] == ["demo-teacher", "demo-student-s"]  # both models' bars
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
    with page.expect_request("**/api/inspect"):  # past the debounce: that request is sent
        page.fill("#i-t", "-1")  # T = 0.5
    page.fill("#i-t", "3")  # T = 8
    _slider_shows(page, "8")
    page.wait_for_timeout(1500)
    assert page.evaluate("document.getElementById('bars-slider').dataset.t") == "8"
    assert parse_qs(urlparse(page.url).query)["t"] == ["8"]
    assert page.text_content("#i-t-value") == "T = 8.0"
    assert not errors, errors


def test_explainer_uses_the_answers_numbers(browser, shared_inspect_stack):
    page, errors = _open(browser, shared_inspect_stack, URL + "&t=2")
    request = page.evaluate("last.request")
    assert request["temperatures"] == [1, 4, 2]  # the list, then the slider's T
    answer = httpx.post(f"{shared_inspect_stack.url}/api/inspect", json=request, timeout=60).json()
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
    # What the slider's T does, with the entropy it reaches; the untrained teacher is near
    # uniform, so whatever rises is either revealed or flattening, as its numbers say.
    at2 = answer["temperatures"][2]["models"][0]
    reveals = page.text_content("#why-reveals")
    assert "At T = 2 (the slider's)" in reveals
    assert f"the entropy is {page.evaluate('v => fmt(v)', at2['entropy'])} nats" in reveals
    verdict = page.evaluate(
        """a => { const b = a.temperatures[0].models[0], h = a.temperatures[2].models[0];
        const c = classifyRunnerUps(a.shown.map((s, i) => ({token: s.token,
          base: b.shown_probs[i], hot: h.shown_probs[i], rank: a.shown_ranks[0][i]})),
          a.vocab_size);
        return [c.standing.length, c.revealed.length, c.flattening.length]; }""",
        answer,
    )
    assert ("already stand out" in reveals) == (verdict[0] > 0)
    assert ("lifts runner-ups" in reveals) == (verdict[1] > 0)
    assert ("flattening toward uniform" in reveals) == (verdict[2] > 0)
    assert not errors, errors


def test_run_models_are_labelled_readably(browser, shared_inspect_stack):
    page, _ = _open(browser, shared_inspect_stack)
    assert page.evaluate("readable('run:3@200')") == "student of run 3 @ step 200"
    assert page.evaluate("readable('run:3')") == "student of run 3"
    assert page.evaluate("readable('demo-teacher')") == "demo-teacher"
    # The answer's own labels and roles win: the api names a run's student after its run.
    out = {"about": [{"model": "run:5", "role": "student", "label": "student of run 5, hard"}]}
    assert page.evaluate("o => labelOf(o, 'run:5')", out) == "student of run 5, hard"
    assert page.evaluate("o => roleOf(o, 'run:5')", out) == "student"
    # Model strings travel unchanged into the request.
    page.fill("#i-models", "demo-teacher, run:7@40")
    assert page.evaluate("readInspectForm().models") == ["demo-teacher", "run:7@40"]


# ---- The explainer's words on made-up answers with contrasting numbers.

V = 80
PEAKED = {  # a fine-tuned teacher after "the lazy": peaked, with the right runner-ups under it
    "cat": (0.97, 0.30),
    "kitten": (0.012, 0.09),
    "kitty": (0.008, 0.07),
    "tomcat": (0.004, 0.05),
    "dog": (0.002, 0.035),
    "across": (2.5e-4, 0.018),  # rank 6: rises toward uniform (1/80 = 0.0125), nothing more
}
UNIFORMISH = {  # an untrained model: a little above uniform everywhere, rising toward it
    "cat": (0.030, 0.016),
    "across": (0.020, 0.015),
    "the": (0.018, 0.0149),
    "barks": (0.017, 0.0148),
    "pond": (0.016, 0.0147),
}
CALIBRATED = {  # the calibrated teacher after "the lazy": its runner-ups above 2/V already
    "cat": (0.39, 0.10),
    "dog": (0.13, 0.06),
    "kitten": (0.08, 0.05),
    "bird": (0.066, 0.045),
    "across": (5.0e-4, 0.01),
}
NOISE = {  # peaked, and the runner-ups T lifts never reach twice the uniform share
    "cat": (0.99, 0.40),
    "across": (2.5e-4, 0.018),
    ".": (2.0e-4, 0.017),
    "the": (1.0e-4, 0.014),
}


def _answer(table: dict, truth: list | None, student: str = "run:3@200") -> dict:
    names = list(table)

    def block(t, col):
        model = {
            "top": [
                {"id": i, "token": n, "prob": table[n][col]}
                for i, n in sorted(enumerate(names), key=lambda x: -table[x[1]][col])
            ],
            "shown_probs": [table[n][col] for n in names],
            "entropy": 0.2 if col == 0 else 3.9,
            "mass_outside_top_k": max(0.0, 1 - sum(v[col] for v in table.values())),
        }
        return {
            "temperature": t,
            "models": [{**model, "model": "demo-teacher-finetuned"}, {**model, "model": student}],
            "vs_first": {student: {k: [0, 0, 0.1 / t] for k in ("kl_ab", "kl_ba", "js", "tv")}},
        }

    return {
        "tokens": ["<bos>", "the", "lazy"],
        "position": 2,
        "vocab_size": V,
        "models": ["demo-teacher-finetuned", student],
        "about": [
            {"model": "demo-teacher-finetuned", "role": "teacher", "label": "demo-teacher-ft"},
            {"model": student, "role": "student", "label": "student of run 3, T=4 @ step 200"},
        ],
        "shown": [{"id": i, "token": n} for i, n in enumerate(names)],
        "temperatures": [block(1, 0), block(4, 1)],
        "truth": truth,
    }


def _why(page, answer: dict) -> str:
    page.evaluate("o => renderWhy(o, o.temperatures, o.temperatures[1])", answer)
    return page.text_content("#inspect-why")


def test_runner_ups_are_told_from_flattening_on_contrasting_numbers(browser, shared_inspect_stack):
    page, errors = _open(browser, shared_inspect_stack)

    def classify(table, ranks=None):
        tokens = [
            {"token": n, "base": b, "hot": h, **({"rank": ranks[n]} if ranks else {})}
            for n, (b, h) in table.items()
        ]
        c = page.evaluate("a => classifyRunnerUps(a[0], a[1])", [tokens, V])
        return tuple([t["token"] for t in c[k]] for k in ("standing", "revealed", "flattening"))

    # Peaked with structure: its top 5 rise to over twice 1/V; rank 6 is only flattening.
    assert classify(PEAKED) == ([], ["kitten", "kitty", "tomcat", "dog"], ["across"])
    # Uniform-ish: nothing stands out (nothing even rises but toward 1/V, from above).
    assert classify(UNIFORMISH) == ([], [], [])
    # Peaked, but the lifted tokens stay under 2/V: flattening, not knowledge.
    assert classify(NOISE) == ([], [], ["across", ".", "the"])
    # Calibrated: its runner-ups stand out at T = 1 already; T only pulls them down.
    assert classify(CALIBRATED) == (["dog", "kitten", "bird"], [], ["across"])
    # With k = 2 the answer shows few tokens: ranks come from the whole vocabulary, so a token
    # the model ranks 30th is never called its 2nd, however the shown list is cut.
    few = {"cat": (0.97, 0.3), "kitten": (0.001, 0.04)}
    assert classify(few) == ([], ["kitten"], [])
    assert classify(few, ranks={"cat": 1, "kitten": 30}) == ([], [], ["kitten"])

    truth = [
        {"token": "cat", "prob": 0.39},
        {"token": "dog", "prob": 0.13},
        {"token": "kitten", "prob": 0.08},
        {"token": "kitty", "prob": 0.05},
        {"token": "tomcat", "prob": 0.03},
    ]
    why = _why(page, _answer(PEAKED, truth))
    assert "is a confident distribution" in why
    revealed = page.text_content("#why-revealed")
    assert "lifts runner-ups well above the uniform share 1/80 = 0.0125" in revealed
    assert "“kitten” 0.012 → 0.09" in revealed and "2nd, 3rd, 4th" in revealed
    assert "flattening toward uniform" in page.text_content("#why-flattening")
    assert "“across” 2.50e-4 → 0.018" in page.text_content("#why-flattening")
    # Against the truth: kitten 3rd, kitty 4th, tomcat 5th — the truth's order among them.
    assert "kitten 3rd, kitty 4th, tomcat 5th" in page.text_content("#why-truth")
    assert "in the truth's relative order, but not the truth's own runner-ups" in (
        page.text_content("#why-truth")
    )
    # The T² example uses the student (a run's checkpoint), labelled by the answer.
    assert "for student of run 3, T=4 @ step 200 counts as 16 × 0.025 = 0.4" in why

    def truth_of(*words):  # the words in the truth's order, most likely first
        probs = [0.39, 0.13, 0.08, 0.05, 0.03]
        return [{"token": w, "prob": p} for w, p in zip(words, probs, strict=True)]

    _why(page, _answer(PEAKED, truth_of("cat", "kitten", "kitty", "tomcat", "dog")))
    assert "exactly the truth's runner-ups, in its order" in page.text_content("#why-truth")
    _why(page, _answer(PEAKED, truth_of("cat", "kitty", "kitten", "dog", "tomcat")))
    assert "not in the truth's order" in page.text_content("#why-truth")

    why = _why(page, _answer(UNIFORMISH, None))
    assert "not a confident distribution" in why
    # The reference is the fine-tuned teacher itself: never "such as demo-teacher-finetuned".
    assert "such as demo-teacher-finetuned" not in why
    assert page.locator("#why-revealed").count() == 0
    assert "No token below its top one gains" in page.text_content("#why-reveals")

    why = _why(page, _answer(NOISE, None))
    assert page.locator("#why-revealed").count() == 0
    flat = page.text_content("#why-flattening")
    assert "No runner-up stands out" in flat and "1/80 = 0.0125" in flat
    assert "nearly right" not in why
    # Calibrated: its runner-ups are there at T = 1; softening reveals nothing new.
    truth_lazy = [
        {"token": "cat", "prob": 0.39},
        {"token": "dog", "prob": 0.13},
        {"token": "kitten", "prob": 0.08},
        {"token": "bird", "prob": 0.066},
        {"token": "mouse", "prob": 0.066},
    ]
    why = _why(page, _answer(CALIBRATED, truth_lazy))
    standing = page.text_content("#why-standing")
    assert "Its runner-ups already stand out at T = 1, above twice the uniform share" in standing
    assert "“dog” 0.13 → 0.06" in standing and "only pulls them toward uniform" in standing
    assert "No runner-up stands out" not in why and page.locator("#why-revealed").count() == 0
    assert "exactly the truth's runner-ups, in its order" in page.text_content("#why-truth")
    # Tied in the truth (bird and mouse, both 4th): either order is the truth's order.
    tied = [truth_lazy[0], truth_lazy[1], truth_lazy[2], truth_lazy[4], truth_lazy[3]]
    _why(page, _answer(CALIBRATED, tied))
    assert "bird 4th" in page.text_content("#why-truth")
    assert "exactly the truth's runner-ups, in its order" in page.text_content("#why-truth")
    # Tokens stay text whatever they look like.
    evil = {"cat": (0.97, 0.3), "<b>x</b>": (0.02, 0.1)}
    why = _why(page, _answer(evil, None))
    assert "“<b>x</b>” 0.02 → 0.1" in why and page.locator("#inspect-why b").count() == 0
    assert not errors, errors


def test_a_token_that_looks_like_html_is_rendered_as_text(browser, env, tmp_path, tiny_kit):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    evil = "<img src=x onerror=alert(1)>"
    models = tmp_path / "evil-models"
    for name in ("demo-teacher", "demo-student-s"):
        tok = AutoTokenizer.from_pretrained(tiny_kit / "models" / name)
        tok.add_tokens([evil])
        model = AutoModelForCausalLM.from_pretrained(tiny_kit / "models" / name)
        model.resize_token_embeddings(len(tok))
        model.save_pretrained(models / f"evil-{name}")
        tok.save_pretrained(models / f"evil-{name}")
    s = Stack({**env, "DISTILLSCOPE_MODEL_ROOTS": f"{models},{tiny_kit / 'models'}"}, tmp_path)
    try:
        s.start(worker=False)
        s.start_worker("inspect")
        page = browser.new_page()
        dialogs = []
        page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
        page.goto(
            f"{s.url}/inspect?models=evil-demo-teacher,evil-demo-student-s"
            f"&prompt={quote('the ' + evil + ' lazy')}&temperatures=1,2&k=100"
        )
        page.wait_for_selector("#bars-0 .main-svg", timeout=90_000)
        texts = page.eval_on_selector_all("#tokens .token", "els => els.map(e => e.textContent)")
        assert evil.replace(" ", "␣") in texts  # shown as text, whitespace made visible
        assert page.locator("#result img").count() == 0  # never parsed as HTML
        page.wait_for_timeout(500)
        assert not dialogs
    finally:
        s.stop()
        shutil.rmtree(models, ignore_errors=True)


# ---- A real vocabulary's numbers (SmolLM2's 49,152 tokens), made up with contrasting values.

REAL_V = 49_152
REAL = {  # a peaked instruction-tuned teacher after "The capital of France is", T = 1 → T = 4
    " Paris": (0.95, 0.004, 1),
    " the": (0.02, 0.0015, 2),  # over 0.01 at T = 1: stands out without softening
    " a": (0.008, 0.0012, 3),  # over 2/V but under 0.01, and T = 4 lowers it: neither
    " located": (1.0e-4, 8.0e-4, 4),  # over 2/V already (the old rule called it standing)
    " one": (1.0e-6, 1.0e-4, 40),  # rises, but ranked 40th: flattening
}


def _real_answer(table: dict, outside_t4: float, share: float | None) -> dict:
    names = list(table)
    student = "smollm2-student-l10"

    def block(t, col, outside, share):
        probs = [table[n][col] for n in names]
        model = {
            "top": [{"id": i, "token": n, "prob": table[n][col]} for i, n in enumerate(names)],
            "shown_probs": probs,
            "entropy": 0.3 if col == 0 else 9.1,
            "mass_outside_top_k": outside,
        }
        pair = {k: [0.0, 0.2 / t] for k in ("kl_ab", "kl_ba", "js", "tv")}
        pair |= {"kl_ab_outside_top_k": None if share is None else share * 0.2 / t}
        pair |= {"kl_ab_outside_share": share}
        return {
            "temperature": t,
            "models": [{**model, "model": "smollm2-135m-instruct"}, {**model, "model": student}],
            "vs_first": {student: pair},
        }

    return {
        "tokens": ["The", " capital", " of", " France", " is"],
        "ids": [1, 2, 3, 4, 5],
        "position": 1,
        "vocab_size": REAL_V,
        "models": ["smollm2-135m-instruct", student],
        "about": [
            {
                "model": "smollm2-135m-instruct",
                "role": "teacher",
                "label": "smollm2-135m-instruct",
                "kit": "smollm2",
            },
            {"model": student, "role": "student", "label": student, "kit": "smollm2"},
        ],
        "shown": [{"id": i, "token": n} for i, n in enumerate(names)],
        "shown_ranks": [[table[n][2] for n in names], [table[n][2] for n in names]],
        "temperatures": [block(1, 0, 0.01, 0.1), block(4, 1, outside_t4, share)],
        "truth": None,
    }


def test_runner_up_words_hold_at_a_real_vocabulary(browser, shared_inspect_stack):
    page, errors = _open(browser, shared_inspect_stack)
    tokens = [{"token": n, "base": b, "hot": h, "rank": r} for n, (b, h, r) in REAL.items()]
    c = page.evaluate("a => classifyRunnerUps(a[0], a[1])", [tokens, REAL_V])
    got = tuple([t["token"] for t in c[k]] for k in ("standing", "revealed", "flattening"))
    # Twice 1/V is 4e-5 here: standing out takes 0.01 at least, not 2/V.
    assert got == ([" the"], [" located"], [" one"])
    assert c["standLine"] == 0.01
    # The small vocabulary keeps its line at twice 1/V (2/80 = 0.025 > 0.01).
    assert (
        page.evaluate("classifyRunnerUps([{token: 'a', base: 1, hot: 1}], 80).standLine") == 0.025
    )

    why = _why(page, _real_answer(REAL, 0.993, 0.81))
    assert "“␣Paris”" in why and "Ġ" not in why  # the token as text, its space visible
    assert "is a confident distribution" in why and "such as demo-teacher-finetuned" not in why
    standing = page.text_content("#why-standing")
    assert "stand out at T = 1, above 0.01 (far above twice the uniform share 1/49,152" in standing
    assert "“␣the” 0.02 → 0.0015" in standing and "“␣a”" not in standing
    assert "“␣located” 1.00e-4 → 8.00e-4" in page.text_content("#why-revealed")
    tail = page.text_content("#why-tail")
    assert "At T = 4 (the slider's) the top 5 tokens of the teacher (smollm2-135m-instruct)" in tail
    assert "hold 0.007" in tail
    assert "0.70 % of its mass (at T = 1: 99 %)" in tail
    assert "under 1 %: the rest is spread over the tail of 49,147 other tokens" in tail
    assert "mostly describes that tail" in tail
    assert page.get_attribute("#why-tail-share", "data-value") == "0.81"
    assert "KL(smollm2-135m-instruct ‖ smollm2-student-l10) at T = 4: 81 % comes from" in tail
    assert "e.g. smollm2-student-l10" not in why  # a student is there: the T² example uses it

    # A tail that holds under half, and one whose terms sum below zero.
    _why(page, _real_answer(REAL, 0.3, -0.2))
    tail = page.text_content("#why-tail")
    assert "70 % of its mass" in tail and "the tail of 49,147 other tokens gets 30 %" in tail
    assert "sum below zero (-20 %)" in tail and page.locator("#why-tail-share").count() == 0
    # No KL at all (a model against itself): said so, no share.
    _why(page, _real_answer(REAL, 0.6, None))
    assert "is 0 here" in page.text_content("#why-tail")
    assert not errors, errors


# ---- A byte-level BPE tokenizer with a chat template (SmolLM2's kind), through the page.


@pytest.fixture(scope="module")
def bpe_stack(tiny_kit, tmp_path_factory):
    """An api and an inspect worker that see tiny byte-level-BPE Llamas recorded as the real
    kit's (distillscope.json says kit "smollm2") beside the tiny demo kit."""
    import json

    from tests.conftest import module_env
    from tests.test_inspect import build_bpe_models

    tmp = tmp_path_factory.mktemp("bpe-stack")
    kit = build_bpe_models(tmp / "bpe")
    for name, role in (("bpe-teacher", "teacher"), ("bpe-student", "student")):
        meta = {"role": role, "kit": "smollm2", "made": "tiny, random (test)"}
        (kit / "models" / name / "distillscope.json").write_text(json.dumps(meta))
    env = module_env(tiny_kit, tmp)
    env["DISTILLSCOPE_MODEL_ROOTS"] = f"{kit / 'models'},{tiny_kit / 'models'}"
    s = Stack(env, tmp)
    try:
        s.start(worker=False)
        s.start_worker("inspect")
        yield s
    finally:
        s.stop()


BPE_PROMPT = "The capital of France is Paris.\ndef add(a, b):\n    return"


def _chips(page) -> list[str]:
    return page.eval_on_selector_all("#tokens .token", "els => els.map(e => e.textContent)")


def test_byte_level_tokens_show_as_text_with_visible_whitespace(browser, bpe_stack):
    path = (
        f"/inspect?models=bpe-teacher,bpe-student&prompt={quote(BPE_PROMPT)}&temperatures=1,4&k=5"
    )
    page, errors = _open(browser, bpe_stack, path)
    chips = _chips(page)
    assert "␣Paris" in chips and "↵" in chips and "␣␣␣" in "".join(chips)
    assert "".join(chips) == BPE_PROMPT.replace(" ", "␣").replace("\n", "↵")
    text = page.inner_text("body")
    assert "Ġ" not in text and "Ċ" not in text
    bars = page.evaluate(
        "[...document.querySelectorAll('#bars .chart, #bars-slider')]"
        ".flatMap(d => d.data.map(t => t.x.join(' ')))"
    )
    assert bars and not any("Ġ" in x or "Ċ" in x for x in bars)
    legend = page.text_content("#token-legend")
    assert page.is_visible("#token-legend") and "␣ a space" in legend and "↵ a newline" in legend
    # The tokenizer has a chat template: the switch shows, off; the kit's real prompts replace
    # the demo language's (the answer says the model is the real kit's).
    assert page.is_visible("#chat-field") and not page.is_checked("#i-chat")
    prompts = page.text_content("#demo-prompts")
    assert "The capital of France is" in prompts and "What is the capital of France?" in prompts
    assert "the lazy" not in prompts
    # The stats table: each other model's share of the KL from outside the teacher's top k.
    header = page.eval_on_selector_all("#stats-table th", "hs => hs.map(h => h.textContent)")
    assert "its share outside top k" in header
    col = header.index("its share outside top k")
    rows = page.eval_on_selector_all(
        "#stats-table tbody tr", "rs => rs.map(r => [...r.children].map(c => c.textContent))"
    )
    assert rows[0][col] == "–" and rows[1][col].endswith("%")
    tail = page.text_content("#why-tail")
    assert tail.startswith("At T = 3 (the slider's) the top 5 tokens of the teacher (bpe-teacher)")
    assert not errors, errors


def test_chat_switch_inspects_the_assistants_answer_position(browser, bpe_stack):
    prompt = "What is the capital of France?"
    path = f"/inspect?models=bpe-teacher,bpe-student&prompt={quote(prompt)}&temperatures=1,4&k=5"
    page, errors = _open(browser, bpe_stack, path)
    assert page.text_content("#tokens .token.current") == "?"
    plain = page.evaluate("last.answer.out")
    page.check("#i-chat")
    page.wait_for_function(
        "new URL(location.href).searchParams.get('chat') === '1'", timeout=60_000
    )
    page.wait_for_function("last.answer && last.answer.out.chat === true", timeout=60_000)
    out = page.evaluate("last.answer.out")
    chips = _chips(page)
    # The templated tokens, the assistant's header last, and that last position inspected.
    assert chips[0] == "<|im_start|>" and "".join(chips).endswith("<|im_start|>assistant↵")
    assert out["position"] == len(chips) - 1 > plain["position"]
    assert page.text_content("#tokens .token.current") == "↵"
    assert "the assistant's first answer token" in page.text_content("#inspect-explainer")
    assert page.evaluate("last.request.chat") is True
    # A shared link keeps the switch: a fresh page opens on the same position.
    again, _ = _open(browser, bpe_stack, urlparse(page.url).path + "?" + urlparse(page.url).query)
    assert again.is_checked("#i-chat")
    assert again.evaluate("last.answer.out.position") == out["position"]
    # Off again: back to after "?".
    page.uncheck("#i-chat")
    page.wait_for_function("last.answer && last.answer.out.chat === false", timeout=60_000)
    assert page.text_content("#tokens .token.current") == "?"
    assert "chat" not in parse_qs(urlparse(page.url).query)
    # A chat prompt offered for the real kit turns the switch on.
    page.click("#demo-prompts button >> text=Name three primary colours.")
    page.wait_for_function("last.answer && last.answer.out.chat === true", timeout=60_000)
    assert page.is_checked("#i-chat")
    assert not errors, errors


def test_chat_switch_stays_hidden_for_a_tokenizer_without_a_template(browser, bpe_stack):
    page, errors = _open(browser, bpe_stack, URL)
    assert not page.is_visible("#chat-field")
    assert "the lazy" in page.text_content("#demo-prompts")
    # Asked for anyway (an old link): a clear error, and the switch shows so it can be undone.
    page.goto(bpe_stack.url + URL + "&chat=1")
    page.wait_for_function("document.getElementById('ierr-chat').textContent !== ''")
    assert "no chat template" in page.text_content("#ierr-chat")
    assert page.is_visible("#chat-field")
    assert not errors, errors
