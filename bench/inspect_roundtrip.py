"""An inspection as the inspector page gets it on the embedded default (`distillscope up`:
SQLite broker and results file): POST /api/inspect through the api and the inspect worker,
against the same inspection run in process (`inspect_prompt`, models cached), measured in the
same run. The difference is what the queue adds: the broker's and the results file's polls,
two processes and HTTP.

    python bench/inspect_roundtrip.py --data-dir data      # a data dir with the demo kit

The api and the inspect worker run on a temporary data dir (its own database and broker) that
reads the kit's models and datasets.
"""

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.inspector import interleaved_ms  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", default="data", help="holds the demo kit")
    ap.add_argument("--rounds", type=int, default=30)
    args = ap.parse_args()
    import httpx

    from backend.schemas import InspectRequest
    from backend.settings import Settings
    from tests.conftest import module_env
    from tests.support import Stack
    from worker.inspect import inspect_prompt

    kit = Path(args.data_dir).resolve()
    body = {
        "models": ["demo-teacher", "demo-student-s"],
        "prompt": "the lazy",
        "temperatures": [1, 4],
        "k": 5,
    }
    settings = Settings(data_dir=kit)
    request = InspectRequest(**body)
    tmp = Path(tempfile.mkdtemp(prefix="distillscope-bench-"))
    env = module_env(kit, tmp)  # the tests' settings for a stack on a kit
    stack = Stack(env, tmp)
    try:
        stack.start(worker=False)
        stack.start_worker("inspect")
        with httpx.Client(timeout=120) as client:

            def through_api():
                r = client.post(f"{stack.url}/api/inspect", json=body)
                if r.status_code != 200:
                    raise RuntimeError(f"{r.status_code} {r.text[:300]}")

            t = interleaved_ms(
                {"api": through_api, "in process": lambda: inspect_prompt(request, settings)},
                args.rounds,
            )
    finally:
        stack.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(
        f"Inspect demo-teacher + demo-student-s, 2 temperatures, on the embedded default: "
        f"POST /api/inspect {t['api']:.0f} ms ÷ in process {t['in process']:.1f} ms = "
        f"{t['api'] / t['in process']:.1f}×; the queue adds {t['api'] - t['in process']:.0f} ms "
        f"(medians of {args.rounds}; {os.cpu_count()} cores, load average {load})"
    )


if __name__ == "__main__":
    t0 = time.perf_counter()
    main()
    print(f"   ({time.perf_counter() - t0:.0f} s)")
