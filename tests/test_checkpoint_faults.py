"""Checkpoints under faults, with real MLX on the tiny model: --adapter-path written live,
kill -9, a full disk, a memory limit too low, NaN loss, two processes on one folder, a dataset
changed under a run, SIGHUP/SIGTERM. tests/RELIABILITY.md records what each one showed."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from demo_slice import demo_slice
from run_folders import Recorder, run_config, train

from mlxtui.core import events as ev
from mlxtui.core.config import TrainConfig
from mlxtui.core.engine import Engine, EngineError, Train


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return demo_slice(tmp_path_factory.mktemp("data"), train=16, valid=4)


def config(model: Path, data: Path, runs: Path, **kw: Any) -> TrainConfig:
    """run_folders' short run, 8 steps long: a report each step, a save every 2, no validation."""
    return run_config(model, data, runs, **({"iters": 8, "steps_per_report": 1, "steps_per_eval": 10**6,
                                              "save_every": 2, "val_batches": 1} | kw))


def cli_train(model: Path, data: Path, runs: Path, *extra: str) -> subprocess.Popen[str]:
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    return subprocess.Popen(
        [sys.executable, "-m", "mlxtui", "train", "--model", str(model), "--data", str(data),
         "--num-layers", "2", "--steps-per-report", "1", "--steps-per-eval", "1000000",
         "--val-batches", "1", "--runs-dir", str(runs), "--memory-guard", "off", *extra],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )


def wait_for(proc: subprocess.Popen[str], prefix: str, timeout: float = 240) -> None:
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    for line in proc.stdout:
        if line.startswith(prefix):
            return
        assert time.monotonic() < deadline, f"no line starting {prefix!r}"
    raise AssertionError(f"the process ended before {prefix!r}: {proc.stderr.read() if proc.stderr else ''}")


def loads_in_mlxtui_and_mlx_lm(model: Path, adapter_dir: Path) -> None:
    """The adapter folder loads in mlxtui's loader and in mlx_lm.load, and changes the output."""
    import mlx.core as mx
    from mlx_lm import load

    from mlxtui.core.models import load_model

    weights = mx.load(str(adapter_dir / "adapters.safetensors"))
    assert weights and all(bool(mx.all(mx.isfinite(w)).item()) for w in weights.values())
    m1, _, _ = load_model(str(model), adapter_path=str(adapter_dir))
    m2, _ = load(str(model), adapter_path=str(adapter_dir))
    tokens = mx.array([[1, 2, 3, 4]])
    assert mx.allclose(m1(tokens), m2(tokens), atol=1e-5)


# ------------------------------------------------------------------ --adapter-path, live


def test_adapter_path_gets_every_checkpoint_under_mlx_lm_names(tiny_model_dir, data, tmp_path):
    target = tmp_path / "my_adapter"
    result, rec = train(config(tiny_model_dir, data, tmp_path / "runs", adapter_path=str(target)))
    assert result.status == "completed"
    names = sorted(p.name for p in target.iterdir())
    assert names == [
        "0000002_adapters.safetensors", "0000004_adapters.safetensors",
        "0000006_adapters.safetensors", "adapter_config.json", "adapters.safetensors",
    ], names  # the lock file is gone once the run ends
    run_adapters = Path(result.adapter_path)
    for name in names:
        assert (target / name).read_bytes() == (run_adapters / name).read_bytes(), name
    loads_in_mlxtui_and_mlx_lm(tiny_model_dir, target)


def test_adapter_path_holding_other_files_is_refused_before_loading(tiny_model_dir, data, tmp_path):
    target = tmp_path / "notes"
    target.mkdir()
    (target / "thesis.txt").write_text("mine")
    with pytest.raises(EngineError, match=r"notes holds other files \(thesis.txt\) and no adapter"):
        train(config(tiny_model_dir, data, tmp_path / "runs", adapter_path=str(target)))
    assert sorted(p.name for p in target.iterdir()) == ["thesis.txt"]
    assert not (tmp_path / "runs").exists()


