"""The training loop end to end on tiny models (CPU, ListLogger), and the data pipeline."""

import math

import pytest
import torch

from backend.schemas import RunConfig
from backend.settings import Settings
from worker.distill.data import IGNORE, batch_at, load_dataset
from worker.distill.loggers import ListLogger
from worker.distill.models import load_causal_lm, load_tokenizer
from worker.distill.setup import build_recipe
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
    "eval/top5_true",
    "eval/top1_prob",
    "eval/teacher_top1_prob",
    "eval/teacher_tail_mass",
    "eval/soft_tail_share",
}


def _run(kit, steps=24, checkpoint_dir=None, **overrides):
    defaults = dict(
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
    )
    cfg = RunConfig(**{**defaults, **overrides})
    logger = ListLogger()
    recipe = build_recipe(
        cfg,
        Settings(data_dir=kit),
        logger=logger,
        device=torch.device("cpu"),
        checkpoint_dir=checkpoint_dir,
    )
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
    for key in ("eval/top1_agreement", "eval/top5_true"):
        assert all(0.0 <= v <= 1.0 for _, v in logger.series(key)), key
    # A probability of the top token of 80: between uniform and certain.
    assert all(1 / 80 <= v <= 1.0 for _, v in logger.series("eval/top1_prob"))


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
    data = load_dataset(tiny_kit / "datasets" / "demo", tok, seq_len=32, vocab_size=len(tok))
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


def test_resumed_run_continues_the_uninterrupted_curve(tiny_kit, tmp_path):
    from worker.distill.checkpoint import latest_checkpoint, list_checkpoints
    from worker.distill.models import load_causal_lm_from

    settings = Settings(data_dir=tiny_kit)
    cfg = RunConfig(
        name="t",
        teacher="demo-teacher",
        student="demo-student-s",
        dataset="demo",
        max_steps=20,
        batch_size=4,
        seq_len=32,
        learning_rate=5e-3,
        eval_interval=10,
        eval_batches=2,
        checkpoint_interval=5,
        keep_checkpoints=2,
    )
    tok = load_tokenizer(cfg.student, settings)
    data = load_dataset(tiny_kit / "datasets" / "demo", tok, seq_len=32, vocab_size=len(tok))

    def recipe(student, logger, ckpt):
        r = DistillationRecipe(
            cfg,
            student=student,
            teacher=load_causal_lm(cfg.teacher, settings),
            data=data,
            logger=logger,
            device=torch.device("cpu"),
            vocab_size=len(tok),
            checkpoint_dir=ckpt,
            tokenizer=tok,
        )
        r.setup()
        return r

    whole = ListLogger()
    recipe(load_causal_lm(cfg.student, settings), whole, tmp_path / "a").train()
    kept = list_checkpoints(tmp_path / "a")
    assert [p.name for p in kept] == ["step-00000010", "step-00000015"]  # keep=2, atomic names
    # Older checkpoints keep the student's weights for the inspector, not the optimizer state.
    older = tmp_path / "a" / "step-00000005"
    assert (older / "config.json").is_file() and not (older / "trainer_state.pt").exists()
    assert load_causal_lm_from(older).config.vocab_size == len(tok)

    # Interrupted after step 10: a fresh process resumes from the step-10 checkpoint.
    first = ListLogger()
    r = recipe(load_causal_lm(cfg.student, settings), first, tmp_path / "b")
    r.cfg = cfg.model_copy(update={"max_steps": 20})
    r.should_stop = lambda: r.step >= 10
    try:
        r.train()
    except Exception:  # Cancelled at step 10
        pass
    ckpt = latest_checkpoint(tmp_path / "b")
    assert ckpt.name == "step-00000010"
    resumed = ListLogger()
    r2 = recipe(load_causal_lm_from(ckpt), resumed, tmp_path / "b")
    r2.resume(ckpt)
    assert r2.step == 10
    r2.train()
    for key in ("train/soft_loss", "train/hard_loss", "train/lr", "eval/kl_true"):
        expected = [(s, v) for s, v in whole.series(key) if s > 10]
        got = resumed.series(key)
        assert [s for s, _ in got] == [s for s, _ in expected], key
        for (_, a), (_, b) in zip(got, expected, strict=True):
            assert a == pytest.approx(b, rel=1e-5, abs=1e-7), key


