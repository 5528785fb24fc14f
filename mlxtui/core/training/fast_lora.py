"""A faster forward pass for mlx-lm's LoRA layers, with the same parameters and adapter files.

On an H200 a bf16 LoRA step of mlx-lm runs about 2,950 small kernels, about 900 of them the
rank-8 LoRA matmuls (issue 12): `LoRALinear.__call__` multiplies bf16 activations by float32
`lora_a`/`lora_b`, so every activation is promoted to float32, multiplied in float32 (split-K),
scaled and cast back, each a kernel over the whole activation. Two changes here:

1. In a bf16/fp16 model the LoRA matmuls run in the activations' dtype: `x @ A.astype(dt)`,
   then `mx.addmm(y, xa, (scale * B).astype(dt))` (the add in the matmul's epilogue, the
   scale on the small B instead of on an activation-sized product). The float32 parameters
   stay the optimizer's master copy; their gradients flow back through `astype`. A float32
   model computes what mlx-lm computes (apart from the shared A matmul below).
2. Projections that read the same input (q/k/v of attention, gate/up of the MLP) share one
   A-side matmul: `x @ concatenate([A_q, A_k, A_v], axis=1)`, split, each part `@ B`. The
   parameters stay separate (the concatenation is hidden x 3r, tiny), so parameter names,
   shapes, `adapters.safetensors`, `mlx_lm.load(..., adapter_path=...)` and fusing are mlx-lm's.

How the sharing reaches inside mlx-lm's attention code without copying it: the attention (or
MLP) instance's class is swapped for a subclass whose `__call__` computes the shared product
for its first argument, hands each LoRA child its part, then runs the original `__call__`. A
child uses the part only when it is called on that very array (`x is ...`), which is how the
llama/qwen2/qwen3/mistral/ministral3 families call `self.q_proj(x), self.k_proj(x),
self.v_proj(x)`; called on anything else it computes its own A product, so a family that
feeds its projections differently still gets plain (correct) LoRA. phi3 already has one
`qkv_proj` and one `gate_up_proj`: nothing to share there, the dtype change still applies.
The parts live only while the parent's call runs (cleared in `finally`), so nothing traced
outlives its trace under `mx.compile` or `mx.checkpoint`.

Dropout > 0: mlx-lm draws one dropout mask per LoRA layer on the layer's input, so q, k and v
see different inputs to their A matmuls; such a group is not fused (each layer keeps its own
dropout, in mlx-lm's order), only the dtype change applies. DoRA stays on mlx-lm's path
(`DoRALinear` also needs the norm of the adapted weight; not worth a second implementation).
"""

from __future__ import annotations

from typing import Any

import mlx.core as mx
from mlx_lm.tuner.lora import LoRALinear

# Sibling projections that the supported families call on one shared input.
SHARED_INPUT_GROUPS: tuple[tuple[str, ...], ...] = (
    ("q_proj", "k_proj", "v_proj"),
    ("gate_proj", "up_proj"),
)
_LOW_PRECISION = (mx.bfloat16, mx.float16)


class FastLoRALinear(LoRALinear):
    """mlx-lm's LoRALinear (same parameters, same `fuse`), with the faster forward pass.

    Instances are made by swapping the class of an existing LoRALinear, never constructed.
    """

    # The (input, x @ A) pair a fused parent hands over for the duration of its call.
    _shared: tuple[mx.array, mx.array] | None = None
    # How often a call used a shared product (read by tests and the benchmark, not by training).
    shared_calls: int = 0

    def __call__(self, x: mx.array) -> mx.array:
        dt = x.dtype
        low = dt in _LOW_PRECISION
        shared = self._shared
        if shared is not None and shared[0] is x:
            self.shared_calls += 1
            xa = shared[1]
        else:
            xa = self.dropout(x) @ (self.lora_a.astype(dt) if low else self.lora_a)
        y = self.linear(x)
        if low:
            # the scale goes into the small B, not the product: addmm's gradient multiplies the
            # whole activation-sized cotangent by alpha (twice) when alpha != 1
            # and on 2-D operands: with a batched `xa` addmm broadcasts B over the batch, and
            # B's gradient becomes a batched matmul plus a sum (matmul folds the batch itself)
            out = mx.addmm(
                y.reshape(-1, y.shape[-1]),
                xa.reshape(-1, xa.shape[-1]),
                (self.scale * self.lora_b).astype(dt),
            )
            return out.reshape(y.shape)
        z = xa @ self.lora_b
        return y + (self.scale * z).astype(dt)


