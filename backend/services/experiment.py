"""The built-in experiment, "What does the teacher add, and what does T change?": a student on
a small data budget (demo-small, 300 sentences) trained on hard labels only, and distilled at
T = 1, 2, 4 (alpha = 0.9) from three teachers: the calibrated one, the same teacher fine-tuned
until peaked (does T > 1 recover what its peaked softmax hides?), and the over-confident one
that memorised its data; 3 seeds each, 30 runs. The teacher-logit cache (k = V - 1, exact)
makes the sweep fast: each teacher runs once over the data.

The real kit's experiment, "SmolLM2 at T = 1 / 2 / 4": the CPU preset's 10-layer student
trained on the teacher's own chat answers with hard labels only (sequence-level KD) and
distilled at T = 1, 2, 4 (alpha = 0.9), one seed each; its panel reads KL(teacher || student) at
T = 1, top-1 agreement, and at each T how much of the teacher's mass and of the soft loss lies
outside the teacher's top 8 of 49,152 tokens."""

import time

from sqlalchemy.orm import Session

from backend.db.models import Run, Sweep
from backend.schemas import ExperimentRequest, RunConfig
from backend.services.presets import SMOLLM2_CONFIG
from backend.services.runs import create_run
from backend.settings import Settings

TEACHERS = {
    "demo-teacher": "calibrated teacher",
    "demo-teacher-finetuned": "fine-tuned (peaked) teacher",
    "demo-teacher-memorised": "memorised teacher",
}
TEMPERATURES = (1.0, 2.0, 4.0)
SEEDS = (0, 1, 2)
BASE = {
    "student": "demo-student-s",
    "dataset": "demo-small",
    "max_steps": 300,
    "batch_size": 16,
    "seq_len": 64,
    "learning_rate": 3e-3,
    "eval_interval": 100,
    "eval_batches": 8,
}


def experiment_configs(*, tag: str, vocab: int, max_steps: int = 300) -> list[RunConfig]:
    base = {**BASE, "max_steps": max_steps, "eval_interval": max(1, max_steps // 3)}
    configs = []
    for seed in SEEDS:
        configs.append(
            RunConfig(
                name="hard labels only",
                teacher="demo-teacher",
                alpha=0.0,
                temperature=1.0,
                seed=seed,
                tags=[tag],
                # α = 0: the teacher only feeds the logged soft loss; the cache spares its
                # forward pass at every step (the same cache the calibrated runs read).
                teacher_cache_k=vocab - 1,
                **base,
            )
        )
        for teacher, label in TEACHERS.items():
            for t in TEMPERATURES:
                configs.append(
                    RunConfig(
                        name=f"{label}, T={t:g}",
                        teacher=teacher,
                        alpha=0.9,
                        temperature=t,
                        seed=seed,
                        tags=[tag],
                        teacher_cache_k=vocab - 1,
                        **base,
                    )
                )
    return configs


def create_experiment(
    *, session: Session, settings: Settings, options: ExperimentRequest | None = None
) -> tuple[str, list[Run]]:
    """Add the experiment's runs (the caller commits, then enqueues them)."""
    from backend.services import catalog
    from backend.services.vocab import read_vocab

    teacher_dir = catalog.resolve_local_model("demo-teacher", settings)
    vocab = read_vocab(teacher_dir)
    size = max(vocab.values()) + 1 if vocab else 0
    tag = f"experiment-{int(time.time())}"
    sweep = Sweep(
        name="What does the teacher add, and what does T change?",
        grid={
            "teacher": ["none (hard labels)", *TEACHERS],
            "temperature": list(TEMPERATURES),
            "seed": list(SEEDS),
        },
    )
    session.add(sweep)
    session.flush()
    runs = [
        create_run(session=session, config=c, settings=settings, sweep=sweep)
        for c in experiment_configs(
            tag=tag, vocab=size, max_steps=(options or ExperimentRequest()).max_steps or 300
        )
    ]
    return tag, runs


LLM_TEMPERATURES = (1.0, 2.0, 4.0)


def llm_experiment_configs(*, tag: str, max_steps: int = 30) -> list[RunConfig]:
    base = {
        **SMOLLM2_CONFIG,
        "max_steps": max_steps,
        "eval_interval": max(1, max_steps // 3),
        "eval_batches": 4,
        "tags": [tag],
    }
    configs = [RunConfig(**{**base, "name": "SmolLM2, hard labels only", "alpha": 0.0})]
    for t in LLM_TEMPERATURES:
        configs.append(
            RunConfig(**{**base, "name": f"SmolLM2, T={t:g}", "alpha": 0.9, "temperature": t})
        )
    return configs


class KitMissing(LookupError):
    """The experiment's models or dataset are not on this machine; the message says how to
    prepare them."""


def create_llm_experiment(
    *, session: Session, settings: Settings, options: ExperimentRequest | None = None
) -> tuple[str, list[Run]]:
    """Add the real kit's experiment (4 runs; the caller commits, then enqueues them)."""
    from backend.services import catalog
    from backend.services.presets import REAL_KIT_HINT

    try:
        for key in ("teacher", "student"):
            catalog.resolve_local_model(SMOLLM2_CONFIG[key], settings)
        catalog.resolve_dataset(SMOLLM2_CONFIG["dataset"], settings)
    except catalog.CatalogError as e:
        raise KitMissing(f"{e}. {REAL_KIT_HINT}") from None
    steps = (options or ExperimentRequest()).max_steps or 30
    tag = f"smollm2-experiment-{int(time.time())}"
    sweep = Sweep(
        name="SmolLM2 at T = 1 / 2 / 4",
        grid={"temperature": ["none (hard labels)", *LLM_TEMPERATURES]},
    )
    session.add(sweep)
    session.flush()
    runs = [
        create_run(session=session, config=c, settings=settings, sweep=sweep)
        for c in llm_experiment_configs(tag=tag, max_steps=steps)
    ]
    return tag, runs
