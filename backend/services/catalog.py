"""Find local models and datasets under the configured roots, without importing torch.

A model is a folder holding a transformers `config.json` (what `save_pretrained` writes); a
dataset is a folder with a `dataset.json` manifest. Names are resolved only inside the roots:
no `..`, no absolute path elsewhere, no symlink that escapes."""

import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from backend.schemas import DatasetInfo, ModelInfo
from backend.services.records import SUFFIXES, dataset_files
from backend.settings import Settings


class CatalogError(ValueError):
    """A name that does not resolve; the message says why."""


def _inside(path: Path, root: Path) -> bool:
    try:
        path.resolve().relative_to(root.resolve())
        return True
    except ValueError:
        return False


@contextmanager
def _resolving(name: str, what: str) -> Iterator[None]:
    """Any error of the file system while a name is resolved (`File name too long`, a symlink
    loop, a folder it may not read) is a CatalogError naming the name, not a 500."""
    try:
        yield
    except CatalogError:
        raise
    except (OSError, RuntimeError, ValueError) as e:  # RuntimeError: Path.resolve's loops
        shown = name if len(name) <= 80 else f"{name[:80]}…"
        why = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
        raise CatalogError(f"{what} '{shown}' cannot be resolved: {why}") from None


def _resolve(name: str, roots: list[Path], marker: str, what: str) -> Path:
    with _resolving(name, what):
        return _find(name, roots, marker, what)


def _find(name: str, roots: list[Path], marker: str, what: str) -> Path:
    if not name or name.strip() != name:
        raise CatalogError(f"{what} name must be non-empty without surrounding spaces")
    candidate = Path(name)
    if ".." in candidate.parts:
        raise CatalogError(f"{what} '{name}': '..' is not allowed")
    candidates = [candidate] if candidate.is_absolute() else [r / candidate for r in roots]
    for path in candidates:
        if not any(_inside(path, root) for root in roots):
            if (path / marker).is_file():  # e.g. a symlink under a root pointing elsewhere
                raise CatalogError(
                    f"{what} '{name}' resolves to {path.resolve()}, outside the configured roots"
                )
            continue
        if (path / marker).is_file():
            return path.resolve()
    where = ", ".join(str(r) for r in roots)
    if candidate.is_absolute() and not any(_inside(candidate, r) for r in roots):
        raise CatalogError(f"{what} '{name}' is outside the configured roots ({where})")
    raise CatalogError(f"unknown {what} '{name}': no folder with {marker} under {where}")


HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]+")
HUB_MODEL_FILES = (
    "config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "vocab.json",
    "added_tokens.json",
)


def is_hub_id(name: str) -> bool:
    return bool(HUB_ID.fullmatch(name)) and ".." not in name


def resolve_local_model(name: str, settings: Settings) -> Path:
    return _resolve(name, settings.all_model_roots, "config.json", "model")


def fetch_hub_model_files(name: str, local_error: str) -> Path:
    """Config and tokenizer files of a Hub model (no weights), for the submit-time checks.
    Offline, or with the Hub unreachable, a CatalogError names the model and says why."""
    from huggingface_hub import constants, hf_hub_download, model_info  # no torch
    from huggingface_hub.errors import EntryNotFoundError, LocalEntryNotFoundError

    def unavailable(why: str) -> CatalogError:
        return CatalogError(
            f"{local_error}; as a Hugging Face Hub id, '{name}' could not be fetched: {why}"
        )

    if constants.HF_HUB_OFFLINE:
        raise unavailable("this machine is offline (HF_HUB_OFFLINE is set)")
    try:
        model_info(name, timeout=5)  # fails fast when the Hub is unreachable or the id unknown
    except Exception as exc:
        raise unavailable(f"{type(exc).__name__}: {str(exc)[:200]}") from None
    folder = None
    for filename in HUB_MODEL_FILES:
        try:
            folder = Path(hf_hub_download(name, filename, etag_timeout=5)).parent
        except LocalEntryNotFoundError as exc:
            raise unavailable(f"the Hub became unreachable ({exc})") from None
        except EntryNotFoundError:
            if filename == "config.json":
                raise CatalogError(
                    f"model '{name}' on the Hugging Face Hub has no config.json"
                ) from None
    assert folder is not None
    return folder


def resolve_model(name: str, settings: Settings, *, fetch: bool = True) -> Path:
    """A local model folder under the model roots; else, for an `org/name` id, the folder of
    its config and tokenizer files fetched from the Hub (the worker loads the weights)."""
    try:
        return resolve_local_model(name, settings)
    except CatalogError as e:
        if fetch and is_hub_id(name):
            return fetch_hub_model_files(name, str(e))
        raise


