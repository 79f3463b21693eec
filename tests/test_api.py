"""The HTTP API in-process (TestClient) on the embedded SQLite defaults: validation, reads,
metrics and the SSE stream. No worker here; the integration tests run real ones."""

import json
import re
import subprocess
import sys
import time

import pytest

from backend.db.models import Run, RunStatus
from backend.db.session import transaction
from backend.services.metrics import point_row, write_points

GOOD = {
    "name": "demo",
    "teacher": "demo-teacher",
    "student": "demo-student-s",
    "dataset": "demo",
    "temperature": 2.0,
    "alpha": 0.5,
    "max_steps": 20,
    "batch_size": 4,
    "seq_len": 32,
    "learning_rate": 3e-3,
    "eval_interval": 10,
    "seed": 0,
}


def test_create_returns_201_with_the_run(client):
    r = client.post("/api/runs", json=GOOD)
    assert r.status_code == 201, r.text
    run = r.json()
    assert run["status"] == "queued" and run["total_steps"] == 20 and run["step"] == 0
    assert run["config"]["temperature"] == 2.0 and run["config"]["divergence"] == "forward_kl"
    got = client.get(f"/api/runs/{run['id']}").json()
    assert got["id"] == run["id"] and got["config"] == run["config"]
    listed = client.get("/api/runs").json()
    assert listed["count"] == 1 and listed["data"][0]["id"] == run["id"]


@pytest.mark.parametrize(
    ("field", "value", "says"),
    [
        ("temperature", 0, "greater than or equal to 0.05"),
        ("temperature", -1.5, "greater than or equal to 0.05"),
        ("alpha", 1.5, "less than or equal to 1"),
        ("alpha", -0.1, "greater than or equal to 0"),
        ("max_steps", 0, "greater than or equal to 1"),
        ("batch_size", -4, "greater than or equal to 1"),
        ("seq_len", 10**6, "less than or equal to"),
        ("learning_rate", 0, "greater than 0"),
        ("divergence", "kl", "forward_kl"),
        ("teacher", "no-such-model", "unknown model 'no-such-model'"),
        ("student", "../../etc", "'..' is not allowed"),
        ("student", "/etc", "outside the configured roots"),
        ("dataset", "no-such-data", "unknown dataset 'no-such-data'"),
        ("seq_len", 1000, "exceeds the teacher's context of 128"),
        ("grad_accum_steps", 3, "must divide batch_size"),
        ("temperature", "hot", "valid number"),
        ("surprise", 1, "Extra inputs are not permitted"),
    ],
)
def test_bad_input_is_422_naming_the_field(client, field, value, says):
    r = client.post("/api/runs", json={**GOOD, field: value})
    assert r.status_code == 422, r.text
    errors = r.json()["detail"]
    assert any(e["loc"][-1] == field and says in e["msg"] for e in errors), errors
    assert client.get("/api/runs").json()["count"] == 0  # nothing stored


def test_missing_field_and_non_finite_value(client):
    body = dict(GOOD)
    del body["teacher"]
    r = client.post("/api/runs", json=body)
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "teacher"]
    raw = json.dumps({**GOOD, "temperature": float("nan")})  # Python writes the NaN token
    r = client.post("/api/runs", content=raw, headers={"content-type": "application/json"})
    assert r.status_code == 422
    assert any(e["loc"][-1] == "temperature" for e in r.json()["detail"])


def _copy_model(tiny_kit, tmp_path, name: str):
    import shutil

    dst = tmp_path / "data" / "models" / name
    shutil.copytree(tiny_kit / "models" / "demo-student-s", dst)
    return dst


def _set_vocab_size(folder, delta: int) -> None:
    cfg = json.loads((folder / "config.json").read_text())
    cfg["vocab_size"] += delta
    (folder / "config.json").write_text(json.dumps(cfg))


