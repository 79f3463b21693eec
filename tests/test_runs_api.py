"""The runs page's API: filters and sort, tags and notes, sweeps, and the checkpoints a run's
student can be inspected at. In-process (TestClient) on the embedded SQLite defaults."""

import pytest

from backend.db.models import Run
from backend.db.session import transaction
from tests.test_api import GOOD


def _run(client, **changes) -> dict:
    r = client.post("/api/runs", json={**GOOD, **changes})
    assert r.status_code == 201, r.text
    return r.json()


def _ids(client, **params) -> list[int]:
    r = client.get("/api/runs", params=params)
    assert r.status_code == 200, r.text
    return [x["id"] for x in r.json()["data"]]


def test_filter_by_status_tag_and_text_and_sort(client):
    a = _run(client, name="alpha run", tags=["baseline"], temperature=1.0)
    b = _run(client, name="beta run", tags=["baseline", "hot"], temperature=4.0)
    c = _run(client, name="gamma", temperature=2.0)
    with transaction() as s:
        s.get(Run, a["id"]).status = "succeeded"
        s.get(Run, a["id"]).latest = {"train/soft_loss": 0.5}
        s.get(Run, b["id"]).latest = {"train/soft_loss": 0.1}
    assert _ids(client) == [c["id"], b["id"], a["id"]]  # newest first
    assert _ids(client, status="succeeded") == [a["id"]]
    assert _ids(client, status="queued,succeeded") == [c["id"], b["id"], a["id"]]
    assert _ids(client, tag="baseline") == [b["id"], a["id"]]
    assert _ids(client, q="RUN") == [b["id"], a["id"]]  # case-insensitive, name
    assert _ids(client, q="hot") == [b["id"]]  # tags are searched too
    assert _ids(client, sort="temperature") == [a["id"], c["id"], b["id"]]
    assert _ids(client, sort="-temperature") == [b["id"], c["id"], a["id"]]
    # Runs without the value (no soft loss yet) come last in either direction.
    assert _ids(client, sort="soft") == [b["id"], a["id"], c["id"]]
    assert _ids(client, sort="-soft") == [a["id"], b["id"], c["id"]]
    listed = client.get("/api/runs", params={"limit": 1}).json()
    assert listed["count"] == 3 and len(listed["data"]) == 1
    assert listed["tags"] == ["baseline", "hot"]


@pytest.mark.parametrize(
    ("params", "says"),
    [({"status": "done"}, "unknown state"), ({"sort": "colour"}, "sort"), ({"sweep": 0}, "sweep")],
)
def test_bad_list_parameters_are_422(client, params, says):
    r = client.get("/api/runs", params=params)
    assert r.status_code == 422 and says in r.text, r.text


def test_tags_and_note_can_be_edited(client):
    run = _run(client, tags=["a"])
    r = client.patch(
        f"/api/runs/{run['id']}", json={"tags": ["b", "c", "b"], "note": " lr too high "}
    )
    assert r.status_code == 200, r.text
    got = client.get(f"/api/runs/{run['id']}").json()
    assert got["tags"] == ["b", "c"] and got["note"] == "lr too high"
    assert got["config"] == run["config"]  # the launched config is history: never rewritten
    assert client.patch(f"/api/runs/{run['id']}", json={"note": ""}).json()["note"] is None
    assert (
        client.patch(f"/api/runs/{run['id']}", json={"name": "renamed"}).json()["name"] == "renamed"
    )
    for body, field in [
        ({"tags": ["a,b"]}, "tags"),
        ({"tags": [""]}, "tags"),
        ({"note": "x" * 10_001}, "note"),
        ({"name": ""}, "name"),
        ({"status": "succeeded"}, "status"),
        ({"name": None}, "name"),  # absent keeps the name; null is not a name
        ({"tags": None}, "tags"),
    ]:
        r = client.patch(f"/api/runs/{run['id']}", json=body)
        assert r.status_code == 422 and field in r.json()["detail"][0]["loc"], r.text
    assert client.patch("/api/runs/999", json={"note": "x"}).status_code == 404


