"""The compare page's pure helpers, run in real Chromium on the real page, against values
worked out by hand: EMA smoothing (smoothEma), the group band (bandStats, groupTraces) and
config values as text (configText)."""

import math

import pytest

from tests.support import page_modules

pytestmark = pytest.mark.browser


@pytest.fixture
def page(browser_module, shared_api_stack):
    """/compare with no runs, its first draw done: compare.js's functions are loaded. One api
    and one Chromium serve the module; each test gets a fresh page."""
    page = browser_module.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(f"{shared_api_stack.url}/compare")
    page.wait_for_selector("body[data-ready]")
    page_modules(page, "compare-groups", "compare-data", "compare")
    yield page
    page.close()
    assert not errors


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
    assert _band(page, []) == {"x": [], "mean": [], "min": [], "max": []}
    assert _band(page, [{"x": [1], "y": [None]}]) == {"x": [], "mean": [], "min": [], "max": []}
    # x sorted as numbers, not as text (9 < 10 < 100), whatever order the series come in.
    one = _band(page, [{"x": [100, 9, 10], "y": [3, 1, 2]}])
    assert one == {"x": [9, 10, 100], "mean": [1, 2, 3], "min": [1, 2, 3], "max": [1, 2, 3]}


def test_band_stats_a_shorter_member_ends_the_line(page):
    # A still-running member (2 points) beside a finished one (4): the band stops at x = 10,
    # rather than dropping to the longer member alone at 20 and 30 (a jump from 4 to 3).
    band = _band(page, [{"x": [0, 10, 20, 30], "y": [1, 2, 3, 4]}, {"x": [0, 10], "y": [3, 6]}])
    assert band == {"x": [0, 10], "mean": [2, 4], "min": [1, 2], "max": [3, 6]}
    # A member that starts late starts the line late.
    band = _band(page, [{"x": [0, 10, 20], "y": [1, 2, 3]}, {"x": [10, 20, 30], "y": [5, 5, 5]}])
    assert band == {"x": [10, 20], "mean": [3.5, 4], "min": [2, 3], "max": [5, 5]}
    # Members that never overlap have no common range.
    assert _band(page, [{"x": [0, 1], "y": [1, 1]}, {"x": [2, 3], "y": [1, 1]}])["x"] == []


def test_band_stats_interpolates_members_on_different_x(page):
    # Wall time: no two runs share an x. Each member is read at every x of the common range
    # [0, 20], linearly between its own neighbouring points:
    #   A (y = x) at 0, 5, 10, 15, 20 → 0, 5, 10, 15, 20
    #   B at 10: 4 + (8 − 4)·5/10 = 6; at 20: 8 + (0 − 8)·5/10 = 4 → 2, 4, 6, 8, 4
    band = _band(
        page, [{"x": [0, 10, 20], "y": [0, 10, 20]}, {"x": [0, 5, 15, 25], "y": [2, 4, 8, 0]}]
    )
    assert band["x"] == [0, 5, 10, 15, 20]
    assert band["mean"] == pytest.approx([1, 4.5, 8, 11.5, 12], abs=1e-12)
    assert band["min"] == pytest.approx([0, 4, 6, 8, 4], abs=1e-12)
    assert band["max"] == pytest.approx([2, 5, 10, 15, 20], abs=1e-12)


def test_band_stats_a_gap_is_a_gap_not_a_smaller_mean(page):
    # A's null at 10 makes A unknown on (0, 20): the band has a gap there, never the mean of
    # B and C alone. Common range [5, 25]; A at 25: 3 + (5 − 3)·5/10 = 4.
    band = _band(
        page,
        [
            {"x": [0, 10, 20, 30], "y": [1, None, 3, 5]},
            {"x": [0, 10, 20, 30], "y": [3, 3, 3, 3]},
            {"x": [5, 25], "y": [2, 2]},
        ],
    )
    assert band["x"] == [5, 10, 20, 25]
    assert band["mean"][:2] == [None, None]
    assert band["mean"][2:] == pytest.approx([8 / 3, 3], abs=1e-12)
    assert band["min"] == [None, None, 2, 2]
    assert band["max"] == [None, None, 3, 4]


