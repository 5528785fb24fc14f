"""clear_cache_threshold acts: 0 keeps MLX's cache between steps, a size clears above it.

mlx-lm clears whenever the cache exceeds the threshold, so handing it 0 cleared after every
step (issue 12); mlxtui's 0 means never.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from demo_slice import demo_slice

from mlxtui.core import events as ev
from mlxtui.core.config import TrainConfig
from mlxtui.core.engine import Engine, Train
from mlxtui.core.training.setup import NEVER_CLEAR, clear_cache_threshold


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return demo_slice(tmp_path_factory.mktemp("data"), train=16, valid=4)


def cache_after_steps(model: Path, data: Path, runs: Path, threshold: int) -> list[int]:
    """MLX's cache memory right after each step (read on the engine thread, in the event)."""
    import mlx.core as mx

    seen: list[int] = []

    def on_event(e: ev.Event) -> None:
        if isinstance(e, ev.TrainStep):
            seen.append(int(mx.get_cache_memory()))

    cfg = TrainConfig().with_values(
        model=str(model), data=str(data), runs_dir=str(runs), num_layers=2, batch_size=4,
        iters=4, steps_per_eval=100, save_every=100, val_batches=1, sample_prompts=0,
        memory_guard="off", max_seq_length=128, clear_cache_threshold=threshold,
    )
    engine = Engine(on_event)
    engine.start()
    try:
        engine.run_sync(Train(cfg), timeout=300)
    finally:
        engine.shutdown()
    return seen


def test_zero_means_never_and_a_size_means_above_it():
    assert clear_cache_threshold(TrainConfig(clear_cache_threshold=0)) == NEVER_CLEAR
    assert clear_cache_threshold(TrainConfig(clear_cache_threshold=1 << 30)) == 1 << 30


def test_the_cache_is_kept_with_0_and_cleared_above_a_small_threshold(tiny_model_dir, data, tmp_path):
    kept = cache_after_steps(tiny_model_dir, data, tmp_path / "a", 0)
    cleared = cache_after_steps(tiny_model_dir, data, tmp_path / "b", 1)
    assert len(kept) == len(cleared) == 4
    assert all(c > 0 for c in kept), kept
    # after a clear only the few bytes of the report's scalars come back to the cache
    assert max(cleared) * 100 < min(kept), (kept, cleared)
