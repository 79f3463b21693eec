"""Unit tests of the distillation loss (worker/distill/losses.py) against the conventions of
docs/losses.md ("Conventions"): known answers on tiny tensors, and equivalences with a plain
autograd reference written here."""

import math

import pytest
import torch
import torch.nn.functional as F

from worker.distill.losses import distillation_loss

DIVS = ("forward_kl", "reverse_kl", "jsd")
IGNORE = -100


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _logits(seed: int, *shape: int, scale: float = 2.0) -> torch.Tensor:
    return torch.randn(*shape, generator=_gen(seed)) * scale


def _labels(seed: int, *shape: int, vocab: int, masked: list[int] | None = None) -> torch.Tensor:
    y = torch.randint(0, vocab, shape, generator=_gen(seed))
    flat = y.view(-1)
    for i in masked or []:
        flat[i] = IGNORE
    return y


def reference(
    s,
    t,
    y,
    *,
    temperature,
    alpha,
    divergence="forward_kl",
    beta=0.5,
    ignore_index=IGNORE,
    num_tokens=None,
):
    """The loss of docs/losses.md written plainly (float32, autograd, no chunks)."""
    vocab = s.shape[-1]
    s = s.float().reshape(-1, vocab)
    t = t.detach().float().reshape(-1, vocab)
    y = y.reshape(-1)
    mask = y != ignore_index
    log_q = F.log_softmax(s / temperature, dim=-1)
    log_p = F.log_softmax(t / temperature, dim=-1)
    q, p = log_q.exp(), log_p.exp()
    if divergence == "forward_kl":
        div = (p * (log_p - log_q)).sum(-1)
    elif divergence == "reverse_kl":
        div = (q * (log_q - log_p)).sum(-1)
    else:
        log_m = (beta * p + (1 - beta) * q).log()
        div = beta * (p * (log_p - log_m)).sum(-1) + (1 - beta) * (q * (log_q - log_m)).sum(-1)
    n = mask.sum() if num_tokens is None else torch.tensor(num_tokens)
    n = n.float().clamp_min(1.0)
    soft = temperature**2 * div[mask].sum() / n
    hard = F.cross_entropy(s[mask], y[mask], reduction="sum") / n
    return alpha * soft + (1 - alpha) * hard, soft, hard


def _loss_and_grad(s, t, y, **kw):
    s = s.detach().clone().requires_grad_(True)
    out = distillation_loss(s, t, y, **kw)
    out.loss.backward()
    return out, s.grad


# 1. non-negativity, zero at equality, shift invariance ------------------------------------


@pytest.mark.parametrize("divergence", DIVS)
@pytest.mark.parametrize("temperature", [0.5, 1.0, 3.0])
def test_divergence_nonnegative_per_row(divergence, temperature):
    s, t = _logits(1, 12, 7), _logits(2, 12, 7)
    y = _labels(3, 12, vocab=7)
    for i in range(12):
        out = distillation_loss(
            s[i : i + 1],
            t[i : i + 1],
            y[i : i + 1],
            temperature=temperature,
            alpha=1.0,
            divergence=divergence,
        )
        assert out.soft.item() >= 0.0
        assert out.soft.item() > 1e-6  # random logits: genuinely different distributions


@pytest.mark.parametrize("divergence", DIVS)
@pytest.mark.parametrize("temperature", [0.5, 1.0, 4.0])
def test_divergence_zero_for_identical_and_shifted_teacher(divergence, temperature):
    s = _logits(4, 6, 9)
    y = _labels(5, 6, vocab=9, masked=[2])
    out = distillation_loss(
        s, s.clone(), y, temperature=temperature, alpha=1.0, divergence=divergence
    )
    assert out.soft.item() == pytest.approx(0.0, abs=1e-6)
    shift = torch.tensor([0.0, 3.0, -2.5, 10.0, -7.0, 1.25]).unsqueeze(-1)  # per row
    out = distillation_loss(
        s, s + shift, y, temperature=temperature, alpha=1.0, divergence=divergence
    )
    assert out.soft.item() == pytest.approx(0.0, abs=1e-6)


# 2. hand-computed KL values -----------------------------------------------------------------