def test_kill_9_mid_run_leaves_a_loadable_adapter_in_adapter_path(tiny_model_dir, data, tmp_path):
    target = tmp_path / "adapters_dir"
    proc = cli_train(tiny_model_dir, data, tmp_path / "runs", "--iters", "100000", "--save-every", "1",
                     "--adapter-path", str(target))
    try:
        wait_for(proc, "step 4/")
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
    finally:
        proc.kill()
    assert (target / "adapter_config.json").is_file()
    assert (target / "0000003_adapters.safetensors").is_file()
    loads_in_mlxtui_and_mlx_lm(tiny_model_dir, target)
    # as the guides use it
    gen = subprocess.run([sys.executable, "-m", "mlx_lm", "generate", "--model", str(tiny_model_dir),
                          "--adapter-path", str(target), "--prompt", "hello", "--max-tokens", "3"],
                         capture_output=True, text=True, timeout=300)
    assert gen.returncode == 0, gen.stderr[-2000:]


# ------------------------------------------------------------------ two processes, one folder


def test_a_second_process_on_the_same_run_is_refused_naming_the_first(tiny_model_dir, data, tmp_path):
    first, _ = train(config(tiny_model_dir, data, tmp_path / "runs", iters=4))
    run = Path(first.run_dir)
    proc = cli_train(tiny_model_dir, data, tmp_path / "runs", "--iters", "100000", "--resume", str(run))
    try:
        wait_for(proc, "step 6/")
        before = (run / "state" / "state.json").read_bytes()
        with pytest.raises(EngineError, match=rf"{run.name} is in use by another mlxtui process \(pid {proc.pid} "):
            train(config(tiny_model_dir, data, tmp_path / "runs", iters=100000, resume_run=str(run)))
        assert proc.poll() is None, "the first process goes on"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
    # the refused process wrote nothing: the state is the first process's own
    state = json.loads((run / "state" / "state.json").read_text())
    assert state["iteration"] >= json.loads(before)["iteration"]
    # the dead process's lock is stale: the next resume takes it over and says so
    result, rec = train(config(tiny_model_dir, data, tmp_path / "runs", iters=state["iteration"] + 2,
                               resume_run=str(run)))
    assert result.status == "completed"
    assert any(f"took over the lock of process {proc.pid}" in m for m in rec.logs())


def test_the_lock_is_checked_again_when_the_store_opens(tmp_path):
    """The early check can race a process that starts at the same moment: the store's flock cannot."""
    from mlxtui.core.runlock import FolderInUse, FolderLock

    first = FolderLock(tmp_path).acquire()
    with pytest.raises(FolderInUse, match=rf"pid {os.getpid()} "):
        FolderLock(tmp_path).acquire()
    first.release()
    FolderLock(tmp_path).acquire().release()
    assert not (tmp_path / ".mlxtui.lock").exists()


# ------------------------------------------------------------------ a full disk


