"""The dashboard launches and watches a run across ranks (mlx.launch, ring, localhost).

The fast tests check the pieces: events crossing as lines, the settings the ranks receive.
The slow ones start real ranks of the tiny model from the dashboard (driven by Textual's
pilot; the dashboard's own engine is the fake one, as the ranks do the training) and watch
what the panes show, the stop, and a rank killed mid-run.
"""

from __future__ import annotations

import json
import math
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from demo_slice import demo_slice

from mlxtui.core import events as ev
from mlxtui.core.config import TrainConfig, load_config
from mlxtui.core.event_wire import decode, encode

sys.path.insert(0, str(Path(__file__).parent))


# ------------------------------------------------------------------ events as lines


def test_events_cross_as_lines_and_come_back_equal() -> None:
    events: list[ev.Event] = [
        ev.JobStarted(3, "train", "x"),
        ev.PhaseStarted(3, "train", "load", "loading the model", total=4, started_at=12.5),
        ev.TrainStarted("runs/r", 9, 0, 1, 2, "lora", estimated_peak_bytes=None, started_at=1.0, pid=7),
        ev.TrainStep(2, 9, 1.5, 1e-3, 10.0, 1.0, 64, 0.25, 3.0, grad_norm=None),
        ev.ValReport(2, 1.25, 0.5, True),
        ev.SamplePredictions(2, (ev.SamplePrediction("p?", "ref", "ans"),)),
        ev.RankReport(2, (10.0, 12.5), (0.5, 0.25)),
        ev.Diagnosis("spike", 4, "loss jumped", {"ratio": 3.0}),
        ev.TrainFinished("runs/r", "runs/r/adapters", 9, 9, "stopped", best_val_loss=1.0, best_iteration=2),
        ev.MemoryEstimated(10, {"weights": 4}, "fits", None, options=(("batch 2", 8),)),
    ]
    for event in events:
        line = encode(event)
        assert "\n" not in line
        assert decode(line) == event, type(event).__name__


def test_a_diverged_loss_and_a_failure_cross_too() -> None:
    step = decode(encode(ev.TrainStep(1, 9, float("nan"), 1e-3, 1.0, 1.0, 1, 0.1, None)))
    assert isinstance(step, ev.TrainStep) and math.isnan(step.loss)
    failed = decode(encode(ev.JobFailed(1, "train", "out of memory", "lower the batch", error=RuntimeError("x"))))
    assert failed == ev.JobFailed(1, "train", "out of memory", "lower the batch")


def test_a_line_this_version_cannot_read_is_none_not_an_error() -> None:
    assert decode("{not json") is None
    assert decode(json.dumps({"event": "NoSuchEvent", "fields": {}})) is None
    assert decode(json.dumps({"event": "ValReport", "fields": {"iteration": 1}})) is None  # fields missing
    # a newer rank's extra field is dropped
    newer = json.loads(encode(ev.ValReport(1, 2.0, 0.1, False)))
    newer["fields"]["from_the_future"] = 1
    assert decode(json.dumps(newer)) == ev.ValReport(1, 2.0, 0.1, False)


# ------------------------------------------------------------------ the settings the ranks get


def test_the_ranks_train_with_the_dashboards_settings_exactly(tmp_path: Path) -> None:
    from mlxtui.core.jobs.launched import rank_settings

    config = TrainConfig.quick_start(nproc=2, backend="ring", grad_checkpoint=False, lr_phases="3:1e-3,2:1e-4")
    path = tmp_path / "settings.yaml"
    path.write_text(rank_settings(config, tmp_path))
    assert load_config(path) == config  # grad_checkpoint off: a flag could not say it
    # epochs: iters is left out (`mlxtui train` refuses both; epochs decides the length)
    with_epochs = config.with_values(epochs=2, lr_phases=None)
    assert "iters" not in json.loads(rank_settings(with_epochs, tmp_path))
    # an empty data setting is the demo set here, but ./data to `mlxtui train`: it is named
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "train.jsonl").write_text('{"text": "x"}\n')
    sent = json.loads(rank_settings(config, tmp_path))
    from mlxtui.demo_data import demo_data_dir

    assert sent["data"] == str(demo_data_dir())


