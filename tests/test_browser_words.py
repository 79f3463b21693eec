"""Words derived from numbers, fed made-up numbers with contrasting values (the pages' own
functions in real Chromium, one api for the module). The built-in experiment's panel on the
compare page: its words follow the numbers whichever way they point, say what unfinished seeds
are doing, count seeds in the singular and plural, never call a 4 % gap "1.0× higher", and its
inspector links put a teacher first and only runs' students after it. The run page's "why
soften" paragraph: said with what the kit measured of the run's teacher."""

from urllib.parse import parse_qs, urlparse

import pytest

from tests.support import page_modules

pytestmark = pytest.mark.browser

TEACHERS = ("calibrated", "fine-tuned (peaked)", "memorised")


def _runs(kl: dict, top1: dict | None = None, top5: dict | None = None, statuses=None):
    """Made-up runs and their final numbers: kl[name] is a list of per-seed values."""
    runs, finals, rid = [], {}, 0
    for name, values in kl.items():
        for seed, v in enumerate(values):
            rid += 1
            status = (statuses or {}).get((name, seed), "succeeded")
            runs.append({"id": rid, "name": name, "status": status, "config": {"seed": seed}})
            if status == "succeeded":
                finals[rid] = {
                    "eval/kl_true": v,
                    "eval/top5_true": (top5 or {}).get(name, 0.9),
                    "eval/top1_prob": (top1 or {}).get(name, 0.9),
                }
    return runs, finals


def _grid(hard, cal, ft, mem):
    kl = {"hard labels only": [hard] * 3}
    for label, values in zip(TEACHERS, (cal, ft, mem), strict=True):
        for t, v in zip((1, 2, 4), values, strict=True):
            kl[f"{label} teacher, T={t}"] = [v] * 3
    return kl


@pytest.fixture(scope="module")
def page(browser_module, shared_api_stack):
    p = browser_module.new_page(viewport={"width": 1280, "height": 900})
    errors: list[str] = []
    p.on("pageerror", lambda e: errors.append(str(e)))
    p.goto(shared_api_stack.url + "/compare?experiment=x")
    p.wait_for_function("document.body.dataset.ready === '1'")
    page_modules(p, "compare-data", "compare-experiment")
    yield p
    assert not errors, errors


def _draw(page, runs, finals) -> dict:
    page.evaluate(
        """async ([rs, fs]) => { data.runs = rs;
        for (const k of Object.keys(experimentFinal)) delete experimentFinal[k];
        for (const [k, v] of Object.entries(fs)) experimentFinal[k] = v;
        await drawExperiment(); }""",
        [runs, {str(k): v for k, v in finals.items()}],
    )
    rows = page.eval_on_selector_all(
        "#experiment-table tbody tr", "rs => rs.map(r => [...r.children].map(c => c.textContent))"
    )
    return {
        "rows": {r[0]: r[1:] for r in rows},
        "order": [r[0] for r in rows],
        "status": page.text_content("#experiment-status"),
        "text": page.text_content("#experiment-explainer"),
    }


