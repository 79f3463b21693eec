"""Datasets → packed, label-aligned token sequences.

Documents (lines of a text file; sentences of the demo language) are tokenized, shuffled once
(with a fixed seed) and packed greedily into sequences `[BOS] doc doc ...` of seq_len + 1
tokens; inputs are tokens[:-1] and labels tokens[1:], so row i of the logits predicts labels[i]
(the alignment the loss expects). Every sequence starts at a document boundary, which keeps the
demo language's truth exact. Unused tail positions are padding with label -100.

Prompt/completion and chat records (formats: backend/services/records.py) train on their
completion only. With a tokenizer that has a chat template they go through it, as the model saw
its own fine-tuning data: prompt ids = the template over the prompt's messages with the
generation prompt, full ids = the template over the whole conversation, and the completion is
full[len(prompt):] (its end-of-turn tokens included). Such documents bring their own start
tokens, so sequences of them get no extra BOS. Without a chat template the prompt's text comes
first, then the completion's and EOS.
"""

import random
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from backend.services.records import (
    Messages,
    Record,
    dataset_files,
    no_completions,
    parse_line,
    read_records,
)
from worker.distill import demo_language

IGNORE = -100
PACK_SEED = 0


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


Doc = tuple[list[int], list[bool]]  # tokens, and whether each token is a training target


def _pack(
    docs: list[Doc], seq_len: int, bos: int | None, pad: int
) -> tuple[list[list[int]], list[list[bool]]]:
    """Greedy packing into chunks of seq_len + 1 tokens, each starting at a document start.
    Returns the padded chunks and, per token, whether it may be predicted (a label)."""
    head = ([bos], [False]) if bos is not None else ([], [])
    chunks: list[list[int]] = []
    flags: list[list[bool]] = []
    cur, cur_f = list(head[0]), list(head[1])
    for ids, targets in docs:
        room = seq_len + 1 - len(head[0])  # a document longer than a sequence is truncated
        ids, targets = ids[:room], targets[:room]
        if len(cur) + len(ids) > seq_len + 1 and len(cur) > len(head[0]):
            chunks.append(cur)
            flags.append(cur_f)
            cur, cur_f = list(head[0]), list(head[1])
        cur += ids
        cur_f += targets
    if len(cur) > len(head[0]):
        chunks.append(cur)
        flags.append(cur_f)
    n = seq_len + 1
    return ([c + [pad] * (n - len(c)) for c in chunks], [f + [False] * (n - len(f)) for f in flags])


def _to_split(chunks: list[list[int]], flags: list[list[bool]]) -> Split:
    t = torch.tensor(chunks, dtype=torch.long)
    target = torch.tensor(flags, dtype=torch.bool)
    labels = torch.where(target[:, 1:], t[:, 1:], IGNORE)
    return Split(input_ids=t[:, :-1].contiguous(), labels=labels.contiguous())


def _render(tokenizer, messages: Messages, *, generation_prompt: bool) -> list[int]:
    # Rendered to text, then encoded without special tokens: what apply_chat_template's own
    # tokenize=True does (the template writes the special tokens itself).
    text = tokenizer.apply_chat_template(
        messages, tokenize=False, add_generation_prompt=generation_prompt
    )
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def encode_chat(tokenizer, prompt: str | Messages, completion: str) -> Doc:
    """A prompt (a string is one user message) and the assistant's completion through the
    tokenizer's chat template: tokens, and whether each is a completion token."""
    messages = [{"role": "user", "content": prompt}] if isinstance(prompt, str) else prompt
    head = _render(tokenizer, messages, generation_prompt=True)
    answer = {"role": "assistant", "content": completion}
    full = _render(tokenizer, [*messages, answer], generation_prompt=False)
    if full[: len(head)] != head:
        raise ValueError(
            "the chat template does not render the prompt with its generation prompt as a "
            "prefix of the whole conversation, so the completion's tokens cannot be told apart"
        )
    return full, [False] * len(head) + [True] * (len(full) - len(head))


def _encode_plain(tokenizer, prompt: str | Messages | None, text: str, tail: list[int]) -> Doc:
    body = tokenizer(text, add_special_tokens=False)["input_ids"] + tail
    if prompt is None:
        return body, [True] * len(body)
    if not isinstance(prompt, str):  # messages without a chat template: their text, a line each
        prompt = "".join(m["content"] + "\n" for m in prompt)
    # Prompt tokens are context only: no loss on them.
    head = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    return head + body, [False] * len(head) + [True] * len(body)


