"""Load models and tokenizers exactly as any Hugging Face model: `from_pretrained` on a local
folder found under the configured model roots. `trust_remote_code` is never enabled."""

from pathlib import Path

from transformers import AutoModelForCausalLM, AutoTokenizer
from transformers.utils import logging as hf_logging

from backend.services.catalog import CatalogError, is_hub_id, resolve_local_model
from backend.settings import Settings

# Packed sequences end in right padding whose labels are ignored, so transformers' advice to
# pass an attention mask does not apply (and a mask would leave the causal fast path); its
# per-load progress bars would flood the worker log.
hf_logging.set_verbosity_error()
hf_logging.disable_progress_bar()


def load_causal_lm_from(path: Path | str):
    return AutoModelForCausalLM.from_pretrained(path, trust_remote_code=False)


def model_source(name: str, settings: Settings) -> Path | str:
    """A local folder under the model roots, else the Hub id itself (downloaded by
    from_pretrained when online; offline it fails with transformers' message naming it)."""
    try:
        return resolve_local_model(name, settings)
    except CatalogError:
        if is_hub_id(name):
            return name
        raise


def load_causal_lm(name: str, settings: Settings):
    return load_causal_lm_from(model_source(name, settings))


def load_tokenizer(name: str | Path, settings: Settings):
    path = name if isinstance(name, Path) else model_source(name, settings)
    return AutoTokenizer.from_pretrained(path, trust_remote_code=False)


def load_tokenizer_from(source: Path | str):
    return AutoTokenizer.from_pretrained(source, trust_remote_code=False)
