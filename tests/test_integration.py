"""End to end with real processes: uvicorn + a Celery worker, once on the embedded defaults
(SQLite database, kombu's SQLAlchemy transport on SQLite) and once on Redis + PostgreSQL. A
tiny run is launched through the HTTP API and must reach `succeeded` with a soft and a hard
loss point for every step."""

import json

import httpx
import pytest

from tests.support import Stack

pytestmark = pytest.mark.integration

RUN = {
    "name": "tiny",
    "teacher": "demo-teacher",
    "student": "demo-student-s",
    "dataset": "demo",
    "temperature": 2.0,
    "alpha": 0.5,
    "max_steps": 30,
    "batch_size": 4,
    "seq_len": 32,
    "learning_rate": 3e-3,
    "eval_interval": 10,
    "eval_batches": 2,
    "seed": 0,
}


@pytest.fixture(params=["embedded", "redis+postgres"])
def stack(request, env, tmp_path):
    extra = {}
    if request.param == "redis+postgres":
        extra = {
            "DISTILLSCOPE_DATABASE_URL": request.getfixturevalue("postgres_url"),
            "DISTILLSCOPE_BROKER_URL": request.getfixturevalue("redis_url"),
        }
    s = Stack({**env, **extra}, tmp_path)
    try:
        yield s.start()
    finally:
        s.stop()


def _launch(stack: Stack, **overrides) -> dict:
    r = httpx.post(f"{stack.url}/api/runs", json={**RUN, **overrides}, timeout=10)
    assert r.status_code == 201, r.text
    return r.json()


def test_run_reaches_succeeded_with_every_step(stack):
    run = _launch(stack)
    done = stack.wait_for_status(run["id"], {"succeeded", "failed"})
    assert done["status"] == "succeeded", done["error"]
    assert done["step"] == RUN["max_steps"] and done["worker_host"]
    assert done["started_at"] and done["finished_at"]
    keys = [
        "train/soft_loss",
        "train/hard_loss",
        "train/loss",
        "train/lr",
        "train/tokens_per_s",
        "eval/hard_loss",
        "eval/soft_loss",
        "eval/top1_agreement",
        "eval/kl_true",
    ]
    metrics = httpx.get(
        f"{stack.url}/api/runs/{run['id']}/metrics", params={"keys": ",".join(keys)}, timeout=10
    ).json()["metrics"]
    steps = list(range(1, RUN["max_steps"] + 1))
    for key in keys[:5]:
        assert [p["step"] for p in metrics[key]] == steps, key
        assert all(p["value"] is not None and p["value"] >= 0 for p in metrics[key]), key
    for key in keys[5:]:
        assert [p["step"] for p in metrics[key]] == [10, 20, 30], key
    soft = {p["step"]: p["value"] for p in metrics["train/soft_loss"]}
    hard = {p["step"]: p["value"] for p in metrics["train/hard_loss"]}
    total = {p["step"]: p["value"] for p in metrics["train/loss"]}
    for s in steps:  # total = alpha * soft + (1 - alpha) * hard, as logged
        assert total[s] == pytest.approx(0.5 * soft[s] + 0.5 * hard[s], rel=1e-5)
    assert 0 <= metrics["eval/top1_agreement"][-1]["value"] <= 1
    # The stream replays the whole run and ends with `done`.
    with httpx.stream("GET", f"{stack.url}/api/runs/{run['id']}/stream", timeout=30) as r:
        text = "".join(r.iter_text())
    events = [b for b in text.split("\n\n") if b.strip() and not b.startswith(":")]
    assert "event: done" in events[-1]
    streamed = [
        json.loads(line[6:])
        for b in events
        if "event: points" in b
        for line in b.splitlines()
        if line.startswith("data: ")
    ]
    soft_steps = [p["step"] for e in streamed for p in e["points"] if p["key"] == "train/soft_loss"]
    assert soft_steps == steps
    # The final student was saved with save_pretrained.
    assert httpx.get(f"{stack.url}/api/runs/{run['id']}", timeout=5).json()["latest"]


def test_failing_run_says_why(stack, tiny_kit, tmp_path):
    # A model folder whose config is valid but whose weights are missing passes submission
    # checks (they never load weights) and fails in the worker, which must record why.
    import shutil

    broken = tmp_path / "data" / "models" / "broken-student"
    shutil.copytree(tiny_kit / "models" / "demo-student-s", broken)
    (broken / "model.safetensors").unlink()
    run = _launch(stack, student="broken-student")
    done = stack.wait_for_status(run["id"], {"succeeded", "failed"})
    assert done["status"] == "failed"
    assert done["error"] and "broken-student" in done["error"]
    assert done["finished_at"]
    # The worker survives a failed run and takes the next one.
    ok = stack.wait_for_status(_launch(stack)["id"], {"succeeded", "failed"})
    assert ok["status"] == "succeeded", ok["error"]
