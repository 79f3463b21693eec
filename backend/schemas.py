"""API schemas, kept apart from the ORM models (backend/db/models.py). `RunConfig` is also the
worker's validated config: it is shared and must never import torch."""

import re
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
)

Divergence = Literal["forward_kl", "reverse_kl", "jsd"]

# A NUL (PostgreSQL's text cannot hold one) or a lone surrogate such as "\ud800" (not Unicode
# text: neither database nor UTF-8 can store it).
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def _storable(value: object) -> object:
    found = _UNSTORABLE.search(value) if isinstance(value, str) else None
    if found is not None:
        what = "a NUL character" if found.group() == "\x00" else "a lone surrogate"
        raise ValueError(f"must not contain {what} ({found.group()!a} at index {found.start()})")
    return value


def text(**constraints) -> Any:
    """The type of every free-text field of a request: a string with these constraints
    (`Field`'s: min_length, max_length, pattern) that any database and UTF-8 can store. (The
    constraints sit inside, so that their errors read as a string's, e.g. "at most 200
    characters".)"""
    return Annotated[str, Field(**constraints), BeforeValidator(_storable)]


# The file system's limit on one part of a path (NAME_MAX, in bytes): a longer part is
# `File name too long` when a name is resolved.
NAME_MAX = 255


def _resolvable(value: str) -> str:
    for part in value.split("/"):
        size = len(part.encode("utf-8"))
        if size > NAME_MAX:
            raise ValueError(
                f"each '/'-separated part of a name is at most {NAME_MAX} bytes (the file "
                f"system's limit); '{part[:20]}…' has {size}"
            )
    return value


# A model or dataset name: a path under a root, a Hub id or `run:<id>`.
ResourceName = Annotated[text(min_length=1, max_length=500), AfterValidator(_resolvable)]
# A tag: no commas (the forms separate tags with them), no leading space, at most 64 characters.
Tag = text(min_length=1, max_length=64, pattern=r"^[^,\s][^,]*$")
MAX_TAGS = 32
# A run's smallest T: below it logits / T overflow float32 for ordinary logits (T = 1e-300 gave
# an all-NaN run), and nothing is learned that T = 0.05 does not show.
MIN_TEMPERATURE = 0.05


