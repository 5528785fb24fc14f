"""The trainer, with real MLX on the tiny test model: everything mlx_lm.lora does, plus control."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
from demo_slice import demo_slice
from run_folders import Recorder, run_config, train

from mlxtui.core import events as ev
from mlxtui.core.config import ConfigError, TrainConfig, load_config
from mlxtui.core.engine import Engine, EngineError


@pytest.fixture(scope="module")
def small_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """48/8/8 examples of the demo dataset: enough to train, quick to tokenize."""
    return demo_slice(tmp_path_factory.mktemp("small_data"), train=48, valid=8, test=8)


def base_config(model: Path, data: Path, runs: Path, **kw: Any) -> TrainConfig:
    """run_folders' short run, 12 steps long: reports every 4, validation and saves every 6."""
    return run_config(model, data, runs, **({"iters": 12, "steps_per_report": 4, "steps_per_eval": 6,
                                              "save_every": 6} | kw))


def losses(rec: Recorder) -> dict[int, float]:
    return {e.iteration: e.loss for e in rec.of(ev.TrainStep)}


# ------------------------------------------------------------------ basics


def test_engine_trains_loss_falls_and_events_arrive_in_order(tiny_model_dir, small_data, tmp_path):
    cfg = base_config(tiny_model_dir, small_data, tmp_path, iters=24, learning_rate=3e-3)
    result, rec = train(cfg)
    assert result.status == "completed"
    steps = [e.iteration for e in rec.of(ev.TrainStep)]
    assert steps == list(range(1, 25))
    ls = [e.loss for e in rec.of(ev.TrainStep)]
    assert sum(ls[-4:]) / 4 < sum(ls[:4]) / 4 - 0.05
    kinds = [type(e).__name__ for e in rec.events if not isinstance(e, ev.MemorySampled | ev.JobProgress | ev.Log)]
    assert kinds[0] == "JobStarted"
    assert kinds.index("ModelLoaded") < kinds.index("TrainStarted") < kinds.index("TrainStep")
    assert kinds[-2:] == ["TrainFinished", "JobFinished"]
    # validation at step 0, every 6 steps and at the end; reports every 4 steps
    assert [e.iteration for e in rec.of(ev.ValReport)] == [0, 6, 12, 18, 24]
    assert [e.iteration for e in rec.of(ev.TrainReport)] == [4, 8, 12, 16, 20, 24]
    run = Path(result.run_dir)
    adapters = run / "adapters"
    for name in ("adapters.safetensors", "adapter_config.json", "best_adapters.safetensors", "0000006_adapters.safetensors"):
        assert (adapters / name).is_file(), name
    assert (run / "config.yaml").is_file() and (run / "state" / "optimizer.safetensors").is_file()
    metrics = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert {"start", "train", "val", "checkpoint", "finished"} <= {m["event"] for m in metrics}


def test_stop_ends_at_next_step_and_adapter_reloads_in_mlx_lm(tiny_model_dir, small_data, tmp_path):
    def stop_at_3(engine: Engine, e: ev.TrainStep) -> None:
        if e.iteration == 3:
            engine.stop()

    cfg = base_config(tiny_model_dir, small_data, tmp_path, iters=50)
    result, rec = train(cfg, Recorder(stop_at_3))
    assert result.status == "stopped"
    assert result.final_iteration == 3
    assert rec.of(ev.TrainFinished)[0].status == "stopped"
    adapter_dir = Path(result.adapter_path)
    assert (adapter_dir / "adapters.safetensors").is_file()

    from mlx_lm import generate, load

    model, tok = load(str(tiny_model_dir), adapter_path=str(adapter_dir))
    text = generate(model, tok, "hello", max_tokens=4, verbose=False)
    assert isinstance(text, str)


def test_pause_and_continue_keep_the_run_exact(tiny_model_dir, small_data, tmp_path):
    straight, _ = train(base_config(tiny_model_dir, small_data, tmp_path / "a", iters=8))

    def pause_at_3(engine: Engine, e: ev.TrainStep) -> None:
        if e.iteration == 3:
            engine.pause()

    rec = Recorder(pause_at_3)
    rec.on_pause = lambda engine, e: threading.Timer(0.3, engine.resume).start()
    paused, rec = train(base_config(tiny_model_dir, small_data, tmp_path / "b", iters=8), rec)
    assert [e.iteration for e in rec.of(ev.TrainPaused)] == [3]
    assert rec.of(ev.TrainPaused)[0].reason == "user"
    assert len(rec.of(ev.TrainResumed)) == 1
    assert paused.status == "completed"
    for (i, a), (j, b) in zip(straight.train_losses, paused.train_losses, strict=True):
        assert i == j and abs(a - b) < 1e-5


