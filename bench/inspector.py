"""P7: inspecting a 64-token prompt on teacher + student at 5 temperatures ÷ one forward pass
of both models (the floor: every temperature is a transform of the same logits). Target ≤ 1.3.

The numerator is the whole `inspect_prompt` call as the worker runs it (tokenizing and building
the answer included); the floor is the same forward call `inspect_prompt` makes, on the same
input ids, with the same (cached) models. The two are timed in alternating rounds, so a load
change on a shared machine hits both sides alike instead of whichever block ran during it.

    python bench/inspector.py --data-dir data
    python bench/inspector.py --data-dir data --models smollm2-135m-instruct,smollm2-student-l10

The demo kit's pair gets a prompt in the demo language; any other pair (the real kit's) an
English paragraph, both cut to --tokens tokens by the first model's tokenizer.
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
from worker.inspect import _model, _prompt_ids, _source, _tokenizer, inspect_prompt  # noqa: E402

ENGLISH = (
    "The capital of France is Paris, a city on the Seine known for its museums, its cafés and "
    "the iron tower built for the 1889 World's Fair. Every year millions of visitors walk along "
    "the river, climb the hill of Montmartre and queue in front of the Louvre, whose glass "
    "pyramid was added in 1989. The city is also the seat of the national government and of "
    "many international organisations, and its metro carries more than four million people a "
    "day through more than three hundred stations."
)


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
    ap.add_argument("--models", default="demo-teacher,demo-student-s", help="first, second")
    ap.add_argument("--tokens", type=int, default=64, help="prompt length in tokens")
    args = ap.parse_args()
    settings = Settings(data_dir=Path(args.data_dir))
    names = [m.strip() for m in args.models.split(",")]
    if names[0].startswith("demo-"):
        prompt = " ".join(" ".join(demo_language.sample_corpus(12, seed=5)).split()[:63])
    else:
        prompt = ENGLISH
    req = InspectRequest(
        models=names,
        prompt=prompt,
        temperatures=[0.5, 1, 2, 4, 8],
        k=10,
        max_tokens=args.tokens,
    )
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    sources = [_source(m, settings) for m in req.models]
    models = [_model(s, device) for s in sources]
    vocab = _tokenizer(sources[0])
    ids = torch.tensor([_prompt_ids(vocab, req.prompt, False)[: args.tokens]], device=device)

    @torch.inference_mode()
    def floor():
        # The call inspect_prompt makes: logits at every position, no KV cache.
        for m in models:
            m(input_ids=ids, use_cache=False).logits.float().cpu()

    t = interleaved_ms(
        {"floor": floor, "inspect": lambda: inspect_prompt(req, settings)}, args.rounds
    )
    print(
        f"P7 inspect {ids.shape[1]} tokens, {' + '.join(names)} (V = {len(vocab.names):,}), "
        f"5 temperatures: {t['inspect']:.2f} ms ÷ "
        f"forward passes {t['floor']:.2f} ms = {t['inspect'] / t['floor']:.2f}  (target ≤ 1.3; "
        f"torch threads {torch.get_num_threads()}, {device})"
    )


if __name__ == "__main__":
    main()
