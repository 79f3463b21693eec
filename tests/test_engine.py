"""The training loop end to end on tiny models (CPU, ListLogger), and the data pipeline."""

import math

import pytest
import torch

from backend.schemas import RunConfig
from backend.settings import Settings
from worker.distill.data import IGNORE, batch_at, load_dataset
from worker.distill.loggers import ListLogger
from worker.distill.models import load_causal_lm, load_tokenizer
from worker.distill.trainer import DistillationRecipe, warmup_cosine

TRAIN_KEYS = {
    "train/soft_loss",
    "train/hard_loss",
    "train/loss",
    "train/lr",
    "train/grad_norm",
    "train/tokens_per_s",
}
EVAL_KEYS = {
    "eval/hard_loss",
    "eval/perplexity",
    "eval/soft_loss",
    "eval/kl_teacher",
    "eval/top1_agreement",
    "eval/kl_true",
}


def _run(kit, steps=24, **overrides):
    settings = Settings(data_dir=kit)
    cfg = RunConfig(
        name="t",
        teacher="demo-teacher",
        student="demo-student-s",
        dataset="demo",
        max_steps=steps,
        batch_size=4,
        seq_len=32,
        learning_rate=5e-3,
        eval_interval=8,
        eval_batches=2,
        **overrides,
    )
    tok = load_tokenizer(cfg.student, settings)
    data = load_dataset(
        kit / "datasets" / "demo", tok, seq_len=cfg.seq_len, seed=cfg.seed, vocab_size=len(tok)
    )
    logger = ListLogger()
    recipe = DistillationRecipe(
        cfg,
        student=load_causal_lm(cfg.student, settings),
        teacher=load_causal_lm(cfg.teacher, settings),
        data=data,
        logger=logger,
        device=torch.device("cpu"),
        vocab_size=len(tok),
    )
    recipe.setup()
    recipe.train()
    return logger, recipe


def test_every_step_logs_train_keys_and_eval_interval_logs_eval(tiny_kit):
    logger, _ = _run(tiny_kit)
    by_step: dict[int, set] = {}
    for step, key, value in logger.rows:
        by_step.setdefault(step, set()).add(key)
        assert math.isfinite(value), (step, key)
    assert sorted(by_step) == list(range(1, 25))
    for step, keys in by_step.items():
        expected = TRAIN_KEYS | (EVAL_KEYS if step % 8 == 0 else set())
        assert keys == expected, step
    agree = logger.series("eval/top1_agreement")
    assert all(0.0 <= v <= 1.0 for _, v in agree)


def test_student_learns_from_the_teacher(tiny_kit):
    logger, _ = _run(tiny_kit, steps=60, alpha=1.0, temperature=1.0)
    kl = [v for _, v in logger.series("eval/kl_teacher")]
    assert kl[-1] < 0.7 * kl[0]  # distillation pulls the student towards the teacher


def test_same_seed_same_curve_on_cpu(tiny_kit):
    a, _ = _run(tiny_kit, steps=10, seed=3)
    b, _ = _run(tiny_kit, steps=10, seed=3)
    key = "train/soft_loss"
    assert a.series(key) == b.series(key)


def test_lr_schedule_warms_up_then_decays():
    lrs = [warmup_cosine(s, warmup=10, total=100) for s in range(100)]
    assert lrs[0] == pytest.approx(0.1) and lrs[9] == pytest.approx(1.0)
    assert all(x >= y for x, y in zip(lrs[10:], lrs[11:], strict=False))
    assert lrs[-1] == pytest.approx(0.1, abs=0.01)


def test_packed_sequences_are_aligned_and_start_at_sentence_starts(tiny_kit):
    settings = Settings(data_dir=tiny_kit)
    tok = load_tokenizer("demo-teacher", settings)
    data = load_dataset(
        tiny_kit / "datasets" / "demo", tok, seq_len=32, seed=0, vocab_size=len(tok)
    )
    ids, labels = data.train.input_ids, data.train.labels
    assert (ids[:, 0] == tok.bos_token_id).all()
    real = labels != IGNORE
    # Labels are the inputs shifted by one wherever both are real.
    assert torch.equal(labels[:, :-1][real[:, :-1]], ids[:, 1:][real[:, :-1]])
    # The truth puts all its mass on distributions that sum to one at every real position.
    truth = data.eval.truth
    sums = truth.sum(-1)[data.eval.labels != IGNORE]
    assert torch.allclose(sums, torch.ones_like(sums), atol=1e-5)
    # The label always has non-zero true probability: the truth is the generator's.
    lab = data.eval.labels.clamp_min(0)
    p = truth.gather(-1, lab.unsqueeze(-1)).squeeze(-1)[data.eval.labels != IGNORE]
    assert (p > 0).all()
    # Batches are reproducible from their index alone.
    assert torch.equal(batch_at(data.train, 5, 4, seed=1)[0], batch_at(data.train, 5, 4, seed=1)[0])
