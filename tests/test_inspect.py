"""Prompt inspection: full-vocabulary probabilities at several temperatures, divergences
between models, the demo language's truth; through a real inspect worker end to end."""

import math

import httpx
import pytest
import torch

from backend.schemas import InspectRequest
from backend.settings import Settings
from tests.support import Stack
from worker.inspect import inspect_prompt


@pytest.fixture
def settings(tiny_kit):
    return Settings(data_dir=tiny_kit)


def test_probabilities_come_from_the_full_softmax(settings, tiny_kit):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    req = InspectRequest(
        models=["demo-teacher", "demo-student-s"], prompt="the lazy", temperatures=[1.0, 4.0], k=5
    )
    out = inspect_prompt(req, settings)
    assert out["tokens"] == ["<bos>", "the", "lazy"] and out["position"] == 2
    tok = AutoTokenizer.from_pretrained(tiny_kit / "models" / "demo-teacher")
    model = AutoModelForCausalLM.from_pretrained(tiny_kit / "models" / "demo-teacher")
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([tok("the lazy")["input_ids"]])).logits[0, -1]
    for t_block, temperature in zip(out["temperatures"], [1.0, 4.0], strict=True):
        p = torch.softmax(logits[: len(tok)] / temperature, -1)
        teacher = t_block["models"][0]
        top = torch.topk(p, 5)
        assert [e["id"] for e in teacher["top"]] == top.indices.tolist()
        assert [e["prob"] for e in teacher["top"]] == pytest.approx(top.values.tolist(), abs=1e-6)
        assert teacher["mass_outside_top_k"] == pytest.approx(1 - float(top.values.sum()), abs=1e-6)
        assert teacher["entropy"] == pytest.approx(float(-(p * p.log()).sum()), abs=1e-5)
    # Softening raises the entropy.
    assert (
        out["temperatures"][1]["models"][0]["entropy"]
        > out["temperatures"][0]["models"][0]["entropy"]
    )


def test_divergences_between_models(settings):
    req = InspectRequest(
        models=["demo-teacher", "demo-teacher", "demo-student-s"],
        prompt="a big dog runs to the",
        temperatures=[2.0],
    )
    block = inspect_prompt(req, settings)["temperatures"][0]["vs_first"]
    same, other = block["demo-teacher"], block["demo-student-s"]
    n = len(same["kl_ab"])
    assert n == 7  # one per prompt position (<bos> + 6 words)
    assert max(map(abs, same["kl_ab"] + same["tv"])) < 1e-6  # a model against itself
    for i in range(n):
        assert other["kl_ab"][i] > 0 and other["kl_ba"][i] > 0
        assert 0 < other["js"][i] <= math.log(2) + 1e-6 and 0 < other["tv"][i] <= 1


def test_demo_truth_is_shown_beside_the_models(settings):
    out = inspect_prompt(InspectRequest(models=["demo-teacher"], prompt="the lazy"), settings)
    truth = {e["token"]: e["prob"] for e in out["truth"]}
    assert truth["cat"] > truth["kitten"] > truth["moggy"] > 0
    assert sum(truth.values()) == pytest.approx(1.0)


@pytest.mark.integration
def test_inspection_through_the_inspect_queue(env, tmp_path):
    stack = Stack(env, tmp_path)
    try:
        stack.start(worker=False)
        stack.start_worker("inspect")
        body = {
            "models": ["demo-teacher", "demo-student-s"],
            "prompt": "the lazy",
            "temperatures": [0.5, 1, 2, 4, 8],
            "k": 3,
        }
        r = httpx.post(f"{stack.url}/api/inspect", json=body, timeout=90)
        assert r.status_code == 200, r.text + stack.logs("inspect-worker")
        out = r.json()
        assert [b["temperature"] for b in out["temperatures"]] == [0.5, 1, 2, 4, 8]
        assert len(out["temperatures"][0]["models"][1]["top"]) == 3
        bad = httpx.post(f"{stack.url}/api/inspect", json={**body, "temperatures": [0]})
        assert bad.status_code == 422 and bad.json()["detail"][0]["loc"][1] == "temperatures"
        bad = httpx.post(f"{stack.url}/api/inspect", json={**body, "models": ["nope"]})
        assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["body", "models"]
        assert (
            httpx.post(
                f"{stack.url}/api/inspect", json={**body, "temperatures": [1.0] * 17}
            ).status_code
            == 422
        )
    finally:
        stack.stop()