def test_padded_student_head_is_sliced_to_the_shared_vocabulary(tiny_kit, tmp_path):
    settings = Settings(data_dir=tiny_kit)
    tok = load_tokenizer("demo-student-s", settings)
    student = load_causal_lm("demo-student-s", settings)
    student.resize_token_embeddings(len(tok) + 64)  # e.g. 151,936 vs 152,064 rows
    student.save_pretrained(tmp_path / "padded")
    padded = load_causal_lm_from_path(tmp_path / "padded")
    assert padded.config.vocab_size == len(tok) + 64
    cfg = RunConfig(
        name="t",
        teacher="demo-teacher",
        student="padded",
        dataset="demo",
        max_steps=4,
        batch_size=4,
        seq_len=32,
        eval_interval=4,
        eval_batches=1,
    )
    data = load_dataset(tiny_kit / "datasets" / "demo", tok, seq_len=32, vocab_size=len(tok))
    logger = ListLogger()
    r = DistillationRecipe(
        cfg,
        student=padded,
        teacher=load_causal_lm("demo-teacher", settings),
        data=data,
        logger=logger,
        device=torch.device("cpu"),
        vocab_size=len(tok),
    )
    r.setup()
    r.train()
    assert all(math.isfinite(v) for _, _, v in logger.rows)
    assert {k for _, k, _ in logger.rows} >= {"train/soft_loss", "eval/kl_true"}


def load_causal_lm_from_path(path):
    from worker.distill.models import load_causal_lm_from

    return load_causal_lm_from(path)


def test_jsonl_prompt_completion_trains_on_the_completion_only(tiny_kit, tmp_path):
    import json

    settings = Settings(data_dir=tiny_kit)
    tok = load_tokenizer("demo-student-s", settings)
    path = tmp_path / "qa.jsonl"
    rows = [
        {"prompt": "that sleepy", "completion": "cat naps on a mat ."},
        {"text": "a big dog runs to the park ."},
    ] * 40
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    data = load_dataset(path, tok, seq_len=32, vocab_size=len(tok))
    assert len(data.eval) >= 1  # 5 % held out
    ids, labels = data.train.input_ids, data.train.labels
    prompt_ids = set(tok("that sleepy", add_special_tokens=False)["input_ids"])
    assert prompt_ids <= set(ids.flatten().tolist())  # the prompt is there, as context
    # Prompt tokens are inputs but never labels; completion and text tokens are labels.
    for row in range(len(ids)):
        real = [int(x) for x in labels[row] if x != IGNORE]
        assert not prompt_ids & set(real)
    assert (labels != IGNORE).sum() > 0
    txt = tmp_path / "plain.txt"
    txt.write_text("the lazy cat naps on the sofa .\n" * 30)
    plain = load_dataset(txt, tok, seq_len=32, vocab_size=len(tok))
    first = tok("the", add_special_tokens=False)["input_ids"][0]
    assert (plain.train.labels == first).any()  # text lines: every token is a target


def test_teacher_cache_is_built_once_and_matches_dense_when_k_covers_the_vocab(tiny_kit, tmp_path):
    settings = Settings(
        data_dir=tmp_path, model_roots=[tiny_kit / "models"], dataset_roots=[tiny_kit / "datasets"]
    )
    tok = load_tokenizer("demo-student-s", settings)
    base = dict(
        name="t",
        teacher="demo-teacher",
        student="demo-student-s",
        dataset="demo",
        max_steps=6,
        batch_size=4,
        seq_len=32,
        eval_interval=6,
        eval_batches=1,
        temperature=2.0,
        alpha=0.7,
    )

    def run(**kw):
        logger = ListLogger()
        cfg = RunConfig(**{**base, **kw})
        build_recipe(cfg, settings, logger=logger, device=torch.device("cpu")).train()
        return logger

    dense = run()
    full = run(teacher_cache_k=len(tok) - 1)  # a one-token tail: the cache is exact
    for (s1, a), (s2, b) in zip(
        dense.series("train/soft_loss"), full.series("train/soft_loss"), strict=True
    ):
        assert s1 == s2 and a == pytest.approx(b, rel=1e-4)
    files = sorted(settings.teacher_cache_dir.glob("*.safetensors"))
    assert len(files) == 1
    stamp = files[0].stat().st_mtime_ns
    # A sweep over T and seed with the same k reuses one cache file; a new k builds another.
    run(teacher_cache_k=len(tok) - 1, temperature=4.0, seed=1)
    assert files[0].stat().st_mtime_ns == stamp
    small = run(teacher_cache_k=8)
    assert len(list(settings.teacher_cache_dir.glob("*.safetensors"))) == 2
    assert all(math.isfinite(v) for _, _, v in small.rows)


