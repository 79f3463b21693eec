"""The distillation loss, to the letter of DESIGN.md ("The loss").

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
    if student_logits.shape != teacher_logits.shape:
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
    if not student_logits.is_floating_point() or not teacher_logits.is_floating_point():
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
    gradients of (sum of D) and (sum of CE) with respect to the student logits."""
    s, t = s.float(), t.float()
    log_q = torch.log_softmax(s / temperature, dim=-1)
    log_p = torch.log_softmax(t / temperature, dim=-1)
    q, p = log_q.exp(), log_p.exp()
    if divergence == "forward_kl":
        # where p == 0 the term is 0 (x log x -> 0); guards -inf padding logits.
        div = torch.where(p > 0, p * (log_p - log_q), 0.0).sum(-1)
        g_u = q - p if want_grad else None  # d D / d(z_s / T)
    elif divergence == "reverse_kl":
        elem = torch.where(q > 0, q * (log_q - log_p), 0.0)
        div = elem.sum(-1)
        g_u = elem - q * div.unsqueeze(-1) if want_grad else None
    else:  # jsd: the mixture is taken of probabilities, in log space for stability
        log_m = torch.logaddexp(log_p + math.log(beta), log_q + math.log1p(-beta))
        kl_pm = torch.where(p > 0, p * (log_p - log_m), 0.0).sum(-1)
        kl_qm_elem = torch.where(q > 0, q * (log_q - log_m), 0.0)
        div = beta * kl_pm + (1 - beta) * kl_qm_elem.sum(-1)
        # dD/dq_j = (1 - beta)(log q_j - log m_j); through the softmax: q * (g - <q, g>)
        g_u = (
            (1 - beta) * (kl_qm_elem - q * kl_qm_elem.sum(-1, keepdim=True)) if want_grad else None
        )
    log_q1 = torch.log_softmax(s, dim=-1)
    ce = -log_q1.gather(-1, y.unsqueeze(-1)).squeeze(-1)
    if not want_grad:
        return div, ce, None, None
    g_ce = log_q1.exp()
    g_ce.scatter_add_(-1, y.unsqueeze(-1), torch.full_like(ce, -1.0).unsqueeze(-1))
    return div, ce, g_u / temperature, g_ce


class _ChunkedDistillation(torch.autograd.Function):
    @staticmethod
    def forward(ctx, student, teacher, labels, rows, temperature, divergence, beta, chunk_size):
        div_sum = torch.zeros((), dtype=torch.float32, device=student.device)
        ce_sum = torch.zeros((), dtype=torch.float32, device=student.device)
        for start in range(0, rows.numel(), chunk_size):
            idx = rows[start : start + chunk_size]
            div, ce, _, _ = _chunk_terms(
                student.index_select(0, idx),
                teacher.index_select(0, idx),
                labels.index_select(0, idx),
                temperature,
                divergence,
                beta,
                want_grad=False,
            )
            div_sum += div.sum()
            ce_sum += ce.sum()
        ctx.save_for_backward(student, labels, rows)
        # The teacher is kept as an attribute, not saved for backward: its logits may come
        # from torch.inference_mode, and it never needs a gradient.
        ctx.teacher = teacher
        ctx.args = (temperature, divergence, beta, chunk_size)
        return div_sum, ce_sum

    @staticmethod
    def backward(ctx, grad_div, grad_ce):
        student, labels, rows = ctx.saved_tensors
        teacher = ctx.teacher
        temperature, divergence, beta, chunk_size = ctx.args
        grad = torch.zeros_like(student)
        for start in range(0, rows.numel(), chunk_size):
            idx = rows[start : start + chunk_size]
            _, _, g_div, g_ce = _chunk_terms(
                student.index_select(0, idx),
                teacher.index_select(0, idx),
                labels.index_select(0, idx),
                temperature,
                divergence,
                beta,
                want_grad=True,
            )
            g = g_div * grad_div + g_ce * grad_ce
            grad.index_copy_(0, idx, g.to(grad.dtype))
        return grad, None, None, None, None, None, None, None


def distillation_loss(
    student_logits: Tensor,
    teacher_logits: Tensor,
    labels: Tensor,
    *,
    temperature: float,
    alpha: float,
    divergence: str = "forward_kl",
    beta: float = 0.5,
    ignore_index: int = -100,
    num_tokens: int | Tensor | None = None,
    chunk_size: int = 1024,
) -> LossOutput:
    """Distillation loss of aligned logits `(..., V)` and labels `(...)`; see the module doc.

    `num_tokens` overrides N (the real tokens of the whole optimizer step); by default N is the
    number of real positions in `labels`. The teacher logits never receive a gradient."""
    _check(student_logits, teacher_logits, labels, temperature, alpha, divergence, beta, chunk_size)
    vocab = student_logits.shape[-1]
    student = student_logits.reshape(-1, vocab)
    teacher = teacher_logits.detach().reshape(-1, vocab)
    flat_labels = labels.reshape(-1)
    mask = flat_labels != ignore_index
    rows = mask.nonzero().squeeze(1)
    safe_labels = torch.where(mask, flat_labels, 0)
    if bool(((safe_labels < 0) | (safe_labels >= vocab)).any()):
        raise ValueError(f"labels must be in [0, {vocab}) or equal ignore_index={ignore_index}")
    n_real = rows.numel()
    denom = n_real if num_tokens is None else num_tokens
    denom = torch.as_tensor(denom, dtype=torch.float32, device=student.device).clamp_min(1.0)
    div_sum, ce_sum = _ChunkedDistillation.apply(
        student,
        teacher,
        safe_labels,
        rows,
        float(temperature),
        divergence,
        float(beta),
        int(chunk_size),
    )
    soft = temperature**2 * div_sum / denom
    hard = ce_sum / denom
    total = alpha * soft + (1.0 - alpha) * hard
    return LossOutput(total, soft, hard, torch.tensor(n_real, device=student.device))
