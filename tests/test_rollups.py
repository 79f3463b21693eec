"""Rollups stay true to the points, on SQLite and on PostgreSQL: a point written again with
another value (a resumed run replays steps it already logged) leaves no old extreme behind,
and non-finite points show in downsampled reads as flagged points (value null + flag), in the
points and in the columns format, never more than max_points."""

import math
import random

import pytest
from sqlalchemy import select

from backend.db.models import MetricRollup, Run
from backend.db.session import transaction
from backend.services.metrics import FLAGGED, LEVELS, WIDTHS, point_row, write_points

KEY = "train/loss"


@pytest.fixture(params=["sqlite", "postgresql"])
def client(request, env, monkeypatch):
    """The in-process api on the embedded SQLite database or on a PostgreSQL one."""
    from fastapi.testclient import TestClient

    from backend.main import create_app
    from tests.conftest import _clear_caches

    if request.param == "postgresql":
        monkeypatch.setenv("DISTILLSCOPE_DATABASE_URL", request.getfixturevalue("postgres_url"))
        _clear_caches()
    with TestClient(create_app()) as c:
        yield c


def _run() -> int:
    with transaction() as s:
        run = Run(name="r", tags=[], config={}, status="running", step=0, total_steps=1, latest={})
        s.add(run)
        s.flush()
        return run.id


def _write(run_id: int, values: dict[int, float], batch: int = 500) -> None:
    """Written the way the worker writes: in step order, batch by batch."""
    steps = sorted(values)
    for i in range(0, len(steps), batch):
        with transaction() as s:
            write_points(
                s,
                [point_row(run_id, KEY, st, values[st], float(st)) for st in steps[i : i + batch]],
            )


