"""The distillation loss, to the letter of docs/losses.md ("Conventions"), which also says
how this code computes it (chunks, gradients, the top-k teacher).

For each position i whose label is not `ignore_index`, with student logits z_s and teacher
logits z_t aligned so that row i predicts labels[i]:

    q_T = softmax(z_s / T),  p_T = softmax(z_t / T)            (float32, whatever the input)
    forward_kl  D_i = KL(p_T || q_T)
    reverse_kl  D_i = KL(q_T || p_T)
    jsd         M = beta p_T + (1 - beta) q_T,  D_i = beta KL(p_T || M) + (1 - beta) KL(q_T || M)
    soft  = T^2 * sum_i D_i / N
    hard  = sum_i -log softmax(z_s)[y_i] / N                    (temperature 1)
    total = alpha * soft + (1 - alpha) * hard

N is the number of real tokens in the whole optimizer step: pass `num_tokens` when a step is
split into micro-batches, so that the sum of the micro-batch losses is the step's loss.

Memory: rows are processed in chunks and nothing of size (tokens x vocab) is kept for backward;
the backward pass recomputes each chunk's softmaxes and writes its gradient straight into the
gradient of the student logits, which autograd needs anyway.
"""

import math
from typing import NamedTuple

import torch
from torch import Tensor

DIVERGENCES = ("forward_kl", "reverse_kl", "jsd")


class TopKLogits(NamedTuple):
    """A teacher given by its k largest logits per position (e.g. from the teacher-logit
    cache) instead of all V. `tail_lse` is the log-sum-exp of the other V - k logits at T = 1.

    The missing mass, explicitly: at temperature T the tail's total weight is approximated as
    if its V - k logits were equal (exact at T = 1), so the teacher is a distribution over the
    k tokens plus one tail bucket. The student's k probabilities and its tail bucket
    (1 - sum of those k) are exact. Forward KL over these k + 1 buckets equals the full KL
    against a teacher whose tail mass is spread like the student's own tail, which is what
    `_chunk_terms` builds, so its gradient is again q_T - p_T (with that teacher)."""

    values: Tensor  # (..., k) teacher logits at T = 1
    indices: Tensor  # (..., k) their token ids
    tail_lse: Tensor  # (...) logsumexp of the remaining logits at T = 1

    def index_select(self, dim: int, idx: Tensor) -> "TopKLogits":
        return TopKLogits(*(x.index_select(dim, idx) for x in self))


class LossOutput(NamedTuple):
    loss: Tensor  # alpha * soft + (1 - alpha) * hard
    soft: Tensor  # T^2 * mean divergence at temperature T
    hard: Tensor  # mean cross-entropy with the labels at T = 1
    num_tokens: Tensor  # real (non-ignored) positions in these inputs


def _check(
    student_logits: Tensor,
    teacher_logits: Tensor,
    labels: Tensor,
    temperature: float,
    alpha: float,
    divergence: str,
    beta: float,
    chunk_size: int,
) -> None:
    if divergence not in DIVERGENCES:
        raise ValueError(f"divergence must be one of {DIVERGENCES}, got {divergence!r}")
    if not (
        isinstance(temperature, (int, float)) and math.isfinite(temperature) and temperature > 0
    ):
        raise ValueError(f"temperature must be a finite number > 0, got {temperature!r}")
    if not (isinstance(alpha, (int, float)) and 0.0 <= alpha <= 1.0):
        raise ValueError(f"alpha must be in [0, 1] (the weight of the soft term), got {alpha!r}")
    if divergence == "jsd" and not (0.0 < beta < 1.0):
        raise ValueError(f"beta must be in (0, 1) for jsd, got {beta!r}")
    if isinstance(teacher_logits, TopKLogits):
        k = teacher_logits.values.shape[-1]
        if divergence != "forward_kl":
            raise ValueError(
                f"divergence must be forward_kl with a top-k teacher (cached "
                f"logits), got {divergence!r}"
            )
        if teacher_logits.values.shape[:-1] != student_logits.shape[:-1] or not (
            0 < k < student_logits.shape[-1]
        ):
            raise ValueError(
                f"top-k teacher logits {tuple(teacher_logits.values.shape)} must "
                f"match the student's positions {tuple(student_logits.shape[:-1])}"
                f" with 0 < k < vocabulary {student_logits.shape[-1]}"
            )
    elif student_logits.shape != teacher_logits.shape:
        raise ValueError(
            f"student and teacher logits must have the same shape, got "
            f"{tuple(student_logits.shape)} and {tuple(teacher_logits.shape)}: slice both to "
            "the shared tokenizer vocabulary first"
        )
    if student_logits.shape[:-1] != labels.shape:
        raise ValueError(
            f"labels shape {tuple(labels.shape)} must equal the logits' leading "
            f"shape {tuple(student_logits.shape[:-1])}"
        )
    dense_teacher = (
        teacher_logits.values if isinstance(teacher_logits, TopKLogits) else teacher_logits
    )
    if not student_logits.is_floating_point() or not dense_teacher.is_floating_point():
        raise ValueError("logits must be floating-point tensors")
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")


