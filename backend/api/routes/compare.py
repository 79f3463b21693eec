"""Export a comparison as one self-contained HTML file (plotly.js inlined: opens offline)."""

import html

from fastapi import APIRouter, HTTPException, Query
from fastapi.responses import HTMLResponse

from backend.api.deps import SessionDep
from backend.services.metrics import read_metrics
from backend.services.runs import get_run

router = APIRouter(prefix="/api/compare", tags=["compare"])

EXPORT_KEYS = [
    "train/soft_loss",
    "train/hard_loss",
    "train/loss",
    "eval/kl_true",
    "eval/kl_teacher",
    "eval/top1_agreement",
]


@router.get("/export", response_class=HTMLResponse)
def export(
    session: SessionDep,
    runs: str = Query(..., description="Comma-separated run ids"),
    logy: str = "0",
) -> HTMLResponse:
    """The selected runs' charts and config as a standalone HTML page, built with the plotly
    package (plotly.js embedded once), downloadable and viewable without a server."""
    import plotly.graph_objects as go
    import plotly.io as pio

    try:
        ids = [int(r) for r in runs.split(",") if r]
    except ValueError:
        raise HTTPException(422, "runs must be integer run ids") from None
    if not 1 <= len(ids) <= 50:
        raise HTTPException(422, "runs: give between 1 and 50 run ids")
    found = []
    for run_id in ids:
        run = get_run(session=session, run_id=run_id)
        if run is None:
            raise HTTPException(404, f"run {run_id} not found")
        found.append(run)
    parts = []
    for i, key in enumerate(EXPORT_KEYS):
        fig = go.Figure()
        for run in found:
            pts = read_metrics(
                session, run_id=run.id, keys=[key], start_step=None, end_step=None, max_points=3000
            )[key]
            fig.add_trace(
                go.Scatter(
                    x=[p["step"] for p in pts],
                    y=[p["value"] for p in pts],
                    mode="lines",
                    name=f"#{run.id} {run.name}",
                )
            )
        fig.update_layout(
            title=key, height=360, yaxis_type="log" if logy == "1" else "linear", xaxis_title="step"
        )
        parts.append(
            pio.to_html(fig, full_html=False, include_plotlyjs=(i == 0), div_id=f"chart-{i}")
        )
    fields = sorted({k for r in found for k in r.config})
    rows = "".join(
        "<tr><th>"
        + html.escape(f)
        + "</th>"
        + "".join(f"<td>{html.escape(str(r.config.get(f, '–')))}</td>" for r in found)
        + "</tr>"
        for f in fields
    )
    head = "".join(f"<th>#{r.id} {html.escape(r.name)}</th>" for r in found)
    page = (
        "<!doctype html><html><head><meta charset='utf-8'><title>distillscope comparison</title>"
        "<style>body{font-family:system-ui,sans-serif;margin:1.5rem}table{border-collapse:"
        "collapse}th,td{border-bottom:1px solid #ddd;padding:.25rem .6rem;text-align:left}"
        "</style></head><body><h1>distillscope: comparison of runs "
        + ", ".join(str(r.id) for r in found)
        + "</h1>"
        + "".join(parts)
        + f"<h2>Config</h2><table><tr><th>field</th>{head}</tr>{rows}</table></body></html>"
    )
    filename = f"distillscope-compare-{'-'.join(map(str, ids))}.html"
    return HTMLResponse(
        page,
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )
