"""Every change of a run's status, in one place: create (queued), claim (running), heartbeat,
finish (succeeded / failed / cancelled), interrupt (a worker told to stop: queued again), lost
(its worker died) and requeue. The api and the workers both call these; nothing else writes a
run's status.

    queued ──claim──▶ running ──finish──▶ succeeded | failed | cancelled   (FINAL)
      ▲                 │  ╲
      │           interrupt  no heartbeat / process gone
      │                 │      ▼
      └──── requeue ◀───┴─── lost ──(attempts used up)──▶ failed

`lost` is not an end: the database is the source of truth, so the sweeper (any api process)
queues a lost run again, whatever the broker did with its task, and the run resumes from its
latest checkpoint. A run ends only in FINAL."""

import logging
import os
import socket
from collections.abc import Callable
from datetime import datetime, timedelta
from enum import Enum

from sqlalchemy import select
from sqlalchemy.orm import Session

from backend.db.models import Run, RunStatus, utcnow
from backend.db.session import transaction
from backend.schemas import RunConfig
from backend.settings import Settings

log = logging.getLogger(__name__)

FINAL = RunStatus.FINAL
RESUMABLE = RunStatus.RESUMABLE
ALL = frozenset({RunStatus.QUEUED, RunStatus.RUNNING, RunStatus.LOST, *FINAL})


class Conflict(ValueError):
    """The run's state does not allow the request (HTTP 409); the message says why."""


class Claim(Enum):
    SKIP = "skip"  # nothing to do (unknown, ended, or cancelled before it started)
    BUSY = "busy"  # another live worker holds it: try again later


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _aware(t: datetime | None) -> datetime | None:
    """SQLite hands back naive UTC datetimes; PostgreSQL aware ones."""
    if t is not None and t.tzinfo is None:
        return t.replace(tzinfo=utcnow().tzinfo)
    return t


def _gave_up(run: Run) -> str:
    return (
        f"gave up after {run.attempts} attempts: the worker running it died each time "
        "(out of memory?)"
    )


# ---- the worker's side -------------------------------------------------------------------


def claim(run_id: int, *, settings: Settings) -> RunConfig | Claim:
    """Take a queued (or lost) run for this worker process; returns its config, or why not."""
    with transaction() as session:
        run = session.get(Run, run_id, with_for_update=True)
        if run is None:
            log.warning("run %s does not exist; dropping its task", run_id)
            return Claim.SKIP
        if run.status in FINAL:
            log.info("run %s is already %s; nothing to do", run_id, run.status)
            return Claim.SKIP
        if run.cancel_requested:
            _end(run, RunStatus.CANCELLED)
            return Claim.SKIP
        fresh = utcnow() - timedelta(seconds=settings.heartbeat_timeout_s)
        beat = _aware(run.heartbeat_at)
        if run.status == RunStatus.RUNNING and beat is not None and beat > fresh:
            return Claim.BUSY  # a duplicate delivery while the owner is alive
        if run.attempts >= settings.max_attempts:
            _end(run, RunStatus.FAILED, _gave_up(run))
            return Claim.SKIP
        run.attempts += 1
        run.status = RunStatus.RUNNING
        run.started_at = run.started_at or utcnow()
        run.heartbeat_at = utcnow()
        run.worker_host = worker_id()
        run.error = None
        run.finished_at = None
        return RunConfig.model_validate(run.config)


def heartbeat(run_id: int) -> bool:
    """Record that the worker lives; returns True when the run should stop (cancel asked, or
    the run is gone)."""
    with transaction() as session:
        run = session.get(Run, run_id)
        if run is None:
            return True
        if run.status == RunStatus.RUNNING:
            run.heartbeat_at = utcnow()
        return bool(run.cancel_requested)


def finish(run_id: int, status: str, error: str | None = None) -> None:
    """The worker's last word on a run: succeeded, failed (with the reason) or cancelled."""
    assert status in FINAL, status
    with transaction() as session:
        run = session.get(Run, run_id)
        if run is not None:
            _end(run, status, error)
            run.heartbeat_at = utcnow()


