"""Write GGUF files as float16 or Q8_0, and the Ollama Modelfile that goes beside them.

float16 goes through `mx.save_gguf`, as mlx_lm.gguf does. MLX cannot write quantized GGUF
tensors, so Q8_0 goes through the `gguf` package (llama.cpp's own Python writer): its quantizer
makes blocks of 32 values with one float16 scale each, as llama.cpp's convert script does for
`--outtype q8_0`. Norms and other 1-D tensors stay float32; a matrix whose rows are not a
multiple of 32 stays float16.

The Modelfile lets `ollama create NAME -f Modelfile` run the file with the model's chat
format: a ChatML Jinja template (SmolLM2, Qwen, the tiny test models) becomes Ollama's Go
template with its stop tokens; any other template is left to the template stored in the GGUF
file, with a comment saying so, and the tokenizer's end tokens as stop words.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

GGUF_TYPES = ("f16", "q8_0")
MODELFILE_NAME = "Modelfile"
Q8_BLOCK = 32

CHATML_TEMPLATE = (
    "{{- range .Messages }}<|im_start|>{{ .Role }}\n"
    "{{ .Content }}<|im_end|>\n"
    "{{ end }}<|im_start|>assistant\n"
)
CHATML_STOPS = ("<|im_start|>", "<|im_end|>")


def default_gguf_name(gguf_type: str) -> str:
    """The file name mlx_lm.fuse uses for float16, and its Q8_0 sibling."""
    return f"ggml-model-{gguf_type}.gguf"


def check_gguf_type(gguf_type: str) -> str:
    if gguf_type not in GGUF_TYPES:
        raise ValueError(
            f"GGUF type {gguf_type!r} is not supported; choose one of {', '.join(GGUF_TYPES)}"
        )
    return gguf_type


# ------------------------------------------------------------------ tensors and metadata


def _q8_0_ok(shape: tuple[int, ...]) -> bool:
    return len(shape) >= 2 and shape[-1] % Q8_BLOCK == 0


def _value_type(value: Any) -> Any:
    """The GGUF value type of an mlx_lm.gguf metadata value (mx.array, str, list of str)."""
    from gguf import GGUFValueType

    if isinstance(value, str):
        return GGUFValueType.STRING
    if isinstance(value, bool):
        return GGUFValueType.BOOL
    if isinstance(value, int):
        return GGUFValueType.UINT32
    if isinstance(value, float):
        return GGUFValueType.FLOAT32
    if isinstance(value, list | tuple):
        return GGUFValueType.ARRAY
    return None


def _metadata_value(value: Any) -> tuple[Any, Any, Any]:
    """(python value, GGUF value type, sub type for arrays) from an mlx_lm.gguf metadata value."""
    import numpy as np
    from gguf import GGUFValueType

    if hasattr(value, "dtype") and hasattr(value, "tolist"):  # an mx.array
        arr = np.array(value)
        vtype = _numpy_value_type(arr.dtype)
        if arr.ndim == 0:
            return arr.item(), vtype, None
        return arr.tolist(), GGUFValueType.ARRAY, vtype
    vtype = _value_type(value)
    if vtype == GGUFValueType.ARRAY:
        sub = _value_type(value[0]) if len(value) else GGUFValueType.STRING
        return list(value), vtype, sub
    return value, vtype, None


def _numpy_value_type(dtype: Any) -> Any:
    import numpy as np
    from gguf import GGUFValueType

    table = {
        np.dtype(np.uint8): GGUFValueType.UINT8,
        np.dtype(np.int8): GGUFValueType.INT8,
        np.dtype(np.uint16): GGUFValueType.UINT16,
        np.dtype(np.int16): GGUFValueType.INT16,
        np.dtype(np.uint32): GGUFValueType.UINT32,
        np.dtype(np.int32): GGUFValueType.INT32,
        np.dtype(np.uint64): GGUFValueType.UINT64,
        np.dtype(np.int64): GGUFValueType.INT64,
        np.dtype(np.float32): GGUFValueType.FLOAT32,
        np.dtype(np.float64): GGUFValueType.FLOAT64,
        np.dtype(np.bool_): GGUFValueType.BOOL,
    }
    if np.dtype(dtype) not in table:
        raise ValueError(f"GGUF metadata cannot hold {dtype} values")
    return table[np.dtype(dtype)]


def _write_q8_0(path: Path, tensors: dict[str, Any], metadata: dict[str, Any]) -> None:
    import mlx.core as mx
    import numpy as np
    from gguf import GGMLQuantizationType, GGUFWriter, LlamaFileType
    from gguf.quants import quantize

    arch = str(metadata.get("general.architecture", "llama"))
    writer = GGUFWriter(str(path), arch)
    for key, value in metadata.items():
        if key == "general.architecture":  # the writer adds it
            continue
        if key == "general.file_type":
            writer.add_file_type(LlamaFileType.MOSTLY_Q8_0)
            continue
        val, vtype, sub = _metadata_value(value)
        writer.add_key_value(key, val, vtype, sub_type=sub)
    for name, t in tensors.items():
        arr = np.array(t.astype(mx.float32))
        if _q8_0_ok(arr.shape) and arr.ndim == 2 and "norm" not in name:
            writer.add_tensor(
                name,
                quantize(arr, GGMLQuantizationType.Q8_0),
                raw_dtype=GGMLQuantizationType.Q8_0,
            )
        elif arr.ndim == 1 or "norm" in name:
            writer.add_tensor(name, arr)
        else:
            writer.add_tensor(name, arr.astype(np.float16))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def write_gguf_file(
    out: Path, tensors: dict[str, Any], metadata: dict[str, Any], gguf_type: str
) -> None:
    """Write tensors (GGUF names, float16/float32 mx arrays) and metadata to out, atomically."""
    import mlx.core as mx

    check_gguf_type(gguf_type)
    out.parent.mkdir(parents=True, exist_ok=True)
    # mx.save_gguf appends ".gguf" to names without it; the temporary name keeps the suffix.
    tmp = out.with_name(f".{out.stem}.partial-{os.getpid()}.gguf")
    try:
        if gguf_type == "f16":
            mx.save_gguf(str(tmp), tensors, metadata)
        else:
            _write_q8_0(tmp, tensors, metadata)
        os.replace(tmp, out)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


# ------------------------------------------------------------------ Ollama Modelfile


def modelfile_path(gguf_file: Path) -> Path:
    return gguf_file.parent / MODELFILE_NAME


def modelfile_is_ours(path: Path, gguf_file: Path) -> bool:
    """True if path is absent or a Modelfile for gguf_file (safe to replace without force)."""
    if not path.exists():
        return True
    try:
        first = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError):
        return False
    return f"FROM ./{gguf_file.name}" in first


def is_chatml(template: str | None) -> bool:
    return bool(template) and all(tok in str(template) for tok in CHATML_STOPS)


def _default_system(template: str) -> str | None:
    """The system prompt a ChatML template inserts when the chat has none (SmolLM2 does)."""
    # the newline is a real one or Jinja's "\n" escape, as the template's author wrote it
    m = re.search(r"<\|im_start\|>system(?:\n|\\n)(.+?)<\|im_end\|>", template)
    if not m or "{{" in m.group(1) or "'" in m.group(1):
        return None
    return m.group(1)


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def modelfile_text(gguf_file: Path, template: str | None, eos_tokens: list[str]) -> str:
    """An Ollama Modelfile for gguf_file (which sits in the same folder)."""
    lines = [f"FROM ./{gguf_file.name}", ""]
    stops: list[str] = []
    if template and is_chatml(template):
        lines.append("# chat format: ChatML, converted from the model's Jinja chat template")
        lines.append(f'TEMPLATE """{CHATML_TEMPLATE}"""')
        system = _default_system(template)
        if system:
            lines.append(f'SYSTEM """{system}"""')
        stops += CHATML_STOPS
    else:
        lines.append(
            "# The model's chat template is not ChatML, so it is not converted to Ollama's Go\n"
            "# template here: Ollama uses the Jinja template stored in the GGUF file\n"
            "# (tokenizer.chat_template) where it recognises it; otherwise add a TEMPLATE\n"
            "# block by hand (https://github.com/ollama/ollama/blob/main/docs/modelfile.md)."
        )
    for tok in eos_tokens:
        if tok and tok not in stops:
            stops.append(tok)
    lines.append("")
    lines += [f"PARAMETER stop {_quote(s)}" for s in stops]
    return "\n".join(lines) + "\n"


def write_modelfile(gguf_file: Path, tokenizer: Any) -> Path:
    """Write the Modelfile beside gguf_file from the tokenizer's chat template and end tokens."""
    template = getattr(tokenizer, "chat_template", None)
    eos: list[str] = []
    for tok in (getattr(tokenizer, "eos_token", None),):
        if isinstance(tok, str):
            eos.append(tok)
    path = modelfile_path(gguf_file)
    tmp = path.with_name(f".{path.name}.partial-{os.getpid()}")
    tmp.write_text(modelfile_text(gguf_file, template if isinstance(template, str) else None, eos))
    os.replace(tmp, path)
    return path
