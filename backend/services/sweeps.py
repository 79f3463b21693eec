"""Reading sweeps (their runs are created by services.runs.create_sweep)."""

from sqlalchemy import select
from sqlalchemy.orm import Session

from backend.db.models import Run, Sweep
from backend.schemas import SweepPublic


def get_sweeps(*, session: Session, ids: set[int]) -> list[SweepPublic]:
    """The sweeps with these ids, each with its run ids (ascending)."""
    if not ids:
        return []
    sweeps = session.scalars(select(Sweep).where(Sweep.id.in_(ids)).order_by(Sweep.id)).all()
    members: dict[int, list[int]] = {s.id: [] for s in sweeps}
    rows = session.execute(
        select(Run.sweep_id, Run.id).where(Run.sweep_id.in_(ids)).order_by(Run.id)
    ).all()
    for sweep_id, run_id in rows:
        members[sweep_id].append(run_id)
    return [SweepPublic.from_orm_sweep(s, members[s.id]) for s in sweeps]
