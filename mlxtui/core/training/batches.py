"""Which examples make each batch, and how a batch is padded.

mlx-lm 0.32.2 means to sort by length but sorts CacheDataset by the number of keys of the
raw record (1 for chat/text), so its batches are padded to the longest of a random group
(DESIGN.md). Sorting by the tokenized length removes most of that padding.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from mlxtui.core.training.errors import TrainingError


def tokens_of(item: Any) -> list[int]:
    """The token ids of a dataset item (mlx-lm's CacheDataset gives (tokens, offset) pairs)."""
    return item[0] if isinstance(item, tuple) else item


class BatchPlan:
    """Batches grouped by real token length, shuffled per epoch from (seed, epoch).

    The order is a pure function of (seed, step), which is what makes resume exact.

    Across `world_size` ranks (mx.distributed) `batch_size` is each rank's: a step's global
    batch is `batch_size * world_size` examples grouped as in a single process with that
    batch, and rank `rank` takes every world_size-th of them (as mlx-lm's iterate_batches
    does), so the ranks' rows have similar lengths and together hold the single-process batch.
    The order is then a pure function of (seed, step, rank, world_size).
    """

    def __init__(
        self,
        dataset: Any,
        batch_size: int,
        max_seq_length: int,
        seed: int,
        *,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        if not 0 <= rank < world_size:
            raise TrainingError(f"rank {rank} is outside a world of {world_size} processes")
        self.rank = rank
        self.world_size = world_size
        if world_size > 1 and len(dataset) < batch_size * world_size:
            raise TrainingError(
                f"the training set has {len(dataset)} examples but a step takes batch_size "
                f"{batch_size} x {world_size} ranks = {batch_size * world_size}: lower the batch "
                "size or the number of processes, or add examples"
            )
        if len(dataset) < batch_size:
            raise TrainingError(
                f"the training set has {len(dataset)} examples but batch_size is {batch_size}: "
                "lower the batch size or add examples"
            )
        self.dataset = dataset
        self.batch_size = batch_size
        self.max_seq_length = max_seq_length
        self.seed = seed
        lengths = [len(tokens_of(dataset[i])) for i in range(len(dataset))]
        order = sorted(range(len(dataset)), key=lambda i: lengths[i])
        width = batch_size * world_size  # the global batch of one step
        self.batches = [
            order[i : i + width][rank::world_size]
            for i in range(0, len(order) - width + 1, width)
        ]
        self.lengths = lengths

    def __len__(self) -> int:
        return len(self.batches)

    def batch_indices(self, step: int) -> list[int]:
        """Indices of the examples of global step `step` (0-based)."""
        epoch, pos = divmod(step, len(self.batches))
        perm = np.random.default_rng([self.seed, epoch]).permutation(len(self.batches))
        return self.batches[int(perm[pos])]

    def make_batch(self, indices: list[int]) -> tuple[Any, Any]:
        return collate([self.dataset[j] for j in indices], self.max_seq_length)


def collate(items: list[Any], max_seq_length: int) -> tuple[Any, Any]:
    """mlx-lm's padding (to 1 + a multiple of 32, capped) and its (offset, length) pairs."""
    import mlx.core as mx

    toks = [tokens_of(x) for x in items]
    offsets = [x[1] if isinstance(x, tuple) else 0 for x in items]
    lengths = [min(len(t), max_seq_length) for t in toks]
    pad_to = 32
    width = min(1 + pad_to * ((max(lengths) + pad_to - 1) // pad_to), max_seq_length)
    arr = np.zeros((len(toks), width), np.int32)
    for j, t in enumerate(toks):
        arr[j, : lengths[j]] = t[: lengths[j]]
    return mx.array(arr), mx.array(list(zip(offsets, lengths, strict=True)))


def eval_batch_count(
    dataset: Any, batch_size: int, num_batches: int, *, world_size: int = 1
) -> int:
    """How many batches `eval_batches` yields when limited to `num_batches` (-1 = all)."""
    width = batch_size * world_size
    full = len(dataset) // width if width > 0 else 0
    return full if num_batches == -1 else min(full, num_batches)


def eval_batches(
    dataset: Any,
    batch_size: int,
    max_seq_length: int,
    *,
    rank: int = 0,
    world_size: int = 1,
    num_batches: int = -1,
) -> Iterator[tuple[Any, Any]]:
    """Validation/test batches in a fixed, length-grouped order (no RNG consumed).

    Across ranks a batch is `batch_size * world_size` examples, as in training, and rank
    `rank` scores every world_size-th of them: together the ranks score exactly the batches
    of one process with the whole batch. `num_batches` (-1 = all) counts those batches.
    """
    width = batch_size * world_size
    order = sorted(range(len(dataset)), key=lambda i: len(tokens_of(dataset[i])))
    starts = range(0, len(order) - width + 1, width)
    if num_batches != -1:
        starts = starts[:num_batches]
    for i in starts:
        share = order[i : i + width][rank::world_size]
        yield collate([dataset[j] for j in share], max_seq_length)