class FullDisk:
    """While `full`, writing a safetensors file fails after a partial write as MLX fails on a
    real full disk (benchmarks/disk_full_trial.py saw RuntimeError, not OSError), and the disk
    reports no free space, until `free()`."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        import shutil

        import mlx.core as mx

        self.full = False
        self.failures = 0
        real_save, real_usage = mx.save_safetensors, shutil.disk_usage

        def save(path: str, arrays: Any, metadata: Any = None) -> None:
            if self.full:
                self.failures += 1
                Path(path).write_bytes(b"\0" * 100)  # the part that fit
                raise RuntimeError("[write] Unable to write 8 bytes to file.")
            real_save(path, arrays, metadata=metadata)

        def usage(path: Any) -> Any:
            u = real_usage(path)
            return type(u)(u.total, u.total, 0) if self.full else u

        monkeypatch.setattr(mx, "save_safetensors", save)
        monkeypatch.setattr(shutil, "disk_usage", usage)

    def free(self) -> None:
        self.full = False


def test_disk_full_pauses_keeps_the_last_checkpoint_and_continues_when_freed(
    tiny_model_dir, data, tmp_path, monkeypatch
):
    import mlx.core as mx

    disk = FullDisk(monkeypatch)
    rec = Recorder()
    seen: dict[str, Any] = {}

    def fill_at_step_3(e: ev.Event) -> None:
        if isinstance(e, ev.TrainStep) and e.iteration == 3:
            disk.full = True

    def on_pause(engine: Engine, e: ev.TrainPaused) -> None:
        assert e.reason == "disk"
        ad = Path(seen["run_dir"]) / "adapters"
        seen["message"] = e.message
        seen["files"] = sorted(p.name for p in ad.iterdir())
        seen["latest_is_step_2"] = (ad / "adapters.safetensors").read_bytes() == (
            ad / "0000002_adapters.safetensors"
        ).read_bytes()
        seen["loads"] = all(bool(mx.all(mx.isfinite(w)).item())
                            for w in mx.load(str(ad / "adapters.safetensors")).values())
        disk.free()  # the user deletes something: the run continues by itself

    def record(e: ev.Event) -> None:
        if isinstance(e, ev.TrainStarted):
            seen["run_dir"] = e.run_dir
        fill_at_step_3(e)
        rec(e)

    rec.on_pause = on_pause
    engine = Engine(record)
    rec.engine = engine
    engine.start()
    try:
        result = engine.run_sync(Train(config(tiny_model_dir, data, tmp_path / "runs",
                                              adapter_path=str(tmp_path / "ad"))), timeout=600)
    finally:
        engine.shutdown()
    assert disk.failures == 1
    assert "disk full while saving the checkpoint of step 4 in " in seen["message"]
    assert "a save needs about " in seen["message"] and " MB free now" in seen["message"]
    assert "previous checkpoint (step 2) is intact" in seen["message"]
    assert seen["latest_is_step_2"] and seen["loads"]
    assert not [n for n in seen["files"] if n.endswith(".tmp.safetensors")], seen["files"]
    assert [e.reason for e in rec.of(ev.TrainPaused)] == ["disk"] and rec.of(ev.TrainResumed)
    assert result.status == "completed" and result.final_iteration == 8
    state = json.loads((Path(result.run_dir) / "state" / "state.json").read_text())
    assert state["iteration"] == 8
    assert (tmp_path / "ad" / "0000004_adapters.safetensors").is_file()


def test_stop_during_a_disk_full_pause_ends_the_run_and_loses_nothing(
    tiny_model_dir, data, tmp_path, monkeypatch
):
    disk = FullDisk(monkeypatch)
    rec = Recorder()

    def on_pause(engine: Engine, e: ev.TrainPaused) -> None:
        engine.stop()

    def record(e: ev.Event) -> None:
        if isinstance(e, ev.TrainStep) and e.iteration == 5:
            disk.full = True
        rec(e)

    rec.on_pause = on_pause
    engine = Engine(record)
    rec.engine = engine
    engine.start()
    try:
        result = engine.run_sync(Train(config(tiny_model_dir, data, tmp_path / "runs")), timeout=600)
    finally:
        engine.shutdown()
    assert result.status == "stopped"
    assert "could not be saved (disk full at " in result.message
    assert "the last checkpoint, of step 4, is intact" in result.message
    run = Path(result.run_dir)
    assert json.loads((run / "state" / "state.json").read_text())["iteration"] == 4
    assert (run / "adapters" / "adapters.safetensors").read_bytes() == (
        run / "adapters" / "0000004_adapters.safetensors").read_bytes()


# ------------------------------------------------------------------ NaN loss


def nan_config(model: Path, data: Path, tmp_path: Path, **kw: Any) -> TrainConfig:
    # --learning-rate is capped at 1 (a rate of 10 is refused with that range); the phases reach
    # an absurd rate after 4 sane steps, and the loss of step 5 is not finite
    return config(model, data, tmp_path / "runs", iters=12, save_every=4, optimizer="sgd",
                  lr_phases="4:1e-3,8:1e12", adapter_path=str(tmp_path / "ad"), **kw)


def test_nan_pauses_rolls_back_on_continue_and_never_overwrites_the_good_checkpoint(
    tiny_model_dir, data, tmp_path
):
    import mlx.core as mx

    rec = Recorder()
    pauses: list[ev.TrainPaused] = []

    def on_pause(engine: Engine, e: ev.TrainPaused) -> None:
        pauses.append(e)
        if len(pauses) == 1:
            engine.resume()  # continue: roll back to step 4 and go on (it diverges again)
        else:
            engine.stop()

    rec.on_pause = on_pause
    result, rec = train(nan_config(tiny_model_dir, data, tmp_path), rec)
    assert [p.reason for p in pauses] == ["nan", "nan"]
    # step 5 takes the absurd step; the loss of step 6 is the first one that is not finite
    assert pauses[0].message.startswith(("loss became nan at step 6", "loss became inf at step 6"))
    assert "The last good adapter (step 4) is kept on disk" in pauses[0].message
    assert "Lower the learning rate (--learning-rate) or clip the gradients (--max-grad-norm)" in pauses[0].message
    assert "rolled back to the last good weights (step 4)" in rec.logs("info")
    assert result.status == "stopped"
    assert "the last good checkpoint (step 4) is kept" in result.message
    assert f"mlxtui train --resume {result.run_dir} --learning-rate" in result.message
    run = Path(result.run_dir)
    good = (run / "adapters" / "0000004_adapters.safetensors").read_bytes()
    for path in (run / "adapters" / "adapters.safetensors", tmp_path / "ad" / "adapters.safetensors",
                 tmp_path / "ad" / "0000004_adapters.safetensors"):
        assert path.read_bytes() == good, path
    assert not list((tmp_path / "ad").glob("0000008*")), "no checkpoint after the divergence"
    state = json.loads((run / "state" / "state.json").read_text())
    assert state["iteration"] == 4
    weights = mx.load(str(run / "state" / "adapters.safetensors"))
    assert all(bool(mx.all(mx.isfinite(w)).item()) for w in weights.values())

    # the advice acts: resumed from step 4 at a sane rate, the run ends with finite weights
    from mlxtui.core.config import load_config

    resumed_cfg = load_config(run / "config.yaml").with_values(
        resume_run=str(run), lr_phases=None, learning_rate=5e-4, memory_guard="off")
    again, rec2 = train(resumed_cfg)
    assert again.status == "completed" and again.final_iteration == 12
    steps = rec2.of(ev.TrainStep)
    assert steps[0].iteration == 5 and all(math.isfinite(s.loss) for s in steps)
    assert all(s.learning_rate == pytest.approx(5e-4) for s in steps)  # not the saved rate


def test_headless_nan_stops_the_run_instead_of_waiting_for_a_key(tiny_model_dir, data, tmp_path):
    """Nobody presses continue in a script: the Python API and `mlxtui train` end the run."""
    from mlxtui.pipeline import TrainPipeline

    result = TrainPipeline(nan_config(tiny_model_dir, data, tmp_path)).execute()
    assert result.status == "stopped" and result.final_iteration == 6
    assert "the last good checkpoint (step 4) is kept" in result.message


# ------------------------------------------------------------------ memory


def test_a_peak_past_memory_limit_pauses_with_the_numbers_and_stop_saves(tiny_model_dir, data, tmp_path):
    """MLX on CPU does not raise at a limit of 1 MB (it allocated 134 MB past it when tried):
    the run itself pauses, once, and the stop's save keeps the step reached."""
    rec = Recorder()
    pauses: list[ev.TrainPaused] = []

    def on_pause(engine: Engine, e: ev.TrainPaused) -> None:
        pauses.append(e)
        engine.resume() if len(pauses) == 1 and e.iteration < 3 else engine.stop()

    rec.on_pause = on_pause
    # 4 steps: each step after the continue is past the limit again, and none pauses
    result, rec = train(config(tiny_model_dir, data, tmp_path / "runs", memory_limit="1MB", iters=4), rec)
    assert [p.reason for p in pauses] == ["memory_limit"], "a continue accepts the limit: no second pause"
    msg = pauses[0].message
    assert msg.startswith("MLX's peak memory ") and "is past memory_limit 1MB (0.001 GB" in msg
    assert "treats the limit as a guideline" in msg
    assert result.status == "completed" and result.final_iteration == 4

    # headless: nobody continues, so the run stops there and saves what it reached
    from mlxtui.pipeline import TrainPipeline

    stopped = TrainPipeline(config(tiny_model_dir, data, tmp_path / "runs2", memory_limit="1MB")).execute()
    assert stopped.status == "stopped" and stopped.final_iteration == 1
    state = json.loads((Path(stopped.run_dir) / "state" / "state.json").read_text())
    assert state["iteration"] == 1 and state["status"] == "stopped"