def _no_dropout(m: LoRALinear) -> bool:
    """Dropout is the identity (p = 0, or evaluation mode): the layer's A input is its input."""
    return m.dropout._p_1 == 1.0 or not m.dropout.training


def _members(parent: Any, names: tuple[str, ...], calling: bool = True) -> list[FastLoRALinear]:
    """The group's LoRA children that can share one A matmul: same input size and, when
    `calling`, dropout off right now (it can be on in training and off in evaluation)."""
    found = [getattr(parent, n, None) for n in names]
    members = [m for m in found if type(m) is FastLoRALinear and (not calling or _no_dropout(m))]
    if len({m.lora_a.shape[0] for m in members}) != 1:
        return []
    return members


def _fused_call(self: Any, *args: Any, **kwargs: Any) -> Any:
    # the original class's __call__, looked up now (so a later patch of that class still acts)
    original = self._fast_lora_base.__call__
    x = args[0] if args else None
    if not isinstance(x, mx.array):
        return original(self, *args, **kwargs)
    handed: list[FastLoRALinear] = []
    for names in SHARED_INPUT_GROUPS:
        members = _members(self, names)
        if len(members) < 2:
            continue
        a = mx.concatenate([m.lora_a for m in members], axis=1)
        if x.dtype in _LOW_PRECISION:
            a = a.astype(x.dtype)
        xa = x @ a
        bounds, total = [], 0
        for m in members[:-1]:
            total += m.lora_a.shape[1]
            bounds.append(total)
        for m, part in zip(members, mx.split(xa, bounds, axis=-1), strict=True):
            object.__setattr__(m, "_shared", (x, part))
            handed.append(m)
    try:
        return original(self, *args, **kwargs)
    finally:
        for m in handed:
            object.__setattr__(m, "_shared", None)


_FUSED_CLASSES: dict[type, type] = {}


def _fused_class(cls: type) -> type:
    """A subclass of `cls` whose call shares the A matmul of its LoRA children (one per class)."""
    if cls not in _FUSED_CLASSES:
        _FUSED_CLASSES[cls] = type(
            cls.__name__,
            (cls,),
            {
                "__call__": _fused_call,
                "_fast_lora_base": cls,
                # packing.py finds the model's module through type(m).__module__
                "__module__": cls.__module__,
                "__qualname__": cls.__qualname__,
            },
        )
    return _FUSED_CLASSES[cls]


def is_fused(module: Any) -> bool:
    """True when `module` (an attention or MLP) shares one A matmul among its LoRA children."""
    return type(module) in _FUSED_CLASSES.values()


def speed_up_lora(model: Any) -> int:
    """Give every LoRALinear of `model` the fast forward and fuse the shared-input groups.

    Called after mlx-lm's `linear_to_lora_layers`. Returns the number of fused parents.
    Leaves DoRA layers, LoRA embeddings and switch (MoE) layers untouched.
    """
    fused = 0
    for _, module in model.named_modules():
        if type(module) is LoRALinear:
            module.__class__ = FastLoRALinear
    for _, module in model.named_modules():
        if is_fused(module):
            fused += 1
            continue
        if any(len(_members(module, names, calling=False)) >= 2 for names in SHARED_INPUT_GROUPS):
            module.__class__ = _fused_class(type(module))
            fused += 1
    return fused
