"""HTTP handlers for runs; the logic lives in backend/services/runs.py."""

import asyncio
import shutil
from collections.abc import AsyncIterator
from typing import Annotated, Literal

import anyio
from fastapi import APIRouter, Depends, Header, HTTPException, Query, Request, status
from fastapi.responses import JSONResponse
from fastapi.sse import EventSourceResponse, ServerSentEvent

from backend.api.deps import MAX_DB_INT, RunId, SessionDep, SettingsDep, TokenDep, step_query
from backend.db.session import new_session
from backend.schemas import (
    MetricsPublic,
    RunConfig,
    RunPublic,
    RunsPublic,
    RunUpdate,
)
from backend.services import catalog, lifecycle
from backend.services import runs as service
from backend.services import sweeps as sweep_service
from backend.services.compare import MAX_COMPARED, read_many
from backend.services.metrics import read_metrics
from backend.services.queueing import check_room, enqueue_all

router = APIRouter(prefix="/api/runs", tags=["runs"])
ALL_STATES = lifecycle.ALL


@router.post("", status_code=status.HTTP_201_CREATED, dependencies=[TokenDep])
def create_run(config: RunConfig, session: SessionDep, settings: SettingsDep) -> RunPublic:
    """Validate a run's config, store it as `queued`, and queue it for a worker."""
    run = service.create_run(session=session, config=config, settings=settings)
    check_room(session=session, settings=settings, runs=[run])
    session.commit()  # the worker re-reads the row by id: it must exist before the task does
    enqueue_all(session, [run])
    return RunPublic.from_orm_run(run)


SortKey = Literal[tuple(k for name in service.SORT_KEYS for k in (name, f"-{name}"))]
NO_NUL = r"^[^\x00]*$"  # no stored text holds a NUL (PostgreSQL refuses one)


@router.get("")
def list_runs(
    session: SessionDep,
    status: list[str] | None = Query(
        None, description="Only runs in these states; repeat or separate with commas."
    ),
    tag: str | None = Query(
        None, max_length=64, pattern=NO_NUL, description="Only runs with this tag."
    ),
    q: str | None = Query(
        None,
        max_length=200,
        pattern=NO_NUL,
        description="Text in the name, note, tags, teacher, student, dataset or divergence.",
    ),
    sweep: int | None = Query(
        None, ge=1, le=MAX_DB_INT, description="Only the runs of this sweep."
    ),
    sort: SortKey = Query("-id", description="Field to sort by; a leading '-' sorts descending."),
    limit: int = Query(500, ge=1, le=5000),
    offset: int = Query(0, ge=0, le=MAX_DB_INT),
) -> RunsPublic:
    """Runs matching the filters, newest first unless `sort` says otherwise, with every tag in
    use and the sweeps the listed runs belong to."""
    states = _split(status)
    unknown = sorted(set(states or ()) - ALL_STATES)
    if unknown:
        raise HTTPException(
            422, f"status: unknown state(s) {', '.join(unknown)}; one of {sorted(ALL_STATES)}"
        )
    runs, count, tags = service.list_runs(
        session=session,
        status=states,
        tag=tag,
        q=q,
        sweep_id=sweep,
        sort=sort,
        limit=limit,
        offset=offset,
    )
    sweep_ids = {r.sweep_id for r in runs if r.sweep_id is not None}
    return RunsPublic(
        data=[RunPublic.from_orm_run(r) for r in runs],
        count=count,
        tags=tags,
        sweeps={s.id: s for s in sweep_service.get_sweeps(session=session, ids=sweep_ids)},
    )


def _get_or_404(session, run_id: int):
    run = service.get_run(session=session, run_id=run_id)
    if run is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"run {run_id} not found")
    return run


@router.post("/{run_id}/cancel", dependencies=[TokenDep])
def cancel_run(run_id: RunId, session: SessionDep) -> RunPublic:
    """Cancel a run: a queued one at once, a running one at its next step."""
    run = _get_or_404(session, run_id)
    try:
        lifecycle.request_cancel(run=run)
    except lifecycle.Conflict as e:
        raise HTTPException(status.HTTP_409_CONFLICT, str(e)) from None
    session.commit()
    return RunPublic.from_orm_run(run)


@router.delete("/{run_id}", status_code=status.HTTP_204_NO_CONTENT, dependencies=[TokenDep])
def delete_run(run_id: RunId, session: SessionDep, settings: SettingsDep) -> None:
    """Delete an ended run with its points and artifacts (checkpoints, final model)."""
    run = _get_or_404(session, run_id)
    try:
        folder = service.delete_run(session=session, run=run, settings=settings)
    except lifecycle.Conflict as e:
        raise HTTPException(status.HTTP_409_CONFLICT, str(e)) from None
    session.commit()
    shutil.rmtree(folder, ignore_errors=True)


@router.get("/{run_id}")
def get_run(run_id: RunId, session: SessionDep) -> RunPublic:
    """One run: config, status, progress, error text, latest metric values."""
    return RunPublic.from_orm_run(_get_or_404(session, run_id))


@router.patch("/{run_id}", dependencies=[TokenDep])
def update_run(run_id: RunId, changes: RunUpdate, session: SessionDep) -> RunPublic:
    """Rename a run, replace its tags or set its note (an empty note clears it)."""
    run = _get_or_404(session, run_id)
    service.update_run(session=session, run=run, changes=changes.model_dump(exclude_unset=True))
    session.commit()
    return RunPublic.from_orm_run(run)


