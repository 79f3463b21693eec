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
    assert max(map(abs, same["kl_ab"])) < 1e-6 and abs(same["tv"][-1]) < 1e-6  # itself
    assert all(other["kl_ab"][i] > 0 for i in range(n))
    # KL(q||p), JS and TV at the inspected position (the last); null at the others.
    for key in ("kl_ba", "js", "tv"):
        assert len(other[key]) == n and other[key][:-1] == [None] * (n - 1)
    assert other["kl_ba"][-1] > 0
    assert 0 < other["js"][-1] <= math.log(2) + 1e-6 and 0 < other["tv"][-1] <= 1


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


@pytest.mark.parametrize(("position", "block"), [(None, None), (3, None), (None, 1)])
def test_matches_a_plain_reference(settings, tiny_kit, position, block, monkeypatch):
    """The batched computation (all temperatures and models at once, blocks of positions)
    against the plain one, for three models: every number the answer holds. block=1: one
    position a block, as a real vocabulary gets."""
    if block is not None:
        monkeypatch.setattr("worker.inspect._BLOCK", block)
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
            got = block["vs_first"][name]
            assert got["kl_ab"] == pytest.approx(stats["kl_ab"].tolist(), **close)
            for key in ("kl_ba", "js", "tv"):  # at the inspected position only
                assert got[key][at] == pytest.approx(float(stats[key][at]), **close)
                assert all(v is None for i, v in enumerate(got[key]) if i != at)


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
def test_the_embedded_broker_is_read_often_enough_for_an_interactive_inspector(env):
    """The SQLite broker pushes nothing: its workers poll it. At kombu's default (once a
    second) an inspection on the default stack took 1,019 ms of which 3 ms were the models'
    (bench/inspect_roundtrip.py); a Redis broker is left as it is."""
    from kombu import Connection

    from backend.queue import SQLITE_POLL_S, get_celery

    with get_celery().connection_for_write() as conn:
        assert conn.as_uri().startswith("sqla+sqlite:")
        assert conn.transport.polling_interval == SQLITE_POLL_S <= 0.1
    with Connection("redis://127.0.0.1:6379/13") as conn:  # no connection is opened
        assert type(conn.transport).__module__ == "kombu.transport.redis"


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
            {"model": "demo-teacher", "role": "teacher", "label": "demo-teacher", "kit": None},
            {"model": "demo-student-s", "role": "student", "label": "demo-student-s", "kit": None},
        ]
        bad = httpx.post(f"{stack.url}/api/inspect", json={**body, "temperatures": [0]})
        assert bad.status_code == 422 and bad.json()["detail"][0]["loc"][1] == "temperatures"
        # The demo kit's tokenizer has no chat template: said before any worker is asked.
        bad = httpx.post(f"{stack.url}/api/inspect", json={**body, "chat": True})
        assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["body", "chat"]
        assert "no chat template" in bad.json()["detail"][0]["msg"]
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


# ---- A byte-level BPE tokenizer with a chat template (SmolLM2's kind), on a tiny Llama.

CHATML = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
BPE_CORPUS = [
    "The capital of France is Paris.",
    "What is the capital of France?",
    "def add(a, b):\n    return a + b",
    "Prices: 3 € and 4 £.\tDone",
]


