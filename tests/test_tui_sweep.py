"""The sweep screen: its queue and results on the real engine and the tiny model (start, skip,
reorder, stop, best settings into the Config form), and snapshots of a sweep on disk."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from test_tui_app import wait_for
from test_tui_snapshots import make_app

from mlxtui.core.config import TrainConfig
from mlxtui.core.engine import Engine
from mlxtui.core.sweep import DONE, PENDING, SKIPPED, load_sweep, open_state, write_state
from mlxtui.demo_data import demo_data_dir
from mlxtui.tui.app import MlxtuiApp
from mlxtui.tui.screens.sweep import SweepScreen
from mlxtui.tui.widgets.config_form import ConfigForm


@pytest.fixture(scope="module")
def small_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("tui_sweep_data")
    for name, n in (("train", 16), ("valid", 4), ("test", 4)):
        lines = (demo_data_dir() / f"{name}.jsonl").read_text(encoding="utf-8").splitlines()[:n]
        (out / f"{name}.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return out


def write_sweep(model: Path, data: Path, iters: int, values: str = "[1e-3, 4e-3]") -> Path:
    path = Path("sweep.yaml")  # the screen's default file, in the test's scratch folder
    path.write_text(
        f"name: tui\nbase: {{model: {model}, data: {data}, iters: {iters}, num_layers: 2, save_every: 2,"
        " steps_per_eval: 2, steps_per_report: 1, val_batches: 1, max_seq_length: 128, sample_prompts: 0,"
        f" dequantize: 'no'}}\ngrid:\n  learning_rate: {values}\n",
        encoding="utf-8",
    )
    return path


def real_app(model: Path) -> MlxtuiApp:
    config = TrainConfig.quick_start(model=str(model), num_layers=2, max_seq_length=128, dequantize="no", sample_prompts=0)
    return MlxtuiApp(config, engine_factory=lambda on_event: Engine(on_event))


async def settle(pilot: Any, app: MlxtuiApp) -> None:
    """Stop the memory sampler before the app exits: a sample posted while the app tears its
    screens down meets a main screen without its widgets (a race of the app's exit, not of the
    sweep; noted for the lead)."""
    app.engine.telemetry.stop()
    await pilot.pause(0.1)


def queue_on_disk() -> list[tuple[str, str]]:
    data = json.loads(Path("sweeps/tui/sweep.json").read_text())
    return [(r["label"], r["status"]) for r in data["runs"]]


async def test_a_sweep_runs_from_the_screen_and_its_best_settings_go_to_the_form(tiny_model_dir, small_data):
    write_sweep(tiny_model_dir, small_data, iters=4)
    app = real_app(tiny_model_dir)
    async with app.run_test(size=(120, 40)) as pilot:
        assert await wait_for(pilot, lambda: app.status.model != "", tries=1500)
        await pilot.press("w")
        screen = app.screen
        assert isinstance(screen, SweepScreen) and screen.sweep is not None
        assert [r.label for r in screen.sweep.runs] == ["tui-lr1e-3", "tui-lr4e-3"]
        await pilot.press("g")
        # the runs are estimated first: on a loaded machine that alone can take seconds
        assert await wait_for(pilot, lambda: screen.running or Path("sweeps/tui/best.yaml").is_file(), tries=1500)
        assert await wait_for(pilot, lambda: not screen.running, tries=4000), queue_on_disk()
        assert queue_on_disk() == [("tui-lr1e-3", DONE), ("tui-lr4e-3", DONE)]
        assert all(r.verdict == "fits" for r in screen.state.runs)  # estimated before the sweep began
        losses = [r.best_val_loss for r in screen.rows]
        assert None not in losses and losses == sorted(losses)
        assert Path("sweeps/tui/best.yaml").is_file() and Path("sweeps/tui/summary.md").is_file()
        best = screen.rows[0]
        await pilot.press("b")
        await pilot.pause(0.2)
        assert not isinstance(app.screen, SweepScreen)
        form = app.query_one(ConfigForm)
        assert form.config.learning_rate == best.overrides["learning_rate"]
        assert (form.config.iters, form.config.num_layers, form.config.resume_run) == (4, 2, None)
        assert form.config.adapter_path == "adapters"  # not back into the old run's folder
        await settle(pilot, app)


async def test_skip_reorder_and_stop_from_the_screen(tiny_model_dir, small_data):
    write_sweep(tiny_model_dir, small_data, iters=200, values="[1e-3, 2e-3, 3e-3]")
    app = real_app(tiny_model_dir)
    async with app.run_test(size=(120, 40)) as pilot:
        assert await wait_for(pilot, lambda: app.status.model != "", tries=1500)
        await pilot.press("w")
        screen = app.screen
        assert isinstance(screen, SweepScreen)
        await pilot.press("k")  # skip the first
        await pilot.press("down", "d")  # the second goes down, below the third
        assert queue_on_disk() == [("tui-lr1e-3", SKIPPED), ("tui-lr3e-3", PENDING), ("tui-lr2e-3", PENDING)]
        await pilot.press("g")
        assert await wait_for(pilot, lambda: screen.state.current == "tui-lr3e-3", tries=3000)
        assert await wait_for(pilot, lambda: app.status.state == "training", tries=3000)
        await pilot.press("s")
        assert await wait_for(pilot, lambda: not screen.running, tries=3000)
        statuses = dict(queue_on_disk())
        # stopped (resumable) once it has a checkpoint, else back in the queue; the rest untouched
        assert statuses["tui-lr3e-3"] in ("stopped", "pending") and statuses["tui-lr2e-3"] == PENDING
        assert statuses["tui-lr1e-3"] == SKIPPED
        await settle(pilot, app)


# ---------------------------------------------------------------- snapshots


def fake_run(folder: Path, lr: float, losses: list[float], tps: float, seconds: float) -> None:
    """A run folder as the trainer leaves it, with fixed figures (run_history reads the files)."""
    (folder / "adapters").mkdir(parents=True)
    (folder / "state").mkdir()
    (folder / "config.yaml").write_text(f"model: tiny\nlearning_rate: {lr}\niters: 40\nnum_layers: 2\n", encoding="utf-8")
    t0 = 1_790_000_000.0
    lines: list[dict[str, Any]] = [{"event": "start", "run_dir": str(folder), "total_iters": 40, "start_iter": 0, "started_at": t0, "time": t0}]
    for i, loss in enumerate(losses, 1):
        lines.append({"event": "train", "iteration": 10 * i, "train_loss": loss + 0.1, "tokens_per_second": tps,
                      "peak_memory": 0.5, "trained_tokens": 1000 * i, "time": t0 + seconds * i / len(losses)})
        lines.append({"event": "val", "iteration": 10 * i, "val_loss": loss, "time": t0 + seconds * i / len(losses)})
    if len(losses) == 4:
        lines.append({"event": "finished", "status": "completed", "iteration": 40, "time": t0 + seconds})
    (folder / "metrics.jsonl").write_text("".join(json.dumps(m) + "\n" for m in lines), encoding="utf-8")
    (folder / "state" / "state.json").write_text(json.dumps({"iteration": 10 * len(losses), "total_iters": 40}), encoding="utf-8")


def sweep_on_disk() -> None:
    Path("sweep.yaml").write_text(
        "name: lr\nbase: {iters: 40}\ngrid:\n  learning_rate: [1e-4, 2e-4, 4e-4]\n  lora_rank: [8, 16]\n", encoding="utf-8"
    )
    state = open_state(load_sweep("sweep.yaml"))
    figures = {
        "lr-lr1e-4-rank8": ([2.1, 1.9, 1.8, 1.75], 410.0, 300.0),
        "lr-lr1e-4-rank16": ([2.0, 1.8, 1.7, 1.62], 395.0, 310.0),
        "lr-lr2e-4-rank8": ([1.9, 1.6, 1.5, 1.48], 405.0, 290.0),
        "lr-lr2e-4-rank16": ([1.8, 1.55], 390.0, 150.0),
    }
    for run in state.runs:
        if run.label in figures:
            losses, tps, seconds = figures[run.label]
            folder = Path("runs") / f"20261130-100000-{run.label}"
            fake_run(folder, run.overrides["learning_rate"], losses, tps, seconds)
            run.run_dir = str(folder)
            run.status = DONE if len(losses) == 4 else "stopped"
        run.estimate_bytes, run.verdict = (int(0.6 * 2**30), "fits")
    state.runs[-1].status, state.runs[-1].message = SKIPPED, "skipped"
    state.runs[-2].estimate_bytes, state.runs[-2].verdict = (int(20 * 2**30), "will swap")
    write_state("sweeps/lr", state)


async def open_sweep(pilot: Any) -> None:
    sweep_on_disk()
    await pilot.press("w")
    await pilot.pause(0.2)


def test_sweep_screen_120x40(snap_compare: Any) -> None:
    assert snap_compare(make_app(), terminal_size=(120, 40), run_before=open_sweep)


def test_sweep_screen_80x24(snap_compare: Any) -> None:
    assert snap_compare(make_app(), terminal_size=(80, 24), run_before=open_sweep)
