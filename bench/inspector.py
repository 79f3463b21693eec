"""P7: inspecting a 64-token prompt on teacher + student at 5 temperatures ÷ one forward pass
of both models (the floor: every temperature is a transform of the same logits). Target ≤ 1.3.

    python bench/inspector.py --data-dir data
"""

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from backend.schemas import InspectRequest  # noqa: E402
from backend.settings import Settings  # noqa: E402
from worker.distill import demo_language  # noqa: E402
from worker.inspect import _model, _source, inspect_prompt  # noqa: E402


def median_ms(fn, n: int = 30) -> float:
    fn()
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data-dir", default="data")
    args = ap.parse_args()
    settings = Settings(data_dir=Path(args.data_dir))
    words = " ".join(demo_language.sample_corpus(12, seed=5)).split()[:63]
    req = InspectRequest(
        models=["demo-teacher", "demo-student-s"],
        prompt=" ".join(words),
        temperatures=[0.5, 1, 2, 4, 8],
        k=10,
    )
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    models = [_model(_source(m, settings), device) for m in req.models]
    from worker.distill.models import load_tokenizer

    ids = torch.tensor(
        [load_tokenizer("demo-teacher", settings)(req.prompt)["input_ids"]], device=device
    )

    @torch.inference_mode()
    def floor():
        for m in models:
            m(input_ids=ids).logits.float().cpu()

    t_floor = median_ms(floor)
    t_inspect = median_ms(lambda: inspect_prompt(req, settings))
    print(
        f"P7 inspect {ids.shape[1]} tokens, 2 models, 5 temperatures: {t_inspect:.1f} ms ÷ "
        f"forward passes {t_floor:.1f} ms = {t_inspect / t_floor:.2f}  (target ≤ 1.3)"
    )


if __name__ == "__main__":
    main()
