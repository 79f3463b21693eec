"""What the inspector says about each model it shows: its role, a readable label and its kit;
and whether a model folder's tokenizer has a chat template (read from its files, no torch)."""

import json
import re

from sqlalchemy.orm import Session

from backend.services import catalog
from backend.services.runs import get_run
from backend.settings import Settings


def has_chat_template(folder) -> bool:
    """Whether the tokenizer saved in `folder` has a chat template: transformers writes it to
    chat_template.jinja (or chat_template.json), older versions into tokenizer_config.json."""
    if (folder / "chat_template.jinja").is_file():
        return True
    for name in ("chat_template.json", "tokenizer_config.json"):
        try:
            if json.loads((folder / name).read_text()).get("chat_template"):
                return True
        except (OSError, ValueError, AttributeError):
            continue
    return False


RUN_MODEL = re.compile(r"run:([0-9]{1,12})(?:@([0-9]{1,12}))?")


def about_models(*, names: list[str], session: Session, settings: Settings) -> list[dict]:
    """Per model: `role` (teacher, student, or None when unknown), `label` and `kit` (the kit
    that made it, e.g. "demo" or "smollm2", else None). A run's student is labelled by its
    run's name ("student of run 5, hard labels only, @ step 100"); a kit model's role and kit
    are the ones its distillscope.json records."""
    out = []
    for name in names:
        found = RUN_MODEL.fullmatch(name)
        if found:
            run_id, step = found.groups()
            run = get_run(session=session, run_id=int(run_id)) if len(run_id) < 10 else None
            label = f"student of run {int(run_id)}" + (f", {run.name}," if run else "")
            if step:
                label += f" @ step {int(step)}"
            out.append({"model": name, "role": "student", "label": label.rstrip(","), "kit": None})
            continue
        meta = {}
        try:
            path = catalog.resolve_local_model(name, settings) / "distillscope.json"
            meta = json.loads(path.read_text()) if path.is_file() else {}
        except (catalog.CatalogError, OSError, ValueError):
            pass
        meta = meta if isinstance(meta, dict) else {}
        kit = meta.get("kit") if isinstance(meta.get("kit"), str) else None
        out.append({"model": name, "role": meta.get("role"), "label": name, "kit": kit})
    return out
