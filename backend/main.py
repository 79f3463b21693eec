"""The FastAPI app: API routes, the static frontend, and plotly.js and the API docs (Swagger UI,
ReDoc) served from local files, so every page works offline."""

import asyncio
import gc
import logging
import math
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from pathlib import Path

import plotly
from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import (
    get_redoc_html,
    get_swagger_ui_html,
    get_swagger_ui_oauth2_redirect_html,
)
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse
from fastapi.staticfiles import StaticFiles

from backend.api.origin import SameOriginMiddleware
from backend.api.routes import catalog, inspect, runs, sweeps
from backend.db.migrate import upgrade
from backend.queue import enqueue_training
from backend.services import lifecycle
from backend.services.queueing import QueueFull, QueueUnavailable
from backend.services.runs import FieldError
from backend.settings import get_settings

log = logging.getLogger(__name__)

FRONTEND = Path(__file__).resolve().parent.parent / "frontend"
PLOTLY_JS = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
# Vendored from npm (see frontend/static/vendor/README.md): FastAPI's defaults load them from a CDN.
SWAGGER_UI = "/static/vendor/swagger-ui-5.35.0"
REDOC = "/static/vendor/redoc-2.5.4"
# The docs pages may fetch, draw and connect only to this server: ReDoc's sidebar would
# otherwise load its vendor's logo from a CDN on every visit (it hides the image when it fails).
DOCS_CSP = "connect-src 'self'; img-src 'self' data: blob:; font-src 'self' data:"


# One sweep at a time, on a thread of its own: a sweep left running past its timeout delays
# the next one, and neither holds the event loop or its default executor (which the server
# waits for when it stops).
_SWEEPS = ThreadPoolExecutor(max_workers=1, thread_name_prefix="lost-run-sweep")


async def _sweep_once(timeout: float | None = None) -> None:
    """Runs whose worker died are marked lost and queued again (backend/services/lifecycle.py;
    idempotent: any api replica may). Past `timeout` seconds (a broker that does not answer
    costs each task its connection retries) it is left to finish on its own thread."""
    settings = get_settings()
    work = asyncio.get_running_loop().run_in_executor(
        _SWEEPS, lambda: lifecycle.sweep(settings=settings, enqueue=enqueue_training)
    )
    work.add_done_callback(_log_sweep_failure)
    try:
        await asyncio.wait_for(asyncio.shield(work), timeout)
    except TimeoutError:
        log.warning("lost-run sweep still running after %.0f s (broker slow?)", timeout)
    except Exception:  # noqa: BLE001 - logged by the callback; the sweeper goes on
        pass


def _log_sweep_failure(work: asyncio.Future) -> None:
    if not work.cancelled() and work.exception() is not None:
        log.warning("lost-run sweep failed", exc_info=work.exception())


async def _sweep_lost_runs() -> None:
    """A sweep every few seconds (a third of the heartbeat timeout, 1 to 10 s)."""
    interval = max(1.0, min(10.0, get_settings().heartbeat_timeout_s / 3))
    while True:
        await asyncio.sleep(interval)
        await _sweep_once()


def freeze_startup_heap() -> None:
    """Move every object alive after start-up (modules, the app, settings) out of the cyclic
    collector's reach: a full collection then walks only what requests create. Without it a
    full collection every few dozen requests is a request's tail latency (bench/runs_list.py:
    p99 of the runs list 70 ms → 25 ms, p50 13 ms either way). Once per process: an app
    started again in the same process (tests) must not freeze what the last one left."""
    global _heap_frozen
    if not _heap_frozen:
        gc.collect()
        gc.freeze()
        _heap_frozen = True


_heap_frozen = False


@asynccontextmanager
async def lifespan(_app: FastAPI):
    upgrade()  # idempotent: brings the database to the latest migration
    freeze_startup_heap()
    # The first sweep before the first request: runs left lost or running by a stopped
    # stack are queued again at once, and nothing written after start-up races with it (an
    # unreachable broker delays serving by 5 s at most).
    await _sweep_once(timeout=5.0)
    sweeper = asyncio.create_task(_sweep_lost_runs())
    yield
    sweeper.cancel()


