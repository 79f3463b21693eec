"""Compare page in real headless Chromium: 10 runs × 100,000 steps, against a baseline in the
same run.

Ready = time from navigation start until compare.js marks the page ready (every chart drawn
with every run's series), median over several loads.
Baseline: the same page with 1 run × 1,000 steps (the page's fixed cost: Plotly, api calls).
Target: 10 runs × 100,000 steps ready in ≤ 1 s.

    python bench/compare_page.py                      # a fresh temporary data dir
    python bench/compare_page.py --data-dir /tmp/cmp  # keep (and reuse) the synthetic runs
"""

import argparse
import math
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

TAG = "bench-compare"
TRAIN_KEYS = ["train/soft_loss", "train/hard_loss", "train/loss", "train/grad_norm"]
EVAL_KEYS = ["eval/kl_true", "eval/kl_teacher", "eval/top1_agreement", "eval/hard_loss"]
EVAL_EVERY = 100
# Records when compare.js sets <body data-ready>, in ms since navigation start.
READY_PROBE = """
new MutationObserver((_, obs) => {
  if (document.body && document.body.dataset.ready) {
    window.__readyAt = performance.now();
    obs.disconnect();
  }
}).observe(document, { subtree: true, attributes: true, attributeFilter: ["data-ready"] });
"""


def _use(data_dir: Path) -> dict[str, str]:
    """Point settings at `data_dir` (SQLite there) and migrate it with the project's code."""
    env = {"DISTILLSCOPE_DATA_DIR": str(data_dir)}
    os.environ.update(env)
    for k in ("DISTILLSCOPE_DATABASE_URL", "DISTILLSCOPE_BROKER_URL", "DISTILLSCOPE_API_TOKEN"):
        os.environ.pop(k, None)
    from backend.db import session
    from backend.db.migrate import upgrade
    from backend.settings import get_settings

    get_settings.cache_clear()
    session.get_engine.cache_clear()
    session._session_factory.cache_clear()
    upgrade()
    return env


def _series(steps: int, seed: int, temperature: float, alpha: float) -> dict[str, list]:
    """Plausible distillation curves: decaying losses with noise, a few grad-norm spikes,
    eval every EVAL_EVERY steps. {key: [(step, value, wall_time)]}"""
    rng = random.Random(seed)
    t0 = 1.7e9 + seed * 1e5
    out: dict[str, list] = {k: [] for k in TRAIN_KEYS + EVAL_KEYS}
    tau = steps / 5
    for s in range(1, steps + 1):
        decay = math.exp(-s / tau)
        soft = (0.3 + 1.5 * decay) * temperature**0.5 + rng.gauss(0, 0.05)
        hard = 1.6 + 2.5 * decay + rng.gauss(0, 0.08)
        grad = 0.6 + 2 * decay + abs(rng.gauss(0, 0.1)) + (5.0 if rng.random() < 1e-4 else 0)
        wall = t0 + s * 0.05
        out["train/soft_loss"].append((s, soft, wall))
        out["train/hard_loss"].append((s, hard, wall))
        out["train/loss"].append((s, alpha * soft + (1 - alpha) * hard, wall))
        out["train/grad_norm"].append((s, grad, wall))
        if s % EVAL_EVERY == 0 or s == steps:
            out["eval/kl_true"].append((s, 0.2 + 1.2 * decay + rng.gauss(0, 0.01), wall))
            out["eval/kl_teacher"].append((s, 0.1 + 1.5 * decay + rng.gauss(0, 0.01), wall))
            out["eval/top1_agreement"].append((s, 0.9 - 0.6 * decay + rng.gauss(0, 0.005), wall))
            out["eval/hard_loss"].append((s, 1.7 + 2.2 * decay + rng.gauss(0, 0.02), wall))
    return out