# V = 2: student [0, 0] -> q = [1/2, 1/2]; teacher [ln 3, 0] -> p = [3/4, 1/4] (at T = 1).
KL_P_Q_2 = 0.75 * math.log(1.5) + 0.25 * math.log(0.5)  # 0.130812...
KL_Q_P_2 = 0.5 * math.log(4.0 / 3.0)  # 0.143841...
# V = 3: student [0, 0, 0] -> q = 1/3 each; teacher [ln 2, 0, 0] -> p = [1/2, 1/4, 1/4].
KL_P_Q_3 = 0.5 * math.log(1.5) + 0.5 * math.log(0.75)  # 0.058892...
KL_Q_P_3 = (math.log(2.0 / 3.0) + 2 * math.log(4.0 / 3.0)) / 3  # 0.056633...


def test_hand_computed_constants():
    assert KL_P_Q_2 == pytest.approx(0.1308120, abs=1e-7)
    assert KL_Q_P_2 == pytest.approx(0.1438410, abs=1e-7)
    assert KL_P_Q_3 == pytest.approx(0.0588915, abs=1e-7)
    assert KL_Q_P_3 == pytest.approx(0.0566330, abs=1e-7)


@pytest.mark.parametrize(
    "divergence, expected",
    [("forward_kl", KL_P_Q_2), ("reverse_kl", KL_Q_P_2)],
)
def test_kl_hand_values_vocab2(divergence, expected):
    y = torch.tensor([0])
    # T = 1
    out = distillation_loss(
        torch.tensor([[0.0, 0.0]]),
        torch.tensor([[math.log(3.0), 0.0]]),
        y,
        temperature=1.0,
        alpha=1.0,
        divergence=divergence,
    )
    assert out.soft.item() == pytest.approx(expected, abs=1e-6)
    # T = 2: teacher [ln 9, 0] / 2 = [ln 3, 0]: the same p_T, and soft carries the factor T^2.
    out = distillation_loss(
        torch.tensor([[0.0, 0.0]]),
        torch.tensor([[math.log(9.0), 0.0]]),
        y,
        temperature=2.0,
        alpha=1.0,
        divergence=divergence,
    )
    assert out.soft.item() == pytest.approx(4.0 * expected, abs=1e-6)
    # the hard term is at T = 1 whatever T: -log(1/2)
    assert out.hard.item() == pytest.approx(math.log(2.0), abs=1e-6)


@pytest.mark.parametrize(
    "divergence, expected",
    [("forward_kl", KL_P_Q_3), ("reverse_kl", KL_Q_P_3)],
)
def test_kl_hand_values_vocab3_mean_over_real_rows(divergence, expected):
    # row 0: the case above; row 1: identical distributions (D = 0); row 2: masked, wildly off.
    s = torch.tensor([[0.0, 0.0, 0.0], [1.0, 2.0, 3.0], [50.0, -50.0, 0.0]])
    t1 = torch.tensor([[math.log(2.0), 0.0, 0.0], [1.0, 2.0, 3.0], [-50.0, 50.0, 0.0]])
    y = torch.tensor([1, 2, IGNORE])
    out = distillation_loss(s, t1, y, temperature=1.0, alpha=1.0, divergence=divergence)
    assert out.soft.item() == pytest.approx(expected / 2, abs=1e-6)
    assert int(out.num_tokens) == 2
    t2 = t1.clone()
    t2[0] = torch.tensor([2 * math.log(2.0), 0.0, 0.0])  # T = 2 gives the same p_T on row 0
    t2[1] = 2 * s[1]
    s2 = s.clone()
    s2[1] = 2 * s[1]
    out = distillation_loss(s2, t2, y, temperature=2.0, alpha=1.0, divergence=divergence)
    assert out.soft.item() == pytest.approx(4.0 * expected / 2, abs=1e-6)
    # hard: row 0 -log(1/3); row 1 -log softmax([2, 4, 6])[2]
    ce1 = -(6.0 - math.log(math.exp(2.0) + math.exp(4.0) + math.exp(6.0)))
    assert out.hard.item() == pytest.approx((math.log(3.0) + ce1) / 2, abs=1e-6)


# 3. Jensen-Shannon ---------------------------------------------------------------------------


def _jsd_math(zs, zt, beta, temperature):
    """JSD of one row with Python floats only."""

    def softmax(z):
        m = max(z)
        e = [math.exp((v - m) / temperature) for v in z]
        return [v / sum(e) for v in e]

    q, p = softmax(zs), softmax(zt)
    m = [beta * a + (1 - beta) * b for a, b in zip(p, q, strict=True)]
    kl_pm = sum(a * math.log(a / c) for a, c in zip(p, m, strict=True))
    kl_qm = sum(b * math.log(b / c) for b, c in zip(q, m, strict=True))
    return beta * kl_pm + (1 - beta) * kl_qm


