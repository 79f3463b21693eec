"""The worker's run runner in-process on SQLite: status lifecycle, and a redelivered run
resuming from its latest checkpoint instead of starting over."""

import time
from datetime import timedelta

import pytest
import torch

from backend.db.models import MetricPoint, Run, RunStatus, utcnow
from backend.db.session import transaction
from backend.schemas import RunConfig
from backend.settings import get_settings
from worker.distill.setup import build_recipe
from worker.distill.trainer import Cancelled
from worker.metrics import DatabaseLogger
from worker.runner import Claim, run_training

CFG = RunConfig(
    name="r",
    teacher="demo-teacher",
    student="demo-student-s",
    dataset="demo",
    max_steps=20,
    batch_size=4,
    seq_len=32,
    learning_rate=3e-3,
    eval_interval=10,
    eval_batches=1,
    checkpoint_interval=5,
)


@pytest.fixture
def run_id(env):
    from backend.db.migrate import upgrade

    upgrade()
    with transaction() as s:
        run = Run(
            name="r",
            tags=[],
            config=CFG.model_dump(mode="json"),
            status="queued",
            step=0,
            total_steps=20,
            latest={},
        )
        s.add(run)
        s.flush()
        return run.id


def _points(run_id: int, key: str) -> list[MetricPoint]:
    with transaction() as s:
        return list(
            s.query(MetricPoint).filter_by(run_id=run_id, key=key).order_by(MetricPoint.step)
        )


def test_run_succeeds_and_is_not_run_twice(run_id):
    assert run_training(run_id) == RunStatus.SUCCEEDED
    with transaction() as s:
        run = s.get(Run, run_id)
        assert run.status == "succeeded" and run.step == 20 and run.finished_at
        assert run.latest["train/soft_loss"] > 0
    assert [p.step for p in _points(run_id, "train/hard_loss")] == list(range(1, 21))
    assert (get_settings().runs_dir / str(run_id) / "final" / "config.json").is_file()
    assert run_training(run_id) is Claim.SKIP  # a duplicate delivery of an ended run: no-op


def test_redelivered_run_resumes_from_its_latest_checkpoint(run_id):
    # First attempt: the worker dies after step 12 (checkpoints at 5 and 10).
    settings = get_settings()
    ckpt_dir = settings.runs_dir / str(run_id) / "checkpoints"
    recipe = build_recipe(
        CFG,
        settings,
        logger=DatabaseLogger(run_id),
        device=torch.device("cpu"),
        checkpoint_dir=ckpt_dir,
    )
    recipe.should_stop = lambda: recipe.step >= 12
    with pytest.raises(Cancelled):
        recipe.train()
    recipe.logger.flush()
    with transaction() as s:  # as the dead worker left it
        s.get(Run, run_id).status = RunStatus.RUNNING
    # While its heartbeat is fresh, another delivery waits (the owner may be alive).
    assert run_training(run_id) is Claim.BUSY
    with transaction() as s:  # the owner died: its heartbeat goes stale
        s.get(Run, run_id).heartbeat_at = utcnow() - timedelta(hours=1)
    before = {p.step: p.wall_time for p in _points(run_id, "train/soft_loss")}
    assert sorted(before) == list(range(1, 13))
    time.sleep(0.05)
    # Redelivery: the runner resumes at step 10, replays 11-12 and finishes.
    assert run_training(run_id) == RunStatus.SUCCEEDED
    after = {p.step: p.wall_time for p in _points(run_id, "train/soft_loss")}
    assert sorted(after) == list(range(1, 21))  # every step exactly once
    assert all(after[s] == before[s] for s in range(1, 11))  # not recomputed
    assert all(after[s] > before[s] for s in (11, 12))  # replayed steps replaced, not duplicated


def test_cancel_stops_a_running_run_and_keeps_its_checkpoint(run_id):
    import threading

    from backend.services.lifecycle import request_cancel

    def cancel_soon():
        while True:
            with transaction() as s:
                run = s.get(Run, run_id)
                if run.step >= 3:
                    request_cancel(run=run)
                    return
            time.sleep(0.05)

    settings = get_settings()
    original = settings.heartbeat_timeout_s
    settings.heartbeat_timeout_s = 0.4  # beat (and notice the cancel) every 0.1 s
    try:
        t = threading.Thread(target=cancel_soon)
        t.start()
        cfg = CFG.model_copy(update={"max_steps": 400})
        with transaction() as s:
            s.get(Run, run_id).config = cfg.model_dump(mode="json")
        assert run_training(run_id) == RunStatus.CANCELLED
        t.join()
    finally:
        settings.heartbeat_timeout_s = original
    with transaction() as s:
        run = s.get(Run, run_id)
        assert run.status == "cancelled" and run.finished_at and 3 <= run.step < 400
        step = run.step
    ckpts = sorted((settings.runs_dir / str(run_id) / "checkpoints").glob("step-*"))
    assert ckpts and ckpts[-1].name == f"step-{step:08d}"  # kept where it stopped


def test_a_run_that_keeps_killing_its_worker_fails_after_max_attempts(run_id):
    with transaction() as s:
        run = s.get(Run, run_id)
        run.status, run.attempts = RunStatus.LOST, get_settings().max_attempts
    assert run_training(run_id) is Claim.SKIP
    with transaction() as s:
        run = s.get(Run, run_id)
        assert run.status == "failed" and "gave up after 3 attempts" in run.error


def test_a_worker_told_to_stop_queues_its_run_again_and_the_next_resumes_it(run_id, monkeypatch):
    """SIGTERM to the worker (Ctrl-C of `up`): the run saves a checkpoint at its next step,
    goes back to `queued` with its task sent again, and that attempt does not count; the next
    delivery resumes it, every step logged once."""
    import threading

    from worker import runner

    sent = []
    monkeypatch.setattr(runner, "enqueue_training", sent.append)

    def stop_soon():
        while True:
            with transaction() as s:
                if s.get(Run, run_id).step >= 7:
                    runner.request_shutdown()
                    return
            time.sleep(0.02)

    t = threading.Thread(target=stop_soon)
    t.start()
    try:
        assert run_training(run_id) == RunStatus.QUEUED
    finally:
        t.join()
        runner._shutdown.clear()
    assert sent == [run_id]
    with transaction() as s:
        run = s.get(Run, run_id)
        assert run.status == "queued" and run.attempts == 0 and run.finished_at is None
        stopped_at = run.step
    ckpts = sorted((get_settings().runs_dir / str(run_id) / "checkpoints").glob("step-*"))
    assert ckpts[-1].name == f"step-{stopped_at:08d}"
    assert run_training(run_id) == RunStatus.SUCCEEDED
    steps = [p.step for p in _points(run_id, "train/soft_loss")]
    assert steps == list(range(1, 21))
    with transaction() as s:
        assert s.get(Run, run_id).attempts == 1
