"""The models and the Alembic migrations agree (autogenerate finds nothing to do on a database
migrated to head), on SQLite and on PostgreSQL; the live stream's (run, step) index is there."""

import uuid

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from backend.db.migrate import alembic_config, upgrade
from backend.db.models import Base


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request, tmp_path):
    """An empty database of the test's own."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'migrations.db'}"
        return
    base = sa.engine.make_url(request.getfixturevalue("postgres_url"))
    name = f"{base.database}_{uuid.uuid4().hex[:6]}"
    admin = sa.create_engine(base.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    yield base.set(database=name).render_as_string(hide_password=False)
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def _diff(url: str) -> list:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(
                conn, opts={"compare_type": True, "compare_server_default": True}
            )
            return compare_metadata(context, Base.metadata)
    finally:
        engine.dispose()


def test_models_and_migrations_agree(url):
    upgrade(url)
    assert _diff(url) == []


def test_points_have_a_run_step_index_that_downgrades(url):
    def indexes() -> dict:
        engine = sa.create_engine(url)
        try:
            found = sa.inspect(engine).get_indexes("metric_points")
        finally:
            engine.dispose()
        return {i["name"]: i["column_names"] for i in found}

    upgrade(url)
    assert indexes()["ix_metric_points_run_step"] == ["run_id", "step"]
    command.downgrade(alembic_config(url), "0004")
    assert "ix_metric_points_run_step" not in indexes()
    upgrade(url)
    assert _diff(url) == []