@pytest.mark.parametrize("beta", [0.1, 0.5, 0.9])
@pytest.mark.parametrize("temperature", [1.0, 2.0])
def test_jsd_matches_definition(beta, temperature):
    zs = [[0.3, -1.2, 2.0, 0.0], [1.0, 1.0, -3.0, 0.5]]
    zt = [[-0.7, 0.4, 1.1, 2.2], [0.0, 2.5, -1.0, -0.5]]
    expected = sum(_jsd_math(a, b, beta, temperature) for a, b in zip(zs, zt, strict=True)) / 2
    out = distillation_loss(
        torch.tensor(zs),
        torch.tensor(zt),
        torch.tensor([0, 3]),
        temperature=temperature,
        alpha=1.0,
        divergence="jsd",
        beta=beta,
    )
    assert out.soft.item() == pytest.approx(temperature**2 * expected, abs=1e-6)


def test_jsd_hand_value():
    # q = [1/2, 1/2], p = [1, 0] (up to 1e-22): M = [3/4, 1/4];
    # JSD = 1/2 ln(4/3) + 1/2 (1/2 ln(2/3) + 1/2 ln 2) = 1/2 ln(4/3) + 1/4 ln(4/3) = 3/4 ln(4/3)
    out = distillation_loss(
        torch.tensor([[0.0, 0.0]]),
        torch.tensor([[50.0, 0.0]]),
        torch.tensor([0]),
        temperature=1.0,
        alpha=1.0,
        divergence="jsd",
    )
    assert out.soft.item() == pytest.approx(0.75 * math.log(4.0 / 3.0), abs=1e-6)


@pytest.mark.parametrize("temperature", [1.0, 3.0])
def test_jsd_symmetric_at_half_and_bounded(temperature):
    s, t = _logits(6, 10, 8, scale=4.0), _logits(7, 10, 8, scale=4.0)
    y = _labels(8, 10, vocab=8, masked=[0, 5])
    a = distillation_loss(s, t, y, temperature=temperature, alpha=1.0, divergence="jsd")
    b = distillation_loss(t, s, y, temperature=temperature, alpha=1.0, divergence="jsd")
    assert a.soft.item() == pytest.approx(b.soft.item(), abs=1e-6)
    assert 0.0 < a.soft.item() <= math.log(2.0) * temperature**2
    # beta != 1/2 is not symmetric in general
    a = distillation_loss(s, t, y, temperature=temperature, alpha=1.0, divergence="jsd", beta=0.2)
    b = distillation_loss(t, s, y, temperature=temperature, alpha=1.0, divergence="jsd", beta=0.2)
    assert abs(a.soft.item() - b.soft.item()) > 1e-4


def test_jsd_near_disjoint_approaches_log2():
    # p and q concentrated on different tokens: JSD_(1/2) -> ln 2.
    s = torch.tensor([[40.0, 0.0, 0.0]])
    t = torch.tensor([[0.0, 40.0, 0.0]])
    out = distillation_loss(s, t, torch.tensor([0]), temperature=1.0, alpha=1.0, divergence="jsd")
    assert out.soft.item() == pytest.approx(math.log(2.0), abs=1e-5)
    assert out.soft.item() <= math.log(2.0) + 1e-6


# 4. gradient of the soft term ---------------------------------------------------------------


@pytest.mark.parametrize("temperature", [1.0, 2.0, 5.0])
def test_soft_gradient_forward_kl(temperature):
    s, t = _logits(9, 8, 6), _logits(10, 8, 6)
    y = _labels(11, 8, vocab=6, masked=[1, 4, 7])
    out, grad = _loss_and_grad(s, t, y, temperature=temperature, alpha=1.0)
    assert out.loss.item() == pytest.approx(out.soft.item(), abs=1e-7)
    n = 5
    q = torch.softmax(s / temperature, -1)
    p = torch.softmax(t / temperature, -1)
    expected = temperature * (q - p) / n
    mask = (y != IGNORE).unsqueeze(-1)
    expected = torch.where(mask, expected, 0.0)
    torch.testing.assert_close(grad, expected, atol=1e-6, rtol=1e-5)
    assert torch.all(grad[~mask.squeeze(-1)] == 0)
    assert grad[mask.squeeze(-1)].abs().sum() > 0


# 5. the hard term ---------------------------------------------------------------------------


