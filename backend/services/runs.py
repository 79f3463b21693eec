"""Run logic for the api: create (validate, store, commit, enqueue), read, metrics."""

from datetime import timedelta
from pathlib import Path

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from backend.db.models import MetricPoint, Run, RunStatus, utcnow
from backend.schemas import RunConfig
from backend.services import catalog
from backend.services.records import check_records
from backend.services.vocab import VocabularyMismatch, shared_vocab_size
from backend.settings import Settings


class FieldError(ValueError):
    """A config field that passed its schema but not the checks against the world."""

    def __init__(self, field: str, message: str, value: object = None):
        super().__init__(message)
        self.field, self.message, self.value = field, message, value


def check_resources(*, config: RunConfig, settings: Settings) -> None:
    """Models and dataset must exist under the roots and fit together; raise FieldError."""
    paths = {}
    for field in ("teacher", "student"):
        name = getattr(config, field)
        try:
            paths[field] = catalog.resolve_model(name, settings)
        except catalog.CatalogError as e:
            raise FieldError(field, str(e), name) from None
    try:
        data_path = catalog.resolve_dataset_source(config.dataset, settings)
        if isinstance(data_path, Path) and data_path.is_file():
            check_records(data_path)
    except (catalog.CatalogError, ValueError, UnicodeDecodeError) as e:
        raise FieldError("dataset", str(e), config.dataset) from None
    cfgs = {f: catalog.read_model_config(p) for f, p in paths.items()}
    try:
        vocab = shared_vocab_size(
            paths["teacher"], paths["student"], cfgs["teacher"], cfgs["student"]
        )
    except VocabularyMismatch as e:
        raise FieldError("student", str(e), config.student) from None
    if config.teacher_cache_k is not None and config.teacher_cache_k >= vocab:
        raise FieldError(
            "teacher_cache_k",
            f"must be smaller than the vocabulary ({vocab} "
            "tokens): the rest of the vocabulary is the tail the cache summarises",
            config.teacher_cache_k,
        )
    for field, cfg in cfgs.items():
        limit = cfg.get("n_positions") or cfg.get("max_position_embeddings")
        if limit and config.seq_len > limit:
            raise FieldError(
                "seq_len",
                f"seq_len {config.seq_len} exceeds the {field}'s context of {limit} positions",
                config.seq_len,
            )


def create_run(*, session: Session, config: RunConfig, settings: Settings) -> Run:
    """Validate against the catalogue and add the run; the caller commits, then enqueues."""
    check_resources(config=config, settings=settings)
    run = Run(
        name=config.name,
        tags=list(config.tags),
        config=config.model_dump(mode="json"),
        status=RunStatus.QUEUED,
        step=0,
        total_steps=config.max_steps,
        latest={},
    )
    session.add(run)
    session.flush()
    return run


class Conflict(ValueError):
    """The run's state does not allow the request (HTTP 409); the message says why."""


def request_cancel(*, session: Session, run: Run) -> Run:
    """A queued run is cancelled at once; a running one stops at its next step (the worker
    keeps its last checkpoint and marks it cancelled)."""
    if run.status in (RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.CANCELLED):
        raise Conflict(f"run {run.id} has already ended ({run.status})")
    run.cancel_requested = True
    if run.status in (RunStatus.QUEUED, RunStatus.LOST):
        run.status, run.finished_at = RunStatus.CANCELLED, utcnow()
    return run


def delete_run(*, session: Session, run: Run, settings: Settings) -> Path:
    """Delete an ended run and its points; returns its artifact folder for the caller to
    remove once the transaction has committed."""
    if run.status not in RunStatus.TERMINAL:
        raise Conflict(f"run {run.id} is {run.status}: cancel it before deleting it")
    session.execute(delete(MetricPoint).where(MetricPoint.run_id == run.id))
    session.delete(run)
    return settings.runs_dir / str(run.id)


def mark_lost(*, session: Session, timeout_s: float) -> int:
    """Runs whose worker stopped beating: `lost`, with the reason. Returns how many."""
    cutoff = utcnow() - timedelta(seconds=timeout_s)
    stale = session.scalars(
        select(Run).where(Run.status == RunStatus.RUNNING, Run.heartbeat_at < cutoff)
    ).all()
    for run in stale:
        run.status, run.finished_at = RunStatus.LOST, utcnow()
        run.error = (
            f"lost: no heartbeat from worker {run.worker_host} for more than "
            f"{timeout_s:g} s (the worker probably died); if its task is delivered "
            "again the run resumes from its latest checkpoint"
        )
    return len(stale)


def mark_failed(*, session: Session, run: Run, error: str) -> None:
    run.status, run.error, run.finished_at = RunStatus.FAILED, error, utcnow()


def list_runs(
    *, session: Session, status: str | None = None, limit: int = 500, offset: int = 0
) -> tuple[list[Run], int]:
    query = select(Run)
    count_q = select(func.count()).select_from(Run)
    if status:
        query, count_q = query.where(Run.status == status), count_q.where(Run.status == status)
    runs = session.scalars(query.order_by(Run.id.desc()).limit(limit).offset(offset)).all()
    return list(runs), session.scalar(count_q) or 0


def get_run(*, session: Session, run_id: int) -> Run | None:
    return session.get(Run, run_id)


def points_after(
    *, session: Session, run_id: int, after_step: int, limit_points: int = 2000
) -> tuple[list[dict], int]:
    """Points with step > after_step for one SSE event: about `limit_points` points, whole
    steps only.

    The worker writes each step's points (train and eval) in one transaction, so once a step is
    visible it is complete and the step is a safe resume cursor."""
    max_step = session.scalar(
        select(MetricPoint.step)
        .where(MetricPoint.run_id == run_id, MetricPoint.step > after_step)
        .order_by(MetricPoint.step)
        .offset(limit_points - 1)
        .limit(1)
    )
    query = select(MetricPoint).where(MetricPoint.run_id == run_id, MetricPoint.step > after_step)
    if max_step is not None:
        query = query.where(MetricPoint.step <= max_step)
    rows = session.scalars(query.order_by(MetricPoint.step, MetricPoint.key)).all()
    last = max((p.step for p in rows), default=after_step)
    return [
        {"key": p.key, "step": p.step, "value": p.value, "time": p.wall_time, "flag": p.flag}
        for p in rows
    ], last
