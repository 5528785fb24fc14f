"""Sequence packing: rows of whole examples, kept apart by the mask, losses as unpacked."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import mlx.core as mx
import numpy as np
import pytest
from demo_slice import demo_slice

from mlxtui.core import events as ev
from mlxtui.core.config import TrainConfig
from mlxtui.core.engine import Engine, Train
from mlxtui.core.training.batches import BatchPlan
from mlxtui.core.training.chunked_loss import token_losses
from mlxtui.core.training.errors import TrainingError
from mlxtui.core.training.loss import packed_train_loss
from mlxtui.core.training.packing import block_causal_mask, block_mask, collate_packed, pack_rows


def test_rows_hold_every_example_once_within_their_length():
    rng = np.random.default_rng(0)
    lengths = [int(n) for n in rng.integers(5, 300, 500)]
    rows = pack_rows(lengths, 512)
    placed = sorted(i for row in rows for i in row)
    assert placed == list(range(500))
    assert all(sum(lengths[i] for i in row) <= 512 for row in rows)
    # best fit, longest first: dense (under 3% of the row tokens left empty here)
    assert sum(lengths) / (512 * len(rows)) > 0.97
    assert pack_rows(lengths, 512) == rows  # deterministic


def _model(tiny_model_dir: Path) -> Any:
    from mlx_lm import load

    model, _ = load(str(tiny_model_dir))
    return model


def test_per_example_losses_match_unpacked(tiny_model_dir):
    """Each example's per-token losses in a packed row equal those of the example alone.

    The examples sit at offsets 0, 37, 97, ... of one row without their positions reset: RoPE
    scores depend only on relative positions, and the block mask keeps them apart.
    """
    model = _model(tiny_model_dir)
    rng = np.random.default_rng(1)
    items = [([int(x) for x in rng.integers(1, 500, n)], off) for n, off in ((37, 0), (60, 5), (25, 0), (90, 12))]
    inputs, targets, weights, segments = collate_packed([items], 256, 2048, n_rows=2)
    with block_mask(model, block_causal_mask(segments)):
        packed = token_losses(model, inputs, targets)
    s = 0
    for toks, off in items:
        n = len(toks)
        alone = token_losses(model, mx.array([toks[:-1]]), mx.array([toks[1:]]))[0]
        got = packed[0, s : s + n - 1]
        np.testing.assert_allclose(np.array(got), np.array(alone), rtol=1e-4, atol=1e-5)
        w = np.array(weights[0, s : s + n - 1])
        assert w.sum() == n - max(off, 1)  # the prompt's targets are not scored
        s += n
    assert np.array(weights[1]).sum() == 0  # the empty row scores nothing
    # the mean over scored tokens is the batch loss
    loss, ntoks = packed_train_loss(model, inputs, targets, weights, segments)
    assert ntoks.item() == sum(len(t) - max(o, 1) for t, o in items)
    want = float((packed * weights).sum().item()) / ntoks.item()
    assert loss.item() == pytest.approx(want, rel=1e-5)


def test_without_the_mask_the_examples_would_see_each_other(tiny_model_dir):
    """The check above can fail: a plain causal mask changes the second example's losses."""
    model = _model(tiny_model_dir)
    rng = np.random.default_rng(2)
    items = [[int(x) for x in rng.integers(1, 500, 40)], [int(x) for x in rng.integers(1, 500, 40)]]
    inputs, targets, _, _ = collate_packed([items], 128, 2048, n_rows=1)
    plain = token_losses(model, inputs, targets)[0, 40:79]
    alone = token_losses(model, mx.array([items[1][:-1]]), mx.array([items[1][1:]]))[0]
    assert np.abs(np.array(plain) - np.array(alone)).max() > 1e-3


def test_a_model_that_builds_its_own_mask_is_refused():
    import mlx.nn as nn

    class NoMask(nn.Module):
        def __call__(self, x: Any) -> Any:
            return x

    model = NoMask()
    with pytest.raises(TrainingError, match="pack"):
        with block_mask(model, mx.zeros((1, 1, 4, 4), dtype=mx.bool_)):
            model(mx.zeros((1, 4)))