def test_a_sweep_queues_one_run_per_combination(client):
    grid = {"temperature": [1, 2, 4], "alpha": [0.5, 0.9], "seed": [0, 1]}
    r = client.post("/api/sweeps", json={"base": {**GOOD, "name": "grid"}, "grid": grid})
    assert r.status_code == 201, r.text
    body = r.json()
    assert len(body["runs"]) == 12 and body["sweep"]["runs"] == body["runs"]
    # Two fields vary besides the seed: no grouping (a band would mix α = 0.5 and 0.9).
    assert body["compare_url"].endswith("&group=")
    listed = client.get("/api/runs", params={"sweep": body["sweep"]["id"]}).json()
    assert listed["count"] == 12
    combos = {
        (x["config"]["temperature"], x["config"]["alpha"], x["config"]["seed"])
        for x in listed["data"]
    }
    assert combos == {(t, a, s) for t in (1, 2, 4) for a in (0.5, 0.9) for s in (0, 1)}
    sweep_id = body["sweep"]["id"]
    assert all(
        x["sweep_id"] == sweep_id and f"sweep-{sweep_id}" in x["tags"] for x in listed["data"]
    )
    assert listed["sweeps"][str(sweep_id)]["name"] == "grid"
    assert any(x["name"] == "grid · T=2 α=0.9 seed=1" for x in listed["data"])
    assert client.get(f"/api/sweeps/{sweep_id}").json()["grid"] == grid
    assert client.get("/api/sweeps/999").status_code == 404


@pytest.mark.parametrize(
    ("body", "loc", "says"),
    [
        (
            {"grid": {"temperature": [1, 0]}},
            ["body", "grid", "temperature", 1],
            "greater than or equal to 0.05",
        ),
        ({"grid": {"alpha": [0.5, 0.5]}}, ["body", "grid", "alpha"], "each value once"),
        ({"grid": {"divergence": ["kl"]}}, ["body", "grid", "divergence", 0], "forward_kl"),
        ({"grid": {"colour": [1]}}, ["body", "grid", "colour"], "Extra inputs"),
        (
            {"grid": {"seed": list(range(16)), "temperature": [1, 2, 4, 8, 16]}},
            ["body", "grid"],
            "5 temperatures × 16 seeds = 80 runs; a sweep holds at most 64",
        ),
        ({"base": {**GOOD, "teacher": "nope"}, "grid": {}}, ["body", "base", "teacher"], "nope"),
        ({"base": {**GOOD, "alpha": 2}, "grid": {}}, ["body", "base", "alpha"], "less than"),
        (
            {"base": {**GOOD, "tags": [f"t{i}" for i in range(32)]}, "grid": {"seed": [1, 2]}},
            ["body", "base", "tags"],
            "a sweep adds its own tag",
        ),
        (
            {"base": {**GOOD, "teacher_cache_k": 8}, "grid": {"divergence": ["forward_kl", "jsd"]}},
            ["body", "base", "teacher_cache_k"],
            "(with jsd)",
        ),
    ],
)
def test_a_bad_sweep_is_422_naming_the_field_and_stores_nothing(client, body, loc, says):
    r = client.post("/api/sweeps", json={"base": GOOD, **body})
    assert r.status_code == 422, r.text
    detail = r.json()["detail"]
    assert any(d["loc"] == loc and says in d["msg"] for d in detail), detail
    assert client.get("/api/runs").json()["count"] == 0


def test_checkpoints_a_student_can_be_inspected_at(client, env):
    from backend.services.catalog import run_student_dir
    from backend.settings import get_settings

    run = _run(client)
    settings = get_settings()
    folder = settings.runs_dir / str(run["id"])
    for step in (10, 20):
        (folder / "checkpoints" / f"step-{step:08d}").mkdir(parents=True)
        (folder / "checkpoints" / f"step-{step:08d}" / "config.json").write_text("{}")
    got = client.get(f"/api/runs/{run['id']}/checkpoints").json()
    assert got["steps"] == [10, 20] and got["final"] is False
    assert run_student_dir(f"run:{run['id']}@10", settings).name == "step-00000010"
    assert run_student_dir(f"run:{run['id']}", settings).name == "step-00000020"  # the latest
    assert run_student_dir(f"run:{run['id']}@15", settings) is None
    assert run_student_dir(f"run:{run['id']}@x", settings) is None
    r = client.post(
        "/api/inspect", json={"models": ["demo-teacher", f"run:{run['id']}@15"], "prompt": "the"}
    )
    assert r.status_code == 422 and "has no saved student" in r.text
    for odd in (f"run:{run['id']}@²", "run:1@" + "9" * 5000, "run:" + "1" * 13):
        r = client.post("/api/inspect", json={"models": ["demo-teacher", odd], "prompt": "the"})
        assert r.status_code == 422, (odd[:20], r.text[:200])


