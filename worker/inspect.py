"""Inspect a prompt: each model's next-token distribution at every prompt position and at
several temperatures, and how far the models are apart.

One forward pass per model gives logits at every position; every temperature is then a cheap
transform of those logits, done for all temperatures, models and positions in one batch of
tensor ops. Probabilities always come from the softmax over the full vocabulary (never a top-k
before the softmax). Tokens are returned as text; rendering them safely (as text, never HTML)
is the client's job."""

from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import torch

from backend.schemas import InspectRequest
from backend.services.catalog import run_student_dir
from backend.settings import Settings
from worker.distill import demo_language
from worker.distill.models import load_causal_lm_from, load_tokenizer_from, model_source

_MODELS: OrderedDict[str, torch.nn.Module] = OrderedDict()
_CACHE_SIZE = 4
_SOURCES: dict[tuple, Path] = {}
_DEMO_WORDS = frozenset(demo_language.vocabulary())


def _source(name: str, settings: Settings) -> Path | str:
    """A model name under the roots, a Hub id, or `run:<id>` (that run's final student, else
    its latest checkpoint)."""
    if name.startswith("run:"):  # never cached: a run's latest checkpoint moves on
        found = run_student_dir(name, settings)
        if found is None:
            raise ValueError(f"{name} has no saved student yet")
        return found
    # Resolving a name walks every root with realpath (~0.15 ms a model, a fifth of the rest of
    # an inspection's bookkeeping); a folder found once is reused while it still holds a model,
    # the same trust the model cache below gives a loaded folder.
    key = (name, settings.data_dir, tuple(settings.model_roots))
    found = _SOURCES.get(key)
    if found is not None and (found / "config.json").is_file():
        return found
    source = model_source(name, settings)
    if isinstance(source, Path):
        _SOURCES[key] = source
    return source


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


@dataclass(frozen=True)
class _Vocab:
    """A tokenizer and what every inspection reads from it, looked up once per load."""

    tokenizer: object
    names: list[str]  # token text by id, the whole vocabulary
    speaks_demo: bool  # every word of the demo language is one of its tokens


_TOKENIZERS: OrderedDict[str, _Vocab] = OrderedDict()
_TOKENIZER_CACHE_SIZE = 16  # each checkpoint is a source of its own: keep the cache bounded


def _tokenizer(source: Path | str) -> _Vocab:
    """Tokenizers are cached like models (LRU): loading one costs more than an inspection."""
    key = str(source)
    if key in _TOKENIZERS:
        _TOKENIZERS.move_to_end(key)
        return _TOKENIZERS[key]
    tok = load_tokenizer_from(source)
    names = tok.convert_ids_to_tokens(list(range(len(tok))))
    _TOKENIZERS[key] = _Vocab(tok, names, _DEMO_WORDS <= tok.get_vocab().keys())
    while len(_TOKENIZERS) > _TOKENIZER_CACHE_SIZE:
        _TOKENIZERS.popitem(last=False)
    return _TOKENIZERS[key]


def _truth(words: list[str]) -> list[dict] | None:
    """The demo language's true next-word distribution after `words` (the prompt without its
    <bos>), most likely first; None when the prompt is not in the language."""
    if not _DEMO_WORDS.issuperset(words):
        return None
    ends = [i for i, w in enumerate(words) if w == demo_language.END]
    try:  # the current sentence starts after the last full stop
        dist = demo_language.next_word_distribution(words[ends[-1] + 1 :] if ends else words)
    except (KeyError, ValueError):
        return None
    return sorted(({"token": w, "prob": p} for w, p in dist.items()), key=lambda x: -x["prob"])


def _divergences(
    log_p: torch.Tensor, log_q: torch.Tensor, p: torch.Tensor, q: torch.Tensor
) -> dict[str, torch.Tensor]:
    """Over the last axis, from log-probabilities and their exp: KL(p||q), KL(q||p),
    Jensen-Shannon and total variation (nats)."""
    diff = log_p - log_q
    s = p + q  # 2m
    # log m; where m = 0 (both underflowed) it stays finite, so its term is 0 · finite, not nan.
    log_m = torch.log(s * 0.5).clamp_min_(-1e4)
    return {
        "kl_ab": (p * diff).sum(-1),
        "kl_ba": (q * diff).sum(-1).neg_(),
        # ½ KL(p||m) + ½ KL(q||m) term by term (not H(m) − ½ H(p) − ½ H(q): that cancels
        # badly when p ≈ q, e.g. at high temperatures).
        "js": (p * (log_p - log_m) + q * (log_q - log_m)).sum(-1).mul_(0.5),
        "tv": (p - q).abs_().sum(-1).mul_(0.5),
    }


def _context(model: torch.nn.Module) -> int:
    cfg = model.config
    return (
        getattr(cfg, "n_positions", None) or getattr(cfg, "max_position_embeddings", None) or 10**9
    )


