"""Snapshots of the runs screen and the compare screen's overlay plot.

The run folders here are written by hand with fixed times and losses (a real run's dates,
durations and tokens/s change every time); their layout is the one a real run leaves, which
tests/test_run_history.py checks on trained folders. Regenerate after an intended change with
`uv run pytest tests/test_tui_runs_snapshots.py --snapshot-update` and look at the SVGs.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

import pytest
from test_tui_fakes import FakeEngine

from mlxtui.core.config import TrainConfig, save_config
from mlxtui.tui.app import MlxtuiApp

START = 1_767_268_800.0  # 2026-01-01 12:00 UTC


def write_run(
    root: Path, folder: str, lr: float, layers: int, scale: float, started: float, status: str
) -> None:
    run = root / folder
    (run / "adapters").mkdir(parents=True)
    (run / "state").mkdir()
    config = TrainConfig.quick_start(iters=100, learning_rate=lr, num_layers=layers, model="demo")
    save_config(
        config.with_values(adapter_path=str(Path("runs") / folder / "adapters")),
        run / "config.yaml",
    )
    for name in (
        "adapters.safetensors",
        "best_adapters.safetensors",
        "0000050_adapters.safetensors",
    ):
        (run / "adapters" / name).write_bytes(b"weights")
    (run / "state" / "optimizer.safetensors").write_bytes(b"state")
    last = 100 if status == "completed" else 60
    lines: list[dict[str, Any]] = [
        {"event": "start", "run_dir": str(run), "total_iters": 100, "start_iter": 0, "fine_tune_type": "lora",
         "estimated_peak_bytes": 2_400_000_000, "started_at": started, "time": started},
    ]  # fmt: skip
    for step in range(0, last + 1, 5):
        t = started + step * 1.5
        if step:
            loss = 2.0 + scale * math.exp(-step / 30)
            lines.append(
                {"event": "train", "iteration": step, "total_iters": 100, "train_loss": loss,
                 "learning_rate": lr, "tokens_per_second": 1500.0 * (1.2 if layers == 4 else 1.0),
                 "iterations_per_second": 2.0, "trained_tokens": step * 400, "peak_memory": 2.1 + layers / 20,
                 "time": t}
            )  # fmt: skip
        if step % 25 == 0:
            val = 2.1 + scale * math.exp(-step / 30) + (0.002 * step if lr > 5e-4 else 0)
            lines.append(
                {"event": "val", "iteration": step, "val_loss": val, "val_time": 1.0, "time": t}
            )
    lines.append(
        {"event": "finished", "status": status, "iteration": last, "peak_memory_gb": 2.1 + layers / 20,
         "estimated_peak_bytes": 2_400_000_000, "test_loss": None, "message": "", "time": started + last * 1.5}
    )  # fmt: skip
    (run / "metrics.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    state = {"iteration": last, "total_iters": 100, "status": status}
    (run / "state" / "state.json").write_text(json.dumps(state))


def write_two_runs(root: Path) -> Path:
    """A completed base run and a stopped hot one under `root` (the runs screen tests' pair)."""
    write_run(root, "20260101-120000-base", 2e-4, 8, 1.5, START, "completed")
    write_run(root, "20260101-130000-hot", 1e-3, 8, 1.8, START + 3600, "stopped")
    return root


@pytest.fixture
def runs_here(monkeypatch: pytest.MonkeyPatch) -> None:
    """Three runs in ./runs (the test's scratch folder); dates shown in UTC."""
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    root = Path("runs")
    write_run(root, "20260101-120000-base", 2e-4, 8, 1.5, START, "completed")
    write_run(root, "20260101-130000-hot", 1e-3, 8, 1.8, START + 3600, "stopped")
    write_run(root, "20260101-140000-wide", 2e-4, 4, 1.2, START + 7200, "completed")


def make_app() -> MlxtuiApp:
    config = TrainConfig.quick_start(runs_dir="runs")
    return MlxtuiApp(config, engine_factory=lambda on_event: FakeEngine(on_event, threaded=False))


async def open_runs(pilot: Any) -> None:
    from textual.widgets import DataTable

    from mlxtui.tui.screens.runs import RunsScreen

    await pilot.press("r")
    # the folders are read in a thread: wait for the rows (up to 20 s on a loaded machine)
    for _ in range(400):
        screen = pilot.app.screen
        if (
            isinstance(screen, RunsScreen)
            and screen.query_one("#runs-table", DataTable).row_count > 0
        ):
            break
        await pilot.pause(0.05)
    # then the loss plot, which draws in its own time slots, later on a loaded machine (a draw
    # takes at most PLOT_CPU_SHARE of the time): wait until it has drawn the run's points
    from mlxtui.tui.widgets.loss_plot import LossPlot

    def ready() -> bool:
        plot = pilot.app.screen.query_one(LossPlot)
        table = pilot.app.screen.query_one("#runs-table", DataTable)
        # the table measures its new rows' columns when its queue is idle (seen late in CI,
        # and once as the shot was taken): every column at least as wide as its widest cell
        measured = not table._require_update_dimensions and all(
            column.content_width >= max((len(str(c)) for c in table.get_column(key)), default=0)
            for key, column in table.columns.items()
        )
        return bool(plot.train_points) and not plot._dirty and measured

    for _ in range(3):  # ready, and still ready a moment later
        for _ in range(800):
            if ready():
                break
            await pilot.pause(0.05)
        await pilot.pause(0.3)
        if ready():
            break


def test_runs_screen_120x40(snap_compare: Any, runs_here: None) -> None:
    assert snap_compare(make_app(), terminal_size=(120, 40), run_before=open_runs)


def test_runs_screen_80x24(snap_compare: Any, runs_here: None) -> None:
    assert snap_compare(make_app(), terminal_size=(80, 24), run_before=open_runs)


def test_compare_overlay_120x40(snap_compare: Any, runs_here: None) -> None:
    async def run_before(pilot: Any) -> None:
        await open_runs(pilot)
        await pilot.press("space", "space", "space", "v")
        await pilot.pause(0.4)

    assert snap_compare(make_app(), terminal_size=(120, 40), run_before=run_before)
