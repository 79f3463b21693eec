"""Run logic for the api: create (validate, store, commit, enqueue), read, metrics."""

import itertools
import json
from pathlib import Path

from pydantic import ValidationError
from sqlalchemy import Float, Row, Text, case, cast, column, delete, func, or_, select
from sqlalchemy.orm import Session

from backend.db.models import MetricPoint, Run, Sweep
from backend.schemas import MAX_SWEEP_RUNS, MAX_TAGS, RunConfig, SweepGrid
from backend.services import catalog, lifecycle
from backend.services.naming import run_name
from backend.services.records import check_dataset
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
        if isinstance(data_path, Path):
            check_dataset(data_path)
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
        step=0,
        total_steps=config.max_steps,
        latest={},
        sweep_id=sweep.id if sweep is not None else None,
    )
    session.add(run)
    session.flush()
    return run


def delete_run(*, session: Session, run: Run, settings: Settings) -> Path:
    """Delete an ended run and its points; returns its artifact folder for the caller to
    remove once the transaction has committed."""
    lifecycle.check_deletable(run)
    session.execute(delete(MetricPoint).where(MetricPoint.run_id == run.id))
    session.delete(run)
    return settings.runs_dir / str(run.id)


def _lower(expr, dialect: str):
    """Unicode lower case, compared and sorted by code point (as Python's str.lower and <)."""
    if dialect == "sqlite":
        return func.ds_lower(expr)  # SQLite's lower() folds ASCII only: see _prepare
    return func.lower(expr).collate("C") if dialect == "postgresql" else func.lower(expr)


def _text(expr, dialect: str):
    return expr.collate("C") if dialect == "postgresql" else expr


def _py_lower(value):
    return None if value is None else str(value).lower()


def _prepare(session: Session) -> str:
    """The session's dialect name; on SQLite, registers ds_lower (Python's str.lower) on the
    connection, since SQLite's own lower() leaves non-ASCII letters alone."""
    dialect = session.get_bind().dialect.name
    if dialect == "sqlite":
        raw = session.connection().connection.driver_connection
        raw.create_function("ds_lower", 1, _py_lower, deterministic=True)
    return dialect


def _tag_values(dialect: str):
    """The elements of a run's tags (a JSON list) as a table with one column, `value`."""
    fn = func.json_each if dialect == "sqlite" else func.json_array_elements_text
    return fn(Run.tags).table_valued("value").alias("run_tag")


# Each sort key as an SQL expression for a dialect; NULL means "no value" (listed last).
SORT_KEYS = {
    "id": lambda d: Run.id,
    "name": lambda d: _lower(Run.name, d),
    "status": lambda d: _text(Run.status, d),
    "created": lambda d: Run.created_at,
    "progress": lambda d: (
        cast(Run.step, Float) / case((Run.total_steps > 1, Run.total_steps), else_=1)
    ),
    "temperature": lambda d: Run.config["temperature"].as_float(),
    "alpha": lambda d: Run.config["alpha"].as_float(),
    "soft": lambda d: Run.latest["train/soft_loss"].as_float(),
    "hard": lambda d: Run.latest["train/hard_loss"].as_float(),
}
_NULLABLE_KEYS = {"temperature", "alpha", "soft", "hard"}
_TEXT_FIELDS = ("teacher", "student", "dataset", "divergence")


def _filters(*, dialect, status, tag, q, sweep_id) -> list:
    where = []
    if status:
        where.append(Run.status.in_(status))
    if sweep_id is not None:
        where.append(Run.sweep_id == sweep_id)
    if tag:
        t = _tag_values(dialect)
        where.append(select(1).select_from(t).where(t.c.value == tag).exists())
    if q and q.strip():
        text = q.strip().lower()
        find = func.instr if dialect == "sqlite" else func.strpos

        def has(expr):
            return find(_lower(expr, dialect), text) > 0

        t = _tag_values(dialect)
        where.append(
            or_(
                has(Run.name),
                has(Run.note),
                _config_has(has, dialect),
                select(1).select_from(t).where(has(t.c.value)).exists(),
            )
        )
    return where


def _config_has(has, dialect: str):
    """`has` true of one of the config's _TEXT_FIELDS. PostgreSQL reads the config (json, not
    jsonb) as a record once per run, not once per field: half the time of a text search."""
    if dialect != "postgresql":
        return or_(*(has(Run.config[f].as_string()) for f in _TEXT_FIELDS))
    record = (
        func.json_to_record(Run.config)
        .table_valued(*(column(f, Text) for f in _TEXT_FIELDS))
        .render_derived(name="run_config", with_types=True)
    )
    return (
        select(1).select_from(record).where(or_(*(has(record.c[f]) for f in _TEXT_FIELDS))).exists()
    )


def _order(sort: str, dialect: str) -> list:
    descending, name = sort.startswith("-"), sort.lstrip("-")
    key = SORT_KEYS[name](dialect)
    if name == "id":
        return [Run.id.desc() if descending else Run.id.asc()]
    order = [key.desc() if descending else key.asc()]
    tie = -Run.id if descending else Run.id
    if name in _NULLABLE_KEYS:
        # Runs without the value come last in either direction, newest first among them.
        return [key.is_(None), *order, case((key.is_(None), -Run.id), else_=tie)]
    return [*order, tie]


def all_tags(*, session: Session) -> list[str]:
    """Every tag in use, sorted by code point. Runs share a few tag lists (a sweep's runs the
    same one): the database returns each distinct list once, as text, read here."""
    lists = session.scalars(select(cast(Run.tags, Text)).distinct())
    return sorted({t for text in lists if text for t in json.loads(text) or ()})


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
) -> tuple[list[Row], int, list[str]]:
    """Runs matching every filter given (status in a list, a tag, text in the name, note,
    models, dataset, divergence or tags, a sweep), sorted by `sort` (a SORT_KEYS name, `-` for
    descending; runs without the value come last; ties by id). Returns the page, the number
    matching and every tag in use. Filters, sort and page all run in SQL; the page holds
    read-only rows with a Run's columns as attributes."""
    dialect = _prepare(session)
    where = _filters(dialect=dialect, status=status, tag=tag, q=q, sweep_id=sweep_id)
    counting = select(func.count()).select_from(Run).where(*where)
    columns = list(Run.__table__.c)
    scans = bool(tag or (q and q.strip()))  # filters no index serves: each query reads every run
    if scans:  # one pass, not two: the number matching comes with the page
        columns.append(func.count().over().label("matching"))
    page = select(*columns).where(*where).order_by(*_order(sort, dialect))
    # Rows, not ORM objects: a page of 500 loads in a third of the time, and it is read only.
    runs = list(session.execute(page.limit(limit).offset(offset)))
    count = runs[0].matching if scans and runs else session.scalar(counting)
    return runs, count, all_tags(session=session)


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
