"""Datasets → packed, label-aligned token sequences.

Documents (lines of a text file; sentences of the demo language) are tokenized, shuffled once
with the run's seed and packed greedily into sequences `[BOS] doc doc ...` of seq_len + 1
tokens; inputs are tokens[:-1] and labels tokens[1:], so row i of the logits predicts labels[i]
(the alignment the loss expects). Every sequence starts at a document boundary, which keeps the
demo language's truth exact. Unused tail positions are padding with label -100.
"""

import json
import random
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from worker.distill import demo_language

IGNORE = -100


@dataclass
class Split:
    input_ids: Tensor  # (n, L) long
    labels: Tensor  # (n, L) long, IGNORE where there is nothing to predict
    truth: Tensor | None = None  # (n, L, V) true next-token distribution (demo language only)

    def __len__(self) -> int:
        return self.input_ids.shape[0]


@dataclass
class DistillData:
    train: Split
    eval: Split
    kind: str


def _read_lines(path: Path) -> list[str]:
    return [ln.strip() for ln in path.read_text(encoding="utf-8").splitlines() if ln.strip()]


def _pack(
    docs: list[list[int]], seq_len: int, bos: int | None, pad: int
) -> tuple[list[list[int]], list[int]]:
    """Greedy packing into chunks of seq_len + 1 tokens, each starting at a document start.
    Returns the padded chunks and each chunk's real length."""
    head = [bos] if bos is not None else []
    chunks: list[list[int]] = []
    cur = list(head)
    for doc in docs:
        doc = doc[: seq_len + 1 - len(head)]  # a document longer than a sequence is truncated
        if len(cur) + len(doc) > seq_len + 1 and len(cur) > len(head):
            chunks.append(cur)
            cur = list(head)
        cur += doc
    if len(cur) > len(head):
        chunks.append(cur)
    lengths = [len(c) for c in chunks]
    return [c + [pad] * (seq_len + 1 - len(c)) for c in chunks], lengths


def _to_split(chunks: list[list[int]], lengths: list[int]) -> Split:
    t = torch.tensor(chunks, dtype=torch.long)
    labels = t[:, 1:].clone()
    for row, n_real in enumerate(lengths):
        labels[row, n_real - 1 :] = IGNORE
    return Split(input_ids=t[:, :-1].contiguous(), labels=labels)


def _encode_split(texts: list[str], tokenizer, seq_len: int, eos: int | None, seed: int | None):
    docs = [
        tokenizer(t, add_special_tokens=False)["input_ids"] + ([eos] if eos is not None else [])
        for t in texts
    ]
    if seed is not None:
        random.Random(seed).shuffle(docs)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    return _pack(docs, seq_len, tokenizer.bos_token_id, pad)


def _demo_truth(split: Split, tokenizer, vocab_size: int) -> Tensor:
    """(n, L, V) true next-token distributions for a demo-language split."""
    ids = {w: tokenizer.convert_tokens_to_ids(w) for w in demo_language.vocabulary()}
    truth = torch.zeros(*split.labels.shape, vocab_size)
    special = set(tokenizer.all_special_ids)
    for row in range(len(split)):
        seq = [int(x) for x in split.input_ids[row]] + [int(split.labels[row, -1])]
        words = [tokenizer.convert_ids_to_tokens(x) for x in seq if x not in special and x >= 0]
        for pos, dist in enumerate(demo_language.stream_truth(words)):
            if split.labels[row, pos] == IGNORE:
                break
            for w, p in dist.items():
                truth[row, pos, ids[w]] = p
    return truth


def load_dataset(
    path: Path,
    tokenizer,
    *,
    seq_len: int,
    seed: int,
    vocab_size: int,
    max_eval_sequences: int | None = None,
) -> DistillData:
    """Load a dataset folder (dataset.json + text files) as packed train and eval splits."""
    manifest = json.loads((path / "dataset.json").read_text())
    kind = manifest.get("kind", "text")
    train_texts = _read_lines(path / manifest.get("train", "train.txt"))
    eval_file = path / manifest.get("eval", "eval.txt")
    if eval_file.is_file():
        eval_texts = _read_lines(eval_file)
    else:  # hold out 5 % (at least one document) of the training documents
        n_eval = max(1, len(train_texts) // 20)
        train_texts, eval_texts = train_texts[:-n_eval], train_texts[-n_eval:]
    # The demo language ends each sentence with "."; other text gets the tokenizer's EOS.
    eos = None if kind == "demo-language" else tokenizer.eos_token_id
    train = _to_split(*_encode_split(train_texts, tokenizer, seq_len, eos, seed))
    eval_ = _to_split(*_encode_split(eval_texts, tokenizer, seq_len, eos, None))
    if max_eval_sequences is not None:
        eval_ = Split(eval_.input_ids[:max_eval_sequences], eval_.labels[:max_eval_sequences])
    if kind == "demo-language":
        eval_.truth = _demo_truth(eval_, tokenizer, vocab_size)
    return DistillData(train=train, eval=eval_, kind=kind)


def batch_at(split: Split, index: int, batch_size: int, seed: int) -> tuple[Tensor, Tensor]:
    """The index-th training batch: epochs reshuffle the sequences with (seed, epoch), so any
    batch can be recomputed from its index alone (a resumed run sees the same data)."""
    n = len(split)
    per_epoch = max(1, n // batch_size) if n >= batch_size else 1
    epoch, k = divmod(index, per_epoch)
    g = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    perm = torch.randperm(n, generator=g)
    if n >= batch_size:
        idx = perm[k * batch_size : (k + 1) * batch_size]
    else:  # fewer sequences than a batch: sample with repetition
        idx = perm.repeat(batch_size // n + 1)[:batch_size]
    return split.input_ids[idx], split.labels[idx]
