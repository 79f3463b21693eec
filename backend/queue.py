"""The Celery app as the api sees it: it only sends task names, so it never imports the worker
(or torch). worker/tasks.py registers the task bodies on the same app."""

import asyncio
import threading
from concurrent.futures import Future
from functools import lru_cache

from celery import Celery
from kombu.transport import TRANSPORT_ALIASES
from kombu.transport import sqlalchemy as kombu_sqlalchemy

from backend.settings import Settings, get_settings

TRAIN_TASK = "distillscope.train"
TRAIN_QUEUE = "train"
INSPECT_TASK = "distillscope.inspect"
INSPECT_QUEUE = "inspect"  # short prompt inspections, never stuck behind a long run
# How often an idle worker reads the embedded SQLite broker for a task (Redis pushes), and the
# api the results file for an inspection's answer. A worker's polls cost it about 1.5 % of a
# core; kombu's default of once a second added up to a second to every inspection.
SQLITE_POLL_S = 0.1
RESULT_POLL_S = 0.05


# The longest an idle worker's wait on the embedded broker lasts before it goes back to celery's
# loop. That loop (synloop, for transports that push nothing) looks for a warm shutdown only
# between two waits of 2 s, and waits once more after it: SIGTERM took up to 4 s to stop a worker.
SQLITE_DRAIN_S = 0.25


class PolledSQLAlchemyTransport(kombu_sqlalchemy.Transport):
    """kombu's SQLAlchemy transport, read every SQLITE_POLL_S instead of every second (its
    transport options all go to create_engine, so the interval is set here), and waited on for
    at most SQLITE_DRAIN_S at a time."""

    polling_interval = SQLITE_POLL_S

    def drain_events(self, connection, timeout=None):
        if timeout is not None:
            timeout = min(timeout, SQLITE_DRAIN_S)
        return super().drain_events(connection, timeout=timeout)


def make_celery(settings: Settings) -> Celery:
    url = settings.celery_broker_url
    if url.startswith("sqla+sqlite:///"):
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    # The embedded SQLite broker (what `sqla+sqlite://` names) polled more often; another
    # database behind kombu's SQLAlchemy transport keeps its once a second.
    TRANSPORT_ALIASES["sqla"] = (
        f"{__name__}:PolledSQLAlchemyTransport"
        if url.startswith("sqla+sqlite:")
        else "kombu.transport.sqlalchemy:Transport"
    )
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
    get_celery().send_task(TRAIN_TASK, args=[run_id], queue=TRAIN_QUEUE, ignore_result=True)


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


INSPECTIONS_IN_FLIGHT = 16  # the most inspections one api process waits for at once
INSPECT_RETRY_AFTER_S = 5  # what a refused client is told to wait (the Retry-After header)


class InspectionsBusy(Exception):
    """Every inspection slot of this api process is taken: try again in a few seconds."""

    def __init__(self, size: int):
        super().__init__(
            f"{size} inspections are already in flight, the most this api waits for at once: "
            f"try again in {INSPECT_RETRY_AFTER_S} s"
        )


class InspectionSlots:
    """A bounded set of waits, each on a thread of its own: a full set refuses at once, and
    the server's threadpool (which every sync route needs) is never held by a wait. A slot is
    free only when its thread is, even if the client that asked has gone."""

    def __init__(self, size: int):
        self.size = size
        self.taken = 0
        self._lock = threading.Lock()

    @property
    def full(self) -> bool:
        return self.taken >= self.size

    def reserve(self) -> "InspectionSlot":
        """Take a slot now (before any work for the request), or raise InspectionsBusy."""
        with self._lock:
            if self.taken >= self.size:
                raise InspectionsBusy(self.size)
            self.taken += 1
        return InspectionSlot(self)

    def submit(self, fn, *args) -> Future:
        """Reserve a slot and run fn(*args) on it."""
        with self.reserve() as slot:
            return slot.submit(fn, *args)

    def _release(self) -> None:
        with self._lock:
            self.taken -= 1


class InspectionSlot:
    """One reserved slot: used as a context manager, it is given back on exit unless a wait
    was submitted on it, which gives it back when the wait ends."""

    def __init__(self, slots: InspectionSlots):
        self._slots = slots
        self._future: Future | None = None

    def submit(self, fn, *args) -> Future:
        """Run fn(*args) on a daemon thread (a pending wait never holds up the api's exit)."""
        assert self._future is None, "one wait per slot"
        future = self._future = Future()
        future.add_done_callback(lambda _: self._slots._release())
        # Running: a request cancelled (its client gone) cannot cancel it, so the slot stays
        # taken until the thread ends.
        future.set_running_or_notify_cancel()

        def run() -> None:
            try:
                result = fn(*args)
            except BaseException as e:  # handed to the awaiting request
                future.set_exception(e)
            else:
                future.set_result(result)

        try:
            threading.Thread(target=run, name="inspect-wait", daemon=True).start()
        except BaseException as e:  # no thread to be had: the slot is given back
            future.set_exception(e)
            raise
        return future

    def __enter__(self) -> "InspectionSlot":
        return self

    def __exit__(self, *exc) -> None:
        if self._future is None:
            self._slots._release()


INSPECTIONS = InspectionSlots(INSPECTIONS_IN_FLIGHT)


def _send_and_wait(request: dict, timeout: float) -> dict:
    result = get_celery().send_task(INSPECT_TASK, args=[request], queue=INSPECT_QUEUE)
    try:
        # Celery's own wait: on Redis it reads the result's pub/sub channel (which polling
        # result.ready() would leave unread), on the SQLite backend it polls the results file
        # (every RESULT_POLL_S, not celery's default half second; Redis ignores the interval).
        return result.get(timeout=timeout, interval=RESULT_POLL_S)
    finally:
        result.forget()


async def run_inspection(request: dict, slot: InspectionSlot, timeout: float = 60.0) -> dict:
    """Send an inspection to the inspect queue and wait for its answer on a reserved slot
    (INSPECTIONS.reserve()), off the event loop and off the server's threadpool. Raises
    celery's TimeoutError when no worker answers within `timeout`."""
    return await asyncio.wrap_future(slot.submit(_send_and_wait, request, timeout))
