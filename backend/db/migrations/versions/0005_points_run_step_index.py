"""index on metric points (run, step): the live stream reads a run's points after a step

Revision ID: 0005
Revises: 0004
"""

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_metric_points_run_step", "metric_points", ["run_id", "step"])


def downgrade() -> None:
    op.drop_index("ix_metric_points_run_step", "metric_points")
