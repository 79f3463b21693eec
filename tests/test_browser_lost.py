"""A run whose worker died is `lost`, and lost is not an end: the api queues it again. The run
page must say it was interrupted (not that it failed), keep its Cancel button, and keep
following the run until it really ends."""

from datetime import UTC, datetime

import pytest
import sqlalchemy as sa

pytestmark = pytest.mark.browser


def _db(stack):
    return sa.create_engine(f"sqlite:///{stack.env['DISTILLSCOPE_DATA_DIR']}/distillscope.db")


def test_a_lost_run_page_keeps_following_the_run(browser, shared_api_stack):
    engine = _db(shared_api_stack)
    error = (
        "lost at step 40: worker vm:123 stopped (its process has exited); it is queued again "
        "and resumes from its latest checkpoint"
    )
    with engine.begin() as c:
        run_id = c.execute(
            sa.text(
                "INSERT INTO runs (name, tags, config, status, created_at, step, total_steps, "
                "error, latest, cancel_requested, attempts) VALUES ('lost one', '[]', "
                '\'{"teacher": "demo-teacher", "student": "demo-student-s"}\', \'lost\', '
                ":now, 40, 100, :error, '{}', 0, 1) RETURNING id"
            ),
            {"now": datetime.now(UTC), "error": error},
        ).scalar_one()
    page = browser.new_page()
    page.goto(f"{shared_api_stack.url}/runs/{run_id}")
    page.wait_for_selector("#run-error:not([hidden])")
    text = page.text_content("#run-error")
    assert text.startswith("This run was interrupted: lost at step 40") and "failed" not in text
    assert page.is_visible("#cancel-button")
    with engine.begin() as c:
        c.execute(
            sa.text("UPDATE runs SET status='succeeded', step=100, error=NULL WHERE id=:id"),
            {"id": run_id},
        )
    page.wait_for_function("() => document.getElementById('run-error').hidden", timeout=30_000)
    assert not page.is_visible("#cancel-button")
    engine.dispose()
