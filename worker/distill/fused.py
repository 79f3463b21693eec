"""The distillation loss from final hidden states and output heads, chunk by chunk.

The same loss as `losses.distillation_loss` (its module doc has the formula; briefly
soft = T^2 * sum_i D_i / N, hard = sum_i CE_i / N, total = alpha * soft + (1 - alpha) * hard,
N the real tokens of the whole optimizer step), but its inputs are each model's final hidden
states h (tokens x H) and output head W (rows x H, optional bias b): logits = h W^T + b, taken
over the shared vocabulary (the first `vocab` rows of each head; the rest is padding).

For each chunk of real rows, in float32 whatever the model dtype:

    z_s = h_s W_s^T + b_s,  z_t = h_t W_t^T + b_t (no gradient)
    D_i, CE_i, g = dLoss/dz_s                    (losses._chunk_terms, the reference's own code)
    grad h_s[chunk] = g W_s,  grad W_s += g^T h_s[chunk],  grad b_s += sum_rows g

so nothing of size (tokens x vocabulary) outlives its chunk: the memory is a few
(chunk x vocabulary) temporaries and the head's gradient, which the optimizer needs anyway.
This is the technique of Liger-Kernel's fused-linear distillation losses, with two differences:
T^2 is included (Liger leaves it out) and N may be a whole step's token count.
"""

import math
from typing import NamedTuple

import torch
from torch import Tensor

from worker.distill.losses import LossOutput, _check, _chunk_terms, _chunks, real_rows

# Rows per chunk: about this many float32 elements per (chunk x vocab) logits tensor. Large
# enough that each chunk's three matmuls amortise reading the heads (49,152 x 576 floats on
# SmolLM2: 170 rows on a CPU; fewer rows measured slower there, and 5-row slices four times
# slower), while the ten-odd such temporaries of _chunk_terms stay a small fraction of a naive
# loss's (tokens x vocab) tensors (P9 in bench/llm_step.py measures both).
CHUNK_ELEMENTS = {"cpu": 1 << 23, "cuda": 1 << 26}


class _Args(NamedTuple):
    temperature: float
    alpha: float
    divergence: str
    beta: float
    chunk_size: int
    vocab: int


def _float32(x: Tensor | None) -> Tensor | None:
    # A float32 head is used as is (no copy); a bf16 one is upcast once per call.
    return None if x is None else x.float()


def _linear(h: Tensor, w: Tensor, b: Tensor | None, out: Tensor) -> Tensor:
    return torch.mm(h, w.T, out=out) if b is None else torch.addmm(b, h, w.T, out=out)


def _sweep(h_s, w_s, b_s, h_t, w_t, b_t, labels, rows, w_div, w_ce, args: _Args, want):
    """One pass over the chunks: the summed divergence and cross-entropy, and (for the inputs
    flagged in `want` = (h_s, w_s, b_s)) the float32 gradients of w_div * sum D + w_ce * sum CE
    (w_div and w_ce are numbers)."""
    vocab = args.vocab
    ws, wt = _float32(w_s[:vocab]), _float32(w_t[:vocab])
    bs = _float32(b_s[:vocab]) if b_s is not None else None
    bt = _float32(b_t[:vocab]) if b_t is not None else None
    want_h, want_w, want_b = want
    any_grad = want_h or want_w or want_b
    f32 = dict(dtype=torch.float32, device=h_s.device)
    grad_h = torch.zeros(h_s.shape, **f32) if want_h else None
    grad_w = torch.zeros(w_s.shape, **f32) if want_w else None  # padding rows stay 0
    grad_b = torch.zeros(b_s.shape, **f32) if want_b else None
    div_sum, ce_sum = torch.zeros((), **f32), torch.zeros((), **f32)
    # Each chunk's logits go into two buffers allocated once (fresh memory costs page faults).
    rows_max = min(args.chunk_size, rows.numel())
    s_buf, t_buf = torch.empty(rows_max, vocab, **f32), torch.empty(rows_max, vocab, **f32)
    for idx in _chunks(rows, args.chunk_size):
        n = idx.numel()
        hs = h_s.index_select(0, idx).float()
        s = _linear(hs, ws, bs, s_buf[:n])
        t = _linear(h_t.index_select(0, idx).float(), wt, bt, t_buf[:n])
        div, ce, g_div, g_ce = _chunk_terms(
            s,
            t,
            labels.index_select(0, idx),
            args.temperature,
            args.divergence,
            args.beta,
            any_grad,
        )
        div_sum += div.sum()
        ce_sum += ce.sum()
        if not any_grad:
            continue
        g = g_div.mul_(w_div).add_(g_ce, alpha=w_ce)  # dLoss/dz_s for this chunk, in place
        del g_ce
        if want_h:
            grad_h.index_copy_(0, idx, g @ ws)
        if want_w:
            grad_w[:vocab].addmm_(g.T, hs)  # accumulated straight into the head's gradient
        if want_b:
            grad_b[:vocab] += g.sum(0)
    return div_sum, ce_sum, grad_h, grad_w, grad_b


