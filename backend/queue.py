"""The Celery app as the api sees it: it only sends task names, so it never imports the worker
(or torch). worker/tasks.py registers the task bodies on the same app."""

from functools import lru_cache

from celery import Celery

from backend.settings import Settings, get_settings

TRAIN_TASK = "distillscope.train"
TRAIN_QUEUE = "train"
INSPECT_TASK = "distillscope.inspect"
INSPECT_QUEUE = "inspect"  # short prompt inspections, never stuck behind a long run


def make_celery(settings: Settings) -> Celery:
    url = settings.celery_broker_url
    if url.startswith("sqla+sqlite:///"):
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    app = Celery("distillscope", broker=url)
    app.conf.update(
        task_acks_late=True,  # a run whose worker dies is redelivered, not lost
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,  # one run at a time per worker process
        task_ignore_result=True,  # run results live in the database; only inspections return
        result_backend=_result_backend(url, settings),
        result_expires=3600,
        task_routes={TRAIN_TASK: {"queue": TRAIN_QUEUE}, INSPECT_TASK: {"queue": INSPECT_QUEUE}},
        task_default_queue=TRAIN_QUEUE,
        broker_connection_retry_on_startup=True,
        broker_transport_options=_transport_options(url, settings),
    )
    return app


def _result_backend(url: str, settings: Settings) -> str:
    """Where an inspection's answer waits for the api: Redis next to a Redis broker, else a
    SQLite file in the data dir."""
    if url.startswith(("redis://", "rediss://")):
        return url
    return f"db+sqlite:///{settings.data_dir / 'results.db'}"


def _transport_options(url: str, settings: Settings) -> dict:
    if url.startswith("sqla+"):
        # kombu hands these to sqlalchemy.create_engine: wait for the other process's lock.
        return {"connect_args": {"timeout": 30}}
    if url.startswith(("redis://", "rediss://")):
        # Redis redelivers an unacked message after the visibility timeout: that is how a run
        # whose worker died is picked up again. A run that outlasts it while its worker lives
        # is delivered twice; the second delivery sees a fresh heartbeat and waits its turn.
        return {"visibility_timeout": settings.redelivery_timeout_s}
    return {}


@lru_cache
def get_celery() -> Celery:
    return make_celery(get_settings())


def enqueue_training(run_id: int) -> None:
    """Send a run id to the train queue. Call only after the run's row is committed."""
    get_celery().send_task(TRAIN_TASK, args=[run_id], queue=TRAIN_QUEUE)


def ping_workers(timeout: float = 1.0) -> dict:
    """Workers that answer a broadcast ping, by name (needs a broker with fan-out: Redis)."""
    url = get_settings().celery_broker_url
    if url.startswith("sqla+"):
        return {
            "available": False,
            "reason": "the embedded SQLite broker has no broadcast; "
            "workers show their life through run heartbeats",
            "workers": [],
        }
    replies = get_celery().control.ping(timeout=timeout) or []
    return {"available": True, "workers": sorted(name for r in replies for name in r)}


def run_inspection(request: dict, timeout: float = 60.0) -> dict:
    """Send an inspection to the inspect queue and wait for its answer."""
    result = get_celery().send_task(INSPECT_TASK, args=[request], queue=INSPECT_QUEUE)
    try:
        return result.get(timeout=timeout)
    finally:
        result.forget()
