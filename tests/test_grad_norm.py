"""The gradient's norm, measured inside mlx-lm's compiled step, on the real tiny model."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from run_folders import train
from test_training import base_config, small_data  # noqa: F401  (small_data: the module fixture)

from mlxtui.core import events as ev
from mlxtui.core.config import ConfigError, TrainConfig, validate_field


def hand_grad_norm_of_step_1(cfg: TrainConfig) -> tuple[float, float, dict[str, Any]]:
    """(loss, global gradient norm, initial trainable weights) of step 1, computed outside the
    trainer the way it runs it."""
    import mlx.core as mx
    import mlx.nn as nn
    from mlx.utils import tree_flatten
    from mlx_lm import load
    from mlx_lm.tuner.trainer import default_loss

    from mlxtui.core.training import BatchPlan, apply_adapters, load_datasets

    model, tokenizer = load(str(cfg.model))
    mx.random.seed(cfg.seed)
    np.random.seed(cfg.seed)
    apply_adapters(model, cfg)
    initial = {k: np.array(v) for k, v in tree_flatten(model.trainable_parameters())}
    train_set, _, _ = load_datasets(cfg, Path(str(cfg.data)), tokenizer)
    plan = BatchPlan(train_set, cfg.batch_size, cfg.max_seq_length, cfg.seed)
    batch = plan.make_batch(plan.batch_indices(0))
    mx.random.seed((cfg.seed * 1_000_003) % 2**32)
    model.train()
    (loss, _toks), grads = nn.value_and_grad(model, default_loss)(model, *batch)
    squares = sum(
        float(np.sum(np.asarray(g, dtype=np.float64) ** 2)) for _, g in tree_flatten(grads)
    )
    return float(loss.item()), math.sqrt(squares), initial


def test_grad_norm_is_measured_every_step_and_matches_a_hand_computation(
    tiny_model_dir,
    small_data,  # noqa: F811
    tmp_path,
):
    cfg = base_config(
        tiny_model_dir, small_data, tmp_path, iters=6, steps_per_report=2, steps_per_eval=100
    )
    result, rec = train(cfg)
    steps = rec.of(ev.TrainStep)
    norms = [s.grad_norm for s in steps]
    assert all(n is not None and math.isfinite(n) and n > 0 for n in norms), norms
    assert len(set(norms)) == len(norms), f"the norm must change step to step: {norms}"
    loss_1, norm_1, _ = hand_grad_norm_of_step_1(cfg)
    assert steps[0].loss == pytest.approx(loss_1, rel=1e-5)  # the same batch and weights
    assert steps[0].grad_norm == pytest.approx(norm_1, rel=1e-4)
    reports = rec.of(ev.TrainReport)
    assert reports[0].grad_norm == pytest.approx((norms[0] + norms[1]) / 2, rel=1e-6)
    lines = [json.loads(x) for x in (result.run_dir / "metrics.jsonl").read_text().splitlines()]
    logged = [x["grad_norm"] for x in lines if x["event"] == "train"]
    assert logged == pytest.approx([r.grad_norm for r in reports])


def test_with_accumulation_the_norm_comes_with_each_update(tiny_model_dir, small_data, tmp_path):  # noqa: F811
    cfg = base_config(
        tiny_model_dir, small_data, tmp_path, iters=6, grad_accumulation_steps=2, steps_per_eval=100
    )
    _, rec = train(cfg)
    norms = {s.iteration: s.grad_norm for s in rec.of(ev.TrainStep)}
    assert [it for it, n in norms.items() if n is not None] == [2, 4, 6], norms
    assert all(math.isfinite(norms[it]) for it in (2, 4, 6))  # type: ignore[arg-type]


def test_clipping_caps_the_update(tiny_model_dir, small_data, tmp_path):  # noqa: F811
    """Plain SGD moves the weights by lr x the gradient: clipped, by lr x max_grad_norm exactly."""
    import mlx.core as mx

    cfg = base_config(
        tiny_model_dir,
        small_data,
        tmp_path,
        iters=1,
        steps_per_eval=100,
        optimizer="sgd",
        learning_rate=0.5,
    )
    _, norm_1, initial = hand_grad_norm_of_step_1(cfg)
    clip = norm_1 / 10
    result, rec = train(cfg.with_values(max_grad_norm=clip))
    # The norm is reported before clipping.
    assert rec.of(ev.TrainStep)[0].grad_norm == pytest.approx(norm_1, rel=1e-4)
    after = mx.load(str(result.adapter_path / "adapters.safetensors"))
    moved = math.sqrt(
        sum(
            float(
                np.sum((np.asarray(after[k], np.float64) - np.asarray(initial[k], np.float64)) ** 2)
            )
            for k in initial
        )
    )
    assert moved == pytest.approx(0.5 * clip, rel=1e-3)


def test_max_grad_norm_must_be_above_zero():
    assert validate_field("max_grad_norm", "")[0] is None
    assert validate_field("max_grad_norm", "1.5") == (1.5, None)
    assert "above 0" in (validate_field("max_grad_norm", "0")[1] or "")
    with pytest.raises(ConfigError, match="max_grad_norm"):
        TrainConfig(max_grad_norm=-1.0).validate()