class _HiddenDistillation(torch.autograd.Function):
    """Forward computes the loss and, chunk by chunk, its gradients with respect to the
    student's hidden states, head weight and bias; backward scales them. A term
    differentiated on its own (soft or hard) is recomputed with its own weights."""

    @staticmethod
    def forward(ctx, h_s, w_s, b_s, h_t, w_t, b_t, labels, rows, denom, args: _Args):
        want = (ctx.needs_input_grad[0], ctx.needs_input_grad[1], ctx.needs_input_grad[2])
        t2, n = args.temperature**2, float(denom)
        w_div, w_ce = args.alpha * t2 / n, (1.0 - args.alpha) / n
        div_sum, ce_sum, *grads = _sweep(
            h_s, w_s, b_s, h_t, w_t, b_t, labels, rows, w_div, w_ce, args, want
        )
        ctx.save_for_backward(h_s, w_s, b_s, labels, rows, denom, *grads)
        # The teacher is kept as attributes, not saved for backward: its hidden states may come
        # from torch.inference_mode, and it never needs a gradient.
        ctx.teacher, ctx.args, ctx.want = (h_t, w_t, b_t), args, want
        ctx.set_materialize_grads(False)
        soft, hard = t2 * div_sum / denom, ce_sum / denom
        return args.alpha * soft + (1.0 - args.alpha) * hard, soft, hard

    @staticmethod
    def backward(ctx, g_total, g_soft, g_hard):
        h_s, w_s, b_s, labels, rows, denom, *grads = ctx.saved_tensors
        out = [None, None, None]
        if g_total is not None:
            # The usual case is loss.backward() with a gradient of exactly 1 (one host sync).
            one = bool(g_total == 1)
            out = [g if g is None or one else g * g_total for g in grads]
        if g_soft is not None or g_hard is not None:  # a term differentiated on its own
            args = ctx.args
            n = float(denom)
            w_div = (float(g_soft) if g_soft is not None else 0.0) * args.temperature**2 / n
            w_ce = (float(g_hard) if g_hard is not None else 0.0) / n
            h_t, w_t, b_t = ctx.teacher
            _, _, *extra = _sweep(
                h_s, w_s, b_s, h_t, w_t, b_t, labels, rows, w_div, w_ce, args, ctx.want
            )
            out = [
                e if o is None else (e if e is None else o + e)
                for o, e in zip(out, extra, strict=True)
            ]
        like = (h_s, w_s, b_s)
        out = [None if g is None else g.to(x.dtype) for g, x in zip(out, like, strict=True)]
        return (*out, None, None, None, None, None, None, None)