def _chunk_terms(
    s: Tensor,
    t: Tensor,
    y: Tensor,
    temperature: float,
    divergence: str,
    beta: float,
    want_grad: bool,
):
    """Per-row divergence and cross-entropy for one chunk (float32), and optionally the
    gradients of D and of CE with respect to the student logits."""
    # Clamping at -1e30 keeps -inf logits finite, so 0 * log 0 terms are 0 rather than NaN
    # without a masked select per term; it also makes the float32 copy we need anyway.
    s = s.float().clamp(min=-1e30)
    log_q = torch.log_softmax(s / temperature if temperature != 1 else s, dim=-1)
    if isinstance(t, TopKLogits):
        log_p = _topk_teacher_log_probs(t, log_q, temperature)
    else:
        t = t.float().clamp(min=-1e30)
        log_p = torch.log_softmax(t / temperature if temperature != 1 else t, dim=-1)
    q, p = log_q.exp(), log_p.exp()
    g_u = None  # d D / d(z_s / T)
    if divergence == "forward_kl":
        div = (p * (log_p - log_q)).sum(-1)
        if want_grad:
            g_u = q - p
    elif divergence == "reverse_kl":
        elem = q * (log_q - log_p)
        div = elem.sum(-1)
        if want_grad:
            g_u = elem - q * div.unsqueeze(-1)
    else:  # jsd: the mixture is taken of probabilities (in log space, for stability)
        log_m = torch.logaddexp(log_p + math.log(beta), log_q + math.log1p(-beta))
        kl_qm_elem = q * (log_q - log_m)
        div = beta * (p * (log_p - log_m)).sum(-1) + (1 - beta) * kl_qm_elem.sum(-1)
        if want_grad:  # dD/dq_j = (1 - beta)(log q_j - log m_j); through the softmax:
            g_u = (1 - beta) * (kl_qm_elem - q * kl_qm_elem.sum(-1, keepdim=True))
    # The hard term at T = 1: CE = logsumexp(z_s) - z_s[y], dCE/dz_s = softmax(z_s) - onehot(y).
    y = y.unsqueeze(-1)
    if temperature == 1:
        ce = -log_q.gather(-1, y).squeeze(-1)
    else:  # one log-sum-exp, not a second (rows x vocab) log-softmax
        lse = torch.logsumexp(s, dim=-1, keepdim=True)
        ce = (lse - s.gather(-1, y)).squeeze(-1)
    if not want_grad:
        return div, ce, None, None
    # q is not needed past g_u, so at T = 1 it becomes the CE gradient in place.
    g_ce = q if temperature == 1 else torch.sub(s, lse).exp_()
    g_ce.scatter_add_(-1, y, torch.full_like(y, -1.0, dtype=g_ce.dtype))
    return div, ce, g_u / temperature, g_ce


