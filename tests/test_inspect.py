"""Prompt inspection: full-vocabulary probabilities at several temperatures, divergences
between models, the demo language's truth; through a real inspect worker end to end."""

import math
import shutil

import httpx
import pytest
import torch

from backend.schemas import InspectRequest
from backend.settings import Settings
from tests.support import Stack
from worker.distill import demo_language
from worker.inspect import _source, inspect_prompt


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


def test_every_shown_token_has_every_models_real_probability(settings, tiny_kit):
    """The charts show the union of the models' top k and the truth's; each model's bar for a
    token outside its own top k is its real probability, never a missing bar read as 0."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    names = ["demo-teacher-finetuned", "demo-student-s"]
    req = InspectRequest(models=names, prompt="the lazy", temperatures=[1.0, 4.0], k=3)
    out = inspect_prompt(req, settings)
    tok = AutoTokenizer.from_pretrained(tiny_kit / "models" / names[0])
    ids = torch.tensor([tok("the lazy")["input_ids"]])
    shown = [s["id"] for s in out["shown"]]
    assert len(set(shown)) == len(shown)
    assert [s["token"] for s in out["shown"]] == tok.convert_ids_to_tokens(shown)
    truth_top = {e["token"] for e in out["truth"][:3]}
    assert truth_top <= {s["token"] for s in out["shown"]}
    outside = 0
    for mi, name in enumerate(names):
        model = AutoModelForCausalLM.from_pretrained(tiny_kit / "models" / name)
        with torch.no_grad():
            logits = model(input_ids=ids).logits[0, -1, : len(tok)]
        for block, temperature in zip(out["temperatures"], [1.0, 4.0], strict=True):
            entry = block["models"][mi]
            assert {t["id"] for t in entry["top"]} <= set(shown)
            p = torch.softmax(logits / temperature, -1)
            assert entry["shown_probs"] == pytest.approx(p[shown].tolist(), abs=1e-6)
            outside += len(set(shown) - {t["id"] for t in entry["top"]})
        # Its rank of each shown token among the whole vocabulary (1 = its top token).
        expect = [int((logits > logits[i]).sum()) + 1 for i in shown]
        assert out["shown_ranks"][mi] == expect
    assert outside > 0  # some bars are tokens outside that model's own top k


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


def _reference(models_dir, names, prompt, temperatures, position):
    """The inspection computed plainly, one temperature and model at a time, in float64: a
    softmax over the whole vocabulary, then each statistic from its definition."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(models_dir / names[0])
    ids = tok(prompt)["input_ids"]
    logits = []
    for name in names:
        model = AutoModelForCausalLM.from_pretrained(models_dir / name).eval()
        with torch.no_grad():
            logits.append(model(input_ids=torch.tensor([ids])).logits[0, :, : len(tok)].double())
    out = []
    for t in temperatures:
        probs = []
        for z in logits:
            e = torch.exp(z / t - (z / t).max(-1, keepdim=True).values)
            probs.append(e / e.sum(-1, keepdim=True))  # (positions, vocab)
        p = probs[0]
        pairs = {}
        for name, q in zip(names[1:], probs[1:], strict=True):
            m = (p + q) / 2
            pairs[name] = {
                "kl_ab": (p * (p.log() - q.log())).sum(-1),
                "kl_ba": (q * (q.log() - p.log())).sum(-1),
                "js": 0.5 * (p * (p.log() - m.log())).sum(-1)
                + 0.5 * (q * (q.log() - m.log())).sum(-1),
                "tv": 0.5 * (p - q).abs().sum(-1),
            }
        entropies = [-(x * x.log()).sum(-1) for x in probs]
        out.append({"probs": [x[position] for x in probs], "entropy": entropies, "pairs": pairs})
    return out


