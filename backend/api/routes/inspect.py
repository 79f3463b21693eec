"""Prompt inspection: the api validates and waits; an inspect worker does the model work."""

import celery.exceptions
from fastapi import APIRouter, HTTPException, status

from backend.api.deps import SessionDep, SettingsDep
from backend.queue import run_inspection
from backend.schemas import InspectRequest
from backend.services import catalog
from backend.services.inspection import about_models, has_chat_template
from backend.services.runs import FieldError

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


@router.post("/inspect")
def inspect(req: InspectRequest, settings: SettingsDep, session: SessionDep) -> dict:
    """Each model's next-token distribution for a prompt at several temperatures (full-
    vocabulary softmax), and KL both ways, Jensen-Shannon and total variation between the
    first model and each other one at every position; `about` gives each model's role and a
    readable label."""
    _check_models(req, settings)
    about = about_models(names=req.models, session=session, settings=settings)
    session.close()  # nothing more to read: the wait below holds no connection
    try:
        return {**run_inspection(req.model_dump()), "about": about}
    except celery.exceptions.TimeoutError:
        raise HTTPException(
            status.HTTP_504_GATEWAY_TIMEOUT,
            "no inspect worker answered within 60 s: is a worker running on the 'inspect' queue?",
        ) from None
    except ValueError as e:  # raised by the worker for a prompt it cannot inspect
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(e)) from None