# ------------------------------------------------------------------ the launched job (a stand-in launcher)


def _stand_in(tmp_path: Path, body: str) -> list[str]:
    """A script in mlx.launch's place: it prints what ranks and mlx.launch would print."""
    from mlxtui.core.distributed import EVENT_PREFIX, heartbeat_line

    started = ev.TrainStarted("runs/r", 400, 0, 1, 2, "lora", started_at=1.0, pid=1)
    lines = [
        heartbeat_line(0, event="PhaseStarted"),
        heartbeat_line(1, event="PhaseStarted"),
        EVENT_PREFIX + encode(ev.JobStarted(1, "train")),
        EVENT_PREFIX + encode(ev.PhaseStarted(1, "train", "load", "loading the model", started_at=1.0)),
        EVENT_PREFIX + encode(ev.ModelLoaded("tiny", "/m", 4, 10, None, "float32")),
        EVENT_PREFIX + encode(started),
        EVENT_PREFIX + encode(ev.TrainStep(1, 400, 2.5, 1e-3, 10.0, 1.0, 64, 0.25, 3.0)),
        EVENT_PREFIX + encode(ev.RankReport(1, (10.0, 12.0), (0.5, 0.25))),
        heartbeat_line(0, event="TrainStep", step=1, run_dir="runs/r"),
        heartbeat_line(1, event="TrainStep", step=1),
        "step 1/400: train loss 2.500",
    ]
    script = tmp_path / "stand_in_launch.py"
    script.write_text(f"import sys\nfor line in {lines!r}:\n    print(line, flush=True)\n" + body)
    return [sys.executable, str(script)]


def _run(tmp_path: Path, body: str, stop: bool = False) -> tuple[Any, list[ev.Event]]:
    from mlxtui.core.jobs.launched import LaunchedTrain

    got: list[ev.Event] = []
    config = TrainConfig.quick_start(nproc=2, backend="ring")
    run = LaunchedTrain(config, got.append, command=_stand_in(tmp_path, body), cwd=str(tmp_path))
    job_id = run.start()
    if stop:
        run.stop()
    assert run.wait(30)
    assert job_id < 0 and not run.running
    return run, got


def test_rank_0s_events_arrive_as_this_jobs_and_a_killed_rank_ends_it_with_the_cause(tmp_path: Path) -> None:
    body = "print('\\x1b[33m[WARN] Node with rank 1 exited with code -9 \\x1b[0m', flush=True)\n"
    run, got = _run(tmp_path, body)
    kinds = [type(e).__name__ for e in got]
    # the job's own start; rank 0's job start and model are its process's business
    assert kinds == [
        "JobStarted", "PhaseStarted", "PhaseFinished", "PhaseStarted", "TrainStarted", "TrainStep",
        "RankReport", "JobFailed",
    ]  # fmt: skip
    assert {e.job_id for e in got if hasattr(e, "job_id")} == {run.job_id}
    assert [e.phase for e in got if isinstance(e, ev.PhaseStarted)] == ["launch", "load"]
    failed = got[-1]
    assert isinstance(failed, ev.JobFailed) and failed.kind == "train"
    assert failed.message.startswith("rank 1 was ended by SIGKILL")
    assert "The last checkpoint rank 0 saved is kept in runs/r" in failed.message
    assert failed.hint.startswith("continue it from the Runs screen (r, then c)")
    assert "step 1/400: train loss 2.500" in failed.hint  # the ranks' last lines
    assert set(run.ranks()) == {0, 1} and run.ranks()[1][1] == 1


def test_stop_reaches_the_ranks_and_a_clean_end_finishes_the_job(tmp_path: Path) -> None:
    from mlxtui.core.distributed import EVENT_PREFIX

    adapters = tmp_path / "runs" / "r" / "adapters"  # what rank 0 saved: chat answers with it
    adapters.mkdir(parents=True)
    (adapters / "adapters.safetensors").write_bytes(b"weights")
    finished = ev.TrainFinished(str(adapters.parent), str(adapters), 1, 400, "stopped")
    body = (
        "line = sys.stdin.readline()\n"
        f"if line.strip() == 'stop': print({EVENT_PREFIX + encode(finished)!r}, flush=True)\n"
    )
    run, got = _run(tmp_path, body, stop=True)
    assert got[-2] == finished
    assert got[-1] == ev.JobFinished(run.job_id, "train", finished)


