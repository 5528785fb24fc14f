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
    """

    def __init__(self, dataset: Any, batch_size: int, max_seq_length: int, seed: int) -> None:
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
        self.batches = [
            order[i : i + batch_size] for i in range(0, len(order) - batch_size + 1, batch_size)
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


def eval_batch_count(dataset: Any, batch_size: int, num_batches: int) -> int:
    """How many batches `eval_batches` yields when limited to `num_batches` (-1 = all)."""
    full = len(dataset) // batch_size if batch_size > 0 else 0
    return full if num_batches == -1 else min(full, num_batches)


def eval_batches(dataset: Any, batch_size: int, max_seq_length: int) -> Iterator[tuple[Any, Any]]:
    """Validation/test batches in a fixed, length-grouped order (no RNG consumed)."""
    order = sorted(range(len(dataset)), key=lambda i: len(tokens_of(dataset[i])))
    for i in range(0, len(order) - batch_size + 1, batch_size):
        yield collate([dataset[j] for j in order[i : i + batch_size]], max_seq_length)
