"""`t` pressed while the dashboard's start-up load runs: the train job takes that model, it does
not load it a second time (it did: two loads, twice the wait and, briefly, twice the memory)."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest
from test_tui_app import wait_for

from mlxtui.core import models
from mlxtui.core.config import TrainConfig
from mlxtui.core.engine import Engine
from mlxtui.core.jobs.context import ModelSlot, has_adapter_layers, mark_fresh
from mlxtui.tui.app import MlxtuiApp


def tiny_config(model: Path, runs: Path) -> TrainConfig:
    return TrainConfig.quick_start(
        model=str(model),
        iters=2,
        steps_per_eval=100,
        batch_size=2,
        num_layers=2,
        sample_prompts=0,
        max_seq_length=128,
        dequantize="no",
        runs_dir=str(runs),
    )


async def test_t_during_the_startup_load_loads_the_model_once(
    tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    loads: list[str | None] = []
    release = threading.Event()
    real_load = models.load_model

    def counting(spec: Any, *args: Any, **kw: Any) -> Any:
        loads.append(spec)
        release.wait(30)  # the first load lasts until t has been pressed, as a big model's does
        return real_load(spec, *args, **kw)

    monkeypatch.setattr(models, "load_model", counting)
    app = MlxtuiApp(tiny_config(tiny_model_dir, tmp_path / "runs"), engine_factory=Engine)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("t")  # at once: the load is queued or running, not done
        assert await wait_for(pilot, lambda: bool(loads))
        assert app.model_info is None  # the load is running
        release.set()
        assert await wait_for(pilot, lambda: app.status.state == "done", tries=3000)
    assert loads == [str(tiny_model_dir)]
    adapters = list((tmp_path / "runs").glob("*/adapters/adapters.safetensors"))
    assert len(adapters) == 1


def test_a_model_with_adapter_layers_is_never_taken_as_fresh(tiny_model_dir: Path) -> None:
    from mlx_lm.tuner.utils import linear_to_lora_layers

    model, tokenizer, info = models.load_model(str(tiny_model_dir), dequantize=False)
    slot = ModelSlot(model=model, tokenizer=tokenizer, info=info)
    assert not has_adapter_layers(model)
    mark_fresh(slot, str(tiny_model_dir), False)
    assert slot.take_fresh(str(tiny_model_dir), True) is None  # another dequantize setting
    mark_fresh(slot, str(tiny_model_dir), False)
    assert slot.take_fresh("demo", False) is None  # another model
    mark_fresh(slot, str(tiny_model_dir), False)
    assert slot.take_fresh(str(tiny_model_dir), False) == (model, tokenizer, info)
    assert slot.take_fresh(str(tiny_model_dir), False) is None  # taken once
    linear_to_lora_layers(model, 2, {"rank": 4, "scale": 10.0, "dropout": 0.0})
    assert has_adapter_layers(model)
    mark_fresh(slot, str(tiny_model_dir), False)
    assert slot.take_fresh(str(tiny_model_dir), False) is None
