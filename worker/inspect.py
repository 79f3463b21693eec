"""Inspect a prompt: each model's next-token distribution at every prompt position and at
several temperatures, and how far the models are apart.

Tokens are returned as readable text: a byte-level BPE piece such as 'ĠParis' as " Paris", 'Ċ' as
"\n", and a piece that holds only part of a multi-byte UTF-8 character as escapes such as
"<0xE2><0x82>" (never mojibake). With `chat`, the prompt is wrapped as a user message in the
first model's chat template and the position inspected is the assistant's first answer token.

One forward pass per model gives logits at every position; every temperature is then a cheap
transform of those logits, done for all temperatures and models at once, a cache-sized block
of positions at a time. Probabilities always come from the softmax over the full vocabulary
(never a top-k before the softmax). Tokens are returned as text; rendering them safely (as
text, never HTML) is the client's job."""

import json
import math
from collections import OrderedDict
from dataclasses import dataclass, field
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


def _byte_decoder() -> dict[str, int]:
    """GPT-2's byte-level alphabet read backwards: the printable character that stands for each
    byte (e.g. 'Ġ' for a space, 'Ċ' for a newline) → that byte."""
    bs = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1)]
    bs += range(ord("®"), ord("ÿ") + 1)
    cs = list(bs)
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {chr(c): b for b, c in zip(bs, cs, strict=True)}


_BYTE_DECODER = _byte_decoder()


def _utf8_with_escapes(data: bytes) -> str:
    """The text of `data`, each byte that is not part of a whole UTF-8 character written as
    <0xNN> (a piece may end mid-character: '€' is three bytes, often split across pieces)."""
    out, i = [], 0
    while i < len(data):
        for size in (1, 2, 3, 4):  # the shortest valid character starting here
            try:
                out.append(data[i : i + size].decode("utf-8"))
                i += size
                break
            except UnicodeDecodeError:
                continue
        else:
            out.append(f"<0x{data[i]:02X}>")
            i += 1
    return "".join(out)


def _is_byte_level(tok) -> bool:
    backend = getattr(tok, "backend_tokenizer", None)
    if backend is None:
        return False
    try:
        return "ByteLevel" in json.dumps(json.loads(backend.to_str()).get("decoder"))
    except (ValueError, AttributeError):
        return False


@dataclass
class _Vocab:
    """A tokenizer and what every inspection reads from it, looked up once per load."""

    tokenizer: object
    names: list[str]  # token strings by id (the tokenizer's own pieces), the whole vocabulary
    speaks_demo: bool  # every word of the demo language is one of its tokens
    byte_level: bool  # pieces spell bytes in GPT-2's alphabet ('Ġ' = space, 'Ċ' = newline)
    special: frozenset  # added and special tokens: shown as they are
    _texts: dict = field(default_factory=dict)

    def text(self, i: int) -> str:
        """The readable text of token `i` (cached: a vocabulary may have 150,000 tokens)."""
        found = self._texts.get(i)
        if found is None:
            found = self._texts[i] = self._readable(i)
        return found

    def _readable(self, i: int) -> str:
        piece = self.names[i]
        if piece is None:
            return f"<id {i}>"
        if piece in self.special:
            return piece
        if self.byte_level and all(c in _BYTE_DECODER for c in piece):
            return _utf8_with_escapes(bytes(_BYTE_DECODER[c] for c in piece))
        text = self.tokenizer.decode(
            [i], skip_special_tokens=False, clean_up_tokenization_spaces=False
        )
        # A byte piece such as SentencePiece's <0xE2> decodes alone to U+FFFD: show the piece.
        return piece if "\ufffd" in text and "\ufffd" not in piece else text

    @property
    def chat_template(self) -> bool:
        return bool(getattr(self.tokenizer, "chat_template", None))


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
    special = frozenset(getattr(tok, "all_special_tokens", [])) | frozenset(
        str(t) for t in getattr(tok, "added_tokens_decoder", {}).values()
    )
    _TOKENIZERS[key] = _Vocab(
        tok, names, _DEMO_WORDS <= tok.get_vocab().keys(), _is_byte_level(tok), special
    )
    while len(_TOKENIZERS) > _TOKENIZER_CACHE_SIZE:
        _TOKENIZERS.popitem(last=False)
    return _TOKENIZERS[key]


def _prompt_ids(tok: _Vocab, prompt: str, chat: bool) -> list[int]:
    """The prompt's token ids; with `chat`, the prompt as a user message in the tokenizer's chat
    template, ending with the assistant's header (its first answer token comes next)."""
    if not chat:
        return tok.tokenizer(prompt)["input_ids"]
    if not tok.chat_template:
        raise ValueError(
            "chat: the first model's tokenizer has no chat template; inspect without chat, or "
            "put an instruction-tuned model first"
        )
    text = tok.tokenizer.apply_chat_template(
        [{"role": "user", "content": prompt}], add_generation_prompt=True, tokenize=False
    )
    # The template writes its own special tokens (e.g. <|im_start|>): add none.
    return tok.tokenizer(text, add_special_tokens=False)["input_ids"]


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


