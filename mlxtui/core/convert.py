"""Convert a model between layouts: to MLX (mlx_lm.convert's options) and back to Hugging Face.

`convert_to_mlx` is mlx_lm.convert.convert on mlx-lm's own functions (load, quantize_model,
dequantize_model, save, the mixed-bit recipes), with mlxtui's sources (a local Hugging Face or
MLX folder, a .gguf file, 'demo'; a hub id only from the local cache or when the hub can be
reached) and its safe destination (written under a temporary name, renamed into place; an
existing folder replaced only with force, and only if it is a model folder).

`convert_to_hf` writes what `transformers` loads: float weights under Hugging Face's key names
in safetensors marked "pt", config.json without MLX's quantization entries, the tokenizer files
and generation_config.json. MLX's llama-family modules already use Hugging Face's key names;
what differs is undone here: quantization, and Q/K rows stored in GGUF's interleaved-RoPE order
(`rope_traditional`, a model imported from GGUF) which Hugging Face's llama does not know.

Both run on the engine thread (they call MLX).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mlxtui.core.fileio import path_inside, why_not_replace

Progress = Callable[[str, int, int], None]

# mlx_lm.convert's choices (0.32.2), repeated so the CLI's `--help` imports nothing heavy
DTYPES = ("float16", "bfloat16", "float32")
QUANT_RECIPES = ("mixed_2_6", "mixed_3_4", "mixed_3_6", "mixed_4_6")
Q_MODES = ("affine", "mxfp4", "nvfp4", "mxfp8")
# model types whose MLX parameter names are Hugging Face's (mlx-lm's sanitize only drops keys)
HF_ARCHITECTURES = {
    "llama": "LlamaForCausalLM",
    "mistral": "MistralForCausalLM",
    "qwen2": "Qwen2ForCausalLM",
    "qwen3": "Qwen3ForCausalLM",
}
# mlx_lm.utils.quantize_model's (group size, bits) when the flags leave them out
_MODE_DEFAULTS = {"affine": (64, 4), "mxfp4": (32, 4), "nvfp4": (16, 4), "mxfp8": (32, 8)}
_MLX_ONLY_CONFIG_KEYS = ("quantization", "quantization_config", "rope_traditional")


class ConvertError(ValueError):
    """The conversion cannot go on; the message says what and what to do."""


def _noop(message: str, done: int, total: int) -> None:
    pass


# ------------------------------------------------------------------ sources and destinations


def source_folder(spec: str | os.PathLike[str] | None) -> Path:
    """A local folder mlx-lm can load from what the user typed; a clear error otherwise."""
    from mlxtui.core import models

    if spec is None or not str(spec).strip():
        raise ConvertError(
            "no model to convert: pass --hf-path (a local Hugging Face or MLX folder, a .gguf file, or 'demo')"
        )
    path = Path(str(spec)).expanduser()
    if path.is_dir() and (path / "config.json").is_file() and not any(path.glob("*.safetensors")):
        found = ", ".join(sorted(p.name for p in path.iterdir())[:4])
        raise ConvertError(
            f"{path} has config.json but no .safetensors weights (it holds {found}…); mlx-lm reads "
            "only safetensors: save the model with `save_pretrained(..., safe_serialization=True)` first"
        )
    try:
        resolved = models.resolve_model(spec)
        if isinstance(resolved, str):  # a hub id: only a cached snapshot or a reachable hub will do
            hub = models._hub_source(resolved)
            if isinstance(hub, str):
                from mlx_lm.utils import _download

                return Path(_download(hub))
            return hub
        return resolved
    except models.ModelError as e:
        raise ConvertError(str(e)) from None



def check_destination(out: Path, force: bool, source: Path) -> None:
    """Refuse a destination that holds the source, or that exists (without force, or not a model)."""
    if path_inside(source, out) or path_inside(out, source):
        raise ConvertError(f"{out} and the source {source} overlap: choose another destination")
    if out.is_file():
        raise ConvertError(f"{out} is a file; give a folder name for the converted model")
    refused = why_not_replace(out, force)
    if refused:
        raise ConvertError(refused)


def _write_atomically(out: Path, write: Callable[[Path], None]) -> None:
    """`write(tmp)` a whole folder, then put it at `out`; the old one goes only after that."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.partial-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        write(tmp)
        old = None
        if out.exists():
            old = out.with_name(f".{out.name}.old-{os.getpid()}")
            out.rename(old)
        tmp.rename(out)
        if old is not None:
            shutil.rmtree(old)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _load(source: Path) -> tuple[Any, Any, dict[str, Any]]:
    from mlx_lm.utils import load

    try:
        model, tokenizer, config = load(str(source), return_config=True, lazy=True)  # type: ignore[misc]
    except Exception as e:  # noqa: BLE001 - mlx-lm raises many types for a bad folder
        raise ConvertError(f"cannot load {source}: {type(e).__name__}: {e}") from e
    return model, tokenizer, dict(config)


