"""Metric points: idempotent upserts on (run, key, step) in batches, rollups kept alongside,
and reads that downsample long series without losing a spike.

Rollups: for every level l, buckets of 4^(l + 2) steps (16, 64, ..., 65,536) hold the bucket's
minimum, maximum and last finite point. Level FLAGGED (-1) holds one row per non-finite point
(bucket = step, value = its flag's code), so a downsampled read finds them with one index seek.
A read of more steps than `max_points` picks the finest level whose buckets fit and returns each
bucket's min, max and last (so every spike survives) and the range's non-finite points (value
null with their flag, as exact reads give them); the partial buckets at the range's edges are
computed from the raw points. A range with no more steps than `max_points` is returned exactly.

A point written again (a resumed run replays steps it already logged) replaces the old one,
and every bucket that held it is recomputed: level 0 from the points, each coarser level from
the four buckets below it, so no replaced value survives as an extreme."""

import math
import time
from collections import defaultdict
from collections.abc import Iterable

from sqlalchemy import case, delete, select, text
from sqlalchemy.orm import Session

from backend.db.models import MetricPoint, MetricRollup

LEVELS = 7
WIDTHS = [4 ** (level + 2) for level in range(LEVELS)]
FANOUT = 4  # buckets of one level per bucket of the next
FLAGGED = -1  # the rollup level that lists the non-finite points, one row each
FLAG_CODES = {"nan": 0.0, "inf": 1.0, "-inf": -1.0}
CODE_FLAGS = {v: k for k, v in FLAG_CODES.items()}
MML = ("min", "max", "last")
_FIELDS = [f"{w}_{f}" for w in MML for f in ("step", "value", "time")]
_CHUNK = 1000  # rows per statement


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


def _leaf(step: int, value: float, t: float) -> dict:
    """One finite point as a bucket aggregate."""
    return {
        "min_step": step,
        "min_value": value,
        "min_time": t,
        "max_step": step,
        "max_value": value,
        "max_time": t,
        "last_step": step,
        "last_value": value,
        "last_time": t,
    }


def _absorb(agg: dict, other: dict) -> None:
    """Fold `other` (an aggregate) into `agg`; on equal values the earlier step wins."""
    lo, hi = other["min_value"], other["max_value"]
    if lo < agg["min_value"] or (lo == agg["min_value"] and other["min_step"] < agg["min_step"]):
        agg.update(min_step=other["min_step"], min_value=lo, min_time=other["min_time"])
    if hi > agg["max_value"] or (hi == agg["max_value"] and other["max_step"] < agg["max_step"]):
        agg.update(max_step=other["max_step"], max_value=hi, max_time=other["max_time"])
    if other["last_step"] > agg["last_step"]:
        agg.update(
            last_step=other["last_step"],
            last_value=other["last_value"],
            last_time=other["last_time"],
        )


def _fold(aggs: dict[tuple, dict], key: tuple, other: dict) -> None:
    agg = aggs.get(key)
    if agg is None:
        aggs[key] = dict(other)
    else:
        _absorb(agg, other)