def test_rank_0s_own_error_comes_first_when_no_rank_was_killed(tmp_path: Path) -> None:
    from mlxtui.core.distributed import EVENT_PREFIX

    failed = ev.JobFailed(1, "train", "the dataset has 1 error(s)", "fix them")
    body = (
        f"print({EVENT_PREFIX + encode(failed)!r}, flush=True)\n"
        "print('[WARN] Node with rank 0 exited with code 1', flush=True)\n"
        "print('[WARN] Node with rank 1 exited with code 1', flush=True)\n"
    )
    _, got = _run(tmp_path, body)
    end = got[-1]
    assert isinstance(end, ev.JobFailed)
    assert end.message.startswith("rank 0: the dataset has 1 error(s)\n\nrank 0 exited with code 1")
    assert end.hint.startswith("fix them\nthe ranks' last lines:")


def test_a_host_that_cannot_be_reached_is_named_with_what_to_do(tmp_path: Path) -> None:
    body = "print('[WARN] Node with rank 1 exited with code 255', flush=True)\n"
    _, got = _run(tmp_path, body)
    end = got[-1]
    assert isinstance(end, ev.JobFailed)
    assert end.message.startswith("rank 1 exited with code 255 (ssh could not reach its host")


def test_settings_the_ranks_cannot_take_are_refused_before_anything_starts(tmp_path: Path) -> None:
    _, got = _run_refused(tmp_path, TrainConfig.quick_start(nproc=2, backend="gloo"))
    assert isinstance(got[-1], ev.JobFailed) and got[-1].error is not None
    assert getattr(got[-1].error, "field", None) == "backend"


async def test_the_panes_show_a_launched_run_stop_ends_it_and_a_killed_rank_is_an_error(tmp_path: Path) -> None:
    """The dashboard's side, fast: a stand-in launcher says what real ranks say (the slow tests
    below run real ones)."""
    from test_tui_memory import make_app

    from mlxtui.core.distributed import EVENT_PREFIX
    from mlxtui.tui.rank_table import RankTable
    from mlxtui.tui.screens.modals import ErrorModal
    from mlxtui.tui.widgets.loss_plot import LossPlot

    adapters = tmp_path / "runs" / "r" / "adapters"  # what rank 0 saved: chat answers with it
    adapters.mkdir(parents=True)
    (adapters / "adapters.safetensors").write_bytes(b"weights")
    finished = ev.TrainFinished(str(adapters.parent), str(adapters), 1, 400, "stopped")
    stops = (
        f"print({EVENT_PREFIX + encode(ev.ValReport(0, 2.75, 0.1, True))!r}, flush=True)\n"
        "if sys.stdin.readline().strip() == 'stop':\n"
        f"    print({EVENT_PREFIX + encode(finished)!r}, flush=True)\n"
    )
    app, box = make_app(TrainConfig.quick_start(nproc=2, backend="ring"))
    app.launch_command = _stand_in(tmp_path, stops)

    def plotted() -> bool:
        plot = app.query_one(LossPlot)
        return bool(plot.train_points and plot.val_points)

    def ranks_shown() -> bool:
        tables = list(app.query(RankTable))
        return len(tables) == 1 and tables[0].report is not None and set(tables[0].beats) == {0, 1}

    async with app.run_test(size=(140, 44)) as pilot:
        # the dashboard's own model first: its load, folded after the ranks' start, would show idle
        assert await _wait(pilot, lambda: app.status.model == "fake-model", 30)
        for _ in range(2):  # a second run starts with the table afresh
            await pilot.press("t")
            assert await _wait(pilot, lambda: app.launched is not None and app.launched.finished is None, 30)
            assert await _wait(pilot, plotted, 40), app.status
            assert await _wait(pilot, ranks_shown, 30)
            (table,) = app.query(RankTable)
            rows = [line.split()[:5] for line in table.plain().splitlines()[1:]]
            assert rows == [["0", "1", "10", "500.0", "MB"], ["1", "1", "12", "250.0", "MB"]]
            assert app.status.state == "training" and app.status.iteration == 1
            await pilot.press("p")
            await pilot.pause(0.1)
            assert app.status.state == "training"  # refused: a rank cannot pause alone
            await pilot.press("s")
            assert app.launched.stop_requested  # the stand-in answers at once: done may be shown already
            # the ranks' end and rank 0's last event line reach the app on two threads: wait for both
            assert await _wait(pilot, lambda: not app.launched.running and app.status.state == "done", 40), app.status
            assert app.status.outcome == "stopped"

        # the ranks trained; the dashboard's own MLX thread was left free (chat, estimates),
        # and let go of its copy of the model at each start (the ranks load their own)
        kinds = [job.kind for job in box["engine"].jobs]
        assert "train" not in kinds and kinds.count("free") == 2, kinds
        # and at each end, chat and evaluation answer with the adapter rank 0 saved
        used = [job.path for job in box["engine"].jobs if job.kind == "use_adapter"]
        assert used == [str(adapters)] * 2, kinds

        app.launch_command = _stand_in(tmp_path, "print('[WARN] Node with rank 1 exited with code -9', flush=True)\n")
        await pilot.press("t")
        assert await _wait(pilot, lambda: isinstance(app.screen, ErrorModal), 40), app.status
        assert app.screen.message.startswith("rank 1 was ended by SIGKILL")  # type: ignore[attr-defined]
        assert await _wait(pilot, lambda: app.status.state == "error", 20), app.status


