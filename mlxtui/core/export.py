"""Fuse an adapter into its base, export GGUF, upload to the Hugging Face hub.

Fusing follows `mlx_lm.fuse`: every LoRA/DoRA layer's `fuse()` folds the low-rank update into a
plain (or re-quantized) linear layer, then `mlx_lm.utils.save` writes weights, config and
tokenizer. Everything is written under a temporary name and renamed into place, and an existing
non-empty destination is only replaced with force (never the base model's own folder).

GGUF follows `mlx_lm.gguf` (llama, mistral, mixtral; float16 or Q8_0 weights, written with an
Ollama Modelfile by core/gguf_export.py; quantized models are de-quantized first) with two
fixes: a model whose Q/K weights are already in GGUF's interleaved
order (`rope_traditional`, e.g. one imported from GGUF) is not permuted twice, and a byte-level
BPE tokenizer is written as GGUF's "gpt2" model with its merges, as llama.cpp expects.

The MLX work runs on the engine thread; `upload_to_hub` is network only.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlxtui.core.fileio import REPLACE_REMEDY, path_inside, why_not_replace
from mlxtui.core.generation import adapter_modules, load_adapter_file, read_adapter_config
from mlxtui.core.gguf_export import (
    check_gguf_type,
    modelfile_is_ours,
    modelfile_path,
    write_gguf_file,
    write_modelfile,
)

Progress = Callable[[str, int, int], None]
GGUF_ARCHITECTURES = ("llama", "mistral", "mixtral")
DEFAULT_GGUF_NAME = "ggml-model-f16.gguf"
HUB_HOST = "huggingface.co"
HUB_PORT = 443
NO_TOKEN = "no Hugging Face token: run `huggingface-cli login` or set HF_TOKEN"


class ExportError(ValueError):
    """Fuse/export/upload cannot go on; the message says what and what to do."""


@dataclass
class _Loaded:
    model: Any
    tokenizer: Any
    config: dict[str, Any]
    source: Path  # the local model folder


# ------------------------------------------------------------------ loading and fusing


def _source_folder(model_spec: str | os.PathLike[str] | None) -> Path:
    from mlxtui.core import models

    resolved = models.resolve_model(model_spec)
    if isinstance(resolved, str):  # a hub id: a local snapshot, or a download when online
        from mlx_lm.utils import _download

        source = models._hub_source(resolved)
        return Path(_download(str(source))) if isinstance(source, str) else source
    return resolved


def _model_spec_from_adapter(adapter_path: Path | str | None) -> str | None:
    """The base named in the adapter's adapter_config.json ("model"); None without an adapter."""
    if adapter_path is None:
        return None
    model = read_adapter_config(Path(adapter_path)).get("model")
    if not model:
        raise ExportError(
            f"{adapter_path}: adapter_config.json names no base model ('model'); pass --model"
        )
    return str(model)


def _load(model_spec: str | os.PathLike[str] | None, adapter_path: Path | str | None) -> _Loaded:
    from mlx_lm.utils import load

    source = _source_folder(model_spec)
    try:
        model, tokenizer, config = load(str(source), return_config=True)  # type: ignore[misc]
    except Exception as e:  # noqa: BLE001 - mlx-lm raises many types for a bad folder
        raise ExportError(f"cannot load {source}: {e}") from e
    if adapter_path is not None:
        from mlxtui.core.models import check_adapter

        check_adapter(Path(adapter_path))  # a damaged or pickle adapter is named, not read
        load_adapter_file(model, Path(adapter_path).expanduser())
    return _Loaded(model, tokenizer, dict(config), source)


def fuse_in_place(model: Any, *, dequantize: bool = False) -> int:
    """Fold every LoRA/DoRA layer into its base layer; return how many were fused."""
    from mlx.utils import tree_unflatten

    from mlxtui.core.generation import set_adapter_enabled

    set_adapter_enabled(model, True)  # an adapter switched off has scale 0: fuse the real one
    fused = [(n, m.fuse(dequantize=dequantize)) for n, m in adapter_modules(model)]
    if fused:
        model.update_modules(tree_unflatten(fused))
    return len(fused)


