"""The offline demo kit: the demo language's datasets, a word-level tokenizer trained on it,
three teachers (calibrated, memorised, and fine-tuned until peaked) and two untrained smaller
students, all written with `save_pretrained` under the data dir so they load like any Hugging
Face model.

`distillscope demo prepare` runs `prepare`; `distillscope up` runs it when parts are missing.
Each part is written to a hidden folder and renamed into place when complete, so an interrupted
preparation leaves only whole parts, and the next one builds just what is missing.
"""

import hashlib
import json
import os
import shutil
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import torch
from tokenizers import Tokenizer, models, pre_tokenizers, processors, trainers
from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

from backend.settings import Settings
from worker.distill import demo_language
from worker.distill import demo_teachers as teachers
from worker.distill.data import load_dataset
from worker.distill.models import hf_logging  # noqa: F401 - quiets transformers' warnings

# A part built by an older kit is rebuilt only when its own format changed: parts from kit 2
# stay valid, the fine-tuned teacher arrived with kit 3.
KIT_VERSION = 3
SPECIALS = ["<pad>", "<unk>", "<bos>", "<eos>"]
DATASETS = {  # name: (train sentences, train seed, description)
    "demo": (
        2000,
        1,
        "The demo language: 2,000 training sentences, 500 held out; the true "
        "next-word distribution is known at every position.",
    ),
    "demo-large": (
        20000,
        3,
        "The demo language, 20,000 training sentences: the teacher's "
        "corpus, large enough that it learns the language instead of memorising.",
    ),
    "demo-small": (
        300,
        2,
        "The demo language with a small budget: 300 training sentences (the same 500 held out).",
    ),
}
EVAL_SENTENCES, EVAL_SEED = 500, 99
TEACHER = {"name": "demo-teacher", "n_layer": 4, "n_embd": 128, "n_head": 4}
MEMORISED = {"name": "demo-teacher-memorised", "n_layer": 4, "n_embd": 128, "n_head": 4}
FINETUNED = "demo-teacher-finetuned"
# The over-confident teacher: the same model trained on 300 sentences until it memorised them
# (peaked, but on the wrong things): softening cannot restore what it never learned.
MEMORISED_TRAINING = {
    "max_steps": 400,
    "batch_size": 16,
    "seq_len": 64,
    "learning_rate": 3e-3,
    "warmup_steps": 30,
    "eval_interval": 400,
    "eval_batches": 8,
    "weight_decay": 0.0,
}
STUDENTS = [
    {"name": "demo-student-s", "n_layer": 1, "n_embd": 64, "n_head": 2},
    {"name": "demo-student-m", "n_layer": 2, "n_embd": 96, "n_head": 4},
]
TEACHER_TRAINING = {
    "max_steps": 600,
    "batch_size": 32,
    "seq_len": 64,
    "learning_rate": 2e-3,
    "warmup_steps": 50,
    "eval_interval": 500,
    "eval_batches": 8,
    "weight_decay": 0.01,
}
# The peaked teacher: the calibrated one fine-tuned on its own argmax labels (one-hot) over the
# 2,000-sentence set, as SFT leaves an LLM: top-1 ≥ 0.9 at most positions with a choice.
FINETUNE_TRAINING = {
    "max_steps": 150,
    "batch_size": 32,
    "seq_len": 64,
    "learning_rate": 3e-4,
    "warmup_steps": 20,
    "eval_interval": 150,
    "eval_batches": 8,
    "weight_decay": 0.0,
}
N_POSITIONS = 128


@dataclass(frozen=True)
class Kit:
    """What `prepare` builds. FULL is the demo kit; the tests build a tiny one with the same
    code (teachers left untrained when their training is None)."""

    teacher: dict = field(default_factory=lambda: TEACHER)
    memorised: dict = field(default_factory=lambda: MEMORISED)
    students: tuple = tuple(STUDENTS)
    teacher_training: dict | None = field(default_factory=lambda: TEACHER_TRAINING)
    memorised_training: dict | None = field(default_factory=lambda: MEMORISED_TRAINING)
    finetune_training: dict = field(default_factory=lambda: FINETUNE_TRAINING)
    datasets: tuple = tuple(DATASETS)
    teacher_dataset: str = "demo-large"


FULL = Kit()


def _model_done(folder: Path, since: int) -> bool:
    meta = folder / "distillscope.json"
    try:
        return json.loads(meta.read_text()).get("kit_version", 0) >= since
    except (OSError, ValueError):
        return False


def _meta(folder: Path) -> dict:
    try:
        return json.loads((folder / "distillscope.json").read_text())
    except (OSError, ValueError):
        return {}


def _weights_sha256(folder: Path) -> str | None:
    try:
        return hashlib.sha256((folder / "model.safetensors").read_bytes()).hexdigest()
    except OSError:
        return None