def _rollup_rows(rows: list[dict]) -> list[dict]:
    """Aggregate a batch's finite points per (run, key, level, bucket): level 0 from the
    points, each coarser level from the one below."""
    level: dict[tuple, dict] = {}
    for r in rows:
        if r["value"] is not None:
            k = (r["run_id"], r["key"], r["step"] // WIDTHS[0])
            _fold(level, k, _leaf(r["step"], r["value"], r["wall_time"]))
    out = []
    for lv in range(LEVELS):
        if lv:
            below, level = level, {}
            for (run_id, key, bucket), agg in below.items():
                _fold(level, (run_id, key, bucket // FANOUT), agg)
        out += [
            {"run_id": run_id, "key": key, "level": lv, "bucket": bucket, **agg}
            for (run_id, key, bucket), agg in level.items()
        ]
    return out


def _flag_row(r: dict) -> dict:
    """A non-finite point's row at level FLAGGED."""
    code = FLAG_CODES[r["flag"]]
    return {
        "run_id": r["run_id"],
        "key": r["key"],
        "level": FLAGGED,
        "bucket": r["step"],
        **_leaf(r["step"], code, r["wall_time"]),
    }


def _chunks(items: list, size: int = _CHUNK):
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _spans(buckets: list[int]) -> list[tuple[int, int]]:
    """Sorted bucket numbers as runs of consecutive ones: [(first, last), ...]."""
    spans: list[list[int]] = []
    for b in buckets:
        if spans and b == spans[-1][1] + 1:
            spans[-1][1] = b
        else:
            spans.append([b, b])
    return [(a, b) for a, b in spans]


def _existing_steps(session: Session, rows: list[dict]) -> set[tuple]:
    """The (run, key, step) of the batch that are already stored: one index range per series,
    empty (and cheap) when a run only logs new steps."""
    ranges: dict[tuple, list[int]] = {}
    for r in rows:
        rng = ranges.setdefault((r["run_id"], r["key"]), [r["step"], r["step"]])
        rng[0], rng[1] = min(rng[0], r["step"]), max(rng[1], r["step"])
    wanted = {(r["run_id"], r["key"], r["step"]) for r in rows}
    found: set[tuple] = set()
    p = MetricPoint
    for (run_id, key), (lo, hi) in ranges.items():
        q = select(p.step).where(p.run_id == run_id, p.key == key, p.step >= lo, p.step <= hi)
        found.update(k for k in ((run_id, key, s) for s in session.scalars(q)) if k in wanted)
    return found


def _store_rollups(session: Session, rows: list[dict], *, replace: bool) -> None:
    """Upsert rollup rows: merged with the stored bucket, or replacing it (`replace`)."""
    if not rows:
        return
    r = MetricRollup.__table__.c  # the stored row
    up = _insert(session, MetricRollup)
    ex = up.excluded  # the batch's row
    if replace:
        set_ = {f: getattr(ex, f) for f in _FIELDS}
    else:

        def pick(cond, which: str) -> dict:
            return {
                f"{which}_{f}": case(
                    (cond, getattr(ex, f"{which}_{f}")), else_=getattr(r, f"{which}_{f}")
                )
                for f in ("step", "value", "time")
            }

        set_ = {
            **pick(ex.min_value < r.min_value, "min"),
            **pick(ex.max_value > r.max_value, "max"),
            **pick(ex.last_step >= r.last_step, "last"),
        }
    up = up.on_conflict_do_update(index_elements=["run_id", "key", "level", "bucket"], set_=set_)
    for chunk in _chunks(rows):
        session.execute(up, chunk)


def _delete_buckets(session: Session, run_id: int, key: str, level: int, buckets: list[int]):
    m = MetricRollup
    for chunk in _chunks(buckets):
        session.execute(
            delete(m).where(m.run_id == run_id, m.key == key, m.level == level, m.bucket.in_(chunk))
        )


def _recompute(session: Session, run_id: int, key: str, steps: set[int]) -> None:
    """Rebuild every bucket holding one of `steps` from what is stored now: level 0 from the
    points, each coarser level from the four buckets below it. A bucket left with no finite
    point is deleted."""
    p, m = MetricPoint, MetricRollup
    buckets = sorted({s // WIDTHS[0] for s in steps})
    for lv in range(LEVELS):
        if lv:
            buckets = sorted({b // FANOUT for b in buckets})
        aggs: dict[tuple, dict] = {}
        for lo, hi in _spans(buckets):
            if lv == 0:
                q = select(p.step, p.value, p.wall_time).where(
                    p.run_id == run_id,
                    p.key == key,
                    p.step >= lo * WIDTHS[0],
                    p.step < (hi + 1) * WIDTHS[0],
                    p.value.is_not(None),
                )
                for s, v, t in session.execute(q):
                    _fold(aggs, (s // WIDTHS[0],), _leaf(s, v, t))
            else:
                cols = [getattr(m, f) for f in _FIELDS]
                q = select(m.bucket, *cols).where(
                    m.run_id == run_id,
                    m.key == key,
                    m.level == lv - 1,
                    m.bucket >= lo * FANOUT,
                    m.bucket < (hi + 1) * FANOUT,
                )
                for b, *vals in session.execute(q):
                    _fold(aggs, (b // FANOUT,), dict(zip(_FIELDS, vals, strict=True)))
        rows = [
            {"run_id": run_id, "key": key, "level": lv, "bucket": b, **agg}
            for (b,), agg in aggs.items()
        ]
        _store_rollups(session, rows, replace=True)
        _delete_buckets(session, run_id, key, lv, [b for b in buckets if (b,) not in aggs])


def write_points(session: Session, rows: Iterable[dict]) -> int:
    """Upsert rows in batches: writing the same point twice replaces it. Rollups of new points
    merge the batch's per-bucket min, max and last into what is stored; the buckets of a point
    written again are recomputed, so its old value is gone from them too."""
    # One row per (run, key, step), the batch's last: a statement never updates a row twice.
    rows = list({(r["run_id"], r["key"], r["step"]): r for r in rows}.values())
    if not rows:
        return 0
    again = _existing_steps(session, rows)
    stmt = _insert(session, MetricPoint)
    stmt = stmt.on_conflict_do_update(
        index_elements=["run_id", "key", "step"],
        set_={
            "value": stmt.excluded.value,
            "flag": stmt.excluded.flag,
            "wall_time": stmt.excluded.wall_time,
        },
    )
    for chunk in _chunks(rows):
        session.execute(stmt, chunk)
    fresh = [r for r in rows if (r["run_id"], r["key"], r["step"]) not in again]
    _store_rollups(session, _rollup_rows(fresh), replace=False)
    _store_rollups(session, [_flag_row(r) for r in rows if r["flag"]], replace=True)
    replayed: dict[tuple, set[int]] = defaultdict(set)
    for run_id, key, step in again:
        replayed[(run_id, key)].add(step)
    by_key = {(r["run_id"], r["key"], r["step"]): r for r in rows}
    for (run_id, key), steps in replayed.items():
        now_finite = [s for s in steps if by_key[(run_id, key, s)]["flag"] is None]
        _delete_buckets(session, run_id, key, FLAGGED, sorted(now_finite))
        _recompute(session, run_id, key, steps)
    return len(rows)


def rebuild_rollups(session: Session, run_id: int, key: str | None = None) -> None:
    """Recompute a run's rollups (every key, or one) from its points: for data written before
    rollups listed non-finite points or recomputed replayed buckets."""
    p, m = MetricPoint, MetricRollup
    keys = (
        [key]
        if key is not None
        else list(session.scalars(select(p.key).where(p.run_id == run_id).distinct()))
    )
    for k in keys:
        session.execute(delete(m).where(m.run_id == run_id, m.key == k))
        q = select(p.step, p.value, p.flag, p.wall_time).where(p.run_id == run_id, p.key == k)
        rows = [
            {"run_id": run_id, "key": k, "step": s, "value": v, "flag": f, "wall_time": t}
            for s, v, f, t in session.execute(q)
        ]
        _store_rollups(session, _rollup_rows(rows), replace=True)
        _store_rollups(session, [_flag_row(r) for r in rows if r["flag"]], replace=True)


Point = dict  # {"step", "value", "time", "flag"}
Spec = tuple[str, int, int]  # one series to read: key, first step, last step
LOWEST, HIGHEST = -(2**31), 2**31 - 1  # steps beyond any stored one (PostgreSQL's int4)
_KEYS_PER_QUERY = 16  # series per statement: a few dozen UNION ALL terms each


def _raw(session: Session, run_id: int, key: str, start: int, end: int | None) -> list[Point]:
    p = MetricPoint
    q = select(p.step, p.value, p.wall_time, p.flag)
    q = q.where(p.run_id == run_id, p.key == key, p.step >= start)
    if end is not None:
        q = q.where(p.step <= end)
    rows = session.connection().execute(q.order_by(p.step))
    return [{"step": s, "value": v, "time": t, "flag": f} for s, v, t, f in rows]


def _pick(points: list[Point], limit: int = 6) -> list[Point]:
    """At most `limit` of `points` (in step order): the finite minimum, maximum and last, then
    the first point of each flag ('nan', 'inf', '-inf')."""
    finite = [p for p in points if p["value"] is not None]
    chosen: dict[int, Point] = {}
    if finite:
        for p in (
            min(finite, key=lambda p: p["value"]),
            max(finite, key=lambda p: p["value"]),
            finite[-1],
        ):
            chosen.setdefault(p["step"], p)
    for p in points:
        if p["flag"] and not any(c["flag"] == p["flag"] for c in chosen.values()):
            chosen.setdefault(p["step"], p)
    return sorted(list(chosen.values())[:limit], key=lambda p: p["step"])


def _thin(points: list[Point], max_points: int) -> list[Point]:
    """At most `max_points` of `points`: consecutive chunks, each reduced to its extremes and
    its first point of each flag."""
    if len(points) <= max_points:
        return points
    per_chunk = 3 + len({p["flag"] for p in points if p["flag"]})
    groups = max(1, max_points // per_chunk)
    limit = max_points // groups
    size = -(-len(points) // groups)
    return [q for i in range(0, len(points), size) for q in _pick(points[i : i + size], limit)]


def _cover(a: int, b: int, top: int) -> tuple[list[tuple[int, int, int]], list[tuple[int, int]]]:
    """[a, b] as whole buckets of levels `top` and finer, coarsest first: ([(level, first
    bucket, last bucket)], [(first step, last step)] of the rest, each under 16 steps). Inside
    one bucket of level top + 1 that is at most 3 buckets per level and side."""
    pieces: list[tuple[int, int, int]] = []
    rest: list[tuple[int, int]] = []

    def go(a: int, b: int, level: int) -> None:
        if a > b:
            return
        if level < 0:
            rest.append((a, b))
            return
        w = WIDTHS[level]
        first, last = -(-a // w), (b + 1) // w - 1
        if first > last:
            go(a, b, level - 1)
            return
        pieces.append((level, first, last))
        go(a, first * w - 1, level - 1)
        go((last + 1) * w, b, level - 1)

    go(a, b, top)
    return pieces, rest


class _Plan:
    """How one series is read: exactly, or from level `level`'s buckets with the partial
    buckets at the edges folded from finer buckets and a few points."""

    def __init__(self, key: str, start: int, end: int, max_points: int, flagged: int):
        self.key, self.start, self.end, self.max_points = key, start, end, max_points
        span = end - start + 1
        self.exact = span <= max_points
        if self.exact:
            return
        # Few non-finite points: every one is kept. Many: a bucket keeps its first of each flag.
        self.per_bucket, budget = (
            (6, max_points) if flagged > max_points // 2 else (3, max_points - flagged)
        )
        self.level = next(
            (lv for lv, w in enumerate(WIDTHS) if self.per_bucket * (span // w + 2) <= budget),
            LEVELS - 1,  # wider than the coarsest level allows: its buckets, thinned after
        )
        w = WIDTHS[self.level]
        self.first_full = -(-start // w)  # first bucket wholly inside the range
        self.last_full = (end + 1) // w - 1  # last bucket wholly inside the range
        self.whole = self.first_full <= self.last_full
        if self.whole:  # head and tail (partial buckets) each folded into one min, max, last
            self.head_end = self.first_full * w - 1
            self.edges = [(start, self.head_end), ((self.last_full + 1) * w, end)]
        else:  # the range lies within two buckets: one min, max and last for all of it
            self.head_end = start - 1
            self.edges = [(start, end)]
        self.pieces: list[tuple[int, int, int]] = []
        self.rest: list[tuple[int, int]] = []
        for a, b in self.edges:
            pieces, rest = _cover(a, b, self.level - 1)
            self.pieces += pieces
            self.rest += rest
        if self.whole:
            self.pieces.append((self.level, self.first_full, self.last_full))

    def assemble(self, rollups: list[tuple], raw: list[tuple], first: tuple | None) -> list[Point]:
        """The series from its rows: rollups (level, bucket, 9 fields), raw points (step,
        value, time, flag) and the range's first point (head only)."""
        edges: list[dict] = [{} for _ in self.edges]
        whole: list[tuple] = []
        flagged: list[Point] = []

        def edge(step: int) -> dict:
            return edges[0] if step <= self.head_end or len(edges) == 1 else edges[1]

        for level, bucket, *vals in rollups:
            if level == FLAGGED:
                flagged.append(
                    {"step": bucket, "value": None, "time": vals[2], "flag": CODE_FLAGS[vals[1]]}
                )
            elif level == self.level and self.whole:
                whole.append((bucket, vals))
            else:
                _fold(edge(bucket * WIDTHS[level]), (), dict(zip(_FIELDS, vals, strict=True)))
        for step, value, t, _flag in raw:
            if value is not None:
                _fold(edge(step), (), _leaf(step, value, t))
        out: list[Point] = []
        if first is not None:  # the range's first point: the line starts there
            out.append({"step": first[0], "value": first[1], "time": first[2], "flag": first[3]})

        def extremes(agg: dict) -> None:  # an edge's min, max and last, in step order
            pts = {tuple(agg[f"{w}_{f}"] for f in ("step", "value", "time")) for w in MML}
            out.extend({"step": s, "value": v, "time": t, "flag": None} for s, v, t in sorted(pts))

        for agg in edges[0].values():
            extremes(agg)
        for _, (s1, v1, t1, s2, v2, t2, s3, v3, t3) in sorted(whole):
            pts = {(s1, v1, t1), (s2, v2, t2), (s3, v3, t3)}
            out += [{"step": s, "value": v, "time": t, "flag": None} for s, v, t in sorted(pts)]
        if len(edges) > 1:
            for agg in edges[1].values():
                extremes(agg)
        if self.per_bucket == 6:  # many non-finite points: each bucket's first of each flag
            by_bucket: dict[int, list[Point]] = defaultdict(list)
            for p in flagged:
                by_bucket[p["step"] // WIDTHS[self.level]].append(p)
            flagged = [q for b in sorted(by_bucket) for q in _pick(by_bucket[b])]
        if flagged or first is not None:
            out = sorted({p["step"]: p for p in out + flagged}.values(), key=lambda p: p["step"])
        # Over max_points only when even the coarsest level has too many buckets.
        return _thin(out, self.max_points)


def _points_of(i: int, a: int, b: int) -> str:
    """FROM/WHERE of series i's points in [a, b] (numbers inlined as integers, keys bound)."""
    return (
        f"FROM metric_points WHERE run_id = :run AND key = :k{int(i)} "
        f"AND step >= {int(a)} AND step <= {int(b)}"
    )


def _rollups_of(i: int, level: int, a: int, b: int) -> str:
    """FROM/WHERE of series i's rollup rows of `level`, buckets a to b."""
    return (
        f"FROM metric_rollups WHERE run_id = :run AND key = :k{int(i)} "
        f"AND level = {int(level)} AND bucket >= {int(a)} AND bucket <= {int(b)}"
    )


def _union(session: Session, selects: list[str], params: dict) -> list[tuple]:
    if not selects:
        return []
    return session.connection().execute(text(" UNION ALL ".join(selects)), params).all()


def _read_specs(
    session: Session, run_id: int, specs: list[Spec], max_points: int, *, tight: bool
) -> dict[str, list[Point]]:
    """Several series of one run in three statements (whatever their number): their first and
    last steps and non-finite counts, the rollup rows, the few raw points. `tight`: a series
    spans its first to last point inside [start, end], not [start, end] itself."""
    params: dict = {"run": run_id, **{f"k{i}": key for i, (key, _, _) in enumerate(specs)}}
    q1 = [
        f"SELECT {i}, (SELECT MIN(step) {_points_of(i, a, b)}), "
        f"(SELECT MAX(step) {_points_of(i, a, b)}), "
        f"(SELECT COUNT(*) {_rollups_of(i, FLAGGED, a, b)})"
        for i, (_, a, b) in enumerate(specs)
    ]
    plans: dict[int, _Plan] = {}
    for i, lo, hi, flagged in _union(session, q1, params):
        key, start, end = specs[i]
        if tight:
            if lo is None:
                continue
            start, end = lo, hi
        if end >= start:
            plans[i] = _Plan(key, start, end, max_points, flagged)
    q2, q3 = [], []
    point_cols, rollup_cols = "step, value, wall_time, flag", "level, bucket, " + ", ".join(_FIELDS)
    for i, plan in plans.items():
        if plan.exact:
            q3.append(f"SELECT {i}, 0, {point_cols} {_points_of(i, plan.start, plan.end)}")
            continue
        for lv, a, b in [*plan.pieces, (FLAGGED, plan.start, plan.end)]:
            q2.append(f"SELECT {i}, {rollup_cols} {_rollups_of(i, lv, a, b)}")
        for a, b in plan.rest:
            q3.append(f"SELECT {i}, 0, {point_cols} {_points_of(i, a, b)}")
        if plan.whole and plan.start <= plan.head_end:  # the head's first point
            head = _points_of(i, plan.start, plan.head_end)
            q3.append(
                f"SELECT * FROM (SELECT {i}, 1, {point_cols} {head} ORDER BY step LIMIT 1) AS f{i}"
            )
    rollups: dict[int, list[tuple]] = defaultdict(list)
    for i, *row in _union(session, q2, params):
        rollups[i].append(row)
    raw: dict[int, list[tuple]] = defaultdict(list)
    first: dict[int, tuple] = {}
    for i, is_first, *row in _union(session, q3, params):
        if is_first:
            first[i] = tuple(row)
        else:
            raw[i].append(row)
    out: dict[str, list[Point]] = {}
    for i, (key, _, _) in enumerate(specs):
        plan = plans.get(i)
        if plan is None:
            out[key] = []
        elif plan.exact:
            out[key] = [
                {"step": s, "value": v, "time": t, "flag": f} for s, v, t, f in sorted(raw[i])
            ]
        else:
            out[key] = plan.assemble(rollups[i], raw[i], first.get(i))
    return out


def series(
    session: Session, *, run_id: int, key: str, start: int, end: int, max_points: int
) -> list[Point]:
    """The points of one series in [start, end]: exact when the range has at most
    `max_points` steps, else at most `max_points` points keeping each bucket's extremes and
    the non-finite points (thinned to each bucket's first of each flag when there are many)."""
    if end < start:
        return []
    return _read_specs(session, run_id, [(key, start, end)], max_points, tight=False)[key]


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
    """Per key, the points in [start_step, end_step] (all keys of the run when keys is None).
    With max_points, each series spans its own first to last point in that window."""
    if keys is None:
        keys = list(
            session.scalars(select(MetricPoint.key).where(MetricPoint.run_id == run_id).distinct())
        )
    keys = list(dict.fromkeys(keys))
    if max_points is None:
        lo, hi = start_step if start_step is not None else 0, end_step
        return {key: _raw(session, run_id, key, lo, hi) for key in keys}
    lo = max(start_step, LOWEST) if start_step is not None else LOWEST
    hi = min(end_step, HIGHEST) if end_step is not None else HIGHEST
    out: dict[str, list[Point]] = {}
    for n in range(0, len(keys), _KEYS_PER_QUERY):
        specs = [(key, lo, hi) for key in keys[n : n + _KEYS_PER_QUERY]]
        out.update(_read_specs(session, run_id, specs, max_points, tight=True))
    return out


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
