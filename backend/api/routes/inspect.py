"""Prompt inspection: the api validates and waits; an inspect worker does the model work."""

import celery.exceptions
from fastapi import APIRouter, HTTPException, status
from fastapi.concurrency import run_in_threadpool

from backend.api.deps import TokenDep
from backend.db.session import new_session
from backend.queue import INSPECT_RETRY_AFTER_S, INSPECTIONS, InspectionsBusy, run_inspection
from backend.schemas import InspectRequest
from backend.services import catalog
from backend.services.inspection import about_models, has_chat_template
from backend.services.runs import FieldError
from backend.settings import get_settings

router = APIRouter(prefix="/api", tags=["inspect"])


def _check_models(req: InspectRequest, settings) -> None:
    folders = []
    for i, name in enumerate(req.models):
        if name.startswith("run:"):
            found = catalog.run_student_dir(name, settings)
            if found is None:
                raise FieldError("models", f"models[{i}]: {name} has no saved student (yet)", name)
            folders.append(found)
            continue
        try:
            folders.append(catalog.resolve_model(name, settings))
        except catalog.CatalogError as e:
            raise FieldError("models", f"models[{i}]: {e}", name) from None
    # The chat template is the first model's (its tokenizer tokenizes for every model).
    if req.chat and not has_chat_template(folders[0]):
        raise FieldError(
            "chat",
            f"{req.models[0]} (the first model) has no chat template: inspect without the chat "
            "template, or put an instruction-tuned model first",
            True,
        )


def _prepare(req: InspectRequest) -> list[dict]:
    """The request's models checked, and what the page says about each (a database read)."""
    settings = get_settings()
    _check_models(req, settings)
    session = new_session()
    try:
        return about_models(names=req.models, session=session, settings=settings)
    finally:
        session.close()  # nothing more to read: the wait holds no connection


@router.post(
    "/inspect",
    dependencies=[TokenDep],
    responses={503: {"description": "Every inspection slot is taken: retry after Retry-After."}},
)
async def inspect(req: InspectRequest) -> dict:
    """Each model's next-token distribution for a prompt at several temperatures (full-
    vocabulary softmax), and KL both ways, Jensen-Shannon and total variation between the
    first model and each other one at every position; `about` gives each model's role and a
    readable label. At most a fixed number of inspections wait at once: past it, 503 with
    Retry-After."""
    # Async, with no sync dependency: a request takes a server thread only for _prepare, and
    # a refused one none at all.
    try:
        slot = INSPECTIONS.reserve()  # before any work: a full queue costs the api nothing
    except InspectionsBusy as e:
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE,
            str(e),
            headers={"Retry-After": str(INSPECT_RETRY_AFTER_S)},
        ) from None
    with slot:
        about = await run_in_threadpool(_prepare, req)
        try:
            return {**await run_inspection(req.model_dump(), slot), "about": about}
        except celery.exceptions.TimeoutError:
            raise HTTPException(
                status.HTTP_504_GATEWAY_TIMEOUT,
                "no inspect worker answered within 60 s: is a worker running on the 'inspect' "
                "queue?",
            ) from None
        except ValueError as e:  # raised by the worker for a prompt it cannot inspect
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(e)) from None
