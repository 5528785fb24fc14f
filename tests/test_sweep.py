"""Sweep files (checking, expansion, names), the queue on disk, and the runner on the tiny model."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from demo_slice import demo_slice

from mlxtui.core import events as ev
from mlxtui.core.engine import Engine
from mlxtui.core.sweep import (
    DONE,
    PENDING,
    RUNNING,
    SKIPPED,
    STOPPED,
    SweepError,
    load_sweep,
    open_state,
    read_state,
    write_state,
)
from mlxtui.core.sweep_runner import SweepRunner


@pytest.fixture(scope="module")
def small_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return demo_slice(tmp_path_factory.mktemp("sweep_data"), train=24, valid=8, test=4)


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def tiny_base(model: Path, data: Path, **kw: Any) -> str:
    values = dict(
        model=str(model), data=str(data), iters=6, num_layers=2, batch_size=4, steps_per_eval=3,
        save_every=3, val_batches=1, steps_per_report=1, learning_rate=1e-3, max_seq_length=256,
    ) | kw
    return "{" + ", ".join(f"{k}: {v}" for k, v in values.items()) + "}"


# ---------------------------------------------------------------- the file


def test_grid_and_runs_expand_in_a_fixed_order_with_readable_names(tmp_path):
    f = write(tmp_path / "lr.yaml", """
base: {iters: 10}
grid:
  learning_rate: [1e-4, 2e-4]
  lora-rank: [4, 8]          # a flag's spelling
runs:
  - {--lora-layers: 2}       # an alias flag of num_layers
  - {num_layers: 4, name: deep}
