"""Load models and tokenizers exactly as any Hugging Face model: `from_pretrained` on a local
folder found under the configured model roots. `trust_remote_code` is never enabled."""

from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer
from transformers.utils import logging as hf_logging

from backend.services.catalog import CatalogError, is_hub_id, resolve_local_model
from backend.settings import Settings

# Packed sequences end in right padding whose labels are ignored, so transformers' advice to
# pass an attention mask does not apply (and a mask would leave the causal fast path); its
# per-load progress bars would flood the worker log.
hf_logging.set_verbosity_error()
hf_logging.disable_progress_bar()


def resolve_dtype(name: str, device: torch.device) -> torch.dtype:
    """A run's compute dtype (its forward passes; the teacher's weights; the student keeps
    float32 master weights): auto is bfloat16 on a CUDA device that supports it, float32
    otherwise. bfloat16 on a CUDA device without it fails here with the GPU's name; on a CPU
    it is allowed (CPU autocast runs it, slowly)."""
    if name == "float32":
        return torch.float32
    cuda_bf16 = device.type == "cuda" and torch.cuda.is_bf16_supported()
    if name == "auto":
        return torch.bfloat16 if cuda_bf16 else torch.float32
    if name == "bfloat16":
        if device.type == "cuda" and not cuda_bf16:
            gpu = torch.cuda.get_device_name(device)
            raise ValueError(
                f"dtype bfloat16: this GPU ({gpu}) cannot run bfloat16; use float32 or auto"
            )
        return torch.bfloat16
    raise ValueError(f"dtype must be auto, bfloat16 or float32, got {name!r}")


def load_causal_lm_from(path: Path | str, dtype: torch.dtype | None = None):
    """The model at `path`, in `dtype` when given (else as transformers loads it)."""
    extra = {} if dtype is None else {"dtype": dtype}
    return AutoModelForCausalLM.from_pretrained(path, trust_remote_code=False, **extra)


def model_source(name: str, settings: Settings) -> Path | str:
    """A local folder under the model roots, else the Hub id itself (downloaded by
    from_pretrained when online; offline it fails with transformers' message naming it)."""
    try:
        return resolve_local_model(name, settings)
    except CatalogError:
        if is_hub_id(name):
            return name
        raise


def load_causal_lm(name: str, settings: Settings, dtype: torch.dtype | None = None):
    return load_causal_lm_from(model_source(name, settings), dtype)


def load_tokenizer(name: str | Path, settings: Settings):
    path = name if isinstance(name, Path) else model_source(name, settings)
    return AutoTokenizer.from_pretrained(path, trust_remote_code=False)


def load_tokenizer_from(source: Path | str):
    return AutoTokenizer.from_pretrained(source, trust_remote_code=False)
