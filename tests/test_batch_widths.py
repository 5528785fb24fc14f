"""Batch widths come from a small fixed set (multiples of 128 on the GPU), and change no loss."""

from __future__ import annotations

import mlx.core as mx
import numpy as np
import pytest

from mlxtui.core.training.batches import BatchPlan, collate, model_width, widths


def test_gpu_widths_are_multiples_of_128_and_few():
    ws = widths(2048, 128)
    assert all(w % 128 == 0 for w in ws)
    assert len(ws) <= 12
    # max_seq_length 2048 gives the model 2048 columns, not mlx-lm's 2047
    assert model_width(5000, 2048, 128) == 2048 == ws[-1]
    # the cap is rounded up to the quantum too
    assert model_width(1000, 1000, 128) == 1024


@pytest.mark.parametrize("quantum", [32, 128])
def test_every_example_fits_its_width(quantum):
    for n in range(3, 3000):
        w = model_width(n, 2048, quantum)
        assert w % quantum == 0 and w >= min(n, 2048) - 1
        need = min(n, 2048) - 1
        # padding under one quantum, or (past 8 quanta) under a quarter of the width
        assert w - need < quantum or w - need < w / 4, (n, w)


def test_a_plan_meets_a_handful_of_widths():
    rng = np.random.default_rng(0)
    data = [[int(x) for x in rng.integers(1, 500, int(n))] for n in rng.integers(150, 400, 400)]
    plan = BatchPlan(data, 4, 2048, seed=3, quantum=128)
    seen = {plan.make_batch(plan.batch_indices(s))[0].shape[1] - 1 for s in range(len(plan))}
    assert seen <= {256, 384, 512}


def test_the_padding_changes_no_loss(tiny_model_dir):
    """mlx-lm's default loss on our 128-padded rows equals it on mlx-lm's own 32-padded rows."""
    from mlx_lm import load
    from mlx_lm.tuner.trainer import default_loss

    model, _ = load(str(tiny_model_dir))
    rng = np.random.default_rng(1)
    items = [([int(x) for x in rng.integers(1, 500, n)], 3) for n in (37, 60, 61, 90)]
    ours = collate(items, 2048, 128)
    theirs = collate(items, 2048, 32)
    assert ours[0].shape[1] == 129 and theirs[0].shape[1] == 97
    (l1, n1), (l2, n2) = default_loss(model, *ours), default_loss(model, *theirs)
    assert n1.item() == n2.item()
    assert l1.item() == pytest.approx(l2.item(), abs=1e-5)
    mx.eval(l1)


def test_the_padding_share_is_measured_and_packing_removes_most_of_it():
    rng = np.random.default_rng(4)
    data = [[int(x) for x in rng.integers(1, 500, int(n))] for n in rng.integers(20, 400, 200)]
    padded = BatchPlan(data, 4, 512, seed=0, quantum=128).padding_fraction()
    packed = BatchPlan(data, 4, 512, seed=0, quantum=128, pack=True).padding_fraction()
    assert 0.1 < padded < 0.6
    assert packed < padded / 2
