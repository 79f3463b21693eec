"""GET /api/runs with 10,000 runs, as the runs page polls it, against a baseline in the same run.

Requests: the runs page's own (frontend/static/runs-table.js: a page of 100 runs and a sort, plus
the status, tag, q and sweep filters a user sets, and a page deep in the list), through the
FastAPI app in process (TestClient: routing, validation, the database and the JSON response; no
sockets), one at a time.
Baseline: the same requests served by the former list_runs (every run loaded, then filtered,
sorted and paged in Python), kept below as `old_list_runs`.
Target: p99 ≤ 100 ms for every view.

    python bench/runs_list.py                                              # fresh SQLite file
    python bench/runs_list.py --postgres postgresql+psycopg://postgres@127.0.0.1:5432
"""

import argparse
import os
import random
import re
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

TARGET_MS = 100
STATES = ["succeeded"] * 6 + ["failed", "cancelled", "lost", "queued", "running"]
TAGS = ["baseline", "hot", "sweep-T", "ablation", "Ünïcode", "50%", "long_run", 'q"uote']
# The runs page's views: its default (newest first, first page) and what a user clicks or types.
# The page asks for PAGE_SIZE runs at a time (frontend/static/runs-table.js) and pages on.
PAGE_SIZE = int(
    re.search(
        r"^export const PAGE_SIZE = (\d+);",
        (Path(__file__).resolve().parent.parent / "frontend/static/runs-table.js").read_text(),
        re.MULTILINE,
    ).group(1)
)
VIEWS = {
    "default": {"limit": PAGE_SIZE, "sort": "-id"},
    "page 50": {"limit": PAGE_SIZE, "offset": 49 * PAGE_SIZE, "sort": "-id"},
    "sort soft": {"limit": PAGE_SIZE, "sort": "soft"},
    "sort name": {"limit": PAGE_SIZE, "sort": "-name"},
    "running": {"limit": PAGE_SIZE, "sort": "-id", "status": "queued,running"},
    "tag": {"limit": PAGE_SIZE, "sort": "-temperature", "tag": "hot"},
    "text": {"limit": PAGE_SIZE, "sort": "-id", "q": "student-m"},
    "sweep": {"limit": PAGE_SIZE, "sort": "-id", "sweep": 5},
}


def old_list_runs(
    *, session, status=None, tag=None, q=None, sweep_id=None, sort="-id", limit=500, offset=0
):
    """The former backend.services.runs.list_runs, verbatim but for its SORT_KEYS."""
    from sqlalchemy import select

    from backend.db.models import Run

    def matches(run, text):
        c = run.config or {}
        haystack = [run.name, run.note or "", c.get("teacher", ""), c.get("student", "")]
        haystack += [c.get("dataset", ""), c.get("divergence", ""), *(run.tags or [])]
        return any(text in str(h).lower() for h in haystack)

    query = select(Run)
    if status:
        query = query.where(Run.status.in_(status))
    if sweep_id is not None:
        query = query.where(Run.sweep_id == sweep_id)
    runs = list(session.scalars(query.order_by(Run.id.desc())).all())
    all_tags = sorted({t for tags in session.scalars(select(Run.tags)).all() for t in tags or []})
    if tag:
        runs = [r for r in runs if tag in (r.tags or [])]
    if q and q.strip():
        runs = [r for r in runs if matches(r, q.strip().lower())]
    descending, name = sort.startswith("-"), sort.lstrip("-")
    key = OLD_SORT_KEYS[name]
    present = [r for r in runs if key(r) is not None]
    missing = [r for r in runs if key(r) is None]
    present.sort(key=lambda r: (key(r), r.id), reverse=descending)
    runs = present + missing
    return runs[offset : offset + limit], len(runs), all_tags


OLD_SORT_KEYS = {
    "id": lambda r: r.id,
    "name": lambda r: r.name.lower(),
    "status": lambda r: r.status,
    "created": lambda r: r.created_at,
    "progress": lambda r: r.step / max(r.total_steps, 1),
    "temperature": lambda r: r.config.get("temperature"),
    "alpha": lambda r: r.config.get("alpha"),
    "soft": lambda r: (r.latest or {}).get("train/soft_loss"),
    "hard": lambda r: (r.latest or {}).get("train/hard_loss"),
}


def _use(data_dir: Path, db_url: str | None) -> None:
    os.environ["DISTILLSCOPE_DATA_DIR"] = str(data_dir)
    for k in ("DISTILLSCOPE_DATABASE_URL", "DISTILLSCOPE_BROKER_URL", "DISTILLSCOPE_API_TOKEN"):
        os.environ.pop(k, None)
    if db_url:
        os.environ["DISTILLSCOPE_DATABASE_URL"] = db_url
    from backend.db import session
    from backend.db.migrate import upgrade
    from backend.settings import get_settings

    get_settings.cache_clear()
    session.get_engine.cache_clear()
    session._session_factory.cache_clear()
    upgrade()


