"""Where the training loop sends its numbers: `log(points, step)` once per optimizer step with
every point of that step (train and, at eval steps, eval). The worker plugs in a database
logger (worker/metrics.py); tests and the demo kit use ListLogger."""

from typing import Protocol


class MetricLogger(Protocol):
    def log(self, points: dict[str, float], step: int) -> None: ...

    def flush(self) -> bool:
        """Store what is buffered; True when everything logged so far is stored."""
        ...

    def close(self) -> None: ...


class ListLogger:
    """Keeps every point in memory: rows of (step, key, value)."""

    def __init__(self) -> None:
        self.rows: list[tuple[int, str, float]] = []

    def log(self, points: dict[str, float], step: int) -> None:
        self.rows.extend((step, k, v) for k, v in points.items())

    def flush(self) -> bool:
        return True

    def close(self) -> None:
        pass

    def series(self, key: str) -> list[tuple[int, float]]:
        return [(s, v) for s, k, v in self.rows if k == key]


class NullLogger:
    """Drops every point (the benchmarks time the loop, not its storage)."""

    def log(self, points: dict[str, float], step: int) -> None:
        pass

    def flush(self) -> bool:
        return True

    def close(self) -> None:
        pass
