"""The one loss-on-a-dataset function: validation during training, test loss, `mlxtui eval`."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, cast

from mlxtui.core.training.batches import eval_batch_count, eval_batches
from mlxtui.core.training.errors import TrainingError


def evaluate_loss(
    model: Any,
    dataset: Any,
    batch_size: int,
    num_batches: int,
    max_seq_length: int,
    on_batch: Callable[[], None] | None = None,
    *,
    rank: int = 0,
    world_size: int = 1,
) -> float:
    """Mean token loss over `num_batches` batches (-1 = all), as mlx-lm's evaluate computes it.

    `on_batch` runs after each batch: it reports progress and is a safe point (it may raise
    `progress.Interrupted` to abandon the evaluation, or block while paused). Across ranks
    each scores its share of every batch (`eval_batches`) and the sums are added with
    mx.distributed.all_sum (every rank must call this together), so every rank gets the loss
    of one process with batch `batch_size * world_size`.
    """
    import mlx.core as mx
    from mlx_lm.tuner.trainer import default_loss

    if len(dataset) < batch_size * world_size:
        batch_size = max(1, len(dataset) // world_size)
    model.eval()
    total = mx.array(0.0)
    ntok = mx.array(0)
    batches = eval_batches(
        dataset,
        batch_size,
        max_seq_length,
        rank=rank,
        world_size=world_size,
        num_batches=num_batches,
    )
    for batch in batches:
        loss, toks = default_loss(model, *batch)
        total += loss * toks
        ntok += toks
        mx.eval(total, ntok)
        if on_batch is not None:
            on_batch()
    if world_size > 1:
        from mlxtui.core.distributed import collective_stream

        total = mx.distributed.all_sum(total, stream=collective_stream())
        ntok = mx.distributed.all_sum(ntok, stream=collective_stream())
    n = ntok.item()
    if n == 0:
        raise TrainingError("the evaluation set produced no tokens to score")
    return float(cast(float, (total / n).item()))


def train_loss(
    model: Any, batch: Any, lengths: Any, chunk_tokens: int | None = None
) -> tuple[Any, Any]:
    """mlx-lm's default_loss (same mask, same mean), without the whole logits when they are large.

    The cross-entropy is taken in float32 (mlx-lm's in the logits' dtype): equal on float
    models, a little more exact on bf16 ones.
    """
    import mlx.core as mx

    from mlxtui.core.training.chunked_loss import token_losses

    inputs, targets = batch[:, :-1], batch[:, 1:]
    ce = token_losses(model, inputs, targets, chunk_tokens)
    steps = mx.arange(1, targets.shape[1] + 1)
    mask = mx.logical_and(steps >= lengths[:, 0:1], steps <= lengths[:, 1:])
    ntoks = mask.sum()
    return (ce * mask).sum() / ntoks, ntoks


def packed_train_loss(
    model: Any, inputs: Any, targets: Any, weights: Any, segments: Any
) -> tuple[Any, Any]:
    """The mean loss of the scored tokens of packed rows (packing.py), examples kept apart."""
    import mlx.core as mx

    from mlxtui.core.training.chunked_loss import token_losses
    from mlxtui.core.training.packing import block_causal_mask, block_mask

    with block_mask(model, block_causal_mask(segments)):
        ce = token_losses(model, inputs, targets)
    ntoks = weights.sum()
    return (ce * weights).sum() / ntoks, ntoks.astype(mx.int32)


def batch_count(dataset: Any, batch_size: int, num_batches: int, *, world_size: int = 1) -> int:
    """The number of batches `evaluate_loss` runs (its progress total)."""
    if len(dataset) < batch_size * world_size:
        batch_size = max(1, len(dataset) // world_size)
    return eval_batch_count(dataset, batch_size, num_batches, world_size=world_size)


def perplexity(loss: float) -> float:
    return math.exp(loss) if loss < 700 else float("inf")


def test_loss(
    model: Any,
    dataset: Any,
    batch_size: int,
    num_batches: int,
    max_seq_length: int,
    on_batch: Callable[[], None] | None = None,
    *,
    rank: int = 0,
    world_size: int = 1,
) -> tuple[float, float]:
    """(mean token loss, perplexity) on a test set."""
    loss = evaluate_loss(
        model,
        dataset,
        batch_size,
        num_batches,
        max_seq_length,
        on_batch,
        rank=rank,
        world_size=world_size,
    )
    return loss, perplexity(loss)


test_loss.__test__ = False  # type: ignore[attr-defined]  # not a pytest test