@pytest.mark.parametrize("position", [None, 3])
def test_matches_a_plain_reference(settings, tiny_kit, position):
    """The batched computation (all temperatures, models and positions in one set of tensor
    ops) against the plain one, for three models: every number the answer holds."""
    names = ["demo-teacher", "demo-student-s", "demo-student-m"]
    temperatures = [0.5, 1.0, 2.0, 4.0, 8.0]
    prompt = "the lazy cat sleeps on the mat . a big dog"
    req = InspectRequest(
        models=names, prompt=prompt, temperatures=temperatures, k=7, position=position
    )
    out = inspect_prompt(req, settings)
    at = len(out["ids"]) - 1 if position is None else position
    assert out["position"] == at
    ref = _reference(tiny_kit / "models", names, prompt, temperatures, at)
    close = {"abs": 1e-5}
    for block, r, t in zip(out["temperatures"], ref, temperatures, strict=True):
        assert block["temperature"] == t
        for m, probs, entropy in zip(block["models"], r["probs"], r["entropy"], strict=True):
            top = [e["prob"] for e in m["top"]]
            assert top == pytest.approx(torch.topk(probs, 7).values.tolist(), **close)
            assert top == pytest.approx([float(probs[e["id"]]) for e in m["top"]], **close)
            assert m["mass_outside_top_k"] == pytest.approx(1 - sum(top), **close)
            assert m["entropy_per_position"] == pytest.approx(entropy.tolist(), **close)
            assert m["entropy"] == pytest.approx(float(entropy[at]), **close)
        assert block["vs_first"].keys() == r["pairs"].keys()
        for name, stats in r["pairs"].items():
            for key, values in stats.items():
                assert block["vs_first"][name][key] == pytest.approx(values.tolist(), **close)


def test_truth_follows_the_current_sentence(settings):
    """After a full stop the demo truth starts a new sentence; `position` picks the prefix."""
    words = "the lazy cat sleeps on the mat . a big".split()
    out = inspect_prompt(InspectRequest(models=["demo-teacher"], prompt=" ".join(words)), settings)
    truth = {e["token"]: e["prob"] for e in out["truth"]}
    assert truth == pytest.approx(demo_language.stream_truth([*words, "dog"])[-1])
    req = InspectRequest(models=["demo-teacher"], prompt=" ".join(words), position=4)
    truth = {e["token"]: e["prob"] for e in inspect_prompt(req, settings)["truth"]}
    assert truth == pytest.approx(demo_language.next_word_distribution(words[:4]))
    probs = [e["prob"] for e in inspect_prompt(req, settings)["truth"]]
    assert probs == sorted(probs, reverse=True)
    outside = InspectRequest(models=["demo-teacher"], prompt="the lazy zebra")
    assert inspect_prompt(outside, settings)["truth"] is None


def test_a_prompt_longer_than_the_context_is_cut_and_says_so(settings):
    # The tiny kit's models have 128 positions; max_tokens allows 256 by default.
    prompt = " ".join(["the lazy cat sleeps ."] * 60)  # 300 words
    out = inspect_prompt(
        InspectRequest(models=["demo-teacher", "demo-student-s"], prompt=prompt), settings
    )
    assert len(out["tokens"]) == 128 and out["truncated_to"] == 128 and out["position"] == 127
    short = inspect_prompt(InspectRequest(models=["demo-teacher"], prompt="the lazy"), settings)
    assert short["truncated_to"] is None


def test_a_removed_model_is_not_served_from_the_name_cache(tmp_path, tiny_kit):
    settings = Settings(data_dir=tmp_path)
    shutil.copytree(tiny_kit / "models" / "demo-student-s", tmp_path / "models" / "gone")
    assert _source("gone", settings) == (tmp_path / "models" / "gone").resolve()
    shutil.rmtree(tmp_path / "models" / "gone")
    with pytest.raises(ValueError, match="gone"):
        _source("gone", settings)


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
        assert out["about"] == [  # roles from the kit's records, for the page's wording
            {"model": "demo-teacher", "role": "teacher", "label": "demo-teacher"},
            {"model": "demo-student-s", "role": "student", "label": "demo-student-s"},
        ]
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


def test_a_runs_student_is_labelled_by_its_run(client):
    from backend.db.session import new_session
    from backend.services.inspection import about_models
    from backend.settings import get_settings

    body = {"name": "hard labels only", "teacher": "demo-teacher", "student": "demo-student-s"}
    run = client.post("/api/runs", json={**body, "dataset": "demo", "alpha": 0.0}).json()
    with new_session() as session:
        about = about_models(
            names=[f"run:{run['id']}@100", f"run:{run['id']}", "run:999", "demo-teacher-finetuned"],
            session=session,
            settings=get_settings(),
        )
    assert [a["label"] for a in about] == [
        f"student of run {run['id']}, hard labels only, @ step 100",
        f"student of run {run['id']}, hard labels only",
        "student of run 999",
        "demo-teacher-finetuned",
    ]
    assert [a["role"] for a in about] == ["student", "student", "student", "teacher"]
