"""Known answers for the inspector's divergences and for metric downsampling: small inputs
whose expected outputs are worked out by hand (the formulas are written out below)."""

import math

import pytest
import torch

from worker.inspect import _divergences

LN2 = math.log(2)


def _divergences_of(log_p: torch.Tensor, log_q: torch.Tensor) -> dict[str, torch.Tensor]:
    return _divergences(log_p, log_q, log_p.exp(), log_q.exp())


def _div(p: list[list[float]], q: list[list[float]]) -> dict[str, list[float]]:
    log = lambda x: torch.tensor(x, dtype=torch.float64).log()  # noqa: E731
    return {k: v.tolist() for k, v in _divergences_of(log(p), log(q)).items()}


def test_divergences_of_a_fair_and_a_skewed_coin():
    d = _div([[0.5, 0.5]], [[0.9, 0.1]])
    kl_pq = 0.5 * math.log(0.5 / 0.9) + 0.5 * math.log(0.5 / 0.1)
    kl_qp = 0.9 * math.log(0.9 / 0.5) + 0.1 * math.log(0.1 / 0.5)
    m = [0.7, 0.3]  # (p + q) / 2
    js = 0.5 * (0.5 * math.log(0.5 / m[0]) + 0.5 * math.log(0.5 / m[1])) + 0.5 * (
        0.9 * math.log(0.9 / m[0]) + 0.1 * math.log(0.1 / m[1])
    )
    assert d["kl_ab"][0] == pytest.approx(kl_pq, abs=1e-12)  # ≈ 0.5108
    assert d["kl_ba"][0] == pytest.approx(kl_qp, abs=1e-12)  # ≈ 0.3681
    assert d["js"][0] == pytest.approx(js, abs=1e-12)  # ≈ 0.1017
    assert d["tv"][0] == pytest.approx(0.4, abs=1e-12)  # ½(|0.5 − 0.9| + |0.5 − 0.1|)
    assert kl_pq != pytest.approx(kl_qp)  # KL is not symmetric ...
    swapped = _div([[0.9, 0.1]], [[0.5, 0.5]])
    assert swapped["kl_ab"][0] == pytest.approx(kl_qp, abs=1e-12)  # ... its directions swap
    assert swapped["js"][0] == pytest.approx(js, abs=1e-12)  # JS and TV are symmetric
    assert swapped["tv"][0] == pytest.approx(0.4, abs=1e-12)


def test_divergences_identities_over_the_last_axis():
    p = [[0.2, 0.3, 0.5], [0.7, 0.2, 0.1]]
    same = _div(p, p)
    for k in ("kl_ab", "kl_ba", "js", "tv"):
        assert same[k] == pytest.approx([0.0, 0.0], abs=1e-12), k
    # Rows are independent pairs: row i of p against row i of q.
    q = [[0.7, 0.2, 0.1], [0.2, 0.3, 0.5]]
    d = _div(p, q)
    kl = sum(a * math.log(a / b) for a, b in zip(p[0], q[0], strict=True))
    assert d["kl_ab"][0] == pytest.approx(kl, abs=1e-12)
    assert d["kl_ba"][1] == pytest.approx(kl, abs=1e-12)  # row 1 is row 0 swapped
    assert d["tv"] == pytest.approx([0.5, 0.5], abs=1e-12)  # ½(0.5 + 0.1 + 0.4)
    assert all(0 < v < LN2 for v in d["js"])


def test_js_reaches_ln2_and_tv_1_on_disjoint_supports():
    # Log-probabilities with (numerically) no shared mass, as a log-softmax gives them.
    log_p = torch.tensor([[0.0, -1000.0]], dtype=torch.float64)
    log_q = torch.tensor([[-1000.0, 0.0]], dtype=torch.float64)
    d = {k: v.item() for k, v in _divergences_of(log_p, log_q).items()}
    assert d["js"] == pytest.approx(LN2, abs=1e-12)
    assert d["tv"] == pytest.approx(1.0, abs=1e-12)
    assert d["kl_ab"] == pytest.approx(1000.0, abs=1e-9)  # 1·(0 − (−1000))


# Downsampling (backend/services/metrics.py): buckets of 16, 64, ..., 65,536 steps keep their
# min, max and last point; the partial buckets at a range's edges come from the raw points.


@pytest.fixture
def db(env):
    from backend.db.migrate import upgrade

    upgrade()


def _run_with(points: dict[int, float], key: str = "train/loss", batches=None) -> int:
    """A run holding `points` ({step: value}, wall time = step), written in `batches` (lists
    of steps, in that order; default: one batch in step order)."""
    from backend.db.models import Run
    from backend.db.session import transaction
    from backend.services.metrics import point_row, write_points

    with transaction() as s:
        run = Run(name="known", tags=[], config={}, status="succeeded", total_steps=0, latest={})
        s.add(run)
        s.flush()
        run_id = run.id
    for batch in batches or [sorted(points)]:
        with transaction() as s:
            write_points(s, [point_row(run_id, key, st, points[st], float(st)) for st in batch])
    return run_id


def _series(run_id: int, start: int, end: int, max_points: int) -> list[tuple[int, float]]:
    from backend.db.session import transaction
    from backend.services.metrics import series

    with transaction() as s:
        pts = series(
            s, run_id=run_id, key="train/loss", start=start, end=end, max_points=max_points
        )
    assert all(p["time"] == float(p["step"]) for p in pts)  # each point's own time
    return [(p["step"], p["value"]) for p in pts]


