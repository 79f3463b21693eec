"""Metric points: idempotent upserts on (run, key, step) in batches, rollups kept alongside,
and reads that downsample long series without losing a spike.

Rollups: for every level l, buckets of 4^(l + 2) steps (16, 64, ..., 65,536) hold the bucket's
minimum, maximum and last finite point. A read of more steps than `max_points` picks the
finest level whose buckets fit and returns each bucket's min, max and last (so every spike
survives); the partial buckets at the range's edges are computed from the raw points. A range
with no more steps than `max_points` is returned exactly."""

import math
import time
from collections import defaultdict
from collections.abc import Iterable

from sqlalchemy import case, select
from sqlalchemy.orm import Session

from backend.db.models import MetricPoint, MetricRollup

LEVELS = 7
WIDTHS = [4 ** (level + 2) for level in range(LEVELS)]


def point_row(run_id: int, key: str, step: int, value: float, wall_time: float | None = None):
    """One row; a non-finite value is stored as NULL with its flag ('nan', 'inf', '-inf')."""
    value = float(value)
    flag = None
    if not math.isfinite(value):
        flag = "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
        value = None
    return {
        "run_id": run_id,
        "key": key,
        "step": int(step),
        "value": value,
        "flag": flag,
        "wall_time": time.time() if wall_time is None else wall_time,
    }


def _insert(session: Session, table):
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    elif dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert
    else:  # pragma: no cover - the project supports SQLite and PostgreSQL
        raise RuntimeError(f"unsupported database dialect {dialect!r}")
    return insert(table)