def _parts(settings: Settings, kit: Kit) -> list[tuple[str, Callable[[], bool]]]:
    """(name, done?) for every part, in build order."""
    models_dir, data_dir = settings.models_dir, settings.datasets_dir
    parts = [(d, lambda d=d: (data_dir / d / "dataset.json").is_file()) for d in kit.datasets]
    for spec in kit.students:
        parts.append((spec["name"], lambda n=spec["name"]: _model_done(models_dir / n, 2)))
    for spec, training in (
        (kit.teacher, kit.teacher_training),
        (kit.memorised, kit.memorised_training),
    ):
        name = spec["name"]
        parts.append((name, lambda n=name: _model_done(models_dir / n, 2)))
        if training is not None:  # a trained teacher says what it knows (kit 2 did not yet)
            parts.append((f"{name} profile", lambda n=name: "profile" in _meta(models_dir / n)))
    base = models_dir / kit.teacher["name"]
    # The fine-tuned teacher is made from the calibrated one: stale once that one changes.
    parts.append(
        (
            FINETUNED,
            lambda: (
                _model_done(models_dir / FINETUNED, 3)
                and _meta(models_dir / FINETUNED).get("base_sha256") == _weights_sha256(base)
            ),
        )
    )
    return parts


def missing_parts(settings: Settings, kit: Kit = FULL) -> list[str]:
    return [name for name, done in _parts(settings, kit) if not done()]


def is_prepared(settings: Settings, kit: Kit = FULL) -> bool:
    return not missing_parts(settings, kit)


@contextmanager
def _atomic_folder(final: Path):
    """Yield a hidden sibling folder to write into; it becomes `final` only when the block
    completes, so a reader (or a resumed preparation) never sees half a part."""
    tmp = final.with_name(f".{final.name}.partial")
    shutil.rmtree(tmp, ignore_errors=True)  # left by an interrupted attempt
    tmp.mkdir(parents=True)
    yield tmp
    if final.exists():  # --force: replace the old part
        shutil.rmtree(final)
    tmp.rename(final)