def _make_run(name: str, steps: int, seed: int, temperature: float, alpha: float) -> int:
    """One succeeded run with a realistic config and every charted series, rollups included."""
    from backend.db.models import Run
    from backend.db.session import transaction
    from backend.schemas import RunConfig
    from backend.services.metrics import point_row, write_points

    config = RunConfig(
        name=name,
        tags=[TAG],
        teacher="demo-teacher",
        student="demo-student-s",
        dataset="demo",
        temperature=temperature,
        alpha=alpha,
        max_steps=steps,
        seed=seed,
    ).model_dump(mode="json")
    with transaction() as s:
        run = Run(
            name=name,
            tags=[TAG],
            config=config,
            status="succeeded",
            step=steps,
            total_steps=steps,
            latest={},
        )
        s.add(run)
        s.flush()
        run_id = run.id
    for key, pts in _series(steps, seed, temperature, alpha).items():
        # One batch per series: write_points merges the whole batch's rollups at once.
        rows = [point_row(run_id, key, st, v, w) for st, v, w in pts]
        with transaction() as s:
            write_points(s, rows)
    return run_id


def _runs(n: int, steps: int, prefix: str) -> list[int]:
    """The ids of `n` bench runs of `steps` steps, created unless already in the data dir."""
    from sqlalchemy import select

    from backend.db.models import Run
    from backend.db.session import transaction

    with transaction() as s:
        found = s.scalars(
            select(Run.id)
            .where(Run.name.like(f"{prefix}-%"), Run.total_steps == steps)
            .order_by(Run.id)
        ).all()
    if len(found) >= n:
        return list(found[:n])
    return [
        _make_run(f"{prefix}-{i}", steps, seed=i, temperature=(1.0, 2.0, 4.0)[i % 3], alpha=0.5)
        for i in range(n)
    ]


# ms since navigation start: scripts run (Plotly parsed), metrics fetched, page ready, and
# when the metrics request was sent.
PHASES = """() => {
  const nav = performance.getEntriesByType("navigation")[0];
  const m = performance.getEntriesByType("resource").find((e) => e.name.includes("/api/metrics"));
  return [nav.domContentLoadedEventEnd, m.responseEnd, window.__readyAt, m.requestStart];
}"""


def _api_alone(url: str, n: int) -> tuple[float, int]:
    """The page's /api/metrics request alone (query + JSON + transfer, no browser): median
    ms of `n` and the body's size in bytes."""
    import httpx

    times, size = [], 0
    with httpx.Client(timeout=60) as client:
        for _ in range(n + 1):  # the first one warms the server up
            t = time.perf_counter()
            r = client.get(url)
            times.append((time.perf_counter() - t) * 1000)
            r.raise_for_status()
            size = len(r.content)
    return statistics.median(times[1:]), size


