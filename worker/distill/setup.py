"""Compose a recipe from a run's config: tokenizer, student, teacher and data found under the
configured roots. The worker, the benchmarks and the tests all build runs this way."""

from pathlib import Path

import torch

from backend.schemas import RunConfig
from backend.services.catalog import resolve_dataset_source, resolve_model
from backend.settings import Settings
from worker.distill.data import load_dataset
from worker.distill.loggers import MetricLogger
from worker.distill.models import load_causal_lm, load_causal_lm_from, load_tokenizer
from worker.distill.teacher_cache import cache_key, load_or_build
from worker.distill.trainer import DistillationRecipe, pick_device


def build_recipe(
    config: RunConfig,
    settings: Settings,
    *,
    logger: MetricLogger,
    device: torch.device | None = None,
    student_path: Path | None = None,
    checkpoint_dir: Path | None = None,
) -> DistillationRecipe:
    """A set-up recipe. `student_path` loads the student from a checkpoint folder instead of
    the configured model (the tokenizer always comes from the configured student)."""
    tokenizer = load_tokenizer(config.student, settings)
    student = (
        load_causal_lm_from(student_path)
        if student_path is not None
        else load_causal_lm(config.student, settings)
    )
    teacher = load_causal_lm(config.teacher, settings)
    vocab = len(tokenizer)  # logits are sliced to the shared tokenizer vocabulary
    dataset_path = resolve_dataset_source(config.dataset, settings)
    data = load_dataset(
        dataset_path,
        tokenizer,
        seq_len=config.seq_len,
        vocab_size=vocab,
    )
    device = device or pick_device()
    cache = None
    if config.teacher_cache_k:
        teacher_dir = resolve_model(config.teacher, settings)
        key = cache_key(
            teacher_dir=teacher_dir,
            dataset_path=dataset_path,
            seq_len=config.seq_len,
            vocab=vocab,
            k=config.teacher_cache_k,
        )
        cache, _built = load_or_build(
            teacher,
            data.train,
            cache_dir=settings.teacher_cache_dir,
            key=key,
            k=config.teacher_cache_k,
            vocab=vocab,
            device=device,
        )
    recipe = DistillationRecipe(
        config,
        student=student,
        teacher=teacher,
        data=data,
        logger=logger,
        device=device,
        vocab_size=vocab,
        checkpoint_dir=checkpoint_dir,
        tokenizer=tokenizer,
        teacher_cache=cache,
    )
    recipe.setup()
    return recipe
