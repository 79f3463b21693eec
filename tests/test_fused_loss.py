"""The hidden-state (fused, chunked) distillation loss against the logits one: same values and
same gradients for hidden states, head weight and bias, for every divergence, with masks, any
chunk size, gradient accumulation, padded and tied heads."""

import pytest
import torch
import torch.nn.functional as F

from worker.distill.fused import hidden_distillation_loss
from worker.distill.losses import distillation_loss

IGNORE = -100
DIVS = ["forward_kl", "reverse_kl", "jsd"]
B, L, H_S, H_T, V = 2, 9, 8, 12, 37


def _gen(seed):
    return torch.Generator().manual_seed(seed)


def _case(seed=0, vocab=V, rows_s=None, rows_t=None, bias=True, masked=(0, 4, 13)):
    """Hidden states and heads whose logits have a realistic spread (a few units)."""
    g = _gen(seed)
    h_s = torch.randn(B, L, H_S, generator=g)
    h_t = torch.randn(B, L, H_T, generator=g)
    w_s = torch.randn(rows_s or vocab, H_S, generator=g) * 0.8
    w_t = torch.randn(rows_t or vocab, H_T, generator=g) * 0.8
    b_s = torch.randn(rows_s or vocab, generator=g) if bias else None
    b_t = torch.randn(rows_t or vocab, generator=g) if bias else None
    y = torch.randint(0, vocab, (B, L), generator=g)
    y.view(-1)[list(masked)] = IGNORE
    return h_s, w_s, b_s, h_t, w_t, b_t, y


def _leaf(x):
    return None if x is None else x.detach().clone().requires_grad_(True)


def _logits(h, w, b, vocab):
    z = h @ w.T + (b if b is not None else 0.0)
    return z[..., :vocab]


def _via_logits(case, vocab=V, dtype=torch.float32, **kw):
    """The reference path: full logits, then losses.distillation_loss (or a float64 plain
    formula when `dtype` is float64); returns (total, soft, hard) and the grads."""
    h_s, w_s, b_s, h_t, w_t, b_t, y = case
    h_s, w_s, b_s = (_leaf(x.to(dtype)) if x is not None else None for x in (h_s, w_s, b_s))
    s = _logits(h_s, w_s, b_s, vocab)
    with torch.no_grad():
        t = _logits(h_t.to(dtype), w_t.to(dtype), b_t.to(dtype) if b_t is not None else None, vocab)
    if dtype == torch.float64:
        out = _plain(s, t, y, **kw)
    else:
        out = distillation_loss(s, t, y, **kw)[:3]
    out[0].backward()
    return [float(x.detach()) for x in out], [
        None if x is None else x.grad for x in (h_s, w_s, b_s)
    ]


def _via_hidden(case, vocab=None, **kw):
    h_s, w_s, b_s, h_t, w_t, b_t, y = case
    h_s, w_s, b_s = _leaf(h_s), _leaf(w_s), _leaf(b_s)
    out = hidden_distillation_loss(
        h_s, w_s, h_t, w_t, y, student_bias=b_s, teacher_bias=b_t, vocab=vocab, **kw
    )
    out.loss.backward()
    return [float(x.detach()) for x in out[:3]], [
        None if x is None else x.grad for x in (h_s, w_s, b_s)
    ]


def _plain(s, t, y, *, temperature, alpha, divergence="forward_kl", beta=0.5, num_tokens=None):
    """The formula of losses.py's module doc, written plainly in the logits' dtype."""
    s, t, y = s.reshape(-1, s.shape[-1]), t.reshape(-1, t.shape[-1]), y.reshape(-1)
    mask = y != IGNORE
    log_q, log_p = F.log_softmax(s / temperature, -1), F.log_softmax(t / temperature, -1)
    q, p = log_q.exp(), log_p.exp()
    if divergence == "forward_kl":
        div = (p * (log_p - log_q)).sum(-1)
    elif divergence == "reverse_kl":
        div = (q * (log_q - log_p)).sum(-1)
    else:
        log_m = (beta * p + (1 - beta) * q).log()
        div = beta * (p * (log_p - log_m)).sum(-1) + (1 - beta) * (q * (log_q - log_m)).sum(-1)
    n = mask.sum().clamp_min(1) if num_tokens is None else num_tokens
    soft = temperature**2 * div[mask].sum() / n
    hard = F.cross_entropy(s[mask], y[mask], reduction="sum") / n
    return alpha * soft + (1 - alpha) * hard, soft, hard