def _expected_rollups(values: dict[int, float]) -> dict[tuple, tuple]:
    """Every (level, bucket) the points imply: (min step, max step, last step) of its finite
    points; a non-finite point is one row at level FLAGGED."""
    out: dict[tuple, tuple] = {}
    for level, width in enumerate(WIDTHS):
        buckets: dict[int, list[int]] = {}
        for st in sorted(values):
            if math.isfinite(values[st]):
                buckets.setdefault(st // width, []).append(st)
        for b, steps in buckets.items():
            lo = min(steps, key=lambda st: (values[st], st))
            hi = max(steps, key=lambda st: (values[st], -st))
            out[(level, b)] = (lo, hi, steps[-1])
    for st, v in values.items():
        if not math.isfinite(v):
            out[(FLAGGED, st)] = (st, st, st)
    return out


def _stored_rollups(run_id: int) -> dict[tuple, tuple]:
    m = MetricRollup
    with transaction() as s:
        rows = s.execute(
            select(m.level, m.bucket, m.min_step, m.max_step, m.last_step).where(
                m.run_id == run_id, m.key == KEY
            )
        ).all()
    return {(lv, b): (lo, hi, last) for lv, b, lo, hi, last in rows}


def _read(client, run_id: int, **params) -> list[dict]:
    r = client.get(f"/api/runs/{run_id}/metrics", params={"keys": KEY, **params})
    assert r.status_code == 200, r.text
    return r.json()["metrics"][KEY]


def _max_points_for(level: int, span: int) -> int:
    """The max_points at which a read of `span` steps is drawn from `level`'s buckets."""
    return 3 * (span // WIDTHS[level] + 2)


def test_a_replayed_point_leaves_no_old_extreme(client):
    """Step 40 logged as 100, then the resumed run logs it again as 1: every level reads 1."""
    run_id = _run()
    rng = random.Random(1)
    n = 20_000
    values = {st: 5 + rng.random() for st in range(n)}
    values[40] = 100.0
    _write(run_id, values)
    assert max(p["value"] for p in _read(client, run_id, max_points=100)) == 100.0
    # The resumed run replays steps 0..2,000 from its checkpoint; step 40 is now 1.
    values.update({st: 5 + rng.random() for st in range(2_001)})
    values[40] = 1.0
    _write(run_id, {st: values[st] for st in range(2_001)})
    assert _stored_rollups(run_id) == _expected_rollups(values)
    for level in range(LEVELS - 1):
        pts = _read(client, run_id, max_points=_max_points_for(level, n))
        got = {p["step"]: p["value"] for p in pts}
        assert all(values[st] == v for st, v in got.items()), level  # only current values
        assert got[40] == 1.0 and max(got.values()) == max(values.values()), level


def test_a_replayed_extreme_that_turns_non_finite_or_back(client):
    """An extreme replaced by NaN leaves the bucket's next extreme; NaN replaced by a value
    is a plain point again; a bucket left with no finite point disappears."""
    run_id = _run()
    values = {st: float(st % 7) for st in range(1, 300)}
    values[100] = 50.0
    _write(run_id, values)
    values[100] = math.nan
    values.update({st: math.inf for st in range(16, 32)})  # level 0's bucket 1, all infinite
    _write(run_id, {st: values[st] for st in range(16, 101)})
    assert _stored_rollups(run_id) == _expected_rollups(values)
    assert (0, 1) not in _stored_rollups(run_id)
    values[100] = -3.0
    _write(run_id, {100: values[100]})
    assert _stored_rollups(run_id) == _expected_rollups(values)
    pts = _read(client, run_id, max_points=30)
    assert min(p["value"] for p in pts if p["value"] is not None) == -3.0


def test_the_same_step_twice_in_one_batch_keeps_the_last(client):
    run_id = _run()
    with transaction() as s:
        write_points(s, [point_row(run_id, KEY, st, 2.0, 0.0) for st in range(100)])
    with transaction() as s:
        write_points(s, [point_row(run_id, KEY, 5, 9.0, 1.0), point_row(run_id, KEY, 5, 0.5, 2.0)])
    values = {st: 2.0 for st in range(100)} | {5: 0.5}
    assert _stored_rollups(run_id) == _expected_rollups(values)


def _flagged_series(run_id: int) -> dict[int, float]:
    values = {st: 1 + math.sin(st / 300) for st in range(1, 50_001)}
    values.update({777: math.nan, 12_345: math.inf, 40_000: -math.inf, 49_999: math.nan})
    _write(run_id, values, batch=5_000)
    return values


@pytest.mark.parametrize("max_points", [50, 300, 3000])
def test_non_finite_points_show_in_downsampled_reads(client, max_points):
    run_id = _run()
    values = _flagged_series(run_id)
    flags = {777: "nan", 12_345: "inf", 40_000: "-inf", 49_999: "nan"}
    pts = _read(client, run_id, max_points=max_points)
    assert len(pts) <= max_points
    got = {p["step"]: p for p in pts}
    for st, flag in flags.items():
        assert got[st]["value"] is None and got[st]["flag"] == flag, st
        assert got[st]["time"] == float(st)
    assert all(
        p["flag"] is None and p["value"] == values[p["step"]] for p in pts if p["step"] not in flags
    )
    # The same points in columns, from the compare endpoint.
    params = {"runs": str(run_id), "keys": KEY, "max_points": max_points, "format": "columns"}
    cols = client.get("/api/metrics", params=params).json()["runs"][str(run_id)][KEY]
    assert cols["step"] == [p["step"] for p in pts]
    assert cols["value"] == [p["value"] for p in pts]
    assert cols["flag"] == [p["flag"] for p in pts]
    # A window: only its own flagged points.
    window = _read(client, run_id, max_points=100, start_step=10_000, end_step=45_000)
    assert [p["step"] for p in window if p["flag"]] == [12_345, 40_000]
    assert len(window) <= 100


def test_many_non_finite_points_stay_within_max_points(client):
    """A series that is mostly NaN, inf and -inf: each bucket keeps its first of each flag."""
    run_id = _run()
    kinds = [math.nan, math.inf, -math.inf, 2.0]
    values = {st: kinds[st % 4] for st in range(20_000)}
    _write(run_id, values, batch=5_000)
    for max_points in (3, 10, 100, 1_000):
        pts = _read(client, run_id, max_points=max_points)
        assert 0 < len(pts) <= max_points, max_points
        assert all((p["value"] is None) == bool(p["flag"]) for p in pts)
        if max_points >= 10:
            assert {p["flag"] for p in pts} == {None, "nan", "inf", "-inf"}, max_points


def test_random_windows_keep_order_extremes_and_flags(env):
    """Any window of a series with spikes, dips and non-finite points: strictly increasing
    steps, real points only, the window's min, max, last and every non-finite point kept."""
    from backend.db.migrate import upgrade
    from backend.services.metrics import series

    upgrade()
    run_id = _run()
    rng = random.Random(7)
    values = {st: rng.gauss(0, 1) for st in range(0, 70_000, 3)}
    for st in rng.sample(sorted(values), 12):
        values[st] = rng.choice([math.nan, math.inf, -math.inf, 50.0, -50.0])
    _write(run_id, values, batch=7_000)
    for _ in range(40):
        a = rng.randrange(0, 70_000)
        b = rng.randrange(a, min(70_000, a + rng.choice([40, 500, 5_000, 70_000])))
        max_points = rng.choice([5, 30, 100, 1_000])
        with transaction() as s:
            pts = series(s, run_id=run_id, key=KEY, start=a, end=b, max_points=max_points)
        window = {st: v for st, v in values.items() if a <= st <= b}
        finite = {st: v for st, v in window.items() if math.isfinite(v)}
        steps = [p["step"] for p in pts]
        assert steps == sorted(set(steps)) and len(pts) <= max_points, (a, b, max_points)
        for p in pts:
            v = window[p["step"]]
            assert p["value"] == v if math.isfinite(v) else p["value"] is None, p
        got = {p["step"] for p in pts}
        if finite and max_points >= 30:
            assert min(finite, key=finite.get) in got and max(finite, key=finite.get) in got
            assert max(finite) in got or not math.isfinite(window[max(window)])
            assert all(st in got for st, v in window.items() if not math.isfinite(v))


def test_rebuild_rollups_restores_what_older_writers_left(client):
    """Rollups written before replays were recomputed and non-finite points listed: stale
    extremes and no level -1 rows. rebuild_rollups makes them what the points imply."""
    from sqlalchemy import delete, update

    from backend.services.metrics import rebuild_rollups

    run_id = _run()
    values = {st: float(st % 11) for st in range(5_000)} | {300: math.nan, 4_000: -math.inf}
    _write(run_id, values)
    m = MetricRollup
    with transaction() as s:  # what an older writer could leave behind
        s.execute(delete(m).where(m.run_id == run_id, m.level == FLAGGED))
        s.execute(update(m).where(m.run_id == run_id, m.level == 2).values(max_value=100.0))
    assert _stored_rollups(run_id) != _expected_rollups(values)
    with transaction() as s:
        rebuild_rollups(s, run_id)
    assert _stored_rollups(run_id) == _expected_rollups(values)
