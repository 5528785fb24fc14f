"""Quantized base layers multiplied as float ones (core/training/dequant_matmul.py) compute what
MLX's quantized kernel computes, only while the run lasts, and only for many rows."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import mlx.core as mx
import mlx.nn as nn
import numpy as np
import pytest
from mlx.utils import tree_flatten

from mlxtui.core.training import dequant_matmul
from mlxtui.core.training.dequant_matmul import MIN_ROWS, float_matmuls


def _quant_lora_model(model_dir: Path) -> Any:
    from mlx_lm import load
    from mlx_lm.tuner.lora import LoRALinear
    from mlx_lm.tuner.utils import linear_to_lora_layers

    model, _ = load(str(model_dir))
    model.freeze()
    mx.random.seed(0)
    linear_to_lora_layers(model, 2, {"rank": 4, "scale": 10.0, "dropout": 0.0})
    mx.random.seed(1)
    for _, m in model.named_modules():
        if isinstance(m, LoRALinear):
            m.lora_b = mx.random.normal(m.lora_b.shape) * 0.05
    return model


def _loss_and_grads(model: Any) -> tuple[float, dict[str, np.ndarray]]:
    from mlxtui.core.training.batches import collate
    from mlxtui.core.training.loss import train_loss

    rng = np.random.default_rng(0)
    items = [([int(x) for x in rng.integers(1, 500, n)], 0) for n in (50, 70, 33)]
    batch, lengths = collate(items, 2048, 32)
    (loss, _), grads = nn.value_and_grad(model, train_loss)(model, batch, lengths)
    return loss.item(), {k: np.array(v) for k, v in tree_flatten(grads)}


def _quantized_kinds(model: Any) -> list[type]:
    return [
        type(m)
        for _, m in model.named_modules()
        if isinstance(m, (nn.QuantizedLinear, nn.QuantizedEmbedding))
    ]


def test_the_float_path_gives_the_quantized_kernels_loss_and_gradients(tiny_quant_model_dir):
    model = _quant_lora_model(tiny_quant_model_dir)
    before = _quantized_kinds(model)
    assert nn.QuantizedEmbedding in before and nn.QuantizedLinear in before  # tied head, 4-bit
    want_loss, want = _loss_and_grads(model)
    with float_matmuls(model, enabled=True) as switched:
        assert switched == len(before)
        assert {type(m).__name__ for _, m in model.named_modules()} >= {
            "_FloatQuantizedLinear",
            "_FloatQuantizedEmbedding",
        }
        got_loss, got = _loss_and_grads(model)
    assert _quantized_kinds(model) == before  # every class put back
    assert got_loss == pytest.approx(want_loss, rel=1e-5)
    assert got.keys() == want.keys() and len(got) == 4 * 7  # lora_a and lora_b of 2 x 7 layers
    for k, v in want.items():
        assert np.linalg.norm(got[k] - v) <= 1e-4 * np.linalg.norm(v), k


def test_few_rows_keep_the_quantized_kernel(tiny_quant_model_dir):
    from mlx_lm import load

    model, _ = load(str(tiny_quant_model_dir))
    layer = model.layers[0].self_attn.q_proj
    calls: list[int] = []
    original = mx.quantized_matmul

    def counting(*a: Any, **k: Any) -> Any:
        calls.append(a[0].shape[-2] if a[0].ndim > 1 else 1)
        return original(*a, **k)

    x = mx.random.normal((1, MIN_ROWS - 1, layer.weight.shape[1] * 32 // layer.bits))
    with float_matmuls(model, enabled=True), pytest.MonkeyPatch.context() as mp:
        mp.setattr(mx, "quantized_matmul", counting)
        few = layer(x)
        many = layer(mx.concatenate([x, x[:, :1]], axis=1))
    assert calls == [MIN_ROWS - 1]  # only the short call reached the quantized kernel
    assert mx.array_equal(
        few,
        original(
            x,
            layer.weight,
            layer.scales,
            layer.biases,
            transpose=True,
            group_size=layer.group_size,
            bits=layer.bits,
        ),
    ).item()
    assert np.allclose(np.array(many[:, :-1]), np.array(few), rtol=1e-5, atol=1e-5)


def test_off_unless_asked_on_the_cpu(tiny_quant_model_dir):
    from mlx_lm import load

    model, _ = load(str(tiny_quant_model_dir))
    assert not dequant_matmul.wanted()  # the CPU back-end: the base is dequantized at load instead
    with float_matmuls(model) as switched:
        assert switched == 0
        assert nn.QuantizedLinear in _quantized_kinds(model)


@pytest.fixture(scope="module")
def small_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from mlxtui.demo_data import demo_data_dir

    out = tmp_path_factory.mktemp("small_data")
    for name, n in (("train", 16), ("valid", 4)):
        lines = (demo_data_dir() / f"{name}.jsonl").read_text(encoding="utf-8").splitlines()[:n]
        (out / f"{name}.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return out


def test_a_qlora_run_trains_the_same_through_the_float_path(
    tiny_quant_model_dir, small_data, tmp_path, monkeypatch
):
    """The trainer switches the layers for its steps (forced on here, as on a CUDA GPU) and the
    per-step losses and adapter equal those of the quantized kernel's run."""
    from mlxtui import TrainConfig, TrainPipeline

    def run(name: str) -> Any:
        cfg = TrainConfig().with_values(
            model=str(tiny_quant_model_dir), data=str(small_data), runs_dir=str(tmp_path / name),
            num_layers=2, batch_size=4, iters=4, learning_rate=1e-3, steps_per_report=2,
            steps_per_eval=100, save_every=100, val_batches=1, max_seq_length=128,
            sample_prompts=0, memory_guard="off", dequantize="no",
        )  # fmt: skip
        return TrainPipeline(cfg).execute()

    counts: list[int] = []
    original = dequant_matmul.float_matmuls

    def recording(model: Any, enabled: bool | None = None) -> Any:
        cm = original(model, enabled=True)

        class Wrap:
            def __enter__(self) -> int:
                n = cm.__enter__()
                counts.append(n)
                return n

            def __exit__(self, *exc: Any) -> Any:
                return cm.__exit__(*exc)

        return Wrap()

    monkeypatch.setattr(dequant_matmul, "float_matmuls", recording)
    floated = run("float")
    assert counts and counts[0] > 0
    monkeypatch.setattr(dequant_matmul, "float_matmuls", original)
    quantized = run("quantized")
    assert (
        [i for i, _ in floated.train_losses]
        == [i for i, _ in quantized.train_losses]
        == [1, 2, 3, 4]
    )
    for (_, got), (_, want) in zip(floated.train_losses, quantized.train_losses, strict=True):
        assert got == pytest.approx(want, rel=1e-4)
    a = mx.load(str(Path(floated.adapter_path) / "adapters.safetensors"))
    b = mx.load(str(Path(quantized.adapter_path) / "adapters.safetensors"))
    assert a.keys() == b.keys()
    for k, v in b.items():
        assert np.linalg.norm(np.array(a[k]) - np.array(v)) <= 1e-3 * np.linalg.norm(np.array(v)), k


