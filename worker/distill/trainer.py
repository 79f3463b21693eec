"""The distillation recipe: setup → train → (evaluate) with one validated RunConfig and the
components passed in (student, teacher, data, logger), torchtune-style.

Per optimizer step it logs train/soft_loss, train/hard_loss, train/loss, train/lr,
train/grad_norm and train/tokens_per_s; every eval_interval steps (and at the last step) the
held-out eval/* metrics, in the same `log` call so that a step's points arrive together.
"""

import math
import time
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

from backend.schemas import RunConfig
from worker.distill.checkpoint import load_trainer_state, save_checkpoint
from worker.distill.data import IGNORE, DistillData, batch_indices
from worker.distill.loggers import MetricLogger
from worker.distill.losses import TopKLogits, distillation_loss
from worker.distill.truth import kl_true, top5_overlap


def pick_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def warmup_cosine(step: int, *, warmup: int, total: int, min_ratio: float = 0.1) -> float:
    """LR multiplier: linear warm-up to 1, then cosine decay to `min_ratio` at `total`."""
    if warmup > 0 and step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


class Cancelled(Exception):
    """Raised when `should_stop` asks the loop to end early."""


class DistillationRecipe:
    def __init__(
        self,
        config: RunConfig,
        *,
        student: torch.nn.Module,
        teacher: torch.nn.Module | None,
        data: DistillData,
        logger: MetricLogger,
        device: torch.device | None = None,
        vocab_size: int | None = None,
        should_stop: Callable[[], bool] | None = None,
        sync_every: int = 8,
        checkpoint_dir: Path | None = None,
        tokenizer=None,
        teacher_cache: TopKLogits | None = None,
    ):
        self.cfg = config
        self.student, self.teacher, self.data, self.logger = student, teacher, data, logger
        self.device = device or pick_device()
        # Logits are sliced to the shared tokenizer vocabulary (models may pad their heads).
        self.vocab = vocab_size
        self.should_stop = should_stop
        self.sync_every = sync_every
        self.checkpoint_dir, self.tokenizer = checkpoint_dir, tokenizer
        # Top-k teacher logits for every training sequence (teacher-logit cache), or None.
        self.teacher_cache = teacher_cache
        self.step = 0

    # ---------------------------------------------------------------- setup
    def setup(self) -> None:
        torch.manual_seed(self.cfg.seed)
        self.student.to(self.device).train()
        if self.teacher is not None:
            self.teacher.to(self.device).eval()
            self.teacher.requires_grad_(False)
        decay = [p for p in self.student.parameters() if p.requires_grad and p.dim() >= 2]
        no_decay = [p for p in self.student.parameters() if p.requires_grad and p.dim() < 2]
        self.optimizer = torch.optim.AdamW(
            [
                {"params": decay, "weight_decay": self.cfg.weight_decay},
                {"params": no_decay, "weight_decay": 0.0},
            ],
            lr=self.cfg.learning_rate,
            betas=(0.9, 0.95),
            fused=self.device.type == "cuda",
        )
        warmup, total = self.cfg.resolved_warmup_steps, self.cfg.max_steps
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda s: warmup_cosine(s, warmup=warmup, total=total)
        )

    def _autocast(self):
        # bf16 autocast for the forward passes on CUDA; the loss itself runs in float32.
        if self.device.type == "cuda":
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return nullcontext()

    def _logits(self, model: torch.nn.Module, input_ids: Tensor) -> Tensor:
        logits = model(input_ids=input_ids).logits
        return logits[..., : self.vocab] if self.vocab is not None else logits

    def _teacher_logits(self, input_ids: Tensor) -> Tensor | None:
        if self.teacher is None:
            return None
        # inference_mode: no autograd bookkeeping at all for the frozen teacher.
        with torch.inference_mode(), self._autocast():
            return self._logits(self.teacher, input_ids)

    # ---------------------------------------------------------------- train
    def train_step(self, index: int) -> dict[str, Tensor]:
        """One optimizer step over `grad_accum_steps` micro-batches; returns device tensors
        (no host sync here)."""
        cfg = self.cfg
        rows = batch_indices(len(self.data.train), index, cfg.batch_size, cfg.seed)
        input_ids = self.data.train.input_ids[rows].to(self.device)
        labels = self.data.train.labels[rows].to(self.device)
        cached = None
        if self.teacher_cache is not None:  # the teacher's top-k logits, read not computed
            cached = [x[rows].to(self.device) for x in self.teacher_cache]
        # N = real tokens of the whole optimizer step, shared by every micro-batch.
        n_tokens = (labels != IGNORE).sum()
        soft_sum = torch.zeros((), device=self.device)
        hard_sum = torch.zeros((), device=self.device)
        micro = cfg.batch_size // cfg.grad_accum_steps
        for m, (ids, lab) in enumerate(
            zip(input_ids.split(micro), labels.split(micro), strict=True)
        ):
            if cached is not None:
                t_logits = TopKLogits(*(x[m * micro : (m + 1) * micro] for x in cached))
            else:
                t_logits = self._teacher_logits(ids)
            with self._autocast():
                s_logits = self._logits(self.student, ids)
            if t_logits is None:  # no teacher (the demo kit training its teachers): CE only
                hard = F.cross_entropy(
                    s_logits.float().flatten(0, 1),
                    lab.flatten(),
                    ignore_index=IGNORE,
                    reduction="sum",
                ) / n_tokens.clamp_min(1)
                hard.backward()
                hard_sum += hard.detach()
            else:
                out = distillation_loss(
                    s_logits,
                    t_logits,
                    lab,
                    temperature=cfg.temperature,
                    alpha=cfg.alpha,
                    divergence=cfg.divergence,
                    beta=cfg.beta,
                    num_tokens=n_tokens,
                )
                out.loss.backward()
                soft_sum += out.soft.detach()
                hard_sum += out.hard.detach()
                del out
            del s_logits, t_logits  # free the logits before the next micro-batch
        grad_norm = torch.nn.utils.clip_grad_norm_(self.student.parameters(), cfg.max_grad_norm)
        lr = self.scheduler.get_last_lr()[0]
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        alpha = cfg.alpha if self.teacher is not None else 0.0
        metrics = {
            "train/hard_loss": hard_sum,
            "train/loss": alpha * soft_sum + (1 - alpha) * hard_sum,
            "train/grad_norm": grad_norm.float(),
            "train/tokens": n_tokens.float(),
        }
        if self.teacher is not None:
            metrics["train/soft_loss"] = soft_sum
        metrics["train/lr"] = torch.tensor(lr)
        return metrics

    def train(self) -> dict[str, float]:
        """Run to max_steps; returns the last logged values."""
        pending: list[tuple[int, dict[str, Tensor]]] = []
        window_start = time.perf_counter()
        last: dict[str, float] = {}
        for index in range(self.step, self.cfg.max_steps):
            if self.should_stop is not None and self.should_stop():
                self._flush(pending, window_start)
                raise Cancelled(f"stopped at step {self.step}")
            pending.append((index + 1, self.train_step(index)))
            self.step = index + 1
            is_eval = self.step % self.cfg.eval_interval == 0 or self.step == self.cfg.max_steps
            is_ckpt = (
                self.checkpoint_dir is not None
                and self.step < self.cfg.max_steps
                and self.step % self.cfg.resolved_checkpoint_interval == 0
            )
            if is_eval or is_ckpt or len(pending) >= self.sync_every:
                extra = self.evaluate() if is_eval else {}
                last = self._flush(pending, window_start, extra)
                pending, window_start = [], time.perf_counter()
            # A checkpoint only once the points up to its step are stored, so that a resumed
            # run never leaves a gap (during a database outage the next one is taken).
            if is_ckpt and self.logger.flush():
                self.save_checkpoint()
        self.logger.close()
        return last

    def save_checkpoint(self) -> Path:
        return save_checkpoint(
            self.checkpoint_dir,
            step=self.step,
            student=self.student,
            optimizer=self.optimizer,
            scheduler=self.scheduler,
            tokenizer=self.tokenizer,
            keep=self.cfg.keep_checkpoints,
            keep_weights=self.cfg.keep_checkpoint_weights,
        )

    def resume(self, path: Path) -> None:
        """Continue from a checkpoint (after setup(); the student must already hold the
        checkpoint's weights, e.g. loaded with from_pretrained from `path`)."""
        state = load_trainer_state(path)
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        torch.set_rng_state(state["rng"]["torch"])
        if "cuda" in state["rng"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["rng"]["cuda"])
        self.step = int(state["step"])

    def _flush(self, pending, window_start: float, extra: dict[str, float] | None = None):
        """One host sync for a window of steps: tensors → floats → logger, one call per step."""
        if not pending:
            return {}
        keys = list(pending[0][1])
        values = torch.stack(
            [torch.stack([m[k].float().cpu() for k in keys]) for _, m in pending]
        ).tolist()  # sync point
        elapsed = max(time.perf_counter() - window_start, 1e-9)
        if extra:  # evaluation time is not training throughput
            elapsed = max(elapsed - extra.pop("_eval_seconds", 0.0), 1e-9)
        tokens = sum(row[keys.index("train/tokens")] for row in values)
        points: dict[str, float] = {}
        for i, (step, _) in enumerate(pending):
            points = {k: v for k, v in zip(keys, values[i], strict=True) if k != "train/tokens"}
            points["train/tokens_per_s"] = tokens / elapsed
            if extra and i == len(pending) - 1:
                points.update(extra)
            self.logger.log(points, step)
        return points

    # ---------------------------------------------------------------- evaluate
    @torch.inference_mode()
    def evaluate(self) -> dict[str, float]:
        """Held-out metrics, per real token: eval/hard_loss, eval/perplexity, and with a
        teacher eval/soft_loss (at the run's T), eval/kl_teacher (KL(p||q) at T = 1),
        eval/top1_agreement; on the demo language eval/kl_true = KL(truth || student) and
        eval/top5_true, how much of the truth's top-5 ranking the student keeps, and
        eval/top1_prob, the probability the student gives its own top token (how peaked it is;
        the truth's own mean is about 0.5)."""
        t0 = time.perf_counter()
        cfg, split = self.cfg, self.data.eval
        self.student.eval()
        sums = {"hard": 0.0, "soft": 0.0, "kl_teacher": 0.0, "agree": 0.0, "kl_true": 0.0}
        sums["top5"], sums["top1"], n_choice = 0.0, 0.0, 0
        n_total = 0
        n_seq = min(len(split), cfg.eval_batches * cfg.batch_size)
        for start in range(0, n_seq, cfg.batch_size):
            sl = slice(start, min(start + cfg.batch_size, n_seq))
            ids = split.input_ids[sl].to(self.device)
            labels = split.labels[sl].to(self.device)
            with self._autocast():
                s_logits = self._logits(self.student, ids)
            t_logits = self._teacher_logits(ids)
            mask = labels != IGNORE
            n = int(mask.sum())
            n_total += n
            ref = t_logits if t_logits is not None else s_logits
            out = distillation_loss(
                s_logits,
                ref,
                labels,
                temperature=cfg.temperature,
                alpha=0.0,
                divergence=cfg.divergence,
                beta=cfg.beta,
            )
            sums["hard"] += float(out.hard) * n
            if t_logits is not None:
                sums["soft"] += float(out.soft) * n
                kl1 = distillation_loss(s_logits, t_logits, labels, temperature=1.0, alpha=1.0)
                sums["kl_teacher"] += float(kl1.soft) * n
                agree = (s_logits.argmax(-1) == t_logits.argmax(-1)) & mask
                sums["agree"] += float(agree.sum())
            if split.truth is not None:
                truth = split.truth[sl].to(self.device)[mask]
                sums["kl_true"] += float(kl_true(s_logits[mask], truth))
                overlap, rows = top5_overlap(s_logits[mask], truth)
                sums["top5"] += float(overlap)
                n_choice += rows
                sums["top1"] += float(torch.softmax(s_logits[mask].float(), -1).amax(-1).sum())
        self.student.train()
        n_total = max(n_total, 1)
        out = {
            "eval/hard_loss": sums["hard"] / n_total,
            "eval/perplexity": math.exp(min(sums["hard"] / n_total, 50.0)),
        }
        if self.teacher is not None:
            out["eval/soft_loss"] = sums["soft"] / n_total
            out["eval/kl_teacher"] = sums["kl_teacher"] / n_total
            out["eval/top1_agreement"] = sums["agree"] / n_total
        if split.truth is not None:
            out["eval/kl_true"] = sums["kl_true"] / n_total
            out["eval/top5_true"] = sums["top5"] / max(n_choice, 1)
            out["eval/top1_prob"] = sums["top1"] / n_total
        out["_eval_seconds"] = time.perf_counter() - t0
        return out
