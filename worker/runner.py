"""Run one distillation run by id: claim it, train, record the end, through
backend/services/lifecycle.py (the one owner of a run's status).

While it trains, a thread beats every few seconds (also through long steps) and notices a
cancel request. A run whose worker is told to stop (SIGTERM: Ctrl-C of `up`, a container stop)
saves a checkpoint and goes back to the queue; a run whose worker died is queued again by the
api's sweeper. Either way the next delivery resumes it from its latest checkpoint."""

import logging
import threading
import traceback

import torch

from backend.db.models import RunStatus
from backend.queue import enqueue_training
from backend.services import lifecycle
from backend.services.lifecycle import Claim
from backend.settings import get_settings
from worker.distill.checkpoint import latest_checkpoint
from worker.distill.setup import build_recipe
from worker.distill.trainer import Cancelled
from worker.metrics import DatabaseLogger

log = logging.getLogger(__name__)

__all__ = ["Claim", "Heartbeat", "request_shutdown", "run_training"]

# Set from the worker's SIGTERM (worker/tasks.py): the run in progress stops at its next step.
_shutdown = threading.Event()


def request_shutdown() -> None:
    _shutdown.set()


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
                if lifecycle.heartbeat(self.run_id):
                    self.cancel_event.set()
            except Exception:  # noqa: BLE001 - an outage must not kill the run
                log.warning("heartbeat of run %s not written", self.run_id, exc_info=True)


def run_training(run_id: int) -> str | Claim:
    """Train run `run_id` to its end; returns its final status, or a Claim saying why not."""
    settings = get_settings()
    claimed = lifecycle.claim(run_id, settings=settings)
    if isinstance(claimed, Claim):
        return claimed
    config = claimed
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
        recipe.should_stop = lambda: beat.cancel_event.is_set() or _shutdown.is_set()
        if resume_from is not None:
            recipe.resume(resume_from)
            log.info("run %s resumes from %s", run_id, resume_from)
        recipe.train()
        recipe.student.save_pretrained(run_dir / "final", safe_serialization=True)
        recipe.tokenizer.save_pretrained(run_dir / "final")
    except Cancelled:
        logger.close()
        if recipe is not None and recipe.step > 0:
            recipe.save_checkpoint()  # the run keeps where it got to
        if not beat.cancel_event.is_set() and _shutdown.is_set():
            beat.stop_event.set()
            status = lifecycle.interrupt(run_id, enqueue_training)
            step = recipe.step if recipe is not None else 0
            log.warning("run %s interrupted at step %s by shutdown: %s", run_id, step, status)
            return status
        lifecycle.finish(run_id, RunStatus.CANCELLED)
        return RunStatus.CANCELLED
    except Exception as exc:  # the run fails and says why; the worker lives on
        log.exception("run %s failed", run_id)
        try:
            logger.close()
        except Exception:  # the database itself may be the problem
            log.exception("could not write the last points of run %s", run_id)
        detail = "".join(traceback.format_exception_only(type(exc), exc)).strip()
        lifecycle.finish(run_id, RunStatus.FAILED, detail)
        return RunStatus.FAILED
    finally:
        beat.stop_event.set()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    lifecycle.finish(run_id, RunStatus.SUCCEEDED)
    return RunStatus.SUCCEEDED
