"""Faults on the embedded default (`distillscope up`: SQLite database, SQLite broker), with the
real command as a user runs it: the train worker SIGKILLed mid-run, and Ctrl-C of `up` mid-run
then `up` again. The embedded broker never redelivers a task its dead worker held, so the api's
sweeper must queue the run again and `up` must start a new worker. Every run resumes from its
checkpoint (the points before it are not recomputed) and ends `succeeded` with exactly one point
per key for every step, 3 runs of 3 in each case."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.support import ROOT, free_port

pytestmark = pytest.mark.integration

RUN = {
    "teacher": "demo-teacher",
    "student": "demo-student-s",
    "dataset": "demo",
    "temperature": 2.0,
    "alpha": 0.5,
    "max_steps": 150,
    "batch_size": 4,
    "seq_len": 32,
    "learning_rate": 3e-3,
    "eval_interval": 75,
    "eval_batches": 1,
    "checkpoint_interval": 25,
    "seed": 0,
}
KEYS = ["train/soft_loss", "train/hard_loss", "train/loss", "train/lr", "train/grad_norm"]


class Up:
    """`distillscope up` as a subprocess on one data dir and port."""

    def __init__(self, tiny_kit: Path, tmp: Path):
        self.tmp, self.port = tmp, free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {
            **os.environ,
            "PYTHONUNBUFFERED": "1",
            "DISTILLSCOPE_MODEL_ROOTS": str(tiny_kit / "models"),
            "DISTILLSCOPE_DATASET_ROOTS": str(tiny_kit / "datasets"),
            "DISTILLSCOPE_DATABASE_URL": "",
            "DISTILLSCOPE_BROKER_URL": "",
            "DISTILLSCOPE_API_TOKEN": "",
            # A dead worker of this machine is noticed at the next sweep (every 2 s here),
            # without waiting for its heartbeat to go stale.
            "DISTILLSCOPE_HEARTBEAT_TIMEOUT_S": "6",
        }
        self.proc: subprocess.Popen | None = None
        self.starts = 0

    def start(self) -> "Up":
        self.starts += 1
        self.log = self.tmp / f"up-{self.starts}.log"
        cmd = [sys.executable, "-m", "backend.cli", "up", "--port", str(self.port)]
        cmd += ["--data-dir", str(self.tmp / "data"), "--no-demo-kit"]
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen(
                cmd, env=self.env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.logs()
            try:
                if httpx.get(f"{self.url}/api/health", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise AssertionError(f"up did not answer:\n{self.logs()}")

    def logs(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]

    def ctrl_c(self) -> int:
        self.proc.send_signal(signal.SIGINT)
        return self.proc.wait(timeout=30)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.ctrl_c()

    def run(self, run_id: int) -> dict:
        return httpx.get(f"{self.url}/api/runs/{run_id}", timeout=10).json()

    def launch(self, seed: int) -> int:
        r = httpx.post(f"{self.url}/api/runs", json={**RUN, "seed": seed}, timeout=10)
        assert r.status_code == 201, r.text
        return r.json()["id"]

    def wait_step(self, run_id: int, step: int, timeout: float = 90) -> dict:
        deadline = time.monotonic() + timeout
        while (run := self.run(run_id))["step"] < step or run["status"] != "running":
            assert time.monotonic() < deadline, f"{run}\n{self.logs()}"
            time.sleep(0.1)
        return run

    def wait_end(self, run_id: int, timeout: float = 180) -> dict:
        deadline = time.monotonic() + timeout
        while (run := self.run(run_id))["status"] not in ("succeeded", "failed", "cancelled"):
            assert time.monotonic() < deadline, f"{run}\n{self.logs()}"
            time.sleep(0.3)
        return run

    def assert_resumed(self, run_id: int, interrupted_at: float) -> None:
        """One point per key for every step, and the steps up to the first checkpoint kept
        from before the fault (resumed, not started over)."""
        metrics = httpx.get(
            f"{self.url}/api/runs/{run_id}/metrics", params={"keys": ",".join(KEYS)}, timeout=30
        ).json()["metrics"]
        for key in KEYS:
            steps = [p["step"] for p in metrics[key]]
            assert steps == list(range(1, RUN["max_steps"] + 1)), key
        early = [p for p in metrics["train/loss"] if p["step"] <= RUN["checkpoint_interval"]]
        assert all(p["time"] < interrupted_at for p in early), "the run started over"


@pytest.fixture
def up(tiny_kit, tmp_path):
    u = Up(tiny_kit, tmp_path)
    try:
        yield u
    finally:
        u.stop()


def test_sigkilled_train_worker_is_restarted_and_its_runs_resume(up):
    up.start()
    for seed in range(3):
        run_id = up.launch(seed)
        held = up.wait_step(run_id, 50)
        pid = int(held["worker_host"].rsplit(":", 1)[1])
        killed_at = time.time()
        os.kill(pid, signal.SIGKILL)
        done = up.wait_end(run_id)
        assert done["status"] == "succeeded", f"{done['error']}\n{up.logs()}"
        assert done["attempts"] == 2, done  # the killed attempt, and the one that resumed
        up.assert_resumed(run_id, killed_at)
    assert up.proc.poll() is None, "up must survive its workers' deaths"
    assert up.logs().count("worker exited with code -9; starting it again") == 3


def test_ctrl_c_of_up_mid_run_then_up_again_resumes_the_run(up):
    for seed in range(3):
        up.start()
        run_id = up.launch(seed)
        up.wait_step(run_id, 50)
        stopped_at = time.time()
        assert up.ctrl_c() == 0, up.logs()
        assert "did not stop in time" not in up.logs()
        up.start()
        done = up.wait_end(run_id)
        assert done["status"] == "succeeded", f"{done['error']}\n{up.logs()}"
        assert done["attempts"] == 1, done  # a stop asked for does not count against the run
        up.assert_resumed(run_id, stopped_at)
        up.ctrl_c()


def test_an_idle_embedded_worker_returns_to_celerys_loop_often_enough_to_stop(env, monkeypatch):
    """celery's loop for a broker that pushes nothing (synloop) looks for a warm shutdown only
    between two waits of 2 s, and waits once more after it: SIGTERM (and Ctrl-C of `up`) took
    an idle worker up to 4 s to stop. On the embedded broker a wait ends after SQLITE_DRAIN_S.
    kombu's clock is a fake one here, moved on by its sleeps: no wall time is measured."""
    import socket

    from kombu import Consumer, Queue
    from kombu.transport.virtual import base

    from backend.queue import SQLITE_DRAIN_S, get_celery

    clock = [0.0]
    monkeypatch.setattr(base, "monotonic", lambda: clock[0])
    monkeypatch.setattr(base, "sleep", lambda s: clock.__setitem__(0, clock[0] + s))
    with get_celery().connection_for_write() as conn:
        assert conn.as_uri().startswith("sqla+sqlite:")
        with Consumer(conn, [Queue("idle-test")], callbacks=[lambda body, m: None]):
            with pytest.raises(socket.timeout):
                conn.drain_events(timeout=2.0)  # what synloop asks for
    assert SQLITE_DRAIN_S <= clock[0] < SQLITE_DRAIN_S + 0.2, clock  # not 2 s
