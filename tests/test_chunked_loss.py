"""The chunked loss gives mlx-lm's loss and gradients without building the whole logits."""

from __future__ import annotations

from functools import partial
from typing import Any

import mlx.core as mx
import mlx.nn as nn
import numpy as np
import pytest
from mlx.utils import tree_flatten

from mlxtui.core.training.batches import collate
from mlxtui.core.training.chunked_loss import split_head, token_losses
from mlxtui.core.training.loss import train_loss


def _batch() -> tuple[Any, Any]:
    rng = np.random.default_rng(0)
    sizes = ((50, 0), (70, 9), (33, 0))  # (tokens, prompt length): the prompt is not scored
    items = [([int(x) for x in rng.integers(1, 500, n)], off) for n, off in sizes]
    return collate(items, 2048, 32)


def _assert_same(got: Any, want: Any) -> None:
    (loss, n), g = got
    (want_loss, want_n), want_g = want
    assert n.item() == want_n.item()
    assert loss.item() == pytest.approx(want_loss.item(), rel=1e-5)
    want_flat, got_flat = dict(tree_flatten(want_g)), dict(tree_flatten(g))
    assert want_flat.keys() == got_flat.keys()
    assert want_flat  # something was trained
    for k, w in want_flat.items():
        np.testing.assert_allclose(
            np.array(got_flat[k]), np.array(w), rtol=1e-4, atol=1e-6, err_msg=k
        )


def _untied_llama() -> Any:
    from mlx_lm.models import llama

    mx.random.seed(3)
    args = llama.ModelArgs.from_dict(
        {
            "model_type": "llama",
            "hidden_size": 32,
            "num_hidden_layers": 2,
            "intermediate_size": 64,
            "num_attention_heads": 4,
            "num_key_value_heads": 2,
            "rms_norm_eps": 1e-5,
            "vocab_size": 600,
            "tie_word_embeddings": False,
        }
    )
    model = llama.Model(args)
    mx.eval(model.parameters())
    return model


@pytest.mark.parametrize("chunk_tokens", [8, 24, 1000])
def test_loss_and_gradients_match_mlx_lm(tiny_model_dir, chunk_tokens):
    from mlx_lm import load
    from mlx_lm.tuner.trainer import default_loss

    model, _ = load(str(tiny_model_dir))
    assert split_head(model) is not None  # the tiny llama is split: the chunked path runs
    model.train()  # every weight trainable, the tied embedding/head too
    batch = _batch()
    want = nn.value_and_grad(model, default_loss)(model, *batch)
    ours = partial(train_loss, chunk_tokens=chunk_tokens)
    _assert_same(nn.value_and_grad(model, ours)(model, *batch), want)


def test_an_untied_trained_head_gets_mlx_lm_s_gradient():
    from mlx_lm.tuner.trainer import default_loss

    model = _untied_llama()
    assert split_head(model) is not None
    assert "lm_head.weight" in dict(tree_flatten(model.trainable_parameters()))
    batch = _batch()
    want = nn.value_and_grad(model, default_loss)(model, *batch)
    _assert_same(nn.value_and_grad(model, partial(train_loss, chunk_tokens=16))(model, *batch), want)


@pytest.mark.parametrize("model_dir", ["tiny_model_dir", "tiny_quant_model_dir"])
def test_lora_gradients_match_mlx_lm_in_a_compiled_step(request, model_dir):
    """LoRA (head frozen: no head gradient; 4-bit head too), inside mx.compile as mlx-lm runs it."""
    from mlx_lm import load
    from mlx_lm.tuner.trainer import default_loss
    from mlx_lm.tuner.utils import linear_to_lora_layers

    model, _ = load(str(request.getfixturevalue(model_dir)))
    model.freeze()
    linear_to_lora_layers(model, 2, {"rank": 4, "scale": 10.0, "dropout": 0.0})
    # LoRA B starts at zero: give it values so every gradient is non-trivial
    for _, m in model.named_modules():
        if hasattr(m, "lora_b"):
            m.lora_b = mx.random.normal(m.lora_b.shape) * 0.05
    mx.eval(model.parameters())
    trained = dict(tree_flatten(model.trainable_parameters()))
    assert trained and all("lora" in k for k in trained)
    batch = _batch()
    want = nn.value_and_grad(model, default_loss)(model, *batch)
    state = [model.state]

    @partial(mx.compile, inputs=state, outputs=state)
    def step(batch: Any, lengths: Any) -> Any:
        return nn.value_and_grad(model, partial(train_loss, chunk_tokens=8))(model, batch, lengths)

    _assert_same(step(*batch), want)


