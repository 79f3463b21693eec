"""The distillation recipe: setup → train → (evaluate) with one validated RunConfig and the
components passed in (student, teacher, data, logger), torchtune-style.

Per optimizer step it logs train/soft_loss, train/hard_loss, train/loss, train/lr,
train/grad_norm and train/tokens_per_s; every eval_interval steps (and at the last step) the
held-out eval/* metrics, in the same `log` call so that a step's points arrive together.
"""

import logging
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
from worker.distill.fused import (
    final_hidden,
    head_of,
    hidden_distillation_loss,
    hidden_path_problem,
)
from worker.distill.loggers import MetricLogger
from worker.distill.losses import LossOutput, TopKLogits, distillation_loss
from worker.distill.models import resolve_dtype
from worker.distill.truth import kl_true, top5_overlap

log = logging.getLogger(__name__)

# loss_impl "auto" takes the hidden-state path from this vocabulary size up (LLM vocabularies:
# 32,000 to 152,064 tokens), where (tokens x vocab) logits dominate a step's memory.
HIDDEN_FROM_VOCAB = 16_384
# Evaluation runs its forward passes on this many logits per model at most (float32: 128 MB),
# so that both models' full logits for a big batch are never held at once.
EVAL_LOGITS_ELEMENTS = 1 << 25
# The teacher's top k tokens for the tail metrics (eval/teacher_tail_mass, eval/soft_tail_share).
TAIL_TOP_K = 8


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


