"""Automatic run names: what a run is (T, α and the student, or "hard labels" at α = 0), then,
as key=value, each field that changes training and differs from the reference preset's config
(the real kit's for its teacher, else the demo's), so that two runs that train differently get
different names (e.g. `T=4 α=0.9 demo-student-s`, `hard labels demo-student-s seed=2`).
Bookkeeping (evaluation, checkpoints, tags) is left out."""

from collections.abc import Collection

from backend.schemas import RunConfig
from backend.services.presets import DEMO_CONFIG, SMOLLM2_CONFIG

MAX_NAME = 200  # RunConfig.name's limit

# The fields a name lists when they differ from the demo preset, in this order, by their key.
_KEYS = {
    "teacher": "teacher",
    "dataset": "dataset",
    "divergence": "divergence",
    "beta": "β",
    "max_steps": "steps",
    "batch_size": "batch",
    "grad_accum_steps": "accum",
    "seq_len": "seq_len",
    "learning_rate": "lr",
    "weight_decay": "weight_decay",
    "warmup_steps": "warmup",
    "max_grad_norm": "max_grad_norm",
    "teacher_cache_k": "cache_k",
    "dtype": "dtype",
    "seed": "seed",
}

_DEMO = RunConfig.model_validate(DEMO_CONFIG)
_SMOLLM2 = RunConfig.model_validate(SMOLLM2_CONFIG)


def _reference(config: RunConfig) -> RunConfig:
    return _SMOLLM2 if config.teacher == _SMOLLM2.teacher else _DEMO


def _text(value: object) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def run_name(config: RunConfig, *, omit: Collection[str] = ()) -> str:
    """The run's name from its config, at most MAX_NAME characters. `omit` leaves fields out:
    a sweep is named by its base config without the fields it sweeps."""
    ref = _reference(config)
    hard = config.alpha == 0 and "alpha" not in omit
    words = ["hard labels"] if hard else []
    if not hard and "temperature" not in omit:
        words.append(f"T={config.temperature:g}")
    if not hard and "alpha" not in omit:
        words.append(f"α={config.alpha:g}")
    words.append(config.student)
    if hard and "temperature" not in omit and config.temperature != ref.temperature:
        # At α = 0, T shapes only the logged soft loss: named when it is not the demo's.
        words.append(f"T={config.temperature:g}")
    for field, key in _KEYS.items():
        if field in omit:
            continue
        value = getattr(config, field)
        if field == "beta":
            # β matters with jsd only; a sweep over divergences names it when it is not 0.5.
            jsd = config.divergence == "jsd" and "divergence" not in omit
            differs = jsd or ("divergence" in omit and value != ref.beta)
        elif field == "warmup_steps":
            # Empty means 10 % of the steps: an explicit value equal to that is not named.
            default = max(1, config.max_steps // 10)
            differs = value is not None and config.resolved_warmup_steps != default
        else:
            differs = value != getattr(ref, field)
        if differs:
            words.append(f"{key}={_text(value)}")
    name = " ".join(words)
    return name if len(name) <= MAX_NAME else name[: MAX_NAME - 1] + "…"