def test_tokenizer_compatibility_is_checked_before_queueing(client, tiny_kit, tmp_path):
    # Identical vocabularies pass (GOOD). A head padded beyond the tokenizer passes too: the
    # logits are sliced to the shared tokenizer vocabulary.
    _set_vocab_size(_copy_model(tiny_kit, tmp_path, "padded"), 64)
    assert client.post("/api/runs", json={**GOOD, "student": "padded"}).status_code == 201
    # A different tokenizer is refused with the reason.
    other = _copy_model(tiny_kit, tmp_path, "other-tokenizer")
    tok = json.loads((other / "tokenizer.json").read_text())
    vocab = tok["model"]["vocab"]
    vocab["cat"], vocab["dog"] = vocab["dog"], vocab["cat"]
    (other / "tokenizer.json").write_text(json.dumps(tok))
    r = client.post("/api/runs", json={**GOOD, "student": "other-tokenizer"})
    assert r.status_code == 422
    err = r.json()["detail"][0]
    assert err["loc"] == ["body", "student"] and "share one vocabulary" in err["msg"]
    assert "'cat' is id" in err["msg"] or "'dog' is id" in err["msg"]
    # A head smaller than its tokenizer cannot be distilled either.
    _set_vocab_size(_copy_model(tiny_kit, tmp_path, "short-head"), -5)
    r = client.post("/api/runs", json={**GOOD, "student": "short-head"})
    assert r.status_code == 422 and "logits but its tokenizer has" in r.json()["detail"][0]["msg"]
    assert client.get("/api/runs").json()["count"] == 1  # only the padded run was stored


def test_unknown_run_is_404(client):
    assert client.get("/api/runs/999").status_code == 404
    assert client.get("/api/runs/999/metrics").status_code == 404
    assert client.get("/api/runs/999/stream").status_code == 404


def _stored_run(status: str = RunStatus.RUNNING) -> int:
    with transaction() as s:
        run = Run(name="r", tags=[], config=GOOD, status=status, step=0, total_steps=3, latest={})
        s.add(run)
        s.flush()
        return run.id


def test_metrics_by_key_and_idempotent_upsert(client):
    run_id = _stored_run()
    rows = [
        point_row(run_id, k, step, v)
        for step in (1, 2, 3)
        for k, v in (("train/soft_loss", step * 1.0), ("train/hard_loss", 10.0 + step))
    ]
    with transaction() as s:
        write_points(s, rows)
    with transaction() as s:  # writing the same points again replaces, never duplicates
        write_points(
            s,
            [
                point_row(run_id, "train/soft_loss", 2, 42.0),
                point_row(run_id, "train/hard_loss", 3, float("nan")),
            ],
        )
    r = client.get(
        f"/api/runs/{run_id}/metrics", params={"keys": "train/soft_loss,train/hard_loss"}
    )
    m = r.json()["metrics"]
    assert [(p["step"], p["value"]) for p in m["train/soft_loss"]] == [
        (1, 1.0),
        (2, 42.0),
        (3, 3.0),
    ]
    hard = m["train/hard_loss"]
    assert [p["step"] for p in hard] == [1, 2, 3]
    assert hard[2]["value"] is None and hard[2]["flag"] == "nan"  # stored honestly
    r = client.get(
        f"/api/runs/{run_id}/metrics", params=[("keys", "train/soft_loss"), ("after_step", 1)]
    )
    assert [p["step"] for p in r.json()["metrics"]["train/soft_loss"]] == [2, 3]


def _parse_sse(text: str) -> list[dict]:
    events = []
    for block in text.strip().split("\n\n"):
        ev = {}
        for line in block.splitlines():
            if line.startswith(":"):
                continue
            k, _, v = line.partition(": ")
            ev[k] = v
        if ev:
            events.append(ev)
    return events


def test_stream_sends_points_status_and_done(client):
    run_id = _stored_run(RunStatus.SUCCEEDED)
    with transaction() as s:
        write_points(s, [point_row(run_id, "train/soft_loss", st, 1.0 / st) for st in (1, 2, 3)])
    r = client.get(f"/api/runs/{run_id}/stream")
    assert r.headers["content-type"].startswith("text/event-stream")
    events = _parse_sse(r.text)
    kinds = [e.get("event") for e in events]
    assert kinds[0] == "points" and kinds[-1] == "done" and "status" in kinds
    pts = json.loads(events[0]["data"])["points"]
    assert [p["step"] for p in pts] == [1, 2, 3] and events[0]["id"] == "3"
    # A reconnecting client resumes after the last event id it saw.
    r = client.get(f"/api/runs/{run_id}/stream", headers={"Last-Event-ID": "2"})
    pts = json.loads(_parse_sse(r.text)[0]["data"])["points"]
    assert [p["step"] for p in pts] == [3]