def check_hub_dataset(name: str, local_error: str) -> str:
    """A 🤗 datasets id usable from the worker: needs the `datasets` package and the Hub."""
    import importlib.util

    from huggingface_hub import constants, dataset_info

    prefix = f"{local_error}; as a Hugging Face dataset id, '{name}'"
    if importlib.util.find_spec("datasets") is None:
        raise CatalogError(f"{prefix} needs the `datasets` package (pip install datasets)")
    if constants.HF_HUB_OFFLINE:
        raise CatalogError(
            f"{prefix} cannot be fetched: this machine is offline (HF_HUB_OFFLINE is set)"
        )
    try:
        dataset_info(name, timeout=5)
    except Exception as exc:
        raise CatalogError(
            f"{prefix} could not be fetched: {type(exc).__name__}: {str(exc)[:200]}"
        ) from None
    return name


def resolve_dataset_source(name: str, settings: Settings) -> Path | str:
    """resolve_dataset, or for an `org/name` id that is not local, the checked Hub id."""
    try:
        return resolve_dataset(name, settings)
    except CatalogError as e:
        if is_hub_id(name):
            return check_hub_dataset(name, str(e))
        raise


def resolve_dataset(name: str, settings: Settings) -> Path:
    """A folder with dataset.json, or a .txt / .jsonl file, under the dataset roots."""
    roots = settings.all_dataset_roots
    if name.endswith(SUFFIXES) and ".." not in Path(name).parts:
        candidate = Path(name)
        with _resolving(name, "dataset"):
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
        role=meta.get("role"),
        description=meta.get("made") or _made(meta),
        profile=meta.get("profile"),
    )


def _list(roots: list[Path], marker: str) -> list[tuple[str, Path]]:
    found: dict[str, Path] = {}
    for root in roots:
        if not root.is_dir():
            continue
        for m in sorted(root.glob(f"*/{marker}")):
            if not m.parent.name.startswith("."):  # e.g. a kit part still being written
                found.setdefault(m.parent.name, m.parent)
    return sorted(found.items())


def _made(meta: dict) -> str | None:
    """A line for kit models recorded before they said how they were made."""
    if meta.get("role") == "student":
        return "untrained student"
    if meta.get("role") == "teacher" and meta.get("trained_on"):
        return f"teacher trained on {meta['trained_on']}"
    return None


def list_models(settings: Settings) -> list[ModelInfo]:
    return [model_info(n, p) for n, p in _list(settings.all_model_roots, "config.json")]


def read_dataset_manifest(path: Path) -> dict:
    """A dataset folder's dataset.json (records.dataset_files says whether it is usable)."""
    return json.loads((path / "dataset.json").read_text(encoding="utf-8"))


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
        try:
            dataset_files(path)  # what a run on it would be refused for
        except ValueError as e:  # listed, so the page can say what is wrong with it
            out.append(DatasetInfo(name=name, path=str(path), kind="unusable", description=str(e)))
            continue
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


def run_student_dir(name: str, settings: Settings) -> Path | None:
    """For `run:<id>`: that run's final student, else its latest checkpoint; for
    `run:<id>@<step>`: its checkpoint at that step. All are written with save_pretrained under
    the shared artifact dir. None when there is no such student."""
    found = re.fullmatch(r"run:([0-9]{1,12})(?:@([0-9]{1,12}))?", name)
    if found is None:
        return None
    run_id, step = found.groups()
    run_dir = settings.runs_dir / run_id
    if step:
        folder = run_dir / "checkpoints" / f"step-{int(step):08d}"
        return folder if (folder / "config.json").is_file() else None
    if (run_dir / "final" / "config.json").is_file():
        return run_dir / "final"
    found = sorted(p.parent for p in run_dir.glob("checkpoints/step-*/config.json"))
    return found[-1] if found else None


def run_student_steps(run_id: int, settings: Settings) -> tuple[list[int], bool]:
    """The steps of a run's inspectable checkpoints (ascending) and whether its final student
    exists."""
    run_dir = settings.runs_dir / str(run_id)
    steps = sorted(
        int(p.parent.name.removeprefix("step-"))
        for p in run_dir.glob("checkpoints/step-*/config.json")
        if p.parent.name.removeprefix("step-").isdigit()
    )
    return steps, (run_dir / "final" / "config.json").is_file()