def test_gradient_accumulation_leaves_the_curve_unchanged(tiny_kit):
    # N is the real tokens of the whole optimizer step, so 1 x 8 and 4 x 2 micro-batches are
    # the same optimizer step (up to float rounding).
    one, _ = _run(tiny_kit, steps=8, grad_accum_steps=1)
    four, _ = _run(tiny_kit, steps=8, grad_accum_steps=4)
    for key in ("train/soft_loss", "train/hard_loss", "train/grad_norm", "eval/kl_true"):
        for (s1, a), (s2, b) in zip(one.series(key), four.series(key), strict=True):
            assert s1 == s2 and a == pytest.approx(b, rel=1e-4, abs=1e-6), key


def test_thinning_keeps_weight_checkpoints_spread_over_the_run():
    from pathlib import Path

    from worker.distill.checkpoint import thin

    paths = [Path(f"step-{s:08d}") for s in range(10, 210, 10)]

    def kept(k):
        gone = set(thin(paths, k))
        return [int(p.name.removeprefix("step-")) for p in paths if p not in gone]

    assert kept(30) == list(range(10, 210, 10))  # under the limit: nothing goes
    assert kept(5) == [10, 50, 90, 130, 200]  # first and last stay, the rest spread
    assert kept(2) == [10, 200] and kept(1) == [200] and kept(0) == []


# ---------------------------------------------------------------- the engine at LLM shape


def _tiny_llama(vocab: int, layers: int, width: int, seed: int):
    """A tiny Llama with tied embeddings (SmolLM2's layout), built from a config."""
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    cfg = LlamaConfig(
        vocab_size=vocab,
        hidden_size=width,
        intermediate_size=2 * width,
        num_hidden_layers=layers,
        num_attention_heads=2,
        num_key_value_heads=1,
        max_position_embeddings=64,
        tie_word_embeddings=True,
    )
    return LlamaForCausalLM(cfg)


def _llama_run(tiny_kit, steps=4, teacher_config=None, **overrides):
    settings = Settings(data_dir=tiny_kit)
    tok = load_tokenizer("demo-student-s", settings)
    data = load_dataset(tiny_kit / "datasets" / "demo", tok, seq_len=32, vocab_size=len(tok))
    teacher = _tiny_llama(len(tok), 2, 32, seed=1)
    for k, v in (teacher_config or {}).items():
        setattr(teacher.config, k, v)
    cfg = RunConfig(
        name="t",
        teacher="demo-teacher",
        student="demo-student-s",
        dataset="demo",
        max_steps=steps,
        batch_size=4,
        seq_len=32,
        eval_interval=steps,
        eval_batches=1,
        temperature=2.0,
        alpha=0.5,
        **{"learning_rate": 5e-3, **overrides},
    )
    logger = ListLogger()
    recipe = DistillationRecipe(
        cfg,
        student=_tiny_llama(len(tok), 1, 16, seed=2),
        teacher=teacher,
        data=data,
        logger=logger,
        device=torch.device("cpu"),
        vocab_size=len(tok),
        tokenizer=tok,
    )
    recipe.setup()
    recipe.train()
    return logger, recipe


@pytest.mark.parametrize("divergence", ["forward_kl", "jsd"])
def test_hidden_state_loss_matches_the_logits_loss_step_by_step(tiny_kit, divergence):
    hidden, r1 = _llama_run(tiny_kit, loss_impl="hidden", divergence=divergence)
    logits, r2 = _llama_run(tiny_kit, loss_impl="logits", divergence=divergence)
    assert (r1.loss_impl, r2.loss_impl) == ("hidden", "logits")
    keys = ("train/soft_loss", "train/hard_loss", "train/grad_norm", "eval/kl_teacher")
    for key in keys:
        a, b = hidden.series(key), logits.series(key)
        assert [s for s, _ in a] == [s for s, _ in b] and len(a) > 0, key
        for (_, x), (_, y) in zip(a, b, strict=True):
            assert x == pytest.approx(y, rel=1e-5, abs=1e-6), key


