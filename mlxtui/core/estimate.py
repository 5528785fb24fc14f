"""Pre-flight estimate of a training run's peak MLX memory, from the loaded model's real shapes.

`profile_model(model)` reads the shapes once (no compute); `estimate_peak(profile, inputs)` is
pure arithmetic, so the dashboard can re-estimate on every keystroke and `suggest_options`
can price alternatives. The activation coefficients were fitted to peaks measured with
`measure_peak` (the trainer's compiled step, mlx 0.32.4 CPU) on llama models of many shapes
and checked on SmolLM2-135M shapes; `benchmarks/bench_estimate.py` prints the table.

The figure is the MLX allocator peak (what `mx.get_peak_memory()` and mlx-lm's "Peak mem"
report), not the process RSS: Python and the libraries add a few hundred MB on top.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

FineTuneType = Literal["lora", "dora", "full"]
Verdict = Literal["fits", "tight", "will swap"]

# verdict(): share of available memory the run may take
FITS_FRACTION = 0.70
TIGHT_FRACTION = 1.00

# mlx-lm's iterate_batches pads every batch to 1 + a multiple of this.
PAD_TO = 32

# Activation bytes per token, fitted on fp32 models (bytes = 4 * coefficient * dimension):
# logits and their gradient (per vocab entry), per trained layer (per hidden, per FFN unit,
# per head x sequence position for attention scores), and embeddings/final norm (per hidden).
COEF_VOCAB = 3.88
COEF_LAYER_HIDDEN = 3.73
COEF_LAYER_FFN = 7.16
COEF_LAYER_ATTN = 1.10
COEF_OUTER_HIDDEN = 23.5
# Measured ratio of activation memory in bf16/fp16 to fp32: LoRA outputs and the loss stay fp32
# inside the layers; the logits halve.
HALF_PRECISION_ACTIVATION_FACTOR = 0.68
HALF_PRECISION_LOGITS_FACTOR = 0.5
# Gradient checkpointing keeps each trained layer's input and recomputes one layer at a time;
# the recompute of one layer overlaps the previous layer's gradients.
CHECKPOINT_LAYER_FACTOR = 1.3
# DoRA keeps a dequantized copy of each adapted weight plus the adapted weight for the norm.
DORA_WEIGHT_COPIES = 2.0
# Quantized matmuls on the base add temporaries (measured +3%).
QUANTIZED_ACTIVATION_FACTOR = 1.03
# On the CPU back-end a float16 model with quantized weights keeps its logits temporaries in
# float32 (measured on the demo model: 2x the bf16 figure); Metal/CUDA were not measured.
CPU_FP16_QUANTIZED_LOGITS_FACTOR = 1.0
# CUDA QLoRA (dequant_matmul.py): float copies of the head and of a layer's weights alive at
# once, plus every trained layer's when nothing recomputes them; calibrated on one H200 run
# (3B 4-bit, 1 layer, checkpointing: peak 11.5 GB against 9.0 GB with the quantized kernel).
FLOAT_COPY_FACTOR = 2.5
# The suggestion "4-bit base" assumes mlx_lm.convert -q defaults.
SUGGEST_BITS = 4
SUGGEST_GROUP_SIZE = 64


@dataclass(frozen=True)
class LinearShape:
    key: str  # path inside its transformer layer, e.g. "self_attn.q_proj"
    in_dims: int
    out_dims: int
    bits: int | None  # None: not quantized
    group_size: int | None
    nbytes: int  # bytes it holds now (packed weight, scales, biases, bias)


@dataclass(frozen=True)
class ModelProfile:
    """Everything the estimate needs from a model, read once on the engine thread."""

    num_layers: int
    hidden_size: int
    intermediate_size: int
    num_heads: int
    vocab_size: int
    dtype_bytes: int  # bytes of an activation element (the model's float dtype)
    dtype_name: str
    weights_bytes: int  # all base parameters as loaded (adapters excluded)
    layer_linears: tuple[tuple[LinearShape, ...], ...]  # per transformer layer
    layer_param_bytes: tuple[int, ...]  # all parameters of each layer
    layer_full_trainable_elems: tuple[int, ...]  # elements full fine-tuning trains, per layer
    embedding_elems: int  # vocab x hidden, for the "4-bit base" re-estimate
    quant_bits: int | None  # bits of the quantized linears, None when not quantized
    device: str = "cpu"  # MLX default device type when profiled: "cpu" or "gpu"
    # training multiplies a quantized base as float (CUDA: core/training/dequant_matmul.py)
    float_matmuls: bool = False

    @property
    def total_parameters(self) -> int:
        n = self.embedding_elems
        for linears in self.layer_linears:
            n += sum(li.in_dims * li.out_dims for li in linears)
        return n


@dataclass(frozen=True)
class EstimateInputs:
    """The knobs of a run that change its memory; names and defaults follow mlx-lm."""

    fine_tune_type: FineTuneType = "lora"
    num_layers: int = 16  # -1: all
    lora_rank: int = 8
    lora_keys: tuple[str, ...] | None = None  # None: every linear of each layer, as mlx-lm
    optimizer: str = "adam"  # adam | adamw | sgd | adafactor | muon
    batch_size: int = 4
    token_lengths: tuple[int, ...] = ()  # real tokenized lengths of the training set
    max_seq_length: int = 2048
    grad_checkpoint: bool = False
    base_bits: int | None = None  # re-estimate as if the base were quantized to these bits


@dataclass(frozen=True)
class MemoryEstimate:
    total_bytes: int
    breakdown: dict[str, int]
    verdict: Verdict | None  # None when the available memory is unknown
    available_bytes: int | None
    note: str = ""
    seq_length: int = 0  # tokens per row the model sees in the longest batch


@dataclass(frozen=True)
class Suggestion:
    label: str
    estimate_bytes: int
    inputs: EstimateInputs = field(repr=False, compare=False, default_factory=EstimateInputs)


# ---------------------------------------------------------------- reading the model


def _dtype_info(dtype: Any) -> tuple[int, str]:
    name = str(dtype).replace("mlx.core.", "")
    size = getattr(dtype, "size", None)
    return (int(size) if size else 4), name


def profile_model(model: Any) -> ModelProfile:
    """Read shapes, bits and bytes from a loaded mlx-lm model (before or after LoRA conversion).

    Runs on the engine thread: it touches MLX arrays' metadata only (no evaluation).
    """
    import mlx.nn as nn

    layers = list(model.layers)
    adapter_leaves = {"lora_a", "lora_b", "m"}
    weights_bytes = 0
    float_dtype = None
    for name, arr in _leaves(model.parameters()):
        if name.rsplit(".", 1)[-1] in adapter_leaves:
            continue
        weights_bytes += arr.nbytes
        if float_dtype is None and arr.dtype in (mx_float_types()):
            # Prefer a norm/scale dtype: quantized weights are uint32, scales carry the float type
            float_dtype = arr.dtype
    dtype_bytes, dtype_name = _dtype_info(float_dtype)

    layer_linears = []
    layer_bytes = []
    layer_float = []
    for layer in layers:
        linears = []
        for key, mod in layer.named_modules():
            base = getattr(mod, "linear", None)
            if base is not None and hasattr(mod, "lora_a"):
                continue  # the wrapped linear is listed under "<key>.linear"; re-key it below
            if key.endswith(".linear") and hasattr(_get(layer, key[: -len(".linear")]), "lora_a"):
                key = key[: -len(".linear")]
            if isinstance(mod, nn.QuantizedLinear):
                out_d, packed = mod.weight.shape
                in_d = packed * 32 // mod.bits
                nb = sum(a.nbytes for _, a in _leaves(mod.parameters()))
                linears.append(LinearShape(key, in_d, out_d, mod.bits, mod.group_size, nb))
            elif isinstance(mod, nn.Linear):
                out_d, in_d = mod.weight.shape
                nb = sum(a.nbytes for _, a in _leaves(mod.parameters()))
                linears.append(LinearShape(key, in_d, out_d, None, None, nb))
        layer_linears.append(tuple(linears))
        flat = [
            (n, a)
            for n, a in _leaves(layer.parameters())
            if n.rsplit(".", 1)[-1] not in adapter_leaves
        ]
        layer_bytes.append(sum(a.nbytes for _, a in flat))
        # QuantizedLinear keeps its weight, scales and biases frozen even when unfrozen
        quant_frozen = sum(
            a.size
            for _, m in layer.named_modules()
            if isinstance(m, nn.QuantizedLinear)
            for _, a in _leaves(m.parameters())
            if a.dtype in mx_float_types()
        )
        layer_float.append(
            sum(a.size for _, a in flat if a.dtype in mx_float_types()) - quant_frozen
        )

    args = getattr(model, "args", None)
    hidden = int(getattr(args, "hidden_size", 0) or 0)
    vocab = int(getattr(args, "vocab_size", 0) or 0)
    embed = _find_embedding(model)
    if embed is not None:
        v, h = _embedding_shape(embed)
        vocab = vocab or v
        hidden = hidden or h
    ffn = int(getattr(args, "intermediate_size", 0) or 0)
    if not ffn and layer_linears and layer_linears[0]:
        ffn = max(li.out_dims for li in layer_linears[0])
    heads = int(getattr(args, "num_attention_heads", 0) or 0)
    if not heads and layers:
        heads = int(getattr(getattr(layers[0], "self_attn", None), "n_heads", 0) or 8)
    bits = {li.bits for linears in layer_linears for li in linears if li.bits}
    return ModelProfile(
        num_layers=len(layers),
        hidden_size=hidden,
        intermediate_size=ffn,
        num_heads=heads,
        vocab_size=vocab,
        dtype_bytes=dtype_bytes,
        dtype_name=dtype_name,
        weights_bytes=weights_bytes,
        layer_linears=tuple(layer_linears),
        layer_param_bytes=tuple(layer_bytes),
        layer_full_trainable_elems=tuple(layer_float),
        embedding_elems=vocab * hidden,
        quant_bits=max(bits) if bits else None,
        device=_device_type(),
        float_matmuls=_float_matmuls(),
    )


def _float_matmuls() -> bool:
    from mlxtui.core.training.dequant_matmul import wanted

    return wanted()


def _device_type() -> str:
    import mlx.core as mx

    return "cpu" if mx.default_device().type == mx.cpu else "gpu"


def _leaves(tree: Any) -> list[tuple[str, Any]]:
    from mlx.utils import tree_flatten

    flat: Any = tree_flatten(tree)
    return list(flat)


def mx_float_types() -> tuple[Any, ...]:
    import mlx.core as mx

    return (mx.float32, mx.float16, mx.bfloat16)


def _get(module: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        module = module[int(part)] if isinstance(module, list) else getattr(module, part, None)
        if module is None:
            return None
    return module


def _find_embedding(model: Any) -> Any:
    for _, mod in model.named_modules():
        if type(mod).__name__ in ("Embedding", "QuantizedEmbedding"):
            return mod
    return None


def _embedding_shape(embed: Any) -> tuple[int, int]:
    v, cols = embed.weight.shape
    bits = getattr(embed, "bits", None)
    return int(v), int(cols * 32 // bits) if bits else int(cols)


# ---------------------------------------------------------------- arithmetic


def padded_length(token_lengths: Sequence[int], max_seq_length: int) -> int:
    """Row length of the longest batch as mlx-lm pads it: 1 + 32*ceil(len/32), capped."""
    if not token_lengths:
        return max_seq_length
    longest = max(token_lengths)
    return min(1 + PAD_TO * math.ceil(longest / PAD_TO), max_seq_length)


def verdict(total: int, available: int) -> Verdict:
    if total < FITS_FRACTION * available:
        return "fits"
    if total < TIGHT_FRACTION * available:
        return "tight"
    return "will swap"


def _trained_layers(profile: ModelProfile, num_layers: int) -> int:
    if num_layers < 0:
        return profile.num_layers
    return min(num_layers, profile.num_layers)


def _quantized_bytes(elems: int, bits: int, group: int, dtype_bytes: int) -> int:
    # packed weight + one scale and one bias per group
    return elems * bits // 8 + 2 * (elems // group) * dtype_bytes


def _weights_bytes(profile: ModelProfile, base_bits: int | None) -> int:
    if base_bits is None or profile.quant_bits is not None:
        return profile.weights_bytes
    # Re-price every linear and the embedding as quantized; norms stay as they are.
    total = profile.weights_bytes
    for linears in profile.layer_linears:
        for li in linears:
            elems = li.in_dims * li.out_dims
            total -= li.nbytes
            total += _quantized_bytes(elems, base_bits, SUGGEST_GROUP_SIZE, profile.dtype_bytes)
    emb_float = profile.embedding_elems * profile.dtype_bytes
    total -= emb_float
    total += _quantized_bytes(
        profile.embedding_elems,
        base_bits,
        SUGGEST_GROUP_SIZE,
        profile.dtype_bytes,
    )
    return total


def _optimizer_state_bytes(optimizer: str, param_shapes: list[tuple[int, int]], nbytes: int) -> int:
    """param_shapes: (rows, cols) of each trainable matrix (cols 0 for vectors)."""
    name = optimizer.lower()
    if name in ("adam", "adamw"):
        return 2 * nbytes
    if name in ("sgd", "muon"):
        return nbytes  # mlx's SGD allocates its momentum buffer even at momentum 0
    if name == "adafactor":
        # factored second moments: one row and one column vector per matrix
        elem = nbytes // max(sum(r * max(c, 1) for r, c in param_shapes), 1)
        return sum((r + c) if c else r for r, c in param_shapes) * max(elem, 1)
    return 2 * nbytes


def estimate_peak(
    profile: ModelProfile,
    inputs: EstimateInputs,
    available_bytes: int | None = None,
    resident_bytes: int | None = None,
) -> MemoryEstimate:
    """Estimate the peak MLX memory of training `profile` with `inputs`.

    resident_bytes: the part of the total already in memory (by default the loaded weights,
    since the model is loaded when this runs); the verdict compares the rest to
    available_bytes.
    """
    n_trained = _trained_layers(profile, inputs.num_layers)
    trained = range(profile.num_layers - n_trained, profile.num_layers)
    row = padded_length(inputs.token_lengths, inputs.max_seq_length)
    seq = max(row - 1, 1)  # the model sees batch[:, :-1]
    tokens = inputs.batch_size * seq
    quantized = (inputs.base_bits or profile.quant_bits) is not None
    act_bytes = 4  # coefficients are per fp32 element
    full_precision = profile.dtype_bytes >= 4
    act_factor = 1.0 if full_precision else HALF_PRECISION_ACTIVATION_FACTOR
    logits_factor = 1.0 if full_precision else HALF_PRECISION_LOGITS_FACTOR
    if quantized:
        act_factor *= QUANTIZED_ACTIVATION_FACTOR
        logits_factor *= QUANTIZED_ACTIVATION_FACTOR
        if profile.device == "cpu" and profile.dtype_name == "float16":
            logits_factor = CPU_FP16_QUANTIZED_LOGITS_FACTOR * QUANTIZED_ACTIVATION_FACTOR

    weights = _weights_bytes(profile, inputs.base_bits)

    # Trainable parameters: new adapters (LoRA/DoRA, fp32 as mlx-lm creates them) or the
    # float parameters of the trained layers (full; they are already inside `weights`).
    adapters = 0
    trainable_bytes = 0
    shapes: list[tuple[int, int]] = []
    dora_copies = 0
    if inputs.fine_tune_type == "full":
        for i in trained:
            elems = profile.layer_full_trainable_elems[i]
            if inputs.base_bits is not None and profile.quant_bits is None:
                # quantized linears would stay frozen: only norms and biases train
                elems -= sum(li.in_dims * li.out_dims for li in profile.layer_linears[i])
                shapes.append((max(elems, 0), 0))
            else:
                shapes.extend((li.out_dims, li.in_dims) for li in profile.layer_linears[i])
            trainable_bytes += max(elems, 0) * profile.dtype_bytes
    else:
        keys = set(inputs.lora_keys) if inputs.lora_keys is not None else None
        for i in trained:
            for li in profile.layer_linears[i]:
                if keys is not None and li.key not in keys:
                    continue
                n = inputs.lora_rank * (li.in_dims + li.out_dims)
                shapes.append((li.in_dims, inputs.lora_rank))
                shapes.append((inputs.lora_rank, li.out_dims))
                if inputs.fine_tune_type == "dora":
                    n += li.out_dims
                    shapes.append((li.out_dims, 0))
                    dora_copies += li.in_dims * li.out_dims
                adapters += 4 * n
        trainable_bytes = adapters

    gradients = trainable_bytes
    opt_state = _optimizer_state_bytes(inputs.optimizer, shapes, trainable_bytes)

    h, f = profile.hidden_size, profile.intermediate_size
    per_layer = (
        act_bytes
        * tokens
        * (COEF_LAYER_HIDDEN * h + COEF_LAYER_FFN * f + COEF_LAYER_ATTN * profile.num_heads * seq)
    )
    if inputs.grad_checkpoint and n_trained > 0:
        layer_inputs = act_bytes * tokens * h * n_trained
        activations = layer_inputs + CHECKPOINT_LAYER_FACTOR * per_layer
    else:
        activations = per_layer * n_trained
    activations *= act_factor
    activations += DORA_WEIGHT_COPIES * dora_copies * profile.dtype_bytes
    logits = act_bytes * tokens * COEF_VOCAB * profile.vocab_size * logits_factor
    overhead = act_bytes * tokens * COEF_OUTER_HIDDEN * h * act_factor

    float_copies = 0
    if quantized and profile.float_matmuls:
        layer_elems = [sum(li.in_dims * li.out_dims for li in ls) for ls in profile.layer_linears]
        copies = profile.embedding_elems + max(layer_elems, default=0)
        if not inputs.grad_checkpoint:
            copies += sum(layer_elems[i] for i in trained)
        float_copies = int(FLOAT_COPY_FACTOR * copies * profile.dtype_bytes)

    breakdown = {
        "weights": int(weights),
        "trainable params": int(adapters),
        "gradients": int(gradients),
        "optimizer state": int(opt_state),
        "activations": int(activations),
        "logits": int(logits),
        "overhead": int(overhead),
    }
    if float_copies:
        breakdown["float copies of the 4-bit base"] = float_copies
    total = sum(breakdown.values())
    resident = weights if resident_bytes is None else resident_bytes
    v = None if available_bytes is None else verdict(total - resident, available_bytes)
    note = (
        f"{inputs.batch_size} x {seq} tokens (longest batch), "
        f"{n_trained}/{profile.num_layers} layers, {inputs.fine_tune_type}"
        + (", grad checkpoint" if inputs.grad_checkpoint else "")
    )
    return MemoryEstimate(total, breakdown, v, available_bytes, note, seq)


def suggest_options(
    profile: ModelProfile, inputs: EstimateInputs, available_bytes: int | None = None
) -> list[Suggestion]:
    """The estimate for each alternative that changes something, smallest first."""
    candidates: list[tuple[str, EstimateInputs]] = []
    if inputs.batch_size > 1:
        candidates.append(
            (
                f"batch size {inputs.batch_size} → {inputs.batch_size // 2}",
                replace(inputs, batch_size=inputs.batch_size // 2),
            )
        )
    n = _trained_layers(profile, inputs.num_layers)
    if n > 1:
        candidates.append(
            (f"train {n // 2} layers instead of {n}", replace(inputs, num_layers=n // 2))
        )
    if not inputs.grad_checkpoint:
        candidates.append(("gradient checkpointing on", replace(inputs, grad_checkpoint=True)))
    row = padded_length(inputs.token_lengths, inputs.max_seq_length)
    if row > PAD_TO + 1:
        half = max(inputs.max_seq_length // 2, PAD_TO)
        if row > half:
            candidates.append(
                (
                    f"max_seq_length {inputs.max_seq_length} → {half}",
                    replace(inputs, max_seq_length=half),
                )
            )
    if profile.quant_bits is None and inputs.base_bits is None and inputs.fine_tune_type != "full":
        candidates.append(("4-bit base model (QLoRA)", replace(inputs, base_bits=SUGGEST_BITS)))
    base_total = estimate_peak(profile, inputs).total_bytes
    out = []
    for label, alt in candidates:
        total = estimate_peak(profile, alt, available_bytes).total_bytes
        if total < base_total:
            out.append(Suggestion(label, total, alt))
    return sorted(out, key=lambda s: s.estimate_bytes)


# ---------------------------------------------------------------- measuring


def measure_peak(
    model: Any,
    inputs: EstimateInputs,
    steps: int = 2,
    seed: int = 0,
) -> int:
    """Train `model` for `steps` real steps (the trainer's compiled step) and return the MLX peak.

    Sets the model up the way mlx_lm.lora does (freeze, LoRA/DoRA conversion or unfreeze the last
    layers), so it changes `model`: pass a fresh one. The batches are random tokens of the
    longest padded length. Engine thread only.
    """
    from functools import partial

    import mlx.core as mx
    import mlx.nn as nn
    import mlx.optimizers as optim
    from mlx_lm.tuner.trainer import default_loss, grad_checkpoint
    from mlx_lm.tuner.utils import linear_to_lora_layers

    mx.random.seed(seed)
    model.freeze()
    if inputs.fine_tune_type == "full":
        for layer in model.layers[-max(inputs.num_layers, 0) :]:
            layer.unfreeze()
    else:
        cfg: dict[str, Any] = {"rank": inputs.lora_rank, "scale": 20.0, "dropout": 0.0}
        if inputs.lora_keys is not None:
            cfg["keys"] = list(inputs.lora_keys)
        linear_to_lora_layers(
            model, inputs.num_layers, cfg, use_dora=inputs.fine_tune_type == "dora"
        )
    mx.eval(model.parameters())
    opt_cls = {
        "adam": optim.Adam,
        "adamw": optim.AdamW,
        "sgd": optim.SGD,
        "adafactor": optim.Adafactor,
    }[inputs.optimizer.lower()]
    optimizer = opt_cls(learning_rate=1e-5)
    layer_type = type(model.layers[0])
    original_call = layer_type.__call__
    try:
        # grad_checkpoint patches the layer class for the whole process: undone below.
        if inputs.grad_checkpoint:
            grad_checkpoint(model.layers[0])
        loss_and_grad = nn.value_and_grad(model, default_loss)
        state = [model.state, optimizer.state, mx.random.state]

        @partial(mx.compile, inputs=state, outputs=state)
        def step(batch: Any, lengths: Any) -> Any:
            (lvalue, toks), grad = loss_and_grad(model, batch, lengths)
            optimizer.update(model, grad)
            return lvalue, toks

        row = padded_length(inputs.token_lengths, inputs.max_seq_length)
        longest = min(max(inputs.token_lengths, default=row), row)
        vocab = model.args.vocab_size
        mx.clear_cache()
        mx.reset_peak_memory()
        for _ in range(steps):
            batch = mx.random.randint(0, vocab, (inputs.batch_size, row))
            lengths = mx.array([[0, longest]] * inputs.batch_size)
            lvalue, toks = step(batch, lengths)
            mx.eval(state, lvalue, toks)
        return int(mx.get_peak_memory())
    finally:
        layer_type.__call__ = original_call
