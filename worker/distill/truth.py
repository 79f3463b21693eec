"""How far a model is from the demo language's known truth, per position: KL(truth ‖ model_T)
and how much of the truth's ranking the model keeps (top-5 overlap). Used by the trainer's
held-out metrics and by the demo kit to record what its teachers know."""

import torch
from torch import Tensor

TOP = 5  # the ranking compared: the truth's top 5 (fewer where the language has fewer words)


def kl_true(logits: Tensor, truth: Tensor, temperature: float = 1.0) -> Tensor:
    """Σ over rows of KL(truth ‖ softmax(logits / T)); rows (N, V), float32."""
    log_q = torch.log_softmax(logits.float() / temperature, dim=-1)
    log_truth = torch.where(truth > 0, truth.clamp_min(1e-30).log(), 0.0)
    return (truth * (log_truth - log_q)).sum()


def choice_rows(truth: Tensor) -> Tensor:
    """Rows where the language has a choice (two or more possible next words)."""
    return (truth > 0).sum(-1) >= 2


def top5_overlap(logits: Tensor, truth: Tensor) -> tuple[Tensor, int]:
    """(Σ overlap, rows counted) over the rows where the language has a choice. Per row, with
    m = min(5, number of possible words): the share of the model's top m that lie in the
    truth's top m. Where words tie with the truth's m-th, they fill only the places left by
    the words strictly above it, so a top m that misses a word strictly inside the truth's
    never scores 1. Temperature does not change it: dividing logits by T keeps their order."""
    rows = choice_rows(truth)
    logits, truth = logits[rows].float(), truth[rows]
    if not len(truth):
        return torch.zeros(()), 0
    k = min(TOP, truth.shape[-1])
    m = (truth > 0).sum(-1).clamp(max=k)  # (N,)
    cutoff = truth.topk(k, dim=-1).values.gather(-1, (m - 1)[:, None])  # the m-th largest
    picked = truth.gather(-1, logits.topk(k, dim=-1).indices)  # truth of the model's top k
    within = torch.arange(k, device=truth.device)[None, :] < m[:, None]
    above = ((picked > cutoff) & within).sum(-1)  # words strictly inside the truth's top m
    tied = ((picked == cutoff) & (picked > 0) & within).sum(-1)
    room = m - (truth > cutoff).sum(-1)  # the truth's top-m places its tied words can take
    hits = above + torch.minimum(tied, room)
    return (hits / m).sum(), len(truth)