def test_a_broker_failure_part_way_through_a_sweep_leaves_no_run_queued(client, monkeypatch):
    from backend.services import queueing

    sent = []

    def flaky(run_id):
        if len(sent) == 2:
            raise ConnectionError("broker gone")
        sent.append(run_id)

    monkeypatch.setattr(queueing, "enqueue_training", flaky)
    r = client.post("/api/sweeps", json={"base": GOOD, "grid": {"seed": [0, 1, 2, 3]}})
    assert r.status_code == 503 and "broker gone" in r.text, r.text
    runs = {x["id"]: x for x in client.get("/api/runs").json()["data"]}
    assert sorted(x["status"] for x in runs.values()) == ["failed", "failed", "queued", "queued"]
    assert all("could not queue: broker gone" in x["error"] for x in runs.values() if x["error"])
    assert sorted(sent) == sorted(i for i, x in runs.items() if x["status"] == "queued")
    r = client.post("/api/runs", json=GOOD)  # a single run: the same
    assert r.status_code == 503 and "were stored but could not be queued" in r.text


UNNAMED = {k: v for k, v in GOOD.items() if k != "name"}
# GOOD differs from the demo preset in its steps, batch size and sequence length.
SHORT = "steps=20 batch=4 seq_len=32"


@pytest.mark.parametrize(
    ("changes", "name"),
    [
        ({}, f"T=2 α=0.5 demo-student-s {SHORT}"),
        ({"name": "  "}, f"T=2 α=0.5 demo-student-s {SHORT}"),
        ({"name": None}, f"T=2 α=0.5 demo-student-s {SHORT}"),
        ({"temperature": 4.0, "alpha": 0.9}, f"T=4 α=0.9 demo-student-s {SHORT}"),
        ({"alpha": 0.0}, f"hard labels demo-student-s {SHORT}"),
        (
            {"teacher": "demo-teacher-memorised", "divergence": "jsd", "beta": 0.2, "seed": 7},
            f"T=2 α=0.5 demo-student-s teacher=demo-teacher-memorised divergence=jsd β=0.2 "
            f"{SHORT} seed=7",
        ),
        ({"name": "my run"}, "my run"),  # an explicit name is kept
    ],
)
def test_a_run_without_a_name_is_named_from_its_config(client, changes, name):
    r = client.post("/api/runs", json={**UNNAMED, **changes})
    assert r.status_code == 201, r.text
    run = r.json()
    assert run["name"] == name and run["config"]["name"] == name  # the stored config agrees
    assert client.get(f"/api/runs/{run['id']}").json()["name"] == name


def test_a_name_over_200_characters_is_still_refused(client):
    r = client.post("/api/runs", json={**UNNAMED, "name": "x" * 201})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "name"], r.text


def test_an_unnamed_sweep_names_each_run_by_its_own_values(client):
    grid = {"temperature": [1, 4], "alpha": [0, 0.9], "seed": [0, 1]}
    r = client.post("/api/sweeps", json={"base": UNNAMED, "grid": grid})
    assert r.status_code == 201, r.text
    body = r.json()
    # The sweep is named by what its runs share (T, α and seed vary).
    assert body["sweep"]["name"] == f"demo-student-s {SHORT}"
    runs = client.get("/api/runs", params={"sweep": body["sweep"]["id"]}).json()["data"]
    names = sorted(x["name"] for x in runs)
    assert names == sorted(
        [
            f"T=1 α=0.9 demo-student-s {SHORT}",
            f"T=1 α=0.9 demo-student-s {SHORT} seed=1",
            f"T=4 α=0.9 demo-student-s {SHORT}",
            f"T=4 α=0.9 demo-student-s {SHORT} seed=1",
            f"hard labels demo-student-s T=1 {SHORT}",
            f"hard labels demo-student-s T=1 {SHORT} seed=1",
            f"hard labels demo-student-s T=4 {SHORT}",
            f"hard labels demo-student-s T=4 {SHORT} seed=1",
        ]
    )
    assert all(x["config"]["name"] == x["name"] for x in runs)


def test_the_presets_carry_no_name(client):
    presets = client.get("/api/presets").json()
    assert presets and all(p["config"]["name"] is None for p in presets)
