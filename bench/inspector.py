"""P7: inspecting a 64-token prompt on teacher + student at 5 temperatures ÷ one forward pass
of both models (the floor: every temperature is a transform of the same logits). Target ≤ 1.3.

The numerator is the whole `inspect_prompt` call as the worker runs it (tokenizing and building
the answer included); the floor is the same forward call `inspect_prompt` makes, on the same
input ids, with the same (cached) models. The two are timed in alternating rounds, so a load
change on a shared machine hits both sides alike instead of whichever block ran during it.

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
from worker.inspect import _model, _source, _tokenizer, inspect_prompt  # noqa: E402


def interleaved_ms(fns: dict, rounds: int) -> dict[str, float]:
    """Median ms of each function, timed in alternating order round by round."""
    for fn in fns.values():  # warm up: model and tokenizer loads, allocator, first-call paths
        fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    items = list(fns.items())
    for r in range(rounds):
        for name, fn in items if r % 2 == 0 else items[::-1]:
            t0 = time.perf_counter()
            fn()
            times[name].append((time.perf_counter() - t0) * 1e3)
    return {name: statistics.median(ts) for name, ts in times.items()}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data-dir", default="data")
    ap.add_argument("--rounds", type=int, default=100)
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
    sources = [_source(m, settings) for m in req.models]
    models = [_model(s, device) for s in sources]
    ids = torch.tensor([_tokenizer(sources[0]).tokenizer(req.prompt)["input_ids"]], device=device)

    @torch.inference_mode()
    def floor():
        # The call inspect_prompt makes: logits at every position, no KV cache.
        for m in models:
            m(input_ids=ids, use_cache=False).logits.float().cpu()

    t = interleaved_ms(
        {"floor": floor, "inspect": lambda: inspect_prompt(req, settings)}, args.rounds
    )
    print(
        f"P7 inspect {ids.shape[1]} tokens, 2 models, 5 temperatures: {t['inspect']:.2f} ms ÷ "
        f"forward passes {t['floor']:.2f} ms = {t['inspect'] / t['floor']:.2f}  (target ≤ 1.3; "
        f"torch threads {torch.get_num_threads()}, {device})"
    )


if __name__ == "__main__":
    main()
