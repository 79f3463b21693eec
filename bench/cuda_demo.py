"""The demo preset (200 steps, demo-teacher → demo-student-s at T = 2, α = 0.5) run through the
recipe on CUDA (bf16 autocast forward passes, float32 loss) and on the CPU, same seed: wall
time, final metrics, and how far the two curves are apart.

    python bench/cuda_demo.py --data-dir data
"""

import argparse
import math
import time
from pathlib import Path

import torch

from backend.schemas import RunConfig
from backend.services.presets import PRESETS
from backend.settings import Settings
from worker.distill.loggers import ListLogger
from worker.distill.setup import build_recipe


def run(settings: Settings, device: str) -> tuple[ListLogger, float]:
    logger = ListLogger()
    recipe = build_recipe(
        RunConfig.model_validate(PRESETS[0].config),
        settings,
        logger=logger,
        device=torch.device(device),
    )
    t0 = time.perf_counter()
    recipe.train()
    if device == "cuda":
        torch.cuda.synchronize()
    return logger, time.perf_counter() - t0


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--data-dir", default="data")
    args = p.parse_args()
    settings = Settings(data_dir=Path(args.data_dir))
    devices = ["cuda", "cpu"] if torch.cuda.is_available() else ["cpu"]
    results = {d: run(settings, d) for d in devices}
    for d, (lg, secs) in results.items():
        last = {k: v for s, k, v in lg.rows if s == 200}
        print(
            f"{d}: {secs:.1f} s for 200 steps; "
            + ", ".join(
                f"{k}={last[k]:.4f}"
                for k in (
                    "train/soft_loss",
                    "train/hard_loss",
                    "eval/kl_teacher",
                    "eval/top1_agreement",
                    "eval/kl_true",
                )
            )
        )
        bad = [(s, k) for s, k, v in lg.rows if not math.isfinite(v)]
        print(f"{d}: non-finite points: {len(bad)}")
    if len(results) == 2:
        a, b = results["cuda"][0], results["cpu"][0]
        for key in ("train/soft_loss", "train/hard_loss", "eval/kl_true"):
            xa, xb = [v for _, v in a.series(key)], [v for _, v in b.series(key)]
            rel = max(abs(x - y) / max(abs(y), 1e-3) for x, y in zip(xa, xb, strict=True))
            print(f"cuda vs cpu {key}: max relative difference {rel:.4f} over {len(xa)} points")


if __name__ == "__main__":
    main()
