"""The runs screen and the compare screen on real run folders (the dashboard on the fake engine)."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from run_folders import small_data, train_run
from test_tui_fakes import FakeEngine
from textual.widgets import DataTable, Input

from mlxtui.core import events as ev
from mlxtui.core.config import TrainConfig
from mlxtui.core.run_history import read_meta, summarize
from mlxtui.tui.app import MlxtuiApp
from mlxtui.tui.screens.compare import CompareScreen
from mlxtui.tui.screens.export import ExportScreen
from mlxtui.tui.screens.runs import COLUMNS, RunsScreen, TextPrompt
from mlxtui.tui.widgets.chat import ChatPane
from mlxtui.tui.widgets.config_form import ConfigForm
from mlxtui.tui.widgets.loss_plot import LossPlot
from mlxtui.tui.widgets.overlay_plot import OverlayPlot


@pytest.fixture(scope="module")
def trained(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("tui_runs")
    data = small_data(root / "data")
    train_run(tiny_model_dir, data, root / "runs", run_name="base")
    train_run(tiny_model_dir, data, root / "runs", run_name="hot", learning_rate=4e-3, num_layers=1)
    return root / "runs"


@pytest.fixture
def runs(trained: Path, tmp_path: Path) -> Path:
    local = tmp_path / "runs"
    shutil.copytree(trained, local)
    return local


def make_app(runs_dir: Path) -> tuple[MlxtuiApp, dict[str, FakeEngine]]:
    box: dict[str, FakeEngine] = {}

    def factory(on_event: Callable[[ev.Event], None]) -> FakeEngine:
        box["engine"] = FakeEngine(on_event)
        return box["engine"]

    return MlxtuiApp(TrainConfig.quick_start(runs_dir=str(runs_dir)), engine_factory=factory), box


async def wait_for(pilot: Any, condition: Callable[[], bool], tries: int = 200) -> bool:
    for _ in range(tries):
        if condition():
            return True
        await pilot.pause(0.02)
    return condition()


async def open_runs(pilot: Any, app: MlxtuiApp) -> RunsScreen:
    await pilot.press("r")
    assert await wait_for(pilot, lambda: isinstance(app.screen, RunsScreen))
    screen = app.screen
    assert isinstance(screen, RunsScreen)
    assert await wait_for(pilot, lambda: not screen.reading)  # the folders are read in a thread
    await pilot.pause()
    return screen


async def test_the_table_shows_every_figure_and_a_run_opens(runs):
    app, _box = make_app(runs)
    async with app.run_test(size=(160, 45)) as pilot:
        screen = await open_runs(pilot, app)
        table = screen.query_one("#runs-table", DataTable)
        assert [str(c.label) for c in table.columns.values()] == list(COLUMNS)
        hot = summarize(next(p for p in runs.iterdir() if p.name.endswith("-hot")))
        row = dict(zip(COLUMNS, table.get_row_at(0), strict=True))
        assert (row["run"], row["status"], row["method"], row["lr"], row["layers"]) == (
            "hot",
            "finished",
            "lora",
            "4e-03",
            "1",
        )
        assert row["steps"] == "6/6" and row["final val"] == f"{hot.final_val_loss:.4f}"
        assert row["best val"] == f"{hot.best_val_loss:.4f} @{hot.best_step}"
        assert (
            row["tok/s"] == f"{hot.tokens_per_second:,.0f}"
            and row["peak GB"] == f"{hot.peak_memory_gb:.2f}"
        )
        assert row["est GB"] == f"{hot.estimated_peak_gb:.2f}"
        # the opened run: its curves and checkpoints
        plot = screen.query_one(LossPlot)
        assert plot.train_points == [(p.iteration, p.loss) for p in hot.train_curve]
        assert plot.val_points == [(p.iteration, p.loss) for p in hot.val_curve]
        ckpts = screen.query_one("#runs-ckpts", DataTable)
        assert [ckpts.get_row_at(i)[0] for i in range(ckpts.row_count)] == [
            "final",
            "best",
            "step 3",
        ]
        await pilot.press("down")
        base = summarize(next(p for p in runs.iterdir() if p.name.endswith("-base")))
        assert await wait_for(
            pilot, lambda: plot.val_points == [(p.iteration, p.loss) for p in base.val_curve]
        )


async def test_settings_load_into_the_form_and_a_checkpoint_goes_to_chat_or_export(runs):
    app, box = make_app(runs)
    async with app.run_test(size=(160, 45)) as pilot:
        assert await wait_for(pilot, lambda: app.status.model == "fake-model")
        screen = await open_runs(pilot, app)
        hot = next(p for p in runs.iterdir() if p.name.endswith("-hot"))
        await pilot.press("l")
        assert await wait_for(pilot, lambda: not isinstance(app.screen, RunsScreen))
        form = app.query_one(ConfigForm)
        assert await wait_for(pilot, lambda: form.config.learning_rate == 4e-3)
        assert form.config.num_layers == 1 and form.config.resume_run is None
        assert form.query_one("#field-learning_rate", Input).value == "0.004"
        assert app.active_pane == 0

        screen = await open_runs(pilot, app)
        ckpts = screen.query_one("#runs-ckpts", DataTable)
        ckpts.focus()
        await pilot.press("down", "down", "enter")  # step 3
        chat = app.query_one(ChatPane)
        assert await wait_for(
            pilot, lambda: chat.weights == str(hot / "adapters" / "0000003_adapters.safetensors")
        )
        assert app.active_pane == 4

        await pilot.press("escape")
        screen = await open_runs(pilot, app)
        screen.query_one("#runs-ckpts", DataTable).focus()
        await pilot.press("down", "x")  # the best checkpoint, to fuse or export
        assert await wait_for(pilot, lambda: isinstance(app.screen, ExportScreen))
        adapter = app.screen.query_one("#ex-adapter", Input)
        assert await wait_for(
            pilot, lambda: adapter.value == str(hot / "adapters" / "best_adapters.safetensors")
        )


async def test_rename_tag_note_and_delete_from_the_screen(runs):
    app, _box = make_app(runs)
    async with app.run_test(size=(160, 45)) as pilot:
        screen = await open_runs(pilot, app)
        hot = next(p for p in runs.iterdir() if p.name.endswith("-hot"))
        table = screen.query_one("#runs-table", DataTable)

        await pilot.press("n")
        assert await wait_for(pilot, lambda: isinstance(app.screen, TextPrompt))
        app.screen.query_one(Input).value = "lr 4e-3"
        await pilot.press("enter")
        assert await wait_for(pilot, lambda: table.get_row_at(0)[0] == "lr 4e-3")
        await pilot.press("t")
        assert await wait_for(pilot, lambda: isinstance(app.screen, TextPrompt))
        app.screen.query_one(Input).value = "keep, sweep"
        await pilot.press("enter")
        await pilot.press("o")
        assert await wait_for(pilot, lambda: isinstance(app.screen, TextPrompt))
        app.screen.query_one(Input).value = "too hot"
        await pilot.press("enter")
        assert await wait_for(pilot, lambda: read_meta(hot).get("note") == "too hot")
        assert read_meta(hot) == {"name": "lr 4e-3", "tags": ["keep", "sweep"], "note": "too hot"}
        assert table.get_row_at(0)[-1] == "keep,sweep"

        await pilot.press("d")
        await pilot.press("n")  # asked first: no keeps it
        await pilot.pause()
        assert hot.is_dir() and table.row_count == 2
        await pilot.press("d")
        await pilot.press("y")
        assert await wait_for(pilot, lambda: table.row_count == 1)
        assert not hot.exists() and table.get_row_at(0)[0] == "base"


async def test_compare_overlays_marked_runs(runs):
    app, _box = make_app(runs)
    async with app.run_test(size=(160, 45)) as pilot:
        screen = await open_runs(pilot, app)
        await pilot.press("v")  # nothing marked: says how
        await pilot.pause()
        assert isinstance(app.screen, RunsScreen)
        await pilot.press("space", "space", "v")
        assert await wait_for(pilot, lambda: isinstance(app.screen, CompareScreen))
        cmp = app.screen
        assert isinstance(cmp, CompareScreen)
        diff = cmp.query_one("#cmp-diff", DataTable)
        rows = {diff.get_row_at(i)[0]: diff.get_row_at(i)[1:] for i in range(diff.row_count)}
        assert rows["learning_rate"] == ["0.004", "0.001"] and rows["num_layers"] == ["1", "2"]
        figures = cmp.query_one("#cmp-figures", DataTable)
        assert figures.row_count == 2
        plot = cmp.query_one(OverlayPlot)
        assert plot.x_axis == "steps" and len(plot.series) == 4
        hot = summarize(next(p for p in runs.iterdir() if p.name.endswith("-hot")))
        await pilot.press("x")
        assert plot.x_axis == "tokens"
        assert plot.series[0].x == tuple(float(p.tokens) for p in hot.train_curve)
        await pilot.press("w")  # the PNG for a report, beside the runs
        assert await wait_for(
            pilot, lambda: any(p.suffix == ".png" for p in runs.iterdir()), tries=400
        )
        await pilot.press("escape")
        assert isinstance(app.screen, RunsScreen) and screen.marked
