"""HTTP handlers for sweeps (a grid of runs launched together) and the built-in experiment,
which is a sweep on the demo kit. The logic lives in backend/services/."""

from fastapi import APIRouter, HTTPException, status

from backend.api.deps import SessionDep, SettingsDep, SweepId, TokenDep
from backend.schemas import ExperimentRequest, SweepPublic, SweepRequest
from backend.services import runs as service
from backend.services import sweeps as sweep_service
from backend.services.queueing import check_room, enqueue_all

experiment_router = APIRouter(prefix="/api/experiments", tags=["runs"])


def _queued_experiment(session, settings, tag: str, runs: list) -> dict:
    """Commit an experiment's runs, queue them, and say where to watch them."""
    check_room(session=session, settings=settings, runs=runs)
    session.commit()
    enqueue_all(session, runs)
    ids = ",".join(str(r.id) for r in runs)
    return {
        "tag": tag,
        "sweep_id": runs[0].sweep_id,
        "runs": [r.id for r in runs],
        "compare_url": f"/compare?runs={ids}&group=name&smooth=0&experiment={tag}",
    }


@experiment_router.post(
    "/temperature", status_code=status.HTTP_201_CREATED, dependencies=[TokenDep]
)
def start_temperature_experiment(
    session: SessionDep, settings: SettingsDep, req: ExperimentRequest | None = None
) -> dict:
    """Queue the built-in experiment (30 runs on the demo kit) and say where to watch it; the
    body (optional) may shorten or lengthen its runs."""
    from backend.services.experiment import create_experiment

    tag, runs = create_experiment(
        session=session, settings=settings, options=req or ExperimentRequest()
    )
    return _queued_experiment(session, settings, tag, runs)


@experiment_router.post("/smollm2", status_code=status.HTTP_201_CREATED, dependencies=[TokenDep])
def start_smollm2_experiment(
    session: SessionDep, settings: SettingsDep, req: ExperimentRequest | None = None
) -> dict:
    """Queue the real kit's experiment: SmolLM2's 10-layer student on the teacher's own chat
    answers with hard labels only, and distilled at T = 1, 2, 4 (4 runs, 30 steps each unless
    the body says otherwise). 409 when the real kit is not prepared (`make real`)."""
    from backend.services.experiment import KitMissing, create_llm_experiment

    try:
        tag, runs = create_llm_experiment(session=session, settings=settings, options=req)
    except KitMissing as e:
        raise HTTPException(status.HTTP_409_CONFLICT, str(e)) from None
    return _queued_experiment(session, settings, tag, runs)


sweep_router = APIRouter(prefix="/api/sweeps", tags=["runs"])


@sweep_router.post("", status_code=status.HTTP_201_CREATED, dependencies=[TokenDep])
def create_sweep(req: SweepRequest, session: SessionDep, settings: SettingsDep) -> dict:
    """One run per combination of the grid's values (T, alpha, divergence, seed) over the base
    config, grouped as a sweep and tagged `sweep-<id>`. Every combination is validated before
    any run is stored."""
    sweep, runs = service.create_sweep(
        session=session, base=req.base, grid=req.grid, settings=settings
    )
    check_room(session=session, settings=settings, runs=runs)
    session.commit()
    enqueue_all(session, runs)
    ids = ",".join(str(r.id) for r in runs)
    # Group the comparison by the swept field when only one (besides seeds) varies: its bands
    # are then across seeds. With several, each run is its own line.
    swept = [k for k in sweep.grid if k != "seed"]
    group = swept[0] if len(swept) == 1 else ""
    return {
        "sweep": SweepPublic.from_orm_sweep(sweep, [r.id for r in runs]).model_dump(mode="json"),
        "runs": [r.id for r in runs],
        "compare_url": f"/compare?runs={ids}&group={group}",
    }


@sweep_router.get("/{sweep_id}")
def get_sweep(sweep_id: SweepId, session: SessionDep) -> SweepPublic:
    found = sweep_service.get_sweeps(session=session, ids={sweep_id})
    if not found:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"sweep {sweep_id} not found")
    return found[0]
