"""The OpenAPI schema fuzzed (#11): schemathesis generates requests for every operation, valid
ones (positive) and invalid ones (negative), against a live api with an inspect worker, on SQLite
and on PostgreSQL. No answer may be a 5xx: bad input is a 4xx naming the field.

Bounded: a fixed number of cases per operation and mode, about a minute per database. Generated
names rarely name a real model, so some cases get the kit's real model and dataset names and a
small run id: those reach the database and the inspect worker, not only the validation. No
train worker runs, so queued runs stay queued; past the limit on waiting runs a 429 is fine."""

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode

from tests.conftest import module_env
from tests.support import Stack

# Cases per operation and generation mode.
EXAMPLES = 50
FEWER = {
    # Each queues 30 runs: a few calls are enough to see them answer.
    "POST /api/experiments/temperature": 3,
    "POST /api/experiments/smollm2": 3,
    # Each may queue up to 64 runs.
    "POST /api/sweeps": 20,
    # A real inspection each time the models are real.
    "POST /api/inspect": 12,
    # Asks the workers for a ping (a second's wait each).
    "GET /api/health/workers": 2,
}
# An SSE stream stays open while its run is queued or running (no train worker here: for
# ever); its bad inputs are tested one by one in test_limits.py.
EXCLUDED = {"GET /api/runs/{run_id}/stream"}

MODELS = ["demo-teacher", "demo-student-s", "demo-student-m"]
DATASETS = ["demo", "demo-small"]


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def fuzz_stack(request, tiny_kit, tmp_path_factory):
    """An api and an inspect worker on the test's SQLite file or on PostgreSQL."""
    tmp = tmp_path_factory.mktemp(f"fuzz-{request.param}")
    env = module_env(tiny_kit, tmp)
    if request.param == "postgresql":
        env["DISTILLSCOPE_DATABASE_URL"] = request.getfixturevalue("postgres_url")
    stack = Stack(env, tmp)
    try:
        stack.start(worker=False)
        stack.start_worker("inspect")
        yield stack
    finally:
        stack.stop()


def _real_names(case, draw) -> None:
    """Put real model and dataset names (and a run id that exists) into a generated case, so
    that it gets past the catalogue to the database and the worker."""
    body = case.body
    if case.path_parameters and "run_id" in case.path_parameters:
        case.path_parameters["run_id"] = draw(st.integers(1, 20))
    if not isinstance(body, dict):
        return
    target = body.get("base") if case.operation.path == "/api/sweeps" else body
    if case.operation.path == "/api/inspect":
        body["models"] = draw(st.lists(st.sampled_from(MODELS), min_size=1, max_size=4))
    elif isinstance(target, dict):
        target["teacher"] = MODELS[0]
        target["student"] = draw(st.sampled_from(MODELS[1:]))
        target["dataset"] = draw(st.sampled_from(DATASETS))


def _fuzz(operation, mode: GenerationMode, base_url: str, examples: int) -> list[str]:
    """Run `examples` cases of one operation; return a line per 5xx or broken connection."""
    failures: list[str] = []
    session = requests.Session()

    @settings(
        max_examples=examples,
        deadline=None,
        database=None,  # no .hypothesis folder in the repo
        phases=[Phase.explicit, Phase.generate],  # no shrinking: a 5xx is reported as it came
        suppress_health_check=list(HealthCheck),
        derandomize=True,  # the same cases every run
    )
    @given(case=operation.as_strategy(generation_mode=mode), real=st.booleans(), data=st.data())
    def check(case, real, data):
        if real:
            _real_names(case, data.draw)
        try:
            response = case.call(base_url=base_url, session=session, timeout=90)
        except requests.RequestException as exc:
            failures.append(f"{case.operation.label} {mode}: {exc!r}\n  {_request(case)}")
            return
        if response.status_code >= 500:
            failures.append(
                f"{case.operation.label} {mode}: {response.status_code} "
                f"{response.text[:300]!r}\n  {_request(case)}"
            )

    try:
        check()
    except Unsatisfiable:  # negative mode, for an operation with nothing to get wrong
        assert mode is GenerationMode.NEGATIVE, operation.label
    return failures


def _request(case) -> str:
    return (
        f"path={case.formatted_path!r} query={case.query!r} headers={case.headers!r} "
        f"body={case.body!r}"[:1500]
    )


@pytest.mark.integration
def test_no_generated_request_is_answered_with_a_5xx(fuzz_stack):
    schema = schemathesis.openapi.from_url(f"{fuzz_stack.url}/openapi.json")
    failures, done = [], set()
    for result in schema.get_all_operations():
        operation = result.ok()
        label = operation.label
        if label in EXCLUDED:
            continue
        done.add(label)
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            failures += _fuzz(operation, mode, fuzz_stack.url, FEWER.get(label, EXAMPLES))
    assert {"POST /api/runs", "PATCH /api/runs/{run_id}", "POST /api/inspect"} <= done
    assert not failures, "\n".join(failures) + "\n--- api log ---\n" + fuzz_stack.logs("api")


@pytest.mark.integration
def test_an_inspected_position_past_the_prompt_is_a_422_saying_its_length(fuzz_stack):
    body = {"models": ["demo-teacher"], "prompt": "the lazy", "position": 1_000_000}
    r = requests.post(f"{fuzz_stack.url}/api/inspect", json=body, timeout=90)
    assert r.status_code == 422, r.text + fuzz_stack.logs("inspect-worker")
    assert "position" in r.text and "3 tokens" in r.text, r.text  # <bos> the lazy
    r = requests.post(f"{fuzz_stack.url}/api/inspect", json={**body, "position": 2}, timeout=90)
    assert r.status_code == 200 and r.json()["position"] == 2, r.text
