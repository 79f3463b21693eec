"""The worker's MetricLogger: buffers each step's points and writes them to the database in
batches (one transaction per flush, never one per point), with the run's progress,
heartbeat and latest values in the same transaction."""

import time

from backend.db.models import Run, utcnow
from backend.db.session import transaction
from backend.services.metrics import point_row, write_points


class DatabaseLogger:
    def __init__(self, run_id: int, *, flush_seconds: float = 0.5, max_rows: int = 5000):
        self.run_id = run_id
        self.flush_seconds, self.max_rows = flush_seconds, max_rows
        self.rows: list[dict] = []
        self.latest: dict[str, float | None] = {}
        self.step = 0
        self._last_flush = time.monotonic()

    def log(self, points: dict[str, float], step: int) -> None:
        now = time.time()
        for key, value in points.items():
            row = point_row(self.run_id, key, step, value, now)
            self.rows.append(row)
            self.latest[key] = row["value"]
        self.step = step
        # A step's points are added together, so a flush never splits a step.
        if (
            len(self.rows) >= self.max_rows
            or time.monotonic() - self._last_flush >= self.flush_seconds
        ):
            self.flush()

    def flush(self) -> None:
        rows, self.rows = self.rows, []
        with transaction() as session:
            write_points(session, rows)
            run = session.get(Run, self.run_id)
            if run is not None:
                run.step = max(run.step or 0, self.step)
                run.heartbeat_at = utcnow()
                run.latest = {**(run.latest or {}), **self.latest}
        self._last_flush = time.monotonic()

    def close(self) -> None:
        self.flush()