class RunConfig(BaseModel):
    """Everything a distillation run needs. Bounds here become 422 errors naming the field."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    name: text(max_length=200) | None = Field(
        default=None,
        description="Absent or blank: the run is named from its config (T, α, student and what "
        "differs from the demo preset).",
    )
    tags: list[Tag] = Field(default_factory=list, max_length=MAX_TAGS)
    teacher: ResourceName = Field(description="Model name or path under a model root.")
    student: ResourceName
    dataset: ResourceName
    temperature: float = Field(
        default=2.0,
        ge=MIN_TEMPERATURE,
        le=100,
        description="Softmax temperature T of the soft loss (both teacher and student), from "
        "0.05 to 100.",
    )
    alpha: float = Field(
        default=0.5,
        ge=0,
        le=1,
        description="Weight of the soft (teacher) term; 0 is plain fine-tuning on the labels.",
    )
    divergence: Divergence = "forward_kl"
    beta: float = Field(default=0.5, gt=0, lt=1, description="JSD mixture weight.")
    max_steps: int = Field(default=200, ge=1, le=1_000_000, description="Optimizer steps.")
    batch_size: int = Field(default=16, ge=1, le=1024, description="Sequences per step.")
    grad_accum_steps: int = Field(default=1, ge=1, le=1024)
    seq_len: int = Field(default=64, ge=4, le=8192)
    learning_rate: float = Field(default=3e-4, gt=0, le=1)
    weight_decay: float = Field(default=0.0, ge=0, le=10)
    warmup_steps: int | None = Field(
        default=None,
        ge=0,
        le=1_000_000,
        description="Linear warm-up steps; default: 10 % of max_steps.",
    )
    max_grad_norm: float = Field(default=1.0, gt=0, le=1e6)
    eval_interval: int = Field(default=50, ge=1, le=1_000_000)
    eval_batches: int = Field(default=4, ge=1, le=1000)
    seed: int = Field(default=0, ge=0, le=2**31 - 1)
    checkpoint_interval: int | None = Field(
        default=None,
        ge=1,
        le=1_000_000,
        description="Save a resumable checkpoint every N steps; default: every eval_interval.",
    )
    teacher_cache_k: int | None = Field(
        default=None,
        ge=1,
        le=4096,
        description="Cache the "
        "teacher's top-k logits (k) for the training data and "
        "reuse them across runs; forward_kl only.",
    )
    keep_checkpoints: int = Field(
        default=2,
        ge=0,
        le=1000,
        description="How many of the latest resumable checkpoints to keep (0: all).",
    )
    keep_checkpoint_weights: int = Field(
        default=20,
        ge=0,
        le=10_000,
        description="How many of the checkpoints that keep_checkpoints prunes keep the "
        "student's weights (without the optimizer state), so the inspector can open the student "
        "there; thinned to stay spread over the run (0: none).",
    )
    dtype: Literal["auto", "bfloat16", "float32"] = Field(
        default="auto",
        description="Compute dtype of the forward passes: auto is bfloat16 on a CUDA device "
        "that supports it, float32 otherwise. The teacher's weights are stored in it; the "
        "student's stay float32 (master weights, run under autocast), and the loss is always "
        "computed in float32.",
    )
    gradient_checkpointing: bool = Field(
        default=False,
        description="Recompute the student's activations in the backward pass: less memory, "
        "about a third more compute.",
    )
    loss_impl: Literal["auto", "logits", "hidden"] = Field(
        default="auto",
        description="logits: the loss from both models' full logits; hidden: from their final "
        "hidden states and output heads, chunk by chunk, never holding the tokens x vocabulary "
        "logits (same values); auto: hidden when the vocabulary has 16,384 tokens or more.",
    )

    @field_validator("name")
    @classmethod
    def _blank_is_no_name(cls, v: str | None) -> str | None:
        return v if v is None or v.strip() else None

    @field_validator("grad_accum_steps")
    @classmethod
    def _divides_batch(cls, v: int, info: ValidationInfo) -> int:
        batch = info.data.get("batch_size")
        if batch is not None and batch % v:
            raise ValueError(f"must divide batch_size ({batch}) into equal micro-batches")
        return v

    @field_validator("teacher_cache_k")
    @classmethod
    def _cache_needs_forward_kl(cls, v: int | None, info: ValidationInfo) -> int | None:
        if v is not None and info.data.get("divergence", "forward_kl") != "forward_kl":
            raise ValueError("the teacher-logit cache supports divergence forward_kl only")
        return v

    @property
    def resolved_checkpoint_interval(self) -> int:
        return self.checkpoint_interval or self.eval_interval

    @property
    def resolved_warmup_steps(self) -> int:
        if self.warmup_steps is not None:
            return min(self.warmup_steps, self.max_steps)
        return max(1, self.max_steps // 10)


def _utc(dt: datetime | None) -> datetime | None:
    # SQLite returns naive datetimes; every stored time is UTC.
    return dt.replace(tzinfo=UTC) if dt is not None and dt.tzinfo is None else dt


class RunPublic(BaseModel):
    id: int
    name: str
    tags: list[str]
    config: dict
    status: str
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    heartbeat_at: datetime | None
    worker_host: str | None
    step: int
    total_steps: int
    error: str | None
    latest: dict[str, float | None]
    cancel_requested: bool = False
    attempts: int = 0
    note: str | None = None
    sweep_id: int | None = None

    @classmethod
    def from_orm_run(cls, run) -> "RunPublic":
        return cls(
            id=run.id,
            name=run.name,
            tags=run.tags or [],
            config=run.config,
            status=run.status,
            created_at=_utc(run.created_at),
            started_at=_utc(run.started_at),
            finished_at=_utc(run.finished_at),
            heartbeat_at=_utc(run.heartbeat_at),
            worker_host=run.worker_host,
            step=run.step,
            total_steps=run.total_steps,
            error=run.error,
            latest=run.latest or {},
            cancel_requested=bool(run.cancel_requested),
            attempts=run.attempts or 0,
            note=run.note,
            sweep_id=run.sweep_id,
        )


class RunsPublic(BaseModel):
    data: list[RunPublic]
    count: int
    tags: list[str] = Field(default_factory=list, description="Every tag in use, for filters.")
    sweeps: dict[int, "SweepPublic"] = Field(
        default_factory=dict, description="The sweeps the listed runs belong to, by id."
    )


class RunUpdate(BaseModel):
    """What can change after launch: the name, the tags and a free-text note."""

    model_config = ConfigDict(extra="forbid")

    # Absent fields stay as they are; name and tags cannot be null, a null note clears it.
    name: text(min_length=1, max_length=200) = None
    tags: Annotated[list[Tag], Field(max_length=MAX_TAGS)] = None
    note: text(max_length=10_000) | None = None


class SweepGrid(BaseModel):
    """The values to sweep: one run per combination; an absent or empty list keeps the base
    config's value."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    temperature: list[Annotated[float, Field(ge=MIN_TEMPERATURE, le=100)]] = Field(
        default_factory=list, max_length=16
    )
    alpha: list[Annotated[float, Field(ge=0, le=1)]] = Field(default_factory=list, max_length=16)
    divergence: list[Divergence] = Field(default_factory=list, max_length=3)
    seed: list[Annotated[int, Field(ge=0, le=2**31 - 1)]] = Field(
        default_factory=list, max_length=16
    )

    @field_validator("temperature", "alpha", "divergence", "seed")
    @classmethod
    def _distinct(cls, v: list) -> list:
        if len(set(v)) != len(v):
            raise ValueError("lists each value once")
        return v


