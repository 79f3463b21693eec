"""backend/services/lifecycle.py, the one owner of a run's status: which states end a run,
which may be taken again, and the sweeper that queues again a run whose worker died, whatever
the broker did with its task (the embedded SQLite broker never redelivers it)."""

import subprocess
import sys
from datetime import timedelta

import pytest

from backend.db.models import Run, RunStatus, utcnow
from backend.db.session import transaction
from backend.services import lifecycle
from backend.settings import get_settings


@pytest.fixture
def db(env):
    from backend.db.migrate import upgrade

    upgrade()


def _run(status: str, **kw) -> int:
    with transaction() as s:
        run = Run(name="r", tags=[], config={}, step=5, total_steps=10, latest={}, **kw)
        run.status = status
        s.add(run)
        s.flush()
        return run.id


def _get(run_id: int) -> Run:
    with transaction() as s:
        return s.get(Run, run_id)


def test_lost_is_resumable_not_final():
    assert RunStatus.LOST not in lifecycle.FINAL
    assert RunStatus.LOST in lifecycle.RESUMABLE
    assert lifecycle.FINAL == {"succeeded", "failed", "cancelled"}
    assert lifecycle.ALL == lifecycle.FINAL | {"queued", "running", "lost"}


def test_a_run_whose_heartbeat_stopped_is_queued_again(db):
    settings = get_settings()
    stale = _run(
        RunStatus.RUNNING,
        heartbeat_at=utcnow() - timedelta(seconds=settings.heartbeat_timeout_s + 5),
        worker_host="gpu-7:123",
        attempts=1,
    )
    fresh = _run(RunStatus.RUNNING, heartbeat_at=utcnow(), worker_host="gpu-7:124", attempts=1)
    sent = []
    assert lifecycle.sweep(settings=settings, enqueue=sent.append) == [stale]
    assert sent == [stale]
    run = _get(stale)
    assert run.status == "queued" and run.heartbeat_at is None
    assert "lost at step 5: worker gpu-7:123 stopped (no heartbeat" in run.error
    assert "resumes from its latest checkpoint" in run.error
    assert _get(fresh).status == "running"
    assert lifecycle.sweep(settings=settings, enqueue=sent.append) == []  # idempotent


def test_a_run_whose_worker_process_is_gone_is_queued_again_at_once(db):
    """On this machine a dead worker's pid is known gone: no need to wait for the timeout."""
    import socket

    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()  # a pid that no longer exists
    gone = _run(
        RunStatus.RUNNING,
        heartbeat_at=utcnow(),
        worker_host=f"{socket.gethostname()}:{child.pid}",
        attempts=1,
    )
    alive = _run(
        RunStatus.RUNNING, heartbeat_at=utcnow(), worker_host=lifecycle.worker_id(), attempts=1
    )
    sent = []
    assert lifecycle.sweep(settings=get_settings(), enqueue=sent.append) == [gone]
    assert "its process has exited" in _get(gone).error
    assert _get(alive).status == "running"


def test_a_lost_run_that_used_its_attempts_fails_and_a_cancelled_one_is_cancelled(db):
    settings = get_settings()
    spent = _run(RunStatus.LOST, attempts=settings.max_attempts)
    cancelled = _run(RunStatus.LOST, attempts=1, cancel_requested=True)
    sent = []
    assert lifecycle.sweep(settings=settings, enqueue=sent.append) == []
    assert _get(spent).status == "failed"
    assert f"gave up after {settings.max_attempts} attempts" in _get(spent).error
    assert _get(cancelled).status == "cancelled"


def test_a_broker_that_refuses_leaves_the_run_lost_for_the_next_sweep(db):
    settings = get_settings()
    run_id = _run(RunStatus.LOST, attempts=1)

    def refuse(_run_id):
        raise ConnectionError("broker down")

    assert lifecycle.sweep(settings=settings, enqueue=refuse) == []
    run = _get(run_id)
    assert run.status == "lost" and "broker down" in run.error
    sent = []
    assert lifecycle.sweep(settings=settings, enqueue=sent.append) == [run_id]
    assert _get(run_id).status == "queued"


def test_cancel_and_delete_follow_the_sets(db):
    with transaction() as s:
        lost = s.get(Run, _run(RunStatus.LOST))
        lifecycle.request_cancel(run=lost)
        assert lost.status == "cancelled"
        with pytest.raises(lifecycle.Conflict, match="already ended"):
            lifecycle.request_cancel(run=lost)
        queued = s.get(Run, _run(RunStatus.QUEUED))
        with pytest.raises(lifecycle.Conflict, match="cancel it before deleting"):
            lifecycle.check_deletable(queued)
        lifecycle.check_deletable(lost)