_DIVERGENCES = ("kl_ab", "kl_ba", "js", "tv")
_LN2 = math.log(2)


def _divergences(
    log_p: torch.Tensor, log_q: torch.Tensor, p: torch.Tensor, q: torch.Tensor
) -> dict[str, torch.Tensor]:
    """Over the last axis, from log-probabilities and their exp: KL(p||q), KL(q||p),
    Jensen-Shannon and total variation (nats).

    JS without log m: with d = log p − log q and g(d) = −log((1 + e^d) / 2) = log q − log m,
    log p − log m = g(d) + d, so JS = ½ (Σ (p + q) g(d) + KL(p||q)). g is taken as
    −log1p(expm1(−|d|) / 2) − max(d, 0): exact near d = 0 and finite for any d, so each term
    stays small when p ≈ q (never H(m) − ½ H(p) − ½ H(q), which cancels badly at high
    temperatures). In float32 at a 49,152-token vocabulary it is within 2e-6 (relative) of a
    float64 reference where ½ KL(p||m) + ½ KL(q||m) term by term was off by 2 % for two close
    models at T = 16, and it costs the same."""
    diff = log_p - log_q
    kl_ab = (p * diff).sum(-1)
    kl_ba = (q * diff).sum(-1).neg_()
    g = diff.abs().neg_().expm1_().mul_(0.5).log1p_().add_(diff.clamp(min=0.0)).neg_()
    js = (p + q).mul_(g).sum(-1).add_(kl_ab).mul_(0.5).clamp_(0.0, _LN2)
    return {"kl_ab": kl_ab, "kl_ba": kl_ba, "js": js, "tv": (p - q).abs_().sum(-1).mul_(0.5)}


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


_BLOCK = 1 << 18  # elements of one (models, temperatures, positions, vocab) block: 1 MiB