def _is_quantized(config: dict[str, Any]) -> bool:
    return bool(config.get("quantization") or config.get("quantization_config"))


def _cast(model: Any, dtype_name: str) -> None:
    """mlx_lm.convert's cast: floating parameters to dtype, except what the model keeps."""
    import mlx.core as mx
    from mlx.utils import tree_map_with_path

    dtype = getattr(mx, dtype_name)
    keep = getattr(model, "cast_predicate", lambda _: True)

    def cast(k: str, v: Any) -> Any:
        return v.astype(dtype) if keep(k) and mx.issubdtype(v.dtype, mx.floating) else v

    model.update(tree_map_with_path(cast, model.parameters()))


# ------------------------------------------------------------------ to MLX


def convert_to_mlx(
    hf_path: str | os.PathLike[str] | None,
    mlx_path: str | os.PathLike[str] = "mlx_model",
    *,
    quantize: bool = False,
    q_group_size: int | None = None,
    q_bits: int | None = None,
    q_mode: str = "affine",
    quant_predicate: str | None = None,
    dtype: str | None = None,
    dequantize: bool = False,
    force: bool = False,
    progress: Progress | None = None,
) -> Path:
    """mlx_lm.convert.convert with mlxtui's sources and safe destination; returns the folder."""
    from mlx_lm.convert import mixed_quant_predicate_builder
    from mlx_lm.utils import dequantize_model, quantize_model, save

    report = progress or _noop
    if quantize and dequantize:
        raise ConvertError("choose either --quantize or --dequantize, not both")
    if quant_predicate is not None and not quantize:
        raise ConvertError("--quant-predicate is a quantization recipe: add -q/--quantize")
    if dtype is not None and dtype not in DTYPES:
        raise ConvertError(f"--dtype must be one of {', '.join(DTYPES)}, not {dtype!r}")
    out = Path(mlx_path).expanduser()
    report("loading", 0, 3)
    source = source_folder(hf_path)
    check_destination(out, force, source)
    model, tokenizer, config = _load(source)
    if quantize and _is_quantized(config):
        bits = (config.get("quantization") or config.get("quantization_config") or {}).get(
            "bits", "?"
        )
        raise ConvertError(
            f"{source} is already quantized ({bits}-bit); convert it with --dequantize to a float "
            "copy first, then quantize that copy"
        )
    if dtype is None:
        dtype = config.get("torch_dtype") or (config.get("text_config") or {}).get("dtype")
    if dtype in DTYPES:
        _cast(model, str(dtype))
    if quantize:
        group, bits = _MODE_DEFAULTS.get(q_mode, (64, 4))
        group, bits = q_group_size or group, q_bits or bits
        report(f"quantizing ({bits}-bit, group size {group}, {q_mode})", 1, 3)
        predicate: Any = None
        if quant_predicate is not None:
            if q_mode != "affine":
                raise ConvertError("--quant-predicate recipes only support --q-mode affine")
            predicate = mixed_quant_predicate_builder(quant_predicate, model, group)
        said = io.StringIO()  # mlx-lm prints the bits per weight; it becomes a progress line
        try:
            with contextlib.redirect_stdout(said):
                model, config = quantize_model(
                    model, config, q_group_size, q_bits, mode=q_mode, quant_predicate=predicate
                )
        except ValueError as e:
            raise ConvertError(f"cannot quantize {source}: {e}") from e
        for line in said.getvalue().splitlines():
            report(line.removeprefix("[INFO] ").strip(), 1, 3)
    if dequantize:
        report("de-quantizing", 1, 3)
        config.pop("quantization", None)
        config.pop("quantization_config", None)
        model = dequantize_model(model)
    report(f"writing {out}", 2, 3)
    _write_atomically(
        out, lambda tmp: save(tmp, source, model, tokenizer, config, donate_model=False)
    )
    report(f"done: {out}", 3, 3)
    return out


# ------------------------------------------------------------------ to Hugging Face