def _topk_teacher_log_probs(t: TopKLogits, log_q: Tensor, temperature: float) -> Tensor:
    """Dense log p_T of a top-k teacher: its k tokens exactly, its tail bucket spread over the
    other tokens in proportion to the student's own probabilities (see TopKLogits)."""
    vocab, k = log_q.shape[-1], t.values.shape[-1]
    n_tail = vocab - k
    # Clamped at -1e30 as the dense path's logits are: a tail of mass 0 (its logits all -inf,
    # tail_lse = -inf) would otherwise give log p = -inf, and p * log p a NaN soft loss.
    v = t.values.float().clamp(min=-1e30) / temperature
    # Tail weight at T if its n_tail logits were equal: n * exp((lse - log n) / T).
    log_n = math.log(n_tail)
    tail = log_n + (t.tail_lse.float().clamp(min=-1e30) - log_n) / temperature
    lse = torch.logaddexp(torch.logsumexp(v, dim=-1), tail)
    idx = t.indices.long()
    log_q_tail = torch.logsumexp(log_q.scatter(-1, idx, float("-inf")), dim=-1)
    log_p = log_q + (tail - lse - log_q_tail).unsqueeze(-1)
    return log_p.scatter(-1, idx, v - lse.unsqueeze(-1))


def _chunks(rows: Tensor, chunk_size: int):
    for start in range(0, rows.numel(), chunk_size):
        yield rows[start : start + chunk_size]


class _FusedDistillation(torch.autograd.Function):
    """Forward computes the loss and, chunk by chunk, the gradient of the total with respect
    to the student logits (the only (tokens x vocab) tensor it keeps, the same size as the
    gradient autograd must produce anyway). Backward scales it: no second pass over the
    vocabulary unless the soft or hard term is differentiated on its own."""

    @staticmethod
    def forward(
        ctx, student, teacher, labels, rows, denom, temperature, alpha, divergence, beta, chunk_size
    ):
        need_grad = ctx.needs_input_grad[0]
        grad = torch.zeros_like(student) if need_grad else None
        div_sum = torch.zeros((), dtype=torch.float32, device=student.device)
        ce_sum = torch.zeros((), dtype=torch.float32, device=student.device)
        w_div = alpha * temperature**2 / denom
        w_ce = (1.0 - alpha) / denom
        for idx in _chunks(rows, chunk_size):
            div, ce, g_div, g_ce = _chunk_terms(
                student.index_select(0, idx),
                teacher.index_select(0, idx),
                labels.index_select(0, idx),
                temperature,
                divergence,
                beta,
                need_grad,
            )
            div_sum += div.sum()
            ce_sum += ce.sum()
            if need_grad:
                grad.index_copy_(0, idx, (g_div * w_div + g_ce * w_ce).to(grad.dtype))
        soft = temperature**2 * div_sum / denom
        hard = ce_sum / denom
        ctx.save_for_backward(grad, student, labels, rows, denom)
        # The teacher is kept as an attribute, not saved for backward: its logits may come
        # from torch.inference_mode, and it never needs a gradient.
        ctx.teacher = teacher
        ctx.args = (temperature, divergence, beta, chunk_size)
        ctx.set_materialize_grads(False)
        return alpha * soft + (1.0 - alpha) * hard, soft, hard

    @staticmethod
    def backward(ctx, g_total, g_soft, g_hard):
        grad, student, labels, rows, denom = ctx.saved_tensors
        out = None
        if g_total is not None:
            # The usual case is loss.backward() with a gradient of exactly 1 (one host sync).
            out = grad if bool(g_total == 1) else grad * g_total.to(grad.dtype)
        if g_soft is not None or g_hard is not None:  # a term differentiated on its own
            temperature, divergence, beta, chunk_size = ctx.args
            w_div = (g_soft if g_soft is not None else 0.0) * temperature**2 / denom
            w_ce = (g_hard if g_hard is not None else 0.0) / denom
            extra = torch.zeros_like(student)
            for idx in _chunks(rows, chunk_size):
                _, _, g_div, g_ce = _chunk_terms(
                    student.index_select(0, idx),
                    ctx.teacher.index_select(0, idx),
                    labels.index_select(0, idx),
                    temperature,
                    divergence,
                    beta,
                    True,
                )
                extra.index_copy_(0, idx, (g_div * w_div + g_ce * w_ce).to(extra.dtype))
            out = extra if out is None else out + extra
        return out, None, None, None, None, None, None, None, None, None


