"""Migration 0006 rebuilds the rollups of databases written by older code: a replayed step's
stale extreme is gone and non-finite points show in downsampled reads."""

import math

import sqlalchemy as sa
from alembic import command
from sqlalchemy.orm import Session

from backend.db.migrate import alembic_config
from backend.services.metrics import read_metrics


def test_0006_rebuilds_stale_rollups(tmp_path):
    url = f"sqlite:///{tmp_path / 'old.db'}"
    command.upgrade(alembic_config(url), "0005")
    engine = sa.create_engine(url)
    with engine.begin() as c:
        c.execute(
            sa.text(
                "INSERT INTO runs (id, name, tags, config, status, created_at, step, "
                "total_steps, latest, cancel_requested, attempts) VALUES (1, 'old', '[]', '{}', "
                "'succeeded', '2026-01-01', 100, 100, '{}', 0, 1)"
            )
        )
        points = [
            {"step": s, "value": None if s == 50 else 1.0, "flag": "nan" if s == 50 else None}
            for s in range(1, 101)
        ]
        c.execute(
            sa.text(
                "INSERT INTO metric_points (run_id, key, step, value, flag, wall_time) "
                "VALUES (1, 'train/loss', :step, :value, :flag, 0)"
            ),
            points,
        )
        # What older code left: step 40 once read 100 (since rewritten to 1), and no row for
        # the NaN at step 50.
        for bucket in range(7):
            c.execute(
                sa.text(
                    "INSERT INTO metric_rollups VALUES (1, 'train/loss', 0, :b, :lo, 1.0, 0, "
                    ":hi, :v, 0, :hi, 1.0, 0)"
                ),
                {
                    "b": bucket,
                    "lo": bucket * 16 + 1,
                    "hi": min(bucket * 16 + 16, 100),
                    "v": 100.0 if bucket == 2 else 1.0,
                },
            )
    command.upgrade(alembic_config(url), "head")
    with Session(engine) as session:
        down = read_metrics(
            session, run_id=1, keys=["train/loss"], start_step=None, end_step=None, max_points=30
        )["train/loss"]
    engine.dispose()
    finite = [p["value"] for p in down if p["value"] is not None]
    assert max(finite) == 1.0, "the stale extreme survived"
    flagged = [p for p in down if p["flag"]]
    assert [(p["step"], p["flag"]) for p in flagged] == [(50, "nan")]
    assert all(not math.isnan(v) for v in finite)
