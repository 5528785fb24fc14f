"""The fast LoRA forward (core/training/fast_lora.py) gives mlx-lm's losses, gradients and files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import mlx.core as mx
import mlx.nn as nn
import numpy as np
import pytest
from mlx.utils import tree_flatten

from mlxtui.core.training import fast_lora
from mlxtui.core.training.batches import collate
from mlxtui.core.training.fast_lora import FastLoRALinear, is_fused, speed_up_lora

LORA = {"rank": 4, "scale": 10.0, "dropout": 0.0}


def _batch() -> tuple[Any, Any]:
    rng = np.random.default_rng(0)
    items = [
        ([int(x) for x in rng.integers(1, 500, n)], off) for n, off in ((50, 0), (70, 9), (33, 0))
    ]
    return collate(items, 2048, 32)


def _lora_model(model_dir: Path, dtype: Any = mx.float32, fast: bool = False, **lora: Any) -> Any:
    """The model with mlx-lm's LoRA on its last 2 blocks, B random (it starts at zero, which
    would hide the adapters from the loss and zero A's gradient); the same seed every time."""
    from mlx_lm import load
    from mlx_lm.tuner.lora import LoRALinear
    from mlx_lm.tuner.utils import linear_to_lora_layers

    model, _ = load(str(model_dir))
    if dtype != mx.float32:
        model.set_dtype(dtype)
    model.freeze()
    mx.random.seed(0)
    linear_to_lora_layers(model, 2, {**LORA, **lora})
    mx.random.seed(1)
    for _, m in model.named_modules():
        if isinstance(m, LoRALinear):
            m.lora_b = mx.random.normal(m.lora_b.shape) * 0.05
    if fast:
        speed_up_lora(model)
    return model


def _loss_and_grads(model: Any, seed: int = 2) -> tuple[float, dict[str, np.ndarray]]:
    from mlx_lm.tuner.trainer import default_loss

    mx.random.seed(seed)  # dropout masks, when there is dropout
    (loss, _), grads = nn.value_and_grad(model, default_loss)(model, *_batch())
    return loss.item(), {k: np.array(v.astype(mx.float32)) for k, v in tree_flatten(grads)}


def _rel(got: np.ndarray, want: np.ndarray) -> float:
    return float(np.linalg.norm(got - want) / max(np.linalg.norm(want), 1e-30))


def _shared_calls(model: Any) -> dict[str, int]:
    return {k: m.shared_calls for k, m in model.named_modules() if isinstance(m, FastLoRALinear)}


@pytest.mark.parametrize("quantized", [False, True])
def test_float32_loss_and_gradients_equal_mlx_lm(tiny_model_dir, tiny_quant_model_dir, quantized):
    path = tiny_quant_model_dir if quantized else tiny_model_dir
    plain, fast = _lora_model(path), _lora_model(path, fast=True)
    want, g_want = _loss_and_grads(plain)
    got, g_got = _loss_and_grads(fast)
    assert got == pytest.approx(want, rel=1e-5)
    assert g_got.keys() == g_want.keys() and len(g_want) == 2 * 7 * 2  # 2 blocks x 7 LoRA x A,B
    for k, w in g_want.items():
        assert np.abs(w).max() > 0, k
        assert _rel(g_got[k], w) < 1e-5, k
    # the fused path ran: q/k/v and gate/up took their A products from one matmul per block
    calls = _shared_calls(fast)
    fused = [k for k, n in calls.items() if n > 0]
    assert sorted(fused) == sorted(
        f"model.layers.{i}.{p}" for i in (2, 3)
        for p in ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "mlp.gate_proj", "mlp.up_proj")
    )  # fmt: skip
    assert all(
        is_fused(fast.model.layers[i].self_attn) and is_fused(fast.model.layers[i].mlp)
        for i in (2, 3)
    )


