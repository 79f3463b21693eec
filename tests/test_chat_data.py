"""Chat data: {"messages"} and {"prompt", "completion"} records go through a tokenizer's chat
template with the loss on the completion only (end-of-turn included); unknown shapes and data
with nothing to learn are refused with messages that say what is wrong."""

import json

import pytest
import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

from backend.services.records import check_records, read_records
from worker.distill.data import IGNORE, encode_chat, load_dataset

# A ChatML template like SmolLM2's, with its default system message.
TEMPLATE = (
    "{% for m in messages %}{% if loop.first and m['role'] != 'system' %}"
    "{{ '<|im_start|>system\nYou are helpful.<|im_end|>\n' }}{% endif %}"
    "{{ '<|im_start|>' + m['role'] + '\n' + m['content'] + '<|im_end|>\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
CORPUS = [
    "What is the capital of France? The capital of France is Paris.",
    "Name three fruits: apple, pear and plum.",
    "You are helpful. system user assistant",
] * 20


@pytest.fixture(scope="module")
def chat_tokenizer():
    """A byte-level BPE tokenizer trained on the spot, with a chat template."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    trainer = trainers.BpeTrainer(
        vocab_size=400,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(CORPUS, trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<|im_start|>",
        eos_token="<|im_end|>",
        pad_token="<|im_end|>",
        unk_token="<|endoftext|>",
        chat_template=TEMPLATE,
    )


@pytest.fixture(scope="module")
def plain_tokenizer(chat_tokenizer):
    tok = PreTrainedTokenizerFast(
        tokenizer_object=chat_tokenizer.backend_tokenizer,
        bos_token="<|im_start|>",
        eos_token="<|im_end|>",
        pad_token="<|im_end|>",
    )
    assert not tok.chat_template
    return tok


def _write(path, lines):
    path.write_text("".join(json.dumps(x) + "\n" for x in lines))
    return path


def _completion_text(tok, split) -> list[str]:
    """The label tokens of every sequence, decoded (what the loss covers)."""
    out = []
    for ids in split.labels:
        kept = [int(x) for x in ids if x != IGNORE]
        out.append(tok.decode(kept))
    return out


def test_prompt_completion_goes_through_the_chat_template_with_loss_on_the_answer(
    chat_tokenizer, tmp_path
):
    tok = chat_tokenizer
    ids, targets = encode_chat(tok, "What is the capital of France?", "Paris.")
    rendered = tok.decode(ids)
    assert rendered.startswith("<|im_start|>system\nYou are helpful.<|im_end|>\n<|im_start|>user")
    answer = tok.decode([i for i, t in zip(ids, targets, strict=True) if t])
    assert answer == "Paris.<|im_end|>\n"  # the end-of-turn token is part of the completion
    assert targets == sorted(targets)  # prompt first, then the completion only

    path = _write(
        tmp_path / "qa.jsonl",
        [{"prompt": "What is the capital of France?", "completion": "Paris."}] * 3,
    )
    data = load_dataset(path, tok, seq_len=128, vocab_size=len(tok))
    seqs = data.train.input_ids
    # Chat documents bring their own <|im_start|>: no BOS doubled in front of the template.
    assert int(seqs[0, 0]) == tok.convert_tokens_to_ids("<|im_start|>")
    assert int(seqs[0, 1]) != tok.convert_tokens_to_ids("<|im_start|>")
    assert set(_completion_text(tok, data.train)) == {"Paris.<|im_end|>\n" * 2}


def test_messages_train_on_the_last_assistant_message_only(chat_tokenizer, tmp_path):
    tok = chat_tokenizer
    convo = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Name three fruits."},
        {"role": "assistant", "content": "apple, pear"},
        {"role": "user", "content": "One more?"},
        {"role": "assistant", "content": "plum"},
    ]
    records = read_records(_write(tmp_path / "c.jsonl", [{"messages": convo}] * 2))
    prompt, completion = records[0]
    assert prompt == convo[:-1] and completion == "plum"
    ids, targets = encode_chat(tok, prompt, completion)
    assert tok.decode(ids).startswith("<|im_start|>system\nBe brief.")  # no default system
    assert tok.decode([i for i, t in zip(ids, targets, strict=True) if t]) == "plum<|im_end|>\n"
    # The earlier assistant turn is context: its tokens carry no loss.
    data = load_dataset(tmp_path / "c.jsonl", tok, seq_len=128, vocab_size=len(tok))
    labels = torch.cat([data.train.labels, data.eval.labels])
    assert "apple" not in tok.decode([int(x) for x in labels.flatten() if x != IGNORE])


def test_without_a_chat_template_prompt_text_comes_first(plain_tokenizer, tmp_path):
    tok = plain_tokenizer
    path = _write(
        tmp_path / "qa.jsonl",
        [{"prompt": "Name three fruits: ", "completion": "apple, pear and plum."}] * 2
        + [
            {
                "messages": [
                    {"role": "user", "content": "Name three fruits:"},
                    {"role": "assistant", "content": "apple"},
                ]
            }
        ]
        * 2,
    )
    data = load_dataset(path, tok, seq_len=64, vocab_size=len(tok))
    seq = [int(x) for x in data.train.input_ids[0] if x != tok.pad_token_id]
    assert tok.decode(seq).startswith("<|im_start|>Name three fruits")  # BOS, prompt, answer
    assert "system" not in tok.decode(seq)
    learned = "".join(_completion_text(tok, data.train) + _completion_text(tok, data.eval))
    assert "apple" in learned and "Name" not in learned


@pytest.mark.parametrize(
    "line, says",
    [
        ({"question": "?"}, '"prompt" and "completion"'),
        ({"prompt": "hi"}, '"messages"'),
        (
            {"messages": [{"role": "user", "content": "hi"}, {"role": "bot", "content": "yo"}]},
            'message 2 has role "bot": a role is one of system, user, assistant',
        ),
        (
            {
                "messages": [
                    {"role": "assistant", "content": "yo"},
                    {"role": "user", "content": "hi"},
                ]
            },
            "the last message must be the assistant's",
        ),
        ({"messages": [{"role": "assistant", "content": "yo"}]}, "at least two messages"),
        (
            {"messages": [{"role": "user"}, {"role": "assistant", "content": "yo"}]},
            'message 1 must be an object with "role" and "content"',
        ),
    ],
)
def test_unknown_shapes_are_refused_naming_the_line(tmp_path, line, says):
    path = _write(tmp_path / "d.jsonl", [{"text": "fine"}, line])
    with pytest.raises(ValueError) as e:
        check_records(path)
    assert "d.jsonl line 2" in str(e.value) and says in str(e.value)


def test_a_dataset_with_nothing_to_learn_is_refused(chat_tokenizer, tmp_path):
    empty = _write(tmp_path / "empty.jsonl", [{"prompt": "What?", "completion": " "}] * 3)
    with pytest.raises(ValueError, match="empty.jsonl: no completion tokens to learn from"):
        check_records(empty)  # at submit: the api's 422
    with pytest.raises(ValueError, match="'empty.jsonl': no completion tokens to learn from"):
        load_dataset(empty, chat_tokenizer, seq_len=64, vocab_size=len(chat_tokenizer))
    # Completions cut off by seq_len: only the worker can tell (it knows the tokenizer).
    folder = tmp_path / "long-prompts"
    folder.mkdir()
    _write(
        folder / "train.jsonl", [{"prompt": "What is the capital? " * 20, "completion": "Paris."}]
    )
    _write(folder / "eval.jsonl", [{"prompt": "What?", "completion": "Paris."}])
    (folder / "dataset.json").write_text(
        json.dumps({"kind": "chat", "train": "train.jsonl", "eval": "eval.jsonl"})
    )
    check_records(folder / "train.jsonl")
    with pytest.raises(ValueError, match="'long-prompts': no completion tokens.*seq_len 32"):
        load_dataset(folder, chat_tokenizer, seq_len=32, vocab_size=len(chat_tokenizer))
    data = load_dataset(folder, chat_tokenizer, seq_len=256, vocab_size=len(chat_tokenizer))
    assert data.kind == "chat" and bool((data.train.labels != IGNORE).any())


def test_an_unknown_chat_format_is_a_422_at_submit(client, tmp_path):
    root = tmp_path / "data" / "datasets"
    root.mkdir(parents=True, exist_ok=True)
    bad = {"messages": [{"role": "human", "content": "hi"}, {"role": "assistant", "content": "yo"}]}
    _write(root / "chat.jsonl", [bad])
    _write(root / "empty.jsonl", [{"prompt": "hi", "completion": ""}])
    good = {
        "teacher": "demo-teacher",
        "student": "demo-student-s",
        "max_steps": 2,
        "seq_len": 32,
        "batch_size": 2,
    }
    for name, says in (("chat.jsonl", 'role "human"'), ("empty.jsonl", "no completion tokens")):
        r = client.post("/api/runs", json={**good, "dataset": name})
        assert r.status_code == 422, r.text
        err = r.json()["detail"][0]
        assert err["loc"] == ["body", "dataset"] and says in err["msg"], err


FOLDERS = {
    # name: (dataset.json as text, files, what the 422 says)
    "bad-line": ('{"kind": "chat", "train": "t.jsonl"}', {"t.jsonl": '{"prompt": 1}\n'},
                 "t.jsonl line 1: expected an object"),
    "no-train": ('{"train": "train.txt"}', {}, "\"train\" names 'train.txt', which is not in"),
    "bad-eval": ('{"eval": "e.jsonl"}', {"train.txt": "a b c\n", "e.jsonl": "nope\n"},
                 "e.jsonl line 1: not JSON"),
    "gone-eval": ('{"eval": "e.txt"}', {"train.txt": "a b c\n"}, "\"eval\" names 'e.txt'"),
    "outside": ('{"train": "../outside.txt"}', {}, "which is outside the folder"),
    "not-json": ('{"train": ', {"train.txt": "a\n"}, "dataset.json is not JSON"),
    "a-list": ('["train.txt"]', {"train.txt": "a\n"}, "must hold an object"),
    "hub-no-train": ('{"kind": "hub"}', {}, 'kind "hub" needs "train"'),
    "abs-eval": ('{"eval": "/etc/hostname"}', {"train.txt": "a\n"}, "outside the folder"),
}  # fmt: skip


def test_a_dataset_folder_is_read_at_submit_as_the_worker_reads_it(client, tmp_path):
    """A folder's manifest and the first lines of the files it names: a bad one is a 422
    naming the folder's file and line, not a run that fails in the worker."""
    root = tmp_path / "data" / "datasets"
    root.mkdir(parents=True, exist_ok=True)
    (root / "outside.txt").write_text("a b c\n")
    for name, (manifest, files, _) in FOLDERS.items():
        (root / name).mkdir()
        (root / name / "dataset.json").write_text(manifest)
        for file, text in files.items():
            (root / name / file).write_text(text)
    good = {"teacher": "demo-teacher", "student": "demo-student-s", "max_steps": 2}
    for name, (_, _, says) in FOLDERS.items():
        r = client.post("/api/runs", json={**good, "dataset": name})
        assert r.status_code == 422, (name, r.text)
        err = r.json()["detail"][0]
        assert err["loc"] == ["body", "dataset"] and says in err["msg"], (name, err)
    # The datasets list still answers, and says what is wrong with each unusable folder.
    listed = {d["name"]: d for d in client.get("/api/datasets").json()}
    for name, (_, _, says) in FOLDERS.items():
        if name != "bad-line" and name != "bad-eval":  # their manifests are fine
            assert listed[name]["kind"] == "unusable" and says in listed[name]["description"]
        # Without an eval file or an "eval" entry, a folder is fine (5 % of train is held out).
    (root / "plain").mkdir()
    (root / "plain" / "dataset.json").write_text("{}")
    (root / "plain" / "train.txt").write_text("a b c\nd e f\n")
    assert client.post("/api/runs", json={**good, "dataset": "plain"}).status_code == 201
