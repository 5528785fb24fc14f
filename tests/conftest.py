"""Shared pytest fixtures: tiny random-init models (fast) built once per session."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))


def pytest_configure(config: pytest.Config) -> None:
    """`uv run pytest` on Linux CPU: restart with OpenBLAS preloaded, as the mlxtui command does
    (MLX's bundled BLAS makes the real-model tests about 20x slower)."""
    import os

    from mlxtui.core import blas

    env = dict(os.environ)
    if env.get(blas.NO_REEXEC_ENV) or env.get(blas.REEXEC_MARK_ENV):
        return
    if not blas.cpu_backend_expected() or blas.openblas_preloaded(env) or blas.find_openblas() is None:
        return
    # pytest has redirected fds 1 and 2 into its capture files: give the new process the terminal
    capman = config.pluginmanager.getplugin("capturemanager")
    if capman is not None:
        capman.stop_global_capturing()
    blas.maybe_reexec_with_openblas(["-m", "pytest", *sys.argv[1:]])

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
