"""Checkpoints a run can resume from: the student via `save_pretrained` (safetensors) plus the
optimizer, scheduler and RNG state, in `step-XXXXXXXX/` folders written atomically (a folder
is complete or absent). The data needs no state: batch k is a function of (seed, k)."""

import json
import os
import shutil
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

STATE_FILE = "trainer_state.pt"


def save_checkpoint(
    folder: Path,
    *,
    step: int,
    student,
    optimizer,
    scheduler,
    tokenizer=None,
    keep: int = 2,
    keep_weights: int = 20,
    weights_dtype: torch.dtype = torch.float32,
) -> Path:
    """Write a resumable checkpoint. Beyond the latest `keep`, older ones lose their optimizer
    state but stay loadable with from_pretrained, for the inspector; at most `keep_weights` of
    those are kept, thinned so that they stay spread over the run. A resumable checkpoint
    holds the student's float32 master weights; one that no longer is holds them in
    `weights_dtype` (a bfloat16 run's: half the disk, and what its forward passes used)."""
    folder.mkdir(parents=True, exist_ok=True)
    final = folder / f"step-{step:08d}"
    tmp = folder / f".tmp-step-{step:08d}"
    shutil.rmtree(tmp, ignore_errors=True)
    student.save_pretrained(tmp, safe_serialization=True)
    if tokenizer is not None:
        tokenizer.save_pretrained(tmp)
    rng = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        rng["cuda"] = torch.cuda.get_rng_state_all()
    torch.save(
        {
            "step": step,
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "rng": rng,
        },
        tmp / STATE_FILE,
    )
    shutil.rmtree(final, ignore_errors=True)
    os.replace(tmp, final)  # atomic on one filesystem: a reader never sees half a checkpoint
    if keep > 0:
        for old in list_checkpoints(folder)[:-keep]:
            (old / STATE_FILE).unlink(missing_ok=True)  # no longer resumable, still loadable
            if weights_dtype != torch.float32:
                recast_weights(old, weights_dtype)
        for old in thin(list_weight_checkpoints(folder), keep_weights):
            shutil.rmtree(old, ignore_errors=True)
    return final


def recast_weights(folder: Path, dtype: torch.dtype) -> None:
    """A saved model's floating-point weights (its *.safetensors files) and config.json's dtype
    rewritten in `dtype`, each file replaced atomically."""
    for path in sorted(folder.glob("*.safetensors")):
        tensors = load_file(path)
        tensors = {k: v.to(dtype) if v.is_floating_point() else v for k, v in tensors.items()}
        tmp = path.with_name(f".tmp-{path.name}")
        save_file(tensors, tmp, metadata={"format": "pt"})
        os.replace(tmp, path)
    config = folder / "config.json"
    data = json.loads(config.read_text())
    name = str(dtype).removeprefix("torch.")
    for key in ("dtype", "torch_dtype"):  # transformers 5 writes dtype; before, torch_dtype
        if key in data:
            data[key] = name
    tmp = config.with_name(".tmp-config.json")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, config)


def list_weight_checkpoints(folder: Path) -> list[Path]:
    """Checkpoints that hold only the student's weights (pruned of their optimizer state)."""
    return sorted(
        p
        for p in folder.glob("step-*")
        if (p / "config.json").is_file() and not (p / STATE_FILE).exists()
    )


def thin(paths: list[Path], keep: int) -> list[Path]:
    """Which of these step-ordered checkpoints to remove so that `keep` remain, as evenly spread
    as they can be: repeatedly drop the inner one whose neighbours are closest together (the
    first and the last stay while keep >= 2). Returns the ones to remove."""
    if keep <= 0:
        return list(paths)
    steps = [int(p.name.removeprefix("step-")) for p in paths]
    alive = list(range(len(paths)))
    while len(alive) > max(keep, 2):
        j = min(range(1, len(alive) - 1), key=lambda j: steps[alive[j + 1]] - steps[alive[j - 1]])
        alive.pop(j)
    if len(alive) > keep:  # keep == 1: the latest
        alive = alive[-1:]
    kept = set(alive)
    return [p for i, p in enumerate(paths) if i not in kept]


def list_checkpoints(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.glob("step-*") if (p / STATE_FILE).is_file())


def latest_checkpoint(folder: Path) -> Path | None:
    found = list_checkpoints(folder)
    return found[-1] if found else None


def load_trainer_state(path: Path) -> dict:
    return torch.load(path / STATE_FILE, map_location="cpu", weights_only=True)