def test_a_packed_plan_is_one_shape_and_a_function_of_seed_and_step():
    rng = np.random.default_rng(3)
    data = [([int(x) for x in rng.integers(1, 500, int(n))], 0) for n in rng.integers(20, 200, 200)]
    plan = BatchPlan(data, 2, 256, seed=7, quantum=128, pack=True)
    again = BatchPlan(data, 2, 256, seed=7, quantum=128, pack=True)
    shapes = set()
    for step in range(2 * len(plan)):
        assert plan.batch_indices(step) == again.batch_indices(step)
        shapes.add(tuple(a.shape for a in plan.make_batch(plan.batch_indices(step))))
    assert shapes == {((2, 256),) * 4}
    # an epoch holds every row at most once, and all but fewer than one step's worth of them
    for epoch in range(2):
        rows = [r for s in range(len(plan)) for r in plan.batch_indices(epoch * len(plan) + s)]
        assert len(set(rows)) == len(rows) == len(plan) * 2 > len(plan.rows) - 2


def test_every_packed_step_is_whole_and_the_rows_left_over_change_with_the_epoch():
    """The epoch's last step never trains a row beside empty ones (it used to: 1 row + 3 empty)."""
    rng = np.random.default_rng(5)
    data = [([int(x) for x in rng.integers(1, 500, int(n))], 0) for n in rng.integers(50, 180, 200)]
    plan = BatchPlan(data, 5, 256, seed=0, quantum=32, pack=True, cpu_rows=False)
    assert len(plan.rows) % 5 != 0  # a remainder exists to be left over
    assert len(plan) == len(plan.rows) // 5
    left_over = []
    for epoch in range(3):
        steps = [plan.batch_indices(epoch * len(plan) + s) for s in range(len(plan))]
        assert all(len(rows) == 5 for rows in steps)
        for s in (0, len(plan) - 1):
            weights = plan.make_batch(steps[s])[2]
            assert all(np.array(weights[r]).sum() > 0 for r in range(5))
        left_over.append(set(range(len(plan.rows))) - {r for rows in steps for r in rows})
    assert left_over[0] != left_over[1] or left_over[1] != left_over[2]


def test_on_the_cpu_rows_are_as_long_as_pays_for_the_lengths():
    """Short examples: rows just above the longest (attention over a row costs the CPU its
    length squared); a few long examples among short ones: longer rows that fill better."""
    from mlxtui.core.training.packing import choose_row_tokens

    rng = np.random.default_rng(6)
    # like the demo set: most examples 75-110 tokens, a few up to 172
    short = [int(n) for n in rng.integers(75, 110, 190)] + [int(n) for n in rng.integers(140, 173, 10)]
    assert choose_row_tokens(short, 512, 32, None) == 512  # the GPU: max_seq_length's row
    assert choose_row_tokens(short, 512, 32, 1000) == 192
    # each alone in a row of 128 would fill it ~90% at best; two to a row of 256 is denser
    same = [int(n) for n in rng.integers(100, 130, 200)]
    row = choose_row_tokens(same, 512, 32, 1000)
    assert row > 128 and len(pack_rows(same, row)) * row < 1.15 * sum(same)
    data = [([1] * n, 0) for n in short]  # the plan takes the same rows on the CPU
    plan = BatchPlan(data, 4, 512, seed=0, quantum=32, pack=True, cpu_rows=True)
    assert plan.row_tokens == 192 and plan.make_batch(plan.batch_indices(0))[0].shape == (4, 192)



def test_on_the_gpu_rows_stay_max_seq_length_and_the_log_suggests_shorter_ones():
    """The GPU keeps the user's rows (max_seq_length); with examples far shorter than a row the
    plan says what to pass for rows that cost less per token, with as many tokens a step (the
    H200 runs of 2026-12-01: rows of 640 against 2048, 3B bf16, +16%)."""
    rng = np.random.default_rng(0)
    lengths = [int(n) for n in rng.integers(156, 457, 400)]  # like bench_speed's synthetic chat
    data = [([1] * n, 0) for n in lengths]
    plan = BatchPlan(data, 4, 2048, seed=0, quantum=128, pack=True, cpu_rows=False)
    assert plan.row_tokens == 2048 and plan.make_batch(plan.batch_indices(0))[0].shape == (4, 2048)
    advice = plan.shorter_rows
    assert advice is not None and "rows of 640 tokens" in advice, advice
    assert "--max-seq-length 640 --batch-size 13" in advice  # 4 x 2048 / 640 rows
    assert f"the longest example has {max(lengths)} tokens" in advice
    # the suggested rows hold every example whole
    assert max(lengths) <= 640
    # examples that fill long rows anyway: nothing to suggest; nor on the CPU (it chooses itself)
    long = [([1] * int(n), 0) for n in rng.integers(1500, 2040, 40)]
    assert BatchPlan(long, 4, 2048, seed=0, quantum=128, pack=True, cpu_rows=False).shorter_rows is None
    assert BatchPlan(data, 4, 2048, seed=0, quantum=128, pack=True, cpu_rows=True).shorter_rows is None
    # a row that is already the cheapest: nothing
    assert BatchPlan(data, 4, 640, seed=0, quantum=128, pack=True, cpu_rows=False).shorter_rows is None