def test_auto_picks_logits_for_a_small_vocabulary_and_post_processed_logits_fall_back(tiny_kit):
    _, auto = _llama_run(tiny_kit, steps=1)
    assert auto.loss_impl == "logits" and "auto" in auto.loss_impl_reason
    _, capped = _llama_run(
        tiny_kit, steps=1, loss_impl="hidden", teacher_config={"final_logit_softcapping": 30.0}
    )
    assert capped.loss_impl == "logits"
    assert "teacher" in capped.loss_impl_reason and "softcapping" in capped.loss_impl_reason


def test_eval_reports_how_the_teacher_targets_look(tiny_kit):
    logger, _ = _llama_run(tiny_kit, steps=2)
    (_, top1), (_, tail), (_, share) = (
        logger.series(k)[-1]
        for k in ("eval/teacher_top1_prob", "eval/teacher_tail_mass", "eval/soft_tail_share")
    )
    # An untrained teacher over 80 tokens: flat-ish, most of its mass outside its top 8.
    assert 1 / 80 <= top1 < 0.5 and 0.5 < tail < 1.0 and 0.0 < share < 1.0


def test_bfloat16_on_cpu_and_gradient_checkpointing_run(tiny_kit):
    low, r = _llama_run(tiny_kit, steps=2, dtype="bfloat16", loss_impl="hidden")
    # Mixed precision: float32 master weights for the student, bfloat16 for the teacher.
    assert {p.dtype for p in r.student.parameters()} == {torch.float32}
    assert {p.dtype for p in r.teacher.parameters()} == {torch.bfloat16}
    assert all(math.isfinite(v) for _, _, v in low.rows)
    plain, _ = _llama_run(tiny_kit, steps=3, loss_impl="hidden")
    ckpt, r = _llama_run(tiny_kit, steps=3, loss_impl="hidden", gradient_checkpointing=True)
    assert any(getattr(m, "gradient_checkpointing", False) for m in r.student.modules())
    for (_, a), (_, b) in zip(plain.series("train/loss"), ckpt.series("train/loss"), strict=True):
        assert a == pytest.approx(b, rel=1e-5)  # the same step, its activations recomputed


@pytest.mark.parametrize("loss_impl", ["hidden", "logits"])
def test_bfloat16_runs_keep_updates_smaller_than_a_bfloat16_step(tiny_kit, loss_impl):
    """The norms' weights start at 1.0, where a bfloat16 step is 2^-7: AdamW's first updates
    at lr 5e-4 (less in warm-up) are far below it. Stored in bfloat16 they were rounded away
    and the norms never moved; with float32 master weights every norm moves."""
    _, r = _llama_run(tiny_kit, steps=2, dtype="bfloat16", loss_impl=loss_impl, learning_rate=5e-4)
    norms = {n: p for n, p in r.student.named_parameters() if n.endswith("norm.weight")}
    assert norms, [n for n, _ in r.student.named_parameters()]
    for name, p in norms.items():
        moved = (p.detach() - 1.0).abs().max().item()
        assert 0 < moved < 2**-8, (name, moved)  # moved, by less than half a bfloat16 step


