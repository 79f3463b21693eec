"""Test helpers: service requirements, a tiny offline model kit, and a real api + worker stack
started as subprocesses."""

import os
import socket
import subprocess
import time
from pathlib import Path

import httpx
import pytest

REQUIRE_SERVICES = os.environ.get("DISTILLSCOPE_REQUIRE_SERVICES") == "1"
ROOT = Path(__file__).resolve().parent.parent


# Headless Chromium as the browser tests and bench/compare_page.py run it.
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def page_modules(page, *modules: str) -> None:
    """Put the exports of the page's own ES modules (frontend/static/<module>.js, the instances
    the page runs) on `window`, for tests that call the page's functions by name: the pages
    themselves define no globals. An exported object (a page's state) is the page's own."""
    page.evaluate(
        "async (ms) => { for (const m of ms)"
        " Object.assign(window, await import(`/static/${m}.js`)); }",
        list(modules),
    )


def unavailable(what: str, why: str) -> None:
    """Skip, or fail under DISTILLSCOPE_REQUIRE_SERVICES=1 (CI), when a service is missing."""
    message = f"{what} unavailable: {why}"
    if REQUIRE_SERVICES:
        pytest.fail(f"{message} (DISTILLSCOPE_REQUIRE_SERVICES=1 requires it)", pytrace=False)
    pytest.skip(message)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# The demo kit's own code at a tiny scale: untrained teachers (tests assume nothing of them),
# two small students, and the fine-tuned teacher made by the kit's real fine-tuning (a short
# budget peaks even an untrained teacher on its own argmax labels).
TINY_KIT = dict(
    teacher={"name": "demo-teacher", "n_layer": 2, "n_embd": 32, "n_head": 2},
    memorised={"name": "demo-teacher-memorised", "n_layer": 2, "n_embd": 32, "n_head": 2},
    students=(
        {"name": "demo-student-s", "n_layer": 1, "n_embd": 16, "n_head": 2},
        {"name": "demo-student-m", "n_layer": 1, "n_embd": 24, "n_head": 2},
    ),
    teacher_training=None,
    memorised_training=None,
    finetune_training={
        "max_steps": 40,
        "batch_size": 16,
        "seq_len": 64,
        "learning_rate": 1e-2,
        "warmup_steps": 5,
        "eval_interval": 40,
        "eval_batches": 2,
        "weight_decay": 0.0,
    },
    datasets=("demo", "demo-small"),
)


def build_tiny_kit(root: Path) -> Path:
    """A data dir with the demo language's datasets and tiny GPT-2 models under the demo kit's
    names, built by the kit's own `prepare` (no downloads)."""
    from backend.settings import Settings
    from worker.distill import demo

    demo.prepare(Settings(data_dir=root), progress=False, kit=demo.Kit(**TINY_KIT))
    return root


class Stack:
    """uvicorn + a Celery worker as real subprocesses, sharing one environment."""

    def __init__(self, env: dict[str, str], log_dir: Path):
        self.env = {**os.environ, **env, "PYTHONUNBUFFERED": "1"}
        self.log_dir = log_dir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.procs: dict[str, subprocess.Popen] = {}

    def _spawn(self, name: str, cmd: list[str]) -> None:
        log = open(self.log_dir / f"{name}.log", "wb")  # noqa: SIM115 - closed with the process
        self.procs[name] = subprocess.Popen(
            cmd, env=self.env, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT
        )

    def start(self, worker: bool = True) -> "Stack":
        from backend.cli import api_command

        # No separate `migrate` process (a second of Python start-up per stack): the api applies
        # the migrations before it answers /api/health, and nothing reaches the database before
        # that — workers only touch it for a task, and tasks come from the api.
        self._spawn("api", api_command("127.0.0.1", self.port))
        if worker:
            self.start_worker()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/api/health", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            if self.procs["api"].poll() is not None:
                break
            time.sleep(0.2)
        raise RuntimeError(f"api did not start:\n{self.logs('api')}")

    def start_worker(self, queue: str = "train", name: str | None = None) -> None:
        """A worker on `queue`; give another `name` to run several on the same queue."""
        from backend.cli import worker_command

        name = name or ("worker" if queue == "train" else f"{queue}-worker")
        running = name in self.procs and self.procs[name].poll() is None
        assert not running, f"a process named {name} already runs"  # a dead one may restart
        self._spawn(name, worker_command(queue, "INFO"))

    def logs(self, name: str) -> str:
        path = self.log_dir / f"{name}.log"
        return path.read_text(errors="replace")[-6000:] if path.exists() else ""

    def stop(self) -> None:
        # SIGTERM: a worker's warm shutdown acknowledges its task, so on the session's shared
        # Redis no unacknowledged task outlives its test to be delivered to another one.
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.terminate()
        for name, proc in self.procs.items():
            # The api lingers up to 3 s for a page's open live stream (a test's browser closes
            # after its stack); it holds nothing that a kill could lose.
            try:
                proc.wait(timeout=0.5 if name == "api" else 15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def wait_for_status(self, run_id: int, statuses: set[str], timeout: float = 180) -> dict:
        deadline = time.monotonic() + timeout
        run = {}
        while time.monotonic() < deadline:
            run = httpx.get(f"{self.url}/api/runs/{run_id}", timeout=5).json()
            if run["status"] in statuses:
                return run
            time.sleep(0.3)
        raise AssertionError(
            f"run {run_id} still {run.get('status')} after {timeout}s\n"
            f"--- worker log ---\n{self.logs('worker')}"
        )