def test_bf16_loss_and_gradients_within_bf16_rounding(tiny_model_dir):
    """bf16 keeps 8 significant bits (unit roundoff 2^-9 = 0.2%). The fast path rounds A, scale*B
    and the rank-4 product x@A to bf16 where mlx-lm keeps them in float32, and its LoRA
    gradients come out of bf16 matmuls. Measured here: mlx-lm's own bf16 gradients are 0.8-3.2%
    (norm of the difference over the norm) from the float32 ones, the fast path's 1.2-4.0%,
    and the two bf16 paths 0.5-3.2% from each other; the losses agree to 1e-4. So: each
    gradient within 6% of mlx-lm's bf16 one, and no further from float32 than twice mlx-lm's
    bf16 distance plus 1%; the loss within 0.2% of mlx-lm's bf16 one."""
    exact, g_exact = _loss_and_grads(_lora_model(tiny_model_dir))
    plain = _lora_model(tiny_model_dir, mx.bfloat16)
    fast = _lora_model(tiny_model_dir, mx.bfloat16, fast=True)
    want, g_want = _loss_and_grads(plain)
    got, g_got = _loss_and_grads(fast)
    assert got == pytest.approx(want, rel=2e-3)
    assert abs(got - exact) <= 2 * abs(want - exact) + 1e-3 * abs(exact)
    for k, w in g_want.items():
        assert _rel(g_got[k], w) < 6e-2, (k, _rel(g_got[k], w))
        assert _rel(g_got[k], g_exact[k]) < 2 * _rel(w, g_exact[k]) + 1e-2, k
    # the master weights stay float32, and so do their gradients (astype's gradient casts back)
    assert all(v.dtype == mx.float32 for _, v in tree_flatten(fast.trainable_parameters()))
    from mlx_lm.tuner.trainer import default_loss

    _, grads = nn.value_and_grad(fast, default_loss)(fast, *_batch())
    assert {v.dtype for _, v in tree_flatten(grads)} == {mx.float32}
    assert sum(_shared_calls(fast).values()) == 2 * (2 * 5)  # two forward passes here


def test_dropout_keeps_one_mask_per_layer_unfused_in_training(tiny_model_dir):
    """With dropout each LoRA layer draws its own mask, as in mlx-lm: no shared A product while
    training (same random draws, so the same loss); in evaluation dropout is off and it fuses."""
    plain = _lora_model(tiny_model_dir, dropout=0.3)
    fast = _lora_model(tiny_model_dir, fast=True, dropout=0.3)
    plain.train()
    fast.train()
    want, g_want = _loss_and_grads(plain)
    got, g_got = _loss_and_grads(fast)
    assert got == pytest.approx(want, rel=1e-6)
    assert all(_rel(g_got[k], w) < 1e-6 for k, w in g_want.items())
    assert sum(_shared_calls(fast).values()) == 0
    plain.eval()
    fast.eval()
    assert _loss_and_grads(fast)[0] == pytest.approx(_loss_and_grads(plain)[0], rel=1e-5)
    assert sum(_shared_calls(fast).values()) == 2 * 5


def test_only_some_keys_fuse_those_present(tiny_model_dir):
    keys = ["self_attn.q_proj", "self_attn.v_proj", "mlp.up_proj"]
    plain = _lora_model(tiny_model_dir, keys=keys)
    fast = _lora_model(tiny_model_dir, fast=True, keys=keys)
    assert _loss_and_grads(fast)[0] == pytest.approx(_loss_and_grads(plain)[0], rel=1e-5)
    calls = _shared_calls(fast)
    assert calls["model.layers.3.self_attn.q_proj"] == calls["model.layers.3.self_attn.v_proj"] == 1
    assert calls["model.layers.3.mlp.up_proj"] == 0  # alone in its group: its own matmul
    assert not is_fused(fast.model.layers[3].mlp) and is_fused(fast.model.layers[3].self_attn)


class _OddAttention(nn.Module):
    """Feeds k a different input than q and v: k must not take the shared product."""

    def __init__(self) -> None:
        super().__init__()
        self.q_proj, self.k_proj, self.v_proj = nn.Linear(16, 8), nn.Linear(16, 8), nn.Linear(16, 8)

    def __call__(self, x: mx.array) -> mx.array:
        return self.q_proj(x) + self.k_proj(2 * x) + self.v_proj(x)


