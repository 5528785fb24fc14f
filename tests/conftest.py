"""Shared pytest fixtures: tiny random-init models (fast) built once per session."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

# Linux CPU: `import mlxtui` loads OpenBLAS right before the first `import mlx` (core/blas.py);
# MLX's bundled BLAS would make the real-model tests about 20x slower.
import mlxtui  # noqa: F401

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


@pytest.fixture(scope="session", autouse=True)
def mlxtui_cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Every test session gets its own mlxtui cache (MLXTUI_CACHE_DIR): the user's stays untouched."""
    root = tmp_path_factory.mktemp("mlxtui_cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLXTUI_CACHE_DIR", str(root))
        yield root


@pytest.fixture(scope="session")
def demo_model_dir(mlxtui_cache_dir: Path) -> Path:
    """The real demo model (SmolLM2-135M-Instruct Q4_1) converted once per session (about 1 s).

    `resolve_model("demo")` in any test then finds it in the session cache.
    """
    from mlxtui.core.models import demo_model_dir as convert_demo

    return convert_demo()


@pytest.fixture(autouse=True)
def _run_in_a_scratch_folder(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """mlx-lm's defaults are relative (`--adapter-path adapters`, `./data`, `runs/`): a test that
    keeps them writes into its own scratch folder, never into the checkout."""
    monkeypatch.chdir(tmp_path_factory.mktemp("cwd"))


@pytest.fixture(autouse=True)
def _user_config_in_a_scratch_folder(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """The dashboard remembers its session in the user's config folder: each test gets an empty
    one of its own (MLXTUI_CONFIG_DIR), so no test reads or writes the real one or another's."""
    monkeypatch.setenv("MLXTUI_CONFIG_DIR", str(tmp_path_factory.mktemp("user_config")))