@pytest.mark.parametrize("dropout", [0.0, 0.1])
def test_exact_resume_matches_a_straight_run(tiny_model_dir, small_data, tmp_path, dropout):
    lora = {"rank": 4, "scale": 10.0, "dropout": dropout}
    # 14 steps, stopped at 5 (no periodic save there: the stop's own save is what resumes); the
    # resumed part crosses a save and validation (steps 6, 12) and an epoch's end (48 examples:
    # 12 batches of 4), where the order is drawn again
    straight, _ = train(base_config(tiny_model_dir, small_data, tmp_path / "s", iters=14, lora_parameters=lora))

    def stop_at_5(engine: Engine, e: ev.TrainStep) -> None:
        if e.iteration == 5:
            engine.stop()

    first, _ = train(base_config(tiny_model_dir, small_data, tmp_path / "r", iters=14, lora_parameters=lora), Recorder(stop_at_5))
    assert first.final_iteration == 5
    state = json.loads((Path(first.run_dir) / "state" / "state.json").read_text())
    assert state["iteration"] == 5
    second, rec = train(
        base_config(tiny_model_dir, small_data, tmp_path / "r", iters=14, lora_parameters=lora, resume_run=str(first.run_dir))
    )
    assert rec.of(ev.TrainStarted)[0].start_iter == 5
    assert second.status == "completed" and second.final_iteration == 14
    resumed = dict(first.train_losses) | dict(second.train_losses)
    for it, loss in straight.train_losses:
        assert abs(resumed[it] - loss) < 1e-5, (it, resumed[it], loss)


def test_resume_continues_the_lr_schedule(tiny_model_dir, small_data, tmp_path):
    sched = {"name": "cosine_decay", "arguments": [1e-3, 12], "warmup": 3, "warmup_init": 0.0}
    straight, rec_s = train(base_config(tiny_model_dir, small_data, tmp_path / "s", lr_schedule=sched))

    def stop_at_5(engine: Engine, e: ev.TrainStep) -> None:
        if e.iteration == 5:
            engine.stop()

    first, rec1 = train(base_config(tiny_model_dir, small_data, tmp_path / "r", lr_schedule=sched), Recorder(stop_at_5))
    _, rec2 = train(base_config(tiny_model_dir, small_data, tmp_path / "r", lr_schedule=sched, resume_run=first.run_dir))
    lr_straight = {e.iteration: e.learning_rate for e in rec_s.of(ev.TrainStep)}
    lr_resumed = {e.iteration: e.learning_rate for e in rec1.of(ev.TrainStep) + rec2.of(ev.TrainStep)}
    assert lr_straight == pytest.approx(lr_resumed, rel=1e-6)
    assert lr_straight[1] < lr_straight[3]  # warmup
    assert lr_straight[12] < lr_straight[4]  # cosine decay


def test_resume_of_a_folder_without_state_is_a_clear_error(tiny_model_dir, small_data, tmp_path):
    with pytest.raises(EngineError, match="no resume state"):
        train(base_config(tiny_model_dir, small_data, tmp_path, resume_run=str(tmp_path)))


def test_resume_adapter_file_starts_from_those_weights(tiny_model_dir, small_data, tmp_path):
    first, _ = train(base_config(tiny_model_dir, small_data, tmp_path / "a", iters=12))
    adapter = Path(first.adapter_path) / "adapters.safetensors"
    _, rec = train(base_config(tiny_model_dir, small_data, tmp_path / "b", iters=2, resume_adapter_file=str(adapter)))
    start_val = rec.of(ev.ValReport)[0]
    assert start_val.iteration == 0
    assert start_val.val_loss == pytest.approx(first.val_losses[-1][1], abs=1e-4)


# ------------------------------------------------------------------ best, early stopping, NaN


def test_best_checkpoint_and_early_stopping(tiny_model_dir, small_data, tmp_path):
    # lr 0: the validation loss never improves, so patience 2 stops at the second eval after 0.
    cfg = base_config(
        tiny_model_dir, small_data, tmp_path, iters=40, learning_rate=0.0, steps_per_eval=2, early_stopping_patience=2
    )
    result, rec = train(cfg)
    assert result.status == "early_stopped"
    assert result.final_iteration == 4
    assert "early stopping" in result.message

    cfg = base_config(tiny_model_dir, small_data, tmp_path / "b", iters=12, learning_rate=3e-3, steps_per_eval=4)
    result, rec = train(cfg)
    best = [e for e in rec.of(ev.CheckpointSaved) if e.kind == "best"]
    assert best, "an improving run saves best_adapters.safetensors"
    vals = dict(result.val_losses)
    assert result.best_iteration == min((it for it in vals if it > 0), key=lambda it: vals[it])