def _dequantize(loaded: _Loaded) -> None:
    from mlx_lm.utils import dequantize_model

    loaded.model = dequantize_model(loaded.model)
    loaded.config.pop("quantization", None)
    loaded.config.pop("quantization_config", None)


# ------------------------------------------------------------------ safe destinations



def _check_destination(out: Path, force: bool, protected: list[Path]) -> None:
    for p in protected:
        if path_inside(p, out):
            raise ExportError(
                f"{out} holds {p} (the base model or the adapter): choose another destination"
            )
    if out.is_dir():
        refused = why_not_replace(out, force)
        if refused:
            raise ExportError(refused)
    elif out.exists():
        raise ExportError(f"{out} is a file; give a folder name for the fused model")


def _install_dir(tmp: Path, out: Path) -> None:
    """Put the finished folder `tmp` at `out`; the old one goes only once the new one is in place."""
    old = None
    if out.exists():
        old = out.with_name(f".{out.name}.old-{os.getpid()}")
        out.rename(old)
    tmp.rename(out)
    if old is not None:
        shutil.rmtree(old) if old.is_dir() else old.unlink()


# ------------------------------------------------------------------ fuse


def _save_folder(loaded: _Loaded, out: Path) -> None:
    from mlx_lm.utils import save

    tmp = out.with_name(f".{out.name}.partial-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        save(
            tmp,
            loaded.source,
            loaded.model,
            loaded.tokenizer,
            dict(loaded.config),
            donate_model=False,
        )
        _install_dir(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def fuse_adapter(
    model_spec: str | os.PathLike[str] | None,
    adapter_path: Path | str,
    out_dir: Path | str,
    *,
    dequantize: bool = False,
    force: bool = False,
    progress: Progress | None = None,
    gguf_file: Path | str | None = None,
    gguf_type: str = "f16",
) -> Path:
    """Write base + adapter fused into the MLX model folder `out_dir`; return it.

    model_spec None takes the base from the adapter's adapter_config.json ("model").
    gguf_file also writes a GGUF file of the fused model (de-quantized, then float16 or Q8_0
    as gguf_type says) and an Ollama Modelfile beside it.
    """
    report = progress or (lambda message, done, total: None)
    adapter_path = Path(adapter_path).expanduser()
    out = Path(out_dir).expanduser()
    model_spec = model_spec if model_spec is not None else _model_spec_from_adapter(adapter_path)
    total = 3 if gguf_file is None else 4
    report("loading the base model and the adapter", 0, total)
    source = _source_folder(model_spec)
    _check_destination(out, force, [source, adapter_path])
    if gguf_file is not None:
        _check_gguf_type(gguf_type)
        _check_gguf_destination(Path(gguf_file), force, model_spec, source)
        _check_gguf_architecture(source)
    loaded = _load(source, adapter_path)
    report("fusing the adapter into the base", 1, total)
    fuse_in_place(loaded.model, dequantize=dequantize)
    if dequantize:
        _dequantize(loaded)
    report(f"saving {out}", 2, total)
    _save_folder(loaded, out)
    if gguf_file is not None:
        report(f"writing GGUF {gguf_file}", 3, total)
        if loaded.config.get("quantization"):
            _dequantize(loaded)
        _write_gguf(loaded, Path(gguf_file), loaded.source, gguf_type)
    report(f"done: {out}", total, total)
    return out


# ------------------------------------------------------------------ GGUF


def _check_gguf_type(gguf_type: str) -> None:
    try:
        check_gguf_type(gguf_type)
    except ValueError as e:
        raise ExportError(str(e)) from None


def _check_gguf_architecture(source: Path) -> str:
    try:
        config = json.loads((source / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise ExportError(f"{source}/config.json: cannot read it ({e})") from None
    arch = str(config.get("model_type", "unknown"))
    if arch not in GGUF_ARCHITECTURES:
        raise ExportError(
            f"GGUF export does not support the {arch!r} architecture; supported: {', '.join(GGUF_ARCHITECTURES)} "
            "(fuse to an MLX folder instead, or convert with llama.cpp's convert_hf_to_gguf.py)"
        )
    return arch


def _check_gguf_destination(out: Path, force: bool, model_spec: Any, source: Path) -> None:
    if out.is_dir():
        raise ExportError(f"{out} is a folder; give a .gguf file name")
    if out.suffix.lower() != ".gguf":  # force must never replace a file of another kind
        raise ExportError(f"{out}: a GGUF file name must end in .gguf")
    spec_file = Path(str(model_spec)).expanduser() if model_spec is not None else None
    if spec_file is not None and spec_file.is_file() and spec_file.resolve() == out.resolve():
        raise ExportError(f"{out} is the model being exported: choose another file name")
    if path_inside(out, source):
        raise ExportError(f"{out} is inside the base model folder {source}: choose another place")
    if out.exists() and not force:
        raise ExportError(f"{out} exists; choose another file name or {REPLACE_REMEDY}")
    modelfile = modelfile_path(out)
    if not force and not modelfile_is_ours(modelfile, out):
        raise ExportError(
            f"{modelfile} exists and is not the Ollama Modelfile of {out.name}; "
            f"write the GGUF file into another folder or {REPLACE_REMEDY}"
        )


def _bpe_merges(tokenizer_json: Path) -> list[str] | None:
    """The merges of a BPE tokenizer.json as "a b" strings, or None for other tokenizers."""
    try:
        tok = json.loads(tokenizer_json.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    model = tok.get("model") or {}
    if model.get("type") != "BPE" or "merges" not in model:
        return None
    return [m if isinstance(m, str) else " ".join(m) for m in model["merges"]]


def gguf_tensors(
    weights: dict[str, Any], config: dict[str, Any], matrix_dtype: str = "float16"
) -> dict[str, Any]:
    """MLX weight names and layouts -> GGUF (llama.cpp) names, layouts and dtypes.

    Matrices become matrix_dtype: float16 for an f16 file, float32 as the Q8_0 quantizer's input
    (quantizing a float16 copy would add its rounding to 8-bit's)."""
    import mlx.core as mx
    from mlx_lm.gguf import permute_weights, translate_weight_names

    n_head = config["num_attention_heads"]
    n_kv = config.get("num_key_value_heads", n_head)
    # GGUF stores Q/K for interleaved RoPE; MLX's traditional RoPE already uses that order.
    permute = not config.get("rope_traditional", False)
    out = {}
    for k, v in weights.items():
        if permute and "self_attn.q_proj.weight" in k:
            v = permute_weights(v, n_head, n_head)
        elif permute and "self_attn.k_proj.weight" in k:
            v = permute_weights(v, n_head, n_kv)
        name = translate_weight_names(k)
        if "norm" in name or v.ndim == 1:
            v = v.astype(mx.float32)
        elif v.dtype != getattr(mx, matrix_dtype):
            v = v.astype(getattr(mx, matrix_dtype))
        out[name] = v
    return out


def _write_gguf(loaded: _Loaded, out: Path, tokenizer_dir: Path, gguf_type: str = "f16") -> None:
    """The GGUF file (gguf_type f16 or q8_0) and the Ollama Modelfile beside it."""
    from mlx.utils import tree_flatten
    from mlx_lm.gguf import HfVocab, prepare_metadata

    config = loaded.config
    if not (tokenizer_dir / "tokenizer.json").is_file():
        raise ExportError(f"{tokenizer_dir}: GGUF export needs tokenizer.json (a fast tokenizer)")
    matrix_dtype = "float16" if gguf_type == "f16" else "float32"
    tensors = gguf_tensors(dict(tree_flatten(loaded.model.parameters())), config, matrix_dtype)
    vocab = HfVocab.load(tokenizer_dir)
    metadata = prepare_metadata(config, vocab)
    merges = _bpe_merges(tokenizer_dir / "tokenizer.json")
    if merges is not None:
        metadata["tokenizer.ggml.model"] = "gpt2"
        metadata["tokenizer.ggml.merges"] = merges
    template = getattr(loaded.tokenizer, "chat_template", None)
    if isinstance(template, str) and template:
        metadata["tokenizer.chat_template"] = template
    write_gguf_file(out, tensors, metadata, gguf_type)
    write_modelfile(out, loaded.tokenizer)


def export_gguf(
    model_spec: str | os.PathLike[str] | None,
    adapter_path: Path | str | None,
    out_file: Path | str,
    *,
    force: bool = False,
    progress: Progress | None = None,
    gguf_type: str = "f16",
) -> Path:
    """Write the model (with the adapter fused in, if given) as a GGUF file, float16 or Q8_0,
    and an Ollama Modelfile beside it."""
    report = progress or (lambda message, done, total: None)
    out = Path(out_file).expanduser()
    _check_gguf_type(gguf_type)
    if out.suffix.lower() != ".gguf":
        raise ExportError(f"{out}: a GGUF file name must end in .gguf")
    if model_spec is None:
        model_spec = _model_spec_from_adapter(adapter_path)
    report("loading", 0, 3)
    source = _source_folder(model_spec)
    _check_gguf_architecture(source)
    _check_gguf_destination(out, force, model_spec, source)
    loaded = _load(source, adapter_path)
    report("fusing and de-quantizing", 1, 3)
    fuse_in_place(loaded.model, dequantize=True)
    _dequantize(loaded)
    report(f"writing {out}", 2, 3)
    _write_gguf(loaded, out, source, gguf_type)
    report(f"done: {out}", 3, 3)
    return out


# ------------------------------------------------------------------ hub


def hub_token(token: str | None = None) -> str | None:
    """The token from the argument, HF_TOKEN / HUGGING_FACE_HUB_TOKEN, or the local login cache."""
    if token:
        return token
    for var in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN"):
        if os.environ.get(var):
            return os.environ[var]
    try:
        from huggingface_hub import get_token

        return get_token()  # reads the token file only; no network
    except Exception:  # noqa: BLE001 - an unreadable cache means no token
        return None


def hub_reachable(timeout: float = 3.0) -> bool:
    """Whether a TCP connection to the hub opens within `timeout` seconds (DNS included).

    The connect runs in a plain daemon thread (no MLX there) because a stuck DNS lookup
    ignores socket timeouts.
    """
    ok: list[bool] = []

    def attempt() -> None:
        try:
            with socket.create_connection((HUB_HOST, HUB_PORT), timeout=timeout):
                ok.append(True)
        except OSError:
            ok.append(False)

    t = threading.Thread(target=attempt, daemon=True, name="mlxtui-hub-check")
    t.start()
    t.join(timeout + 0.5)
    return bool(ok and ok[0])


def upload_to_hub(
    folder: Path | str, repo_id: str, *, token: str | None = None, private: bool = False
) -> str:
    """Upload a model folder to `repo_id` on the hub; return the repo URL. Fails fast offline."""
    folder = Path(folder).expanduser()
    if not (folder / "config.json").is_file():
        raise ExportError(
            f"{folder} is not a model folder (no config.json); fuse first with `mlxtui fuse`"
        )
    if "/" not in repo_id:
        raise ExportError(f"repo id {repo_id!r} must look like owner/name")
    tok = hub_token(token)
    if not tok:
        raise ExportError(NO_TOKEN)
    if not hub_reachable():
        raise ExportError(
            f"{HUB_HOST} cannot be reached (no network?); the model stays in {folder}"
        )
    from huggingface_hub import HfApi

    api = HfApi(token=tok)
    try:
        url = api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
        api.upload_folder(folder_path=str(folder), repo_id=repo_id, repo_type="model")
    except Exception as e:  # noqa: BLE001 - hub errors (401, 403, network) have many types
        raise ExportError(f"upload to {repo_id} failed: {type(e).__name__}: {e}") from e
    return str(url)