def test_hard_term_is_cross_entropy_and_its_gradient():
    s, t = _logits(12, 9, 5), _logits(13, 9, 5)
    y = _labels(14, 9, vocab=5, masked=[0, 3])
    out, grad = _loss_and_grad(s, t, y, temperature=3.0, alpha=0.0)
    ce = F.cross_entropy(s, y, ignore_index=IGNORE)
    assert out.hard.item() == pytest.approx(ce.item(), abs=1e-6)
    assert out.loss.item() == pytest.approx(ce.item(), abs=1e-6)
    mask = y != IGNORE
    onehot = F.one_hot(torch.where(mask, y, 0), 5).float()
    expected = torch.where(mask.unsqueeze(-1), (torch.softmax(s, -1) - onehot) / 7, 0.0)
    torch.testing.assert_close(grad, expected, atol=1e-6, rtol=1e-5)


def test_hard_term_other_ignore_index():
    s, t = _logits(15, 6, 5), _logits(16, 6, 5)
    y = torch.tensor([0, 1, 2, 3, 4, 1])
    out = distillation_loss(s, t, y, temperature=1.0, alpha=0.0, ignore_index=1)
    assert out.hard.item() == pytest.approx(F.cross_entropy(s, y, ignore_index=1).item(), abs=1e-6)
    assert int(out.num_tokens) == 4


# 6. masked positions ------------------------------------------------------------------------


@pytest.mark.parametrize("divergence", DIVS)
def test_masked_position_has_no_effect(divergence):
    s, t = _logits(17, 7, 6), _logits(18, 7, 6)
    y = _labels(19, 7, vocab=6, masked=[2, 6])
    kw = dict(temperature=2.0, alpha=0.4, divergence=divergence)
    a, ga = _loss_and_grad(s, t, y, **kw)
    s2, t2 = s.clone(), t.clone()
    s2[2] = torch.tensor([100.0, -100.0, 3.0, 0.0, 7.0, -1e4])
    t2[6] = torch.tensor([-1e4, 55.0, 0.0, -3.0, 2.0, 9.0])
    s2[6] = -s[6] * 10
    b, gb = _loss_and_grad(s2, t2, y, **kw)
    for x, z in zip(a, b, strict=True):
        assert torch.equal(x, z) or x.item() == pytest.approx(z.item(), abs=1e-7)
    assert torch.all(gb[2] == 0) and torch.all(gb[6] == 0)
    torch.testing.assert_close(ga, gb, atol=1e-7, rtol=0)


# 7. T^2 keeps the gradient scale ------------------------------------------------------------


@pytest.mark.parametrize("divergence", DIVS)
def test_t_squared_keeps_gradient_scale(divergence):
    s, t = _logits(20, 16, 10, scale=1.0), _logits(21, 16, 10, scale=1.0)
    y = _labels(22, 16, vocab=10)
    norms = {}
    for temperature in (2.0, 8.0):
        _, g = _loss_and_grad(s, t, y, temperature=temperature, alpha=1.0, divergence=divergence)
        norms[temperature] = g.norm().item()
    ratio = norms[8.0] / norms[2.0]
    assert 0.25 <= ratio <= 4.0
    # Without the T^2 factor the gradient at T = 8 would be 16x smaller relative to T = 2.
    ratio_without = (norms[8.0] / 8.0**2) / (norms[2.0] / 2.0**2)
    assert ratio_without < 1.0 / 8.0


def test_forward_kl_gradient_large_t_limit():
    # For T -> inf, T (q_T - p_T) -> (centred z_s - centred z_t) / V: independent of T.
    s, t = _logits(23, 4, 5, scale=1.0), _logits(24, 4, 5, scale=1.0)
    y = _labels(25, 4, vocab=5)
    _, g = _loss_and_grad(s, t, y, temperature=200.0, alpha=1.0)
    centred = (s - s.mean(-1, keepdim=True)) - (t - t.mean(-1, keepdim=True))
    torch.testing.assert_close(g, centred / (5 * 4), atol=2e-4, rtol=2e-2)


# 8. chunked == unchunked == plain reference -------------------------------------------------


