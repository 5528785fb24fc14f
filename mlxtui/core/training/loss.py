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
        total = mx.distributed.all_sum(total, stream=mx.cpu)
        ntok = mx.distributed.all_sum(ntok, stream=mx.cpu)
    n = ntok.item()
    if n == 0:
        raise TrainingError("the evaluation set produced no tokens to score")
    return float(cast(float, (total / n).item()))


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
