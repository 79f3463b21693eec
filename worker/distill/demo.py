"""The offline demo kit: the demo language's datasets, a word-level tokenizer trained on it, a
calibrated teacher trained on it, and two untrained smaller students, all written with
`save_pretrained` under the data dir so they load like any Hugging Face model.

`distillscope demo prepare` runs `prepare`; `distillscope up` runs it when the kit is missing.
"""

import json
import time
from pathlib import Path

import torch
from tokenizers import Tokenizer, models, pre_tokenizers, processors, trainers
from tqdm import tqdm
from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

from backend.schemas import RunConfig
from backend.settings import Settings
from worker.distill import demo_language
from worker.distill.data import load_dataset
from worker.distill.loggers import ListLogger
from worker.distill.models import hf_logging  # noqa: F401 - quiets transformers' warnings
from worker.distill.trainer import DistillationRecipe

KIT_VERSION = 2
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
N_POSITIONS = 128


def is_prepared(settings: Settings) -> bool:
    names = [TEACHER["name"], MEMORISED["name"], *[s["name"] for s in STUDENTS]]
    for name in names:
        meta = settings.models_dir / name / "distillscope.json"
        if not meta.is_file() or json.loads(meta.read_text()).get("kit_version") != KIT_VERSION:
            return False
    return all((settings.datasets_dir / d / "dataset.json").is_file() for d in DATASETS)


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
        folder = settings.datasets_dir / name
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "train.txt").write_text("\n".join(demo_language.sample_corpus(n, seed)) + "\n")
        (folder / "eval.txt").write_text(eval_text)
        (folder / "dataset.json").write_text(
            json.dumps(
                {
                    "kind": "demo-language",
                    "description": description,
                    "train": "train.txt",
                    "eval": "eval.txt",
                    "train_sentences": n,
                    "eval_sentences": EVAL_SENTENCES,
                },
                indent=1,
            )
        )


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
    model.save_pretrained(folder, safe_serialization=True)
    tokenizer.save_pretrained(folder)
    n_params = sum(p.numel() for p in model.parameters())
    (folder / "distillscope.json").write_text(
        json.dumps({"kit_version": KIT_VERSION, "parameters": n_params, **meta}, indent=1)
    )


class _ProgressLogger(ListLogger):
    def __init__(self, bar: tqdm):
        super().__init__()
        self.bar = bar

    def log(self, points: dict[str, float], step: int) -> None:
        super().log(points, step)
        self.bar.update(step - self.bar.n)
        self.bar.set_postfix(loss=f"{points['train/loss']:.3f}", refresh=False)


def train_teacher(
    settings: Settings,
    tokenizer,
    *,
    spec: dict = TEACHER,
    dataset: str = "demo-large",
    training: dict = TEACHER_TRAINING,
    progress: bool = True,
) -> dict:
    model = build_model(spec, tokenizer, seed=0)
    cfg = RunConfig(
        name=spec["name"], teacher="-", student="-", dataset=dataset, alpha=0.0, seed=0, **training
    )
    data = load_dataset(
        settings.datasets_dir / cfg.dataset,
        tokenizer,
        seq_len=cfg.seq_len,
        vocab_size=len(tokenizer),
    )
    with tqdm(
        total=cfg.max_steps, desc=f"training {spec['name']}", disable=not progress, unit="step"
    ) as bar:
        logger = _ProgressLogger(bar)
        recipe = DistillationRecipe(
            cfg, student=model, teacher=None, data=data, logger=logger, device=torch.device("cpu")
        )
        recipe.setup()
        t0 = time.perf_counter()
        last = recipe.train()
    metrics = {k: v for k, v in last.items() if k.startswith("eval/")}
    _save(
        model.cpu(),
        tokenizer,
        settings.models_dir / spec["name"],
        {
            "role": "teacher",
            "trained_on": cfg.dataset,
            "train_seconds": time.perf_counter() - t0,
            "eval": metrics,
        },
    )
    return metrics


def prepare(settings: Settings, *, progress: bool = True, force: bool = False) -> bool:
    """Build the kit under settings.data_dir; returns False when it was already there."""
    if not force and is_prepared(settings):
        return False
    settings.models_dir.mkdir(parents=True, exist_ok=True)
    write_datasets(settings)
    tokenizer = build_tokenizer()
    for i, spec in enumerate(STUDENTS):
        _save(
            build_model(spec, tokenizer, seed=100 + i),
            tokenizer,
            settings.models_dir / spec["name"],
            {"role": "student", "trained_on": None},
        )
    for spec, dataset, training in (
        (TEACHER, "demo-large", TEACHER_TRAINING),
        (MEMORISED, "demo-small", MEMORISED_TRAINING),
    ):
        metrics = train_teacher(
            settings, tokenizer, spec=spec, dataset=dataset, training=training, progress=progress
        )
        if progress:
            print(
                f"{spec['name']}: held-out KL to the true distribution "
                f"{metrics.get('eval/kl_true', float('nan')):.3f} nats/token, "
                f"cross-entropy {metrics.get('eval/hard_loss', float('nan')):.3f}"
            )
    return True