def build_bpe_models(root, names=("bpe-teacher", "bpe-student")):
    """Tiny Llamas (from a config, random init) sharing a byte-level BPE tokenizer trained on
    the spot, with a ChatML chat template; models under root/models. No downloads."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    raw = Tokenizer(models.BPE())
    raw.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    raw.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=320,
        special_tokens=["<|im_start|>", "<|im_end|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    raw.train_from_iterator(BPE_CORPUS * 20, trainer)
    tok = PreTrainedTokenizerFast(
        tokenizer_object=raw, bos_token="<|im_start|>", eos_token="<|im_end|>"
    )
    tok.pad_token = tok.eos_token
    tok.chat_template = CHATML
    for seed, name in enumerate(names):
        torch.manual_seed(seed)
        cfg = LlamaConfig(
            vocab_size=len(tok),
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            max_position_embeddings=128,
            tie_word_embeddings=True,
        )
        LlamaForCausalLM(cfg).save_pretrained(root / "models" / name)
        tok.save_pretrained(root / "models" / name)
    return root


@pytest.fixture(scope="module")
def bpe_kit(tmp_path_factory):
    return build_bpe_models(tmp_path_factory.mktemp("bpe"))


@pytest.fixture
def bpe_settings(bpe_kit, tiny_kit):
    return Settings(data_dir=bpe_kit, model_roots=[bpe_kit / "models", tiny_kit / "models"])


def _plain_logits(folder, ids):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(folder).eval()
    with torch.no_grad():
        return model(input_ids=torch.tensor([ids])).logits[0].double()


def test_byte_level_tokens_read_as_text(bpe_settings, bpe_kit):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(bpe_kit / "models" / "bpe-teacher")
    prompt = "The capital of France is Paris.\ndef add(a, b):\n    return"
    out = inspect_prompt(
        InspectRequest(models=["bpe-teacher", "bpe-student"], prompt=prompt, k=20),
        bpe_settings,
    )
    pieces = tok.convert_ids_to_tokens(out["ids"])
    assert "ĠParis" in pieces and "Ċ" in pieces  # the tokenizer's own pieces…
    # …read as the text they stand for: a leading space, a newline, never 'Ġ' or 'Ċ'.
    assert " Paris" in out["tokens"] and "\n" in out["tokens"]
    assert "".join(out["tokens"]) == prompt
    every = out["tokens"] + [s["token"] for s in out["shown"]]
    every += [e["token"] for b in out["temperatures"] for m in b["models"] for e in m["top"]]
    assert not any("Ġ" in t or "Ċ" in t for t in every)
    assert out["chat"] is False and out["chat_template"] is True


def test_a_piece_of_a_multibyte_character_is_escaped_never_mojibake(bpe_settings, bpe_kit):
    from worker.inspect import _tokenizer, _utf8_with_escapes

    assert _utf8_with_escapes("€".encode()) == "€"
    assert _utf8_with_escapes("€".encode()[:2]) == "<0xE2><0x82>"
    assert _utf8_with_escapes(b"a\xe2\x82") == "a<0xE2><0x82>"
    assert _utf8_with_escapes("é".encode() + b"\xff") == "é<0xFF>"
    vocab = _tokenizer(_source("bpe-teacher", bpe_settings))
    ids = vocab.tokenizer.convert_tokens_to_ids(["â", "ĠâĤ¬", "<|im_start|>", "ĉ"])
    assert [vocab.text(i) for i in ids] == ["<0xE2>", " €", "<|im_start|>", "\t"]
    # The demo kit's word-level tokenizer reads as its words.
    demo = _tokenizer(_source("demo-teacher", bpe_settings))
    assert demo.text(demo.tokenizer.convert_tokens_to_ids("lazy")) == "lazy"


def test_chat_inspects_the_assistants_first_answer_position(bpe_settings, bpe_kit):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(bpe_kit / "models" / "bpe-teacher")
    prompt = "What is the capital of France?"
    req = InspectRequest(
        models=["bpe-teacher", "bpe-student"], prompt=prompt, chat=True, temperatures=[1, 4]
    )
    out = inspect_prompt(req, bpe_settings)
    text = tok.apply_chat_template(
        [{"role": "user", "content": prompt}], add_generation_prompt=True, tokenize=False
    )
    assert out["ids"] == tok(text, add_special_tokens=False)["input_ids"]
    assert out["tokens"][0] == "<|im_start|>" and "".join(out["tokens"]) == text
    # The last position is the one after the assistant's header: its next token is the answer's
    # first.
    assert out["position"] == len(out["ids"]) - 1
    assert "".join(out["tokens"]).endswith("<|im_start|>assistant\n")
    assert out["chat"] is True and out["truth"] is None
    logits = _plain_logits(bpe_kit / "models" / "bpe-teacher", out["ids"])[-1]
    top = out["temperatures"][0]["models"][0]["top"]
    assert [e["id"] for e in top] == torch.topk(logits, len(top)).indices.tolist()
    # Without chat, the same words inspect after "?" instead.
    plain = inspect_prompt(req.model_copy(update={"chat": False}), bpe_settings)
    assert plain["tokens"][-1] == "?" and len(plain["ids"]) < len(out["ids"])


def test_chat_without_a_chat_template_is_refused(bpe_settings, bpe_kit, tiny_kit):
    from backend.services.inspection import has_chat_template

    req = InspectRequest(models=["demo-teacher"], prompt="the lazy", chat=True)
    with pytest.raises(ValueError, match="no chat template"):
        inspect_prompt(req, bpe_settings)
    # The api's own check, from the saved files alone (no torch in the api).
    assert has_chat_template(bpe_kit / "models" / "bpe-teacher")
    assert not has_chat_template(tiny_kit / "models" / "demo-teacher")


def test_mass_outside_top_k_and_the_tails_share_of_the_kl(bpe_settings, bpe_kit):
    """Per model and T, the mass outside its top k; per other model and T, the part of
    KL(first_T ‖ other_T) at the position from tokens outside the first model's top k, against
    a direct float64 computation."""
    names = ["bpe-teacher", "bpe-student"]
    temperatures = [1.0, 4.0]
    req = InspectRequest(
        models=names, prompt="The capital of France is", k=8, temperatures=temperatures
    )
    out = inspect_prompt(req, bpe_settings)
    z = [_plain_logits(bpe_kit / "models" / n, out["ids"])[-1] for n in names]
    for block, t in zip(out["temperatures"], temperatures, strict=True):
        p, q = (torch.softmax(x / t, -1) for x in z)
        top = torch.topk(p, 8).indices
        assert block["models"][0]["mass_outside_top_k"] == pytest.approx(
            1 - float(p[top].sum()), abs=1e-5
        )
        assert block["models"][1]["mass_outside_top_k"] == pytest.approx(
            1 - float(torch.topk(q, 8).values.sum()), abs=1e-5
        )
        terms = p * (p.log() - q.log()) - p + q  # each token's non-negative part of the KL
        assert bool((terms >= -1e-12).all())
        mask = torch.ones_like(p, dtype=torch.bool)
        mask[top] = False
        pair = block["vs_first"]["bpe-student"]
        assert pair["kl_ab_outside_top_k"] == pytest.approx(float(terms[mask].sum()), abs=1e-5)
        # The share is a ratio of two small KLs between random models: compared relatively.
        assert pair["kl_ab_outside_share"] == pytest.approx(
            float(terms[mask].sum() / terms.sum()), rel=2e-3
        )
        kl = pair["kl_ab"][out["position"]]
        assert pair["kl_ab_outside_share"] == pytest.approx(pair["kl_ab_outside_top_k"] / kl)
        assert 0 <= pair["kl_ab_outside_share"] <= 1
    # A model against itself: no KL, so no share.
    same = inspect_prompt(
        req.model_copy(update={"models": ["bpe-teacher", "bpe-teacher"]}), bpe_settings
    )
    assert same["temperatures"][0]["vs_first"]["bpe-teacher"]["kl_ab_outside_share"] is None


def test_js_of_two_close_models_at_a_high_temperature_keeps_its_digits():
    """JS in float32 against its float64 definition where p ≈ q over a real-sized vocabulary
    (terms that nearly cancel): relative error under 1e-4, also on near-disjoint pairs."""
    from worker.inspect import _divergences

    torch.manual_seed(0)
    a = torch.randn(2, 49_152) * 3
    pairs = {
        "close": (a[0], a[0] + 0.05 * a[1]),
        "apart": (a[0], a[1]),
        "disjoint": (30 * a[0], 30 * a[1]),
    }
    for name, (x, y) in pairs.items():
        for t in (1.0, 4.0, 16.0):
            lp, lq = (torch.log_softmax(z / t, -1) for z in (x, y))
            got = float(_divergences(lp, lq, lp.exp(), lq.exp())["js"])
            p, q = (torch.softmax(z.double() / t, -1) for z in (x, y))
            m = (p + q) / 2
            xlogy = torch.special.xlogy  # 0 · log 0 = 0
            want = float(0.5 * xlogy(p, p / m).sum() + 0.5 * xlogy(q, q / m).sum())
            assert got == pytest.approx(want, rel=1e-4), (name, t)
