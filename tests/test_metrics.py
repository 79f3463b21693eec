"""Metrics at scale: downsampling keeps every spike, is exact below max_points, and the
rollups it reads agree with the raw points."""

import math
import random

import pytest

from backend.db.models import Run
from backend.db.session import transaction
from backend.services.metrics import point_row, write_points

N = 100_000
SPIKE, DIP = (54_321, 1000.0), (777, -50.0)


@pytest.fixture(scope="module")
def client(module_client):
    """One api and database for the module: its tests only read the long run."""
    return module_client


@pytest.fixture(scope="module")
def long_run(client):
    with transaction() as s:
        run = Run(
            name="long", tags=[], config={}, status="succeeded", step=N, total_steps=N, latest={}
        )
        s.add(run)
        s.flush()
        run_id = run.id
    rng = random.Random(0)
    values = {}
    for start in range(1, N + 1, 500):  # written the way the worker writes: batch by batch
        rows = []
        for step in range(start, min(start + 500, N + 1)):
            v = 2.0 + math.sin(step / 500) + rng.random() * 0.1
            v = {SPIKE[0]: SPIKE[1], DIP[0]: DIP[1]}.get(step, v)
            values[step] = v
            rows.append(point_row(run_id, "train/loss", step, v, float(step)))
        rows.append(point_row(run_id, "train/nan", start, float("nan")))
        with transaction() as s:
            write_points(s, rows)
    return run_id, values


def _get(client, run_id, **params):
    r = client.get(f"/api/runs/{run_id}/metrics", params={"keys": "train/loss", **params})
    assert r.status_code == 200, r.text
    return r.json()["metrics"]["train/loss"]


def test_downsampling_keeps_spikes_and_bounds_the_points(client, long_run):
    run_id, values = long_run
    pts = _get(client, run_id, max_points=3000)
    assert 1000 < len(pts) <= 3000
    steps = [p["step"] for p in pts]
    assert steps == sorted(set(steps)) and steps[0] == 1 and steps[-1] == N
    by_step = {p["step"]: p["value"] for p in pts}
    assert by_step[SPIKE[0]] == SPIKE[1] and by_step[DIP[0]] == DIP[1]
    assert all(values[p["step"]] == p["value"] for p in pts)  # real points, not averages
    assert all(p["time"] == float(p["step"]) for p in pts)


@pytest.mark.parametrize(
    ("start", "end"), [(50_000, 60_000), (3, 99_997), (700, 12_345), (1, 4_000)]
)
def test_every_window_keeps_its_true_extremes(client, long_run, start, end):
    run_id, values = long_run
    pts = _get(client, run_id, max_points=300, start_step=start, end_step=end)
    assert len(pts) <= 300
    assert all(start <= p["step"] <= end for p in pts)
    window = [values[s] for s in range(start, end + 1)]
    got = [p["value"] for p in pts]
    assert min(got) == min(window) and max(got) == max(window)
    assert pts[-1]["step"] == end  # the last point of the window is there


def test_exact_when_the_range_holds_fewer_points(client, long_run):
    run_id, values = long_run
    pts = _get(client, run_id, max_points=3000, start_step=10_001, end_step=12_000)
    assert [p["step"] for p in pts] == list(range(10_001, 12_001))
    assert [p["value"] for p in pts] == [values[s] for s in range(10_001, 12_001)]
    nan = client.get(
        f"/api/runs/{run_id}/metrics", params={"keys": "train/nan", "max_points": 50}
    ).json()["metrics"]
    assert nan["train/nan"] == [] or all(p["value"] is None for p in nan["train/nan"])


def test_compare_endpoint_returns_several_runs(client, long_run):
    run_id, _ = long_run
    r = client.get(
        "/api/metrics",
        params={"runs": f"{run_id},{run_id}", "keys": "train/loss", "max_points": 500},
    )
    assert r.status_code == 200
    series = r.json()["runs"][str(run_id)]["train/loss"]
    assert 100 < len(series) <= 500
    assert client.get("/api/metrics", params={"runs": "x"}).status_code == 422
    assert client.get("/api/metrics", params={"runs": "9999"}).status_code == 404


def test_compare_endpoint_in_columns_holds_the_same_points(client, long_run):
    run_id, _ = long_run
    params = {"runs": str(run_id), "keys": "train/loss", "max_points": 300}
    points = client.get("/api/metrics", params=params).json()["runs"][str(run_id)]["train/loss"]
    cols = client.get("/api/metrics", params={**params, "format": "columns"}).json()
    cols = cols["runs"][str(run_id)]["train/loss"]
    assert cols["step"] == [p["step"] for p in points]
    assert cols["value"] == [p["value"] for p in points]
    assert cols["time"] == pytest.approx([p["time"] for p in points], abs=1e-3)
    assert "flag" not in cols  # every point here is finite
    bad = client.get("/api/metrics", params={**params, "format": "csv"})
    assert bad.status_code == 422 and "format" in bad.text