def interrupt(run_id: int, enqueue: Callable[[int], None]) -> str:
    """The worker was told to stop (Ctrl-C of `up`, a container stop) after saving a
    checkpoint: the run goes back to the queue and this attempt does not count against it.
    Returns the new status: queued, or lost when the broker could not take the task (the
    sweeper then queues it)."""
    with transaction() as session:
        run = session.get(Run, run_id)
        if run is None or run.status in FINAL:
            return run.status if run is not None else RunStatus.LOST
        run.status = RunStatus.QUEUED
        run.attempts = max(0, run.attempts - 1)
        run.heartbeat_at, run.worker_host = None, None
    try:
        enqueue(run_id)
        return RunStatus.QUEUED
    except Exception as exc:  # noqa: BLE001 - the sweeper takes over
        log.warning("run %s: could not queue it again (%s); the sweeper will", run_id, exc)
        with transaction() as session:
            run = session.get(Run, run_id)
            if run is not None and run.status == RunStatus.QUEUED:
                run.status = RunStatus.LOST
                run.error = f"interrupted, and could not be queued again: {exc}"
        return RunStatus.LOST


# ---- the api's side ----------------------------------------------------------------------


def request_cancel(*, run: Run) -> Run:
    """A queued or lost run is cancelled at once; a running one stops at its next step (the
    worker keeps its last checkpoint and marks it cancelled)."""
    if run.status in FINAL:
        raise Conflict(f"run {run.id} has already ended ({run.status})")
    run.cancel_requested = True
    if run.status in RESUMABLE:
        _end(run, RunStatus.CANCELLED)
    return run


def check_deletable(run: Run) -> None:
    if run.status not in FINAL:
        raise Conflict(f"run {run.id} is {run.status}: cancel it before deleting it")


def mark_failed(*, run: Run, error: str) -> None:
    """A run that could not even be queued (the broker is down)."""
    _end(run, RunStatus.FAILED, error)


def _process_gone(worker: str | None) -> bool:
    """Whether `worker` (host:pid) names a process of this machine that no longer exists: an
    embedded-default worker killed outright, noticed without waiting for the timeout."""
    if not worker or ":" not in worker:
        return False
    host, _, pid = worker.rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except (PermissionError, OverflowError):
        return False
    return False


def mark_lost(*, session: Session, timeout_s: float) -> list[int]:
    """Running runs whose worker is gone (no heartbeat for `timeout_s`, or its process on this
    machine has exited): `lost`, saying why. Returns their ids."""
    cutoff = utcnow() - timedelta(seconds=timeout_s)
    lost = []
    for run in session.scalars(select(Run).where(Run.status == RunStatus.RUNNING)).all():
        beat = _aware(run.heartbeat_at)
        stale = beat is None or beat < cutoff
        gone = _process_gone(run.worker_host)
        if not (stale or gone):
            continue
        why = "its process has exited" if gone else f"no heartbeat for more than {timeout_s:g} s"
        run.status = RunStatus.LOST
        run.error = (
            f"lost at step {run.step}: worker {run.worker_host} stopped ({why}); "
            "it is queued again and resumes from its latest checkpoint"
        )
        lost.append(run.id)
    return lost


def requeue_lost(*, session: Session, settings: Settings) -> list[int]:
    """Lost runs go back to the queue (the caller commits, then sends their tasks), unless they
    were cancelled meanwhile or have used up their attempts (then failed)."""
    again = []
    for run in session.scalars(select(Run).where(Run.status == RunStatus.LOST)).all():
        if run.cancel_requested:
            _end(run, RunStatus.CANCELLED)
        elif run.attempts >= settings.max_attempts:
            _end(run, RunStatus.FAILED, _gave_up(run))
        else:
            run.status = RunStatus.QUEUED
            run.heartbeat_at = None
            again.append(run.id)
    return again


def sweep(*, settings: Settings, enqueue: Callable[[int], None]) -> list[int]:
    """One pass of the sweeper: mark runs whose worker is gone lost, and queue lost runs again.
    Idempotent and safe in several api processes at once (a duplicate task finds the run
    claimed and waits). Returns the ids queued again."""
    with transaction() as session:
        mark_lost(session=session, timeout_s=settings.heartbeat_timeout_s)
        again = requeue_lost(session=session, settings=settings)
    queued = []
    for run_id in again:
        try:
            enqueue(run_id)
            queued.append(run_id)
            log.warning("run %s lost its worker: queued again", run_id)
        except Exception as exc:  # noqa: BLE001 - try again at the next sweep
            with transaction() as session:
                run = session.get(Run, run_id)
                if run is not None and run.status == RunStatus.QUEUED:
                    run.status = RunStatus.LOST
                    run.error = f"lost its worker, and could not be queued again yet: {exc}"
    return queued


def _end(run: Run, status: str, error: str | None = None) -> None:
    run.status, run.error, run.finished_at = status, error, utcnow()