def test_head_and_tokenizer_that_disagree_fail_the_run_clearly(tiny_kit, tmp_path):
    from backend.services.vocab import VocabularyMismatch

    settings = Settings(
        data_dir=tmp_path, model_roots=[tiny_kit / "models"], dataset_roots=[tiny_kit / "datasets"]
    )
    tok = load_tokenizer("demo-student-s", settings)
    short = load_causal_lm("demo-student-s", settings)
    short.resize_token_embeddings(len(tok) - 5)  # ids 75..79 could never be predicted
    short.save_pretrained(tmp_path / "models" / "short")
    tok.save_pretrained(tmp_path / "models" / "short")
    grown = load_causal_lm("demo-student-s", settings)
    grown.resize_token_embeddings(len(tok) + 1)
    grown.save_pretrained(tmp_path / "models" / "grown")
    tok.add_tokens(["zebra-token"])  # a tokenizer the teacher's does not have
    tok.save_pretrained(tmp_path / "models" / "grown")

    def build(student):
        cfg = RunConfig(
            name="t", teacher="demo-teacher", student=student, dataset="demo", max_steps=1
        )
        build_recipe(cfg, settings, logger=ListLogger(), device=torch.device("cpu"))

    with pytest.raises(VocabularyMismatch, match="output head has 75 rows but its tokenizer"):
        build("short")
    with pytest.raises(VocabularyMismatch, match="tokenizers differ.*zebra-token"):
        build("grown")


def test_bfloat16_on_a_gpu_without_it_is_refused(monkeypatch):
    from worker.distill.models import resolve_dtype

    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda *a, **k: "Tesla T4-like")
    cuda = torch.device("cuda")
    assert resolve_dtype("auto", cuda) == torch.float32
    with pytest.raises(ValueError, match=r"this GPU \(Tesla T4-like\) cannot run bfloat16"):
        resolve_dtype("bfloat16", cuda)
    assert resolve_dtype("bfloat16", torch.device("cpu")) == torch.bfloat16


def test_a_loss_that_turns_non_finite_fails_the_run_saying_where(tiny_kit, monkeypatch):
    from worker.distill.trainer import DistillationRecipe, NonFiniteLoss

    real = DistillationRecipe.train_step

    def poisoned(self, index):
        metrics = real(self, index)
        if index >= 2:  # from step 3 on
            metrics["train/loss"] = torch.tensor(float("nan"))
        return metrics

    monkeypatch.setattr(DistillationRecipe, "train_step", poisoned)
    with pytest.raises(NonFiniteLoss, match="became nan at step 3"):
        _run(tiny_kit, steps=6)


@pytest.mark.parametrize("t", [1e-300, 0.01, 0.0])
def test_a_temperature_below_its_floor_is_refused(t):
    with pytest.raises(ValueError, match="temperature"):
        RunConfig(teacher="a", student="b", dataset="c", temperature=t)
    assert RunConfig(teacher="a", student="b", dataset="c", temperature=0.05).temperature == 0.05


def test_the_teacher_cache_key_names_the_dtype_the_teacher_ran_in(tiny_kit):
    """Top-k logits from a bfloat16 teacher are not a float32 run's: separate caches."""
    from worker.distill.teacher_cache import cache_key

    common = dict(
        teacher_dir=tiny_kit / "models" / "demo-teacher",
        dataset_path=tiny_kit / "datasets" / "demo",
        seq_len=32,
        vocab=100,
        k=8,
    )
    assert cache_key(**common) == cache_key(**common, dtype=torch.float32)
    assert cache_key(**common, dtype=torch.bfloat16) != cache_key(**common)


def test_a_bfloat16_runs_older_checkpoints_keep_its_weights_in_bfloat16(tiny_kit, tmp_path):
    """The resumable checkpoint holds the float32 master weights; once it is no longer
    resumable it is rewritten in the run's dtype: half the disk, and still loadable."""
    from safetensors.torch import load_file

    from worker.distill.checkpoint import STATE_FILE
    from worker.distill.models import load_causal_lm_from

    _run(
        tiny_kit,
        steps=6,
        checkpoint_dir=tmp_path,
        eval_interval=6,
        eval_batches=1,
        checkpoint_interval=2,
        keep_checkpoints=1,
        dtype="bfloat16",
    )
    old, latest = tmp_path / "step-00000002", tmp_path / "step-00000004"
    assert not (old / STATE_FILE).exists() and (latest / STATE_FILE).is_file()

    def dtypes(folder):
        return {t.dtype for f in folder.glob("*.safetensors") for t in load_file(f).values()}

    assert dtypes(old) == {torch.bfloat16} and dtypes(latest) == {torch.float32}
    model = load_causal_lm_from(old)
    assert next(model.parameters()).dtype == torch.bfloat16  # config.json says so too
    ids = torch.tensor([[1, 2, 3, 4]])
    assert torch.isfinite(model(input_ids=ids).logits.float()).all()
