"""On the CPU, the frozen float16/bfloat16 weights of a model that computes in float32 become
float32 for the run, and go back when it ends.

Many float checkpoints keep their norms in float32 and their matrices in float16 (the demo
model dequantized by mlx-lm is one). The first norm then makes the hidden state float32, and
every matmul after it promotes its half-precision weight to float32 again, at every call,
forward and backward: the 49k x 576 tied head of SmolLM2 alone is 28 M conversions twice a
step. MLX's CPU back-end converts on one thread, without vector instructions. Converting once
gives the same numbers (float16 and bfloat16 values are exact in float32, and the matmuls
already ran in float32): benchmarks/profile_cpu_step.py --ab measured the same loss and
a 7% shorter step on the demo model.

Not done: on the GPU (half-precision matmuls are fast there), when the copies would take more
than a quarter of the memory available, for a model whose floating
parameters are all half precision (it computes in half precision; float32 would change its
numbers), for quantized layers (their scales set the output dtype), and for full fine-tuning
(the trained weights stay in the dtype mlx-lm trains them in).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

# The float32 copies may take at most this share of the memory available now.
MAX_SHARE_OF_AVAILABLE = 0.25


def _half_weights(model: Any) -> list[tuple[Any, str]]:
    """(module, name) of every frozen half-precision array of the non-quantized modules."""
    import mlx.core as mx
    from mlx.utils import tree_flatten

    flat: Any = tree_flatten(model.trainable_parameters())
    trained = {id(v) for _, v in flat}
    found = []
    for _, module in model.named_modules():
        if hasattr(module, "bits"):  # QuantizedLinear / QuantizedEmbedding / their switch kin
            continue
        for key, value in module.items():
            if (
                isinstance(value, mx.array)
                and value.dtype in (mx.float16, mx.bfloat16)
                and id(value) not in trained
            ):
                found.append((module, key))
    return found


def _fits(extra_bytes: int) -> bool:
    import psutil  # type: ignore[import-untyped]

    return extra_bytes <= MAX_SHARE_OF_AVAILABLE * psutil.virtual_memory().available


def computes_in_float32(model: Any) -> bool:
    """True when a float32 parameter (a norm's weight) promotes the hidden state to float32."""
    import mlx.core as mx
    from mlx.utils import tree_flatten

    flat: Any = tree_flatten(model.parameters())
    return any(v.dtype == mx.float32 for _, v in flat)


def widen_half_weights(model: Any, fine_tune_type: str) -> Callable[[], None] | None:
    """Cast the model's half-precision weights to float32 when that changes no number (module
    doc); returns what puts them back (exactly: the values came from that dtype), else None."""
    import mlx.core as mx

    if mx.default_device() != mx.cpu or fine_tune_type == "full":
        return None
    half = _half_weights(model)
    if not half or not computes_in_float32(model):
        return None
    if not _fits(sum(module[key].nbytes for module, key in half)):  # float32 doubles them
        return None
    dtypes = [module[key].dtype for module, key in half]
    for module, key in half:
        module[key] = module[key].astype(mx.float32)
    mx.eval([module[key] for module, key in half])

    def restore() -> None:
        for (module, key), dtype in zip(half, dtypes, strict=True):
            module[key] = module[key].astype(dtype)
        mx.eval([module[key] for module, key in half])

    return restore
