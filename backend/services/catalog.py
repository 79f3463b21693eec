"""Find local models and datasets under the configured roots, without importing torch.

A model is a folder holding a transformers `config.json` (what `save_pretrained` writes); a
dataset is a folder with a `dataset.json` manifest. Names are resolved only inside the roots:
no `..`, no absolute path elsewhere, no symlink that escapes."""

import json
from pathlib import Path

from backend.schemas import DatasetInfo, ModelInfo
from backend.services.records import SUFFIXES
from backend.settings import Settings


class CatalogError(ValueError):
    """A name that does not resolve; the message says why."""


def _inside(path: Path, root: Path) -> bool:
    try:
        path.resolve().relative_to(root.resolve())
        return True
    except ValueError:
        return False


def _resolve(name: str, roots: list[Path], marker: str, what: str) -> Path:
    if not name or name.strip() != name:
        raise CatalogError(f"{what} name must be non-empty without surrounding spaces")
    candidate = Path(name)
    if ".." in candidate.parts:
        raise CatalogError(f"{what} '{name}': '..' is not allowed")
    candidates = [candidate] if candidate.is_absolute() else [r / candidate for r in roots]
    for path in candidates:
        if not any(_inside(path, root) for root in roots):
            continue
        if (path / marker).is_file():
            return path.resolve()
    where = ", ".join(str(r) for r in roots)
    if candidate.is_absolute() and not any(_inside(candidate, r) for r in roots):
        raise CatalogError(f"{what} '{name}' is outside the configured roots ({where})")
    raise CatalogError(f"unknown {what} '{name}': no folder with {marker} under {where}")


def resolve_model(name: str, settings: Settings) -> Path:
    return _resolve(name, settings.all_model_roots, "config.json", "model")


def resolve_dataset(name: str, settings: Settings) -> Path:
    """A folder with dataset.json, or a .txt / .jsonl file, under the dataset roots."""
    roots = settings.all_dataset_roots
    if name.endswith(SUFFIXES) and ".." not in Path(name).parts:
        candidate = Path(name)
        for path in [candidate] if candidate.is_absolute() else [r / candidate for r in roots]:
            if path.is_file() and any(_inside(path, r) for r in roots):
                return path.resolve()
    return _resolve(name, roots, "dataset.json", "dataset")


def read_model_config(path: Path) -> dict:
    return json.loads((path / "config.json").read_text())


def model_info(name: str, path: Path) -> ModelInfo:
    cfg = read_model_config(path)
    meta_file = path / "distillscope.json"
    meta = json.loads(meta_file.read_text()) if meta_file.is_file() else {}
    return ModelInfo(
        name=name,
        path=str(path),
        model_type=cfg.get("model_type"),
        vocab_size=cfg.get("vocab_size"),
        n_positions=cfg.get("n_positions") or cfg.get("max_position_embeddings"),
        parameters=meta.get("parameters"),
    )


def _list(roots: list[Path], marker: str) -> list[tuple[str, Path]]:
    found: dict[str, Path] = {}
    for root in roots:
        if not root.is_dir():
            continue
        for m in sorted(root.glob(f"*/{marker}")):
            found.setdefault(m.parent.name, m.parent)
    return sorted(found.items())


def list_models(settings: Settings) -> list[ModelInfo]:
    return [model_info(n, p) for n, p in _list(settings.all_model_roots, "config.json")]


def read_dataset_manifest(path: Path) -> dict:
    return json.loads((path / "dataset.json").read_text())


def list_datasets(settings: Settings) -> list[DatasetInfo]:
    out = []
    for root in settings.all_dataset_roots:
        for f in sorted(p for p in root.glob("*") if p.suffix in SUFFIXES and p.is_file()):
            out.append(
                DatasetInfo(
                    name=f.name, path=str(f), kind="text", description=f"{f.suffix[1:]} file"
                )
            )
    for name, path in _list(settings.all_dataset_roots, "dataset.json"):
        manifest = read_dataset_manifest(path)
        out.append(
            DatasetInfo(
                name=name,
                path=str(path),
                kind=manifest.get("kind", "text"),
                description=manifest.get("description"),
            )
        )
    return out
