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
from mlxtui.core.training.chunked_loss import split_head
from mlxtui.core.training.loss import train_loss


def _batch() -> tuple[Any, Any]:
    rng = np.random.default_rng(0)
    items = [([int(x) for x in rng.integers(1, 500, n)], off) for n, off in ((50, 0), (70, 9), (33, 0))]
    return collate(items, 2048, 32)


@pytest.mark.parametrize("chunk_tokens", [8, 24, 1000])
def test_loss_and_gradients_match_mlx_lm(tiny_model_dir, chunk_tokens):
    from mlx_lm import load
    from mlx_lm.tuner.trainer import default_loss

    model, _ = load(str(tiny_model_dir))
    assert split_head(model) is not None  # the tiny llama is split: the chunked path runs
    model.train()  # every weight trainable, the tied embedding/head too
    batch = _batch()
    (want, n_want), g_want = nn.value_and_grad(model, default_loss)(model, *batch)
    ours = partial(train_loss, chunk_tokens=chunk_tokens)
    (got, n_got), g_got = nn.value_and_grad(model, ours)(model, *batch)
    assert n_got.item() == n_want.item()
    assert got.item() == pytest.approx(want.item(), rel=1e-5)
    want_flat, got_flat = dict(tree_flatten(g_want)), dict(tree_flatten(g_got))
    assert want_flat.keys() == got_flat.keys()
    for k, w in want_flat.items():
        np.testing.assert_allclose(np.array(got_flat[k]), np.array(w), rtol=1e-4, atol=1e-6, err_msg=k)


def test_a_model_with_an_unknown_head_takes_its_logits_whole():
    class Other(nn.Module):
        def __call__(self, x: Any) -> Any:
            return x

    assert split_head(Other()) is None
    mx.eval(mx.array(0))
