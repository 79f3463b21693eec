"""The one settings object. Every variable is read from the environment with the prefix
`DISTILLSCOPE_` (e.g. `DISTILLSCOPE_DATA_DIR`); tests override `get_settings`."""

from functools import lru_cache
from pathlib import Path
from typing import Annotated

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="DISTILLSCOPE_", extra="ignore")

    data_dir: Path = Field(
        default=Path("data"),
        description="Where the embedded database, "
        "broker, demo models, checkpoints and caches live.",
    )
    database_url: str | None = Field(
        default=None, description="SQLAlchemy URL; default: SQLite file in the data dir (WAL mode)."
    )
    broker_url: str | None = Field(
        default=None,
        description="Celery broker; default: kombu's "
        "SQLAlchemy transport on a SQLite file in the data dir.",
    )
    model_roots: Annotated[list[Path], NoDecode] = Field(
        default_factory=list,
        description="Folders (os.pathsep- or comma-separated) searched "
        "for local models; the data dir's models/ is always included.",
    )
    dataset_roots: Annotated[list[Path], NoDecode] = Field(
        default_factory=list,
        description="Folders searched for local datasets; the data "
        "dir's datasets/ is always included.",
    )
    api_token: str | None = None
    heartbeat_timeout_s: float = Field(
        default=60.0,
        gt=0,
        description="A running run whose heartbeat is older than this is marked lost.",
    )
    redelivery_timeout_s: float = Field(
        default=600.0,
        gt=0,
        description="Redis redelivers the task of a worker that died after this long.",
    )
    max_attempts: int = Field(
        default=3,
        ge=1,
        description="Deliveries of a run's task before it is failed (a worker that keeps dying).",
    )
    max_waiting_runs: int = Field(
        default=256,
        ge=1,
        description="At most this many runs may be unfinished (queued, running or lost) at "
        "once; a request that would pass it is refused with 429.",
    )
    torch_threads: int | None = Field(
        default=None,
        ge=1,
        le=1024,
        description="CPU threads torch uses in each worker process (default: torch's choice, "
        "about one per core). With several workers on one machine give each cores ÷ workers: "
        "oversubscribed threads spin against each other and every run slows down many times.",
    )

    @field_validator("model_roots", "dataset_roots", mode="before")
    @classmethod
    def _split_paths(cls, v: object) -> object:
        if isinstance(v, str):
            parts = [p.strip() for chunk in v.split(",") for p in chunk.split(":")]
            return [Path(p) for p in parts if p]
        return v

    @field_validator("data_dir")
    @classmethod
    def _absolute(cls, v: Path) -> Path:
        return v.expanduser().resolve()

    @property
    def db_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / 'distillscope.db'}"

    @property
    def celery_broker_url(self) -> str:
        return self.broker_url or f"sqla+sqlite:///{self.data_dir / 'broker.db'}"

    @property
    def models_dir(self) -> Path:
        return self.data_dir / "models"

    @property
    def datasets_dir(self) -> Path:
        return self.data_dir / "datasets"

    @property
    def runs_dir(self) -> Path:
        return self.data_dir / "runs"

    @property
    def teacher_cache_dir(self) -> Path:
        return self.data_dir / "cache" / "teacher-logits"

    @property
    def all_model_roots(self) -> list[Path]:
        return [self.models_dir, *[p.expanduser().resolve() for p in self.model_roots]]

    @property
    def all_dataset_roots(self) -> list[Path]:
        return [self.datasets_dir, *[p.expanduser().resolve() for p in self.dataset_roots]]


@lru_cache
def get_settings() -> Settings:
    return Settings()