@pytest.mark.parametrize("divergence", DIVS)
@pytest.mark.parametrize("temperature, alpha", [(1.0, 0.5), (2.5, 0.8), (0.7, 1.0)])
def test_chunked_equals_plain_reference(divergence, temperature, alpha):
    s, t = _logits(26, 2, 5, 11), _logits(27, 2, 5, 11)
    y = _labels(28, 2, 5, vocab=11, masked=[0, 4, 7])
    kw = dict(temperature=temperature, alpha=alpha, divergence=divergence)
    base, gbase = _loss_and_grad(s, t, y, chunk_size=10_000, **kw)

    sr = s.clone().requires_grad_(True)
    ref = reference(sr, t, y, **kw)
    ref[0].backward()
    for got, want in zip(base[:3], ref, strict=True):
        assert got.item() == pytest.approx(want.item(), abs=1e-5)
    torch.testing.assert_close(gbase, sr.grad, atol=1e-5, rtol=1e-5)

    for chunk_size in (1, 3, 7):
        out, g = _loss_and_grad(s, t, y, chunk_size=chunk_size, **kw)
        for got, want in zip(out[:3], base[:3], strict=True):
            assert got.item() == pytest.approx(want.item(), abs=1e-5)
        assert int(out.num_tokens) == int(base.num_tokens) == 7
        torch.testing.assert_close(g, gbase, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("divergence", ["reverse_kl", "jsd"])
@pytest.mark.parametrize("beta", [0.3, 0.5])
def test_soft_gradient_matches_autograd_reference(divergence, beta):
    s, t = _logits(29, 6, 7), _logits(30, 6, 7)
    y = _labels(31, 6, vocab=7, masked=[3])
    kw = dict(temperature=1.5, alpha=1.0, divergence=divergence, beta=beta)
    _, g = _loss_and_grad(s, t, y, **kw)
    sr = s.clone().requires_grad_(True)
    reference(sr, t, y, **kw)[1].backward()
    torch.testing.assert_close(g, sr.grad, atol=1e-6, rtol=1e-5)


# 9. micro-batch split invariance ------------------------------------------------------------


@pytest.mark.parametrize("divergence", DIVS)
def test_micro_batch_split_invariance(divergence):
    b, seq, vocab = 4, 5, 6
    s, t = _logits(32, b, seq, vocab), _logits(33, b, seq, vocab)
    y = _labels(34, b, seq, vocab=vocab)
    # uneven padding: 5, 1, 3, 2 real tokens
    y[1, 1:] = IGNORE
    y[2, 3:] = IGNORE
    y[3, :3] = IGNORE
    total_tokens = int((y != IGNORE).sum())
    assert total_tokens == 11
    kw = dict(temperature=2.0, alpha=0.6, divergence=divergence, chunk_size=4)

    full, gfull = _loss_and_grad(s, t, y, **kw)

    sm = s.clone().requires_grad_(True)
    parts, naive = [], []
    for sl in (slice(0, 2), slice(2, 4)):
        parts.append(distillation_loss(sm[sl], t[sl], y[sl], num_tokens=total_tokens, **kw))
        naive.append(distillation_loss(s[sl], t[sl], y[sl], **kw))
    summed = parts[0].loss + parts[1].loss
    summed.backward()

    assert summed.item() == pytest.approx(full.loss.item(), abs=1e-6)
    for field in ("soft", "hard"):
        both = getattr(parts[0], field) + getattr(parts[1], field)
        assert both.item() == pytest.approx(getattr(full, field).item(), abs=1e-6)
    assert int(parts[0].num_tokens) + int(parts[1].num_tokens) == total_tokens
    torch.testing.assert_close(sm.grad, gfull, atol=1e-6, rtol=0)
    # num_tokens as a tensor works the same
    again = distillation_loss(s[:2], t[:2], y[:2], num_tokens=torch.tensor(total_tokens), **kw)
    assert again.loss.item() == pytest.approx(parts[0].loss.item(), abs=1e-7)

    # teeth: averaging the per-micro-batch means gives another number
    naive_mean = (naive[0].loss + naive[1].loss) / 2
    assert abs(naive_mean.item() - full.loss.item()) > 1e-3


# 10. bf16 -----------------------------------------------------------------------------------


@pytest.mark.parametrize("divergence", DIVS)
def test_bf16_inputs(divergence):
    s, t = _logits(35, 10, 12), _logits(36, 10, 12)
    y = _labels(37, 10, vocab=12, masked=[4])
    kw = dict(temperature=2.0, alpha=0.5, divergence=divergence)
    s16, t16 = s.bfloat16(), t.bfloat16()
    out, g = _loss_and_grad(s16, t16, y, **kw)
    for v in (out.loss, out.soft, out.hard):
        assert v.dtype == torch.float32
        assert torch.isfinite(v)
    assert g.dtype == torch.bfloat16
    assert torch.isfinite(g).all()
    # close to float32 on the original logits ...
    f32, g32 = _loss_and_grad(s, t, y, **kw)
    for a, b in zip(out[:3], f32[:3], strict=True):
        assert a.item() == pytest.approx(b.item(), rel=1e-2)
    torch.testing.assert_close(g.float(), g32, atol=2e-3, rtol=5e-2)
    # ... and computed in float32: equal to float32 on the bf16-rounded logits
    up, gup = _loss_and_grad(s16.float(), t16.float(), y, **kw)
    for a, b in zip(out[:3], up[:3], strict=True):
        assert a.item() == pytest.approx(b.item(), abs=1e-6)
    torch.testing.assert_close(g, gup.bfloat16(), atol=0, rtol=0)


def test_float64_inputs_computed_in_float32():
    s, t = _logits(38, 3, 4).double(), _logits(39, 3, 4).double()
    y = torch.tensor([0, 1, 2])
    out, g = _loss_and_grad(s, t, y, temperature=1.0, alpha=0.5)
    assert out.loss.dtype == torch.float32
    assert g.dtype == torch.float64


# 11. padding logits and all-masked batches --------------------------------------------------


@pytest.mark.parametrize("divergence", DIVS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_padding_logits_are_finite(divergence, dtype):
    s, t = _logits(40, 6, 10), _logits(41, 6, 10)
    s[:, 7:] = -1e4
    t[:, 7:] = -1e4
    y = _labels(42, 6, vocab=7, masked=[5])
    kw = dict(temperature=2.0, alpha=0.5, divergence=divergence)
    out, g = _loss_and_grad(s.to(dtype), t.to(dtype), y, **kw)
    for v in out[:3]:
        assert torch.isfinite(v)
    assert torch.isfinite(g).all()
    assert torch.all(g[:, 7:] == 0)
    # the padded columns carry no probability: same as the sliced vocabulary
    sliced, gs = _loss_and_grad(s[:, :7].to(dtype), t[:, :7].to(dtype), y, **kw)
    for a, b in zip(out[:3], sliced[:3], strict=True):
        assert a.item() == pytest.approx(b.item(), abs=1e-5)
    torch.testing.assert_close(g[:, :7].float(), gs.float(), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("divergence", DIVS)
def test_padding_only_in_teacher_is_finite_for_forward_and_jsd(divergence):
    # A teacher at -1e4 on columns the student still gives mass to: large but finite.
    s, t = _logits(43, 4, 6), _logits(44, 4, 6)
    t[:, 4:] = -1e4
    y = _labels(45, 4, vocab=4)
    out, g = _loss_and_grad(s, t, y, temperature=1.0, alpha=0.5, divergence=divergence)
    assert torch.isfinite(out.loss) and torch.isfinite(g).all()


@pytest.mark.parametrize("divergence", DIVS)
def test_all_masked_batch_gives_finite_zeros(divergence):
    s, t = _logits(46, 2, 3, 5), _logits(47, 2, 3, 5)
    y = torch.full((2, 3), IGNORE)
    out, g = _loss_and_grad(s, t, y, temperature=2.0, alpha=0.5, divergence=divergence)
    for v in out[:3]:
        assert torch.isfinite(v)
        assert v.item() == 0.0
    assert int(out.num_tokens) == 0
    assert torch.all(g == 0)
    # also with an explicit step token count (a micro-batch that is all padding)
    out = distillation_loss(
        s, t, y, temperature=2.0, alpha=0.5, divergence=divergence, num_tokens=7
    )
    assert out.loss.item() == 0.0


# 12. argument errors ------------------------------------------------------------------------


def _ok():
    return _logits(48, 3, 4), _logits(49, 3, 4), torch.tensor([0, 1, IGNORE])


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(temperature=0.0), "temperature"),
        (dict(temperature=-1.0), "temperature"),
        (dict(temperature=float("nan")), "temperature"),
        (dict(temperature=float("inf")), "temperature"),
        (dict(alpha=-0.1), "alpha"),
        (dict(alpha=1.5), "alpha"),
        (dict(alpha=float("nan")), "alpha"),
        (dict(divergence="kl"), "divergence"),
        (dict(divergence="jsd", beta=0.0), "beta"),
        (dict(divergence="jsd", beta=1.0), "beta"),
        (dict(divergence="jsd", beta=-0.5), "beta"),
        (dict(chunk_size=0), "chunk_size"),
    ],
)
def test_bad_arguments_raise(kwargs, match):
    s, t, y = _ok()
    kw = dict(temperature=1.0, alpha=0.5) | kwargs
    with pytest.raises(ValueError, match=match):
        distillation_loss(s, t, y, **kw)


