"""Tokenizer compatibility of a teacher and a student, read from the files `save_pretrained`
writes (tokenizer.json, or vocab.json + added_tokens.json), without loading any model.

Logit distillation compares two next-token distributions entry by entry, so entry i must be
the same token in both models. Vocabularies that are identical pass; models whose heads only
add padding rows beyond the tokenizer (e.g. 151,936 vs 152,064 logits) pass too, with both
logits sliced to the shared tokenizer vocabulary."""

import json
from pathlib import Path


class VocabularyMismatch(ValueError):
    pass


def read_vocab(model_dir: Path) -> dict[str, int] | None:
    """token → id as the model's tokenizer defines it, or None when no tokenizer is saved."""
    vocab: dict[str, int] = {}
    tok_json = model_dir / "tokenizer.json"
    if tok_json.is_file():
        data = json.loads(tok_json.read_text(encoding="utf-8"))
        model_vocab = (data.get("model") or {}).get("vocab")
        if isinstance(model_vocab, dict):
            vocab.update(model_vocab)
        elif isinstance(model_vocab, list):  # Unigram: [[piece, score], ...] in id order
            vocab.update({piece: i for i, (piece, _score) in enumerate(model_vocab)})
        for added in data.get("added_tokens") or []:
            vocab[added["content"]] = added["id"]
        return vocab
    vocab_json = model_dir / "vocab.json"
    if vocab_json.is_file():
        vocab.update(json.loads(vocab_json.read_text(encoding="utf-8")))
        added = model_dir / "added_tokens.json"
        if added.is_file():
            vocab.update(json.loads(added.read_text(encoding="utf-8")))
        return vocab
    return None


def shared_vocab_size(
    teacher_dir: Path, student_dir: Path, teacher_cfg: dict, student_cfg: dict
) -> int:
    """The number of logit rows both models share; raises VocabularyMismatch saying why."""
    why = (
        "logit distillation compares the teacher's and the student's next-token "
        "distributions entry by entry, so both must share one vocabulary (the same token "
        "at every id)"
    )
    t_rows, s_rows = teacher_cfg.get("vocab_size"), student_cfg.get("vocab_size")
    t_vocab, s_vocab = read_vocab(teacher_dir), read_vocab(student_dir)
    if t_vocab is None or s_vocab is None:
        if t_rows == s_rows and t_rows:
            return int(t_rows)
        missing = "teacher" if t_vocab is None else "student"
        raise VocabularyMismatch(
            f"the {missing} has no saved tokenizer and the models have "
            f"{t_rows} and {s_rows} logits; {why}"
        )
    if t_vocab != s_vocab:
        only_t = sorted(set(t_vocab) - set(s_vocab))
        moved = sorted(k for k in set(t_vocab) & set(s_vocab) if t_vocab[k] != s_vocab[k])
        example = (
            f"'{only_t[0]}' is in the teacher's vocabulary only"
            if only_t
            else f"'{moved[0]}' is id {t_vocab[moved[0]]} in the teacher and "
            f"{s_vocab[moved[0]]} in the student"
            if moved
            else "the student has tokens the teacher lacks"
        )
        raise VocabularyMismatch(
            f"the tokenizers differ ({len(t_vocab)} vs {len(s_vocab)} tokens; {example}); {why}"
        )
    size = max(t_vocab.values()) + 1
    for who, rows in (("teacher", t_rows), ("student", s_rows)):
        if rows is not None and rows < size:
            raise VocabularyMismatch(
                f"the {who} has {rows} logits but its tokenizer has {size} tokens"
            )
    return size
