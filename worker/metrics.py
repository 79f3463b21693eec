"""The worker's MetricLogger: buffers each step's points and writes them to the database in
batches (one transaction per flush, never one per point), with the run's progress,
heartbeat and latest values in the same transaction.

If the database is unreachable the points stay buffered (training goes on) and are written
by a later flush; `close` keeps trying for `outage_grace_s` before it gives up."""

import logging
import time

from sqlalchemy.exc import DBAPIError, OperationalError

from backend.db.models import Run, utcnow
from backend.db.session import transaction
from backend.services.metrics import point_row, write_points

log = logging.getLogger(__name__)


class DatabaseLogger:
    def __init__(
        self,
        run_id: int,
        *,
        flush_seconds: float = 0.5,
        max_rows: int = 5000,
        outage_grace_s: float = 120.0,
    ):
        self.run_id = run_id
        self.flush_seconds, self.max_rows = flush_seconds, max_rows
        self.outage_grace_s = outage_grace_s
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

    def _write(self) -> None:
        """Write everything buffered; raises if the database refuses (rows stay buffered)."""
        rows = self.rows
        with transaction() as session:
            write_points(session, rows)
            run = session.get(Run, self.run_id)
            if run is not None:
                run.step = max(run.step or 0, self.step)
                run.heartbeat_at = utcnow()
                run.latest = {**(run.latest or {}), **self.latest}
        del self.rows[: len(rows)]
        self._last_flush = time.monotonic()

    def flush(self) -> bool:
        """Write what is buffered; False (points kept) when the database is unreachable."""
        try:
            self._write()
            return True
        except (OperationalError, DBAPIError) as exc:
            # Keep the points; the next flush (or close) writes them.
            self._last_flush = time.monotonic()
            log.warning(
                "database unreachable, %d points kept for later: %s",
                len(self.rows),
                str(exc).splitlines()[0],
            )
            return False

    def close(self) -> None:
        deadline = time.monotonic() + self.outage_grace_s
        delay = 0.5
        while not self.flush():
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"could not write {len(self.rows)} points of run "
                    f"{self.run_id}: the database stayed unreachable for "
                    f"{self.outage_grace_s:.0f} s"
                )
            time.sleep(delay)
            delay = min(delay * 2, 5.0)