def test_wording_follows_contrasting_numbers(page):
    # T > 1 helps the peaked teacher's students here…
    runs, finals = _runs(
        _grid(0.917, (0.046, 0.051, 0.039), (1.2, 0.6, 0.5), (0.958, 1.035, 1.167)),
        top1={"fine-tuned (peaked) teacher, T=1": 0.95, "fine-tuned (peaked) teacher, T=4": 0.8},
    )
    out = _draw(page, runs, finals)
    assert out["order"][0] == "hard labels only" and len(out["order"]) == 10
    assert out["status"] == "All 30 runs finished."
    text = out["text"]
    assert "a higher T helped: 1.200 at T = 1, 0.600 at T = 2, 0.500 at T = 4" in text
    assert "less peaked at T = 4 (0.80 on their top token on average, 0.95 at T = 1)" in text
    assert "Either way the calibrated teacher it was fine-tuned from did better (0.039" in text
    assert "23.5× lower than hard labels" in out["rows"]["calibrated teacher, T=4"][1]
    # … and does not here: the opposite numbers, the opposite words.
    runs, finals = _runs(
        _grid(0.917, (0.046, 0.051, 0.039), (0.9, 1.55, 1.45), (0.958, 1.035, 1.167)),
        top1={"fine-tuned (peaked) teacher, T=1": 0.9, "fine-tuned (peaked) teacher, T=4": 0.94},
        top5={"fine-tuned (peaked) teacher, T=1": 0.90, "fine-tuned (peaked) teacher, T=4": 0.89},
    )
    text = _draw(page, runs, finals)["text"]
    assert "T > 1 did not recover what T = 1 could not: 0.900 at T = 1" in text
    assert "more peaked at T = 4 (0.94 on their top token on average, 0.90 at T = 1)" in text
    assert "copy its logits, over-confidence included" in text
    assert "as much of the truth's top-5 ranking at T = 4 as at T = 1 (0.89 and 0.90)" in text
    assert "; the hard-label student keeps 0.90." in text
    assert "a higher T helped" not in text
    # Its students keep more of the ranking than the labels give: said only when measured.
    ft = {f"fine-tuned (peaked) teacher, T={t}": 0.93 for t in (1, 2, 4)}
    runs, finals = _runs(
        _grid(0.917, (0.046, 0.051, 0.039), (0.9, 1.55, 1.45), (0.958, 1.035, 1.167)),
        top5={"hard labels only": 0.81, **ft},
    )
    text = _draw(page, runs, finals)["text"]
    assert "at every T more than the hard-label student (0.81)" in text
    # Nothing close: "about the same", never "1.0× higher" for 0.956 against 0.917.
    assert page.evaluate("versus(0.917, 0.956)") == "about the same as hard labels (+4 %)"
    assert page.evaluate("versus(0.917, 0.88)") == "about the same as hard labels (−4 %)"
    assert page.evaluate("versus(0.917, 1.167)") == "27 % higher than hard labels"
    assert page.evaluate("versus(0.917, 0.6)") == "35 % lower than hard labels"
    assert page.evaluate("versus(0.917, 0.039)") == "23.5× lower than hard labels"


def test_unfinished_seeds_say_what_they_are_doing(page):
    kl = _grid(0.917, (0.046, 0.051, 0.039), (0.9, 1.55, 1.45), (0.958, 1.035, 1.167))
    statuses = {("calibrated teacher, T=1", 1): "running", ("calibrated teacher, T=1", 2): "queued"}
    statuses.update({("memorised teacher, T=4", s): "queued" for s in range(3)})
    out = _draw(page, *_runs(kl, statuses=statuses))
    cal1 = out["rows"]["calibrated teacher, T=1"][0]
    assert cal1 == "0.046 ± 0.000 (1 seed); 1 running, 1 queued", cal1
    assert out["rows"]["memorised teacher, T=4"][0] == "3 queued"
    assert "running…" not in out["status"] + str(out["rows"])
    assert out["status"].startswith("25 of 30 runs finished (1 running, 4 queued)")
    assert out["rows"]["hard labels only"][0].endswith("(3 seeds)")


def test_inspect_links_put_a_teacher_first_and_students_after(page):
    runs, finals = _runs(_grid(0.9, (0.05, 0.05, 0.04), (0.9, 1.5, 1.4), (1.0, 1.0, 1.1)))
    _draw(page, runs, finals)
    by_name = {r["name"]: r["id"] for r in runs if r["config"]["seed"] == 0}
    for link, expected in (
        (
            "#experiment-inspect-peaked",
            [
                "demo-teacher-finetuned",
                f"run:{by_name['fine-tuned (peaked) teacher, T=1']}",
                f"run:{by_name['fine-tuned (peaked) teacher, T=4']}",
            ],
        ),
        (
            "#experiment-inspect",
            [
                "demo-teacher",
                f"run:{by_name['calibrated teacher, T=4']}",
                f"run:{by_name['hard labels only']}",
            ],
        ),
    ):
        href = page.get_attribute(link, "href")
        assert parse_qs(urlparse(href).query)["models"][0].split(",") == expected
        assert "memorised" not in href
    # The panel fits a 1,280 px window: no column pushed out of its card.
    assert page.evaluate(
        "(() => { const p = document.getElementById('experiment-panel');"
        " return p.scrollWidth <= p.clientWidth + 1 })()"
    )


PEAKED_PROFILE = {
    "confident_share": 0.923,
    "top5_overlap": 0.925,
    "best_t": 2,
    "kl_true_t1": 1.870,
    "kl_true_best_t": 0.691,
}
CALIBRATED_PROFILE = {
    "confident_share": 0.002,
    "top5_overlap": 0.994,
    "best_t": 1,
    "kl_true_t1": 0.020,
    "kl_true_best_t": 0.020,
}
MEMORISED_PROFILE = {  # peaked on the wrong things
    "confident_share": 0.619,
    "top5_overlap": 0.695,
    "best_t": 2.5,
    "kl_true_t1": 2.959,
    "kl_true_best_t": 1.157,
}


