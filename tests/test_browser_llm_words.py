"""The real kit's experiment panel (compare page, `?experiment=smollm2-…`): its sentences
follow made-up numbers in contrasting cases (real Chromium, the page's own functions): a tail
that carries most of the soft loss at T = 4 or not, soft targets that beat hard labels or not,
a peaked teacher or not."""

import pytest

from tests.support import page_modules

pytestmark = pytest.mark.browser


def _rows(hard: dict | None, soft: dict[float, dict]) -> list[dict]:
    rows, rid = [], 0
    if hard is not None:
        rows.append(
            {
                "name": "SmolLM2, hard labels only",
                "id": 1,
                "status": "succeeded",
                "hard": True,
                "t": 2.0,
                "v": hard,
            }
        )
    for rid, (t, v) in enumerate(soft.items(), start=2):
        rows.append(
            {
                "name": f"SmolLM2, T={t:g}",
                "id": rid,
                "status": "succeeded",
                "hard": False,
                "t": t,
                "v": v,
            }
        )
    return rows


def _v(kl, agree=0.8, peak=0.9, tail=0.01, share=0.1):
    return {
        "eval/kl_teacher": kl,
        "eval/top1_agreement": agree,
        "eval/hard_loss": 1.0,
        "eval/teacher_top1_prob": peak,
        "eval/teacher_tail_mass": tail,
        "eval/soft_tail_share": share,
    }


@pytest.fixture(scope="module")
def page(browser_module, shared_api_stack):
    p = browser_module.new_page(viewport={"width": 1280, "height": 900})
    errors: list[str] = []
    p.on("pageerror", lambda e: errors.append(str(e)))
    p.goto(shared_api_stack.url + "/compare?experiment=smollm2-x")
    p.wait_for_function("document.body.dataset.ready === '1'")
    page_modules(p, "compare-data", "compare-llm", "compare")
    yield p
    assert not errors, errors


def _text(page, rows) -> str:
    return " ".join(" ".join(p) for p in page.evaluate("(rows) => llmText(rows)", rows))


def test_a_tail_that_carries_most_of_the_soft_loss_is_said_so(page):
    text = _text(
        page,
        _rows(_v(0.9), {1.0: _v(0.5, tail=0.002, share=0.05), 4.0: _v(0.6, tail=0.99, share=0.8)}),
    )
    assert "mostly describes the tail" in text and "80 % of the soft loss" in text
    assert "closest is T = 1" in text and "99 % of its mass at T = 4" in text
    assert "it ends 0.900; the closest soft run is 44 % lower than hard labels." in text


def test_a_top_8_that_keeps_the_soft_loss_and_labels_that_win_are_said_so(page):
    text = _text(
        page,
        _rows(_v(0.3), {1.0: _v(0.5, tail=0.01, share=0.05), 4.0: _v(0.45, tail=0.3, share=0.2)}),
    )
    assert "still carry most of the soft loss (80 %)" in text
    assert "mostly describes the tail" not in text
    assert "50 % higher than hard labels: on this budget the labels alone got closer" in text
    assert "closest is T = 4" in text


def test_the_teachers_peak_is_worded_from_its_number(page):
    peaked = _text(page, _rows(None, {2.0: _v(0.5, peak=0.95)}))
    flat = _text(page, _rows(None, {2.0: _v(0.5, peak=0.45)}))
    assert "0.95" in peaked and "is peaked" in peaked
    assert "0.45" in flat and "less peaked" in flat and "is peaked" not in flat


def test_nothing_is_claimed_before_a_run_finishes(page):
    assert page.evaluate("(rows) => llmText(rows)", _rows(None, {})) == []


def test_runs_on_real_data_get_no_empty_truth_chart(page):
    keys = """([ms]) => { data.runs = [{id: 1}, {id: 2}]; data.metrics = ms;
        return shownKeys().map(([k]) => k); }"""
    point = [{"step": 10, "value": 1.0}]
    # Real data: held-out numbers, none against a truth: no "KL(truth ‖ student)" chart.
    real = page.evaluate(keys, [{"1": {"eval/kl_teacher": point}, "2": {}}])
    assert "eval/kl_true" not in real and "eval/kl_teacher" in real and len(real) == 7
    # The demo language has it; before any evaluation every chart stays.
    demo = page.evaluate(keys, [{"1": {"eval/kl_teacher": point, "eval/kl_true": point}}])
    assert "eval/kl_true" in demo and len(demo) == 8
    assert len(page.evaluate(keys, [{"1": {"train/loss": point}}])) == 8


def test_the_teachers_top1_histogram_is_drawn_from_its_profile(page):
    profile = {"top1_histogram": {"edges": [0, 0.5, 1.0], "counts": [30, 10]}}
    bars = page.evaluate(
        """async (profile) => {
        await drawHistogram("smollm2-135m-instruct", profile.top1_histogram);
        const node = document.getElementById("llm-histogram");
        return { hidden: node.hidden, x: node.data[0].x, y: node.data[0].y,
                 title: node.layout.title.text };
        }""",
        profile,
    )
    assert not bars["hidden"] and bars["x"] == ["0.0–0.5", "0.5–1.0"]
    assert bars["y"] == [0.75, 0.25] and "40 held-out answer tokens" in bars["title"]
