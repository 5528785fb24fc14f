"""`mlxtui train` parses mlx_lm.lora's flags and the seeds' aliases, and trains headless."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from demo_slice import demo_slice

from mlxtui.cli.main import build_parser, main
from mlxtui.cli.progress import ProgressPrinter
from mlxtui.cli.train import config_from_args
from mlxtui.core.config import TrainConfig, epochs_to_iters


def parse(*argv: str) -> TrainConfig:
    return config_from_args(build_parser().parse_args(["train", *argv]))


def test_mlx_lm_flags_keep_their_names_and_defaults():
    cfg = parse("--model", "m", "--train", "--data", "d", "--iters", "600", "--fine-tune-type", "dora", "--mask-prompt")
    assert (cfg.model, cfg.data, cfg.iters, cfg.fine_tune_type, cfg.mask_prompt) == ("m", "d", 600, "dora", True)
    # unspecified values are mlx_lm.lora's defaults once a model is named
    assert cfg.learning_rate == 1e-5 and cfg.num_layers == 16 and cfg.batch_size == 4 and cfg.save_every == 100
    assert cfg.lora_parameters == {"rank": 8, "dropout": 0.0, "scale": 20.0}
    assert not cfg.grad_checkpoint


def test_no_model_no_data_is_the_quick_start_on_the_demo():
    cfg = parse()
    assert cfg.model is None and cfg.data is None
    assert cfg == TrainConfig.quick_start()
    assert cfg.grad_checkpoint and cfg.learning_rate == 2e-4 and cfg.batch_size == 4


def test_the_seeds_aliases():
    cfg = parse("--model", "m", "--lora-rank", "16", "--lora-alpha", "32", "--lora-dropout", "0.05", "--lora-layers", "4", "--warmup", "10")
    assert cfg.lora_parameters["rank"] == 16
    assert cfg.lora_parameters["scale"] == pytest.approx(2.0)  # scale = alpha / rank
    assert cfg.lora_alpha == pytest.approx(32)
    assert cfg.lora_parameters["dropout"] == 0.05
    assert cfg.num_layers == 4 and cfg.warmup == 10
    cfg = parse("--model", "m", "--epochs", "3")
    assert cfg.epochs == 3 and cfg.resolved_iters(300) == 225 and cfg.resolved_iters(1000) == 750
    assert epochs_to_iters(3, 300, 4) == 225


def test_flags_override_yaml_which_overrides_defaults(tmp_path):
    y = tmp_path / "run.yaml"
    y.write_text("model: m\nbatch_size: 2\nlearning_rate: 3e-4\nlora_parameters:\n  rank: 4\n  scale: 10.0\n")
    cfg = parse("--config", str(y), "--batch-size", "8")
    assert cfg.batch_size == 8 and cfg.learning_rate == 3e-4 and cfg.lora_rank == 4 and cfg.iters == 1000


def test_bad_config_exits_2_with_the_key_named(tmp_path, capsys):
    y = tmp_path / "run.yaml"
    y.write_text("model: m\nbatchsize: 2\n")
    assert main(["train", "--config", str(y)]) == 2
    err = capsys.readouterr().err
    assert "unknown key 'batchsize'" in err and "batch_size" in err


def test_headless_train_writes_a_run_and_prints_progress(tiny_model_dir, tmp_path):
    data = _small_data(tmp_path)
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    proc = subprocess.run(
        [sys.executable, "-m", "mlxtui", "train", "--model", str(tiny_model_dir), "--data", str(data),
         "--iters", "6", "--num-layers", "2", "--steps-per-report", "2", "--steps-per-eval", "3",
         "--val-batches", "1", "--runs-dir", str(tmp_path / "runs"), "--memory-guard", "off"],
        capture_output=True, text=True, timeout=300, env=env,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "step 2/6: train loss" in proc.stdout and "val loss" in proc.stdout
    assert "done: 6/6 steps" in proc.stdout
    run = next((tmp_path / "runs").iterdir())
    assert (run / "adapters" / "adapters.safetensors").is_file()
    cfg = json.loads((run / "adapters" / "adapter_config.json").read_text())
    assert cfg["num_layers"] == 2


def test_failure_exits_non_zero_with_a_clear_line(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "mlxtui", "train", "--model", str(tmp_path / "nope"), "--data", str(tmp_path)],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 1
    assert "mlxtui train:" in proc.stderr and "nope" in proc.stderr


def test_progress_bar_line_on_a_tty():
    from mlxtui.core import events as ev

    out = io.StringIO()
    p = ProgressPrinter(out, tty=True)
    p(ev.TrainStarted("run", 10, 0, 5, 100, "lora"))
    p(ev.TrainStep(10, 10, 1.234, 1e-4, 321.0, 2.0, 1000, 0.5, 12.0))
    text = out.getvalue()
    assert "10/10 loss 1.234" in text and "321 tok/s" in text and "ETA 00:12" in text and "peak 0.50 GB" in text


def _small_data(tmp_path: Path, n_train: int = 16) -> Path:
    return demo_slice(tmp_path / "data", train=n_train, valid=4)


def test_ctrl_c_saves_the_adapter_and_says_how_to_resume(tiny_model_dir, tmp_path):
    import signal
    import time

    data = _small_data(tmp_path)
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    proc = subprocess.Popen(
        [sys.executable, "-m", "mlxtui", "train", "--model", str(tiny_model_dir), "--data", str(data),
         "--iters", "100000", "--num-layers", "2", "--steps-per-report", "1", "--steps-per-eval", "100000",
         "--val-batches", "1", "--runs-dir", str(tmp_path / "runs"), "--memory-guard", "off"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )
    assert proc.stdout is not None
    deadline = time.monotonic() + 240
    for line in proc.stdout:
        if line.startswith("step 3/"):
            break
        assert time.monotonic() < deadline, "training did not start"
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=240)
    assert proc.returncode == 130, err[-2000:]
    assert "Ctrl-C: stopping after step" in err
    assert "saved:" in out and "mlxtui train --resume" in out
    run = next((tmp_path / "runs").iterdir())
    assert (run / "adapters" / "adapters.safetensors").is_file()
    state = json.loads((run / "state" / "state.json").read_text())
    assert state["status"] == "stopped" and state["iteration"] >= 3


def test_python_api_returns_metrics_and_adapter_and_streams_events(tiny_model_dir, tmp_path):
    from mlxtui import TrainConfig, TrainPipeline
    from mlxtui.core import events as ev

    seen: list[ev.Event] = []
    cfg = TrainConfig().with_values(
        model=str(tiny_model_dir), data=str(_small_data(tmp_path)), iters=4, num_layers=2, steps_per_eval=2,
        val_batches=1, runs_dir=str(tmp_path / "runs"), memory_guard="off",
    )
    result = TrainPipeline(cfg, on_event=seen.append).execute()
    assert result.status == "completed" and result.final_iteration == 4
    assert [it for it, _ in result.train_losses] == [1, 2, 3, 4]
    assert [it for it, _ in result.val_losses] == [0, 2, 4]
    assert (Path(result.adapter_path) / "adapters.safetensors").is_file()
    assert any(isinstance(e, ev.TrainFinished) for e in seen)


def test_resume_keeps_the_runs_own_settings_and_flags_still_override(tmp_path):
    from mlxtui.core.config import save_config

    run = tmp_path / "runs" / "20260101-000000-r"
    run.mkdir(parents=True)
    save_config(TrainConfig().with_values(model="m", data="d", num_layers=2, val_batches=1, iters=12), run / "config.yaml")
    cfg = parse("--resume", str(run), "--iters", "20")
    assert cfg.resume_run == str(run)
    assert (cfg.num_layers, cfg.val_batches, cfg.model, cfg.iters) == (2, 1, "m", 20)
    with pytest.raises(Exception, match="no config.yaml"):
        parse("--resume", str(tmp_path))


def test_epochs_and_iters_together_are_refused():
    from mlxtui.core.config import ConfigError

    with pytest.raises(ConfigError, match="both epochs and iters"):
        parse("--model", "m", "--epochs", "1", "--iters", "3")


def test_test_only_needs_a_real_adapter(tiny_model_dir, tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "mlxtui", "train", "--model", str(tiny_model_dir), "--data", str(_small_data(tmp_path)),
         "--test", "--adapter-path", str(tmp_path / "nonexistent")],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 1
    assert "no adapter in" in proc.stderr and "Traceback" not in proc.stderr


def test_a_bad_value_is_worded_with_its_flag_or_its_yaml_key(tmp_path, capsys):
    assert main(["train", "--model", "m", "--batch-size", "0"]) == 2
    assert capsys.readouterr().err.strip() == "mlxtui train: --batch-size: must be from 1 to 4096"
    assert main(["train", "--model", "m", "--lora-layers", "0"]) == 2
    assert "--num-layers: 0 layers trains nothing" in capsys.readouterr().err
    assert main(["train", "--model", "m", "--cache-limit", "lots"]) == 2
    assert "--cache-limit: 'lots' is not a size" in capsys.readouterr().err
    y = tmp_path / "run.yaml"
    y.write_text("model: m\nbatch_size: 0\n")
    assert main(["train", "--config", str(y)]) == 2
    assert capsys.readouterr().err.strip() == f"mlxtui train: {y}: batch_size: must be from 1 to 4096"
