"""Numbers beyond what the databases hold are a 422 naming the parameter, never a 500 (#11):
ids and steps past PostgreSQL's integer (2**31 - 1, the smallest limit of the supported
databases) and past SQLite's, on every route that takes one, and a Last-Event-ID that is not a
step number."""

import pytest

BIG = [2**31, 2**63, 10**20]


def _run(client) -> dict:
    body = {"teacher": "demo-teacher", "student": "demo-student-s", "dataset": "demo"}
    r = client.post("/api/runs", json=body)
    assert r.status_code == 201, r.text
    return r.json()


@pytest.mark.parametrize("value", BIG)
@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", "/api/runs/{}"),
        ("get", "/api/runs/{}/metrics"),
        ("get", "/api/runs/{}/checkpoints"),
        ("get", "/api/runs/{}/stream"),
        ("post", "/api/runs/{}/cancel"),
        ("patch", "/api/runs/{}"),
        ("delete", "/api/runs/{}"),
        ("get", "/api/sweeps/{}"),
    ],
)
def test_an_id_past_the_databases_integers_is_a_422(client, method, path, value):
    kwargs = {"json": {"note": "x"}} if method == "patch" else {}
    r = getattr(client, method)(path.format(value), **kwargs)
    assert r.status_code == 422, (path, r.status_code, r.text)
    assert any(e["loc"][-1] in ("run_id", "sweep_id") for e in r.json()["detail"]), r.json()


@pytest.mark.parametrize(
    ("path", "param"),
    [
        ("/api/runs/1/metrics", "start_step"),
        ("/api/runs/1/metrics", "end_step"),
        ("/api/runs/1/metrics", "after_step"),
        ("/api/runs/1/stream", "after_step"),
        ("/api/metrics?runs=1", "start_step"),
        ("/api/runs", "sweep"),
    ],
)
def test_a_step_or_filter_past_the_databases_integers_is_a_422(client, path, param):
    _run(client)  # run 1 exists: the number is what is refused
    sep = "&" if "?" in path else "?"
    r = client.get(f"{path}{sep}{param}={10**20}")
    assert r.status_code == 422, (path, param, r.text)
    assert any(e["loc"][-1] == param for e in r.json()["detail"]), r.json()


@pytest.mark.parametrize("ids", [str(2**31), f"1,{10**20}", "0", "-3"])
def test_compared_run_ids_past_the_range_are_a_422(client, ids):
    r = client.get(f"/api/metrics?runs={ids}")
    assert r.status_code == 422, r.text
    assert "runs" in r.text


@pytest.mark.parametrize("header", ["²", "12x", str(10**20), "-1"])
def test_a_last_event_id_that_is_not_a_step_is_a_422(client, header):
    run = client.post(
        "/api/runs",
        json={"teacher": "demo-teacher", "student": "demo-student-s", "dataset": "demo"},
    ).json()
    r = client.get(f"/api/runs/{run['id']}/stream", headers={"Last-Event-ID": header.encode("latin-1")})
    assert r.status_code == 422, r.text
    assert "Last-Event-ID" in r.text