def test_an_allocation_failure_names_the_numbers_and_the_intact_checkpoint(
    tiny_model_dir, data, tmp_path, monkeypatch
):
    """MLX raises this on Metal; on CPU a failed allocation kills the process (rc 139, seen
    here), so the error is injected where the step's batch is made."""
    from mlxtui.core.training.batches import BatchPlan

    real = BatchPlan.make_batch
    calls = {"n": 0}

    def make_batch(self: Any, indices: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == 6:
            raise RuntimeError("[metal::malloc] Attempting to allocate 137438953472 bytes which is "
                               "greater than the maximum allowed buffer size of 77309411328 bytes.")
        return real(self, indices)

    monkeypatch.setattr(BatchPlan, "make_batch", make_batch)
    with pytest.raises(EngineError) as err:
        train(config(tiny_model_dir, data, tmp_path / "runs"))
    text = str(err.value)
    assert text.startswith("out of memory during step 6: [metal::malloc] Attempting to allocate")
    assert "MLX peak " in text and "GB up to step 5" in text
    assert "the last checkpoint, of step 4, is intact in " in text
    assert "--batch-size N` (smaller)" in err.value.hint
    run = next((tmp_path / "runs").iterdir())
    assert json.loads((run / "state" / "state.json").read_text())["iteration"] == 4
    loads_in_mlxtui_and_mlx_lm(tiny_model_dir, run / "adapters")


# ------------------------------------------------------------------ SIGHUP, SIGTERM


def test_headless_sighup_and_sigterm_save_the_adapter_then_exit(tiny_model_dir, data, tmp_path):
    """Each signal to a headless run of its own. The two runs go side by side: each waits mostly
    on its own process, so together they take about one run's time on two cores."""
    procs: dict[signal.Signals, tuple[Path, subprocess.Popen[str]]] = {}
    try:
        for sig in (signal.SIGHUP, signal.SIGTERM):
            where = tmp_path / sig.name
            procs[sig] = where, cli_train(tiny_model_dir, data, where / "runs", "--iters", "100000",
                                          "--save-every", "1000", "--adapter-path", str(where / "ad"))
        for sig, (_, proc) in procs.items():
            wait_for(proc, "step 3/")
            if sig == signal.SIGHUP:
                # SSH closed: the terminal is gone with the signal, so every later write fails
                assert proc.stdout is not None and proc.stderr is not None
                proc.stdout.close()
                proc.stderr.close()
            proc.send_signal(sig)
        codes = {sig: proc.wait(timeout=240) for sig, (_, proc) in procs.items()}
    finally:
        for _, proc in procs.values():
            proc.kill()
    for sig, (where, _) in procs.items():
        run = next((where / "runs").iterdir())
        state = json.loads((run / "state" / "state.json").read_text())
        assert state["status"] == "stopped" and state["iteration"] >= 3, (sig.name, state)
        saved = (run / "adapters" / "adapters.safetensors").read_bytes()
        assert (where / "ad" / "adapters.safetensors").read_bytes() == saved, sig.name
        loads_in_mlxtui_and_mlx_lm(tiny_model_dir, where / "ad")
        assert codes[sig] in (130, 1), (sig.name, codes[sig])  # stopped by a signal, never a crash


# ------------------------------------------------------------------ the dataset under a run


def test_dataset_changed_and_deleted_during_training_goes_on_and_says_so(tiny_model_dir, data, tmp_path):
    import shutil

    mine = tmp_path / "data"
    shutil.copytree(data, mine)
    straight, _ = train(config(tiny_model_dir, mine, tmp_path / "runs1"))
    rec = Recorder()

    def record(e: ev.Event) -> None:
        if isinstance(e, ev.TrainStep) and e.iteration == 3:
            with open(mine / "train.jsonl", "a", encoding="utf-8") as f:
                f.write('{"text": "added while training"}\n')
            (mine / "valid.jsonl").unlink()
        rec(e)

    engine = Engine(record)
    engine.start()
    try:
        result = engine.run_sync(Train(config(tiny_model_dir, mine, tmp_path / "runs2")), timeout=600)
    finally:
        engine.shutdown()
    assert result.status == "completed" and result.final_iteration == 8
    warnings = rec.logs("warning")
    assert any(f"{mine / 'train.jsonl'} changed on disk during training; this run goes on with the examples "
               "it loaded" in w for w in warnings), warnings
    assert any(f"{mine / 'valid.jsonl'} was deleted during training" in w for w in warnings), warnings
    assert sum("during training" in w for w in warnings) == 2, "each file is reported once"
    assert result.train_losses == straight.train_losses, "the loaded copy is what trains"


def test_adapter_path_naming_another_runs_adapters_is_refused(tiny_model_dir, data, tmp_path):
    first, _ = train(config(tiny_model_dir, data, tmp_path / "runs", iters=2))
    theirs = Path(first.adapter_path)
    before = {p.name: p.read_bytes() for p in theirs.iterdir()}
    with pytest.raises(EngineError, match=r"is the adapters folder of the run .*--resume"):
        train(config(tiny_model_dir, data, tmp_path / "runs", adapter_path=str(theirs)))
    assert {p.name: p.read_bytes() for p in theirs.iterdir()} == before