def test_packed_rows_chunked_equal_whole(tiny_model_dir):
    """Packed rows (block-diagonal mask) score the same per token chunked or whole."""
    from mlx_lm import load

    from mlxtui.core.training.packing import block_causal_mask, block_mask, collate_packed

    model, _ = load(str(tiny_model_dir))
    rng = np.random.default_rng(1)
    items = [([int(x) for x in rng.integers(1, 500, n)], off) for n, off in ((37, 0), (60, 5), (25, 0))]
    inputs, targets, weights, segments = collate_packed([items], 128, 2048, n_rows=1)

    def loss(model: Any, chunk: int | None) -> Any:
        ce = token_losses(model, inputs, targets, chunk)
        return (ce * weights).sum() / weights.sum()

    with block_mask(model, block_causal_mask(segments)):
        whole = nn.value_and_grad(model, partial(loss, chunk=10**6))(model)
        chunked = nn.value_and_grad(model, partial(loss, chunk=12))(model)
    assert chunked[0].item() == pytest.approx(whole[0].item(), rel=1e-5)
    for (k, w), (_, g) in zip(tree_flatten(whole[1]), tree_flatten(chunked[1]), strict=True):
        np.testing.assert_allclose(np.array(g), np.array(w), rtol=1e-4, atol=1e-6, err_msg=k)


def test_only_one_chunk_of_logits_is_alive_at_a_time():
    """Peak memory of loss + gradients: the chunked loss stays far below the whole logits.

    vocab 32000, 2 x 512 tokens: the float32 logits alone are 131 MB; a chunk of 2 x 16
    positions is 4 MB. mlx-lm's loss keeps several logits-sized arrays alive (logits, softmax,
    gradient): 530 MB here. Measured: 36 MB chunked (a few chunk-sized arrays, those the CPU
    scheduler holds for the ops it runs ahead); 128 MB with the earlier mx.checkpoint chunks.
    """
    from mlx_lm.models import llama
    from mlx_lm.tuner.trainer import default_loss

    args = llama.ModelArgs.from_dict(
        {
            "model_type": "llama",
            "hidden_size": 64,
            "num_hidden_layers": 1,
            "intermediate_size": 128,
            "num_attention_heads": 4,
            "num_key_value_heads": 2,
            "rms_norm_eps": 1e-5,
            "vocab_size": 32000,
            "tie_word_embeddings": True,
        }
    )
    model = llama.Model(args)
    model.freeze()
    model.model.layers[0].mlp.unfreeze()
    batch = mx.random.randint(0, 32000, (2, 513))
    lengths = mx.array([[0, 512], [0, 512]])
    mx.eval(model.parameters(), batch, lengths)
    logits_bytes = 2 * 512 * 32000 * 4

    def peak(loss_fn: Any) -> int:
        mx.synchronize()
        mx.clear_cache()
        base = mx.get_active_memory()
        mx.reset_peak_memory()
        out = nn.value_and_grad(model, loss_fn)(model, batch, lengths)
        mx.eval(out)
        return mx.get_peak_memory() - base

    whole = peak(default_loss)
    chunked = peak(partial(train_loss, chunk_tokens=32))
    assert whole > 2 * logits_bytes
    assert chunked < 0.5 * logits_bytes, (chunked, whole)


def test_a_model_with_an_unknown_head_takes_its_logits_whole():
    class Other(nn.Module):
        def __call__(self, x: Any) -> Any:
            return x

    assert split_head(Other()) is None
    mx.eval(mx.array(0))
