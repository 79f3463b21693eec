"""The demo kit's teachers: trained from scratch (calibrated on demo-large, memorised on
demo-small), or fine-tuned from the calibrated one on one-hot labels until it is peaked, as
supervised fine-tuning leaves an LLM; and a profile of what each knows of the truth."""

import copy
import time

import torch
from tqdm import tqdm
from transformers import AutoModelForCausalLM

from backend.schemas import RunConfig
from backend.settings import Settings
from worker.distill.data import IGNORE, DistillData, Split, load_dataset
from worker.distill.loggers import ListLogger
from worker.distill.trainer import DistillationRecipe
from worker.distill.truth import choice_rows, kl_true, top5_overlap

CONFIDENT = 0.9  # top-1 probability from which a distribution counts as confident
# Temperatures searched for a teacher's best T (the one closest to the truth).
PROFILE_TEMPERATURES = (1.0, 1.25, 1.5, 2.0, 2.5, 3.0, 4.0, 6.0, 8.0)


class _ProgressLogger(ListLogger):
    def __init__(self, bar: tqdm):
        super().__init__()
        self.bar = bar

    def log(self, points: dict[str, float], step: int) -> None:
        super().log(points, step)
        self.bar.update(step - self.bar.n)
        self.bar.set_postfix(loss=f"{points['train/loss']:.3f}", refresh=False)


def train_plain(
    model, data: DistillData, *, name: str, dataset: str, training: dict, progress: bool
) -> dict[str, float]:
    """Cross-entropy on the data's labels (no teacher); returns the last eval/* metrics."""
    cfg = RunConfig(name=name, teacher="-", student="-", dataset=dataset, alpha=0.0, **training)
    with tqdm(total=cfg.max_steps, desc=f"  {name}", disable=not progress, unit="step") as bar:
        recipe = DistillationRecipe(
            cfg,
            student=model,
            teacher=None,
            data=data,
            logger=_ProgressLogger(bar),
            device=torch.device("cpu"),
        )
        recipe.setup()
        last = recipe.train()
    model.eval()
    return {k: v for k, v in last.items() if k.startswith("eval/")}


@torch.inference_mode()
def own_argmax_labels(model, split: Split, batch: int = 256) -> torch.Tensor:
    """The model's own most likely next token at every labelled position: one-hot targets
    that keep the data's prefixes (the labels a self-trained, SFT-style teacher sees)."""
    model.eval()
    out = [
        model(input_ids=split.input_ids[i : i + batch]).logits.argmax(-1)
        for i in range(0, len(split), batch)
    ]
    return torch.where(split.labels != IGNORE, torch.cat(out), IGNORE)


def finetune(base, data: DistillData, *, name: str, dataset: str, training: dict, progress: bool):
    """A copy of `base` fine-tuned on its own argmax labels (one-hot, as SFT data is) until
    peaked. Of the two ways tried (this, and the real labels of the 300-sentence slice for 150
    or 400 steps), this kept more of the truth's ranking and became more confident too: top-5
    overlap 0.93 against 0.78 and 0.70, top-1 ≥ 0.9 at 92 % of the positions with a choice
    against 18 % and 58 %."""
    labels = own_argmax_labels(base, data.train)
    sft = DistillData(train=Split(data.train.input_ids, labels), eval=data.eval, kind=data.kind)
    model = copy.deepcopy(base).train()
    train_plain(model, sft, name=name, dataset=dataset, training=training, progress=progress)
    return model


@torch.inference_mode()
def profile(model, split: Split) -> dict:
    """What a teacher knows of the truth, on held-out positions: how peaked it is (mean top-1,
    share of the positions with a choice where top-1 ≥ 0.9), the overlap of its top 5 with
    the truth's (the same at every T), and KL(truth ‖ teacher_T) at T = 1 and at its best T."""
    model.eval()
    logits = model(input_ids=split.input_ids).logits.float()
    mask = split.labels != IGNORE
    z, truth = logits[mask][:, : split.truth.shape[-1]], split.truth[mask]
    top1 = z.softmax(-1).max(-1).values
    choice = choice_rows(truth)
    overlap, rows = top5_overlap(z, truth)
    n = len(z)
    kl = {t: float(kl_true(z, truth, t)) / n for t in PROFILE_TEMPERATURES}
    best = min(kl, key=kl.get)
    return {
        "positions": n,
        "positions_with_a_choice": int(choice.sum()),
        "top1_mean": float(top1.mean()),
        "confident_share": float((top1[choice] >= CONFIDENT).float().mean()),
        "top5_overlap": float(overlap) / max(rows, 1),
        "kl_true_t1": kl[1.0],
        "best_t": best,
        "kl_true_best_t": kl[best],
        "kl_true_by_t": {f"{t:g}": round(v, 4) for t, v in kl.items()},
    }


def describe(p: dict) -> str:
    """One line of a profile, for the terminal."""
    return (
        f"top-1 ≥ {CONFIDENT} at {p['confident_share']:.0%} of the positions with a choice, "
        f"top-5 overlap with the truth {p['top5_overlap']:.2f}, KL(truth ‖ teacher) "
        f"{p['kl_true_t1']:.3f} at T = 1, {p['kl_true_best_t']:.3f} at its best T = {p['best_t']:g}"
    )


def load(folder):
    return AutoModelForCausalLM.from_pretrained(folder).eval()


def eval_split(settings: Settings, tokenizer, dataset: str = "demo") -> DistillData:
    return load_dataset(
        settings.datasets_dir / dataset, tokenizer, seq_len=64, vocab_size=len(tokenizer)
    )


def timed(fn, *args, **kwargs):
    t0 = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - t0
