"""A dataset file changed under a running training is said when it is seen, not at the next
save or at the end: in the core's events, headless, and in the dashboard. Real MLX, the tiny
model; no checkpoint is saved before the change is said (save_every is far away)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from run_folders import run_config, small_data
from test_tui_app import wait_for

from mlxtui.core import events as ev
from mlxtui.core.engine import Engine, Train
from mlxtui.core.training.datawatch import DataWatch

CHANGED = "changed on disk during training; this run goes on with the examples it loaded"


def _touch(data: Path) -> None:
    with open(data / "train.jsonl", "a", encoding="utf-8") as f:
        f.write('{"text": "added while training"}\n')


def test_poll_looks_at_most_once_a_period_and_tells_each_file_once(tmp_path):
    data = small_data(tmp_path / "data")
    now = [100.0]
    watch = DataWatch(data, every=1.0, clock=lambda: now[0])
    _touch(data)
    now[0] += 0.5
    assert watch.poll() == [], "not looked at yet: half a period"
    now[0] += 0.6
    said = watch.poll()
    assert len(said) == 1 and f"{data / 'train.jsonl'} {CHANGED}" in said[0]
    (data / "valid.jsonl").unlink()
    now[0] += 1.1
    assert [m.split(" ")[0] for m in watch.poll()] == [str(data / "valid.jsonl")]
    now[0] += 1.1
    assert watch.poll() == [] and watch.changes() == [], "each file once"


def test_the_run_says_it_at_once_and_trains_on(tiny_model_dir, tmp_path):
    data = small_data(tmp_path / "data")
    seen: list[ev.Event] = []
    box: dict[str, Engine] = {}

    def on_event(e: ev.Event) -> None:
        seen.append(e)
        if isinstance(e, ev.TrainStep) and e.iteration == 2:
            _touch(data)
        if isinstance(e, ev.Log) and CHANGED in e.message:
            box["engine"].stop()  # said: the run has shown what it had to

    engine = box["engine"] = Engine(on_event)
    engine.start()
    try:
        # without the watch at each step the warning would come only at the end, 400 steps on
        cfg = run_config(tiny_model_dir, data, tmp_path / "runs", iters=400, save_every=100000,
                         steps_per_eval=100000, steps_per_report=1)  # fmt: skip
        result = engine.run_sync(Train(cfg), timeout=600)
    finally:
        engine.shutdown()
    said = [i for i, e in enumerate(seen) if isinstance(e, ev.Log) and CHANGED in e.message]
    assert len(said) == 1, [e for e in seen if isinstance(e, ev.Log)]
    steps = [e.iteration for e in seen[: said[0]] if isinstance(e, ev.TrainStep)]
    assert steps and steps[-1] >= 2, "said after the change, while steps went on"
    assert not any(isinstance(e, ev.CheckpointSaved) for e in seen[: said[0]]), "not at a save"
    assert result.status == "stopped" and result.final_iteration < 400, "said before the end"


def test_headless_prints_it_while_the_steps_go_on(tiny_model_dir, tmp_path):
    data = small_data(tmp_path / "data")
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    proc = subprocess.Popen(
        [sys.executable, "-m", "mlxtui", "train", "--model", str(tiny_model_dir), "--data", str(data),
         "--iters", "400", "--num-layers", "2", "--steps-per-report", "1", "--steps-per-eval", "100000",
         "--save-every", "100000", "--val-batches", "1", "--runs-dir", str(tmp_path / "runs"),
         "--memory-guard", "off", "--sample-prompts", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    assert proc.stdout is not None
    lines: list[str] = []
    deadline = time.monotonic() + 240
    try:
        for line in proc.stdout:
            lines.append(line)
            if line.startswith("step 2/"):
                _touch(data)
            if any(CHANGED in x for x in lines[:-1]) and line.startswith("step "):
                break  # said, and a step came after it
            assert time.monotonic() < deadline, "".join(lines[-20:])
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=240)
    finally:
        proc.kill()
    said = next(i for i, x in enumerate(lines) if CHANGED in x)
    assert lines[said].startswith(f"warning: {data / 'train.jsonl'} {CHANGED}")
    assert lines[-1].startswith("step "), "training went on after the warning"
    assert not any("checkpoint" in x for x in lines[:said])
    assert proc.returncode == 130


async def test_the_dashboard_notifies_it_while_training(tiny_model_dir, tmp_path):
    from mlxtui.tui.app import MlxtuiApp

    data = small_data(tmp_path / "data")
    config = run_config(tiny_model_dir, data, tmp_path / "runs", iters=100000, save_every=100000,
                        steps_per_eval=100000, steps_per_report=1, dequantize="no")  # fmt: skip
    app = MlxtuiApp(config, engine_factory=Engine)
    said: list[tuple[str, str]] = []
    notify = app.notify

    def recording(message: str, *args: Any, **kw: Any) -> None:
        said.append((message, f"{app.status.state} {app.status.iteration}"))
        notify(message, *args, **kw)

    app.notify = recording  # type: ignore[method-assign]
    async with app.run_test(size=(120, 40)) as pilot:
        assert await wait_for(pilot, lambda: app.status.model != "", tries=1500)
        await pilot.press("t")
        assert await wait_for(pilot, lambda: app.status.iteration >= 2, tries=3000), app.status
        _touch(data)
        assert await wait_for(pilot, lambda: any(CHANGED in m for m, _ in said), tries=1500)
        when = next(state for m, state in said if CHANGED in m)
        assert when.startswith("training"), when
        await pilot.press("s")
        assert await wait_for(pilot, lambda: app.status.state == "done", tries=3000)