def _load(context, url: str, expect_runs: int, expect_last: int) -> tuple[list[float], list[int]]:
    """Open `url` in a new tab: [scripts run, metrics fetched, ready] in ms since navigation
    start, and the points drawn per trace."""
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    try:
        page.goto(url)
        page.wait_for_function("window.__readyAt !== undefined", timeout=60_000)
        phases = page.evaluate(PHASES)
        charts = page.evaluate(
            """() => [...document.querySelectorAll('#compare-charts .chart')].map(d =>
                 d.data.map(t => [t.x.length, t.x.length ? t.x[t.x.length - 1] : null]))"""
        )
    finally:
        page.close()
    if errors:
        raise RuntimeError(f"page errors on {url}: {errors}")
    # Every chart holds every run's series up to its last step (raw + smoothed for train/*).
    if len(charts) != 8 or any(len(traces) < expect_runs for traces in charts):
        raise RuntimeError(f"not every chart drew {expect_runs} runs: {charts}")
    if any(last != expect_last for traces in charts for _, last in traces):
        raise RuntimeError(f"a trace stops before step {expect_last}: {charts}")
    return phases, [n for traces in charts for n, _ in traces]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", help="keep the synthetic runs here (reused when present)")
    ap.add_argument("--loads", type=int, default=5, help="measured loads per page")
    args = ap.parse_args()
    from playwright.sync_api import sync_playwright

    from tests.support import CHROMIUM_ARGS, Stack

    tmp = Path(tempfile.mkdtemp(prefix="distillscope-bench-"))
    try:
        data_dir = Path(args.data_dir).resolve() if args.data_dir else tmp / "data"
        env = _use(data_dir)
        t0 = time.perf_counter()
        big = _runs(10, 100_000, "cmp")
        small = _runs(1, 1_000, "cmp-base")
        print(f"   (data ready in {time.perf_counter() - t0:.0f} s: {data_dir})")
        stack = Stack(env, tmp)
        try:
            stack.start(worker=False)
            chromium = shutil.which("chromium") or "/usr/bin/chromium"
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
                context = browser.new_context(viewport={"width": 1280, "height": 900})
                context.add_init_script(READY_PROBE)
                pages = {
                    "big": (f"{stack.url}/compare?runs={','.join(map(str, big))}", 10, 100_000),
                    "base": (f"{stack.url}/compare?runs={small[0]}", 1, 1_000),
                }
                phases: dict[str, list[list[float]]] = {k: [] for k in pages}
                points: dict[str, list[int]] = {}
                for spec in pages.values():  # warm-up: Plotly into the cache, api warm
                    _load(context, *spec)
                for _ in range(args.loads):  # interleaved, so both see the same machine load
                    for k, spec in pages.items():
                        ms, points[k] = _load(context, *spec)
                        phases[k].append(ms)
                browser.close()
            keys = ",".join(TRAIN_KEYS + EVAL_KEYS)
            api_ms, api_bytes = _api_alone(
                f"{stack.url}/api/metrics?runs={','.join(map(str, big))}&keys={keys}"
                "&max_points=1000&format=columns",
                args.loads,
            )
        finally:
            stack.stop()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    times = {k: [p[2] for p in v] for k, v in phases.items()}
    big_ms, base_ms = statistics.median(times["big"]), statistics.median(times["base"])
    per_trace = sorted(set(points["big"]))

    def split(k: str) -> str:
        scripts, fetched, ready, sent = (
            statistics.median(p[i] for p in phases[k]) for i in range(4)
        )
        return (
            f"scripts run {scripts:.0f} ms, then metrics fetched +{fetched - scripts:.0f} ms, "
            f"then charts drawn +{ready - max(fetched, scripts):.0f} ms (medians); the metrics "
            f"request was sent at {sent:.0f} ms and answered in {fetched - sent:.0f} ms"
        )

    def loads(k: str) -> str:
        return ", ".join(f"{t:.0f}" for t in times[k])

    print(
        f"Compare page, 10 runs × 100,000 steps (8 charts, {len(points['big'])} traces): ready "
        f"in {big_ms:.0f} ms median of {args.loads} (loads {loads('big')} ms)"
    )
    print(f"   {split('big')}")
    print(
        f"   points drawn per trace: {min(per_trace)}–{max(per_trace)} "
        f"(eval/* every {EVAL_EVERY} steps: {min(per_trace)}); "
        f"{sum(points['big']):,} points in all"
    )
    print(
        f"Baseline, 1 run × 1,000 steps: ready in {base_ms:.0f} ms median "
        f"(loads {loads('base')} ms)"
    )
    print(f"   {split('base')}")
    print(
        f"Server side alone, the same /api/metrics request over HTTP (10 runs × 8 keys, "
        f"max_points 1000, columns): {api_ms:.0f} ms median of {args.loads}, "
        f"{api_bytes / 1e6:.2f} MB"
    )
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"   (machine: {os.cpu_count()} cores, load average {load} at the end: shared)")
    print(
        f"Ratio 10×100k ÷ baseline: {big_ms / base_ms:.2f}×;  ÷ 1 s target: "
        f"{big_ms / 1000:.2f} ({'met' if big_ms <= 1000 else 'MISSED'}, target ≤ 1 s)"
    )


if __name__ == "__main__":
    main()