def _fill(n: int) -> None:
    """`n` runs with full configs, a few tags, latest losses, in 20 sweeps and none."""
    from backend.db.models import Run, Sweep
    from backend.db.session import transaction
    from backend.schemas import RunConfig

    rng = random.Random(0)
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    with transaction() as s:
        sweeps = [Sweep(name=f"sweep {i}", grid={"temperature": [1, 2, 4]}) for i in range(20)]
        s.add_all(sweeps)
        s.flush()
        for i in range(n):
            status = rng.choice(STATES)
            steps = rng.choice([200, 1000, 5000])
            temperature, alpha = rng.choice([0.5, 1.0, 2.0, 4.0]), rng.choice([0.0, 0.5, 0.9])
            tags = rng.sample(TAGS, rng.randint(0, 3))
            config = RunConfig(
                name=f"run {i} · T={temperature:g} α={alpha:g}",
                tags=tags,
                teacher="demo-teacher",
                student=rng.choice(["demo-student-s", "demo-student-m"]),
                dataset="demo",
                temperature=temperature,
                alpha=alpha,
                max_steps=steps,
                seed=i,
            ).model_dump(mode="json")
            done = steps if status == "succeeded" else rng.randint(0, steps)
            latest = {}
            if done:
                latest = {k: rng.uniform(0.1, 3) for k in ("train/soft_loss", "train/hard_loss")}
                latest |= {"train/loss": 1.0, "train/lr": 3e-4, "eval/kl_true": 0.3}
            s.add(
                Run(
                    name=config["name"],
                    tags=tags,
                    config=config,
                    status=status,
                    created_at=t0 + timedelta(minutes=i),
                    step=done,
                    total_steps=steps,
                    latest=latest,
                    note="lr too high" if i % 50 == 0 else None,
                    sweep_id=sweeps[i % 20].id if i % 4 == 0 else None,
                )
            )


def _measure(client, params: dict, n: int) -> tuple[list[float], list[float]]:
    """Wall-clock ms per request, and this process's CPU ms (client and app alike: the app
    runs in a thread of this process), which other load on the machine does not inflate."""
    wall, cpu = [], []
    for _ in range(n):
        t, c = time.perf_counter(), time.process_time()
        r = client.get("/api/runs", params=params)
        wall.append((time.perf_counter() - t) * 1000)
        cpu.append((time.process_time() - c) * 1000)
        if r.status_code != 200:
            raise RuntimeError(f"GET /api/runs {params}: {r.status_code} {r.text[:300]}")
    return wall, cpu


def _p(times: list[float], q: float) -> float:
    return statistics.quantiles(times, n=100, method="inclusive")[int(q) - 1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=10_000)
    ap.add_argument("--requests", type=int, default=200, help="per view, new path")
    ap.add_argument("--baseline-requests", type=int, default=10, help="per view, old path")
    ap.add_argument("--postgres", metavar="URL", help="server URL (no database): PostgreSQL")
    args = ap.parse_args()
    import sqlalchemy as sa
    from fastapi.testclient import TestClient

    from backend.services import runs as service

    tmp = Path(tempfile.mkdtemp(prefix="distillscope-bench-"))
    admin = db_url = None
    if args.postgres:  # a database of its own, dropped at the end
        name = f"distillscope_bench_{uuid.uuid4().hex[:8]}"
        admin = sa.create_engine(f"{args.postgres}/postgres", isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
        db_url = f"{args.postgres}/{name}"
    try:
        _use(tmp / "data", db_url)
        t0 = time.perf_counter()
        _fill(args.runs)
        print(f"   ({args.runs:,} runs written in {time.perf_counter() - t0:.1f} s)")
        from backend.main import create_app, freeze_startup_heap

        new = service.list_runs
        results = {}
        # No lifespan (no `with`): its sweeper would requeue the bench's 'running' runs. What
        # else the api does at start-up is done here: its heap frozen, the bench's objects too.
        client = TestClient(create_app())
        freeze_startup_heap()
        for view, params in VIEWS.items():
            service.list_runs = new
            body = client.get("/api/runs", params=params).json()  # warm-up, and the check
            service.list_runs = old_list_runs
            old_body = client.get("/api/runs", params=params).json()
            if body != old_body:
                raise RuntimeError(f"{view}: the SQL path answers differently from the old")
            old = _measure(client, params, args.baseline_requests)
            service.list_runs = new
            results[view] = (_measure(client, params, args.requests), old, body["count"])
        service.list_runs = new
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        if admin is not None:
            from backend.db.session import get_engine

            get_engine.cache_clear()  # the app's engine holds connections: drop it first
            with admin.connect() as conn:
                conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            admin.dispose()

    db = "PostgreSQL" if args.postgres else "SQLite"
    load = os.getloadavg()[0]
    print(
        f"GET /api/runs, {args.runs:,} runs on {db}, one request at a time in process "
        f"({os.cpu_count()} cores, load average {load:.1f} at the end); ms over "
        f"{args.requests} requests (old path: {args.baseline_requests}); cpu = this process's "
        "CPU time per request"
    )
    worst = 0.0
    for view, ((wall, cpu), (old, old_cpu), count) in results.items():
        p50, p99, old50 = _p(wall, 50), _p(wall, 99), statistics.median(old)
        worst = max(worst, p99)
        print(
            f"   {view:<10} {count:>6,} match  new p50 {p50:6.1f} p99 {p99:6.1f} "
            f"cpu p50 {_p(cpu, 50):5.1f}   old p50 {old50:7.1f} p99 {_p(old, 99):7.1f} "
            f"cpu p50 {statistics.median(old_cpu):7.1f}   old ÷ new (p50) {old50 / p50:5.1f}×"
        )
    print(
        f"Worst p99 {worst:.1f} ms ÷ {TARGET_MS} ms target: {worst / TARGET_MS:.2f} "
        f"({'met' if worst <= TARGET_MS else 'MISSED'}, target p99 ≤ {TARGET_MS} ms)"
    )


if __name__ == "__main__":
    main()