# Steps 1..64, flat at 1.0 but for one spike and one dip.
DENSE = {s: 1.0 for s in range(1, 65)} | {37: 9.0, 50: -3.0}


def test_dense_series_keeps_each_bucket_min_max_and_last(db):
    run_id = _run_with(DENSE)
    # 64 steps > 20 points: 16-step buckets (3 · (64 // 16 + 2) = 18 ≤ 20).
    assert _series(run_id, 1, 64, max_points=20) == [
        (1, 1.0), (15, 1.0),  # head 1..15 (partial): its first point, then min = max = last
        (16, 1.0), (31, 1.0),  # bucket 16..31: flat, so min = max = the first, and the last
        (32, 1.0), (37, 9.0), (47, 1.0),  # bucket 32..47: the spike survives
        (48, 1.0), (50, -3.0), (63, 1.0),  # bucket 48..63: the dip survives
        (64, 1.0),  # tail 64..64 (partial)
    ]  # fmt: skip
    # As many points allowed as steps: every point, exactly.
    assert _series(run_id, 1, 64, max_points=64) == sorted(DENSE.items())
    # No whole bucket inside [33, 46]: the window's own min, max and last, from raw points.
    assert _series(run_id, 33, 46, max_points=5) == [(33, 1.0), (37, 9.0), (46, 1.0)]


# Sparse steps over 140,000: every level is in play with a handful of rows.
SPARSE = {
    1: 5.0, 100: 7.0, 65_535: 2.0,  # before the first 65,536-step bucket
    65_536: 4.0, 66_000: 5.0, 70_000: 10.0, 70_001: 8.0, 100_000: -1.0, 131_071: 3.0,  # bucket 1
    131_072: 6.0, 140_000: 0.5,  # after it
}  # fmt: skip


def test_sparse_series_at_the_coarsest_level(db):
    run_id = _run_with(SPARSE)
    level6 = [
        (1, 5.0), (100, 7.0), (65_535, 2.0),  # head: first point, max 7, min = last 2
        (70_000, 10.0), (100_000, -1.0), (131_071, 3.0),  # bucket 1: max, min, last
        (131_072, 6.0), (140_000, 0.5),  # tail: max, min = last
    ]  # fmt: skip
    # 3 · (140,000 // 65,536 + 2) = 12: the coarsest level fits 12 points exactly ...
    assert _series(run_id, 1, 140_000, max_points=12) == level6
    # ... and with 9 it fits none, but its 8 points are few enough.
    assert _series(run_id, 1, 140_000, max_points=9) == level6


def test_too_many_points_even_coarsest_are_rebucketed_in_chunks(db):
    run_id = _run_with(SPARSE)
    # 8 points > 6: chunks of ceil(8 / (6 // 3)) = 4, each chunk's min, max and last.
    assert _series(run_id, 1, 140_000, max_points=6) == [
        (65_535, 2.0), (70_000, 10.0),  # chunk 1..70,000: min, then max = last
        (100_000, -1.0), (131_072, 6.0), (140_000, 0.5),  # chunk 100,000..140,000
    ]  # fmt: skip
    # 8 points > 5: one chunk of 8, the series' global min, max and last.
    assert _series(run_id, 1, 140_000, max_points=5) == [
        (70_000, 10.0),
        (100_000, -1.0),
        (140_000, 0.5),
    ]


def test_finer_level_and_a_window_with_unaligned_edges(db):
    run_id = _run_with(SPARSE)
    # 3 · (140,000 // 16,384 + 2) = 30 ≤ 30: 16,384-step buckets; empty buckets have no row.
    assert _series(run_id, 1, 140_000, max_points=30) == [
        (s, v)
        for s, v in sorted(SPARSE.items())
        if s != 66_000  # not min, max or last of 4
    ]
    # [100, 131,071]: head 100..65,535 from raw points, bucket 1 from its rollup, no tail.
    assert _series(run_id, 100, 131_071, max_points=12) == [
        (100, 7.0), (65_535, 2.0),
        (70_000, 10.0), (100_000, -1.0), (131_071, 3.0),
    ]  # fmt: skip


def test_rollups_do_not_depend_on_batching_or_order(db):
    one_batch = _run_with(SPARSE)
    # One point per batch, last step first: every rollup is merged row by row.
    reverse = _run_with(SPARSE, batches=[[s] for s in sorted(SPARSE, reverse=True)])
    for max_points in (5, 6, 12, 30):
        assert _series(reverse, 1, 140_000, max_points) == _series(
            one_batch, 1, 140_000, max_points
        ), max_points


def test_non_finite_points_are_flagged_in_exact_and_in_downsampled_reads(db):
    from backend.db.session import transaction
    from backend.services.metrics import point_row, series, write_points

    run_id = _run_with({s: float(s) for s in range(1, 11) if s != 4})
    with transaction() as s:
        write_points(s, [point_row(run_id, "train/loss", 4, float("nan"), 4.0)])
    with transaction() as s:
        exact = series(s, run_id=run_id, key="train/loss", start=1, end=10, max_points=10)
    assert [(p["step"], p["value"], p["flag"]) for p in exact] == [
        (s, None, "nan") if s == 4 else (s, float(s), None) for s in range(1, 11)
    ]
    # 10 steps > 9 points, no whole 16-step bucket: min, max (= last) of the finite ones,
    # and the NaN as a flagged point (value None), as the exact read shows it.
    assert _series(run_id, 1, 10, max_points=9) == [(1, 1.0), (4, None), (10, 10.0)]