def _forward(source: Path | str, input_ids: torch.Tensor, vocab: int) -> torch.Tensor:
    """Logits (positions, vocab) of one model; no KV cache (nothing is generated)."""
    out = _model(source, input_ids.device)(input_ids=input_ids, use_cache=False).logits
    out = out[0, :, :vocab].float()
    if out.shape[-1] != vocab:
        raise ValueError(f"{source} has {out.shape[-1]} logits, the tokenizer {vocab}")
    return out


@torch.inference_mode()
def inspect_prompt(req: InspectRequest, settings: Settings) -> dict:
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    sources = [_source(m, settings) for m in req.models]
    tok = _tokenizer(sources[0])
    ids = tok.tokenizer(req.prompt)["input_ids"]
    if not ids:
        raise ValueError("the prompt has no tokens")
    # Cut at max_tokens and at the shortest context among the models (positions beyond it
    # have no embedding); the answer says where.
    limit = min([req.max_tokens, *(_context(_model(s, device)) for s in sources)])
    cut = len(ids) > limit
    ids = ids[:limit]
    names = tok.names
    vocab = len(names)
    position = len(ids) - 1 if req.position is None else min(req.position, len(ids) - 1)
    input_ids = torch.tensor([ids], device=device)
    logits = torch.stack([_forward(s, input_ids, vocab) for s in sources])  # (M, L, V)

    # Every model, temperature and position at once: (M, T, L, V), one full-vocabulary softmax.
    # Models first, so that each model's slice (the pair compared below) is contiguous.
    temps = torch.tensor(req.temperatures, device=device).view(1, -1, 1, 1)
    log_p = torch.log_softmax(logits[:, None] / temps, dim=-1)
    p = log_p.exp()
    entropy = (p * log_p).sum(-1).neg_()  # (M, T, L)
    top = torch.topk(p[:, :, position], min(req.k, vocab), dim=-1)  # (M, T, k)
    div = _divergences(log_p[:1], log_p[1:], p[:1], p[1:])  # each (M-1, T, L)
    prompt_words = [names[i] for i in ids[1 : position + 1]]  # without <bos>
    truth = _truth(prompt_words) if tok.speaks_demo else None

    # One device-to-host copy (.tolist()) per tensor; the answer is built from plain lists.
    top_ids, top_p = top.indices.tolist(), top.values.tolist()
    # The tokens the charts show: every model's top k at every T (T keeps a model's order, so
    # these are its top k at T = 1 but for ties), then the truth's top k; each with every
    # model's own probability, so a token outside one model's top k still gets its real bar.
    shown = list(dict.fromkeys(i for per_t in top_ids for ids_t in per_t for i in ids_t))
    if truth is not None:
        shown += [i for i in _ids(tok, truth[: req.k]) if i not in set(shown)]
    shown_p = p[:, :, position, shown].tolist()  # (M, T, S)
    # Each model's rank of each shown token in the whole vocabulary (1 = its top; ties share
    # the better rank). T keeps the order, so one rank holds at every temperature.
    z = logits[:, position]  # (M, V)
    zs = z[:, shown]  # (M, S)
    shown_ranks = ((z[:, None, :] > zs[:, :, None]).sum(-1) + 1).tolist()  # (M, S)
    entropy = entropy.tolist()
    div = dict(zip(div, torch.stack(list(div.values())).tolist(), strict=True))
    per_t = []
    for ti, temperature in enumerate(req.temperatures):
        models = [
            {
                "model": name,
                "top": [
                    {"id": i, "token": names[i], "prob": pr}
                    for i, pr in zip(top_ids[mi][ti], top_p[mi][ti], strict=True)
                ],
                "shown_probs": shown_p[mi][ti],
                "entropy": entropy[mi][ti][position],
                "mass_outside_top_k": max(0.0, 1.0 - sum(top_p[mi][ti])),
                "entropy_per_position": entropy[mi][ti],
            }
            for mi, name in enumerate(req.models)
        ]
        pairs = {
            name: {k: v[mi][ti] for k, v in div.items()} for mi, name in enumerate(req.models[1:])
        }
        per_t.append({"temperature": temperature, "models": models, "vs_first": pairs})
    tokens = [names[i] for i in ids]
    return {
        "tokens": tokens,
        "ids": ids,
        "truncated_to": limit if cut else None,
        "position": position,
        "vocab_size": vocab,
        "models": req.models,
        "temperatures": per_t,
        "shown": [{"id": i, "token": names[i]} for i in shown],
        "shown_ranks": shown_ranks,
        "truth": truth,  # at T = 1: the language's own distribution is never softened
    }


def _ids(tok: _Vocab, words: list[dict]) -> list[int]:
    return [tok.tokenizer.convert_tokens_to_ids(w["token"]) for w in words]
