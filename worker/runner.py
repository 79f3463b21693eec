"""Run one distillation run by id: re-read it, claim it, train, record the end.

The worker owns the run's status while it runs: `running` with host and heartbeat (a thread
beats every few seconds, also through long steps), then `succeeded`, `failed` with the error
text, or `cancelled` (asked through the api; the last checkpoint is kept). A task delivered
again after its worker died resumes the run from its latest checkpoint."""

import logging
import os
import socket
import threading
import traceback
from datetime import timedelta
from enum import Enum

import torch

from backend.db.models import Run, RunStatus, utcnow
from backend.db.session import transaction
from backend.schemas import RunConfig
from backend.settings import get_settings
from worker.distill.checkpoint import latest_checkpoint
from worker.distill.setup import build_recipe
from worker.distill.trainer import Cancelled
from worker.metrics import DatabaseLogger

log = logging.getLogger(__name__)


class Claim(Enum):
    SKIP = "skip"  # nothing to do (unknown, ended, or cancelled before it started)
    BUSY = "busy"  # another live worker holds it: try again later


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _claim(run_id: int) -> RunConfig | Claim:
    settings = get_settings()
    with transaction() as session:
        run = session.get(Run, run_id, with_for_update=True)
        if run is None:
            log.warning("run %s does not exist; dropping its task", run_id)
            return Claim.SKIP
        if run.status in (RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.CANCELLED):
            log.info("run %s is already %s; nothing to do", run_id, run.status)
            return Claim.SKIP
        if run.cancel_requested:
            run.status, run.finished_at = RunStatus.CANCELLED, utcnow()
            return Claim.SKIP
        fresh = utcnow() - timedelta(seconds=settings.heartbeat_timeout_s)
        beat = run.heartbeat_at
        if beat is not None and beat.tzinfo is None:  # SQLite keeps naive UTC
            beat = beat.replace(tzinfo=fresh.tzinfo)
        if run.status == RunStatus.RUNNING and beat is not None and beat > fresh:
            return Claim.BUSY  # a duplicate delivery while the owner is alive
        if run.attempts >= settings.max_attempts:
            run.status, run.finished_at = RunStatus.FAILED, utcnow()
            run.error = (
                f"gave up after {run.attempts} deliveries: the worker running it "
                "died each time (out of memory?)"
            )
            return Claim.SKIP
        run.attempts += 1
        run.status = RunStatus.RUNNING
        run.started_at = run.started_at or utcnow()
        run.heartbeat_at = utcnow()
        run.worker_host = worker_id()
        run.error = None
        run.finished_at = None
        return RunConfig.model_validate(run.config)


def _finish(run_id: int, status: str, error: str | None = None) -> None:
    with transaction() as session:
        run = session.get(Run, run_id)
        if run is not None:
            run.status, run.error, run.finished_at = status, error, utcnow()
            run.heartbeat_at = utcnow()


class Heartbeat(threading.Thread):
    """Beats every `interval` seconds and notices a cancel request; survives database errors
    (the run goes on; the api marks it lost only if the beats stop for heartbeat_timeout_s)."""

    def __init__(self, run_id: int, interval: float):
        super().__init__(name=f"heartbeat-{run_id}", daemon=True)
        self.run_id, self.interval = run_id, interval
        self.stop_event, self.cancel_event = threading.Event(), threading.Event()

    def run(self) -> None:
        while not self.stop_event.wait(self.interval):
            try:
                with transaction() as session:
                    run = session.get(Run, self.run_id)
                    if run is None or run.cancel_requested:
                        self.cancel_event.set()
                    if run is not None and run.status == RunStatus.RUNNING:
                        run.heartbeat_at = utcnow()
            except Exception:  # noqa: BLE001 - an outage must not kill the run
                log.warning("heartbeat of run %s not written", self.run_id, exc_info=True)


def run_training(run_id: int) -> str | Claim:
    """Train run `run_id` to its end; returns its final status, or a Claim saying why not."""
    claimed = _claim(run_id)
    if isinstance(claimed, Claim):
        return claimed
    config = claimed
    settings = get_settings()
    run_dir = settings.runs_dir / str(run_id)
    logger = DatabaseLogger(run_id)
    beat = Heartbeat(run_id, interval=min(10.0, settings.heartbeat_timeout_s / 4))
    beat.start()
    recipe = None
    try:
        # A run that was interrupted (its task redelivered) resumes from its latest checkpoint.
        resume_from = latest_checkpoint(run_dir / "checkpoints")
        recipe = build_recipe(
            config,
            settings,
            logger=logger,
            student_path=resume_from,
            checkpoint_dir=run_dir / "checkpoints",
        )
        recipe.should_stop = beat.cancel_event.is_set
        if resume_from is not None:
            recipe.resume(resume_from)
            log.info("run %s resumes from %s", run_id, resume_from)
        recipe.train()
        recipe.student.save_pretrained(run_dir / "final", safe_serialization=True)
        recipe.tokenizer.save_pretrained(run_dir / "final")
    except Cancelled:
        logger.close()
        if recipe is not None and recipe.step > 0:
            recipe.save_checkpoint()  # the cancelled run keeps where it got to
        _finish(run_id, RunStatus.CANCELLED)
        return RunStatus.CANCELLED
    except Exception as exc:  # the run fails and says why; the worker lives on
        log.exception("run %s failed", run_id)
        try:
            logger.close()
        except Exception:  # the database itself may be the problem
            log.exception("could not write the last points of run %s", run_id)
        detail = "".join(traceback.format_exception_only(type(exc), exc)).strip()
        _finish(run_id, RunStatus.FAILED, detail)
        return RunStatus.FAILED
    finally:
        beat.stop_event.set()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    _finish(run_id, RunStatus.SUCCEEDED)
    return RunStatus.SUCCEEDED
