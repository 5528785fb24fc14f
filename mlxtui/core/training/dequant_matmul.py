"""Quantized base layers multiplied as float ones while a QLoRA run trains on an NVIDIA GPU.

A QLoRA step pushes thousands of tokens through every frozen 4-bit layer. On MLX's CUDA
back-end (0.32) its quantized matmul is built for few rows (generation); at training's row
counts it reached about 12% of the H200's bf16 peak in a packed 3B 4-bit run, where the bf16
model's step reached 32% (issue 12, benchmarks/README.md). Dequantizing the layer's weight
(a cheap, memory-bound kernel over the 4-bit weight) and multiplying with cuBLAS computes the
same product: `dequantize` yields exactly the values that `quantized_matmul` multiplies by, so
only the order of the sums differs (tests/test_dequant_matmul.py compares the two).

Memory: the float copy of one weight lives while its matmul runs. A LoRA layer's base keeps it
until the backward pass (the input's gradient multiplies by it) unless gradient checkpointing
recomputes the layer; frozen layers below the first LoRA layer free it at once. The 4-bit
weights stay what is stored, saved and fused.

Only calls with at least MIN_ROWS rows take this path: generation (one row a step) keeps the
quantized kernel. The swap is per instance (the class of each quantized layer is switched to
a subclass for the run, then back), so another model in the process is never touched.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import mlx.core as mx
import mlx.nn as nn

MIN_ROWS = 64


def _rows(x: mx.array) -> int:
    return x.size // x.shape[-1] if x.ndim else 0


def _weight(layer: Any) -> mx.array:
    return mx.dequantize(
        layer["weight"],
        layer["scales"],
        layer.get("biases"),
        group_size=layer.group_size,
        bits=layer.bits,
        mode=layer.mode,
    )


class _FloatQuantizedLinear(nn.QuantizedLinear):
    def __call__(self, x: mx.array) -> mx.array:
        if _rows(x) < MIN_ROWS:
            return super().__call__(x)
        w = _weight(self).astype(x.dtype)
        if "bias" in self:
            flat = mx.addmm(self["bias"], x.reshape(-1, x.shape[-1]), w.T)
            return flat.reshape(*x.shape[:-1], w.shape[0])
        return x @ w.T


class _FloatQuantizedEmbedding(nn.QuantizedEmbedding):
    def as_linear(self, x: mx.array) -> mx.array:
        if _rows(x) < MIN_ROWS:
            return super().as_linear(x)
        return x @ _weight(self).astype(x.dtype).T


_SWAPS: dict[type, type] = {
    nn.QuantizedLinear: _FloatQuantizedLinear,
    nn.QuantizedEmbedding: _FloatQuantizedEmbedding,
}


def wanted() -> bool:
    """On MLX's CUDA back-end (the GPU measured). Metal's quantized kernels are another story,
    unmeasured here, and on the CPU a quantized base is dequantized once at load instead."""
    return mx.default_device() == mx.gpu and mx.cuda.is_available()


@contextmanager
def float_matmuls(model: Any, enabled: bool | None = None) -> Iterator[int]:
    """While the block runs, `model`'s affine-quantized layers multiply as float (see above).

    Yields how many layers were switched (0 when not `enabled`; None = `wanted()`).
    """
    switched: list[tuple[Any, type]] = []
    if enabled is None:
        enabled = wanted()
    if enabled:
        for _, m in model.named_modules():
            to = _SWAPS.get(type(m))
            if to is not None and getattr(m, "mode", "affine") == "affine":
                switched.append((m, type(m)))
                m.__class__ = to
    try:
        yield len(switched)
    finally:
        for m, cls in switched:
            m.__class__ = cls