def test_vocabulary_mismatch_raises():
    s, t, y = _ok()
    with pytest.raises(ValueError, match="vocabulary"):
        distillation_loss(s, torch.zeros(3, 5), y, temperature=1.0, alpha=0.5)


@pytest.mark.parametrize("labels", [torch.tensor([0, 1]), torch.tensor([[0, 1, 2]])])
def test_labels_shape_mismatch_raises(labels):
    s, t, _ = _ok()
    with pytest.raises(ValueError, match="labels"):
        distillation_loss(s, t, labels, temperature=1.0, alpha=0.5)


@pytest.mark.parametrize("bad", [4, -1, -99, 1000])
def test_label_out_of_range_raises(bad):
    s, t, _ = _ok()
    with pytest.raises(ValueError, match="labels"):
        distillation_loss(s, t, torch.tensor([0, bad, IGNORE]), temperature=1.0, alpha=0.5)


# 13. alpha weighting ------------------------------------------------------------------------


@pytest.mark.parametrize("divergence", DIVS)
@pytest.mark.parametrize("alpha", [0.0, 0.1, 0.5, 0.9, 1.0])
def test_alpha_weighting(divergence, alpha):
    s, t = _logits(50, 5, 6), _logits(51, 5, 6)
    y = _labels(52, 5, vocab=6, masked=[1])
    out = distillation_loss(s, t, y, temperature=2.0, alpha=alpha, divergence=divergence)
    expected = alpha * out.soft + (1 - alpha) * out.hard
    assert out.loss.item() == pytest.approx(expected.item(), abs=1e-6)
    # soft and hard do not depend on alpha
    other = distillation_loss(s, t, y, temperature=2.0, alpha=0.3, divergence=divergence)
    assert out.soft.item() == pytest.approx(other.soft.item(), abs=1e-7)
    assert out.hard.item() == pytest.approx(other.hard.item(), abs=1e-7)