""")
    sweep = load_sweep(f)
    labels = [r.label for r in sweep.runs]
    assert labels == [
        "lr-layers2-lr1e-4-rank4", "lr-layers2-lr1e-4-rank8", "lr-layers2-lr2e-4-rank4", "lr-layers2-lr2e-4-rank8",
        "deep-lr1e-4-rank4", "deep-lr1e-4-rank8", "deep-lr2e-4-rank4", "deep-lr2e-4-rank8",
    ]
    assert [r.label for r in load_sweep(f).runs] == labels  # deterministic
    run = sweep.run("deep-lr2e-4-rank8")
    assert (run.config.learning_rate, run.config.lora_rank, run.config.num_layers, run.config.iters) == (2e-4, 8, 4, 10)
    assert sweep.sweep_dir == Path("sweeps/lr")
    # only settings: the quick-start profile underneath, as a bare `mlxtui train --iters 10`
    assert run.config.grad_checkpoint is True


def test_base_is_a_yaml_file_beside_the_sweep_with_mlx_lm_defaults(tmp_path):
    write(tmp_path / "base.yaml", "model: some/model\nbatch_size: 2\nlora_parameters: {rank: 16, scale: 10.0}\n")
    f = write(tmp_path / "s.yaml", "base: base.yaml\nruns:\n  - {lora_parameters.rank: 4}\n  - {}\n")
    a, b = load_sweep(f).runs
    assert (a.config.lora_rank, b.config.lora_rank, a.config.batch_size, a.config.grad_checkpoint) == (4, 16, 2, False)
    assert a.config.lora_scale == 10.0
    assert a.label == "s-rank4" and b.label == "s"


@pytest.mark.parametrize(
    ("text", "where", "words"),
    [
        ("grid:\n  learning_rate: [1e-4]\n  lora_rnak: [4]\n", ":3", "did you mean 'lora_rank'"),
        ("grid:\n  lora_rank: [4,\n    -2]\n", ":3", "lora_rank: must be from 1 to 1024"),
        ("grid:\n  batch_size: 4\n", ":2", "give a list of values"),
        ("runs:\n  - {iters: 3}\n  - {iters: many}\n", ":3", "iters: 'many' is not a whole number"),
        ("runs:\n  - {adapter_path: out}\n", ":2", "adapter_path: cannot be set in a sweep"),
        ("runs:\n  - {run_name: x}\n", ":2", "the sweep names each run"),
        ("grid:\n  iters: [2, 2]\n", ":2", "listed twice"),
        ("runs:\n  - {iters: 3}\n  - {iters: 3}\n", ":3", "the same settings"),
        ("grid:\n  iters: [2, 3]\nruns:\n  - {iters: 4}\n", ":4", "in the grid too"),
        ("gird:\n  iters: [2]\n", ":1", "unknown key 'gird'"),
        ("base: {lr_phases: nonsense}\nruns: [{}]\n", ":1", "lr_phases"),
        ("name: t\n", "", "has no runs"),
        ("runs:\n  - {iters: 3\n", ":3", "invalid YAML"),
    ],
)
def test_every_mistake_names_the_file_line_and_key(tmp_path, text, where, words):
    f = write(tmp_path / "bad.yaml", text)
    with pytest.raises(SweepError) as info:
        load_sweep(f)
    message = str(info.value)
    assert f"{f}{where}" in message and words in message


def test_a_whole_config_that_does_not_hold_together_is_refused_per_run(tmp_path):
    f = write(tmp_path / "s.yaml", "runs:\n  - {iters: 5}\n  - {lr_phases: '10:1e-4', warmup: 5}\n")
    with pytest.raises(SweepError, match=r"s.yaml:3: run s-.*warmup"):
        load_sweep(f)


# ---------------------------------------------------------------- the queue on disk


def test_the_queue_is_reopened_as_it_was_and_another_sweep_is_refused(tmp_path):
    f = write(tmp_path / "q.yaml", f"sweep_dir: {tmp_path / 'out'}\ngrid:\n  iters: [2, 3, 4]\n")
    sweep = load_sweep(f)
    state = open_state(sweep)
    assert [r.status for r in state.runs] == [PENDING] * 3
    state.runs.reverse()
    state.runs[0].status = RUNNING
    write_state(sweep.sweep_dir, state)
    again = open_state(load_sweep(f))
    assert [r.label for r in again.runs] == ["q-iters4", "q-iters3", "q-iters2"] and again.runs[0].status == RUNNING
    write(f, f"sweep_dir: {tmp_path / 'out'}\ngrid:\n  iters: [2, 3, 5]\n")
    with pytest.raises(SweepError, match="q-iters5.*q-iters4.*another name"):
        open_state(load_sweep(f))
    assert read_state(tmp_path / "out") is not None  # kept, not overwritten
    write(tmp_path / "out" / "sweep.json", "{not json")
    with pytest.raises(SweepError, match="not a sweep state"):
        open_state(load_sweep(f))


# ---------------------------------------------------------------- the runner, real MLX


def _runner(sweep: Any, on_event: Any = None) -> tuple[SweepRunner, Engine]:
    engine = Engine(on_event or (lambda e: None))
    engine.start()
    return SweepRunner(sweep, engine), engine


def test_runs_one_after_another_estimated_first(tiny_model_dir, small_data, tmp_path):
    f = write(tmp_path / "s.yaml", f"base: {tiny_base(tiny_model_dir, small_data, runs_dir=tmp_path / 'runs')}\n"
              f"sweep_dir: {tmp_path / 'sw'}\ngrid:\n  lora_rank: [2, 4]\n")
    started: list[str] = []
    runner, engine = _runner(load_sweep(f), lambda e: started.append(e.run_dir) if isinstance(e, ev.TrainStarted) else None)
    try:
        assert runner.preflight() == []  # the tiny model fits
        state = runner.run()
    finally:
        engine.shutdown()
        runner.close()
    assert [r.status for r in state.runs] == [DONE, DONE]
    assert all(r.verdict == "fits" and r.estimate_bytes for r in state.runs)
    assert [r.run_dir for r in state.runs] == started
    on_disk = json.loads((tmp_path / "sw" / "sweep.json").read_text())
    assert [r["status"] for r in on_disk["runs"]] == [DONE, DONE]
    for r in state.runs:
        assert (Path(r.run_dir) / "adapters" / "adapters.safetensors").is_file()
        assert (tmp_path / "sw" / "adapters" / r.label / "adapters.safetensors").is_file()
        assert f"rank: {r.overrides['lora_rank']}" in (Path(r.run_dir) / "config.yaml").read_text()


def test_a_stopped_sweep_resumes_the_run_from_its_checkpoint_then_the_rest(tiny_model_dir, small_data, tmp_path):
    f = write(tmp_path / "s.yaml", f"base: {tiny_base(tiny_model_dir, small_data, runs_dir=tmp_path / 'runs')}\n"
              f"sweep_dir: {tmp_path / 'sw'}\ngrid:\n  learning_rate: [1e-3, 2e-3, 3e-3]\n")
    box: dict[str, Any] = {}

    def stop_after_checkpoint(e: Any) -> None:
        if isinstance(e, ev.CheckpointSaved) and e.kind == "periodic" and e.iteration == 3:
            box["runner"].stop()

    runner, engine = _runner(load_sweep(f), stop_after_checkpoint)
    box["runner"] = runner
    try:
        runner.skip("s-lr3e-3")
        runner.move("s-lr2e-3", -1)  # second becomes first
        state = runner.run()
    finally:
        engine.shutdown()
        runner.close()
    assert [r.label for r in state.runs] == ["s-lr2e-3", "s-lr1e-3", "s-lr3e-3"]
    assert [r.status for r in state.runs] == [STOPPED, PENDING, SKIPPED]
    folder = state.runs[0].run_dir
    starts: list[ev.TrainStarted] = []
    runner, engine = _runner(load_sweep(f), lambda e: starts.append(e) if isinstance(e, ev.TrainStarted) else None)
    try:
        runner.skip("s-lr3e-3")  # a second skip puts it back
        state = runner.run()
    finally:
        engine.shutdown()
        runner.close()
    assert [r.status for r in state.runs] == [DONE, DONE, DONE]
    first = state.runs[0]
    assert (starts[0].run_dir, starts[0].start_iter) == (folder, 3) and first.resumed_from == [3]
    assert first.run_dir == folder and first.attempts == 2
    assert [s.start_iter for s in starts[1:]] == [0, 0]


def test_a_run_killed_before_its_first_checkpoint_starts_again_and_one_that_had_finished_is_done(
    tiny_model_dir, small_data, tmp_path
):
    f = write(tmp_path / "s.yaml", f"base: {tiny_base(tiny_model_dir, small_data, runs_dir=tmp_path / 'runs', iters=3)}\n"
              f"sweep_dir: {tmp_path / 'sw'}\nruns:\n  - {{seed: 1}}\n  - {{seed: 2}}\n")
    sweep = load_sweep(f)
    runner, engine = _runner(sweep)
    try:
        runner.skip("s-seed2")
        state = runner.run()
    finally:
        engine.shutdown()
        runner.close()
    finished_dir = state.runs[0].run_dir
    # as a kill -9 leaves it: the first marked running though it had finished, the second
    # running with a folder that never reached a checkpoint
    empty = tmp_path / "runs" / "killed-early"
    empty.mkdir(parents=True)
    state.runs[0].status = RUNNING
    state.runs[1].status, state.runs[1].run_dir = RUNNING, str(empty)
    write_state(sweep.sweep_dir, state)
    runner, engine = _runner(load_sweep(f))
    try:
        state = runner.run()
    finally:
        engine.shutdown()
        runner.close()
    assert [r.status for r in state.runs] == [DONE, DONE]
    assert state.runs[0].run_dir == finished_dir and state.runs[0].attempts == 1
    second = state.runs[1]
    assert second.abandoned == [str(empty)] and second.run_dir != str(empty) and empty.is_dir()
    assert "no checkpoint to resume from" in second.message


def test_runs_the_estimate_says_will_not_fit_are_flagged_before_the_sweep_and_can_be_skipped(
    tiny_model_dir, small_data, tmp_path
):
    from dataclasses import replace

    from test_tui_fakes import sample

    class LittleMemory:
        """The machine as the sampler sees it: 1 MB available, so nothing fits."""

        def sample(self) -> Any:
            return replace(sample(0), system_available=2**20)

    f = write(tmp_path / "s.yaml", f"base: {tiny_base(tiny_model_dir, small_data, runs_dir=tmp_path / 'runs')}\n"
              f"sweep_dir: {tmp_path / 'sw'}\ngrid:\n  lora_rank: [2, 4]\n")
    engine = Engine(lambda e: None, memory_probe=LittleMemory())
    engine.start()
    try:
        runner = SweepRunner(load_sweep(f), engine)
        flagged = runner.preflight()
        assert [r.label for r in flagged] == ["s-rank2", "s-rank4"]
        assert all(r.verdict == "will swap" and "will not fit" in r.message for r in flagged)
        runner.skip_flagged()
        state = runner.run()
    finally:
        engine.shutdown()
        runner.close()
    assert [r.status for r in state.runs] == [SKIPPED, SKIPPED] and not (tmp_path / "runs").exists()


def test_one_process_at_a_time_drives_a_sweep_folder(tmp_path):
    import os

    f = write(tmp_path / "q.yaml", f"sweep_dir: {tmp_path / 'out'}\ngrid:\n  iters: [2, 3]\n")
    first = SweepRunner(load_sweep(f), engine=None)
    with pytest.raises(SweepError, match=f"another mlxtui \\(pid {os.getpid()}\\) is running this sweep"):
        SweepRunner(load_sweep(f), engine=None)
    first.close()
    SweepRunner(load_sweep(f), engine=None).close()  # free again (a killed holder frees it too)


def test_a_stop_before_the_train_job_has_begun_still_stops_it(tiny_model_dir, small_data, tmp_path):
    f = write(tmp_path / "s.yaml", f"base: {tiny_base(tiny_model_dir, small_data, runs_dir=tmp_path / 'runs', iters=500)}\n"
              f"sweep_dir: {tmp_path / 'sw'}\ngrid:\n  lora_rank: [2, 4]\n")
    steps: list[int] = []
    runner, engine = _runner(load_sweep(f), lambda e: steps.append(e.iteration) if isinstance(e, ev.TrainStep) else None)
    # the dashboard's s pressed the moment the run shows as running: its job is not even queued yet
    asked: list[bool] = []

    def press_stop_once(state: Any) -> None:
        if state.current and not asked:
            asked.append(True)
            runner.stop()

    runner.on_change = press_stop_once
    try:
        state = runner.run()
    finally:
        engine.shutdown()
        runner.close()
    assert [r.status for r in state.runs] in ([PENDING, PENDING], [STOPPED, PENDING])
    assert len(steps) < 5  # stopped at once, not after 500 steps
