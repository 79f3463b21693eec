"""The teacher-logit cache: a run can store its teacher's top-k logits for every training
position, keyed by teacher, dataset and sequence settings, so that later runs with the same key
(a sweep over T, alpha, student or seed) read them instead of running the teacher.

What is stored per position: the k largest logits at T = 1, their token ids, and the
log-sum-exp of the other V - k logits (the missing mass, used explicitly: see
worker/distill/losses.py TopKLogits). Files are safetensors, written atomically."""

import hashlib
import json
import logging
import os
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from worker.distill.data import PACK_SEED, Split
from worker.distill.losses import TopKLogits

log = logging.getLogger(__name__)
CACHE_VERSION = 1


def _fingerprint(path: Path | str) -> list:
    if isinstance(path, str):  # a Hub dataset id: its name (a new revision is a new name@rev)
        return [path]
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    return [
        (str(p.relative_to(path.parent)), p.stat().st_size, p.stat().st_mtime_ns) for p in files
    ]


def cache_key(
    *,
    teacher_dir: Path,
    dataset_path: Path | str,
    seq_len: int,
    vocab: int,
    k: int,
    dtype: torch.dtype = torch.float32,
) -> str:
    """Changes whenever the teacher's files, the dataset's files, the packing or the dtype the
    teacher runs in change."""
    payload = {
        "dtype": str(dtype).removeprefix("torch."),
        "version": CACHE_VERSION,
        "teacher": _fingerprint(teacher_dir),
        "dataset": _fingerprint(dataset_path),
        "seq_len": seq_len,
        "vocab": vocab,
        "k": k,
        "pack_seed": PACK_SEED,
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:32]


@torch.inference_mode()
def _compute(
    teacher, split: Split, *, k: int, vocab: int, device: torch.device, batch_size: int
) -> dict[str, torch.Tensor]:
    teacher.to(device).eval()
    out: dict[str, list[torch.Tensor]] = {"values": [], "indices": [], "tail_lse": []}
    # The teacher's weights are in the run's dtype (setup.py), which is part of the key.
    for start in range(0, len(split), batch_size):
        ids = split.input_ids[start : start + batch_size].to(device)
        logits = teacher(input_ids=ids).logits[..., :vocab]
        logits = logits.float()
        values, indices = logits.topk(k, dim=-1)
        tail = torch.logsumexp(logits.scatter(-1, indices, float("-inf")), dim=-1)
        out["values"].append(values.cpu())
        out["indices"].append(indices.to(torch.int32).cpu())
        out["tail_lse"].append(tail.cpu())
    return {name: torch.cat(parts) for name, parts in out.items()}


def load_or_build(
    teacher,
    split: Split,
    *,
    cache_dir: Path,
    key: str,
    k: int,
    vocab: int,
    device: torch.device,
    batch_size: int = 32,
) -> tuple[TopKLogits, bool]:
    """The cache for `key` (n_sequences, seq_len, k), built now if absent. Returns it and
    whether it was built by this call."""
    path = cache_dir / f"{key}.safetensors"
    built = False
    if not path.is_file():
        cache_dir.mkdir(parents=True, exist_ok=True)
        tensors = _compute(teacher, split, k=k, vocab=vocab, device=device, batch_size=batch_size)
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        save_file(tensors, str(tmp), metadata={"k": str(k), "vocab": str(vocab)})
        os.replace(tmp, path)  # concurrent builders: the last complete file wins, never a half
        built = True
        log.info("teacher-logit cache written: %s", path)
    t = load_file(str(path))
    if t["values"].shape[:2] != split.input_ids.shape:
        raise RuntimeError(
            f"teacher cache {path} does not match the data "
            f"({tuple(t['values'].shape)} vs {tuple(split.input_ids.shape)})"
        )
    return TopKLogits(t["values"], t["indices"], t["tail_lse"]), built