# 14. the teacher gets no gradient -----------------------------------------------------------


@pytest.mark.parametrize("divergence", DIVS)
def test_teacher_gets_no_gradient(divergence):
    s = _logits(53, 4, 5).requires_grad_(True)
    t = _logits(54, 4, 5).requires_grad_(True)
    y = _labels(55, 4, vocab=5)
    out = distillation_loss(s, t, y, temperature=2.0, alpha=0.5, divergence=divergence)
    out.loss.backward()
    assert t.grad is None
    assert s.grad is not None and torch.isfinite(s.grad).all()


@pytest.mark.parametrize("divergence", DIVS)
def test_teacher_from_inference_mode(divergence):
    s = _logits(56, 2, 3, 5)
    y = _labels(57, 2, 3, vocab=5, masked=[1])
    layer = torch.nn.Linear(5, 5)
    with torch.inference_mode():
        t = layer(_logits(58, 2, 3, 5))
    assert t.is_inference()
    kw = dict(temperature=2.0, alpha=0.7, divergence=divergence, chunk_size=2)
    out, g = _loss_and_grad(s, t, y, **kw)
    ref, gref = _loss_and_grad(s, t.clone(), y, **kw)
    assert out.loss.item() == pytest.approx(ref.loss.item(), abs=1e-7)
    torch.testing.assert_close(g, gref, atol=0, rtol=0)


# 15. shapes ---------------------------------------------------------------------------------


@pytest.mark.parametrize("divergence", DIVS)
def test_3d_and_2d_shapes_agree(divergence):
    b, seq, vocab = 2, 4, 7
    s, t = _logits(59, b, seq, vocab), _logits(60, b, seq, vocab)
    y = _labels(61, b, seq, vocab=vocab, masked=[0, 6])
    kw = dict(temperature=1.5, alpha=0.5, divergence=divergence, chunk_size=3)
    out3, g3 = _loss_and_grad(s, t, y, **kw)
    out2, g2 = _loss_and_grad(s.reshape(-1, vocab), t.reshape(-1, vocab), y.reshape(-1), **kw)
    for a, c in zip(out3, out2, strict=True):
        assert a.item() == pytest.approx(c.item(), abs=1e-6)
    assert g3.shape == (b, seq, vocab)
    torch.testing.assert_close(g3.reshape(-1, vocab), g2, atol=1e-7, rtol=0)