def real_rows(
    labels: Tensor, vocab: int, ignore_index: int, num_tokens: "int | Tensor | None"
) -> tuple[Tensor, Tensor, int, Tensor]:
    """The flat indices of the real (non-ignored) positions, the labels with ignored ones set
    to 0, their count, and N (`num_tokens`, else that count; at least 1) as a float32 tensor."""
    flat_labels = labels.reshape(-1)
    mask = flat_labels != ignore_index
    rows = mask.nonzero().squeeze(1)  # host sync: the number of real tokens sizes the loop
    safe_labels = torch.where(mask, flat_labels, 0)
    if bool(((safe_labels < 0) | (safe_labels >= vocab)).any()):
        raise ValueError(f"labels must be in [0, {vocab}) or equal ignore_index={ignore_index}")
    n_real = rows.numel()
    denom = n_real if num_tokens is None else num_tokens
    denom = torch.as_tensor(denom, dtype=torch.float32, device=labels.device).clamp_min(1.0)
    return rows, safe_labels, n_real, denom


# Rows per chunk: about this many float32 elements per (chunk x vocab) temporary. On a CPU,
# small enough to stay in cache; on a GPU, large enough that kernel launches do not dominate
# while the workspace (about ten such temporaries) stays a small fraction of a naive loss's.
CHUNK_ELEMENTS = {"cpu": 1 << 18, "cuda": 1 << 23}


def distillation_loss(
    student_logits: Tensor,
    teacher_logits: "Tensor | TopKLogits",
    labels: Tensor,
    *,
    temperature: float,
    alpha: float,
    divergence: str = "forward_kl",
    beta: float = 0.5,
    ignore_index: int = -100,
    num_tokens: int | Tensor | None = None,
    chunk_size: int | None = None,
) -> LossOutput:
    """Distillation loss of aligned logits `(..., V)` and labels `(...)`; see the module doc.

    `num_tokens` overrides N (the real tokens of the whole optimizer step); by default N is the
    number of real positions in `labels`. `chunk_size` is the rows per chunk (default: about
    CHUNK_ELEMENTS elements per chunk). The teacher logits never receive a gradient; they may
    be a TopKLogits (a cached teacher: forward_kl only)."""
    vocab = student_logits.shape[-1]
    if chunk_size is None:
        budget = CHUNK_ELEMENTS.get(student_logits.device.type, CHUNK_ELEMENTS["cuda"])
        chunk_size = max(1, budget // max(vocab, 1))
    _check(student_logits, teacher_logits, labels, temperature, alpha, divergence, beta, chunk_size)
    student = student_logits.reshape(-1, vocab)
    if isinstance(teacher_logits, TopKLogits):
        k = teacher_logits.values.shape[-1]
        teacher = TopKLogits(
            teacher_logits.values.detach().reshape(-1, k),
            teacher_logits.indices.reshape(-1, k),
            teacher_logits.tail_lse.detach().reshape(-1),
        )
    else:
        teacher = teacher_logits.detach().reshape(-1, vocab)
    rows, safe_labels, n_real, denom = real_rows(labels, vocab, ignore_index, num_tokens)
    total, soft, hard = _FusedDistillation.apply(
        student,
        teacher,
        safe_labels,
        rows,
        denom,
        float(temperature),
        float(alpha),
        divergence,
        float(beta),
        int(chunk_size),
    )
    return LossOutput(total, soft, hard, torch.tensor(n_real, device=student.device))