def _json_safe(value):
    """NaN and infinities are not JSON: echo them back as strings (e.g. a rejected NaN); a lone
    surrogate (a rejected "\ud800") is not UTF-8: echo it escaped."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, str):
        return value.encode("utf-8", "backslashreplace").decode("utf-8")
    if isinstance(value, dict):
        return {_json_safe(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    return value


def _unprocessable(errors: list) -> JSONResponse:
    return JSONResponse(status_code=422, content={"detail": _json_safe(errors)})


def create_app() -> FastAPI:
    app = FastAPI(
        title="distillscope",
        version="0.1.0",
        lifespan=lifespan,
        description="Knowledge-distillation lab bench: runs, live metrics, inspection.",
        docs_url=None,  # served below from local files
        redoc_url=None,
    )
    app.add_middleware(SameOriginMiddleware)
    app.include_router(runs.router)
    app.include_router(runs.compare_router)
    app.include_router(sweeps.experiment_router)
    app.include_router(sweeps.sweep_router)
    app.include_router(inspect.router)
    app.include_router(catalog.router)

    @app.exception_handler(RequestValidationError)
    async def validation_error(_request: Request, exc: RequestValidationError) -> JSONResponse:
        return _unprocessable(jsonable_encoder(exc.errors()))

    @app.exception_handler(FieldError)
    async def field_error(_request: Request, exc: FieldError) -> JSONResponse:
        # Same shape as FastAPI's own validation errors, so clients handle one format.
        return _unprocessable(
            [
                {
                    "type": "value_error",
                    "loc": exc.loc,
                    "msg": exc.message,
                    "input": exc.value,
                }
            ]
        )

    @app.exception_handler(QueueFull)
    async def queue_full(_request: Request, exc: QueueFull) -> JSONResponse:
        return JSONResponse(
            status_code=429, content={"detail": str(exc)}, headers={"Retry-After": "60"}
        )

    @app.exception_handler(QueueUnavailable)
    async def queue_unavailable(_request: Request, exc: QueueUnavailable) -> JSONResponse:
        return JSONResponse(status_code=503, content={"detail": str(exc)})

    @app.get("/static/plotly.min.js", include_in_schema=False)
    def plotly_js() -> FileResponse:
        return FileResponse(PLOTLY_JS, media_type="application/javascript")

    app.mount("/static", StaticFiles(directory=FRONTEND / "static"), name="static")
    _docs_routes(app)

    @app.get("/", include_in_schema=False)
    def index() -> FileResponse:
        return FileResponse(FRONTEND / "index.html")

    @app.get("/compare", include_in_schema=False)
    def compare_page() -> FileResponse:
        return FileResponse(FRONTEND / "compare.html")

    @app.get("/inspect", include_in_schema=False)
    def inspect_page() -> FileResponse:
        return FileResponse(FRONTEND / "inspect.html")

    @app.get("/runs/{run_id}", include_in_schema=False)
    def run_page(run_id: int) -> FileResponse:
        return FileResponse(FRONTEND / "run.html")

    return app


def _docs_routes(app: FastAPI) -> None:
    """/docs and /redoc as FastAPI draws them, with the vendored assets instead of a CDN's."""
    oauth2_redirect = app.swagger_ui_oauth2_redirect_url

    @app.get("/docs", include_in_schema=False)
    def swagger_ui() -> HTMLResponse:
        page = get_swagger_ui_html(
            openapi_url=app.openapi_url,
            title=f"{app.title} — API (Swagger UI)",
            swagger_js_url=f"{SWAGGER_UI}/swagger-ui-bundle.js",
            swagger_css_url=f"{SWAGGER_UI}/swagger-ui.css",
            swagger_favicon_url=f"{SWAGGER_UI}/favicon-32x32.png",
            oauth2_redirect_url=oauth2_redirect,
            swagger_ui_parameters={"validatorUrl": None},  # no badge from the online validator
        )
        page.headers["Content-Security-Policy"] = DOCS_CSP
        return page

    @app.get(oauth2_redirect, include_in_schema=False)
    def swagger_ui_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    @app.get("/redoc", include_in_schema=False)
    def redoc() -> HTMLResponse:
        page = get_redoc_html(
            openapi_url=app.openapi_url,
            title=f"{app.title} — API (ReDoc)",
            redoc_js_url=f"{REDOC}/redoc.standalone.js",
            redoc_favicon_url=f"{SWAGGER_UI}/favicon-32x32.png",
            with_google_fonts=False,
        )
        page.headers["Content-Security-Policy"] = DOCS_CSP
        return page


app = create_app()
