"""Faults survived, with real processes: a worker killed with SIGKILL mid-run, Redis restarted
mid-run, and PostgreSQL unreachable for a few seconds. In every case the run ends `succeeded`
with exactly one point per key for every step."""

import shutil
import socket
import subprocess
import threading
import time

import httpx
import pytest

from tests.support import Stack, free_port, unavailable

pytestmark = pytest.mark.integration

RUN = {
    "name": "fault",
    "teacher": "demo-teacher",
    "student": "demo-student-s",
    "dataset": "demo",
    "temperature": 2.0,
    "alpha": 0.5,
    "max_steps": 400,
    "batch_size": 4,
    "seq_len": 32,
    "learning_rate": 3e-3,
    "eval_interval": 100,
    "eval_batches": 1,
    "checkpoint_interval": 25,
    "seed": 0,
}
KEYS = [
    "train/soft_loss",
    "train/hard_loss",
    "train/loss",
    "train/lr",
    "train/grad_norm",
    "train/tokens_per_s",
]


def _get(url: str, **kw):
    """GET that rides out a moment when the api itself cannot reach the database."""
    for _ in range(50):
        try:
            r = httpx.get(url, timeout=5, **kw)
            if r.status_code < 500:
                return r
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"{url} kept failing")


def _wait_step(stack: Stack, run_id: int, step: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while _get(f"{stack.url}/api/runs/{run_id}").json()["step"] < step:
        assert time.monotonic() < deadline, stack.logs("worker")
        time.sleep(0.1)


def _assert_every_step_once(stack: Stack, run_id: int) -> None:
    metrics = _get(
        f"{stack.url}/api/runs/{run_id}/metrics", params={"keys": ",".join(KEYS)}
    ).json()["metrics"]
    for key in KEYS:
        assert [p["step"] for p in metrics[key]] == list(range(1, RUN["max_steps"] + 1)), key


def _launch(stack: Stack) -> int:
    r = httpx.post(f"{stack.url}/api/runs", json=RUN, timeout=10)
    assert r.status_code == 201, r.text
    return r.json()["id"]


def test_worker_killed_with_sigkill_resumes_after_restart(env, tmp_path, postgres_url, redis_url):
    stack = Stack(
        {
            **env,
            "DISTILLSCOPE_DATABASE_URL": postgres_url,
            "DISTILLSCOPE_BROKER_URL": redis_url,
            "DISTILLSCOPE_HEARTBEAT_TIMEOUT_S": "2",
            "DISTILLSCOPE_REDELIVERY_TIMEOUT_S": "3",
        },
        tmp_path,
    )
    try:
        stack.start()
        run_id = _launch(stack)
        _wait_step(stack, run_id, 60)
        stack.procs["worker"].kill()  # SIGKILL: no goodbye, the task stays unacked in Redis
        stack.procs["worker"].wait()
        killed_at = _get(f"{stack.url}/api/runs/{run_id}").json()["step"]
        assert killed_at < RUN["max_steps"]
        time.sleep(4)  # past the visibility timeout, so the next worker may take it over
        stack.start_worker()
        done = stack.wait_for_status(run_id, {"succeeded", "failed"}, timeout=120)
        assert done["status"] == "succeeded", done["error"]
        assert done["attempts"] == 2  # delivered twice: the second resumed
        _assert_every_step_once(stack, run_id)
        assert "resumes from" in stack.logs("worker")
    finally:
        stack.stop()


def _wait_redis(port: int, timeout: float = 30) -> None:
    """Until a redis-server just started answers PING."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                s.sendall(b"PING\r\n")
                if s.recv(16).startswith(b"+PONG"):
                    return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"redis-server on port {port} did not answer in {timeout} s")
        time.sleep(0.05)


def test_redis_restarted_mid_run_loses_nothing(env, tmp_path, postgres_url):
    server = shutil.which("redis-server")
    if server is None:
        unavailable("redis-server", "not installed")
    port = free_port()
    cmd = [server, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    redis = subprocess.Popen(cmd, stdout=subprocess.DEVNULL)
    stack = Stack(
        {
            **env,
            "DISTILLSCOPE_DATABASE_URL": postgres_url,
            "DISTILLSCOPE_BROKER_URL": f"redis://127.0.0.1:{port}/0",
        },
        tmp_path,
    )
    try:
        _wait_redis(port)
        stack.start()
        run_id = _launch(stack)
        _wait_step(stack, run_id, 40)
        redis.terminate()
        redis.wait()
        time.sleep(2)
        redis = subprocess.Popen(cmd, stdout=subprocess.DEVNULL)
        done = stack.wait_for_status(run_id, {"succeeded", "failed"}, timeout=120)
        assert done["status"] == "succeeded", done["error"]
        _assert_every_step_once(stack, run_id)
        # The api and the worker reconnected: a run launched after the restart runs too.
        second = stack.wait_for_status(_launch(stack), {"succeeded", "failed"}, timeout=120)
        assert second["status"] == "succeeded", second["error"]
    finally:
        stack.stop()
        redis.terminate()
        redis.wait()


class CuttableProxy:
    """A TCP proxy that the test can cut (close every connection, refuse new ones) and
    restore: the database 'unreachable for a few seconds'."""

    def __init__(self, upstream_port: int):
        self.upstream = ("127.0.0.1", upstream_port)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.down = threading.Event()
        self.conns: list[socket.socket] = []
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if self.down.is_set():
                client.close()
                continue
            upstream = socket.create_connection(self.upstream)
            with self.lock:
                self.conns += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def cut(self) -> None:
        self.down.set()
        with self.lock:
            for s in self.conns:
                try:
                    s.shutdown(socket.SHUT_RDWR)
                    s.close()
                except OSError:
                    pass
            self.conns.clear()

    def restore(self) -> None:
        self.down.clear()

    def close(self) -> None:
        self.cut()
        self.listener.close()


def test_database_unreachable_for_a_few_seconds_loses_no_point(
    env, tmp_path, postgres_url, redis_url
):
    from sqlalchemy.engine import make_url

    url = make_url(postgres_url)
    proxy = CuttableProxy(url.port or 5432)
    proxied = url.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
    stack = Stack(
        {**env, "DISTILLSCOPE_DATABASE_URL": proxied, "DISTILLSCOPE_BROKER_URL": redis_url},
        tmp_path,
    )
    try:
        stack.start()
        run_id = _launch(stack)
        _wait_step(stack, run_id, 40)
        proxy.cut()
        time.sleep(4)  # the worker trains on, its points buffered
        proxy.restore()
        done = stack.wait_for_status(run_id, {"succeeded", "failed"}, timeout=120)
        assert done["status"] == "succeeded", done["error"]
        _assert_every_step_once(stack, run_id)
        assert "database unreachable" in stack.logs("worker")
    finally:
        stack.stop()
        proxy.close()