class ExperimentRequest(BaseModel):
    """Options of a built-in experiment; absent, each keeps its designed budget."""

    model_config = ConfigDict(extra="forbid")

    max_steps: int | None = Field(
        default=None,
        ge=10,
        le=10_000,
        description="Steps of each of its runs (held-out metrics three times per run); "
        "default: 300 for the demo kit's experiment, 30 for the real kit's.",
    )


MAX_SWEEP_RUNS = 64


class SweepRequest(BaseModel):
    """A base run config and a grid over T, alpha, divergence and seed."""

    model_config = ConfigDict(extra="forbid")

    base: RunConfig = Field(description="The config every run shares; the grid overrides it.")
    grid: SweepGrid


class SweepPublic(BaseModel):
    id: int
    name: str
    grid: dict
    created_at: datetime
    runs: list[int] = Field(default_factory=list)

    @classmethod
    def from_orm_sweep(cls, sweep, run_ids: list[int]) -> "SweepPublic":
        return cls(
            id=sweep.id,
            name=sweep.name,
            grid=sweep.grid,
            created_at=_utc(sweep.created_at),
            runs=run_ids,
        )


class Point(BaseModel):
    step: int
    value: float | None
    time: float
    flag: str | None = None


class MetricsPublic(BaseModel):
    run_id: int
    metrics: dict[str, list[Point]]


class ModelInfo(BaseModel):
    name: str
    path: str
    model_type: str | None
    vocab_size: int | None
    n_positions: int | None
    parameters: int | None = None
    role: str | None = Field(default=None, description="teacher or student, as the kit records")
    description: str | None = Field(default=None, description="How the model was made.")
    profile: dict | None = Field(
        default=None,
        description="What a demo teacher knows of the truth, held out: how peaked it is, the "
        "truth's top 5 it keeps, KL(truth ‖ teacher) at T = 1 and at its best T.",
    )


class DatasetInfo(BaseModel):
    name: str
    path: str
    kind: str
    description: str | None = None


class Preset(BaseModel):
    id: str
    label: str
    description: str
    config: dict
    available: bool = Field(
        default=True, description="Whether its models and dataset are on this machine."
    )
    hint: str | None = Field(default=None, description="What to do when it is not available.")


class InspectRequest(BaseModel):
    """A prompt to inspect: the first model is the reference (usually the teacher) that the
    others are compared with. Models are names under the model roots, Hub ids, or `run:<id>`
    for a run's student."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    models: list[ResourceName] = Field(min_length=1, max_length=4)
    prompt: text(min_length=1, max_length=4000)
    temperatures: list[Annotated[float, Field(gt=0, le=100)]] = Field(
        default_factory=lambda: [0.5, 1.0, 2.0, 4.0, 8.0], min_length=1, max_length=16
    )
    k: int = Field(default=10, ge=1, le=100)
    position: int | None = Field(
        default=None,
        ge=0,
        description="Prompt position whose next token is shown (default: the last).",
    )
    max_tokens: int = Field(default=256, ge=1, le=1024, description="The prompt is cut here.")
    chat: bool = Field(
        default=False,
        description="Wrap the prompt as a user message in the first model's chat template and "
        "inspect the assistant's first answer position (instruction-tuned models).",
    )
