"""rebuild every run's rollups from its points: rollups written before 0006's code kept a
replayed step's old extreme and left non-finite points out of downsampled reads

Revision ID: 0006
Revises: 0005
"""

from alembic import op
from sqlalchemy import select
from sqlalchemy.orm import Session

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # The api's own code, so the rollups are exactly what it writes today (a data migration:
    # it changes no schema, and a database without runs passes through at once).
    from backend.db.models import MetricPoint
    from backend.services.metrics import rebuild_rollups

    session = Session(bind=op.get_bind())
    for run_id in session.scalars(select(MetricPoint.run_id).distinct()).all():
        rebuild_rollups(session, run_id)
    session.flush()


def downgrade() -> None:
    pass  # the rebuilt rollups are valid for the older code too