def test_the_estimate_counts_the_float_copies_where_the_float_path_runs(
    tiny_quant_model_dir, tiny_model_dir
):
    from dataclasses import replace

    from mlx_lm import load

    from mlxtui.core.estimate import EstimateInputs, estimate_peak, profile_model

    key = "float copies of the 4-bit base"
    quant = profile_model(load(str(tiny_quant_model_dir))[0])
    assert not quant.float_matmuls  # the CPU: the quantized kernel (or a float copy at load)
    inputs = EstimateInputs(
        num_layers=2, batch_size=4, token_lengths=(100, 120), max_seq_length=128
    )
    plain = estimate_peak(quant, inputs)
    assert key not in plain.breakdown
    on_cuda = replace(quant, float_matmuls=True)
    ckpt = estimate_peak(on_cuda, replace(inputs, grad_checkpoint=True))
    no_ckpt = estimate_peak(on_cuda, inputs)
    layer = sum(li.in_dims * li.out_dims for li in quant.layer_linears[-1])
    want = 2.5 * (quant.embedding_elems + layer) * quant.dtype_bytes
    assert ckpt.breakdown[key] == int(want)
    assert no_ckpt.breakdown[key] == int(want + 2.5 * 2 * layer * quant.dtype_bytes)
    assert no_ckpt.total_bytes == plain.total_bytes + no_ckpt.breakdown[key]
    float_model = replace(profile_model(load(str(tiny_model_dir))[0]), float_matmuls=True)
    assert key not in estimate_peak(float_model, inputs).breakdown  # nothing to dequantize
