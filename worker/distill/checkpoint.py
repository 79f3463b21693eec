"""Checkpoints a run can resume from: the student via `save_pretrained` (safetensors) plus the
optimizer, scheduler and RNG state, in `step-XXXXXXXX/` folders written atomically (a folder
is complete or absent). The data needs no state: batch k is a function of (seed, k)."""

import os
import shutil
from pathlib import Path

import torch

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
    keep_weights: bool = True,
) -> Path:
    """Write a resumable checkpoint; beyond the latest `keep`, older ones lose their optimizer
    state (they stay loadable with from_pretrained, for the inspector) or, without
    `keep_weights`, are removed."""
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
            if keep_weights:
                (old / STATE_FILE).unlink(missing_ok=True)  # no longer resumable, still loadable
            else:
                shutil.rmtree(old, ignore_errors=True)
    return final


def list_checkpoints(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.glob("step-*") if (p / STATE_FILE).is_file())


def latest_checkpoint(folder: Path) -> Path | None:
    found = list_checkpoints(folder)
    return found[-1] if found else None


def load_trainer_state(path: Path) -> dict:
    return torch.load(path / STATE_FILE, map_location="cpu", weights_only=True)
