"""Inspect a prompt: each model's next-token distribution at every prompt position and at
several temperatures, and how far the models are apart.

One forward pass per model gives logits at every position; every temperature is then a cheap
transform of those logits. Probabilities always come from the softmax over the full vocabulary
(never a top-k before the softmax). Tokens are returned as text; rendering them safely (as
text, never HTML) is the client's job."""

import math
from collections import OrderedDict
from pathlib import Path

import torch

from backend.schemas import InspectRequest
from backend.services.catalog import run_student_dir
from backend.settings import Settings
from worker.distill import demo_language
from worker.distill.models import load_causal_lm_from, load_tokenizer_from, model_source

_MODELS: OrderedDict[str, torch.nn.Module] = OrderedDict()
_CACHE_SIZE = 4


def _source(name: str, settings: Settings) -> Path | str:
    """A model name under the roots, a Hub id, or `run:<id>` (that run's final student, else
    its latest checkpoint)."""
    if name.startswith("run:"):
        found = run_student_dir(name, settings)
        if found is None:
            raise ValueError(f"{name} has no saved student yet")
        return found
    return model_source(name, settings)


def _model(source: Path | str, device: torch.device) -> torch.nn.Module:
    """Loaded models stay in a small LRU cache: repeated inspections skip the load."""
    key = f"{source}@{device}"
    if key in _MODELS:
        _MODELS.move_to_end(key)
        return _MODELS[key]
    model = load_causal_lm_from(source).to(device).eval()
    _MODELS[key] = model
    while len(_MODELS) > _CACHE_SIZE:
        _MODELS.popitem(last=False)
    return model


_TOKENIZERS: dict[str, object] = {}


def _tokenizer(source: Path | str):
    """Tokenizers are cached like models: loading one costs more than an inspection."""
    key = str(source)
    if key not in _TOKENIZERS:
        _TOKENIZERS[key] = load_tokenizer_from(source)
    return _TOKENIZERS[key]


def _truth(tokens: list[str], position: int, vocab: dict[str, int]) -> dict[str, float] | None:
    """The demo language's true next-word distribution, when the prompt is in it."""
    words = tokens[1 : position + 1]  # drop <bos>
    known = set(demo_language.vocabulary())
    if not known <= vocab.keys():
        return None
    sentence: list[str] = []
    for w in words:
        if w not in known:
            return None
        sentence = [] if w == demo_language.END else [*sentence, w]
    try:
        return demo_language.next_word_distribution(sentence)
    except (KeyError, ValueError):
        return None


def _divergences(log_p: torch.Tensor, log_q: torch.Tensor) -> dict[str, torch.Tensor]:
    """Over the last axis: KL(p||q), KL(q||p), Jensen-Shannon, total variation (nats)."""
    p, q = log_p.exp(), log_q.exp()
    log_m = torch.logaddexp(log_p, log_q) - math.log(2.0)
    return {
        "kl_ab": (p * (log_p - log_q)).sum(-1),
        "kl_ba": (q * (log_q - log_p)).sum(-1),
        "js": 0.5 * (p * (log_p - log_m)).sum(-1) + 0.5 * (q * (log_q - log_m)).sum(-1),
        "tv": 0.5 * (p - q).abs().sum(-1),
    }


@torch.inference_mode()
def inspect_prompt(req: InspectRequest, settings: Settings) -> dict:
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    sources = [_source(m, settings) for m in req.models]
    tokenizer = _tokenizer(sources[0])
    ids = tokenizer(req.prompt)["input_ids"][: req.max_tokens]
    if not ids:
        raise ValueError("the prompt has no tokens")
    vocab = len(tokenizer)
    tokens = tokenizer.convert_ids_to_tokens(ids)
    position = len(ids) - 1 if req.position is None else min(req.position, len(ids) - 1)
    input_ids = torch.tensor([ids], device=device)
    logits = []
    for source in sources:
        out = _model(source, device)(input_ids=input_ids).logits[0, :, :vocab].float()
        if out.shape[-1] != vocab:
            raise ValueError(f"{source} has {out.shape[-1]} logits, the tokenizer {vocab}")
        logits.append(out)
    # Every temperature at once: (temperatures, models, positions, vocab), one softmax.
    temps = torch.tensor(req.temperatures, device=device).view(-1, 1, 1, 1)
    log_probs = torch.log_softmax(torch.stack(logits)[None] / temps, dim=-1)
    entropy = -(log_probs.exp() * log_probs).sum(-1)  # (T, M, L)
    at = log_probs[:, :, position].exp()  # (T, M, V)
    top = torch.topk(at, min(req.k, vocab), dim=-1)
    div = {k: v.tolist() for k, v in _divergences(log_probs[:, :1], log_probs[:, 1:]).items()}
    top_ids, top_p = top.indices.tolist(), top.values.tolist()
    entropy = entropy.tolist()
    names = tokenizer.convert_ids_to_tokens(list(range(vocab)))
    per_t = []
    for ti, temperature in enumerate(req.temperatures):
        models = [
            {
                "model": name,
                "top": [
                    {"id": i, "token": names[i], "prob": pr}
                    for i, pr in zip(top_ids[ti][mi], top_p[ti][mi], strict=True)
                ],
                "entropy": entropy[ti][mi][position],
                "mass_outside_top_k": max(0.0, 1.0 - sum(top_p[ti][mi])),
                "entropy_per_position": entropy[ti][mi],
            }
            for mi, name in enumerate(req.models)
        ]
        pairs = {
            name: {k: v[ti][mi] for k, v in div.items()} for mi, name in enumerate(req.models[1:])
        }
        per_t.append({"temperature": temperature, "models": models, "vs_first": pairs})
    truth = _truth(tokens, position, tokenizer.get_vocab())
    return {
        "tokens": tokens,
        "ids": ids,
        "position": position,
        "vocab_size": vocab,
        "models": req.models,
        "temperatures": per_t,
        "truth": None
        if truth is None
        else sorted(({"token": w, "prob": p} for w, p in truth.items()), key=lambda x: -x["prob"]),
    }
