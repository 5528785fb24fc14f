"""Tests of the tiny test models and of mlxtui.core.models."""

from __future__ import annotations

import mlx.core as mx
import mlx.nn as nn
import mlx_lm


def test_tiny_model_loads_and_generates(tiny_model_dir):
    model, tok = mlx_lm.load(str(tiny_model_dir))
    prompt = tok.apply_chat_template(
        [{"role": "user", "content": "Hi"}], tokenize=False, add_generation_prompt=True
    )
    assert prompt == "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
    assert tok.eos_token == "<|im_end|>"
    ids = tok.encode(prompt)
    assert tok.decode(ids) == prompt
    out = mlx_lm.generate(model, tok, prompt, max_tokens=5)
    assert isinstance(out, str)


def test_tiny_quant_model_is_quantized(tiny_quant_model_dir):
    model, _ = mlx_lm.load(str(tiny_quant_model_dir))
    kinds = {type(m) for _, m in model.named_modules()}
    assert nn.QuantizedLinear in kinds
    logits = model(mx.array([[1, 2, 3]]))
    assert logits.shape[-1] == model.args.vocab_size