def _encode_split(
    records: list[Record], tokenizer, seq_len: int, eos: int | None, seed: int | None
):
    chat = bool(getattr(tokenizer, "chat_template", None))
    docs: list[Doc] = []
    tail = [eos] if eos is not None else []
    for prompt, text in records:
        if prompt is not None and chat:
            docs.append(encode_chat(tokenizer, prompt, text))
        else:
            docs.append(_encode_plain(tokenizer, prompt, text, tail))
    if seed is not None:
        random.Random(seed).shuffle(docs)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    # Chat-rendered documents start with the template's own start tokens.
    templated = chat and any(p is not None for p, _ in records)
    return _pack(docs, seq_len, None if templated else tokenizer.bos_token_id, pad)


def _check_targets(split: Split, records: list[Record], name: str, seq_len: int) -> None:
    if no_completions(records):
        raise ValueError(
            f"dataset '{name}': no completion tokens to learn from (every completion is empty)"
        )
    if not bool((split.labels != IGNORE).any()):
        raise ValueError(
            f"dataset '{name}': no completion tokens to learn from: every completion is empty "
            f"or cut off by seq_len {seq_len} (the prompts alone fill the sequences)"
        )


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
    path: Path | str,
    tokenizer,
    *,
    seq_len: int,
    vocab_size: int,
    max_eval_sequences: int | None = None,
) -> DistillData:
    """Load a dataset (a folder with dataset.json, or a .txt / .jsonl file) as packed train
    and eval splits."""
    if isinstance(path, str):  # a 🤗 datasets id (checked at submit)
        name, kind, train, eval_path = path, "hub", path, None
    elif path.is_file():
        name, kind, train, eval_path = path.name, "text", path, None
    else:  # the folder's dataset.json, read as the api checked it at submit
        name, (kind, train, eval_path) = path.name, dataset_files(path)
    train_records = read_hub_records(train) if kind == "hub" else read_records(train)
    if eval_path is not None:
        eval_records = read_records(eval_path)
    else:  # hold out 5 % (at least one document) of the training documents
        n_eval = max(1, len(train_records) // 20)
        train_records, eval_records = train_records[:-n_eval], train_records[-n_eval:]
    # The demo language ends each sentence with "."; other text gets the tokenizer's EOS.
    eos = None if kind == "demo-language" else tokenizer.eos_token_id
    # Packing order is fixed (PACK_SEED), not the run's seed: runs that differ only in seed,
    # T or alpha see the same sequences (in their own order), so a teacher cache serves all.
    train = _to_split(*_encode_split(train_records, tokenizer, seq_len, eos, PACK_SEED))
    _check_targets(train, train_records, name, seq_len)
    eval_ = _to_split(*_encode_split(eval_records, tokenizer, seq_len, eos, None))
    if max_eval_sequences is not None:
        eval_ = Split(eval_.input_ids[:max_eval_sequences], eval_.labels[:max_eval_sequences])
    if kind == "demo-language":
        eval_.truth = _demo_truth(eval_, tokenizer, vocab_size)
    return DistillData(train=train, eval=eval_, kind=kind)


def read_hub_records(name: str) -> list[Record]:
    """The train split of a 🤗 datasets id: a "text" column, or "prompt" and "completion"."""
    import datasets  # optional: only runs on Hub datasets need it

    ds = datasets.load_dataset(name, split="train")
    if "text" in ds.column_names:
        return [(None, t) for t in ds["text"] if t and t.strip()]
    if {"prompt", "completion"} <= set(ds.column_names):
        return list(zip(ds["prompt"], ds["completion"], strict=True))
    if "messages" in ds.column_names:
        return [
            parse_line({"messages": m}, f"dataset '{name}' row {i}")
            for i, m in enumerate(ds["messages"], 1)
        ]
    raise ValueError(
        f"dataset '{name}' has columns {ds.column_names}: expected \"text\", "
        '"prompt" and "completion", or "messages"'
    )


def batch_indices(n: int, index: int, batch_size: int, seed: int) -> Tensor:
    """Rows of the index-th training batch: epochs reshuffle the n sequences with
    (seed, epoch), so any batch can be recomputed from its index alone (a resumed run sees
    the same data)."""
    per_epoch = max(1, n // batch_size)
    epoch, k = divmod(index, per_epoch)
    g = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    perm = torch.randperm(n, generator=g)
    if n >= batch_size:
        return perm[k * batch_size : (k + 1) * batch_size]
    return perm.repeat(batch_size // n + 1)[:batch_size]  # fewer sequences than a batch


def batch_at(split: Split, index: int, batch_size: int, seed: int) -> tuple[Tensor, Tensor]:
    idx = batch_indices(len(split), index, batch_size, seed)
    return split.input_ids[idx], split.labels[idx]