def test_nan_loss_pauses_and_never_overwrites_a_good_checkpoint(tiny_model_dir, small_data, tmp_path):
    import mlx.core as mx

    rec = Recorder()

    def on_pause(engine: Engine, e: ev.TrainPaused) -> None:
        if e.reason == "nan":
            engine.stop()

    rec.on_pause = on_pause
    # phase 1 trains sanely and saves at step 4; phase 2's absurd rate blows the loss up
    cfg = base_config(tiny_model_dir, small_data, tmp_path, iters=30, save_every=4, lr_phases="4:1e-3,26:1e12", optimizer="sgd")
    result, rec = train(cfg, rec)
    paused = rec.of(ev.TrainPaused)
    assert paused and paused[0].reason == "nan"
    assert "not be overwritten" in paused[0].message
    assert result.status == "stopped"
    for name in ("adapters.safetensors", "0000004_adapters.safetensors"):
        weights = mx.load(str(Path(result.adapter_path) / name))
        assert all(bool(mx.all(mx.isfinite(w)).item()) for w in weights.values()), name
    assert not math.isfinite(rec.of(ev.TrainStep)[-1].loss)


# ------------------------------------------------------------------ methods


@pytest.mark.parametrize("method", ["lora", "dora", "full"])
def test_each_fine_tune_type_trains(tiny_model_dir, small_data, tmp_path, method):
    lr = 1e-4 if method == "full" else 3e-3
    result, rec = train(base_config(tiny_model_dir, small_data, tmp_path, iters=8, fine_tune_type=method, learning_rate=lr))
    assert result.status == "completed"
    started = rec.of(ev.TrainStarted)[0]
    assert started.fine_tune_type == method
    if method == "full":
        assert started.trainable_parameters > 50_000  # two whole blocks, not rank-8 adapters
    cfg = json.loads((Path(result.adapter_path) / "adapter_config.json").read_text())
    assert cfg["fine_tune_type"] == method
    from mlx_lm import load

    load(str(tiny_model_dir), adapter_path=str(result.adapter_path))


@pytest.mark.parametrize("dequantize", ["no", "yes"])
def test_qlora_on_a_quantized_base(tiny_quant_model_dir, small_data, tmp_path, dequantize):
    result, rec = train(base_config(tiny_quant_model_dir, small_data, tmp_path, iters=6, dequantize=dequantize))
    assert result.status == "completed"
    loaded = rec.of(ev.ModelLoaded)[0]
    # "no" trains LoRA on the 4-bit base itself (QLoRA); "yes" on a float copy of it
    assert loaded.dequantized == (dequantize == "yes")
    assert loaded.quantization_bits == (None if dequantize == "yes" else 4)


def test_learning_rate_phases_are_followed(tiny_model_dir, small_data, tmp_path):
    _, rec = train(base_config(tiny_model_dir, small_data, tmp_path, iters=1, lr_phases="3:1e-3,3:1e-4,2:1e-5"))
    lrs = [e.learning_rate for e in rec.of(ev.TrainStep)]
    assert len(lrs) == 8  # phases define the length
    assert lrs[:3] == pytest.approx([1e-3] * 3) and lrs[3:6] == pytest.approx([1e-4] * 3)
    assert lrs[6:] == pytest.approx([1e-5] * 2)


def test_epochs_set_the_iterations(tiny_model_dir, small_data, tmp_path):
    result, _ = train(base_config(tiny_model_dir, small_data, tmp_path, epochs=1, batch_size=8))
    assert result.total_iters == 6  # ceil(48 / 8)


def test_test_set_loss_and_perplexity(tiny_model_dir, small_data, tmp_path):
    result, rec = train(base_config(tiny_model_dir, small_data, tmp_path, iters=4, test=True))
    t = rec.of(ev.TestResult)[0]
    assert t.test_loss > 0 and t.test_ppl == pytest.approx(math.exp(t.test_loss), rel=1e-5)
    assert result.test_loss == t.test_loss


