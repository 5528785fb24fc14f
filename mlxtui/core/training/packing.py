"""Sequence packing: whole examples placed into rows of one fixed length.

Padded batches spend compute on padding (25% of mlx-lm's tokens on chat data, issue 12) and
meet a new width, hence a new trace, every few steps. Packed, every step is `batch_size` rows
of `row_tokens` tokens (a multiple of 128 on the GPU): one shape, one trace, no padding but the
end of each row.

Examples in a row must not see each other: the attention mask is block-diagonal causal
(position i attends to j <= i of the same example). mlx-lm's models build their mask with
`create_attention_mask(h, cache)`, looked up in their own module; `block_mask` swaps that name
for one that returns our mask while the step is traced, and checks that the model called it
(a model that builds its mask otherwise is refused, never trained with examples leaking).

Positions are not reset at each example: RoPE rotates queries and keys by their absolute
position, so a query-key score depends only on the distance between them, and an example at
offset s of a row scores exactly as it would at offset 0 (tests/test_packing.py checks the
per-token losses against unpacked batches).

The loss counts the same targets as mlx-lm's, but only real ones: mlx-lm also counts, after an
example's last token, a target of padding (id 0) when its row has room; in a packed row that
place holds the next example, so it is not a target here.
"""

from __future__ import annotations

import bisect
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

from mlxtui.core.training.errors import TrainingError


def pack_rows(lengths: list[int], row_tokens: int) -> list[list[int]]:
    """Indices of the examples of each row: best fit, longest first (deterministic).

    `lengths` are already cut to at most `row_tokens`.
    """
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    rows: list[list[int]] = []
    room: list[tuple[int, int]] = []  # (tokens left, row), sorted
    for i in order:
        n = lengths[i]
        k = bisect.bisect_left(room, (n, -1))
        if k == len(room):
            rows.append([i])
            left, row = row_tokens - n, len(rows) - 1
        else:
            left, row = room.pop(k)
            rows[row].append(i)
            left -= n
        if left > 0:
            bisect.insort(room, (left, row))
    return rows


# On the CPU a packed column costs about (1 + row_tokens / CPU_ROW_COST_TOKENS) times a column
# of a short row: the back-end computes attention over the whole row_tokens x row_tokens block
# mask (scores, mask, softmax), elementwise (benchmarks/profile_cpu_step.py measures it).
CPU_ROW_COST_TOKENS = 1000
# On the GPU (MLX CUDA, H200) the same form fits the measured cost per column of packed 3B
# bf16 steps with rows of 640, 1024 and 2048 tokens (32.9, 33.6, 37.7 us; benchmarks/README.md,
# 2026-12-01): attention over the whole row is a smaller share there, but it is not free.
GPU_ROW_COST_TOKENS = 8800
# The GPU keeps rows of max_seq_length (the field's convention: a user's batch of packed rows);
# the run's log suggests shorter ones when they would save at least this share per real token.
SHORTER_ROWS_WORTH = 0.05
# choose_row_tokens packs at most this many lengths per candidate row length.
SAMPLE = 2000


