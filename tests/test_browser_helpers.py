"""The compare page's pure helpers, run in real Chromium on the real page, against values
worked out by hand: EMA smoothing (smoothEma) and the group band (bandStats, groupTraces)."""

import math

import pytest

from tests.support import Stack

pytestmark = pytest.mark.browser


@pytest.fixture
def page(browser, env, tmp_path):
    """/compare with no runs, its first draw done: compare.js's functions are loaded."""
    stack = Stack(env, tmp_path)
    try:
        stack.start(worker=False)
        page = browser.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(f"{stack.url}/compare")
        page.wait_for_selector("body[data-ready]")
        yield page
        assert not errors
    finally:
        stack.stop()


def _ema(page, ys: list, weight: float) -> list:
    return page.evaluate("([ys, w]) => smoothEma(ys, w)", [ys, weight])


def _debiased(ys: list[float], w: float) -> list[float]:
    """The debiased EMA as a weighted mean: y_i weighted by w^(n - i), normalised."""
    return [
        sum(w ** (n - i) * y for i, y in enumerate(ys[: n + 1]))
        / sum(w ** (n - i) for i in range(n + 1))
        for n in range(len(ys))
    ]


def test_smooth_ema_known_values(page):
    assert _ema(page, [3.0, -1.0, 2.5], 0) == [3.0, -1.0, 2.5]  # weight 0: the raw values
    assert _ema(page, [5.0] * 6, 0.6) == pytest.approx([5.0] * 6, abs=1e-12)  # no pull to 0
    assert _ema(page, [2, 4], 0.5) == pytest.approx([2, 10 / 3], abs=1e-12)
    # (0.125·1 + 0.25·2 + 0.5·3) / 0.875 = 17/7
    assert _ema(page, [1, 2, 3], 0.5) == pytest.approx([1, 5 / 3, 17 / 7], abs=1e-12)
    ys = [0.3, 1.7, -0.4, 2.2, 0.9]
    assert _ema(page, ys, 0.9) == pytest.approx(_debiased(ys, 0.9), abs=1e-12)
    assert _ema(page, [], 0.6) == []


def test_smooth_ema_gaps_stay_gaps_and_do_not_reset(page):
    # null, NaN and ±Infinity are gaps; the average carries on over them: 4 after 2 → 10/3.
    got = _ema(page, [2, None, math.nan, math.inf, -math.inf, 4], 0.5)
    assert got[1:5] == [None] * 4
    assert got[0] == 2 and got[5] == pytest.approx(10 / 3, abs=1e-12)
    assert _ema(page, [None, 7], 0.5) == [None, 7]  # a leading gap: the first value is exact


def _band(page, series: list[dict]) -> dict:
    return page.evaluate("(s) => bandStats(s)", series)


def test_band_stats_known_values(page):
    same_x = _band(page, [{"x": [1, 2, 3], "y": [1, 2, 3]}, {"x": [1, 2, 3], "y": [3, 4, 5]}])
    assert same_x == {"x": [1, 2, 3], "mean": [2, 3, 4], "min": [1, 2, 3], "max": [3, 4, 5]}
    # Unequal lengths, steps only some series hold, a null gap, x sorted as numbers.
    band = _band(
        page,
        [
            {"x": [0, 10, 20, 100], "y": [1, 2, 3, 4]},
            {"x": [0, 20], "y": [5, 7]},
            {"x": [10, 20, 40], "y": [None, 0, 9]},
        ],
    )
    assert band["x"] == [0, 10, 20, 40, 100]
    assert band["mean"] == pytest.approx([3, 2, 10 / 3, 9, 4], abs=1e-12)  # 20: (3 + 7 + 0) / 3
    assert band["min"] == [1, 2, 0, 9, 4]
    assert band["max"] == [5, 2, 7, 9, 4]
    assert _band(page, []) == {"x": [], "mean": [], "min": [], "max": []}
    assert _band(page, [{"x": [1], "y": [None]}]) == {"x": [], "mean": [], "min": [], "max": []}


def test_group_traces_draw_the_band_of_each_group(page):
    traces = page.evaluate(
        """() => {
        const cfg = (t) => ({ temperature: t, batch_size: 1, seq_len: 1 });
        runs = [1, 2, 3].map((id, i) => ({ id, name: `r${id}`, status: "succeeded",
                                          config: cfg([2, 2, 4][i]) }));
        const pts = (vals) => vals.map(([step, value]) => ({ step, value, time: step }));
        metrics = {
          1: { "train/loss": pts([[1, 1], [2, 3], [3, 5]]) },
          2: { "train/loss": pts([[1, 3], [2, 1]]) },
          3: { "train/loss": pts([[1, 8], [3, 6]]) },
        };
        state.group = "temperature"; state.smooth = 0; state.x = "step";
        return groupTraces("train/loss").map((t) => ({ name: t.name, x: t.x, y: t.y }));
    }"""
    )
    # Per group: min, max (filled to the min), mean; T=2 has runs 1 and 2, T=4 run 3.
    assert traces == [
        {"name": None, "x": [1, 2, 3], "y": [1, 1, 5]},
        {"name": None, "x": [1, 2, 3], "y": [3, 3, 5]},
        {"name": "temperature = 2 (2)", "x": [1, 2, 3], "y": [2, 2, 5]},
        {"name": None, "x": [1, 3], "y": [8, 6]},
        {"name": None, "x": [1, 3], "y": [8, 6]},
        {"name": "temperature = 4 (1)", "x": [1, 3], "y": [8, 6]},
    ]
