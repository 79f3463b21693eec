"""What the inspector says about each model it shows: its role and a readable label."""

import json
import re

from sqlalchemy.orm import Session

from backend.services import catalog
from backend.services.runs import get_run
from backend.settings import Settings

RUN_MODEL = re.compile(r"run:([0-9]{1,12})(?:@([0-9]{1,12}))?")


def about_models(*, names: list[str], session: Session, settings: Settings) -> list[dict]:
    """Per model: `role` (teacher, student, or None when unknown) and `label`. A run's student
    is labelled by its run's name ("student of run 5, hard labels only, @ step 100"); a kit
    model's role is the one its distillscope.json records."""
    out = []
    for name in names:
        found = RUN_MODEL.fullmatch(name)
        if found:
            run_id, step = found.groups()
            run = get_run(session=session, run_id=int(run_id)) if len(run_id) < 10 else None
            label = f"student of run {int(run_id)}" + (f", {run.name}," if run else "")
            if step:
                label += f" @ step {int(step)}"
            out.append({"model": name, "role": "student", "label": label.rstrip(",")})
            continue
        role = None
        try:
            meta = catalog.resolve_local_model(name, settings) / "distillscope.json"
            role = json.loads(meta.read_text()).get("role") if meta.is_file() else None
        except (catalog.CatalogError, OSError, ValueError):
            pass
        out.append({"model": name, "role": role, "label": name})
    return out
