"""The real kit's three models: the teacher dequantised from the GGUF file, a 10-layer student
initialised from every third teacher layer (DistilBERT's initialisation), and a narrower student
initialised at random. All share the teacher's tokenizer and chat template."""

import copy
from pathlib import Path

import torch
import transformers
from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaConfig, LlamaForCausalLM

from worker.distill.models import hf_logging  # noqa: F401 - quiets transformers' warnings

KEEP_LAYERS = tuple(range(0, 30, 3))  # 0, 3, ..., 27: ten of the teacher's thirty layers
NARROW = {
    "hidden_size": 256,
    "num_hidden_layers": 6,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "intermediate_size": 768,
}
NARROW_SEED = 0
CHECK_QUESTION = "What is the capital of France?"


def load_gguf_teacher(gguf: Path):
    """(model, tokenizer) dequantised to float32 from the GGUF file (transformers + gguf)."""
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    check_special_tokens(tokenizer, gguf)
    model = AutoModelForCausalLM.from_pretrained(
        gguf.parent, gguf_file=gguf.name, dtype=torch.float32
    )
    # Its weights are plain float32 now: saved as an ordinary model, not a GGUF-quantised one.
    model.config.__dict__.pop("quantization_config", None)
    model.hf_quantizer = None
    model.is_quantized = False
    model.config._name_or_path = "SmolLM2-135M-Instruct"
    return model.eval(), tokenizer


def check_special_tokens(tokenizer, gguf: Path) -> None:
    """The tokenizer transformers built from the GGUF file has the file's own special ids;
    ValueError otherwise (transformers 4.57 reads SmolLM2's with <|im_start|> as its end of
    sequence and no padding token: answers that never stop, a kit built wrong)."""
    from gguf import GGUFReader

    fields = GGUFReader(str(gguf)).fields
    wrong = []
    for role in ("bos", "eos", "padding"):
        field = fields.get(f"tokenizer.ggml.{role}_token_id")
        if field is None:
            continue
        want = int(field.parts[field.data[0]][0])
        got = getattr(tokenizer, f"{'pad' if role == 'padding' else role}_token_id")
        if got != want:
            wrong.append(f"{role} token id {got} where the file says {want}")
    if wrong:
        old = int(transformers.__version__.split(".")[0]) < 5
        raise ValueError(
            f"transformers {transformers.__version__} read the tokenizer of {gguf.name} "
            f"wrongly ({'; '.join(wrong)}): "
            + (
                "the real kit needs transformers 5 or later (pip install -e '.[worker,real]' "
                "installs it)"
                if old
                else "the kit is not built from a tokenizer that disagrees with its file"
            )
        )


def chat_answer(model, tokenizer, question: str, max_new_tokens: int = 20) -> str:
    """The model's greedy answer to one user message under its chat template."""
    text = tokenizer.apply_chat_template(
        [{"role": "user", "content": question}], tokenize=False, add_generation_prompt=True
    )
    ids = tokenizer(text, add_special_tokens=False, return_tensors="pt")
    with torch.no_grad():
        out = model.generate(
            **ids,
            max_new_tokens=max_new_tokens,
            do_sample=False,
            pad_token_id=tokenizer.pad_token_id,
        )
    return tokenizer.decode(out[0, ids["input_ids"].shape[1] :], skip_special_tokens=True).strip()


def layer_student(teacher, keep: tuple[int, ...] = KEEP_LAYERS):
    """The teacher's embeddings, final norm, head and layers `keep`, as a shallower model."""
    config = copy.deepcopy(teacher.config)
    config.num_hidden_layers = len(keep)
    if getattr(config, "layer_types", None):  # per-layer attention kinds, where a model has them
        config.layer_types = [config.layer_types[i] for i in keep]
    student = LlamaForCausalLM(config)
    state = teacher.state_dict()
    mapped = {}
    for key, value in state.items():
        parts = key.split(".")
        if parts[:2] == ["model", "layers"]:
            old = int(parts[2])
            if old not in keep:
                continue
            parts[2] = str(keep.index(old))
        mapped[".".join(parts)] = value.clone()
    missing, unexpected = student.load_state_dict(mapped, strict=False)
    # A tied head is the embedding itself: the only key allowed to be absent.
    assert not unexpected and set(missing) <= {"lm_head.weight"}, (missing, unexpected)
    student.tie_weights()
    student.generation_config = copy.deepcopy(teacher.generation_config)
    return student.eval()


def narrow_student(teacher_config, spec: dict = NARROW, seed: int = NARROW_SEED):
    """A randomly initialised Llama with the teacher's vocabulary, special ids and rope."""
    t = teacher_config
    rope = {"rope_parameters": t.rope_parameters} if hasattr(t, "rope_parameters") else {}
    if not rope:  # transformers before 5 keeps rope_theta on the config itself
        rope = {"rope_theta": t.rope_theta, "rope_scaling": t.rope_scaling}
    config = LlamaConfig(
        vocab_size=t.vocab_size,
        max_position_embeddings=t.max_position_embeddings,
        rms_norm_eps=t.rms_norm_eps,
        hidden_act=t.hidden_act,
        head_dim=spec["hidden_size"] // spec["num_attention_heads"],
        tie_word_embeddings=True,
        bos_token_id=t.bos_token_id,
        eos_token_id=t.eos_token_id,
        pad_token_id=t.pad_token_id,
        **rope,
        **spec,
    )
    torch.manual_seed(seed)
    return LlamaForCausalLM(config).eval()


def parameters(model) -> int:
    return sum(p.numel() for p in model.parameters())
