"""Shared pytest fixtures: tiny random-init models (fast) built once per session."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from tiny_model import make_tiny_model  # noqa: E402


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A float32 random-init llama folder (4 layers, hidden 64, BPE tokenizer, ChatML template)."""
    return make_tiny_model(tmp_path_factory.mktemp("tiny_model"))


@pytest.fixture(scope="session")
def tiny_quant_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same tiny model stored 4-bit quantized (group size 32), for QLoRA tests."""
    return make_tiny_model(tmp_path_factory.mktemp("tiny_quant_model"), quantize_bits=4)
