"""Launch presets offered by the form. The demo preset runs on the offline demo kit. Presets
carry no name: a run launched without one is named from its config (services/naming.py)."""

from backend.schemas import Preset, RunConfig

DEMO_CONFIG = {
    "teacher": "demo-teacher",
    "student": "demo-student-s",
    "dataset": "demo",
    "temperature": 2.0,
    "alpha": 0.5,
    "divergence": "forward_kl",
    "max_steps": 200,
    "batch_size": 16,
    "seq_len": 64,
    "learning_rate": 3e-3,
    "eval_interval": 50,
    "seed": 0,
}

PRESETS = [
    Preset(
        id="demo",
        label="Demo: distil the demo teacher at T = 2",
        description="The offline demo pair: a 4-layer teacher trained on the demo language "
        "and a 1-layer student, 200 steps, α = 0.5.",
        config=DEMO_CONFIG,
    ),
    Preset(
        id="demo-hard",
        label="Demo: hard labels only (α = 0)",
        description="The same student trained on the data's labels alone: the baseline "
        "distillation has to beat.",
        config={**DEMO_CONFIG, "alpha": 0.0},
    ),
    Preset(
        id="demo-t1",
        label="Demo: distillation at T = 1",
        description="Soft targets without softening.",
        config={**DEMO_CONFIG, "temperature": 1.0, "alpha": 0.9},
    ),
    Preset(
        id="demo-t4",
        label="Demo: distillation at T = 4",
        description="A softer teacher: more mass on the near-synonyms.",
        config={**DEMO_CONFIG, "temperature": 4.0, "alpha": 0.9},
    ),
]

# Presets carry every field (defaults filled in), so the form shows the whole config.
for _p in PRESETS:
    _p.config = RunConfig.model_validate(_p.config).model_dump(mode="json")