def _rollup_rows(rows: list[dict]) -> list[dict]:
    """Aggregate a batch of points per (run, key, level, bucket)."""
    out: dict[tuple, dict] = {}
    for r in rows:
        if r["value"] is None:
            continue
        for level, width in enumerate(WIDTHS):
            k = (r["run_id"], r["key"], level, r["step"] // width)
            agg = out.get(k)
            if agg is None:
                out[k] = {
                    "run_id": k[0],
                    "key": k[1],
                    "level": level,
                    "bucket": k[3],
                    **{
                        f"{w}_{f}": r[src]
                        for w in ("min", "max", "last")
                        for f, src in (("step", "step"), ("value", "value"), ("time", "wall_time"))
                    },
                }
                continue
            if r["value"] < agg["min_value"]:
                agg.update(min_step=r["step"], min_value=r["value"], min_time=r["wall_time"])
            if r["value"] > agg["max_value"]:
                agg.update(max_step=r["step"], max_value=r["value"], max_time=r["wall_time"])
            if r["step"] >= agg["last_step"]:
                agg.update(last_step=r["step"], last_value=r["value"], last_time=r["wall_time"])
    return list(out.values())


def write_points(session: Session, rows: Iterable[dict]) -> int:
    """Upsert rows in batches: writing the same point twice replaces it. Rollups merge the
    batch's per-bucket min, max and last into what is stored."""
    rows = list(rows)
    if not rows:
        return 0
    stmt = _insert(session, MetricPoint)
    stmt = stmt.on_conflict_do_update(
        index_elements=["run_id", "key", "step"],
        set_={
            "value": stmt.excluded.value,
            "flag": stmt.excluded.flag,
            "wall_time": stmt.excluded.wall_time,
        },
    )
    for start in range(0, len(rows), 1000):
        session.execute(stmt, rows[start : start + 1000])
    rollups = _rollup_rows(rows)
    if rollups:
        r = MetricRollup.__table__.c  # the stored row
        up = _insert(session, MetricRollup)
        ex = up.excluded  # the batch's row

        def pick(cond, which: str) -> dict:
            return {
                f"{which}_{f}": case(
                    (cond, getattr(ex, f"{which}_{f}")), else_=getattr(r, f"{which}_{f}")
                )
                for f in ("step", "value", "time")
            }

        up = up.on_conflict_do_update(
            index_elements=["run_id", "key", "level", "bucket"],
            set_={
                **pick(ex.min_value < r.min_value, "min"),
                **pick(ex.max_value > r.max_value, "max"),
                **pick(ex.last_step >= r.last_step, "last"),
            },
        )
        for start in range(0, len(rollups), 1000):
            session.execute(up, rollups[start : start + 1000])
    return len(rows)


Point = dict  # {"step", "value", "time", "flag"}


def _raw(session: Session, run_id: int, key: str, start: int, end: int | None) -> list[Point]:
    q = select(MetricPoint.step, MetricPoint.value, MetricPoint.wall_time, MetricPoint.flag)
    q = q.where(MetricPoint.run_id == run_id, MetricPoint.key == key, MetricPoint.step >= start)
    if end is not None:
        q = q.where(MetricPoint.step <= end)
    rows = session.execute(q.order_by(MetricPoint.step))
    return [{"step": s, "value": v, "time": t, "flag": f} for s, v, t, f in rows]


def _extremes(points: list[Point]) -> list[Point]:
    """min, max and last of the finite points (deduplicated, in step order)."""
    finite = [p for p in points if p["value"] is not None]
    if not finite:
        return []
    chosen = {
        id(p): p
        for p in (
            min(finite, key=lambda p: p["value"]),
            max(finite, key=lambda p: p["value"]),
            finite[-1],
        )
    }
    return sorted(chosen.values(), key=lambda p: p["step"])


def series(
    session: Session, *, run_id: int, key: str, start: int, end: int, max_points: int
) -> list[Point]:
    """The points of one series in [start, end]: exact when the range has at most
    `max_points` steps, else at most `max_points` points keeping each bucket's extremes."""
    if end < start:
        return []
    span = end - start + 1
    if span <= max_points:
        return _raw(session, run_id, key, start, end)
    level = next((lv for lv, w in enumerate(WIDTHS) if 3 * (span // w + 2) <= max_points), None)
    if level is None:  # wider than the coarsest level allows: bucket the coarsest rows
        level = LEVELS - 1
    width = WIDTHS[level]
    first_full = -(-start // width)  # first bucket wholly inside the range
    last_full = (end + 1) // width - 1  # last bucket wholly inside the range
    out: list[Point] = []
    if first_full > last_full:  # no whole bucket: the range is within two buckets
        return _extremes(_raw(session, run_id, key, start, end))
    head = _raw(session, run_id, key, start, first_full * width - 1)
    out += _extremes(head)
    if head and head[0] not in out:  # the range's first point too: the line starts there
        out.insert(0, head[0])
    r = MetricRollup
    q = (
        select(
            r.min_step,
            r.min_value,
            r.min_time,
            r.max_step,
            r.max_value,
            r.max_time,
            r.last_step,
            r.last_value,
            r.last_time,
        )
        .where(
            MetricRollup.run_id == run_id,
            MetricRollup.key == key,
            MetricRollup.level == level,
            MetricRollup.bucket >= first_full,
            MetricRollup.bucket <= last_full,
        )
        .order_by(MetricRollup.bucket)
    )
    for s1, v1, t1, s2, v2, t2, s3, v3, t3 in session.execute(q):  # plain rows: no ORM objects
        pts = {(s1, v1, t1), (s2, v2, t2), (s3, v3, t3)}
        out += [{"step": s, "value": v, "time": t, "flag": None} for s, v, t in sorted(pts)]
    out += _extremes(_raw(session, run_id, key, (last_full + 1) * width, end))
    if len(out) > max_points:  # only when even the coarsest level has too many buckets
        per = -(-len(out) // (max_points // 3))
        out = [p for i in range(0, len(out), per) for p in _extremes(out[i : i + per])]
    return out


def series_range(session: Session, run_id: int, key: str) -> tuple[int, int] | None:
    """First and last step of a series: two index seeks, whatever its length."""
    base = select(MetricPoint.step).where(MetricPoint.run_id == run_id, MetricPoint.key == key)
    lo = session.scalar(base.order_by(MetricPoint.step).limit(1))
    if lo is None:
        return None
    return lo, session.scalar(base.order_by(MetricPoint.step.desc()).limit(1))


def read_metrics(
    session: Session,
    *,
    run_id: int,
    keys: list[str] | None,
    start_step: int | None,
    end_step: int | None,
    max_points: int | None,
) -> dict[str, list[Point]]:
    """Per key, the points in [start_step, end_step] (all keys of the run when keys is None)."""
    if keys is None:
        keys = list(
            session.scalars(select(MetricPoint.key).where(MetricPoint.run_id == run_id).distinct())
        )
    out: dict[str, list[Point]] = defaultdict(list)
    if max_points is None:
        lo, hi = start_step if start_step is not None else 0, end_step
        for key in keys:
            out[key] = _raw(session, run_id, key, lo, hi)
        return dict(out)
    for key in keys:
        found = series_range(session, run_id, key)
        if found is None:
            out[key] = []
            continue
        lo = max(found[0], start_step) if start_step is not None else found[0]
        hi = min(found[1], end_step) if end_step is not None else found[1]
        out[key] = series(session, run_id=run_id, key=key, start=lo, end=hi, max_points=max_points)
    return dict(out)


def as_columns(points: list[Point]) -> dict[str, list]:
    """One series as parallel lists (a third of the JSON of a list of objects): step, value,
    time (to the millisecond) and, only when some point is not finite, flag."""
    out = {
        "step": [p["step"] for p in points],
        "value": [p["value"] for p in points],
        "time": [round(p["time"], 3) for p in points],
    }
    if any(p["flag"] for p in points):
        out["flag"] = [p["flag"] for p in points]
    return out