def _close(got, want, tol=1e-5):
    values_got, grads_got = got
    values_want, grads_want = want
    assert values_got == pytest.approx(values_want, rel=tol, abs=tol)
    for g, w in zip(grads_got, grads_want, strict=True):
        if w is None:
            assert g is None
            continue
        assert g.dtype == w.dtype or w.dtype == torch.float64
        torch.testing.assert_close(g.double(), w.double(), rtol=tol, atol=tol)


@pytest.mark.parametrize("divergence", DIVS)
@pytest.mark.parametrize("temperature", [1.0, 4.0])
@pytest.mark.parametrize("chunk_size", [1, 3, 5, 1000])  # 15 real rows: 5 divides, 3 too, 1000 >
def test_same_values_and_gradients_as_the_logits_loss(divergence, temperature, chunk_size):
    case = _case(seed=1)
    kw = dict(temperature=temperature, alpha=0.6, divergence=divergence, beta=0.3)
    _close(_via_hidden(case, chunk_size=chunk_size, **kw), _via_logits(case, **kw))


@pytest.mark.parametrize("chunk_size", [4, 7])  # neither divides the 15 real rows
def test_chunk_sizes_that_do_not_divide_the_rows(chunk_size):
    case = _case(seed=2)
    kw = dict(temperature=2.0, alpha=0.5, divergence="jsd", beta=0.5)
    _close(_via_hidden(case, chunk_size=chunk_size, **kw), _via_logits(case, **kw))


@pytest.mark.parametrize("divergence", DIVS)
def test_matches_a_float64_plain_reference(divergence):
    case = _case(seed=3)
    kw = dict(temperature=4.0, alpha=0.7, divergence=divergence, beta=0.4)
    want = _via_logits(case, dtype=torch.float64, **kw)
    _close(_via_hidden(case, chunk_size=4, **kw), want, tol=2e-5)


def test_padded_heads_are_sliced_to_the_shared_vocabulary():
    # Heads with 5 and 9 padding rows beyond the 37 shared tokens (e.g. 151,936 vs 152,064).
    case = _case(seed=4, rows_s=V + 5, rows_t=V + 9)
    kw = dict(temperature=2.0, alpha=0.5, divergence="forward_kl")
    got = _via_hidden(case, vocab=V, chunk_size=3, **kw)
    _close(got, _via_logits(case, vocab=V, **kw))
    _, w_grad, b_grad = got[1]
    assert (w_grad[V:] == 0).all() and (b_grad[V:] == 0).all()


def test_no_bias_and_ignored_rows_get_no_gradient():
    case = _case(seed=5, bias=False, masked=(0, 1, 2, 9))
    kw = dict(temperature=1.0, alpha=0.5, divergence="reverse_kl")
    got = _via_hidden(case, chunk_size=2, **kw)
    _close(got, _via_logits(case, **kw))
    h_grad = got[1][0].reshape(-1, H_S)
    assert (h_grad[[0, 1, 2, 9]] == 0).all() and (h_grad[3] != 0).any()


@pytest.mark.parametrize("divergence", DIVS)
def test_gradient_accumulation_two_micro_batches_equal_one_batch(divergence):
    h_s, w_s, b_s, h_t, w_t, b_t, y = _case(seed=6)
    kw = dict(temperature=2.0, alpha=0.5, divergence=divergence, beta=0.5, chunk_size=3)
    n = int((y != IGNORE).sum())
    whole = _via_hidden((h_s, w_s, b_s, h_t, w_t, b_t, y), **kw)
    # Two micro-batches sharing N, their grads accumulated into the same leaves.
    hs, ws, bs = _leaf(h_s), _leaf(w_s), _leaf(b_s)
    total = 0.0
    for m in range(B):
        out = hidden_distillation_loss(
            hs[m], ws, h_t[m], w_t, y[m], student_bias=bs, teacher_bias=b_t, num_tokens=n, **kw
        )
        out.loss.backward()
        total += float(out.loss.detach())
    assert total == pytest.approx(whole[0][0], rel=1e-5)
    for g, w in zip((hs.grad, ws.grad, bs.grad), whole[1], strict=True):
        torch.testing.assert_close(g, w, rtol=1e-5, atol=1e-6)