def hidden_distillation_loss(
    student_hidden: Tensor,
    student_head: Tensor,
    teacher_hidden: Tensor,
    teacher_head: Tensor,
    labels: Tensor,
    *,
    temperature: float,
    alpha: float,
    divergence: str = "forward_kl",
    beta: float = 0.5,
    student_bias: Tensor | None = None,
    teacher_bias: Tensor | None = None,
    vocab: int | None = None,
    ignore_index: int = -100,
    num_tokens: int | Tensor | None = None,
    chunk_size: int | None = None,
) -> LossOutput:
    """`distillation_loss` of the logits `hidden @ head.T + bias` sliced to `vocab` (default:
    the student head's rows), never holding them whole. Hidden states are `(..., H)` (each
    model its own H), labels `(...)`; the teacher's inputs never receive a gradient. Gradients
    flow to the student's hidden states, head and bias (a tied head is the embedding weight:
    autograd adds both paths)."""
    vocab = student_head.shape[0] if vocab is None else int(vocab)
    kind = student_hidden.device.type if student_hidden.device.type == "cpu" else "cuda"
    if chunk_size is None:
        chunk_size = max(1, CHUNK_ELEMENTS[kind] // max(vocab, 1))
    for who, h, w, b in (
        ("student", student_hidden, student_head, student_bias),
        ("teacher", teacher_hidden, teacher_head, teacher_bias),
    ):
        if w.dim() != 2 or h.shape[-1] != w.shape[1] or w.shape[0] < vocab:
            raise ValueError(
                f"the {who}'s hidden states {tuple(h.shape)} and head {tuple(w.shape)} must "
                f"share their width, with at least vocab={vocab} head rows"
            )
        if b is not None and tuple(b.shape) != (w.shape[0],):
            raise ValueError(f"the {who}'s bias {tuple(b.shape)} must have one entry per head row")
    if student_hidden.shape[:-1] != teacher_hidden.shape[:-1]:
        raise ValueError(
            f"student and teacher hidden states must cover the same positions, got "
            f"{tuple(student_hidden.shape)} and {tuple(teacher_hidden.shape)}"
        )
    # The reference's own argument checks, on shape-only stand-ins for the logits.
    meta = torch.empty((*student_hidden.shape[:-1], vocab), device="meta")
    _check(meta, meta, labels, temperature, alpha, divergence, beta, chunk_size)
    h_s = student_hidden.reshape(-1, student_hidden.shape[-1])
    h_t = teacher_hidden.detach().reshape(-1, teacher_hidden.shape[-1])
    rows, safe_labels, n_real, denom = real_rows(labels, vocab, ignore_index, num_tokens)
    args = _Args(
        float(temperature),
        float(alpha),
        divergence,
        float(beta),
        int(chunk_size),
        vocab,
    )
    total, soft, hard = _HiddenDistillation.apply(
        h_s,
        student_head,
        student_bias,
        h_t,
        teacher_head.detach(),
        None if teacher_bias is None else teacher_bias.detach(),
        safe_labels,
        rows,
        denom,
        args,
    )
    return LossOutput(total, soft, hard, torch.tensor(n_real, device=h_s.device))


def head_of(model: torch.nn.Module) -> tuple[Tensor, Tensor | None] | None:
    """(weight, bias) of a model's output head when it is a plain Linear, else None."""
    head = model.get_output_embeddings()
    if not isinstance(head, torch.nn.Linear):
        return None
    return head.weight, head.bias


def final_hidden(model: torch.nn.Module, input_ids: Tensor) -> Tensor:
    """The base model's last hidden state (for Llama and GPT-2 it includes the final norm):
    what the output head multiplies."""
    base = getattr(model, model.base_model_prefix)
    return base(input_ids=input_ids, use_cache=False).last_hidden_state


def hidden_path_problem(model: torch.nn.Module, probe_ids: Tensor) -> str | None:
    """Why a model's logits are not `final_hidden @ head.T + bias` (None when they are):
    soft-capped or scaled logits, a head that is not a Linear, or, checked on `probe_ids`,
    any other post-processing."""
    cfg = model.config
    for attr in ("final_logit_softcapping", "logit_scale", "output_multiplier_scale"):
        if getattr(cfg, attr, None) not in (None, 1, 1.0):
            return f"its config sets {attr}={getattr(cfg, attr)}"
    head = head_of(model)
    if head is None:
        return f"its output head is a {type(model.get_output_embeddings()).__name__}, not a Linear"
    if not isinstance(getattr(model, model.base_model_prefix, None), torch.nn.Module):
        return f"it has no base model under {model.base_model_prefix!r}"
    was_training = model.training
    model.eval()  # no dropout in the comparison
    try:
        with torch.no_grad():
            logits = model(input_ids=probe_ids, use_cache=False).logits.float()
            h = final_hidden(model, probe_ids).float()
            w, b = head
            mine = h @ w.float().T + (b.float() if b is not None else 0.0)
    finally:
        model.train(was_training)
    err = (logits - mine).abs().max().item()
    scale = max(logits.abs().max().item(), 1.0)
    if not math.isfinite(err) or err > 1e-2 * scale:
        return f"its logits differ from hidden states @ head by {err:.3g} (post-processed)"
    return None