def build_tokenizer() -> PreTrainedTokenizerFast:
    """A word-level tokenizer trained on the language (one token per word)."""
    tok = Tokenizer(models.WordLevel(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    trainer = trainers.WordLevelTrainer(special_tokens=SPECIALS, min_frequency=1)
    corpus = demo_language.sample_corpus(2000, seed=0) + [" ".join(demo_language.vocabulary())]
    tok.train_from_iterator(corpus, trainer)
    bos = tok.token_to_id("<bos>")
    # Encoding a prompt prepends <bos>, as training sequences start with it.
    tok.post_processor = processors.TemplateProcessing(
        single="<bos> $A", special_tokens=[("<bos>", bos)]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<bos>",
        eos_token="<eos>",
        pad_token="<pad>",
        unk_token="<unk>",
    )


def write_datasets(settings: Settings, names: list[str] | None = None) -> None:
    eval_text = "\n".join(demo_language.sample_corpus(EVAL_SENTENCES, EVAL_SEED)) + "\n"
    for name in names or list(DATASETS):
        n, seed, description = DATASETS[name]
        manifest = {
            "kind": "demo-language",
            "description": description,
            "train": "train.txt",
            "eval": "eval.txt",
            "train_sentences": n,
            "eval_sentences": EVAL_SENTENCES,
        }
        with _atomic_folder(settings.datasets_dir / name) as folder:
            train = "\n".join(demo_language.sample_corpus(n, seed)) + "\n"
            (folder / "train.txt").write_text(train)
            (folder / "eval.txt").write_text(eval_text)
            (folder / "dataset.json").write_text(json.dumps(manifest, indent=1))


def build_model(spec: dict, tokenizer: PreTrainedTokenizerFast, seed: int) -> GPT2LMHeadModel:
    torch.manual_seed(seed)
    config = GPT2Config(
        vocab_size=len(tokenizer),
        n_positions=N_POSITIONS,
        n_embd=spec["n_embd"],
        n_layer=spec["n_layer"],
        n_head=spec["n_head"],
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    return GPT2LMHeadModel(config)


def _save(model, tokenizer, folder: Path, meta: dict) -> None:
    """One model part, written whole or not at all."""
    with _atomic_folder(folder) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        n_params = sum(p.numel() for p in model.parameters())
        (tmp / "distillscope.json").write_text(
            json.dumps({"kit_version": KIT_VERSION, "parameters": n_params, **meta}, indent=1)
        )


def _train_from_scratch(settings, tokenizer, spec, dataset, training, progress) -> tuple:
    """A teacher trained on `dataset`'s labels (left untrained when training is None)."""
    model = build_model(spec, tokenizer, seed=0)
    if training is None:
        return model, {"role": "teacher", "trained_on": None}
    data = load_dataset(
        settings.datasets_dir / dataset,
        tokenizer,
        seq_len=training["seq_len"],
        vocab_size=len(tokenizer),
    )
    metrics, seconds = teachers.timed(
        teachers.train_plain,
        model,
        data,
        name=spec["name"],
        dataset=dataset,
        training={**training, "seed": 0},
        progress=progress,
    )
    meta = {
        "role": "teacher",
        "trained_on": dataset,
        "made": f"trained from scratch for {training['max_steps']} steps on {dataset}'s labels",
        "train_seconds": seconds,
        "eval": metrics,
        "profile": teachers.profile(model, data.eval),
    }
    return model, meta


def _finetune(settings, tokenizer, kit: Kit, progress: bool) -> tuple:
    """The peaked teacher, from the calibrated one (read back from its folder)."""
    base = teachers.load(settings.models_dir / kit.teacher["name"])
    data = teachers.eval_split(settings, tokenizer, "demo")
    model, seconds = teachers.timed(
        teachers.finetune,
        base,
        data,
        name=FINETUNED,
        dataset="demo",
        training={**kit.finetune_training, "seed": 0},
        progress=progress,
    )
    meta = {
        "role": "teacher",
        "trained_on": "demo",
        "base_sha256": _weights_sha256(settings.models_dir / kit.teacher["name"]),
        "made": f"{kit.teacher['name']} fine-tuned for {kit.finetune_training['max_steps']} "
        "steps on its own argmax labels (one-hot, as supervised fine-tuning data is) over the "
        "demo set's 2,000 sentences, until peaked",
        "train_seconds": seconds,
        # What it keeps of the truth, before (the calibrated teacher) and after, held out.
        "profile_before": teachers.profile(base, data.eval),
        "profile": teachers.profile(model, data.eval),
    }
    return model, meta


def prepare(
    settings: Settings, *, progress: bool = True, force: bool = False, kit: Kit = FULL
) -> list[str]:
    """Build the kit's missing parts under settings.data_dir (every part with force); returns
    the names built, [] when the kit was complete."""
    say = print if progress else (lambda *a, **k: None)
    todo = [n for n, done in _parts(settings, kit) if force or not done()]
    if not todo:
        return []
    total = len(_parts(settings, kit))
    say(f"demo kit: building {len(todo)} of {total} parts in {settings.data_dir}", flush=True)
    settings.models_dir.mkdir(parents=True, exist_ok=True)
    t_kit = time.perf_counter()
    datasets = [d for d in kit.datasets if d in todo]
    if datasets:
        t0 = time.perf_counter()
        write_datasets(settings, datasets)
        say(f"  datasets {', '.join(datasets)}: {time.perf_counter() - t0:.1f} s", flush=True)
    tokenizer = build_tokenizer()
    for i, spec in enumerate(kit.students):
        if spec["name"] in todo:
            model = build_model(spec, tokenizer, seed=100 + i)
            made = f"untrained student, {spec['n_layer']} layer(s) of width {spec['n_embd']}"
            meta = {"role": "student", "made": made}
            _save(model, tokenizer, settings.models_dir / spec["name"], meta)
            say(f"  {spec['name']}: untrained student, {_params(model)} parameters", flush=True)
    for spec, dataset, training in (
        (kit.teacher, kit.teacher_dataset, kit.teacher_training),
        (kit.memorised, "demo-small", kit.memorised_training),
    ):
        if spec["name"] not in todo:
            continue
        model, meta = _train_from_scratch(settings, tokenizer, spec, dataset, training, progress)
        _save(model, tokenizer, settings.models_dir / spec["name"], meta)
        if "eval" not in meta:
            say(f"  {spec['name']}: left untrained", flush=True)
        else:
            say(
                f"  {spec['name']}: held-out KL to the true distribution "
                f"{meta['eval'].get('eval/kl_true', float('nan')):.3f} nats/token, "
                f"{meta['train_seconds']:.0f} s",
                flush=True,
            )
    for spec in (kit.teacher, kit.memorised):
        if f"{spec['name']} profile" in todo and spec["name"] not in todo:
            _add_profile(settings, tokenizer, settings.models_dir / spec["name"])
            say(f"  {spec['name']}: profile recorded", flush=True)
    if FINETUNED in todo:
        model, meta = _finetune(settings, tokenizer, kit, progress)
        _save(model, tokenizer, settings.models_dir / FINETUNED, meta)
        say(f"  {FINETUNED}: {teachers.describe(meta['profile'])}", flush=True)
        say(f"    (before fine-tuning: {teachers.describe(meta['profile_before'])})", flush=True)
    say(f"demo kit ready in {time.perf_counter() - t_kit:.0f} s", flush=True)
    return todo


def _add_profile(settings: Settings, tokenizer, folder: Path) -> None:
    """Record what a teacher from an older kit knows of the truth, rewriting its
    distillscope.json whole (a temporary file renamed over it)."""
    meta = _meta(folder)
    meta["profile"] = teachers.profile(
        teachers.load(folder), teachers.eval_split(settings, tokenizer).eval
    )
    tmp = folder / ".distillscope.json.partial"
    tmp.write_text(json.dumps(meta, indent=1))
    os.replace(tmp, folder / "distillscope.json")


def _params(model) -> str:
    return f"{sum(p.numel() for p in model.parameters()):,}"
