"""`mlxtui train`'s exit status and headless wording when a run stops by itself.

A headless run has nobody to press continue: a NaN loss or a peak past --memory-limit stops
it, and the exit status must tell a script so (0 would read as trained). Its messages must
name what works headless (Ctrl-C), never the dashboard's p/s keys.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import pytest
from run_folders import small_data

from mlxtui.cli.main import main
from mlxtui.cli.progress import ProgressPrinter
from mlxtui.cli.train import EXIT_DIVERGED, EXIT_MEMORY_LIMIT
from mlxtui.core import events as ev
from mlxtui.core import pause_words as words

# the dashboard's keys, as the core's messages said them before they were worded per front end
DASHBOARD_KEYS = ("press p", "p continues", "p retries", "s stops", "Continue rolls back", "stop was pressed")


def _train_args(model: Path, data: Path, runs: Path, *extra: str) -> list[str]:
    return [
        "train", "--model", str(model), "--data", str(data), "--runs-dir", str(runs),
        "--num-layers", "2", "--batch-size", "4", "--max-seq-length", "256",
        "--steps-per-report", "1", "--steps-per-eval", "100000", "--val-batches", "1",
        "--sample-prompts", "0", "--memory-guard", "off", *extra,
    ]  # fmt: skip


def test_a_loss_that_becomes_nan_exits_3_naming_the_step_and_the_fix(tiny_model_dir, tmp_path):
    """A real run: 4 sane SGD steps, then a rate of 1e12; the loss of step 6 is not finite."""
    data = small_data(tmp_path / "data")
    runs = tmp_path / "runs"
    args = _train_args(
        tiny_model_dir, data, runs, "--iters", "12", "--save-every", "4", "--optimizer", "sgd",
        "--lr-phases", "4:1e-3,8:1e12",
    )  # fmt: skip
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    proc = subprocess.run(
        [sys.executable, "-m", "mlxtui", *args], capture_output=True, text=True, timeout=300, env=env
    )
    assert proc.returncode == EXIT_DIVERGED == 3, proc.stdout[-2000:] + proc.stderr[-2000:]
    run = next(runs.iterdir())
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith(("mlxtui train: the loss became nan at step 6", "mlxtui train: the loss became inf at step 6"))
    assert "(exit status 3)" in last and "--learning-rate" in last and "--max-grad-norm 1.0" in last
    assert "the last good checkpoint (step 4) is kept" in last
    assert f"mlxtui train --resume {run} --learning-rate LOWER" in last
    out = proc.stdout
    assert "training stopped (a headless run has nobody to continue it)" in out
    assert "stopped at step 6 of 12: the weights were not finite" in out
    assert not [k for k in DASHBOARD_KEYS if k in out + proc.stderr], out
    assert out.count("loss became") == 1, "the pause repeats the error line: said once"


def test_a_peak_past_memory_limit_exits_4_with_the_resume_command(tiny_model_dir, tmp_path, capsys):
    """MLX on CPU does not stop at a 1 MB limit; the run stops itself and saves (in process)."""
    data = small_data(tmp_path / "data")
    runs = tmp_path / "runs"
    rc = main(_train_args(tiny_model_dir, data, runs, "--iters", "6", "--memory-limit", "1MB"))
    out, err = capsys.readouterr()
    assert rc == EXIT_MEMORY_LIMIT == 4, out[-2000:] + err[-2000:]
    run = next(runs.iterdir())
    assert "the peak memory passed --memory-limit 1MB, so the run stopped at step 1" in err
    assert f"`mlxtui train --resume {run}` with a smaller --batch-size" in err
    assert "A headless run stops here (nobody can continue it past the limit)" in out
    assert not [k for k in DASHBOARD_KEYS if k in out + err], out
    assert (run / "adapters" / "adapters.safetensors").is_file()


def test_help_lists_the_exit_statuses(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for said in ("0 trained", "1 failed", "2 a bad flag", "3 the loss became NaN or infinite",
                 "4 the peak memory passed --memory-limit", "130 stopped by Ctrl-C"):  # fmt: skip
        assert said in text, said


@pytest.mark.parametrize(
    ("reason", "message", "headless"),
    [
        ("user", f"paused; {words.USER_PAUSE}", "paused; Ctrl-C stops it (the adapter is saved)"),
        (
            "memory",
            "paused by the memory guard: swap grows 300 MB/min (it continues by itself when memory "
            f"recovers; {words.MEMORY_CONTINUE})",
            "(it continues by itself when memory recovers; Ctrl-C stops it and saves the adapter)",
        ),
    ],
)
def test_pause_lines_headless_name_ctrl_c_not_the_keys(reason, message, headless):
    out = io.StringIO()
    printer = ProgressPrinter(out, tty=False)
    printer(ev.TrainPaused(7, reason, message))
    assert out.getvalue() == f"paused at step 7: {words.headless_words(message)}\n"
    assert headless in out.getvalue()
    assert not [k for k in DASHBOARD_KEYS if k in out.getvalue()]


def test_disk_full_and_skipped_validation_headless():
    out = io.StringIO()
    printer = ProgressPrinter(out, tty=False)
    disk = (
        "disk full while saving the checkpoint of step 8 in /runs/x: a save needs about 3 MB free "
        "there (1 MB free now). The previous checkpoint (step 4) is intact. Training is paused: "
        f"free some space and it continues by itself ({words.DISK_KEYS})"
    )
    printer(ev.Log("error", disk))
    printer(ev.TrainPaused(8, "disk", disk))  # the same text: said once
    printer(ev.TrainFinished("r", "r/adapters", 8, 20, "stopped", message=f"the final validation was skipped: {words.STOP_PRESSED}"))
    text = out.getvalue()
    assert text.count("disk full while saving") == 1
    assert "continues by itself (Ctrl-C stops it)" in text
    assert "the final validation was skipped: the run was stopped" in text
    assert not [k for k in DASHBOARD_KEYS if k in text], text


def test_the_core_says_the_keys_only_through_pause_words():
    """Every pause or stop message of the core that names a key is built from pause_words'
    phrases, so the headless printer can word it; a new literal would slip past it."""
    core = Path(__file__).parent.parent / "mlxtui" / "core"
    found = [
        f"{path.relative_to(core)}: {key!r}"
        for path in core.rglob("*.py")
        if path.name != "pause_words.py"
        for key in DASHBOARD_KEYS
        if key in path.read_text(encoding="utf-8")
    ]
    assert found == []
    for phrase in words.HEADLESS:
        assert not [k for k in DASHBOARD_KEYS if k in words.headless_words(f"x {phrase} y")], phrase