def test_fewer_rows_than_a_step_train_beside_empty_rows_in_one_process():
    data = [([1, 2, 3, 4, 5], 0), ([6, 7, 8], 0), ([9, 10, 11, 12], 0), ([4, 5], 0)]
    plan = BatchPlan(data, 4, 64, seed=0, quantum=32, pack=True, cpu_rows=False)
    assert len(plan.rows) == 1 and len(plan) == 1
    inputs, _, weights, _ = plan.make_batch(plan.batch_indices(0))
    assert inputs.shape == (4, 64) and np.array(weights[0]).sum() == 4 + 2 + 3 + 1
    with pytest.raises(TrainingError, match="rows"):
        BatchPlan(data, 2, 64, seed=0, quantum=32, pack=True, world_size=2)


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return demo_slice(tmp_path_factory.mktemp("data"), train=48, valid=8)


def _train(cfg: TrainConfig, stop_at: int | None = None, seen: list[ev.Event] | None = None) -> Any:
    def on_event(e: ev.Event) -> None:
        if seen is not None:
            seen.append(e)
        if stop_at is not None and isinstance(e, ev.TrainStep) and e.iteration == stop_at:
            engine.stop()

    engine = Engine(on_event)
    engine.start()
    try:
        return engine.run_sync(Train(cfg), timeout=600)
    finally:
        engine.shutdown()


def test_packed_training_resumes_exactly(tiny_model_dir, data, tmp_path):
    def cfg(runs: Path, **kw: Any) -> TrainConfig:
        return TrainConfig().with_values(
            model=str(tiny_model_dir), data=str(data), runs_dir=str(runs), num_layers=2,
            batch_size=2, iters=10, learning_rate=1e-3, steps_per_report=5, steps_per_eval=5,
            save_every=5, val_batches=1, max_seq_length=256, sample_prompts=0,
            memory_guard="off", pack=True, grad_checkpoint=True,
            lora_parameters={"rank": 4, "scale": 10.0, "dropout": 0.1}, **kw,
        )

    straight = _train(cfg(tmp_path / "s"))
    assert straight.status == "completed"
    losses = [loss for _, loss in straight.train_losses]
    assert all(np.isfinite(losses)) and losses[-1] < losses[0]
    first = _train(cfg(tmp_path / "r"), stop_at=4)
    assert json.loads((Path(first.run_dir) / "state" / "state.json").read_text())["iteration"] == 4
    second = _train(cfg(tmp_path / "r", resume_run=str(first.run_dir)))
    resumed = dict(first.train_losses) | dict(second.train_losses)
    for it, loss in straight.train_losses:
        assert abs(resumed[it] - loss) < 1e-5, (it, resumed[it], loss)


def test_packed_epochs_count_packed_steps(tiny_model_dir, data, tmp_path):
    cfg = TrainConfig().with_values(
        model=str(tiny_model_dir), data=str(data), runs_dir=str(tmp_path), num_layers=1,
        batch_size=2, epochs=1, steps_per_eval=100, save_every=100, val_batches=1,
        max_seq_length=256, sample_prompts=0, memory_guard="off", pack=True,
    )
    seen: list[ev.Event] = []
    result = _train(cfg, seen=seen)
    # 48 examples of the demo set fit in far fewer than 24 steps of 2 rows of 256 tokens
    assert result.status == "completed" and result.final_iteration < 24
    # the row length is said (on the CPU it may be shorter than max_seq_length)
    said = [e.message for e in seen if isinstance(e, ev.Log) and e.message.startswith("pack: ")]
    assert len(said) == 1 and " rows of " in said[0] and "2 rows a step" in said[0]