def _run_refused(tmp_path: Path, config: TrainConfig) -> tuple[Any, list[ev.Event]]:
    from mlxtui.core.jobs.launched import LaunchedTrain

    got: list[ev.Event] = []
    run = LaunchedTrain(config, got.append, command=[sys.executable, "-c", "raise SystemExit(3)"])
    run.start()
    assert run.wait(10)
    assert run.launch is None  # nothing was started
    return run, got


# ------------------------------------------------------------------ real ranks from the dashboard


def _config(model: Path, tmp: Path) -> TrainConfig:
    return TrainConfig.quick_start(
        model=str(model), data=str(demo_slice(tmp / "data", train=48, valid=8, test=8)), runs_dir=str(tmp / "runs"), adapter_path=str(tmp / "adapters"),
        nproc=2, backend="ring", num_layers=2, batch_size=2, iters=400, learning_rate=1e-3,
        steps_per_report=1, steps_per_eval=1000, save_every=2, val_batches=2, max_seq_length=32,
        sample_prompts=0, grad_checkpoint=False, memory_guard="off", rank_timeout=60.0,
    )  # fmt: skip


def rank_pids(runs: Path) -> dict[int, int]:
    """rank -> pid of the rank processes whose settings name `runs` (Linux /proc).

    A process a rank starts inherits its environment: of the processes with one rank's
    variables, the rank is the one whose parent has none of them."""
    found: dict[int, dict[int, int]] = {}  # rank -> {pid: parent pid}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            environ = (proc / "environ").read_bytes().split(b"\0")
            fields = (proc / "stat").read_text().split(")")[-1].split()
        except OSError:
            continue
        if fields[0] in ("Z", "X"):
            continue
        config = next((e for e in environ if e.startswith(b"MLXTUI_LAUNCH_CONFIG=")), b"")
        rank = next((e for e in environ if e.startswith(b"MLX_RANK=")), None)
        if rank is not None and str(runs).encode() in config:
            found.setdefault(int(rank.split(b"=")[1]), {})[int(proc.name)] = int(fields[1])
    return {
        rank: min(pid for pid, parent in procs.items() if parent not in procs)
        for rank, procs in found.items()
    }


async def _wait(pilot: Any, condition: Any, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        await pilot.pause(0.1)
    return bool(condition())


needs_proc = pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="finds the ranks through /proc")