def test_non_contiguous_shifted_logits():
    # The usual causal shift: logits[:, :-1] predict input_ids[:, 1:] (a non-contiguous view).
    s_full = _logits(62, 2, 6, 5).requires_grad_(True)
    t_full = _logits(63, 2, 6, 5)
    ids = _labels(64, 2, 6, vocab=5)
    out = distillation_loss(s_full[:, :-1], t_full[:, :-1], ids[:, 1:], temperature=2.0, alpha=0.5)
    out.loss.backward()
    sr = s_full.detach().clone().requires_grad_(True)
    ref = reference(sr[:, :-1], t_full[:, :-1], ids[:, 1:], temperature=2.0, alpha=0.5)
    ref[0].backward()
    assert out.loss.item() == pytest.approx(ref[0].item(), abs=1e-6)
    torch.testing.assert_close(s_full.grad, sr.grad, atol=1e-6, rtol=1e-5)
    assert torch.all(s_full.grad[:, -1] == 0)


def _topk(t: torch.Tensor, k: int):
    from worker.distill.losses import TopKLogits

    v, i = t.topk(k, -1)
    return TopKLogits(v, i, torch.logsumexp(t.scatter(-1, i, float("-inf")), -1))


@pytest.mark.parametrize("temperature", [0.5, 1.0, 2.0, 8.0])
def test_topk_teacher_is_exact_with_a_one_token_tail(temperature):
    g = torch.Generator().manual_seed(5)
    s = torch.randn(3, 6, 40, generator=g, requires_grad=True)
    t = torch.randn(3, 6, 40, generator=g) * 3
    y = torch.randint(0, 40, (3, 6), generator=g)
    y[0, :2] = -100
    kw = dict(temperature=temperature, alpha=0.6)
    dense = distillation_loss(s, t, y, **kw)
    (gd,) = torch.autograd.grad(dense.loss, s)
    cached = distillation_loss(s, _topk(t, 39), y, **kw)
    (gc,) = torch.autograd.grad(cached.loss, s)
    assert cached.soft.item() == pytest.approx(dense.soft.item(), rel=1e-5)
    assert cached.hard.item() == pytest.approx(dense.hard.item(), rel=1e-6)
    assert torch.allclose(gc, gd, atol=1e-6)


def test_topk_teacher_gradient_is_student_minus_effective_teacher():
    # With k < V - 1 the teacher's tail bucket is spread like the student's tail: the soft
    # gradient is T (q_T - p~_T) / N, where p~ puts p_k on the top-k tokens and
    # p_tail * q_j / q_tail on the others.
    g = torch.Generator().manual_seed(6)
    s = torch.randn(5, 30, generator=g, requires_grad=True)
    t = torch.randn(5, 30, generator=g) * 2
    y = torch.randint(0, 30, (5,), generator=g)
    T, k = 2.0, 6
    out = distillation_loss(s, _topk(t, k), y, temperature=T, alpha=1.0)
    (grad,) = torch.autograd.grad(out.loss, s)
    v, i = t.topk(k, -1)
    q = torch.softmax(s.detach() / T, -1)
    n = 30 - k
    tail_lse = torch.logsumexp(t.scatter(-1, i, float("-inf")), -1)
    tail = math.log(n) + (tail_lse - math.log(n)) / T
    lse = torch.logaddexp(torch.logsumexp(v / T, -1), tail)
    p_tail = (tail - lse).exp()
    q_tail = 1 - q.gather(-1, i).sum(-1)
    p_eff = (q * (p_tail / q_tail).unsqueeze(-1)).scatter(-1, i, (v / T - lse[:, None]).exp())
    assert torch.allclose(p_eff.sum(-1), torch.ones(5), atol=1e-6)
    assert torch.allclose(grad, T * (q - p_eff) / 5, atol=1e-6)


def test_topk_teacher_needs_forward_kl_and_a_tail():
    s, t, y = torch.randn(4, 10), torch.randn(4, 10), torch.randint(0, 10, (4,))
    with pytest.raises(ValueError, match="forward_kl"):
        distillation_loss(s, _topk(t, 3), y, temperature=1.0, alpha=0.5, divergence="jsd")
    with pytest.raises(ValueError, match="0 < k < vocabulary"):
        distillation_loss(s, _topk(t, 10), y, temperature=1.0, alpha=0.5)
