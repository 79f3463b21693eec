"""Run one distillation run by id: re-read it, load its components, train, record the end.

The worker owns the run's status while it runs: `running` with host and heartbeat, then
`succeeded` or `failed` with the error text."""

import logging
import socket
import traceback

import torch

from backend.db.models import Run, RunStatus, utcnow
from backend.db.session import transaction
from backend.schemas import RunConfig
from backend.settings import get_settings
from worker.distill.checkpoint import latest_checkpoint
from worker.distill.setup import build_recipe
from worker.metrics import DatabaseLogger

log = logging.getLogger(__name__)


def _claim(run_id: int) -> RunConfig | None:
    """Mark the run running; None when it does not exist or has already ended."""
    with transaction() as session:
        run = session.get(Run, run_id)
        if run is None:
            log.warning("run %s does not exist; dropping its task", run_id)
            return None
        if run.status in RunStatus.TERMINAL:
            log.info("run %s is already %s; nothing to do", run_id, run.status)
            return None
        run.status = RunStatus.RUNNING
        run.started_at = run.started_at or utcnow()
        run.heartbeat_at = utcnow()
        run.worker_host = socket.gethostname()
        run.error = None
        return RunConfig.model_validate(run.config)


def _finish(run_id: int, status: str, error: str | None = None) -> None:
    with transaction() as session:
        run = session.get(Run, run_id)
        if run is not None:
            run.status, run.error, run.finished_at = status, error, utcnow()
            run.heartbeat_at = utcnow()


def run_training(run_id: int) -> str | None:
    """Train run `run_id` to its end; returns its final status (None if skipped)."""
    config = _claim(run_id)
    if config is None:
        return None
    settings = get_settings()
    logger = DatabaseLogger(run_id)
    run_dir = settings.runs_dir / str(run_id)
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
        if resume_from is not None:
            recipe.resume(resume_from)
            log.info("run %s resumes from %s", run_id, resume_from)
        recipe.train()
        recipe.student.save_pretrained(run_dir / "final", safe_serialization=True)
        recipe.tokenizer.save_pretrained(run_dir / "final")
    except Exception as exc:  # the run fails and says why; the worker lives on
        log.exception("run %s failed", run_id)
        try:
            logger.flush()
        except Exception:  # the database itself may be the problem
            log.exception("could not write the last points of run %s", run_id)
        detail = "".join(traceback.format_exception_only(type(exc), exc)).strip()
        _finish(run_id, RunStatus.FAILED, detail)
        return RunStatus.FAILED
    finally:
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    _finish(run_id, RunStatus.SUCCEEDED)
    return RunStatus.SUCCEEDED
