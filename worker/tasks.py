"""Celery tasks: thin adapters that take ids and call the worker's code.

Start a worker with `celery -A worker.tasks worker -Q train` (or `distillscope worker`)."""

from celery.signals import worker_shutting_down

from backend.queue import INSPECT_TASK, TRAIN_TASK, get_celery
from backend.schemas import InspectRequest
from backend.settings import get_settings
from worker.runner import Claim, request_shutdown, run_training

app = get_celery()


@worker_shutting_down.connect
def _stop_the_run(**_kw) -> None:
    """SIGTERM (Ctrl-C of `up`, a container stop): the run in progress saves a checkpoint at
    its next step and goes back to the queue, instead of holding the shutdown until it ends."""
    request_shutdown()


if get_settings().torch_threads:
    import torch

    torch.set_num_threads(get_settings().torch_threads)


@app.task(name=TRAIN_TASK, bind=True, max_retries=None)
def train(self, run_id: int) -> str | None:
    """Run a distillation run by id (re-read from the database)."""
    result = run_training(run_id)
    if result is Claim.BUSY:
        # Delivered again while a live worker still trains it (Redis's visibility timeout):
        # look again later; if that worker dies, this delivery resumes the run.
        raise self.retry(countdown=max(5.0, get_settings().heartbeat_timeout_s / 2))
    return result if isinstance(result, str) else result.value


@app.task(name=INSPECT_TASK, ignore_result=False)
def inspect(request: dict) -> dict:
    """Next-token distributions of a prompt for several models and temperatures."""
    from worker.inspect import inspect_prompt  # noqa: PLC0415 - keeps the train path lean

    return inspect_prompt(InspectRequest.model_validate(request), get_settings())