def _group_traces(page, key: str = "train/loss", extra: str = "") -> list[dict]:
    """Four runs: T = 2 α = 0.5 (seeds 0 and 1, the second still running and shorter),
    T = 2 α = 0 and T = 4 α = 0.5; grouped by temperature, no smoothing, x = step. `extra`
    (JavaScript) changes that data in the same evaluate: between two, the page's refresh of
    a running run may load its own data again."""
    return page.evaluate(
        """(key) => {
        const cfg = (t, a, seed) => ({ name: `n${seed}${t}${a}`, tags: seed ? ["x"] : [],
                                       temperature: t, alpha: a, seed, batch_size: 1, seq_len: 1 });
        data.runs = [
          { id: 1, name: "a", status: "succeeded", config: cfg(2, 0.5, 0) },
          { id: 2, name: "b", status: "running", config: cfg(2, 0.5, 1) },
          { id: 3, name: "c", status: "succeeded", config: cfg(2, 0, 0) },
          { id: 4, name: "d", status: "succeeded", config: cfg(4, 0.5, 0) },
        ];
        const pts = (vals) => vals.map(([step, value]) => ({ step, value, time: step }));
        data.metrics = {
          1: { "train/loss": pts([[1, 1], [2, 3], [3, 5]]) },
          2: { "train/loss": pts([[1, 3], [2, 1]]) },
          3: { "train/loss": pts([[1, 8], [3, 6]]) },
          4: { "train/loss": pts([[1, 2], [2, 2], [3, 2]]) },
        };
        state.group = "temperature"; state.smooth = 0; state.x = "step";
        /*extra*/
        return groupTraces(key).map((t) => ({ name: t.name, x: t.x, y: t.y }));
    }""".replace("/*extra*/", extra),
        key,
    )


def test_group_traces_group_only_runs_that_agree_on_every_other_varying_field(page):
    traces = _group_traces(page)
    names = [t["name"] for t in traces if t["name"]]
    # α varies too: T = 2 splits into α = 0.5 (runs 1 and 2, the seeds) and α = 0 (run 3);
    # name, tags and seed vary but are what a group spans. Run 2 is still running and shorter:
    # the legend says why the line stops at step 2.
    assert names == [
        "T = 2 · α = 0.5 (2 runs, line ends with #2: running)",
        "T = 2 · α = 0 (1 run)",
        "T = 4 · α = 0.5 (1 run)",
    ]
    # Per group: min, max (filled to the min), mean.
    assert traces[:3] == [
        {"name": None, "x": [1, 2], "y": [1, 1]},
        {"name": None, "x": [1, 2], "y": [3, 3]},
        {"name": names[0], "x": [1, 2], "y": [2, 2]},
    ]
    assert traces[5] == {"name": names[1], "x": [1, 3], "y": [8, 6]}
    assert traces[8] == {"name": names[2], "x": [1, 2, 3], "y": [2, 2, 2]}


def test_group_by_name_names_a_group_by_its_name_alone(page):
    # The built-in experiment groups by run name: teacher, T and α vary across the runs but
    # are fixed within each name, so they split no group and stay out of the legend.
    names = page.evaluate(
        """() => {
        const cfg = (name, teacher, t, seed) =>
          ({ name, teacher, temperature: t, alpha: 0.9, seed });
        data.runs = [cfg("cal, T=1", "a", 1, 0), cfg("cal, T=1", "a", 1, 1),
                cfg("ft, T=4", "b", 4, 0), cfg("ft, T=4", "b", 4, 1)]
          .map((config, i) => ({ id: i + 1, name: config.name, status: "succeeded", config }));
        const pts = [{ step: 1, value: 1, time: 1 }];
        data.metrics = Object.fromEntries(data.runs.map((r) => [r.id, { "train/loss": pts }]));
        state.group = "name"; state.smooth = 0; state.x = "step";
        return groupTraces("train/loss").map((t) => t.name).filter(Boolean);
    }"""
    )
    assert names == ["cal, T=1 (2 runs)", "ft, T=4 (2 runs)"]


def test_group_traces_leave_out_members_without_points(page):
    # No run has eval points yet: no group draws. Run 1 gets one: its group draws it alone
    # and says it is 1 of its 2 runs (run 2 has none yet).
    traces = _group_traces(page, "eval/kl_true")
    assert [t["name"] for t in traces if t["name"]] == []
    one = "data.metrics[1]['eval/kl_true'] = [{ step: 2, value: 0.5, time: 2 }];"
    traces = _group_traces(page, "eval/kl_true", extra=one)
    assert {"name": "T = 2 · α = 0.5 (1 of 2 runs)", "x": [2], "y": [0.5]} in traces


def test_config_text_is_readable(page):
    got = page.evaluate(
        "[null, undefined, [], ['a', 'b'], 0, 0.5, 'forward_kl', true].map(configText)"
    )
    assert got == ["–", "–", "–", "a, b", "0", "0.5", "forward_kl", "true"]
