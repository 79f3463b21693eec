"""sweeps (a grid of runs launched together) and a free-text note per run

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "sweeps",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("grid", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    with op.batch_alter_table("runs") as batch:
        batch.add_column(sa.Column("note", sa.Text(), nullable=True))
        batch.add_column(
            sa.Column(
                "sweep_id",
                sa.Integer(),
                sa.ForeignKey("sweeps.id", name="fk_runs_sweep_id", ondelete="SET NULL"),
                nullable=True,
            )
        )
        batch.create_index("ix_runs_sweep_id", ["sweep_id"])


def downgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.drop_index("ix_runs_sweep_id")
        batch.drop_constraint("fk_runs_sweep_id", type_="foreignkey")
        batch.drop_column("sweep_id")
        batch.drop_column("note")
    op.drop_table("sweeps")