@router.get("/{run_id}/checkpoints")
def list_checkpoints(run_id: RunId, session: SessionDep, settings: SettingsDep) -> dict:
    """The steps at which the run's student can be inspected (`run:<id>@<step>`), and whether
    its final student exists (`run:<id>`)."""
    run = _get_or_404(session, run_id)
    steps, final = catalog.run_student_steps(run.id, settings)
    return {"run_id": run.id, "steps": steps, "final": final, "final_step": run.step}


def _split(values: list[str] | None) -> list[str] | None:
    return [k for item in values or [] for k in item.split(",") if k] or None


KeysQuery = Query(
    None,
    description="Metric keys; repeat the parameter or separate with commas "
    "(default: every key of the run).",
)
MaxPointsQuery = Query(
    None,
    ge=3,
    le=100_000,
    description="At most this many points per key: "
    "each bucket's min, max and last are kept, so spikes survive; exact when "
    "the range has fewer steps.",
)


@router.get("/{run_id}/metrics", response_model=MetricsPublic)
def get_metrics(
    run_id: RunId,
    session: SessionDep,
    keys: list[str] | None = KeysQuery,
    after_step: int | None = step_query(None, ge=-1),
    start_step: int | None = step_query(None),
    end_step: int | None = step_query(None),
    max_points: int | None = MaxPointsQuery,
) -> JSONResponse:
    """Per key, the run's points as (step, value, time, flag) in step order."""
    _get_or_404(session, run_id)
    if after_step is not None:
        start_step = max(start_step or 0, after_step + 1)
    data = read_metrics(
        session,
        run_id=run_id,
        keys=_split(keys),
        start_step=start_step,
        end_step=end_step,
        max_points=max_points,
    )
    # Built directly (no per-point model validation): long series stay fast.
    return JSONResponse({"run_id": run_id, "metrics": data})


def _existing_run_id(run_id: RunId, session: SessionDep) -> int:
    _get_or_404(session, run_id)
    return run_id


def _last_event_step(
    last_event_id: str | None = Header(None, alias="Last-Event-ID"),
) -> int | None:
    """The step a reconnecting client saw last (its Last-Event-ID: an id we sent), checked
    before the stream starts, so that a bad one is a 422 and not a broken stream."""
    if not last_event_id:
        return None
    if not (last_event_id.isascii() and last_event_id.isdigit()) or int(last_event_id) > MAX_DB_INT:
        raise HTTPException(
            422, f"Last-Event-ID must be a step number (0 to {MAX_DB_INT}), got {last_event_id!r}"
        )
    return int(last_event_id)


@router.get("/{run_id}/stream", response_class=EventSourceResponse)
async def stream(
    run_id: Annotated[int, Depends(_existing_run_id)],
    request: Request,
    last_step: Annotated[int | None, Depends(_last_event_step)],
    after_step: int = step_query(0),
) -> AsyncIterator[ServerSentEvent]:
    """Server-Sent Events: `points` events (id = last step sent; a reconnecting client resumes
    from Last-Event-ID), a `status` event when the run's status changes, and a final `done`."""
    cursor = after_step if last_step is None else last_step

    def poll(after: int):
        with new_session() as session:
            run = service.get_run(session=session, run_id=run_id)
            points, last = service.points_after(session=session, run_id=run_id, after_step=after)
            return run.status, run.step, run.error, points, last

    last_status = None
    while not await request.is_disconnected():
        run_status, step, error, points, last = await anyio.to_thread.run_sync(poll, cursor)
        if points:
            cursor = last
            yield ServerSentEvent(event="points", id=str(cursor), data={"points": points})
        if run_status != last_status:
            last_status = run_status
            yield ServerSentEvent(
                event="status", data={"status": run_status, "step": step, "error": error}
            )
        # `lost` is not an end: the run is queued again and the stream goes on.
        if run_status in lifecycle.FINAL and not points:
            yield ServerSentEvent(event="done", id=str(cursor), data={"status": run_status})
            return
        if not points:
            await asyncio.sleep(0.25)


compare_router = APIRouter(prefix="/api", tags=["runs"])


@compare_router.get("/metrics")
def compare_metrics(
    session: SessionDep,
    runs: list[str] = Query(..., description="Run ids, repeated or comma-separated."),
    keys: list[str] | None = KeysQuery,
    start_step: int | None = step_query(None),
    end_step: int | None = step_query(None),
    max_points: int | None = MaxPointsQuery,
    format: Literal["points", "columns"] = Query(
        "points",
        description="points: a list of {step, value, time, flag} per key; columns: parallel "
        "lists {step: [], value: [], time: [], flag: [] (only when a point is not finite)}.",
    ),
) -> JSONResponse:
    """Several runs' series at once (the compare view): {"runs": {id: {key: series}}}."""
    try:
        ids = [int(r) for r in _split(runs) or []]
    except ValueError:
        raise HTTPException(422, "runs must be integer run ids") from None
    if any(not 1 <= i <= MAX_DB_INT for i in ids):
        raise HTTPException(422, f"runs: run ids are between 1 and {MAX_DB_INT}")
    if not ids or len(ids) > MAX_COMPARED:
        raise HTTPException(422, f"runs: give between 1 and {MAX_COMPARED} run ids")
    for run_id in ids:
        _get_or_404(session, run_id)
    out = read_many(
        session,
        ids,
        keys=_split(keys),
        start_step=start_step,
        end_step=end_step,
        max_points=max_points,
        columns=format == "columns",
    )
    return JSONResponse({"runs": out})
