"""The dashboard on the real engine and the tiny model: what the user sees while MLX works."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from test_tui_app import wait_for

from mlxtui.core.config import TrainConfig
from mlxtui.core.engine import Engine
from mlxtui.tui.app import MlxtuiApp
from mlxtui.tui.status import status_text
from mlxtui.tui.widgets.status_line import StatusLine


async def test_a_real_validation_shows_its_batch_count_on_the_status_line(
    tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every text the status line is given is recorded (each engine event that changes the
    status redraws it): the first validation's batches must appear as `validation k/3`."""
    shown: list[str] = []
    show = StatusLine.show

    def recording(self: StatusLine, status: Any) -> None:
        show(self, status)
        shown.append(status_text(status))

    monkeypatch.setattr(StatusLine, "show", recording)
    config = TrainConfig.quick_start(
        model=str(tiny_model_dir),
        iters=2,
        steps_per_eval=2,
        val_batches=3,
        batch_size=2,
        num_layers=2,
        sample_prompts=0,
        max_seq_length=128,
        dequantize="no",
        runs_dir=str(tmp_path / "runs"),
    )
    engines: list[Engine] = []

    def factory(on_event: Any) -> Engine:
        engines.append(Engine(on_event))
        return engines[-1]

    app = MlxtuiApp(config, engine_factory=factory)
    async with app.run_test(size=(120, 40)) as pilot:
        assert await wait_for(pilot, lambda: app.status.model != "", tries=1500)
        await pilot.press("t")
        assert await wait_for(pilot, lambda: app.status.state == "done", tries=3000), shown[-5:]
    counts = {m.group(1) for text in shown if (m := re.search(r"validation (\d)/3 · \d+ s", text))}
    assert {"1", "2", "3"} <= counts, [t for t in shown if "validation" in t]
    assert any(re.search(r"TRAINING  │  validation \d/3", text) for text in shown)
