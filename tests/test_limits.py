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
    r = client.get(
        f"/api/runs/{run['id']}/stream", headers={"Last-Event-ID": header.encode("latin-1")}
    )
    assert r.status_code == 422, r.text
    assert "Last-Event-ID" in r.text


# Names and free text (#11): a name part longer than the file system takes, a NUL byte or a
# lone surrogate is a 422 naming the field, on SQLite and on PostgreSQL.

GOOD = {"teacher": "demo-teacher", "student": "demo-student-s", "dataset": "demo"}


@pytest.fixture(params=["sqlite", "postgresql"])
def any_db_client(request, env, monkeypatch):
    """`client` on the test's SQLite, or on the session's PostgreSQL database; server errors
    come back as 500s (not raised), as a user would see them."""
    from fastapi.testclient import TestClient

    from backend.main import create_app
    from tests.conftest import _clear_caches

    if request.param == "postgresql":
        monkeypatch.setenv("DISTILLSCOPE_DATABASE_URL", request.getfixturevalue("postgres_url"))
        _clear_caches()
    with TestClient(create_app(), raise_server_exceptions=False) as c:
        yield c


def _raw(body: dict) -> dict:
    """A JSON body sent as it is written (httpx cannot encode a lone surrogate itself)."""
    import json

    return {"content": json.dumps(body), "headers": {"content-type": "application/json"}}


def _names_the_field(r, loc: list) -> None:
    assert r.status_code == 422, (loc, r.status_code, r.text)
    assert any(e["loc"][: len(loc)] == loc for e in r.json()["detail"]), (loc, r.json())


LONG_NAMES = ["x" * 300, "é" * 200, "org/" + "y" * 256]


@pytest.mark.parametrize("name", LONG_NAMES)
@pytest.mark.parametrize("field", ["teacher", "student", "dataset"])
def test_a_name_longer_than_the_file_system_takes_is_a_422(client, field, name):
    r = client.post("/api/runs", json={**GOOD, field: name})
    _names_the_field(r, ["body", field])
    assert "255 bytes" in r.text
    sweep = {"base": {**GOOD, field: name}, "grid": {"seed": [1, 2]}}
    _names_the_field(client.post("/api/sweeps", json=sweep), ["body", "base", field])


@pytest.mark.parametrize("name", LONG_NAMES)
def test_an_inspected_model_name_longer_than_the_file_system_takes_is_a_422(client, name):
    r = client.post("/api/inspect", json={"models": ["demo-teacher", name], "prompt": "the"})
    _names_the_field(r, ["body", "models", 1])


def test_an_os_error_in_resolving_a_name_is_a_catalog_error(env):
    """Whatever reaches the catalogue without the schema (the worker, the cli)."""
    from backend.services import catalog
    from backend.settings import get_settings

    for resolve in (catalog.resolve_model, catalog.resolve_dataset):
        for name in ("x" * 300, "x" * 300 + ".txt", "é" * 200):
            with pytest.raises(catalog.CatalogError, match="File name too long"):
                resolve(name, get_settings())


BAD_TEXT = [
    pytest.param("a\x00b", id="nul"),
    # Its 422 echoes the value in `input`, escaped (UTF-8 cannot encode a lone surrogate).
    pytest.param("a\ud800b", id="surrogate"),
]
TEXT_FIELDS = [  # (method, path, body with the bad text at {}, location of the error)
    ("post", "/api/runs", lambda x: {**GOOD, "name": x}, ["body", "name"]),
    ("post", "/api/runs", lambda x: {**GOOD, "tags": ["ok", x]}, ["body", "tags", 1]),
    ("post", "/api/runs", lambda x: {**GOOD, "teacher": x}, ["body", "teacher"]),
    ("post", "/api/runs", lambda x: {**GOOD, "dataset": x}, ["body", "dataset"]),
    ("patch", "/api/runs/{}", lambda x: {"name": x}, ["body", "name"]),
    ("patch", "/api/runs/{}", lambda x: {"note": x}, ["body", "note"]),
    ("patch", "/api/runs/{}", lambda x: {"tags": [x]}, ["body", "tags", 0]),
    (
        "post",
        "/api/sweeps",
        lambda x: {"base": {**GOOD, "name": x}, "grid": {"seed": [1, 2]}},
        ["body", "base", "name"],
    ),
    ("post", "/api/inspect", lambda x: {"models": [x], "prompt": "the"}, ["body", "models", 0]),
    (
        "post",
        "/api/inspect",
        lambda x: {"models": ["demo-teacher"], "prompt": x},
        ["body", "prompt"],
    ),
]


@pytest.mark.parametrize("bad", BAD_TEXT)
@pytest.mark.parametrize(("method", "path", "body", "loc"), TEXT_FIELDS)
def test_a_nul_or_a_lone_surrogate_in_free_text_is_a_422(
    any_db_client, method, path, body, loc, bad
):
    client = any_db_client
    run = client.post("/api/runs", json=GOOD).json()  # to PATCH (PostgreSQL's may hold more)
    count = client.get("/api/runs").json()["count"]
    r = getattr(client, method)(path.format(run["id"]), **_raw(body(bad)))
    _names_the_field(r, loc)
    assert ("NUL" if "\x00" in bad else "surrogate") in r.text
    # Nothing was stored: the run unchanged, no other run.
    assert client.get(f"/api/runs/{run['id']}").json() == run
    assert client.get("/api/runs").json()["count"] == count


@pytest.mark.parametrize("param", ["tag", "q"])
@pytest.mark.parametrize("bad", ["a%00b", "%ED%A0%80"], ids=["nul", "surrogate-bytes"])
def test_a_nul_in_the_runs_filters_is_a_422_or_matches_nothing(any_db_client, param, bad):
    r = any_db_client.get(f"/api/runs?{param}={bad}")
    assert r.status_code in (200, 422), r.text
    if r.status_code == 422:
        assert param in r.text
    else:
        assert r.json()["count"] == 0


def test_an_inspected_position_past_the_prompt_is_refused_with_its_length(tiny_kit):
    """It was clamped to the prompt's end without a word (#11). Through the api: test_fuzz.py."""
    from backend.schemas import InspectRequest
    from backend.settings import Settings
    from worker.inspect import inspect_prompt

    settings = Settings(data_dir=tiny_kit)
    req = InspectRequest(models=["demo-teacher"], prompt="the lazy", position=1_000_000)
    with pytest.raises(
        ValueError, match=r"^position: 1000000 is past .* has 3 tokens \(positions 0 to 2,"
    ):
        inspect_prompt(req, settings)  # <bos> the lazy
    assert inspect_prompt(req.model_copy(update={"position": 2}), settings)["position"] == 2
    long = req.model_copy(update={"prompt": "the lazy cat " * 20, "max_tokens": 10})
    with pytest.raises(
        ValueError, match=r"has 61 tokens, cut to the first 10 here \(positions 0 to 9"
    ):
        inspect_prompt(long.model_copy(update={"position": 10}), settings)
