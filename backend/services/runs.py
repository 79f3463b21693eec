"""Run logic for the api: create (validate, store, commit, enqueue), read, metrics."""

import itertools
from datetime import timedelta
from pathlib import Path

from pydantic import ValidationError
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from backend.db.models import MetricPoint, Run, RunStatus, Sweep, utcnow
from backend.schemas import MAX_SWEEP_RUNS, MAX_TAGS, RunConfig, SweepGrid
from backend.services import catalog
from backend.services.naming import run_name
from backend.services.records import check_records
from backend.services.vocab import VocabularyMismatch, shared_vocab_size
from backend.settings import Settings


class FieldError(ValueError):
    """A config field that passed its schema but not the checks against the world."""

    def __init__(self, field: str, message: str, value: object = None, *, prefix=()):
        super().__init__(message)
        self.field, self.message, self.value = field, message, value
        self.loc = ["body", *prefix, field]  # where the field sits in the request body


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


def create_run(
    *,
    session: Session,
    config: RunConfig,
    settings: Settings,
    sweep: Sweep | None = None,
    checked: bool = False,
) -> Run:
    """Validate against the catalogue (unless the caller has: `checked`) and add the run; the
    caller commits, then enqueues."""
    if not checked:
        check_resources(config=config, settings=settings)
    if config.name is None:  # the stored config says the name the run got
        config = config.model_copy(update={"name": run_name(config)})
    run = Run(
        name=config.name,
        tags=list(config.tags),
        config=config.model_dump(mode="json"),
        status=RunStatus.QUEUED,
        step=0,
        total_steps=config.max_steps,
        latest={},
        sweep_id=sweep.id if sweep is not None else None,
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


SORT_KEYS = {
    "id": lambda r: r.id,
    "name": lambda r: r.name.lower(),
    "status": lambda r: r.status,
    "created": lambda r: r.created_at,
    "progress": lambda r: r.step / max(r.total_steps, 1),
    "temperature": lambda r: r.config.get("temperature"),
    "alpha": lambda r: r.config.get("alpha"),
    "soft": lambda r: (r.latest or {}).get("train/soft_loss"),
    "hard": lambda r: (r.latest or {}).get("train/hard_loss"),
}


def _matches(run: Run, text: str) -> bool:
    c = run.config or {}
    haystack = [run.name, run.note or "", c.get("teacher", ""), c.get("student", "")]
    haystack += [c.get("dataset", ""), c.get("divergence", ""), *(run.tags or [])]
    return any(text in str(h).lower() for h in haystack)


def list_runs(
    *,
    session: Session,
    status: list[str] | None = None,
    tag: str | None = None,
    q: str | None = None,
    sweep_id: int | None = None,
    sort: str = "-id",
    limit: int = 500,
    offset: int = 0,
) -> tuple[list[Run], int, list[str]]:
    """Runs matching every filter given (status in a list, a tag, text in the name, note,
    models, dataset or tags, a sweep), sorted by `sort` (a SORT_KEYS name, `-` for descending;
    runs without the value come last). Returns the page, the number matching and every tag in
    use. Tags live in a JSON list, so tag and text filters run here rather than in SQL."""
    query = select(Run)
    if status:
        query = query.where(Run.status.in_(status))
    if sweep_id is not None:
        query = query.where(Run.sweep_id == sweep_id)
    runs = list(session.scalars(query.order_by(Run.id.desc())).all())
    all_tags = sorted({t for tags in session.scalars(select(Run.tags)).all() for t in tags or []})
    if tag:
        runs = [r for r in runs if tag in (r.tags or [])]
    if q and q.strip():
        runs = [r for r in runs if _matches(r, q.strip().lower())]
    descending, name = sort.startswith("-"), sort.lstrip("-")
    key = SORT_KEYS[name]
    present = [r for r in runs if key(r) is not None]
    missing = [r for r in runs if key(r) is None]
    present.sort(key=lambda r: (key(r), r.id), reverse=descending)
    runs = present + missing
    return runs[offset : offset + limit], len(runs), all_tags


def update_run(*, session: Session, run: Run, changes: dict) -> Run:
    """Rename, re-tag or annotate a run (in any state: this touches no training)."""
    if "name" in changes:
        run.name = changes["name"]
    if "tags" in changes:
        run.tags = list(dict.fromkeys(t.strip() for t in changes["tags"]))
    if "note" in changes:
        run.note = (changes["note"] or "").strip() or None
    return run


def create_sweep(
    *, session: Session, base: RunConfig, grid: SweepGrid, settings: Settings
) -> tuple[Sweep, list[Run]]:
    """One run per combination of the grid's values over the base config, all validated before
    any is stored (an error names its field under `base` or `grid`); the caller commits, then
    enqueues the runs."""
    varying = {k: v for k, v in grid.model_dump().items() if v}
    combos = list(itertools.product(*varying.values())) if varying else [()]
    if len(combos) > MAX_SWEEP_RUNS:
        sizes = " × ".join(f"{len(v)} {k}s" for k, v in varying.items())
        raise FieldError(
            "grid",
            f"{sizes} = {len(combos)} runs; a sweep holds at most {MAX_SWEEP_RUNS}",
            None,
        )
    if len(base.tags) >= MAX_TAGS:
        raise FieldError(
            "tags",
            f"a sweep adds its own tag: at most {MAX_TAGS - 1} tags",
            base.tags,
            prefix=("base",),
        )
    configs = []
    for combo in combos:
        values = dict(zip(varying, combo, strict=True))
        parts = [f"{_SHORT[k]}={v:g}" if not isinstance(v, str) else v for k, v in values.items()]
        # Without a base name, create_run names each run by its own values.
        name = None
        if base.name is not None:
            name = (f"{base.name} · {' '.join(parts)}" if parts else base.name)[:200]
        try:
            configs.append(RunConfig.model_validate({**base.model_dump(), **values, "name": name}))
        except ValidationError as e:
            # The base was valid alone: a combination broke a rule between fields.
            err = e.errors()[0]
            field = str(err["loc"][0]) if err["loc"] else "grid"
            where = ("grid",) if field in varying else ("base",)
            raise FieldError(
                field, f"{err['msg']} (with {', '.join(parts)})", err.get("input"), prefix=where
            ) from None
    try:
        check_resources(config=configs[0], settings=settings)
    except FieldError as e:
        raise FieldError(e.field, e.message, e.value, prefix=("base",)) from None
    # Unnamed, a sweep is named by what its runs share: the base without the swept fields.
    sweep = Sweep(name=base.name or run_name(base, omit=varying), grid=varying)
    session.add(sweep)
    session.flush()
    tag = f"sweep-{sweep.id}"
    runs = []
    for config in configs:
        config.tags = list(dict.fromkeys([*config.tags, tag]))
        runs.append(
            create_run(session=session, config=config, settings=settings, sweep=sweep, checked=True)
        )
    return sweep, runs


_SHORT = {"temperature": "T", "alpha": "α", "seed": "seed", "divergence": "divergence"}


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