def choose_row_tokens(lengths: list[int], cap: int, quantum: int, cost_tokens: int | None) -> int:
    """The row length of a packed run: `cap` (max_seq_length rounded up to the quantum), or on
    the CPU (`cost_tokens` given) the multiple of the quantum that minimizes the estimated cost
    per real token, (1 + rows' length / cost_tokens) x columns / real tokens.

    Long rows fill better; short rows make attention cheaper where the back-end computes it
    over the whole row. Candidates: every multiple of the quantum from the shortest row that
    holds the longest example up to twice it, then 3, 4, 8 and 16 times it, never past the cap.
    The fill is measured on at most SAMPLE lengths (every k-th): deterministic, and quick on
    large sets.
    """
    if cost_tokens is None or not lengths:
        return cap
    longest = min(max(lengths), cap)
    low = -(-longest // quantum) * quantum
    fine = range(low, 2 * low + 1, quantum)
    candidates = sorted({min(cap, row) for row in [*fine, 3 * low, 4 * low, 8 * low, 16 * low]})
    cut = [min(n, cap) for n in lengths]
    return min(candidates, key=lambda row: (row_cost(cut, row, cost_tokens), row))


def row_cost(lengths: list[int], row: int, cost_tokens: int) -> float:
    """Estimated cost per real token of packing `lengths` into rows of `row` tokens."""
    sample = lengths[:: -(-len(lengths) // SAMPLE)]
    return (1 + row / cost_tokens) * row * len(pack_rows(sample, row)) / sum(sample)


def shorter_rows_advice(lengths: list[int], row_tokens: int, quantum: int, batch_size: int) -> str | None:
    """On the GPU: what to pass for rows shorter than `row_tokens` when they would cost at least
    SHORTER_ROWS_WORTH less per real token, keeping about as many tokens a step; None if not.

    `lengths` are the examples' lengths already cut to max_seq_length; the suggested row holds
    the longest of them, so the suggested --max-seq-length truncates nothing.
    """
    if not lengths:
        return None
    best = choose_row_tokens(lengths, row_tokens, quantum, GPU_ROW_COST_TOKENS)
    if best >= row_tokens:
        return None
    now, then = row_cost(lengths, row_tokens, GPU_ROW_COST_TOKENS), row_cost(lengths, best, GPU_ROW_COST_TOKENS)
    saving = 1 - then / now
    if saving < SHORTER_ROWS_WORTH:
        return None
    rows = max(batch_size, round(batch_size * row_tokens / best))
    return (
        f"rows of {best} tokens would cost about {saving:.0%} less per real token on this data "
        f"(attention spans the whole row; the longest example has {max(lengths)} tokens): "
        f"--max-seq-length {best} --batch-size {rows} (max_seq_length: {best}, batch_size: {rows}) "
        "keeps about as many tokens a step"
    )


def collate_packed(
    rows: list[list[Any]], row_tokens: int, max_seq_length: int, n_rows: int
) -> tuple[Any, Any, Any, Any]:
    """(inputs, targets, weights, segments), each (n_rows, row_tokens).

    `rows` holds each row's dataset items ((tokens, prompt offset) pairs or token lists);
    rows past len(rows) are empty (weight 0), so the last batch of an epoch keeps the shape.
    """
    import mlx.core as mx

    inputs = np.zeros((n_rows, row_tokens), np.int32)
    targets = np.zeros((n_rows, row_tokens), np.int32)
    weights = np.zeros((n_rows, row_tokens), np.float32)
    segments = np.zeros((n_rows, row_tokens), np.int32)
    for r, items in enumerate(rows):
        s = 0
        for k, item in enumerate(items, start=1):
            toks, offset = (item[0], item[1]) if isinstance(item, tuple) else (item, 0)
            n = min(len(toks), max_seq_length, row_tokens)
            inputs[r, s : s + n] = toks[:n]
            targets[r, s : s + n - 1] = toks[1:n]
            # target token t (1 <= t < n) is predicted at position s + t - 1; the prompt's
            # tokens (t < offset) are not scored, as in mlx-lm's mask
            first = max(offset, 1)
            if first < n:
                weights[r, s + first - 1 : s + n - 1] = 1.0
            segments[r, s : s + n] = k
            s += n
    return mx.array(inputs), mx.array(targets), mx.array(weights), mx.array(segments)


def block_causal_mask(segments: Any) -> Any:
    """(B, 1, L, L) bool: position i sees j <= i of its own example (padding sees padding)."""
    import mlx.core as mx

    length = segments.shape[1]
    same = segments[:, :, None] == segments[:, None, :]
    idx = mx.arange(length)
    causal = idx[:, None] >= idx[None, :]
    return mx.logical_and(same, causal)[:, None]


class _Packed:
    """The mask of the packed batch being traced (set by the loss, read by the model)."""

    mask: Any = None
    calls = 0
    active = 0


def _model_modules(model: Any) -> set[Any]:
    return {
        sys.modules[type(m).__module__]
        for m in [model, *(v for _, v in model.named_modules())]
        if hasattr(sys.modules.get(type(m).__module__), "create_attention_mask")
    }


@contextmanager
def packed_attention(model: Any) -> Iterator[None]:
    """For a packed run: the model's attention takes the packed mask while one is set.

    Two names of the model's module are swapped: `create_attention_mask` (returns the packed
    mask; the causal one when none is set, as for validation) and `scaled_dot_product_attention`
    (the mask under stop_gradient). The second is needed because gradient checkpointing makes
    the mask an input of each checkpointed block, and MLX's fused attention has no gradient with
    respect to a mask (on CUDA it raises). The swap lasts the whole run: the backward pass of a
    checkpointed block traces the block again, after the loss function has returned.
    """
    import mlx.core as mx

    modules = _model_modules(model)
    saved: dict[Any, tuple[Any, Any]] = {
        mod: (mod.create_attention_mask, getattr(mod, "scaled_dot_product_attention", None))
        for mod in modules
    }

    def wrap(mod: Any) -> tuple[Any, Any]:
        original_mask, original_sdpa = saved[mod]

        def create_mask(
            h: Any, cache: Any = None, window_size: int | None = None, return_array: bool = False
        ) -> Any:
            if _Packed.mask is None or cache is not None:
                return original_mask(h, cache, window_size=window_size, return_array=return_array)
            _Packed.calls += 1
            mask = _Packed.mask
            if window_size:
                idx = mx.arange(mask.shape[-1])
                return mx.logical_and(mask, (idx[:, None] - idx[None, :]) < window_size)
            return mask

        def sdpa(*args: Any, **kwargs: Any) -> Any:
            if isinstance(kwargs.get("mask"), mx.array):
                kwargs["mask"] = mx.stop_gradient(kwargs["mask"])
            elif len(args) > 5 and isinstance(args[5], mx.array):
                args = (*args[:5], mx.stop_gradient(args[5]), *args[6:])
            return original_sdpa(*args, **kwargs)

        return create_mask, sdpa if original_sdpa is not None else None

    for mod in modules:
        create_mask, sdpa = wrap(mod)
        mod.create_attention_mask = create_mask
        if sdpa is not None:
            mod.scaled_dot_product_attention = sdpa
    _Packed.active += 1
    try:
        yield
    finally:
        _Packed.active -= 1
        for mod, (original_mask, original_sdpa) in saved.items():
            mod.create_attention_mask = original_mask
            if original_sdpa is not None:
                mod.scaled_dot_product_attention = original_sdpa


@contextmanager
def block_mask(model: Any, mask: Any) -> Iterator[None]:
    """While tracing the model's forward pass, its attention uses `mask` (packed_attention
    for the whole run, or for this forward pass alone when no run holds it)."""
    outer = packed_attention(model) if not _Packed.active else None
    if outer is not None:
        outer.__enter__()
    calls = _Packed.calls
    _Packed.mask = mask
    try:
        yield
    finally:
        _Packed.mask = None
        if outer is not None:
            outer.__exit__(None, None, None)
    if _Packed.calls == calls:
        raise TrainingError(
            f"pack: this model ({type(model).__module__}) builds its attention mask its own way, "
            "so examples packed in one row would see each other; train it without pack"
        )