@pytest.mark.slow
@needs_proc
async def test_the_dashboard_shows_both_ranks_and_stop_ends_both_after_rank_0_saved(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    from test_tui_memory import make_app

    from mlxtui.tui.rank_table import RankTable
    from mlxtui.tui.widgets.dataset_browser import DatasetBrowser
    from mlxtui.tui.widgets.loss_plot import LossPlot

    config = _config(tiny_model_dir, tmp_path)
    runs = tmp_path / "runs"
    app, _ = make_app(config)
    async with app.run_test(size=(140, 44)) as pilot:
        assert await _wait(pilot, lambda: app.query_one(DatasetBrowser).index is not None, 30)
        await pilot.press("t")
        assert await _wait(pilot, lambda: bool(app.query(RankTable)), 30), app.status
        table = app.query_one(RankTable)
        plot = app.query_one(LossPlot)

        def both_ranks_reported() -> bool:
            report = table.report
            return (
                report is not None
                and len(report.tokens_per_second) == 2
                and min(report.tokens_per_second) > 0
                and min(report.peak_memory) > 0
                and set(table.beats) == {0, 1}
            )

        assert await _wait(pilot, both_ranks_reported, 300), (app.status, list(app.launched.lines))
        assert await _wait(pilot, lambda: len(plot.train_points) >= 2 and len(plot.val_points) >= 1, 120)
        assert app.status.state == "training" and app.status.total_iters == 400
        shown = table.plain()
        assert "2 ranks, ring · step" in shown
        rows = [line.split() for line in shown.splitlines()[1:]]
        assert [row[0] for row in rows] == ["0", "1"] and all(row[2] != "-" and row[3] != "-" for row in rows)
        assert set(rank_pids(runs)) == {0, 1}
        # the dashboard's own copy of the model was let go while the ranks train
        assert "free" in [job.kind for job in app.engine.jobs]

        await pilot.press("p")  # refused, with the reason: the ranks cannot pause
        await pilot.pause(0.2)
        assert app.status.state == "training"
        await pilot.press("s")
        # stopping, or already done: on a quick machine the ranks save and end within the press
        assert app.status.state in ("stopping", "done"), app.status
        assert await _wait(pilot, lambda: not app.launched.running, 120), list(app.launched.lines)
        assert app.status.state == "done" and app.status.outcome == "stopped", app.status
        assert app.launched.outcome is not None and app.launched.outcome.ok
        assert await _wait(pilot, lambda: not rank_pids(runs), 10), "a rank outlived the stop"

    (run_dir,) = runs.iterdir()
    state = json.loads((run_dir / "state" / "state.json").read_text())
    assert state["world_size"] == 2 and state["iteration"] >= 2
    assert (run_dir / "adapters" / "adapters.safetensors").is_file()
    from mlx_lm import load

    model, _ = load(str(tiny_model_dir), adapter_path=str(run_dir / "adapters"))
    assert model is not None


@pytest.mark.slow
@needs_proc
async def test_a_killed_rank_shows_a_clear_error_and_ends_the_other(tiny_model_dir: Path, tmp_path: Path) -> None:
    from test_tui_memory import make_app

    from mlxtui.tui.screens.modals import ErrorModal

    config = _config(tiny_model_dir, tmp_path)
    runs = tmp_path / "runs"
    app, _ = make_app(config)
    async with app.run_test(size=(140, 44)) as pilot:
        await pilot.press("t")
        assert await _wait(pilot, lambda: app.status.iteration >= 3, 300), (app.status, app.launched and list(app.launched.lines))
        pids = rank_pids(runs)
        assert set(pids) == {0, 1}
        os.kill(pids[1], signal.SIGKILL)
        assert await _wait(pilot, lambda: isinstance(app.screen, ErrorModal), 120), list(app.launched.lines)
        modal = app.screen
        assert isinstance(modal, ErrorModal)
        assert modal.title_text == "Training failed"
        assert modal.message.startswith("rank 1 was ended by SIGKILL"), modal.message
        assert "The last checkpoint rank 0 saved is kept in" in modal.message
        assert app.status.state == "error"
        assert await _wait(pilot, lambda: not rank_pids(runs), 30), "rank 0 was left running"
