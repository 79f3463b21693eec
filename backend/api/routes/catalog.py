"""Models, datasets and launch presets a run can use."""

from fastapi import APIRouter

from backend.api.deps import SettingsDep
from backend.queue import ping_workers
from backend.schemas import DatasetInfo, ModelInfo, Preset
from backend.services import catalog
from backend.services.presets import presets_for

router = APIRouter(prefix="/api", tags=["catalog"])


@router.get("/models")
def list_models(settings: SettingsDep) -> list[ModelInfo]:
    """Local models found under the model roots (folders holding a config.json)."""
    return catalog.list_models(settings)


@router.get("/datasets")
def list_datasets(settings: SettingsDep) -> list[DatasetInfo]:
    """Local datasets found under the dataset roots (folders holding a dataset.json)."""
    return catalog.list_datasets(settings)


@router.get("/presets")
def list_presets(settings: SettingsDep) -> list[Preset]:
    """Ready-made run configs for the launch form; `available` says whether this machine has
    a preset's models and dataset, `hint` what to do if not."""
    return presets_for(settings)


@router.get("/health")
def health() -> dict:
    """The api is up (used by `distillscope up`, compose and load balancers)."""
    return {"status": "ok"}


@router.get("/health/workers")
def workers_health() -> dict:
    """Which Celery workers answer a ping (train and inspect queues)."""
    return ping_workers()