class NonFiniteLoss(ArithmeticError):
    """The training loss became NaN or infinite: the run fails and says at which step."""


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
        # "hidden" or "logits" (config.loss_impl resolved by setup()), and why.
        self.loss_impl, self.loss_impl_reason = "logits", ""
        # The forward passes' dtype (setup() checks it against the device).
        self.dtype = torch.float32

    # ---------------------------------------------------------------- setup
    def setup(self) -> None:
        torch.manual_seed(self.cfg.seed)
        # Mixed precision: the student's weights (and so AdamW's state) stay float32, its
        # forward passes run in the run's dtype under autocast. Stored in bfloat16 an update
        # below half a bfloat16 step is rounded away: at lr 5e-4 a norm weight of 1.0 (step
        # 2^-7) never moves. The frozen teacher's weights are in the run's dtype; the loss is
        # float32 whatever the inputs (losses.py, fused.py).
        self.dtype = resolve_dtype(self.cfg.dtype, self.device)
        self.student.to(device=self.device, dtype=torch.float32).train()
        if self.cfg.gradient_checkpointing:
            # Activations are recomputed layer by layer in backward; no KV cache in training.
            self.student.config.use_cache = False
            kwargs = {"use_reentrant": False}
            if hasattr(self.student, "activation_checkpointing_enable"):  # transformers >= 5.x
                self.student.activation_checkpointing_enable(kwargs)
            else:
                self.student.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)
        if self.teacher is not None:
            self.teacher.to(device=self.device, dtype=self.dtype).eval()
            self.teacher.requires_grad_(False)
        self.loss_impl, self.loss_impl_reason = self._pick_loss_impl()
        log.info("loss from %s: %s", self.loss_impl, self.loss_impl_reason)
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

    def _pick_loss_impl(self) -> tuple[str, str]:
        """config.loss_impl resolved: "hidden" (the loss from final hidden states and output
        heads, chunk by chunk) or "logits" (from both models' full logits), and why."""
        if self.teacher is None:
            return "logits", "no teacher: cross-entropy with the labels only"
        if self.teacher_cache is not None:
            return "logits", "the teacher comes from its top-k logit cache"
        head = head_of(self.student)
        vocab = self.vocab or (head[0].shape[0] if head else self.student.config.vocab_size)
        impl = self.cfg.loss_impl
        if impl == "auto":
            impl = "hidden" if vocab >= HIDDEN_FROM_VOCAB else "logits"
            why = f"auto, vocabulary {vocab:,} {'≥' if impl == 'hidden' else '<'} 16,384"
        else:
            why = f"loss_impl={impl}"
        if impl == "hidden":
            probe = self.data.train.input_ids[:1, :16].to(self.device)
            for who, model in (("student", self.student), ("teacher", self.teacher)):
                problem = hidden_path_problem(model, probe)
                if problem is not None:
                    reason = f"the {who}'s logits are not its hidden states @ head: {problem}"
                    log.warning("loss from the full logits instead of hidden states: %s", reason)
                    return "logits", reason
        return impl, why

    def _autocast(self):
        """Where a model runs forward: in the run's dtype (float32 weights cast on the fly)."""
        if self.dtype == torch.float32:
            return nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.dtype)

    def _logits(self, model: torch.nn.Module, input_ids: Tensor) -> Tensor:
        logits = model(input_ids=input_ids).logits
        return logits[..., : self.vocab] if self.vocab is not None else logits

    def _student_logits(self, input_ids: Tensor) -> Tensor:
        with self._autocast():
            return self._logits(self.student, input_ids)

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
            if self.teacher is None and cached is None:
                # No teacher (the demo kit training its teachers): CE only.
                s_logits = self._student_logits(ids)
                hard = F.cross_entropy(
                    s_logits.float().flatten(0, 1),
                    lab.flatten(),
                    ignore_index=IGNORE,
                    reduction="sum",
                ) / n_tokens.clamp_min(1)
                hard.backward()
                hard_sum += hard.detach()
                del s_logits, hard  # free the logits before the next micro-batch
                continue
            part = None
            if cached is not None:
                part = TopKLogits(*(x[m * micro : (m + 1) * micro] for x in cached))
            out = self._micro_loss(ids, lab, n_tokens, part)
            out.loss.backward()
            soft_sum += out.soft.detach()
            hard_sum += out.hard.detach()
            del out  # frees what the loss kept for backward before the next micro-batch
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

    def _micro_loss(
        self, ids: Tensor, labels: Tensor, n_tokens: Tensor, cached: TopKLogits | None
    ) -> LossOutput:
        """One micro-batch's distillation loss (N = the whole step's tokens)."""
        cfg = self.cfg
        kw = dict(
            temperature=cfg.temperature,
            alpha=cfg.alpha,
            divergence=cfg.divergence,
            beta=cfg.beta,
            num_tokens=n_tokens,
        )
        if self.loss_impl == "hidden":
            # Final hidden states and output heads: the (tokens x vocab) logits of both models
            # only ever exist one chunk of rows at a time (worker/distill/fused.py).
            with torch.inference_mode(), self._autocast():
                h_t = final_hidden(self.teacher, ids)
            with self._autocast():
                h_s = final_hidden(self.student, ids)
            (w_s, b_s), (w_t, b_t) = head_of(self.student), head_of(self.teacher)
            return hidden_distillation_loss(
                h_s,
                w_s,
                h_t,
                w_t,
                labels,
                student_bias=b_s,
                teacher_bias=b_t,
                vocab=self.vocab,
                **kw,
            )
        t_logits = cached if cached is not None else self._teacher_logits(ids)
        s_logits = self._student_logits(ids)
        return distillation_loss(s_logits, t_logits, labels, **kw)

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
            weights_dtype=self.dtype,
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
        # A loss that turned NaN or infinite ends the run (its points are logged first, flagged,
        # so the page shows where); it never ends "succeeded" with nothing learned.
        for i, (step, _) in enumerate(pending):
            row = dict(zip(keys, values[i], strict=True))
            if not math.isfinite(row["train/loss"]):
                parts = ", ".join(
                    f"{k.removeprefix('train/')} {row[k]:.4g}"
                    for k in ("train/soft_loss", "train/hard_loss")
                    if k in row
                )
                raise NonFiniteLoss(
                    f"the training loss became {row['train/loss']} at step {step} ({parts}): "
                    "try a lower learning_rate, or a temperature nearer 1"
                )
        return points

    # ---------------------------------------------------------------- evaluate
    @torch.inference_mode()
    def evaluate(self) -> dict[str, float]:
        """Held-out metrics, per real token: eval/hard_loss, eval/perplexity, and with a
        teacher eval/soft_loss (at the run's T), eval/kl_teacher (KL(p||q) at T = 1),
        eval/top1_agreement; on the demo language eval/kl_true = KL(truth || student) and
        eval/top5_true, how much of the truth's top-5 ranking the student keeps, and
        eval/top1_prob, the probability the student gives its own top token (how peaked it is;
        the truth's own mean is about 0.5).

        How the teacher's targets look (with a teacher; what an LLM's peaked softmax means for
        the soft loss):
        eval/teacher_top1_prob, the mean probability of the teacher's own top token at T = 1;
        eval/teacher_tail_mass, the teacher's mean mass outside its top 8 tokens at the run's T;
        eval/soft_tail_share, the share of the forward KL(p_T || q_T) summed over all tokens
        that comes from vocabulary entries outside the teacher's top 8 (at the run's T, forward
        KL whatever the run's divergence). Entry j's part is p_j log(p_j / q_j) - p_j + q_j:
        never negative, and the parts sum to the KL (both distributions sum to 1), so the
        share lies in [0, 1]."""
        t0 = time.perf_counter()
        cfg, split = self.cfg, self.data.eval
        self.student.eval()
        sums = {"hard": 0.0, "soft": 0.0, "kl_teacher": 0.0, "agree": 0.0, "kl_true": 0.0}
        sums.update(top5=0.0, top1=0.0, t_top1=0.0, t_tail=0.0, kl_all=0.0, kl_tail=0.0)
        n_choice, n_total = 0, 0
        n_seq = min(len(split), cfg.eval_batches * cfg.batch_size)
        # Sequences per forward pass: at most EVAL_LOGITS_ELEMENTS logits per model.
        width = split.input_ids.shape[1] * (self.vocab or self.student.config.vocab_size)
        per_pass = max(1, min(cfg.batch_size, EVAL_LOGITS_ELEMENTS // max(width, 1)))
        for start in range(0, n_seq, per_pass):
            sl = slice(start, min(start + per_pass, n_seq))
            ids = split.input_ids[sl].to(self.device)
            labels = split.labels[sl].to(self.device)
            s_logits = self._student_logits(ids)
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
                self._teacher_shape(s_logits[mask], t_logits[mask], sums)
            if split.truth is not None:
                truth = split.truth[sl].to(self.device)[mask]
                sums["kl_true"] += float(kl_true(s_logits[mask], truth))
                overlap, rows = top5_overlap(s_logits[mask], truth)
                sums["top5"] += float(overlap)
                n_choice += rows
                sums["top1"] += float(torch.softmax(s_logits[mask].float(), -1).amax(-1).sum())
            del s_logits, t_logits, out  # before the next pass's logits
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
            out["eval/teacher_top1_prob"] = sums["t_top1"] / n_total
            out["eval/teacher_tail_mass"] = sums["t_tail"] / n_total
            kl_all = sums["kl_all"]
            out["eval/soft_tail_share"] = sums["kl_tail"] / kl_all if kl_all > 0 else 0.0
        if split.truth is not None:
            out["eval/kl_true"] = sums["kl_true"] / n_total
            out["eval/top5_true"] = sums["top5"] / max(n_choice, 1)
            out["eval/top1_prob"] = sums["top1"] / n_total
        out["_eval_seconds"] = time.perf_counter() - t0
        return out

    def _teacher_shape(self, s: Tensor, t: Tensor, sums: dict[str, float]) -> None:
        """Adds, over real rows (s, t: (rows, vocab) logits), the teacher's top-1 probability
        at T = 1, its mass outside its top TAIL_TOP_K at T, and the forward KL at T, whole and
        outside that top k; a few hundred rows at a time (float32 temporaries)."""
        temperature = self.cfg.temperature
        k = min(TAIL_TOP_K, t.shape[-1])
        step = max(1, (1 << 22) // max(t.shape[-1], 1))
        for i in range(0, t.shape[0], step):
            tc, sc = t[i : i + step].float(), s[i : i + step].float()
            sums["t_top1"] += float(torch.exp(tc.amax(-1) - torch.logsumexp(tc, -1)).sum())
            log_p = torch.log_softmax(tc / temperature, -1)
            log_q = torch.log_softmax(sc / temperature, -1)
            p = log_p.exp()
            # Each entry's non-negative part of the forward KL (they sum to the KL).
            elem = p * (log_p - log_q) - p + log_q.exp()
            top = tc.topk(k, dim=-1).indices  # the same tokens at any T
            sums["t_tail"] += float((1 - p.gather(-1, top).sum(-1)).sum())
            kl_all = elem.sum(-1)
            sums["kl_all"] += float(kl_all.sum())
            sums["kl_tail"] += float((kl_all - elem.gather(-1, top).sum(-1)).sum())