def test_catalog_and_presets(client):
    models = {m["name"]: m for m in client.get("/api/models").json()}
    assert {"demo-teacher", "demo-student-s", "demo-teacher-finetuned"} <= set(models)
    # How each kit model was made, and what the fine-tuned teacher keeps of the truth.
    ft = models["demo-teacher-finetuned"]
    assert ft["role"] == "teacher" and "argmax labels" in ft["description"]
    assert 0 <= ft["profile"]["confident_share"] <= 1 and ft["profile"]["best_t"] > 0
    assert (
        models["demo-student-s"]["role"] == "student"
        and models["demo-student-s"]["profile"] is None
    )
    assert "demo" in {d["name"] for d in client.get("/api/datasets").json()}
    presets = {p["id"]: p for p in client.get("/api/presets").json()}
    assert list(presets)[0] == "demo" and presets["demo"]["config"]["teacher"] == "demo-teacher"
    assert presets["demo"]["available"] and presets["demo"]["hint"] is None
    # The real kit is not prepared here: its preset says so and says what to run.
    real = presets["smollm2-cpu"]
    assert not real["available"] and "make real" in real["hint"]
    assert real["config"]["teacher"] == "smollm2-135m-instruct"


def test_frontend_and_local_plotly_are_served(client):
    assert "Launch a run" in client.get("/").text
    assert "chart-losses" in client.get("/runs/1").text
    js = client.get("/static/plotly.min.js")
    assert js.status_code == 200 and len(js.content) > 1_000_000  # the real bundle, no CDN
    # Every script a page names is served from here (the compare and inspect pages use the
    # vendored cartesian bundle of the same plotly.js version as the Python package).
    from plotly.offline import get_plotlyjs_version

    for page in ("/", "/runs/1", "/compare", "/inspect"):
        for src in re.findall(r'<script src="([^"]+)"', client.get(page).text):
            assert src.startswith("/static/") and client.get(src).status_code == 200, (page, src)
    assert f"cartesian-{get_plotlyjs_version()}" in client.get("/compare").text


