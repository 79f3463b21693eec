"""The CUDA path: bf16 autocast forward passes, float32 loss. Runs only where a GPU is present
(never required by CI, which has none); everywhere else these tests skip."""

import math

import pytest
import torch

from backend.schemas import RunConfig
from backend.settings import Settings
from worker.distill.loggers import ListLogger
from worker.distill.losses import distillation_loss
from worker.distill.setup import build_recipe

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def test_bf16_loss_on_cuda_matches_float32_on_cpu():
    g = torch.Generator().manual_seed(0)
    s = torch.randn(2048, 32000, generator=g) * 3
    t = torch.randn(2048, 32000, generator=g) * 3
    y = torch.randint(0, 32000, (2048,), generator=g)
    y[::7] = -100
    ref = distillation_loss(s, t, y, temperature=2.0, alpha=0.5)
    for div in ("forward_kl", "reverse_kl", "jsd"):
        sc = s.cuda().bfloat16().requires_grad_(True)
        out = distillation_loss(
            sc, t.cuda().bfloat16(), y.cuda(), temperature=2.0, alpha=0.5, divergence=div
        )
        out.loss.backward()
        assert out.loss.dtype == torch.float32 and torch.isfinite(out.loss)
        assert torch.isfinite(sc.grad.float()).all() and sc.grad.dtype == torch.bfloat16
        if div == "forward_kl":
            assert out.loss.item() == pytest.approx(ref.loss.item(), rel=2e-2)


def _run(kit, device: str, steps: int = 30) -> ListLogger:
    cfg = RunConfig(
        name="cuda",
        teacher="demo-teacher",
        student="demo-student-s",
        dataset="demo",
        max_steps=steps,
        batch_size=8,
        seq_len=32,
        learning_rate=3e-3,
        eval_interval=10,
        eval_batches=2,
        seed=0,
    )
    logger = ListLogger()
    build_recipe(cfg, Settings(data_dir=kit), logger=logger, device=torch.device(device)).train()
    return logger


def test_demo_run_on_cuda_tracks_the_cpu_curve(tiny_kit):
    gpu = _run(tiny_kit, "cuda")
    cpu = _run(tiny_kit, "cpu")
    for key in ("train/soft_loss", "train/hard_loss", "eval/kl_true"):
        a = [v for _, v in gpu.series(key)]
        b = [v for _, v in cpu.series(key)]
        assert len(a) == len(b) and all(math.isfinite(v) for v in a), key
        # bf16 forward passes: same curve within a few per cent.
        assert max(abs(x - y) / max(abs(y), 1e-3) for x, y in zip(a, b, strict=True)) < 0.1, key
