"""Celery tasks: thin adapters that take ids and call the worker's code.

Start a worker with `celery -A worker.tasks worker -Q train` (or `distillscope worker`)."""

from backend.queue import TRAIN_TASK, get_celery
from worker.runner import run_training

app = get_celery()


@app.task(name=TRAIN_TASK)
def train(run_id: int) -> str | None:
    """Run a distillation run by id (re-read from the database)."""
    return run_training(run_id)