def _unpermute_qk(weight: Any, n_head: int) -> Any:
    """GGUF's interleaved-RoPE row order back to Hugging Face's (the inverse of llama.cpp's permute)."""
    rows = weight.shape[0]
    return (
        weight.reshape(n_head, rows // n_head // 2, 2, *weight.shape[1:])
        .swapaxes(1, 2)
        .reshape(weight.shape)
    )


def hf_weights(weights: dict[str, Any], config: dict[str, Any]) -> dict[str, Any]:
    """MLX parameters (float) -> Hugging Face tensors: Q/K rows in HF's order when MLX keeps them
    interleaved (rope_traditional)."""
    if not config.get("rope_traditional"):
        return dict(weights)
    n_head = int(config["num_attention_heads"])
    n_kv = int(config.get("num_key_value_heads") or n_head)
    out = {}
    for k, v in weights.items():
        if k.endswith("self_attn.q_proj.weight") or k.endswith("self_attn.q_proj.bias"):
            v = _unpermute_qk(v, n_head)
        elif k.endswith("self_attn.k_proj.weight") or k.endswith("self_attn.k_proj.bias"):
            v = _unpermute_qk(v, n_kv)
        out[k] = v
    return out


def hf_config(config: dict[str, Any], dtype_name: str) -> dict[str, Any]:
    """config.json for transformers: no MLX-only keys, architectures and torch_dtype set."""
    out = {k: v for k, v in config.items() if k not in _MLX_ONLY_CONFIG_KEYS}
    out.pop("_name_or_path", None)
    out.setdefault("architectures", [HF_ARCHITECTURES[str(config["model_type"])]])
    out["torch_dtype"] = dtype_name
    return dict(sorted(out.items()))


def _write_hf_folder(
    tmp: Path, source: Path, model: Any, tokenizer: Any, config: dict[str, Any], dtype_name: str
) -> None:
    import mlx.core as mx
    from mlx.utils import tree_flatten
    from mlx_lm.utils import make_shards

    tmp.mkdir(parents=True)
    weights = hf_weights(dict(tree_flatten(model.parameters())), config)
    shards = make_shards(weights)
    name = "model-{:05d}-of-{:05d}.safetensors" if len(shards) > 1 else "model.safetensors"
    weight_map: dict[str, str] = {}
    for i, shard in enumerate(shards, start=1):
        file = name.format(i, len(shards))
        # transformers reads safetensors whose metadata says "pt"
        mx.save_safetensors(str(tmp / file), shard, metadata={"format": "pt"})
        weight_map.update(dict.fromkeys(shard, file))
    if len(shards) > 1:
        index = {
            "metadata": {"total_size": sum(v.nbytes for v in weights.values())},
            "weight_map": dict(sorted(weight_map.items())),
        }
        (tmp / "model.safetensors.index.json").write_text(json.dumps(index, indent=2))
    (tmp / "config.json").write_text(json.dumps(hf_config(config, dtype_name), indent=2))
    tokenizer.save_pretrained(str(tmp))
    generation = source / "generation_config.json"
    if generation.is_file():
        shutil.copy(generation, tmp / generation.name)
    else:
        gen = {k: config[k] for k in ("bos_token_id", "eos_token_id") if k in config}
        (tmp / "generation_config.json").write_text(json.dumps(gen, indent=2))


def convert_to_hf(
    mlx_path: str | os.PathLike[str] | None,
    hf_path: str | os.PathLike[str],
    *,
    dtype: str | None = None,
    force: bool = False,
    progress: Progress | None = None,
) -> Path:
    """Write the model (an MLX or GGUF source, quantized or not) in Hugging Face layout."""
    from mlx_lm.utils import dequantize_model

    report = progress or _noop
    if dtype is not None and dtype not in DTYPES:
        raise ConvertError(f"--dtype must be one of {', '.join(DTYPES)}, not {dtype!r}")
    out = Path(hf_path).expanduser()
    report("loading", 0, 3)
    source = source_folder(mlx_path)
    check_destination(out, force, source)
    model, tokenizer, config = _load(source)
    model_type = str(config.get("model_type", "unknown"))
    if model_type not in HF_ARCHITECTURES:
        raise ConvertError(
            f"writing Hugging Face layout supports {', '.join(HF_ARCHITECTURES)} models, not "
            f"{model_type!r} (its MLX weight names may differ from Hugging Face's); keep the MLX folder"
        )
    if _is_quantized(config):
        report("de-quantizing", 1, 3)
        model = dequantize_model(model)
    if dtype is None:
        # the stored float dtype (a de-quantized model takes its scales' dtype)
        import mlx.core as mx
        from mlx.utils import tree_flatten

        flat: Any = tree_flatten(model.parameters())
        floats = [v.dtype for _, v in flat if mx.issubdtype(v.dtype, mx.floating)]
        dtype = str(floats[0]).removeprefix("mlx.core.") if floats else "float16"
        dtype = dtype if dtype in DTYPES else "float16"
    _cast(model, dtype)
    report(f"writing {out}", 2, 3)
    _write_atomically(
        out, lambda tmp: _write_hf_folder(tmp, source, model, tokenizer, config, str(dtype))
    )
    report(f"done: {out}", 3, 3)
    return out
