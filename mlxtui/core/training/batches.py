"""Which examples make each batch, and how a batch is padded.

mlx-lm 0.32.2 means to sort by length but sorts CacheDataset by the number of keys of the
raw record (1 for chat/text), so its batches are padded to the longest of a random group
(DESIGN.md). Sorting by the tokenized length removes most of that padding.

Widths: mlx-lm pads a batch to 1 + a multiple of 32 (the model sees a multiple of 32) and
caps it at max_seq_length, so `--max-seq-length 2048` gives the model 2047 columns. On the
GPU, MLX runs its fused attention backward only when the row is a multiple of 128, and each
new width traces the compiled step again (~0.45 s on an H200, issue 12). So the model sees a
width from a small fixed set: multiples of `quantum` up to 8 quanta, then coarser steps
(1/8 of the width), never past the cap, which is itself rounded up to the quantum.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from mlxtui.core.training.errors import TrainingError


def tokens_of(item: Any) -> list[int]:
    """The token ids of a dataset item (mlx-lm's CacheDataset gives (tokens, offset) pairs)."""
    return item[0] if isinstance(item, tuple) else item


# The model's column count is a multiple of this on the GPU (fused attention backward) ...
GPU_QUANTUM = 128
# ... and of 16 on the CPU, where padding is plain extra work, no fused kernel waits, and a new
# width costs no measurable trace time (benchmarks/README.md, "This CPU"): on the demo data
# 91% of the columns are real tokens with 16, 86% with mlx-lm's 32.
CPU_QUANTUM = 16


def _on_cpu() -> bool:
    import mlx.core as mx

    return bool(mx.default_device() == mx.cpu)


def default_quantum() -> int:
    return CPU_QUANTUM if _on_cpu() else GPU_QUANTUM


def model_width(longest: int, max_seq_length: int, quantum: int) -> int:
    """Columns the model sees for a batch whose longest example has `longest` tokens.

    An example of n tokens gives n - 1 inputs; examples are cut to max_seq_length tokens.
    The answer is the smallest width of the fixed set that holds them.
    """
    need = max(1, min(longest, max_seq_length) - 1)
    step = quantum
    width = quantum
    while width < need:
        if width >= 8 * step:
            step *= 2
        width += step
    return width


def widths(max_seq_length: int, quantum: int) -> list[int]:
    """Every width a run with this max_seq_length can meet (one trace each at most)."""
    out: list[int] = []
    for n in range(2, max_seq_length + 1):
        w = model_width(n, max_seq_length, quantum)
        if not out or out[-1] != w:
            out.append(w)
    return out


class BatchPlan:
    """Batches grouped by real token length, shuffled per epoch from (seed, epoch).

    The order is a pure function of (seed, step), which is what makes resume exact.

    Across `world_size` ranks (mx.distributed) `batch_size` is each rank's: a step's global
    batch is `batch_size * world_size` examples grouped as in a single process with that
    batch, and rank `rank` takes every world_size-th of them (as mlx-lm's iterate_batches
    does), so the ranks' rows have similar lengths and together hold the single-process batch.
    The order is then a pure function of (seed, step, rank, world_size).

    With `pack`, a batch is `batch_size` rows of `row_tokens` tokens filled with whole examples
    (max_seq_length rounded up to the quantum; on the CPU, or with `cpu_rows`, the length
    packing.choose_row_tokens finds cheapest for these lengths; packing.py); the rows are made
    once and dealt out per epoch from (seed, epoch), so the same rule holds.
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
        quantum: int | None = None,
        pack: bool = False,
        cpu_rows: bool | None = None,
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
        self.quantum = quantum or default_quantum()
        lengths = [len(tokens_of(dataset[i])) for i in range(len(dataset))]
        self.lengths = lengths
        self.pack = pack
        # a row holds max_seq_length tokens, rounded up to the quantum (one shape the GPU likes)
        self.row_tokens = -(-max_seq_length // self.quantum) * self.quantum
        self.rows: list[list[int]] = []
        # packed on the GPU: what to pass for cheaper shorter rows, when they would pay
        self.shorter_rows: str | None = None
        if pack:
            from mlxtui.core.training.packing import (
                CPU_ROW_COST_TOKENS,
                choose_row_tokens,
                pack_rows,
                shorter_rows_advice,
            )

            cut = [min(n, max_seq_length) for n in lengths]
            if cpu_rows is None:
                cpu_rows = _on_cpu()
            # on the CPU, rows as long as pays (packing.choose_row_tokens); elsewhere the cap
            self.row_tokens = choose_row_tokens(
                cut, self.row_tokens, self.quantum, CPU_ROW_COST_TOKENS if cpu_rows else None
            )
            if not cpu_rows:
                self.shorter_rows = shorter_rows_advice(cut, self.row_tokens, self.quantum, batch_size)
            self.rows = pack_rows(cut, self.row_tokens)
            # A step takes `width` rows, dealt out afresh each epoch (batch_indices): only whole
            # steps, so no step trains a few rows beside empty ones, and the rows left over
            # (fewer than a step) differ from epoch to epoch. With fewer rows than one step a
            # single process still trains them all, beside empty rows (collate_packed).
            width = batch_size * world_size
            if len(self.rows) < width and world_size > 1:
                # no rank may be handed a batch of empty rows (a loss over no tokens)
                raise TrainingError(
                    f"packing made {len(self.rows)} rows but a step takes batch_size "
                    f"{batch_size} x {world_size} ranks = {width} rows: lower the batch size "
                    "or the number of processes, or add examples"
                )
            self.steps_per_epoch = max(1, len(self.rows) // width)
            self.batches = []
            return
        order = sorted(range(len(dataset)), key=lambda i: lengths[i])
        width = batch_size * world_size  # the global batch of one step
        self.batches = [
            order[i : i + width][rank::world_size]
            for i in range(0, len(order) - width + 1, width)
        ]

    def __len__(self) -> int:
        return self.steps_per_epoch if self.pack else len(self.batches)

    def padding_fraction(self) -> float:
        """The share of the model's input columns that are padding over one epoch."""
        if self.pack:
            # an epoch's rows are a random whole number of steps' worth of all the rows
            used = sum(min(self.lengths[j], self.max_seq_length) for row in self.rows for j in row)
            rows = max(len(self.rows), self.batch_size * self.world_size)
            return 1.0 - used / (rows * self.row_tokens)
        real = cols = 0
        for batch in self.batches:
            cut = [min(self.lengths[j], self.max_seq_length) for j in batch]
            real += sum(n - 1 for n in cut)
            cols += len(batch) * model_width(max(cut), self.max_seq_length, self.quantum)
        return 1.0 - real / cols if cols else 0.0

    def batch_indices(self, step: int) -> list[int]:
        """Indices of the examples of global step `step` (0-based); packed, of the rows."""
        if self.pack:
            epoch, pos = divmod(step, self.steps_per_epoch)
            width = self.batch_size * self.world_size
            deal = np.random.default_rng([self.seed, epoch]).permutation(len(self.rows))
            return [int(r) for r in deal[pos * width : (pos + 1) * width]][self.rank :: self.world_size]
        epoch, pos = divmod(step, len(self.batches))
        perm = np.random.default_rng([self.seed, epoch]).permutation(len(self.batches))
        return self.batches[int(perm[pos])]

    def make_batch(self, indices: list[int]) -> tuple[Any, ...]:
        """The arrays of a batch: (tokens, lengths), or packed (inputs, targets, weights, segments).

        `indices` are examples, or with `pack` rows.
        """
        if self.pack:
            from mlxtui.core.training.packing import collate_packed

            rows = [[self.dataset[j] for j in self.rows[r]] for r in indices]
            return collate_packed(rows, self.row_tokens, self.max_seq_length, self.batch_size)
        return collate([self.dataset[j] for j in indices], self.max_seq_length, self.quantum)


def collate(items: list[Any], max_seq_length: int, quantum: int | None = None) -> tuple[Any, Any]:
    """Rows of 1 + a width of the fixed set (module doc) and mlx-lm's (offset, length) pairs.

    Padding is masked out of the loss by the lengths, and attention is causal, so the width
    changes no real token's loss.
    """
    import mlx.core as mx

    toks = [tokens_of(x) for x in items]
    offsets = [x[1] if isinstance(x, tuple) else 0 for x in items]
    lengths = [min(len(t), max_seq_length) for t in toks]
    width = 1 + model_width(max(lengths), max_seq_length, quantum or default_quantum())
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
    quantum = default_quantum()
    starts = range(0, len(order) - width + 1, width)
    if num_batches != -1:
        starts = starts[:num_batches]
    for i in starts:
        share = order[i : i + width][rank::world_size]
        yield collate([dataset[j] for j in share], max_seq_length, quantum)
