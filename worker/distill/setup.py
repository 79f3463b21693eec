"""Compose a recipe from a run's config: tokenizer, student, teacher and data found under the
configured roots. The worker, the benchmarks and the tests all build runs this way."""

from pathlib import Path

import torch

from backend.schemas import RunConfig
from backend.services.catalog import resolve_dataset_source, resolve_model
from backend.services.vocab import VocabularyMismatch
from backend.settings import Settings
from worker.distill.data import load_dataset
from worker.distill.loggers import MetricLogger
from worker.distill.models import (
    load_causal_lm,
    load_causal_lm_from,
    load_tokenizer,
    resolve_dtype,
)
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
    device = device or pick_device()
    dtype = resolve_dtype(config.dtype, device)  # a dtype the device cannot run fails here
    tokenizer = load_tokenizer(config.student, settings)
    # The student in float32: its master weights (trainer.py); it runs forward in `dtype`.
    student = (
        load_causal_lm_from(student_path, torch.float32)
        if student_path is not None
        else load_causal_lm(config.student, settings, torch.float32)
    )
    teacher = load_causal_lm(config.teacher, settings, dtype)
    check_vocabulary(tokenizer, load_tokenizer(config.teacher, settings), student, teacher)
    vocab = len(tokenizer)  # logits are sliced to the shared tokenizer vocabulary
    dataset_path = resolve_dataset_source(config.dataset, settings)
    data = load_dataset(
        dataset_path,
        tokenizer,
        seq_len=config.seq_len,
        vocab_size=vocab,
    )
    cache = None
    if config.teacher_cache_k:
        teacher_dir = resolve_model(config.teacher, settings)
        key = cache_key(
            teacher_dir=teacher_dir,
            dataset_path=dataset_path,
            seq_len=config.seq_len,
            vocab=vocab,
            k=config.teacher_cache_k,
            dtype=dtype,
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


def check_vocabulary(student_tokenizer, teacher_tokenizer, student, teacher) -> None:
    """The worker's own check of what the api checks from files (backend/services/vocab.py):
    one tokenizer for both models, and heads with a row for every id it can produce (a head
    may have more rows: padding, sliced off). Raises VocabularyMismatch saying which."""
    why = "the loss compares both models' next-token distributions entry by entry"
    s_vocab, t_vocab = student_tokenizer.get_vocab(), teacher_tokenizer.get_vocab()
    if s_vocab != t_vocab:
        moved = (
            sorted(k for k in s_vocab.keys() ^ t_vocab.keys())[:1]
            or sorted(k for k in s_vocab if s_vocab[k] != t_vocab[k])[:1]
        )
        raise VocabularyMismatch(
            f"the teacher's and the student's tokenizers differ ({len(t_vocab)} vs "
            f"{len(s_vocab)} tokens; e.g. {moved[0]!r}); {why}, so they must share one tokenizer"
        )
    size = len(student_tokenizer)
    for who, model in (("student", student), ("teacher", teacher)):
        head = model.get_output_embeddings()
        rows = head.weight.shape[0] if head is not None else model.config.vocab_size
        if rows < size:
            raise VocabularyMismatch(
                f"the {who}'s output head has {rows} rows but its tokenizer has {size} tokens: "
                f"ids {rows}..{size - 1} could never be predicted; {why}"
            )
