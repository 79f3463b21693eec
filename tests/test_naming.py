"""Automatic run names (backend/services/naming.py): what a run is, then what differs from the
demo preset, so that runs that train differently are told apart by name."""

import pytest

from backend.schemas import RunConfig
from backend.services.naming import MAX_NAME, run_name
from backend.services.presets import DEMO_CONFIG


def _name(**changes) -> str:
    return run_name(RunConfig.model_validate({**DEMO_CONFIG, **changes}))


@pytest.mark.parametrize(
    ("changes", "name"),
    [
        ({}, "T=2 α=0.5 demo-student-s"),
        ({"temperature": 4.0, "alpha": 0.9}, "T=4 α=0.9 demo-student-s"),
        ({"alpha": 0.0}, "hard labels demo-student-s"),
        # At α = 0, T only shapes the logged soft loss; it is named when it is not the demo's.
        ({"alpha": 0.0, "temperature": 1.0}, "hard labels demo-student-s T=1"),
        ({"alpha": 1.0, "student": "demo-student-m"}, "T=2 α=1 demo-student-m"),
        (
            {"teacher": "demo-teacher-memorised", "dataset": "demo-small", "seed": 2},
            "T=2 α=0.5 demo-student-s teacher=demo-teacher-memorised dataset=demo-small seed=2",
        ),
        ({"divergence": "jsd"}, "T=2 α=0.5 demo-student-s divergence=jsd β=0.5"),
        ({"divergence": "jsd", "beta": 0.1}, "T=2 α=0.5 demo-student-s divergence=jsd β=0.1"),
        # β means nothing outside jsd: not named.
        (
            {"divergence": "reverse_kl", "beta": 0.1},
            "T=2 α=0.5 demo-student-s divergence=reverse_kl",
        ),
        (
            {"max_steps": 500, "batch_size": 8, "seq_len": 32, "learning_rate": 1e-3},
            "T=2 α=0.5 demo-student-s steps=500 batch=8 seq_len=32 lr=0.001",
        ),
        ({"teacher_cache_k": 16}, "T=2 α=0.5 demo-student-s cache_k=16"),
        # Bookkeeping (evaluation, checkpoints, tags) does not change the student: not named.
        ({"eval_interval": 10, "keep_checkpoints": 0, "tags": ["x"]}, "T=2 α=0.5 demo-student-s"),
    ],
)
def test_names_say_what_the_run_is_and_what_differs_from_the_demo(changes, name):
    assert _name(**changes) == name


def test_runs_that_train_differently_get_different_names():
    changes = [
        {},
        {"teacher": "demo-teacher-memorised"},
        {"student": "demo-student-m"},
        {"dataset": "demo-small"},
        {"temperature": 1.0},
        {"alpha": 0.9},
        {"alpha": 0.0},
        {"alpha": 0.0, "temperature": 4.0},
        {"divergence": "reverse_kl"},
        {"divergence": "jsd"},
        {"divergence": "jsd", "beta": 0.2},
        {"max_steps": 300},
        {"batch_size": 8},
        {"grad_accum_steps": 2},
        {"seq_len": 32},
        {"learning_rate": 1e-4},
        {"weight_decay": 0.1},
        {"warmup_steps": 0},
        {"max_grad_norm": 0.5},
        {"teacher_cache_k": 8},
        {"seed": 1},
    ]
    names = [_name(**c) for c in changes]
    assert len(set(names)) == len(names), names


def test_a_warm_up_equal_to_the_default_is_not_named():
    assert _name(warmup_steps=20) == "T=2 α=0.5 demo-student-s"  # 10 % of 200 steps
    assert _name(warmup_steps=5) == "T=2 α=0.5 demo-student-s warmup=5"


def test_a_long_name_is_cut_to_the_limit():
    long = "org/" + "very-long-model-name-" * 10 + "/" + "very-long-model-name-" * 10
    name = _name(teacher=long, student=long)
    assert len(name) == MAX_NAME == 200 and name.endswith("…")
    assert name.startswith(f"T=2 α=0.5 {long[:50]}")


def test_a_sweep_is_named_by_what_its_runs_share():
    config = RunConfig.model_validate({**DEMO_CONFIG, "seed": 3, "dataset": "demo-small"})
    assert (
        run_name(config, omit={"temperature", "seed"}) == "α=0.5 demo-student-s dataset=demo-small"
    )
    assert run_name(config, omit={"alpha"}) == "T=2 demo-student-s dataset=demo-small seed=3"
    hard = RunConfig.model_validate({**DEMO_CONFIG, "alpha": 0.0})
    assert run_name(hard, omit={"alpha"}) == "T=2 demo-student-s"


def test_real_kit_runs_are_named_against_the_real_kit_preset():
    from backend.services.presets import SMOLLM2_CONFIG

    def real(**changes) -> str:
        return run_name(RunConfig.model_validate({**SMOLLM2_CONFIG, **changes}))

    assert real() == "T=2 α=0.5 smollm2-student-l10"
    assert real(temperature=4.0, dtype="bfloat16") == "T=4 α=0.5 smollm2-student-l10 dtype=bfloat16"
    # Gradient checkpointing and the loss's implementation change memory, not the student.
    assert real(gradient_checkpointing=True, loss_impl="logits") == real()
