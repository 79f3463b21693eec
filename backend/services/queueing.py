"""Putting stored runs on the queue, and the one limit on how many may wait: the api's routes
call these after committing the runs' rows (a worker re-reads a run by id)."""

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from backend.db.models import Run
from backend.queue import enqueue_training
from backend.services import lifecycle
from backend.settings import Settings


class QueueUnavailable(RuntimeError):
    """The broker refused the tasks (HTTP 503); the runs not queued are marked failed."""


class QueueFull(RuntimeError):
    """More runs would wait than `max_waiting_runs` allows (HTTP 429)."""


def waiting_runs(session: Session) -> int:
    """Runs not yet ended: queued, running or lost (about to be queued again)."""
    return session.scalar(
        select(func.count()).select_from(Run).where(Run.status.not_in(lifecycle.FINAL))
    )


def check_room(*, session: Session, settings: Settings, runs: list[Run]) -> None:
    """Refuse a request whose new runs (added to the session, not committed) would leave more
    than `max_waiting_runs` runs unfinished: a client looping on the experiment endpoint must
    not queue thousands of runs. The caller then drops the session without committing."""
    session.flush()
    waiting = waiting_runs(session)  # the new runs included
    limit = settings.max_waiting_runs
    if waiting > limit:
        before = waiting - len(runs)
        raise QueueFull(
            f"{before} runs are queued or running and this request adds {len(runs)}; at most "
            f"{limit} may wait at once (DISTILLSCOPE_MAX_WAITING_RUNS): wait for some to end, "
            "or cancel some"
        )


def enqueue_all(session: Session, runs: list[Run]) -> None:
    """Queue stored (committed) runs. If the broker fails, the runs not yet queued are marked
    failed with the reason, never left queued forever, and QueueUnavailable says which."""
    for i, run in enumerate(runs):
        try:
            enqueue_training(run.id)
        except Exception as exc:
            for left in runs[i:]:
                lifecycle.mark_failed(run=left, error=f"could not queue: {exc}")
            session.commit()
            ids = ", ".join(str(r.id) for r in runs[i:])
            raise QueueUnavailable(
                f"run(s) {ids} were stored but could not be queued: the broker is "
                f"unreachable ({type(exc).__name__}: {exc})"
            ) from exc
