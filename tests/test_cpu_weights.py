"""On the CPU, half-precision weights promoted at every matmul become float32 for a run: the same
loss and gradients, fewer conversions; put back exactly afterwards (cpu_weights.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import mlx.core as mx
import mlx.nn as nn
import numpy as np
import pytest
from mlx.utils import tree_flatten

from mlxtui.core.training.cpu_weights import widen_half_weights


@pytest.fixture(autouse=True)
def _on_the_cpu() -> Any:
    """What is tested is the CPU's rule (on a GPU machine the default device is the GPU)."""
    before = mx.default_device()
    mx.set_default_device(mx.cpu)
    yield
    mx.set_default_device(before)


def _lora_model(tiny_model_dir: Path, matrices: Any, norms: Any) -> Any:
    """The tiny model with its Linear/Embedding weights in `matrices`, its norms in `norms`,
    and LoRA on 2 layers (float32 adapters, as mlx-lm makes them)."""
    from mlx_lm import load
    from mlx_lm.tuner.utils import linear_to_lora_layers

    model, _ = load(str(tiny_model_dir))
    for _, m in model.named_modules():
        if isinstance(m, nn.Linear | nn.Embedding):
            m.weight = m.weight.astype(matrices)
        elif isinstance(m, nn.RMSNorm):
            m.weight = m.weight.astype(norms)
    model.freeze()
    linear_to_lora_layers(model, 2, {"rank": 4, "scale": 10.0, "dropout": 0.0})
    # non-zero B, so that the LoRA path takes part in the loss
    for _, m in model.named_modules():
        if hasattr(m, "lora_b"):
            m.lora_b = mx.random.normal(m.lora_b.shape, key=mx.random.key(1)) * 0.01
    mx.eval(model.parameters())
    return model


def _loss_and_grads(model: Any) -> tuple[float, dict[str, np.ndarray]]:
    from mlx_lm.tuner.trainer import default_loss

    rng = np.random.default_rng(0)
    batch = mx.array(rng.integers(1, 500, (2, 33)).astype(np.int32))
    lengths = mx.array([[0, 33], [4, 20]])
    (loss, _), grads = nn.value_and_grad(model, default_loss)(model, batch, lengths)
    return loss.item(), {k: np.array(v) for k, v in tree_flatten(grads)}


def _dtypes(model: Any) -> dict[str, Any]:
    return {k: v.dtype for k, v in tree_flatten(model.parameters())}


@pytest.mark.parametrize("half", [mx.float16, mx.bfloat16])
def test_a_mixed_model_trains_the_same_in_float32_and_gets_its_weights_back(tiny_model_dir, half):
    model = _lora_model(tiny_model_dir, half, mx.float32)
    before = _dtypes(model)
    stored = {k: np.array(v.astype(mx.float32)) for k, v in tree_flatten(model.parameters())}
    loss, grads = _loss_and_grads(model)

    restore = widen_half_weights(model, "lora")
    assert restore is not None
    assert all(v.dtype == mx.float32 for _, v in tree_flatten(model.parameters()))
    wide_loss, wide_grads = _loss_and_grads(model)
    assert wide_loss == pytest.approx(loss, rel=1e-6, abs=1e-6)
    assert wide_grads.keys() == grads.keys()
    for k, g in grads.items():
        np.testing.assert_allclose(wide_grads[k], g, rtol=1e-5, atol=1e-6, err_msg=k)

    restore()
    assert _dtypes(model) == before
    for k, v in tree_flatten(model.parameters()):
        np.testing.assert_array_equal(np.array(v.astype(mx.float32)), stored[k], err_msg=k)


def test_models_that_compute_in_half_precision_or_train_their_weights_are_left_alone(tiny_model_dir):
    mixed = _lora_model(tiny_model_dir, mx.float16, mx.float32)
    # the GPU multiplies half precision fast: nothing to do there
    mx.set_default_device(mx.gpu if mx.is_available(mx.gpu) else mx.cpu)
    if mx.default_device() == mx.gpu:
        assert widen_half_weights(mixed, "lora") is None
    mx.set_default_device(mx.cpu)
    # every floating parameter half precision (the adapters too): float32 would change numbers
    model = _lora_model(tiny_model_dir, mx.float16, mx.float16)
    model.set_dtype(mx.float16)
    assert widen_half_weights(model, "lora") is None
    # full fine-tuning trains the weights in their own dtype
    assert widen_half_weights(mixed, "full") is None
    # trained arrays are never cast, whatever the run
    for _, m in mixed.named_modules():
        if hasattr(m, "lora_a"):
            m.lora_a = m.lora_a.astype(mx.float16)
    trained = {k for k, _ in tree_flatten(mixed.trainable_parameters())}
    restore = widen_half_weights(mixed, "lora")
    assert restore is not None
    assert {k for k, v in tree_flatten(mixed.parameters()) if v.dtype == mx.float16} == {
        k for k in trained if k.endswith("lora_a")
    }
    restore()