def test_api_process_never_imports_torch():
    code = (
        "import sys; import backend.main, backend.cli, backend.queue; "
        "from fastapi.testclient import TestClient; "
        "print('torch' in sys.modules, 'transformers' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


def test_dataset_files_are_accepted_and_checked(client, tmp_path):
    root = tmp_path / "data" / "datasets"
    root.mkdir(parents=True, exist_ok=True)
    (root / "qa.jsonl").write_text('{"prompt": "the lazy", "completion": "cat naps ."}\n')
    (root / "notes.txt").write_text("the lazy cat naps .\n")
    (root / "bad.jsonl").write_text('{"question": "?"}\n')
    for name in ("qa.jsonl", "notes.txt"):
        assert client.post("/api/runs", json={**GOOD, "dataset": name}).status_code == 201
    r = client.post("/api/runs", json={**GOOD, "dataset": "bad.jsonl"})
    assert r.status_code == 422
    err = r.json()["detail"][0]
    assert err["loc"] == ["body", "dataset"] and '"prompt" and "completion"' in err["msg"]
    assert {"qa.jsonl", "notes.txt"} <= {d["name"] for d in client.get("/api/datasets").json()}


def test_teacher_cache_limits(client):
    r = client.post("/api/runs", json={**GOOD, "teacher_cache_k": 8, "divergence": "jsd"})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"][-1] == "teacher_cache_k"
    r = client.post("/api/runs", json={**GOOD, "teacher_cache_k": 4000})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"][-1] == "teacher_cache_k"
    assert client.post("/api/runs", json={**GOOD, "teacher_cache_k": 16}).status_code == 201


def test_hub_id_offline_is_a_clear_error_naming_the_model(client, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    r = client.post("/api/runs", json={**GOOD, "teacher": "some-org/some-model"})
    assert r.status_code == 422
    err = r.json()["detail"][0]
    assert err["loc"] == ["body", "teacher"]
    assert "'some-org/some-model'" in err["msg"] and "offline" in err["msg"]


def test_hub_dataset_id_without_datasets_or_network_is_a_clear_error(client, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    r = client.post("/api/runs", json={**GOOD, "dataset": "some-org/some-data"})
    assert r.status_code == 422
    err = r.json()["detail"][0]
    assert err["loc"] == ["body", "dataset"] and "'some-org/some-data'" in err["msg"]
    assert "datasets" in err["msg"] or "offline" in err["msg"]


def test_cancel_and_delete(client, tmp_path):
    run = client.post("/api/runs", json=GOOD).json()
    assert client.delete(f"/api/runs/{run['id']}").status_code == 409  # queued: cancel first
    r = client.post(f"/api/runs/{run['id']}/cancel")
    assert r.status_code == 200 and r.json()["status"] == "cancelled"
    assert client.post(f"/api/runs/{run['id']}/cancel").status_code == 409  # already ended
    with transaction() as s:
        write_points(s, [point_row(run["id"], "train/soft_loss", 1, 1.0)])
    artifacts = tmp_path / "data" / "runs" / str(run["id"]) / "final"
    artifacts.mkdir(parents=True)
    assert client.delete(f"/api/runs/{run['id']}").status_code == 204
    assert client.get(f"/api/runs/{run['id']}").status_code == 404
    assert not artifacts.parent.exists()
    with transaction() as s:
        from backend.db.models import MetricPoint

        assert s.query(MetricPoint).filter_by(run_id=run["id"]).count() == 0
    running = _stored_run(RunStatus.RUNNING)
    r = client.post(f"/api/runs/{running}/cancel")
    assert r.status_code == 200 and r.json()["status"] == "running"  # stops at its next step
    with transaction() as s:
        assert s.get(Run, running).cancel_requested


def test_lost_heartbeat_is_detected_and_the_run_queued_again(env, monkeypatch):
    """The api's sweeper, not the broker, brings back a run whose worker died: the embedded
    SQLite broker never redelivers a task its dead worker held."""
    from datetime import timedelta

    from fastapi.testclient import TestClient

    from backend.db.models import utcnow
    from backend.main import create_app
    from tests.conftest import _clear_caches

    monkeypatch.setenv("DISTILLSCOPE_HEARTBEAT_TIMEOUT_S", "2")
    _clear_caches()
    with TestClient(create_app()) as c:
        # Each run with its heartbeat in one transaction: the sweeper is already running, and
        # a running run without a heartbeat is one it takes for lost.
        with transaction() as s:
            runs = [
                Run(name=name, tags=[], config=GOOD, status=RunStatus.RUNNING, step=0,
                    total_steps=3, latest={}, heartbeat_at=utcnow() + timedelta(seconds=ago),
                    worker_host="gpu-7:123")
                for name, ago in (("stale", -30), ("fresh", 30))
            ]  # fmt: skip
            s.add_all(runs)
            s.flush()
            stale, fresh = (r.id for r in runs)
        deadline = time.monotonic() + 10
        while c.get(f"/api/runs/{stale}").json()["status"] != "queued":
            assert time.monotonic() < deadline, "the sweeper never queued the run again"
            time.sleep(0.2)
        again = c.get(f"/api/runs/{stale}").json()
        assert "worker gpu-7:123 stopped (no heartbeat for more than 2 s)" in again["error"]
        assert c.get(f"/api/runs/{fresh}").json()["status"] == "running"


def test_api_token_guards_every_mutating_endpoint(env, monkeypatch):
    from fastapi.testclient import TestClient

    from backend.main import create_app
    from tests.conftest import _clear_caches

    monkeypatch.setenv("DISTILLSCOPE_API_TOKEN", "s3cret")
    _clear_caches()
    with TestClient(create_app()) as c:
        assert c.post("/api/runs", json=GOOD).status_code == 401
        bad = {"Authorization": "Bearer wrong"}
        assert c.post("/api/runs", json=GOOD, headers=bad).status_code == 401
        ok = {"Authorization": "Bearer s3cret"}
        run = c.post("/api/runs", json=GOOD, headers=ok).json()
        assert c.post(f"/api/runs/{run['id']}/cancel").status_code == 401
        assert c.post(f"/api/runs/{run['id']}/cancel", headers=ok).status_code == 200
        assert c.delete(f"/api/runs/{run['id']}").status_code == 401
        assert c.patch(f"/api/runs/{run['id']}", json={"note": "x"}).status_code == 401
        assert c.patch(f"/api/runs/{run['id']}", json={"note": "x"}, headers=ok).status_code == 200
        assert c.delete(f"/api/runs/{run['id']}", headers=ok).status_code == 204
        sweep = {"base": GOOD, "grid": {"seed": [1, 2]}}
        assert c.post("/api/sweeps", json=sweep).status_code == 401
        assert c.post("/api/sweeps", json=sweep, headers=ok).status_code == 201
        assert c.get("/api/runs").status_code == 200  # reads stay open


def test_a_change_from_another_origin_is_refused(client):
    """A page elsewhere can make a browser send a body-less POST with no preflight: refused
    when the browser names another origin; the dashboard's own pages and non-browser clients
    (no Origin) pass."""
    run = client.post("/api/runs", json=GOOD).json()
    evil = {"Origin": "http://evil.example"}
    for method, path in [
        ("post", f"/api/runs/{run['id']}/cancel"),
        ("post", "/api/experiments/temperature"),
        ("delete", f"/api/runs/{run['id']}"),
        ("post", "/api/runs"),
    ]:
        r = getattr(client, method)(path, headers=evil)
        assert r.status_code == 403, (path, r.text)
        assert "another origin (http://evil.example)" in r.json()["detail"]
    cross = {"Sec-Fetch-Site": "cross-site"}
    assert client.post(f"/api/runs/{run['id']}/cancel", headers=cross).status_code == 403
    assert (
        client.post(f"/api/runs/{run['id']}/cancel", headers={"Origin": "null"}).status_code == 403
    )
    assert client.get("/api/runs", headers=evil).status_code == 200  # reads stay open
    own = {"Origin": "http://testserver", "Sec-Fetch-Site": "same-origin"}
    assert client.post(f"/api/runs/{run['id']}/cancel", headers=own).status_code == 200


def test_no_more_runs_wait_than_the_limit(env, monkeypatch):
    """A client looping on the experiment endpoint cannot queue thousands of runs: past
    DISTILLSCOPE_MAX_WAITING_RUNS unfinished runs a request is a 429 and stores nothing."""
    from fastapi.testclient import TestClient

    from backend.main import create_app
    from tests.conftest import _clear_caches

    monkeypatch.setenv("DISTILLSCOPE_MAX_WAITING_RUNS", "3")
    _clear_caches()
    with TestClient(create_app()) as c:
        first = [c.post("/api/runs", json=GOOD) for _ in range(3)]
        assert [r.status_code for r in first] == [201, 201, 201]
        r = c.post("/api/runs", json=GOOD)
        assert r.status_code == 429 and r.headers["retry-after"]
        assert (
            "3 runs are queued or running and this request adds 1; at most 3" in r.json()["detail"]
        )
        r = c.post("/api/sweeps", json={"base": GOOD, "grid": {"seed": [1, 2]}})
        assert r.status_code == 429
        assert c.post("/api/experiments/temperature").status_code == 429
        assert c.get("/api/runs").json()["count"] == 3  # nothing stored by the refused ones
        c.post(f"/api/runs/{first[0].json()['id']}/cancel")
        assert c.post("/api/runs", json=GOOD).status_code == 201  # room again


def test_the_live_stream_goes_on_through_lost(client):
    """`lost` is not an end: the run is queued again, so the stream must not send `done`."""
    import threading

    run_id = _stored_run(RunStatus.LOST)
    lost_sent = threading.Event()

    def finish_later():  # once the stream has sent `lost`, never before
        if lost_sent.wait(timeout=60):
            with transaction() as s:
                s.get(Run, run_id).status = RunStatus.SUCCEEDED

    t = threading.Thread(target=finish_later)
    t.start()
    events = []
    with client.stream("GET", f"/api/runs/{run_id}/stream") as r:
        for line in r.iter_lines():
            if line.startswith("event:"):
                events.append(line.split(":", 1)[1].strip())
            if line.startswith("data:") and events:
                events[-1] += " " + line.split(":", 1)[1].strip()
                lost_sent.set()
    t.join()
    assert [e.split()[0] for e in events] == ["status", "status", "done"], events
    assert '"lost"' in events[0] and '"succeeded"' in events[1]


def test_a_stream_resumed_past_the_end_of_an_ended_run_says_done(client):
    run_id = _stored_run(RunStatus.SUCCEEDED)
    for how in ({"params": {"after_step": 10**6}}, {"headers": {"Last-Event-ID": "999999"}}):
        with client.stream("GET", f"/api/runs/{run_id}/stream", **how) as r:
            body = "".join(r.iter_text())
        assert "event: done" in body, body


def test_cors_is_closed_by_default(client):
    r = client.options(
        "/api/runs",
        headers={"Origin": "http://evil.example", "Access-Control-Request-Method": "POST"},
    )
    assert "access-control-allow-origin" not in {k.lower() for k in r.headers}
    r = client.get("/api/runs", headers={"Origin": "http://evil.example"})
    assert "access-control-allow-origin" not in {k.lower() for k in r.headers}


def test_symlink_escaping_the_model_root_is_refused(client, tiny_kit, tmp_path):
    import shutil

    outside = tmp_path / "outside" / "model"
    shutil.copytree(tiny_kit / "models" / "demo-student-s", outside)
    (tmp_path / "data" / "models").mkdir(parents=True, exist_ok=True)
    (tmp_path / "data" / "models" / "escape").symlink_to(outside)
    r = client.post("/api/runs", json={**GOOD, "student": "escape"})
    assert r.status_code == 422
    assert "outside the configured roots" in r.json()["detail"][0]["msg"]


def _numeric_bounds():
    """Every numeric bound declared on RunConfig: (field, a value just outside it)."""
    from annotated_types import Ge, Gt, Le, Lt

    from backend.schemas import RunConfig

    cases = []
    for name, field in RunConfig.model_fields.items():
        for m in field.metadata:
            if isinstance(m, Gt):
                cases.append((name, m.gt))
            elif isinstance(m, Ge):
                cases.append((name, m.ge - 1 if isinstance(m.ge, int) else m.ge - 1e-3))
            elif isinstance(m, Lt):
                cases.append((name, m.lt))
            elif isinstance(m, Le):
                cases.append((name, m.le + 1 if isinstance(m.le, int) else m.le + 1e-3))
    return cases


@pytest.mark.parametrize(("field", "value"), _numeric_bounds())
def test_every_run_limit_is_a_422_naming_its_field(client, field, value):
    r = client.post("/api/runs", json={**GOOD, field: value})
    assert r.status_code == 422, (field, value, r.text)
    assert any(e["loc"][-1] == field for e in r.json()["detail"]), r.json()


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("models", []),
        ("models", ["a", "b", "c", "d", "e"]),
        ("prompt", ""),
        ("prompt", "x" * 4001),
        ("temperatures", []),
        ("temperatures", [1.0] * 17),
        ("temperatures", [0]),
        ("temperatures", [101]),
        ("k", 0),
        ("k", 101),
        ("position", -1),
        ("max_tokens", 0),
        ("max_tokens", 1025),
    ],
)
def test_every_inspect_limit_is_a_422_naming_its_field(client, field, value):
    body = {"models": ["demo-teacher"], "prompt": "the lazy", field: value}
    r = client.post("/api/inspect", json=body)
    assert r.status_code == 422, r.text
    assert any(field in e["loc"] for e in r.json()["detail"]), r.json()


def test_the_built_in_experiment_takes_a_shorter_budget(client):
    r = client.post("/api/experiments/temperature", json={"max_steps": 30})
    assert r.status_code == 201, r.text
    runs = client.get("/api/runs", params={"limit": 100}).json()["data"]
    assert len(runs) == 30
    assert {(x["config"]["max_steps"], x["config"]["eval_interval"]) for x in runs} == {(30, 10)}
    for bad in ({"max_steps": 5}, {"max_steps": "many"}, {"steps": 30}):
        r = client.post("/api/experiments/temperature", json=bad)
        assert r.status_code == 422, r.text
        assert r.json()["detail"][0]["loc"][-1] in ("max_steps", "steps"), r.json()


def test_the_built_in_experiment_queues_its_30_runs(client):
    r = client.post("/api/experiments/temperature")
    assert r.status_code == 201, r.text
    body = r.json()
    assert len(body["runs"]) == 30 and body["compare_url"].startswith("/compare?runs=")
    runs = client.get("/api/runs", params={"limit": 100}).json()["data"]
    models = {m["name"]: m for m in client.get("/api/models").json()}
    vocab = models["demo-teacher"]["vocab_size"]
    names = sorted({r["name"] for r in runs})
    assert names == [
        "calibrated teacher, T=1",
        "calibrated teacher, T=2",
        "calibrated teacher, T=4",
        "fine-tuned (peaked) teacher, T=1",
        "fine-tuned (peaked) teacher, T=2",
        "fine-tuned (peaked) teacher, T=4",
        "hard labels only",
        "memorised teacher, T=1",
        "memorised teacher, T=2",
        "memorised teacher, T=4",
    ]
    for run in runs:
        c = run["config"]
        assert c["dataset"] == "demo-small" and c["student"] == "demo-student-s"
        assert run["tags"] == [body["tag"]] and c["seed"] in (0, 1, 2)
        assert c["alpha"] == (0.0 if run["name"].startswith("hard") else 0.9)
        assert c["teacher_cache_k"] == vocab - 1  # the whole vocabulary but the tail: exact


def test_the_real_kit_experiment_says_how_to_prepare_the_kit_when_missing(client):
    r = client.post("/api/experiments/smollm2")
    assert r.status_code == 409, r.text
    assert "make real" in r.json()["detail"] and "smollm2-135m-instruct" in r.json()["detail"]
    assert client.get("/api/runs").json()["count"] == 0  # nothing stored


def test_the_real_kit_experiment_runs_hard_labels_and_three_temperatures():
    from backend.services.experiment import llm_experiment_configs

    configs = llm_experiment_configs(tag="t", max_steps=12)
    assert [(c.name, c.alpha, c.temperature) for c in configs] == [
        ("SmolLM2, hard labels only", 0.0, 2.0),
        ("SmolLM2, T=1", 0.9, 1.0),
        ("SmolLM2, T=2", 0.9, 2.0),
        ("SmolLM2, T=4", 0.9, 4.0),
    ]
    assert {(c.max_steps, c.eval_interval, c.student) for c in configs} == {
        (12, 4, "smollm2-student-l10")
    }


def test_a_broker_that_hangs_delays_start_up_by_seconds_not_for_good(env, monkeypatch):
    """The first lost-run sweep runs before the api serves; a broker that does not answer
    (celery retries for about 20 s per task) must not keep the api from starting."""
    import threading

    from fastapi.testclient import TestClient

    from backend import main

    release, sent = threading.Event(), []

    def hung(run_id: int) -> None:
        sent.append(run_id)
        release.wait(60)

    monkeypatch.setattr(main, "enqueue_training", hung)
    from backend.db.migrate import upgrade

    upgrade()  # the tables, for the run stored before the api starts
    lost = _stored_run(RunStatus.LOST)
    t0 = time.monotonic()
    try:
        with TestClient(main.create_app()) as c:
            assert c.get("/api/health").status_code == 200
            serving_after = time.monotonic() - t0
            release.set()
    finally:
        release.set()
    assert sent == [lost]
    assert serving_after < 30, serving_after  # the sweep's 5 s, not the broker's 60


def test_a_queued_run_leaves_no_result_subscription_in_the_api(env, redis_url, monkeypatch):
    """Runs report through the database, not celery's results: a train task sent without
    ignore_result subscribed the api to a Redis result channel it never read, one per run."""
    import redis

    from backend.queue import TRAIN_QUEUE, enqueue_training, get_celery
    from tests.conftest import _clear_caches

    monkeypatch.setenv("DISTILLSCOPE_BROKER_URL", redis_url)
    _clear_caches()
    try:
        for run_id in (10**6, 10**6 + 1):
            enqueue_training(run_id)
        consumer = get_celery().backend.result_consumer
        pubsub = getattr(consumer, "_pubsub", None)
        assert pubsub is None or not pubsub.channels, pubsub.channels
    finally:
        redis.Redis.from_url(redis_url).delete(TRAIN_QUEUE)  # no worker ever takes them


def test_an_unreachable_broker_is_a_503_without_a_long_wait(env, monkeypatch):
    """With the broker down a new run is refused with a 503 saying so (the run is kept,
    failed, with the reason); celery's result-backend retries had held the request 19 s."""
    from fastapi.testclient import TestClient

    from backend.main import create_app
    from tests.conftest import _clear_caches

    monkeypatch.setenv("DISTILLSCOPE_BROKER_URL", "redis://127.0.0.1:1/0")  # nothing listens
    _clear_caches()
    with TestClient(create_app()) as c:
        t0 = time.monotonic()
        r = c.post("/api/runs", json=GOOD)
        waited = time.monotonic() - t0
        assert r.status_code == 503 and "broker is unreachable" in r.json()["detail"], r.text
        assert c.get("/api/runs").json()["data"][0]["status"] == "failed"
    assert waited < 10, waited  # seconds of connection retries, not celery's result backend's