def test_run_page_says_how_peaked_its_teacher_is(browser_module, shared_api_stack):
    page = browser_module.new_page()
    page.goto(shared_api_stack.url + "/runs/1")  # no such run: the page's functions load anyway
    page.wait_for_load_state()
    page_modules(page, "run")

    def said(name, profile):
        info = {"name": name, "profile": profile} if profile is not None else None
        return page.evaluate("([n, i]) => softenText(n, i)", [name, info])

    peaked = said("demo-teacher-finetuned", PEAKED_PROFILE)
    assert "is confident" in peaked and "at least 0.9 at 92 % of the held-out positions" in peaked
    assert "closest to the truth at T = 2 (KL 0.691 against 1.87 at T = 1)" in peaked
    calibrated = said("demo-teacher", CALIBRATED_PROFILE)
    assert "is not peaked" in calibrated and "only 0 % of the held-out positions" in calibrated
    assert "no T from 1.25 to 8 brings it closer to the truth" in calibrated
    assert "is confident" not in calibrated and "partly wrong" not in calibrated
    assert "partly wrong" not in peaked
    memorised = said("demo-teacher-memorised", MEMORISED_PROFILE)
    assert "is confident" in memorised and "at 62 % of the held-out positions" in memorised
    assert "partly wrong: its top 5 hold only 0.69 of the truth's top 5" in memorised
    some = said("x", {**CALIBRATED_PROFILE, "confident_share": 0.3})
    assert "is confident at some positions only" in some and "not peaked" not in some
    # A teacher without a known truth (the real kit's): its own answers' numbers, no truth.
    real = {
        "positions": 1597,
        "vocab": 49152,
        "top1_mean": 0.57,
        "confident_share": 0.22,
        "top8_mass_by_t": {"1": 0.85, "2": 0.30, "4": 0.014},
    }
    llm = said("smollm2-135m-instruct", real)
    assert "is confident at some positions only" in llm and "at 22 % of the answer" in llm
    assert (
        "Its top 8 of its 49,152 tokens keep 85 % of its mass at T = 1, 30 % of its mass at T = 2"
        in llm
    )
    assert "at T = 4 most of the softened target is the long tail" in llm
    assert "undefined" not in llm and "truth" not in llm
    flat = said("x", {**real, "confident_share": 0.05, "top8_mass_by_t": {"1": 0.99, "4": 0.9}})
    assert "is not peaked" in flat and "long tail" not in flat
    peaked_llm = said("x", {**real, "confident_share": 0.8, "top8_mass_by_t": {"4": 0.004}})
    assert "is confident:" in peaked_llm and "under 1 % of its mass at T = 4" in peaked_llm
    unknown = said("some-org/some-llm", None)
    assert "How peaked this run's teacher (some-org/some-llm) is, the inspector shows" in unknown
    # Never the old unconditional claim.
    for text in (peaked, calibrated, unknown):
        assert "A well-trained teacher is confident" not in text


def test_partial_results_and_a_reversed_ranking_get_their_own_words(page):
    # Only T = 1 has finished for every teacher: no claim about what T does.
    kl = _grid(0.917, (0.046, 0.051, 0.039), (0.9, 1.55, 1.45), (0.958, 1.035, 1.167))
    queued = {
        (f"{t} teacher, T={x}", s): "queued" for t in TEACHERS for x in (2, 4) for s in range(3)
    }
    text = _draw(page, *_runs(kl, statuses=queued))["text"]
    assert "Across T" not in text and "T barely mattered" not in text
    assert "From the memorised teacher the student ends 0.958 at T = 1 so far" in text
    assert "no temperature recovered" not in text
    # A fine-tuned teacher whose students beat the calibrated teacher's: said so, not "as good".
    runs, finals = _runs(_grid(0.917, (0.046, 0.051, 0.039), (0.03, 0.02, 0.02), (1, 1, 1)))
    text = _draw(page, runs, finals)["text"]
    assert "That is better than the calibrated teacher it was fine-tuned from (0.039" in text
    # A row still without its top-5 number is no evidence for "at every T".
    ft = {f"fine-tuned (peaked) teacher, T={t}": 0.93 for t in (1, 2, 4)}
    runs, finals = _runs(kl, top5={"hard labels only": 0.81, **ft})
    for f in finals.values():
        if f["eval/kl_true"] == 1.55:
            f["eval/top5_true"] = None
    text = _draw(page, runs, finals)["text"]
    assert "at every T more than" not in text
