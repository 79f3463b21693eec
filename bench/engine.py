"""Engine benchmarks, each a ratio against a baseline measured in the same run.

P1  distillation step time ÷ its floor (teacher forward + student forward/backward with CE only
    and the same optimizer step, same batch), on the demo pair and on a V = 32,000 config with
    4,096 tokens per step. Target ≤ 1.10.
P2  the loss's extra peak memory ÷ a naive full-vocabulary implementation (V = 32,000, 4,096
    tokens, float32 logits), and its time ÷ the naive time. Target ≤ 0.15 at ≤ 1.0× the time.
P8  wall time of a 4-run sweep (T = 1, 2, 4, 8 on the demo pair, 200 steps each) with the
    teacher-logit cache (top-k, built by the first run) ÷ without. Target ≤ 0.6. Also prints
    how far the cached runs end from the dense ones.

    python bench/engine.py [--data-dir data] [--steps 5]
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
from backend.settings import Settings  # noqa: E402
from worker.distill.data import DistillData, Split, load_dataset  # noqa: E402
from worker.distill.loggers import NullLogger  # noqa: E402
from worker.distill.losses import distillation_loss  # noqa: E402
from worker.distill.trainer import DistillationRecipe  # noqa: E402

V, TOKENS = 32_000, 4_096


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def _median_time(fn, steps: int, device: torch.device) -> float:
    fn(0)  # warm-up (allocator, kernels)
    times = []
    for i in range(1, steps + 1):
        _sync(device)
        t0 = time.perf_counter()
        fn(i)
        _sync(device)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def p1(cfg: RunConfig, student, teacher, data: DistillData, vocab: int, device, steps: int):
    recipe = DistillationRecipe(
        cfg,
        student=student,
        teacher=teacher,
        data=data,
        logger=NullLogger(),
        device=device,
        vocab_size=vocab,
    )
    recipe.setup()

    def distill(i: int) -> None:
        recipe.train_step(i)

    def floor(i: int) -> None:
        # Same batch, same passes, same optimizer step; the loss is plain CE on the labels.
        from worker.distill.data import batch_at

        ids, labels = batch_at(data.train, i, cfg.batch_size, cfg.seed)
        ids, labels = ids.to(device), labels.to(device)
        with torch.inference_mode(), recipe._autocast():
            teacher(input_ids=ids).logits  # noqa: B018 - the teacher pass the floor must pay
        with recipe._autocast():
            logits = student(input_ids=ids).logits[..., :vocab]
        loss = F.cross_entropy(logits.float().flatten(0, 1), labels.flatten(), ignore_index=-100)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(student.parameters(), cfg.max_grad_norm)
        recipe.optimizer.step()
        recipe.optimizer.zero_grad(set_to_none=True)

    t_floor = _median_time(floor, steps, device)
    t_distill = _median_time(distill, steps, device)
    t_floor2 = _median_time(floor, steps, device)  # again, to see the noise
    base = min(t_floor, t_floor2)
    return t_distill, base, t_distill / base


def demo_pair(data_dir: Path, device):
    from worker.distill.models import load_causal_lm, load_tokenizer

    settings = Settings(data_dir=data_dir)
    cfg = RunConfig(
        name="bench",
        teacher="demo-teacher",
        student="demo-student-s",
        dataset="demo",
        batch_size=16,
        seq_len=64,
    )
    tok = load_tokenizer(cfg.student, settings)
    data = load_dataset(settings.datasets_dir / "demo", tok, seq_len=64, vocab_size=len(tok))
    return (
        cfg,
        load_causal_lm(cfg.student, settings),
        load_causal_lm(cfg.teacher, settings),
        data,
        len(tok),
    )


def big_pair(device):
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    seq = 512
    batch = TOKENS // seq

    def model(layers, width):
        return GPT2LMHeadModel(
            GPT2Config(
                vocab_size=V,
                n_positions=seq,
                n_embd=width,
                n_layer=layers,
                n_head=width // 64,
                resid_pdrop=0,
                embd_pdrop=0,
                attn_pdrop=0,
            )
        )

    ids = torch.randint(0, V, (batch * 4, seq + 1))
    split = Split(input_ids=ids[:, :-1].contiguous(), labels=ids[:, 1:].contiguous())
    data = DistillData(train=split, eval=split, kind="synthetic")
    cfg = RunConfig(
        name="bench", teacher="-", student="-", dataset="-", batch_size=batch, seq_len=seq
    )
    return cfg, model(2, 256), model(4, 512), data, V


def naive_loss(s, t, y, temperature=2.0, alpha=0.5):
    """The textbook full-vocabulary implementation: every intermediate kept by autograd."""
    mask = y != -100
    n = mask.sum()
    log_q = torch.log_softmax(s.float() / temperature, -1)
    log_p = torch.log_softmax(t.float() / temperature, -1)
    kl = (log_p.exp() * (log_p - log_q)).sum(-1)
    soft = temperature**2 * (kl * mask).sum() / n
    hard = F.cross_entropy(s.float(), y, ignore_index=-100, reduction="sum") / n
    return alpha * soft + (1 - alpha) * hard


def _rss_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field):
            return int(line.split()[1])
    raise RuntimeError(field)


def p2_child(variant: str, device_name: str) -> dict:
    """Runs in its own process: peak memory of one loss forward + backward beyond its inputs."""
    device = torch.device(device_name)
    g = torch.Generator().manual_seed(0)
    s = (torch.randn(TOKENS, V, generator=g) * 2).to(device).requires_grad_(True)
    t = (torch.randn(TOKENS, V, generator=g) * 2).to(device)
    y = torch.randint(0, V, (TOKENS,), generator=g).to(device)
    grad_bytes = s.numel() * s.element_size()

    def run():
        if variant == "naive":
            loss = naive_loss(s, t, y)
        else:
            loss = distillation_loss(s, t, y, temperature=2.0, alpha=0.5).loss
        loss.backward()
        _sync(device)

    run()  # warm-up; then measure a second, identical pass
    s.grad = None
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
    else:
        before = _rss_kb("VmRSS") * 1024
    t0 = time.perf_counter()
    run()
    secs = time.perf_counter() - t0
    peak = torch.cuda.max_memory_allocated() if device.type == "cuda" else _rss_kb("VmHWM") * 1024
    extra = peak - before
    return {"extra": extra, "extra_beyond_grad": extra - grad_bytes, "seconds": secs}


def p2(device) -> dict:
    out = {}
    for variant in ("naive", "chunked"):
        # A fresh process each, so the CPU's peak-RSS reading belongs to this variant alone.
        code = (
            f"import json, sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); "
            f"import engine; print(json.dumps(engine.p2_child({variant!r}, "
            f"{device.type!r})))"
        )
        res = subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            check=True,
            env={**os.environ},
        )
        out[variant] = json.loads(res.stdout.strip().splitlines()[-1])
    return out


def p8(data_dir: Path, device, k: int) -> None:
    import tempfile

    from backend.services.presets import PRESETS
    from worker.distill.loggers import ListLogger
    from worker.distill.setup import build_recipe

    data_dir = data_dir.resolve()
    temps = [1.0, 2.0, 4.0, 8.0]
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(
            data_dir=Path(tmp),
            model_roots=[data_dir / "models"],
            dataset_roots=[data_dir / "datasets"],
        )
        results = {}
        for label, cache_k in (("dense", None), ("cached", k)):
            finals = []
            t0 = time.perf_counter()
            for temperature in temps:
                cfg = RunConfig.model_validate(
                    {
                        **PRESETS[0].config,
                        "temperature": temperature,
                        "alpha": 0.9,
                        "teacher_cache_k": cache_k,
                    }
                )
                logger = ListLogger()
                build_recipe(cfg, settings, logger=logger, device=device).train()
                finals.append(logger)
            _sync(device)
            results[label] = (time.perf_counter() - t0, finals)
    (t_dense, dense), (t_cached, cached) = results["dense"], results["cached"]
    print(
        f"P8 4-run sweep: with the teacher-logit cache (k={k}) {t_cached:.1f} s ÷ without "
        f"{t_dense:.1f} s = {t_cached / t_dense:.3f}  (target ≤ 0.6)"
    )
    for temperature, a, b in zip(temps, dense, cached, strict=True):
        kd = a.series("eval/kl_true")[-1][1]
        kc = b.series("eval/kl_true")[-1][1]
        sd = dict(a.series("train/soft_loss"))
        sc = dict(b.series("train/soft_loss"))
        rel = statistics.mean(abs(sc[s] - sd[s]) / sd[s] for s in sd)
        print(
            f"P8   T={temperature:g}: final eval/kl_true dense {kd:.4f} vs cached {kc:.4f}; "
            f"train/soft_loss differs by {rel * 100:.2f} % on average"
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", default="data")
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--cache-k", type=int, default=16)
    args = ap.parse_args()
    device = torch.device(args.device)
    print(
        f"device: {device} ({torch.cuda.get_device_name() if device.type == 'cuda' else 'CPU'}"
        f", torch {torch.__version__}, {torch.get_num_threads()} threads)"
    )
    for name, build in (
        ("demo pair", lambda: demo_pair(Path(args.data_dir), device)),
        (f"V={V}, {TOKENS} tokens/step", lambda: big_pair(device)),
    ):
        t_d, t_f, ratio = p1(*build(), device=device, steps=args.steps)
        print(
            f"P1 {name}: distillation step {t_d * 1e3:.1f} ms ÷ floor {t_f * 1e3:.1f} ms "
            f"= {ratio:.3f}  (target ≤ 1.10)"
        )
    mem = p2(device)
    n, c = mem["naive"], mem["chunked"]
    mib = 2**20
    print(
        f"P2 naive: extra peak {n['extra'] / mib:.0f} MiB ({n['extra_beyond_grad'] / mib:.0f} "
        f"MiB beyond the logits' gradient), {n['seconds'] * 1e3:.0f} ms"
    )
    print(
        f"P2 chunked: extra peak {c['extra'] / mib:.0f} MiB ({c['extra_beyond_grad'] / mib:.0f}"
        f" MiB beyond the logits' gradient), {c['seconds'] * 1e3:.0f} ms"
    )
    print(
        f"P2 ratio (extra peak incl. the gradient) = {c['extra'] / n['extra']:.3f}; beyond the "
        f"gradient = {max(c['extra_beyond_grad'], 0) / max(n['extra_beyond_grad'], 1):.3f} "
        f"(target ≤ 0.15); time ratio = {c['seconds'] / n['seconds']:.3f} (target ≤ 1.0)"
    )
    p8(Path(args.data_dir), device, k=args.cache_k)


if __name__ == "__main__":
    main()
