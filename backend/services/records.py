"""Reading dataset files (pure Python: shared by the api's checks and the worker).

Formats. A `.txt` file: every non-empty line is a document (the loss covers all its tokens).
A `.jsonl` file: one JSON object per line, any of

- `{"text": "..."}`: a document, as a line of a .txt file;
- `{"prompt": "...", "completion": "..."}`: the loss covers the completion only;
- `{"messages": [{"role": "system" | "user" | "assistant", "content": "..."}, ...]}`: a
  conversation whose last message is the assistant's: that message is the completion (the
  loss covers it only), the messages before it are the prompt (earlier assistant turns
  included).

With a tokenizer that has a chat template, prompt/completion and messages records are rendered
through it (a bare prompt becomes one user message); without one, the prompt's text comes
first, then the completion's (see worker/distill/data.py). A dataset folder's dataset.json may
say `"kind": "chat"` for such files; they are read the same way.
"""

import json
from itertools import islice
from pathlib import Path

Messages = list[dict[str, str]]
# (prompt or None, text or completion); the prompt is a string or the messages before the
# assistant's last one.
Record = tuple[str | Messages | None, str]
SUFFIXES = (".txt", ".jsonl")
ROLES = ("system", "user", "assistant")
SHAPES = (
    'expected an object with "text", with "prompt" and "completion" strings, or with '
    '"messages": [{"role": ..., "content": ...}, ...] ending with the assistant\'s message'
)


def _messages(obj: object, where: str) -> Record:
    """A {"messages": [...]} line as (prompt messages, the assistant's last content)."""
    if not isinstance(obj, list) or len(obj) < 2:
        raise ValueError(
            f'{where}: "messages" must be a list of at least two messages (the prompt\'s, '
            "then the assistant's)"
        )
    for i, m in enumerate(obj, 1):
        if not (isinstance(m, dict) and isinstance(m.get("content"), str)):
            raise ValueError(f'{where}: message {i} must be an object with "role" and "content"')
        if m.get("role") not in ROLES:
            raise ValueError(
                f"{where}: message {i} has role {json.dumps(m.get('role'))}: a role is one of "
                f"{', '.join(ROLES)}"
            )
    if obj[-1]["role"] != "assistant":
        raise ValueError(
            f"{where}: the last message must be the assistant's (it is the completion), "
            f"not the {obj[-1]['role']}'s"
        )
    prompt = [{"role": m["role"], "content": m["content"]} for m in obj[:-1]]
    return prompt, obj[-1]["content"]


def parse_line(obj: object, where: str) -> Record:
    """One .jsonl object as a record; ValueError naming `where` and the shapes expected."""
    if isinstance(obj, dict):
        if isinstance(obj.get("text"), str):
            return None, obj["text"]
        if isinstance(obj.get("prompt"), str) and isinstance(obj.get("completion"), str):
            return obj["prompt"], obj["completion"]
        if "messages" in obj:
            return _messages(obj["messages"], where)
    raise ValueError(f"{where}: {SHAPES}")


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
        records.append(parse_line(obj, f"{path.name} line {n}"))
    return records


def no_completions(records: list[Record]) -> bool:
    """True when every record is a prompt with an empty completion (nothing to learn)."""
    return bool(records) and all(p is not None and not c.strip() for p, c in records)


def read_records(path: Path) -> list[Record]:
    """The records of a .txt or .jsonl file (formats: this module's docstring)."""
    with path.open(encoding="utf-8") as f:
        return _parse(path, f)


def check_records(path: Path, lines: int = 200) -> None:
    """Parse the first lines of a dataset file; raises ValueError saying what is wrong."""
    with path.open(encoding="utf-8") as f:
        records = _parse(path, islice(f, lines))
        whole = not f.readline()  # the sample was the whole file
    if not records:
        raise ValueError(f"{path.name} holds no documents")
    if whole and no_completions(records):
        raise ValueError(
            f"{path.name}: no completion tokens to learn from (every completion is empty)"
        )


def dataset_files(folder: Path) -> tuple[str, Path | str, Path | None]:
    """A dataset folder as its dataset.json describes it: (kind, the train file, the eval file
    or None when it names none and there is no eval.txt: the worker then holds out 5 % of the
    training documents). For kind "hub" the train entry is a 🤗 datasets id, not a file.
    ValueError saying what is wrong: no readable manifest, or a file it names that is missing
    or not a plain name inside the folder (absolute, or with ..)."""
    where = f"{folder.name}/dataset.json"
    try:
        manifest = json.loads((folder / "dataset.json").read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise ValueError(f"{where} is not JSON ({e.msg}, line {e.lineno})") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ValueError(f"{where} cannot be read ({e})") from None
    if not isinstance(manifest, dict):
        raise ValueError(f'{where} must hold an object such as {{"train": "train.txt"}}')
    kind = manifest.get("kind", "text")

    def named(key: str, default: str | None) -> str | None:
        name = manifest.get(key, default)
        if name is None or (key == "eval" and not name):
            return None
        if not isinstance(name, str) or not name:
            raise ValueError(f'{where}: "{key}" must be a file name in the folder')
        return name

    def inside(key: str, name: str) -> Path:
        path = Path(name)
        if path.is_absolute() or ".." in path.parts:
            raise ValueError(f'{where}: "{key}" names {name!r}, which is outside the folder')
        return folder / path

    if kind == "hub":
        train: Path | str | None = named("train", None)
        if train is None:
            raise ValueError(f'{where}: kind "hub" needs "train", a 🤗 datasets id')
    else:
        train = inside("train", named("train", "train.txt"))
        if not train.is_file():
            raise ValueError(f'{where}: "train" names {train.name!r}, which is not in the folder')
    eval_path = None
    eval_name = named("eval", "eval.txt")
    if eval_name is not None:
        eval_path = inside("eval", eval_name)
        if not eval_path.is_file():
            if "eval" in manifest:
                raise ValueError(f'{where}: "eval" names {eval_name!r}, which is not in the folder')
            eval_path = None  # no eval.txt, none named: a held-out share instead
    return kind, train, eval_path


def check_dataset(path: Path) -> None:
    """A dataset file, or a folder's manifest and the first lines of each file it names, read
    as the worker will read them; ValueError saying what is wrong."""
    if path.is_file():
        check_records(path)
        return
    kind, train, eval_ = dataset_files(path)
    for file in (train if kind != "hub" else None, eval_):
        if file is not None:
            check_records(file)
