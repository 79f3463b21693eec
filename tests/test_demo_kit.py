"""The demo kit's preparation: parts are written whole (a hidden folder renamed into place), an
interrupted preparation resumes with only the missing parts, and the fine-tuned teacher comes
out peaked with a record of what it keeps of the truth."""

import json

import pytest

from backend.settings import Settings
from tests.support import TINY_KIT
from worker.distill import demo


def _kit():
    return demo.Kit(**TINY_KIT)


def test_an_interrupted_preparation_resumes_with_the_missing_parts(tmp_path, monkeypatch, capsys):
    settings = Settings(data_dir=tmp_path)
    kit = _kit()
    everything = demo.missing_parts(settings, kit)
    assert everything[:2] == ["demo", "demo-small"] and everything[-1] == demo.FINETUNED

    # Interrupt while the second teacher's folder is being written: its weights are on disk,
    # its tokenizer not yet.
    from transformers import PreTrainedTokenizerFast

    original = PreTrainedTokenizerFast.save_pretrained
    calls = []

    def flaky(self, folder, *a, **k):
        calls.append(folder)
        if len(calls) == 4:  # students 1, 2, teacher, then the memorised teacher
            raise KeyboardInterrupt
        return original(self, folder, *a, **k)

    monkeypatch.setattr(PreTrainedTokenizerFast, "save_pretrained", flaky)
    with pytest.raises(KeyboardInterrupt):
        demo.prepare(settings, progress=False, kit=kit)
    monkeypatch.setattr(PreTrainedTokenizerFast, "save_pretrained", original)

    models = settings.models_dir
    # The half-written part is not there under its name; the finished ones are whole.
    assert not (models / "demo-teacher-memorised").exists()
    assert (models / ".demo-teacher-memorised.partial" / "config.json").is_file()
    # … and the catalog does not offer the half-written part as a model.
    from backend.services.catalog import list_models

    listed = {m.name for m in list_models(settings)}
    assert "demo-teacher" in listed and not any(n.startswith(".") for n in listed)
    assert demo.missing_parts(settings, kit) == ["demo-teacher-memorised", demo.FINETUNED]
    teacher_weights = models / "demo-teacher" / "model.safetensors"
    before = teacher_weights.stat().st_mtime_ns

    capsys.readouterr()
    built = demo.prepare(settings, progress=True, kit=kit)
    assert built == ["demo-teacher-memorised", demo.FINETUNED]  # done parts skipped
    # It says what it does and how long it took.
    said = capsys.readouterr().out
    assert "demo kit: building 2 of 7 parts" in said
    assert f"{demo.FINETUNED}: top-1 ≥ 0.9 at" in said and "demo kit ready in" in said
    assert teacher_weights.stat().st_mtime_ns == before
    assert not (models / ".demo-teacher-memorised.partial").exists()
    assert demo.is_prepared(settings, kit)
    assert demo.prepare(settings, progress=False, kit=kit) == []


def test_the_fine_tuned_teacher_is_peaked_and_says_how_it_was_made(tiny_kit):
    meta = json.loads((tiny_kit / "models" / demo.FINETUNED / "distillscope.json").read_text())
    assert meta["role"] == "teacher" and "argmax labels" in meta["made"]
    before, after = meta["profile_before"], meta["profile"]
    # The untrained tiny teacher is near uniform; fine-tuning on its own argmax peaks it.
    assert before["confident_share"] < 0.05 < 0.5 < after["confident_share"]
    assert after["top1_mean"] > before["top1_mean"]
    for p in (before, after):
        assert 0 <= p["top5_overlap"] <= 1
        assert p["kl_true_best_t"] == pytest.approx(min(p["kl_true_by_t"].values()), abs=1e-4)
        assert p["kl_true_t1"] == pytest.approx(p["kl_true_by_t"]["1"], abs=1e-4)


def test_a_kit_2_data_dir_gets_only_what_kit_3_added(tmp_path):
    """Upgrading: teachers trained by kit 2 keep their weights and gain a profile; the fine-tuned
    teacher is built; it is rebuilt when the teacher it came from changes."""
    budget = {**TINY_KIT["finetune_training"], "max_steps": 3, "eval_interval": 3}
    kit = demo.Kit(
        **{
            **TINY_KIT,
            "teacher_training": budget,
            "memorised_training": budget,
            "teacher_dataset": "demo",
        }
    )
    settings = Settings(data_dir=tmp_path)
    demo.prepare(settings, progress=False, kit=kit)
    models = settings.models_dir
    assert demo.is_prepared(settings, kit)
    # What kit 2 left: teachers without a profile, no fine-tuned teacher.
    for name in ("demo-teacher", "demo-teacher-memorised"):
        meta_file = models / name / "distillscope.json"
        meta = json.loads(meta_file.read_text())
        assert meta["profile"]["positions"] > 0
        del meta["profile"]
        meta_file.write_text(json.dumps({**meta, "kit_version": 2}))
    import shutil

    shutil.rmtree(models / demo.FINETUNED)
    weights = models / "demo-teacher" / "model.safetensors"
    before = weights.stat().st_mtime_ns
    assert demo.missing_parts(settings, kit) == [
        "demo-teacher profile",
        "demo-teacher-memorised profile",
        demo.FINETUNED,
    ]
    demo.prepare(settings, progress=False, kit=kit)
    assert demo.is_prepared(settings, kit) and weights.stat().st_mtime_ns == before
    meta = json.loads((models / "demo-teacher" / "distillscope.json").read_text())
    assert meta["kit_version"] == 2 and 0 <= meta["profile"]["confident_share"] <= 1
    # A fine-tuned teacher made from other weights than the teacher's now is stale.
    ft_meta = models / demo.FINETUNED / "distillscope.json"
    ft_meta.write_text(json.dumps({**json.loads(ft_meta.read_text()), "base_sha256": "0" * 64}))
    assert demo.missing_parts(settings, kit) == [demo.FINETUNED]
