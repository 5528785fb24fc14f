"""`mlxtui sweep` as a person runs it: a real process on the tiny model, killed with SIGKILL in
the middle of a run, started again, and its summary checked (the killed run resumed from its
checkpoint, exactly: the same losses as a run never interrupted)."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from demo_slice import demo_slice

from mlxtui.cli.main import main
from mlxtui.core.runs import read_metrics, read_state


@pytest.fixture(scope="module")
def small_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return demo_slice(tmp_path_factory.mktemp("sweep_cli_data"), train=24, valid=8, test=4)


def sweep_file(folder: Path, model: Path, data: Path, iters: int = 6) -> Path:
    path = folder / "trio.yaml"
    path.write_text(
        f"""
base:
  model: {model}
  data: {data}
  iters: {iters}
  num_layers: 2
  save_every: 3
  steps_per_eval: 3
  steps_per_report: 1
  val_batches: 1
  max_seq_length: 256
  sample_prompts: 0
grid:
  learning_rate: [1e-3, 3e-3, 5e-3]
""",
        encoding="utf-8",
    )
    return path


def mlxtui(*args: str, cwd: Path) -> subprocess.Popen[str]:
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    return subprocess.Popen(
        [sys.executable, "-m", "mlxtui", *args], cwd=cwd, env=env, text=True,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )


def test_a_sweep_killed_mid_run_continues_with_that_run_resumed_exactly(tiny_model_dir, small_data, tmp_path, monkeypatch):
    f = sweep_file(tmp_path, tiny_model_dir, small_data)
    proc = mlxtui("sweep", str(f), cwd=tmp_path)
    seen: list[str] = []
    second_run = False
    deadline = time.monotonic() + 300
    assert proc.stdout is not None
    for line in proc.stdout:
        seen.append(line)
        second_run = second_run or "run 2/3: trio-lr3e-3" in line
        # step 5's report comes after step 3's checkpoint and resume state were written
        if second_run and line.startswith("step 5/6:"):
            proc.send_signal(signal.SIGKILL)
            break
        assert time.monotonic() < deadline, "".join(seen[-20:])
    proc.wait(30)
    assert proc.returncode == -signal.SIGKILL, "".join(seen[-30:])
    sweep_dir = tmp_path / "sweeps" / "trio"
    queue = json.loads((sweep_dir / "sweep.json").read_text())
    assert [r["status"] for r in queue["runs"]] == ["done", "running", "pending"]
    killed = Path(tmp_path / queue["runs"][1]["run_dir"])
    assert read_state(killed)["iteration"] == 3  # type: ignore[index]

    again = mlxtui("sweep", str(f), cwd=tmp_path)
    out, _ = again.communicate(timeout=300)
    assert again.returncode == 0, out
    assert "run 2/3: trio-lr3e-3, resuming from step 3" in out
    queue = json.loads((sweep_dir / "sweep.json").read_text())
    assert [r["status"] for r in queue["runs"]] == ["done", "done", "done"]
    second = queue["runs"][1]
    assert (second["resumed_from"], second["attempts"]) == ([3], 2)
    assert Path(tmp_path / second["run_dir"]) == killed
    starts = [m for m in read_metrics(killed) if m.get("event") == "start"]
    assert [s["start_iter"] for s in starts] == [0, 3]

    # exactly: the resumed run's losses are those of the same run never interrupted
    resumed = {m["iteration"]: m["train_loss"] for m in read_metrics(killed) if m.get("event") == "train"}
    straight = _straight_losses(killed, tmp_path / "straight")
    assert sorted(resumed) == list(range(1, 7))
    for it in range(4, 7):
        assert resumed[it] == pytest.approx(straight[it], abs=1e-5), it

    # the summary: best validation loss first, every run done, best.yaml ready for `mlxtui train --config`
    buf = io.StringIO()
    from mlxtui.cli import sweep as sweep_cmd

    args = _parse("sweep", str(f), "--summary")
    monkeypatch.chdir(tmp_path)
    assert sweep_cmd.run(args, out=buf) == 0
    table = [line for line in buf.getvalue().splitlines() if line.startswith("| ") and "trio-" in line]
    assert len(table) == 3 and all("| done |" in row for row in table)
    head = next(line for line in buf.getvalue().splitlines() if line.startswith("| #"))
    column = [c.strip() for c in head.split("|")].index("best val loss")
    losses = [float(row.split("|")[column]) for row in table]
    assert losses == sorted(losses)
    best = sweep_dir / "best.yaml"
    assert best.is_file() and table[0].split("|")[2].strip() in best.read_text()
    assert "adapter_path: adapters" in best.read_text()


def _parse(*argv: str) -> Any:
    from mlxtui.cli.main import build_parser

    return build_parser().parse_args(list(argv))


def _straight_losses(run_dir: Path, out: Path) -> dict[int, float]:
    from mlxtui import TrainPipeline
    from mlxtui.core.config import load_config

    config = load_config(run_dir / "config.yaml").with_values(
        runs_dir=str(out / "runs"), adapter_path=str(out / "adapters"), run_name="straight"
    )
    result = TrainPipeline(config).execute()
    return dict(result.train_losses)


def test_bad_sweep_file_and_missing_state_are_refused_with_the_place(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("grid:\n  learning_rate: [1e-4, fast]\n", encoding="utf-8")
    assert main(["sweep", str(bad)]) == 2
    assert f"{bad}:2: learning_rate: 'fast' is not a number" in capsys.readouterr().err
    good = tmp_path / "good.yaml"
    good.write_text("grid:\n  learning_rate: [1e-4, 2e-4]\n", encoding="utf-8")
    assert main(["sweep", str(good), "--summary"]) == 2
    assert "has no sweep.json" in capsys.readouterr().err


def test_the_two_bars_share_one_line_that_fits_the_terminal(monkeypatch):
    import os as os_

    from mlxtui.cli.sweep import SweepPrinter
    from mlxtui.core import events as ev
    from mlxtui.core.sweep import RunState, SweepState

    monkeypatch.setattr("shutil.get_terminal_size", lambda fallback=(0, 0): os_.terminal_size((80, 24)))
    out = io.StringIO()
    printer = SweepPrinter(out, total=3, tty=True)
    runs = [RunState("a", {}, status="done"), RunState("b", {}, status="running", attempts=2, resumed_from=[6]),
            RunState("c", {})]
    printer.sweep_changed(SweepState("s", "s.yaml", {}, runs, current="b"))
    printer(ev.PhaseStarted(1, "train", "load", "loading the model", 32))
    printer(ev.JobProgress(1, "train", "loading the model", 1, 32))  # the phase line shows it already
    printer(ev.TrainStep(7, 12, 2.5, 1e-4, 400.0, 2.0, 1000, 0.5, 30.0))
    printer.close()
    text = out.getvalue()
    assert "sweep [####........] 1/3 run 2/3: b, resuming from step 6\n" in text
    drawn = [part for part in text.split("\r") if part.strip()]
    assert any(part.startswith("sweep 1/3 · run 2 [") and "7/12" in part for part in drawn)
    assert all(len(part.rstrip("\n")) <= 79 for part in drawn)
    assert "loading the model\n" not in text


def test_ctrl_c_stops_the_run_after_its_step_and_says_how_to_continue(tiny_model_dir, small_data, tmp_path):
    f = sweep_file(tmp_path, tiny_model_dir, small_data, iters=30)
    proc = mlxtui("sweep", str(f), cwd=tmp_path)
    assert proc.stdout is not None
    seen: list[str] = []
    for line in proc.stdout:
        seen.append(line)
        if line.startswith("step 4/30:"):  # after step 3's checkpoint
            proc.send_signal(signal.SIGINT)
            break
    rest, _ = proc.communicate(timeout=120)
    out = "".join(seen) + rest
    assert proc.returncode == 130, out
    assert f"stopped; continue with: mlxtui sweep {f}" in out
    queue = json.loads((tmp_path / "sweeps" / "trio" / "sweep.json").read_text())
    first = queue["runs"][0]
    assert [r["status"] for r in queue["runs"]] == ["stopped", "pending", "pending"]
    state = read_state(tmp_path / first["run_dir"])
    assert state is not None and state["status"] == "stopped" and 4 <= state["iteration"] < 30
