"""Several runs side by side: the compare page's one request."""

from sqlalchemy.orm import Session

from backend.services.metrics import as_columns, read_metrics

# Runs in one /api/metrics request, and so on one compare page or export: a whole sweep (at
# most 64 runs) fits. The frontend's shared module holds the same number.
MAX_COMPARED = 100


def read_many(
    session: Session,
    run_ids: list[int],
    *,
    keys: list[str] | None,
    start_step: int | None,
    end_step: int | None,
    max_points: int | None,
    columns: bool,
) -> dict[str, dict]:
    """Per run id (as a string, JSON's key type), per key, its series: points, or parallel
    columns when `columns`."""
    out = {}
    for run_id in run_ids:
        data = read_metrics(
            session,
            run_id=run_id,
            keys=keys,
            start_step=start_step,
            end_step=end_step,
            max_points=max_points,
        )
        if columns:
            data = {key: as_columns(points) for key, points in data.items()}
        out[str(run_id)] = data
    return out
