"""The real kit's data: the project's prompt set answered by the teacher itself (greedy, under
its chat template: sequence-level KD data), and the teacher's profile on it: how peaked an
instruction-tuned teacher is on its own answers, and how much of its mass a top 8 keeps as T
rises."""

import json
import re
from pathlib import Path

import torch
from tqdm import tqdm

from worker.distill.data import encode_chat

PROMPTS = Path(__file__).with_name("prompts.jsonl")
GENERATION = {"max_new_tokens": 64, "do_sample": False, "batch_size": 16}
HOLD_OUT_EVERY = 10  # every 10th prompt is held out for eval
TEMPERATURES = (1.0, 2.0, 4.0)
TOP = 8
BINS = 10
CONFIDENT = 0.9
CAPITAL_PROMPT = "The capital of France is"


def read_prompts(limit: int | None = None, path: Path = PROMPTS) -> list[str]:
    with path.open(encoding="utf-8") as f:
        prompts = [json.loads(line)["prompt"] for line in f if line.strip()]
    return prompts[:limit] if limit else prompts


def split(prompts: list[str]) -> tuple[list[int], list[int]]:
    """Indices of the training and held-out prompts (every HOLD_OUT_EVERY-th is held out;
    a set of fewer than HOLD_OUT_EVERY prompts still holds one out)."""
    held = set(range(HOLD_OUT_EVERY - 1, len(prompts), HOLD_OUT_EVERY)) or {len(prompts) - 1}
    return [i for i in range(len(prompts)) if i not in held], sorted(held)


def trim_unfinished(text: str) -> str:
    """An answer cut off at max_new_tokens, back to its last sentence or line end when one is
    in its second half or later: the chat template closes every completion with an end-of-turn
    token, which after half a sentence would teach the student to stop mid-sentence."""
    ends = [m.end() for m in _SENTENCE_END.finditer(text)]
    return text[: ends[-1]].rstrip() if ends and ends[-1] > len(text) // 2 else text


# A sentence's end (not a list number's "2.") or a line's.
_SENTENCE_END = re.compile(r"(?<![0-9])[.!?](?=\s|$)|\n")


def generate(model, tokenizer, prompts: list[str], *, progress: bool = True) -> list[dict]:
    """The teacher's greedy answer to every prompt: {"completion", "tokens", "finished"}."""
    max_new, size = GENERATION["max_new_tokens"], GENERATION["batch_size"]
    texts = [
        tokenizer.apply_chat_template(
            [{"role": "user", "content": p}], tokenize=False, add_generation_prompt=True
        )
        for p in prompts
    ]
    lengths = [len(tokenizer(t, add_special_tokens=False)["input_ids"]) for t in texts]
    # Batches of similar lengths waste little on padding; answers return in prompt order.
    order = sorted(range(len(prompts)), key=lengths.__getitem__)
    out: list[dict | None] = [None] * len(prompts)
    side = tokenizer.padding_side
    tokenizer.padding_side = "left"  # generation continues every row from its last token
    eos = tokenizer.eos_token_id
    try:
        bar = tqdm(total=len(prompts), unit="prompt", desc="teacher answers", disable=not progress)
        for start in range(0, len(order), size):
            rows = order[start : start + size]
            batch = tokenizer(
                [texts[i] for i in rows],
                add_special_tokens=False,
                padding=True,
                return_tensors="pt",
            )
            with torch.no_grad():
                ids = model.generate(
                    **batch, max_new_tokens=max_new, do_sample=False, pad_token_id=eos
                )
            for row, new in zip(rows, ids[:, batch["input_ids"].shape[1] :], strict=True):
                tokens = new.tolist()
                finished = eos in tokens
                tokens = tokens[: tokens.index(eos)] if finished else tokens
                text = tokenizer.decode(tokens, skip_special_tokens=True).strip()
                if not finished:
                    text = trim_unfinished(text)
                out[row] = {"completion": text, "tokens": len(tokens), "finished": finished}
            bar.update(len(rows))
        bar.close()
    finally:
        tokenizer.padding_side = side
    return out  # type: ignore[return-value]


@torch.no_grad()
def profile(model, tokenizer, records: list[dict]) -> dict:
    """On the completions' tokens, teacher forced: the top-1 probability's histogram and mean
    at T = 1, the share of positions where it holds ≥ 0.9, and at each T the mean mass in the
    top 8; and the same mass after CAPITAL_PROMPT."""
    top1, kept = [], {t: [] for t in TEMPERATURES}
    for r in records:
        ids, targets = encode_chat(tokenizer, r["prompt"], r["completion"])
        logits = model(input_ids=torch.tensor([ids])).logits[0].float()
        # Row i predicts token i + 1: the rows before each completion token.
        rows = torch.tensor(targets[1:]).nonzero().squeeze(1)
        z = logits[rows]
        top1.append(z.softmax(-1).max(-1).values)
        for t in TEMPERATURES:
            kept[t].append((z / t).softmax(-1).topk(TOP, -1).values.sum(-1))
    p1 = torch.cat(top1)
    counts = torch.histc(p1, bins=BINS, min=0.0, max=1.0)
    z = model(**tokenizer(CAPITAL_PROMPT, return_tensors="pt")).logits[0, -1].float()
    probs = z.softmax(-1)
    best = int(probs.argmax())
    return {
        "positions": int(p1.numel()),
        "vocab": int(z.numel()),
        "temperatures": list(TEMPERATURES),
        "top1_mean": float(p1.mean()),
        "confident_share": float((p1 >= CONFIDENT).float().mean()),
        "top1_histogram": {
            "edges": [i / BINS for i in range(BINS + 1)],
            "counts": [int(c) for c in counts],
        },
        f"top{TOP}_mass_by_t": {f"{t:g}": float(torch.cat(kept[t]).mean()) for t in TEMPERATURES},
        "after_prompt": {
            "prompt": CAPITAL_PROMPT,
            "top1_token": tokenizer.decode([best]),
            "top1_p": float(probs[best]),
            f"top{TOP}_mass_by_t": {
                f"{t:g}": float((z / t).softmax(-1).topk(TOP).values.sum()) for t in TEMPERATURES
            },
        },
    }


def describe(p: dict) -> str:
    """One line of a profile, for the terminal."""
    mass = p[f"top{TOP}_mass_by_t"]
    after = p["after_prompt"][f"top{TOP}_mass_by_t"]
    by_t = ", ".join(f"{mass[k]:.1%} at T = {k}" for k in mass)
    after_t = ", ".join(f"{after[k]:.1%} at T = {k}" for k in after)
    return (
        f"mean top-1 {p['top1_mean']:.2f}, top-1 ≥ {CONFIDENT} at {p['confident_share']:.0%} of "
        f"{p['positions']} answer tokens; its top {TOP} of {p['vocab']:,} tokens keep {by_t}; "
        f'after "{CAPITAL_PROMPT}": {after_t}'
    )
