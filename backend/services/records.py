"""Reading dataset files (pure Python: shared by the api's checks and the worker)."""

import json
from itertools import islice
from pathlib import Path

Record = tuple[str | None, str]  # (prompt or None, text or completion)
SUFFIXES = (".txt", ".jsonl")


def _parse(path: Path, lines) -> list[Record]:
    if path.suffix != ".jsonl":
        return [(None, ln.strip()) for ln in lines if ln.strip()]
    records: list[Record] = []
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            raise ValueError(f"{path.name} line {n}: not JSON ({e.msg})") from None
        if isinstance(obj, dict) and isinstance(obj.get("text"), str):
            records.append((None, obj["text"]))
        elif (
            isinstance(obj, dict)
            and isinstance(obj.get("prompt"), str)
            and isinstance(obj.get("completion"), str)
        ):
            records.append((obj["prompt"], obj["completion"]))
        else:
            raise ValueError(
                f'{path.name} line {n}: expected an object with "text", or with '
                '"prompt" and "completion" strings'
            )
    return records


def read_records(path: Path) -> list[Record]:
    """Lines of a .txt file are documents; a .jsonl line holds {"text": ...} or
    {"prompt": ..., "completion": ...} (the loss then covers the completion only)."""
    with path.open(encoding="utf-8") as f:
        return _parse(path, f)


def check_records(path: Path, lines: int = 200) -> None:
    """Parse the first lines of a dataset file; raises ValueError saying what is wrong."""
    with path.open(encoding="utf-8") as f:
        if not _parse(path, islice(f, lines)):
            raise ValueError(f"{path.name} holds no documents")
