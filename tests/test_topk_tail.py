"""The top-k teacher (the teacher-logit cache) when the teacher's tail has mass 0: every logit
outside its top k is -inf (a masked vocabulary), so the cache stores tail_lse = -inf (#11: the
soft loss was NaN)."""

import math

import pytest
import torch

from worker.distill.data import Split
from worker.distill.losses import TopKLogits, distillation_loss
from worker.distill.teacher_cache import _compute

INF = float("inf")


@pytest.mark.parametrize("temperature", [1.0, 2.0])
def test_a_tail_of_mass_zero_gives_the_known_finite_loss(temperature):
    # Teacher: logits (2, 0, -inf, -inf), cached as its top 2 and tail_lse = -inf. Student:
    # uniform over 4 tokens. p_T = softmax((2, 0) / T) on the two tokens, 0 elsewhere, so
    # KL(p_T || q_T) = log 4 + sum p log p and soft = T^2 KL.
    teacher = TopKLogits(torch.tensor([[2.0, 0.0]]), torch.tensor([[0, 1]]), torch.tensor([-INF]))
    student = torch.zeros(1, 4, requires_grad=True)
    out = distillation_loss(student, teacher, torch.tensor([0]), temperature=temperature, alpha=1.0)
    a = math.exp(2.0 / temperature)
    p = [a / (a + 1), 1 / (a + 1)]
    kl = math.log(4) + sum(x * math.log(x) for x in p)
    assert out.soft.item() == pytest.approx(temperature**2 * kl, rel=1e-6)
    (grad,) = torch.autograd.grad(out.loss, student)
    # d soft / d z = T (q_T - p_T): the tail tokens get the student's own 1/4, unopposed.
    expected = temperature * (torch.tensor([[0.25] * 4]) - torch.tensor([[*p, 0.0, 0.0]]))
    assert torch.allclose(grad, expected, atol=1e-6)


def test_it_equals_the_dense_teacher_with_minus_inf_logits():
    g = torch.Generator().manual_seed(3)
    t = torch.randn(4, 5, 12, generator=g) * 2
    t[..., 6:] = -INF  # only 6 tokens possible; a top 4 leaves a tail of 2 finite and 6 -inf
    t[0, 0, 4:] = -INF  # and at one position the whole tail is -inf
    s = torch.randn(4, 5, 12, generator=g, requires_grad=True)
    y = torch.randint(0, 6, (4, 5), generator=g)
    v, i = t.topk(4, -1)
    cached = TopKLogits(v, i, torch.logsumexp(t.scatter(-1, i, -INF), -1))
    assert cached.tail_lse[0, 0].item() == -INF
    for temperature in (0.5, 1.0, 4.0):
        out = distillation_loss(s, cached, y, temperature=temperature, alpha=0.5)
        assert math.isfinite(out.loss.item()) and math.isfinite(out.soft.item())
        (grad,) = torch.autograd.grad(out.loss, s)
        assert torch.isfinite(grad).all()
    # Where the tail is all -inf the top-k teacher is the dense one exactly.
    one = (slice(0, 1), slice(0, 1))
    kw = dict(temperature=2.0, alpha=1.0)
    dense = distillation_loss(s[one], t[one], y[one], **kw)
    top = distillation_loss(s[one], TopKLogits(*(x[one] for x in cached)), y[one], **kw)
    assert top.soft.item() == pytest.approx(dense.soft.item(), rel=1e-6)


def test_the_cache_stores_minus_inf_and_the_loss_of_it_is_finite():
    class Masked(torch.nn.Module):
        """A teacher that can only say tokens 0 and 1 (the rest -inf)."""

        def forward(self, input_ids):
            logits = torch.full((*input_ids.shape, 8), -INF)
            logits[..., 0], logits[..., 1] = 1.0, input_ids.float() / 10
            return type("Out", (), {"logits": logits})()

    ids = torch.randint(0, 8, (3, 6))
    split = Split(input_ids=ids, labels=ids)
    cache = _compute(Masked(), split, k=2, vocab=8, device=torch.device("cpu"), batch_size=2)
    assert (cache["tail_lse"] == -INF).all()
    top = TopKLogits(cache["values"], cache["indices"], cache["tail_lse"])
    out = distillation_loss(torch.randn(3, 6, 8), top, ids, temperature=2.0, alpha=0.5)
    assert math.isfinite(out.soft.item()) and out.soft.item() > 0