def test_a_projection_fed_another_input_computes_its_own(tiny_model_dir):
    from mlx_lm.tuner.lora import LoRALinear

    mx.random.seed(0)
    attn = _OddAttention()
    for name in ("q_proj", "k_proj", "v_proj"):
        lora = LoRALinear.from_base(getattr(attn, name), r=4, scale=3.0)
        lora.lora_b = mx.random.normal(lora.lora_b.shape)
        setattr(attn, name, lora)
    x = mx.random.normal((2, 5, 16))
    want = attn(x)
    holder = nn.Module()
    holder.attn = attn
    assert speed_up_lora(holder) == 1 and is_fused(attn)
    np.testing.assert_allclose(np.array(attn(x)), np.array(want), rtol=1e-5, atol=1e-6)
    assert (attn.q_proj.shared_calls, attn.k_proj.shared_calls, attn.v_proj.shared_calls) == (
        1,
        0,
        1,
    )
    assert attn.q_proj._shared is None  # nothing traced outlives the call
    # mlx-lm's fuse (inherited) still folds the adapter into the base weight
    np.testing.assert_allclose(
        np.array(attn.q_proj.fuse()(x)), np.array(attn.q_proj(x)), rtol=1e-4, atol=1e-5
    )


def test_dora_stays_on_mlx_lms_path(tiny_model_dir):
    from mlx_lm import load

    from mlxtui.core.config import TrainConfig
    from mlxtui.core.training.setup import apply_adapters

    model, _ = load(str(tiny_model_dir))
    apply_adapters(model, TrainConfig().with_values(fine_tune_type="dora", num_layers=2))
    assert not any(isinstance(m, FastLoRALinear) or is_fused(m) for _, m in model.named_modules())


# ------------------------------------------------------------------ through the trainer


@pytest.fixture(scope="module")
def small_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from mlxtui.demo_data import demo_data_dir

    out = tmp_path_factory.mktemp("small_data")
    for name, n in (("train", 24), ("valid", 4)):
        lines = (demo_data_dir() / f"{name}.jsonl").read_text(encoding="utf-8").splitlines()[:n]
        (out / f"{name}.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return out


def _train(model: Path, data: Path, runs: Path) -> Any:
    from mlxtui import TrainConfig, TrainPipeline

    cfg = TrainConfig().with_values(
        model=str(model), data=str(data), runs_dir=str(runs), num_layers=2, batch_size=4,
        iters=6, learning_rate=1e-3, steps_per_report=2, steps_per_eval=100, save_every=100,
        val_batches=1, max_seq_length=128, sample_prompts=0, memory_guard="off",
    )  # fmt: skip
    return TrainPipeline(cfg).execute()


def test_training_gives_mlx_lms_losses_and_adapter_file(
    tiny_model_dir, small_data, tmp_path, monkeypatch
):
    from mlx_lm import load

    models: list[Any] = []
    original = fast_lora.speed_up_lora

    def recording(model: Any) -> int:
        models.append(model)
        return original(model)

    monkeypatch.setattr(fast_lora, "speed_up_lora", recording)
    fast = _train(tiny_model_dir, small_data, tmp_path / "fast")
    # the fast path ran inside the compiled training step
    assert len(models) == 1 and is_fused(models[0].layers[-1].self_attn)
    assert sum(_shared_calls(models[0]).values()) > 0
    monkeypatch.setattr(fast_lora, "speed_up_lora", lambda model: 0)  # mlx-lm's own LoRA
    plain = _train(tiny_model_dir, small_data, tmp_path / "plain")

    assert (
        [i for i, _ in fast.train_losses]
        == [i for i, _ in plain.train_losses]
        == [1, 2, 3, 4, 5, 6]
    )
    for (_, got), (_, want) in zip(fast.train_losses, plain.train_losses, strict=True):
        assert got == pytest.approx(want, rel=1e-5)
    a_fast = mx.load(str(Path(fast.adapter_path) / "adapters.safetensors"))
    a_plain = mx.load(str(Path(plain.adapter_path) / "adapters.safetensors"))
    assert {k: (v.shape, v.dtype) for k, v in a_fast.items()} == {
        k: (v.shape, v.dtype) for k, v in a_plain.items()
    }
    assert all(v.dtype == mx.float32 for v in a_fast.values())
    for k, v in a_plain.items():
        assert _rel(np.array(a_fast[k]), np.array(v)) < 1e-4, k
    loaded, _ = load(str(tiny_model_dir), adapter_path=str(fast.adapter_path))
    got = dict(tree_flatten(loaded.parameters()))
    assert all(mx.array_equal(got[k], v).item() for k, v in a_fast.items())  # every key is there