def test_bad_inputs_fail_with_clear_messages(tiny_model_dir, small_data, tmp_path):
    with pytest.raises(EngineError, match="is not a folder"):
        train(base_config(tiny_model_dir, tmp_path / "nope", tmp_path))
    rec = Recorder()
    with pytest.raises(EngineError, match="16 were asked|at most 4"):
        train(base_config(tiny_model_dir, small_data, tmp_path, num_layers=16), rec)
    # the typed error travels with the event: each front end names the setting its own way
    (failed,) = rec.of(ev.JobFailed)
    assert isinstance(failed.error, ConfigError) and failed.error.field == "num_layers"
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "train.jsonl").write_text('{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]}\n{oops\n')
    with pytest.raises(EngineError, match=r"train.jsonl:2"):
        train(base_config(tiny_model_dir, bad, tmp_path, batch_size=1))


# ------------------------------------------------------------------ YAML compatibility


def test_saved_yaml_runs_in_mlx_lm_lora_and_reloads_here(tiny_model_dir, small_data, tmp_path):
    result, _ = train(base_config(tiny_model_dir, small_data, tmp_path, iters=2, lr_schedule={"name": "cosine_decay", "arguments": [1e-3, 2]}))
    saved = Path(result.run_dir) / "config.yaml"
    again = load_config(saved)
    assert again.model == str(tiny_model_dir) and again.iters == 2
    out = tmp_path / "mlx_lm_adapters"
    proc = subprocess.run(
        [sys.executable, "-m", "mlx_lm", "lora", "--config", str(saved), "--iters", "2", "--adapter-path", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert (out / "adapters.safetensors").is_file()


def test_every_mlx_lm_yaml_key_loads_and_unknown_keys_are_named(tmp_path):
    full = tmp_path / "lora_config.yaml"
    full.write_text(
        """
model: "mlx-community/Llama-3.2-1B-Instruct-4bit"
train: true
fine_tune_type: lora
optimizer: adamw
optimizer_config:
  adamw:
    betas: [0.9, 0.98]
    eps: 1e-6
    weight_decay: 0.05
data: "/tmp/data"
seed: 0
num_layers: 8
batch_size: 4
iters: 1000
val_batches: 25
learning_rate: 1e-5
steps_per_report: 10
steps_per_eval: 200
resume_adapter_file: null
adapter_path: "adapters"
save_every: 100
test: false
test_batches: 100
max_seq_length: 2048
grad_checkpoint: false
grad_accumulation_steps: 2
clear_cache_threshold: 0
mask_prompt: true
report_to: null
project_name: null
trust_remote_code: false
lora_parameters:
  keys: ["self_attn.q_proj", "self_attn.v_proj"]
  rank: 8
  scale: 20.0
  dropout: 0.0
lr_schedule:
  name: cosine_decay
  warmup: 100
  warmup_init: 1e-7
  arguments: [1e-5, 1000, 1e-7]
prompt_feature: input
completion_feature: output
"""
    )
    cfg = load_config(full)
    assert cfg.learning_rate == 1e-5 and isinstance(cfg.learning_rate, float)
    assert cfg.lora_parameters["keys"] == ["self_attn.q_proj", "self_attn.v_proj"]
    assert cfg.optimizer_config["adamw"]["weight_decay"] == 0.05
    assert cfg.lr_schedule["warmup"] == 100
    typo = tmp_path / "typo.yaml"
    typo.write_text("model: x\nlearnig_rate: 1e-4\n")
    with pytest.raises(ConfigError, match="unknown key 'learnig_rate'.*did you mean 'learning_rate'"):
        load_config(typo)
    broken = tmp_path / "broken.yaml"
    broken.write_text("model: x\n  iters: [1,\n")
    with pytest.raises(ConfigError, match=r"broken.yaml:\d+:\d+: invalid YAML"):
        load_config(broken)
    with pytest.raises(ConfigError, match="no such config file"):
        load_config(tmp_path / "missing.yaml")


def test_examples_longer_than_max_seq_length_are_a_warning_not_an_error(tiny_model_dir, small_data, tmp_path):
    result, rec = train(base_config(tiny_model_dir, small_data, tmp_path, iters=2, max_seq_length=64))
    assert result.status == "completed"
    warnings = [e.message for e in rec.of(ev.Log) if e.level == "warning"]
    assert any("longer than max_seq_length 64" in w and "truncated" in w for w in warnings)


def test_resume_with_a_different_layout_is_refused_not_silently_mixed(tiny_model_dir, small_data, tmp_path):
    def stop_at_2(engine: Engine, e: ev.TrainStep) -> None:
        if e.iteration == 2:
            engine.stop()

    first, _ = train(base_config(tiny_model_dir, small_data, tmp_path, iters=8, num_layers=2), Recorder(stop_at_2))
    with pytest.raises(EngineError, match="does not fit this configuration"):
        train(base_config(tiny_model_dir, small_data, tmp_path, iters=8, num_layers=4, resume_run=str(first.run_dir)))