def _log_softmax_and_exp(a: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """log_softmax(a) and softmax(a) over the last axis with one exp pass (not two); `a` is
    overwritten with the first."""
    a.sub_(a.amax(-1, keepdim=True))
    p = a.exp()
    total = p.sum(-1, keepdim=True)
    p.div_(total)
    return a.sub_(total.log_()), p


def _per_position(
    logits: list[torch.Tensor], temps: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Every model's entropy (M, T, L) and KL(first_T || other_T) for each other model
    (M-1, T, L) at every position and temperature (the heatmap): one full-vocabulary softmax
    per model, temperature and position, taken a few positions at a time. At a 49,152-token
    vocabulary one (M, T, L, V) batch is 125 MB a tensor for a 64-token prompt; blocks of about
    1 MiB stay in the cache and take a fifth of the time. A small vocabulary gets one block.
    The other divergences are taken at the inspected position only (see inspect_prompt).
    `logits`: each model's (L, V)."""
    n_models, (length, vocab) = len(logits), logits[0].shape
    per_position = n_models * temps.shape[1] * vocab
    step = max(1, _BLOCK // per_position)
    entropy = logits[0].new_empty(n_models, temps.shape[1], length)
    kl_ab = logits[0].new_empty(n_models - 1, temps.shape[1], length)
    for start in range(0, length, step):
        at = slice(start, start + step)
        # Models first, so that each model's slice (the pair compared below) is contiguous.
        z = torch.stack([x[at] for x in logits])[:, None]  # (M, 1, l, V)
        log_p, p = _log_softmax_and_exp(z / temps[..., None])  # (M, T, l, V)
        entropy[:, :, at] = (p * log_p).sum(-1).neg_()
        kl_ab[:, :, at] = (p[:1] * (log_p[:1] - log_p[1:])).sum(-1)
    return entropy, kl_ab


@torch.inference_mode()
def inspect_prompt(req: InspectRequest, settings: Settings) -> dict:
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    sources = [_source(m, settings) for m in req.models]
    tok = _tokenizer(sources[0])
    ids = _prompt_ids(tok, req.prompt, req.chat)
    if not ids:
        raise ValueError("the prompt has no tokens")
    # Cut at max_tokens and at the shortest context among the models (positions beyond it
    # have no embedding); the answer says where.
    limit = min([req.max_tokens, *(_context(_model(s, device)) for s in sources)])
    cut = len(ids) > limit
    if cut and req.chat:  # a cut would drop the assistant's header, the position inspected
        raise ValueError(
            f"chat: the prompt in the chat template has {len(ids)} tokens, over the {limit} "
            "that can be inspected here; shorten the prompt"
        )
    if req.position is not None and req.position >= min(len(ids), limit):  # never clamped
        n = min(len(ids), limit)
        length = f"{len(ids)} tokens, cut to the first {n} here" if cut else f"{n} tokens"
        raise ValueError(
            f"position: {req.position} is past the prompt's end: the prompt has {length} "
            f"(positions 0 to {n - 1}, counting the <bos> the tokenizer may add)"
        )
    ids = ids[:limit]
    names = tok.names
    vocab = len(names)
    position = len(ids) - 1 if req.position is None else req.position
    input_ids = torch.tensor([ids], device=device)
    logits = [_forward(s, input_ids, vocab) for s in sources]  # each (L, V)

    # Every model and temperature at once, a block of positions at a time; one full-vocabulary
    # softmax each.
    temps = torch.tensor(req.temperatures, device=device).view(1, -1, 1)
    entropy, kl_ab = _per_position(logits, temps)  # (M, T, L) and (M-1, T, L)
    # The inspected position in full: (M, T, V), every model and temperature; KL both ways,
    # Jensen-Shannon and total variation there (the page inspects again when another
    # position is clicked, so they are not computed at every position: at a 49,152-token
    # vocabulary that was a third of an inspection's time).
    z = torch.stack([x[position] for x in logits])  # (M, V)
    log_p, p = _log_softmax_and_exp(z[:, None] / temps)
    here = {
        k: v.tolist() for k, v in _divergences(log_p[:1], log_p[1:], p[:1], p[1:]).items()
    }  # each (M-1, T)
    top = torch.topk(p, min(req.k, vocab), dim=-1)  # (M, T, k)
    # The part of KL(first_T || other_T) at this position that comes from the tokens outside
    # the first model's top k at that T (the tail that high-T targets mostly describe). Token
    # j's part is p_j log(p_j / q_j) - p_j + q_j: never negative, and the parts sum to the KL,
    # so the share lies in [0, 1] (the same split as the trainer's eval/soft_tail_share).
    terms = p[0] * (log_p[0] - log_p[1:]) - p[0] + p[1:]  # (M-1, T, V)
    outside = torch.ones_like(p[0], dtype=torch.bool).scatter_(-1, top.indices[0], False)
    kl_outside = (terms * outside).sum(-1).tolist()  # (M-1, T)
    prompt_words = [names[i] for i in ids[1 : position + 1]]  # without <bos>
    truth = _truth(prompt_words) if tok.speaks_demo and not req.chat else None

    # One device-to-host copy (.tolist()) per tensor; the answer is built from plain lists.
    top_ids, top_p = top.indices.tolist(), top.values.tolist()
    # The tokens the charts show: every model's top k at every T (T keeps a model's order, so
    # these are its top k at T = 1 but for ties), then the truth's top k; each with every
    # model's own probability, so a token outside one model's top k still gets its real bar.
    shown = list(dict.fromkeys(i for per_t in top_ids for ids_t in per_t for i in ids_t))
    if truth is not None:
        shown += [i for i in _ids(tok, truth[: req.k]) if i not in set(shown)]
    shown_p = p[:, :, shown].tolist()  # (M, T, S)
    # Each model's rank of each shown token in the whole vocabulary (1 = its top; ties share
    # the better rank). T keeps the order, so one rank holds at every temperature.
    zs = z[:, shown]  # (M, S)
    shown_ranks = ((z[:, None, :] > zs[:, :, None]).sum(-1) + 1).tolist()  # (M, S)
    entropy, kl_ab = entropy.tolist(), kl_ab.tolist()
    blank = [None] * len(ids)

    def at_position(value: float) -> list[float | None]:
        out = list(blank)
        out[position] = value
        return out

    per_t = []
    for ti, temperature in enumerate(req.temperatures):
        models = [
            {
                "model": name,
                "top": [
                    {"id": i, "token": tok.text(i), "prob": pr}
                    for i, pr in zip(top_ids[mi][ti], top_p[mi][ti], strict=True)
                ],
                "shown_probs": shown_p[mi][ti],
                "entropy": entropy[mi][ti][position],
                "mass_outside_top_k": max(0.0, 1.0 - sum(top_p[mi][ti])),
                "entropy_per_position": entropy[mi][ti],
            }
            for mi, name in enumerate(req.models)
        ]
        pairs = {}
        for mi, name in enumerate(req.models[1:]):
            # kl_ab at every position (the heatmap); the others at the inspected one only
            # (null elsewhere), so every pair keeps one list per statistic.
            pairs[name] = {"kl_ab": kl_ab[mi][ti]}
            pairs[name].update({k: at_position(here[k][mi][ti]) for k in _DIVERGENCES[1:]})
            total, tail = kl_ab[mi][ti][position], kl_outside[mi][ti]
            # At this position only: nats, and their share of the KL (None when the KL is 0).
            pairs[name]["kl_ab_outside_top_k"] = tail
            pairs[name]["kl_ab_outside_share"] = tail / total if total > 0 else None
        per_t.append({"temperature": temperature, "models": models, "vs_first": pairs})
    return {
        "tokens": [tok.text(i) for i in ids],
        "ids": ids,
        "chat": req.chat,
        "chat_template": tok.chat_template,  # the first model's tokenizer has one
        "truncated_to": limit if cut else None,
        "position": position,
        "vocab_size": vocab,
        "models": req.models,
        "temperatures": per_t,
        "shown": [{"id": i, "token": tok.text(i)} for i in shown],
        "shown_ranks": shown_ranks,
        "truth": truth,  # at T = 1: the language's own distribution is never softened
    }


def _ids(tok: _Vocab, words: list[dict]) -> list[int]:
    return [tok.tokenizer.convert_tokens_to_ids(w["token"]) for w in words]