def test_tied_head_gets_the_gradient_of_both_paths():
    # A tiny model whose head is its embedding weight: h = tanh(E[ids] A), logits = h E^T.
    g = _gen(7)
    emb = torch.randn(V, H_S, generator=g)
    a = torch.randn(H_S, H_S, generator=g) * 0.5
    ids = torch.randint(0, V, (B, L), generator=g)
    y = torch.randint(0, V, (B, L), generator=g)
    y[0, 0] = IGNORE
    h_t = torch.randn(B, L, H_T, generator=g)
    w_t = torch.randn(V, H_T, generator=g)
    kw = dict(temperature=2.0, alpha=0.5, divergence="forward_kl")

    def grads(fused):
        e = emb.clone().requires_grad_(True)
        h = torch.tanh(e[ids] @ a)
        if fused:
            out = hidden_distillation_loss(h, e, h_t, w_t, y, chunk_size=4, **kw)
        else:
            out = distillation_loss(h @ e.T, h_t @ w_t.T, y, **kw)
        out.loss.backward()
        return float(out.loss.detach()), e.grad

    (l1, g1), (l2, g2) = grads(True), grads(False)
    assert l1 == pytest.approx(l2, rel=1e-5)
    torch.testing.assert_close(g1, g2, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("term", [1, 2])  # soft or hard differentiated on its own
def test_a_term_differentiated_on_its_own(term):
    case = _case(seed=8)
    kw = dict(temperature=3.0, alpha=0.25, divergence="jsd", beta=0.5)
    h_s, w_s, b_s, h_t, w_t, b_t, y = case
    leaves = [_leaf(h_s), _leaf(w_s), _leaf(b_s)]
    out = hidden_distillation_loss(
        leaves[0], leaves[1], h_t, w_t, y, student_bias=leaves[2], teacher_bias=b_t, **kw
    )
    (out[term] * 2.0).backward()
    ref = [_leaf(h_s), _leaf(w_s), _leaf(b_s)]
    logits = _logits(*ref, V)
    r = distillation_loss(logits, _logits(h_t, w_t, b_t, V), y, **kw)
    (r[term] * 2.0).backward()
    for g, w in zip(leaves, ref, strict=True):
        torch.testing.assert_close(g.grad, w.grad, rtol=1e-5, atol=1e-6)


def test_bf16_inputs_keep_a_float32_loss_and_bf16_gradients():
    case = _case(seed=9)
    kw = dict(temperature=2.0, alpha=0.5, divergence="forward_kl")
    low = tuple(x.bfloat16() if x is not None and x.is_floating_point() else x for x in case)
    values, grads = _via_hidden(low, **kw)
    want, _ = _via_logits(
        tuple(x.float() if x is not None and x.is_floating_point() else x for x in low), **kw
    )
    assert values == pytest.approx(want, rel=1e-4)  # same bf16 numbers, float32 math
    assert all(g.dtype == torch.bfloat16 and torch.isfinite(g.float()).all() for g in grads)


def test_teacher_from_inference_mode_and_all_masked_batch():
    h_s, w_s, b_s, h_t, w_t, b_t, y = _case(seed=10)
    with torch.inference_mode():
        h_t_inf = h_t * 1.0
    hs = _leaf(h_s)
    out = hidden_distillation_loss(hs, w_s, h_t_inf, w_t, y, temperature=2.0, alpha=0.5)
    out.loss.backward()
    assert torch.isfinite(hs.grad).all()
    empty = torch.full_like(y, IGNORE)
    out = hidden_distillation_loss(_leaf(h_s), w_s, h_t, w_t, empty, temperature=2.0, alpha=0.5)
    assert float(out.loss.detach()) == 0.0 and int(out.num_tokens) == 0


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(vocab=V + 1), "head rows"),
        (dict(divergence="kl"), "divergence"),
        (dict(temperature=0.0), "temperature"),
        (dict(chunk_size=0), "chunk_size"),
    ],
)
def test_bad_arguments_raise(kwargs, match):
    h_s, w_s, _, h_t, w_t, _, y = _case(seed=11)
    args = dict(temperature=2.0, alpha=0.5) | kwargs
    with pytest.raises(ValueError, match=match):
        hidden_distillation_loss(h_s, w_s, h_t, w_t, y, **args)
