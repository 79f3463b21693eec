"""Writing metric points: idempotent upserts on (run, key, step), in batches."""

import math
import time
from collections.abc import Iterable

from sqlalchemy.orm import Session

from backend.db.models import MetricPoint


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


def _insert(session: Session):
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    elif dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert
    else:  # pragma: no cover - the project supports SQLite and PostgreSQL
        raise RuntimeError(f"unsupported database dialect {dialect!r}")
    return insert(MetricPoint)


def write_points(session: Session, rows: Iterable[dict]) -> int:
    """Upsert rows in one statement per batch: writing the same point twice replaces it."""
    rows = list(rows)
    if not rows:
        return 0
    stmt = _insert(session)
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
    return len(rows)
