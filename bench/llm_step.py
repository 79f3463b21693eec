"""P9: a distillation step at LLM shape, a SmolLM2-shaped pair, 4,096 tokens per step.

The pair: a Llama teacher of SmolLM2-135M's shape (30 layers, width 576, 9 heads / 3 KV heads,
MLP 1,536, vocabulary 49,152, tied embeddings) and a 10-layer student of the same shape,
randomly initialised from the config (the step's cost does not depend on the weights); with
--data-dir, the real kit's `smollm2-135m-instruct` and `smollm2-student-l10` from its models
folder instead. Tokens are random ids, every position a target (8 x 512 = 4,096 per step).

Time: the engine's own optimizer step (DistillationRecipe.train_step, loss_impl="hidden":
the loss from final hidden states and heads, chunk by chunk) ÷ its floor, the same step
without distillation: the teacher's forward pass (under inference_mode, with its logits, as
bench/engine.py's P1 counts it), the student's forward and backward with plain cross-entropy
through the same head (full logits), gradient clipping and the same AdamW step. They are
interleaved (floor, step, floor, step ...) after a warm-up step; the figure is the median of
each pair's ratio (the load of a shared machine drifts between pairs), with the medians too.
The floor without the teacher's head (its 4,096 x 49,152 logits matmul, timed on its own) is
printed as well.

Memory: the loss's extra peak memory (forward + backward, from the final hidden states and
heads, both heads' logits matmuls included; the student's hidden-state and head gradients
are part of every variant) ÷ the naive textbook loss (full logits of both models, log-softmax
over them, autograd keeping every intermediate). Each variant runs in a fresh process with
glibc's mmap threshold fixed at 64 KiB (MALLOC_MMAP_THRESHOLD_), so every tensor of any size
is its own mapping, returned to the system when freed: the resident set then follows the live
tensors. After a warm-up pass the peak-RSS mark is reset (/proc/self/clear_refs, "5"), and the
extra memory is the peak RSS during a second pass minus the RSS before it. The engine's
logits-path loss (losses.distillation_loss on full logits) is measured the same way.

    python bench/llm_step.py [--data-dir data] [--reps 2]
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from backend.schemas import RunConfig  # noqa: E402
from worker.distill.data import DistillData, Split, batch_at  # noqa: E402
from worker.distill.fused import final_hidden, head_of, hidden_distillation_loss  # noqa: E402
from worker.distill.loggers import NullLogger  # noqa: E402
from worker.distill.losses import distillation_loss  # noqa: E402
from worker.distill.trainer import DistillationRecipe  # noqa: E402

VOCAB, WIDTH, BATCH, SEQ = 49_152, 576, 8, 512
TOKENS = BATCH * SEQ
TEACHER_LAYERS, STUDENT_LAYERS = 30, 10


def smollm2_shaped(layers: int, seed: int):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    cfg = LlamaConfig(
        vocab_size=VOCAB,
        hidden_size=WIDTH,
        intermediate_size=1_536,
        num_hidden_layers=layers,
        num_attention_heads=9,
        num_key_value_heads=3,
        max_position_embeddings=2_048,
        rope_theta=100_000.0,
        rms_norm_eps=1e-5,
        tie_word_embeddings=True,
    )
    return LlamaForCausalLM(cfg)


def the_pair(data_dir: str | None):
    if data_dir is None:
        return smollm2_shaped(TEACHER_LAYERS, 0), smollm2_shaped(STUDENT_LAYERS, 1), "random init"
    from worker.distill.models import load_causal_lm_from

    models = Path(data_dir) / "models"
    teacher = load_causal_lm_from(models / "smollm2-135m-instruct", torch.float32)
    student = load_causal_lm_from(models / "smollm2-student-l10", torch.float32)
    return teacher, student, f"the real kit in {models}"


def step_times(data_dir: str | None, reps: int) -> dict:
    teacher, student, source = the_pair(data_dir)
    ids = torch.randint(0, VOCAB, (BATCH * (reps + 2), SEQ + 1), generator=torch.Generator())
    split = Split(input_ids=ids[:, :-1].contiguous(), labels=ids[:, 1:].contiguous())
    cfg = RunConfig(
        name="bench",
        teacher="-",
        student="-",
        dataset="-",
        batch_size=BATCH,
        seq_len=SEQ,
        loss_impl="hidden",
        dtype="float32",
        temperature=2.0,
        alpha=0.5,
    )
    recipe = DistillationRecipe(
        cfg,
        student=student,
        teacher=teacher,
        data=DistillData(train=split, eval=split, kind="synthetic"),
        logger=NullLogger(),
        device=torch.device("cpu"),
        vocab_size=VOCAB,
    )
    recipe.setup()
    assert recipe.loss_impl == "hidden", recipe.loss_impl_reason

    def distill(i: int) -> None:
        recipe.train_step(i)

    def floor(i: int) -> None:
        # Same batch, same passes, same optimizer step; the loss is plain CE on the labels.
        ids, labels = batch_at(split, i, BATCH, cfg.seed)
        with torch.inference_mode():
            teacher(input_ids=ids).logits  # noqa: B018 - the teacher pass the floor must pay
        w, _ = head_of(student)
        logits = final_hidden(student, ids) @ w.T
        loss = F.cross_entropy(logits.flatten(0, 1), labels.flatten(), ignore_index=-100)
        del logits
        loss.backward()
        torch.nn.utils.clip_grad_norm_(student.parameters(), cfg.max_grad_norm)
        recipe.optimizer.step()
        recipe.optimizer.zero_grad(set_to_none=True)

    def timed(fn, i: int) -> float:
        t0 = time.perf_counter()
        fn(i)
        return time.perf_counter() - t0

    # Warm-up: the first step also creates AdamW's state, which the floor then shares.
    print(f"  warm-up distillation step {timed(distill, 0):.2f} s", flush=True)
    t_distill, t_floor = [], []
    for i in range(1, reps + 1):
        t_floor.append(timed(floor, i))
        t_distill.append(timed(distill, i))
        print(
            f"  rep {i}: floor {t_floor[-1]:.2f} s, distillation step {t_distill[-1]:.2f} s",
            flush=True,
        )
    h = torch.randn(TOKENS, WIDTH)
    w, _ = head_of(teacher)
    with torch.inference_mode():
        t_head = statistics.median(timed(lambda _: h @ w.T, 0) for _ in range(3))
    return {
        "source": source,
        "distill": statistics.median(t_distill),
        "floor": statistics.median(t_floor),
        # Each distillation step against the floor step just before it: robust to the load
        # of a shared machine drifting over the minutes of the run.
        "pair_ratio": statistics.median(d / f for d, f in zip(t_distill, t_floor, strict=True)),
        "teacher_head": t_head,
    }


def _rss(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field):
            return int(line.split()[1]) * 1024
    raise RuntimeError(field)


def naive_loss(s, t, y, temperature=2.0, alpha=0.5):
    """The textbook full-vocabulary implementation: every intermediate kept by autograd."""
    log_q = torch.log_softmax(s.float() / temperature, -1)
    log_p = torch.log_softmax(t.float() / temperature, -1)
    kl = (log_p.exp() * (log_p - log_q)).sum(-1)
    soft = temperature**2 * kl.mean()
    hard = F.cross_entropy(s.float(), y)
    return alpha * soft + (1 - alpha) * hard


def memory_child(variant: str) -> dict:
    """Runs in its own process: extra peak RSS of one loss forward + backward."""
    g = torch.Generator().manual_seed(0)
    hs_all = torch.randn(TOKENS, WIDTH, generator=g).requires_grad_(True)
    ht_all = torch.randn(TOKENS, WIDTH, generator=g)
    w_s = (torch.randn(VOCAB, WIDTH, generator=g) * 0.05).requires_grad_(True)
    w_t = torch.randn(VOCAB, WIDTH, generator=g) * 0.05
    y_all = torch.randint(0, VOCAB, (TOKENS,), generator=g)

    def run(n=TOKENS):
        h_s, h_t, y = hs_all[:n], ht_all[:n], y_all[:n]
        if variant == "hidden":
            loss = hidden_distillation_loss(h_s, w_s, h_t, w_t, y, temperature=2.0, alpha=0.5).loss
        else:
            s = h_s @ w_s.T
            with torch.no_grad():
                t = h_t @ w_t.T
            if variant == "naive":
                loss = naive_loss(s, t, y)
            else:  # the engine's logits path
                loss = distillation_loss(s, t, y, temperature=2.0, alpha=0.5).loss
            del s, t
        loss.backward()

    run(256)  # warm-up on a few rows (thread pools, lazy initialisation); then the measure
    hs_all.grad = w_s.grad = None
    Path("/proc/self/clear_refs").write_text("5")  # resets the peak-RSS mark (VmHWM)
    before = _rss("VmRSS")
    t0 = time.perf_counter()
    run()
    secs = time.perf_counter() - t0
    return {"extra": _rss("VmHWM") - before, "seconds": secs}


def memory(variant: str) -> dict:
    code = (
        f"import json, sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); "
        f"import llm_step; print(json.dumps(llm_step.memory_child({variant!r})))"
    )
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536"}
    res = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env
    )
    return json.loads(res.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", default=None, help="use the real kit under DATA_DIR/models")
    ap.add_argument("--reps", type=int, default=2, help="measured steps of each variant")
    ap.add_argument(
        "--logits-path", action="store_true", help="also measure the engine's logits-path loss"
    )
    args = ap.parse_args()
    print(f"CPU, torch {torch.__version__}, {torch.get_num_threads()} threads; {TOKENS} tokens")
    mib = 2**20
    variants = ("hidden", "naive") + (("logits",) if args.logits_path else ())
    mem = {v: memory(v) for v in variants}
    for v, m in mem.items():
        print(
            f"  loss {v}: extra peak {m['extra'] / mib:.0f} MiB, {m['seconds']:.2f} s", flush=True
        )
    ratio = mem["hidden"]["extra"] / mem["naive"]["extra"]
    print(
        f"P9 memory: loss from hidden states {mem['hidden']['extra'] / mib:.0f} MiB ÷ naive "
        f"full-logits loss {mem['naive']['extra'] / mib:.0f} MiB = {ratio:.3f}  (target ≤ 0.15)"
    )
    t = step_times(args.data_dir, args.reps)
    print(
        f"P9 time ({t['source']}): distillation step {t['distill']:.2f} s ÷ floor "
        f"{t['floor']:.2f} s (medians); median of the interleaved pairs' ratios "
        f"{t['pair_ratio']:.3f}  (target ≤ 1.15)"
    )
    strict = t["floor"] - t["teacher_head"]
    print(
        f"   (the floor without the teacher's logits matmul, {t['teacher_head']:.2f} s: "
        f"{strict:.2f} s, ratio {t['distill'] / strict:.3f})"
    )


if __name__ == "__main__":
    main()
