"""Convert a llama-architecture GGUF file into an MLX model folder that `mlx_lm.load` reads.

`mx.load` reads GGUF tensors itself: Q4_0, Q4_1 and Q8_0 come out already in MLX's affine
format (group size 32) and are kept quantized; F32 and F16 stay as they are, BF16 comes out as
F16; Q2_K, Q4_K and Q6_K come out dequantized to F16 and are quantized again to MLX affine
(3, 4 and 6 bits, group size 32) so a K-quant file does not grow fourfold. The header (tensor
types, metadata) is parsed here so an unsupported file is refused before anything is loaded,
naming the tensor and its type.
"""

from __future__ import annotations

import json
import mmap
import os
import shutil
import struct
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlx.core as mx

from mlxtui.core.fileio import REPLACE_REMEDY

Progress = Callable[[str, int, int], None]

# Bumped when the converted folder's layout changes, so cached conversions are redone.
IMPORT_FORMAT = 1
SUPPORTED_ARCHITECTURES = ("llama",)
SUPPORTED_TOKENIZERS = ("gpt2",)  # byte-level BPE: SmolLM, Llama 3, Qwen, GPT-2 style vocabularies

# GGML type ids (ggml.h) of the types mx.load reads.
GGML_TYPES = {0: "F32", 1: "F16", 2: "Q4_0", 3: "Q4_1", 8: "Q8_0", 10: "Q2_K", 12: "Q4_K"}
GGML_TYPES |= {14: "Q6_K", 30: "BF16"}
KEPT_QUANTIZED = {"Q4_0": 4, "Q4_1": 4, "Q8_0": 8}  # bits; mx.load gives group size 32
REQUANTIZED = {"Q2_K": 3, "Q4_K": 4, "Q6_K": 6}  # mx.load gives F16; quantized again to these bits
GROUP_SIZE = 32
SUPPORTED_TYPES = ("F32", "F16", "BF16", *KEPT_QUANTIZED, *REQUANTIZED)

# GGUF tensor name -> mlx-lm llama parameter name. Per-block names are under blk.N.
GLOBAL_NAMES = {
    "token_embd": "model.embed_tokens",
    "output_norm": "model.norm",
    "output": "lm_head",
}
BLOCK_NAMES = {
    "attn_norm": "input_layernorm",
    "ffn_norm": "post_attention_layernorm",
    "attn_q": "self_attn.q_proj",
    "attn_k": "self_attn.k_proj",
    "attn_v": "self_attn.v_proj",
    "attn_output": "self_attn.o_proj",
    "ffn_gate": "mlp.gate_proj",
    "ffn_up": "mlp.up_proj",
    "ffn_down": "mlp.down_proj",
}
SUFFIXES = ("weight", "bias", "scales", "biases")

# GGUF token types (llama.cpp llama_token_type).
TOKEN_NORMAL, TOKEN_UNKNOWN, TOKEN_CONTROL, TOKEN_USER_DEFINED = 1, 2, 3, 4

# Pre-tokenizer split patterns by `tokenizer.ggml.pre` (from llama.cpp's llama-vocab.cpp).
LLAMA3_PATTERN = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}"
    r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
QWEN2_PATTERN = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}"
    r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)


class GGUFError(ValueError):
    """The GGUF file cannot be converted; the message says why and what is supported."""


@dataclass(frozen=True)
class GGUFHeader:
    version: int
    metadata: dict[str, Any]
    tensor_types: dict[str, str]  # tensor name -> GGML type name (e.g. "Q4_1")
    tensor_shapes: dict[str, tuple[int, ...]]  # numpy order (rows last-dim-first reversed)


# ---------------------------------------------------------------- header


_SCALARS = {
    0: "<B",
    1: "<b",
    2: "<H",
    3: "<h",
    4: "<I",
    5: "<i",
    6: "<f",
    7: "<?",
    10: "<Q",
    11: "<q",
    12: "<d",
}


def read_header(path: Path) -> GGUFHeader:
    """Parse a GGUF header (v2/v3): metadata and tensor infos, without reading tensor data."""
    with open(path, "rb") as f:
        if f.read(4) != b"GGUF":  # also an empty file, which mmap refuses
            raise GGUFError(
                f"{path}: not a GGUF file (it does not start with 'GGUF'); "
                "is the download complete, or is it another format?"
            )
        with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as buf:
            try:
                return _parse_header(buf)
            except (struct.error, UnicodeDecodeError, IndexError) as e:
                raise GGUFError(
                    f"{path}: not a valid GGUF file ({e}); is the download complete?"
                ) from e


def _parse_header(buf: Any) -> GGUFHeader:
    if buf[:4] != b"GGUF":
        raise GGUFError("not a GGUF file (the first 4 bytes are not 'GGUF')")
    version, n_tensors, n_kv = struct.unpack_from("<IQQ", buf, 4)
    if version < 2:
        raise GGUFError(f"GGUF version {version} is too old; convert it again with llama.cpp")
    pos = 24

    def read_string() -> str:
        nonlocal pos
        (n,) = struct.unpack_from("<Q", buf, pos)
        s = bytes(buf[pos + 8 : pos + 8 + n]).decode("utf-8", errors="replace")
        pos += 8 + n
        return s

    def read_value(vtype: int) -> Any:
        nonlocal pos
        if vtype == 8:
            return read_string()
        if vtype == 9:
            etype, count = struct.unpack_from("<IQ", buf, pos)
            pos += 12
            if etype in _SCALARS:
                fmt = _SCALARS[etype]
                size = struct.calcsize(fmt)
                vals = list(struct.unpack_from(f"<{count}{fmt[1]}", buf, pos))
                pos += size * count
                return vals
            return [read_value(etype) for _ in range(count)]
        fmt = _SCALARS[vtype]
        (v,) = struct.unpack_from(fmt, buf, pos)
        pos += struct.calcsize(fmt)
        return v

    metadata: dict[str, Any] = {}
    for _ in range(n_kv):
        key = read_string()
        (vtype,) = struct.unpack_from("<I", buf, pos)
        pos += 4
        metadata[key] = read_value(vtype)
    types: dict[str, str] = {}
    shapes: dict[str, tuple[int, ...]] = {}
    for _ in range(n_tensors):
        name = read_string()
        (n_dims,) = struct.unpack_from("<I", buf, pos)
        dims = struct.unpack_from(f"<{n_dims}Q", buf, pos + 4)
        ttype, _offset = struct.unpack_from("<IQ", buf, pos + 4 + 8 * n_dims)
        pos += 4 + 8 * n_dims + 12
        types[name] = GGML_TYPES.get(ttype, _ggml_type_name(ttype))
        shapes[name] = tuple(reversed(dims))
    return GGUFHeader(version, metadata, types, shapes)


def _ggml_type_name(ttype: int) -> str:
    try:
        from gguf import GGMLQuantizationType

        return GGMLQuantizationType(ttype).name
    except (ImportError, ValueError):
        return f"type {ttype}"


# ---------------------------------------------------------------- checks and config


def check_supported(header: GGUFHeader, path: Path) -> None:
    """Raise GGUFError naming the first unsupported architecture, tensor type, tensor or tokenizer."""
    md = header.metadata
    arch = md.get("general.architecture", "<missing>")
    if arch not in SUPPORTED_ARCHITECTURES:
        raise GGUFError(
            f"{path.name}: architecture {arch!r} is not supported; "
            f"supported: {', '.join(SUPPORTED_ARCHITECTURES)}"
        )
    for name, ttype in header.tensor_types.items():
        if ttype not in SUPPORTED_TYPES:
            raise GGUFError(
                f"{path.name}: tensor {name} is {ttype}, which cannot be read; "
                f"supported tensor types: {', '.join(SUPPORTED_TYPES)}. "
                "Use a GGUF quantized as Q4_0, Q4_1, Q8_0, Q4_K_M or F16."
            )
    for name in header.tensor_types:
        if name.startswith("rope_freqs"):
            raise GGUFError(
                f"{path.name}: has {name} (Llama 3.1-style RoPE scaling), which is not supported "
                "yet; use the model's MLX or safetensors release instead"
            )
        _mlx_name(name)  # raises on an unknown tensor
    tok_model = md.get("tokenizer.ggml.model", "<missing>")
    if tok_model not in SUPPORTED_TOKENIZERS:
        raise GGUFError(
            f"{path.name}: tokenizer model {tok_model!r} is not supported; "
            f"supported: {', '.join(SUPPORTED_TOKENIZERS)} (byte-level BPE)"
        )
    scaling = md.get(f"{arch}.rope.scaling.type", "none")
    if scaling not in ("none", "linear"):
        raise GGUFError(f"{path.name}: RoPE scaling {scaling!r} is not supported (only linear)")


def _mlx_name(gguf_name: str) -> str:
    """Map a GGUF tensor name (as mx.load gives it) to the mlx-lm llama parameter name."""
    parts = gguf_name.split(".")
    if parts[-1] not in SUFFIXES:
        parts.append("weight")  # mx.load names a quantized tensor without ".weight" by its base
    suffix = parts[-1]
    base = parts[:-1]
    if len(base) == 1 and base[0] in GLOBAL_NAMES:
        return f"{GLOBAL_NAMES[base[0]]}.{suffix}"
    if len(base) == 3 and base[0] == "blk" and base[1].isdigit() and base[2] in BLOCK_NAMES:
        return f"model.layers.{base[1]}.{BLOCK_NAMES[base[2]]}.{suffix}"
    raise GGUFError(
        f"tensor {gguf_name!r} is not part of the llama architecture as mlxtui knows it "
        f"(known: {', '.join(GLOBAL_NAMES)}, blk.N.{{{', '.join(BLOCK_NAMES)}}})"
    )


def _meta_int(md: dict[str, Any], key: str, default: int | None = None) -> int:
    v = md.get(key, default)
    if v is None:
        raise GGUFError(f"the GGUF metadata has no {key}; the file is incomplete")
    return int(v[0] if isinstance(v, list) else v)


def build_config(header: GGUFHeader) -> dict[str, Any]:
    """The mlx-lm llama config.json (without quantization) from GGUF metadata."""
    md = header.metadata
    a = md["general.architecture"]
    hidden = _meta_int(md, f"{a}.embedding_length")
    heads = _meta_int(md, f"{a}.attention.head_count")
    head_dim = _meta_int(md, f"{a}.attention.key_length", hidden // heads)
    rope_dims = _meta_int(md, f"{a}.rope.dimension_count", head_dim)
    if rope_dims != head_dim:
        raise GGUFError(f"partial RoPE ({rope_dims} of {head_dim} dims) is not supported")
    vocab = header.tensor_shapes["token_embd.weight"][0]
    config: dict[str, Any] = {
        "model_type": "llama",
        "architectures": ["LlamaForCausalLM"],
        "hidden_size": hidden,
        "num_hidden_layers": _meta_int(md, f"{a}.block_count"),
        "intermediate_size": _meta_int(md, f"{a}.feed_forward_length"),
        "num_attention_heads": heads,
        "num_key_value_heads": _meta_int(md, f"{a}.attention.head_count_kv", heads),
        "head_dim": head_dim,
        # Stored as float32; %.7g gives back the 1e-05 the model was trained with.
        "rms_norm_eps": float(f"{md.get(f'{a}.attention.layer_norm_rms_epsilon', 1e-5):.7g}"),
        "rope_theta": float(md.get(f"{a}.rope.freq_base", 10000.0)),
        # llama.cpp's converter permutes the Q and K rows for interleaved (GPT-J style) RoPE.
        "rope_traditional": True,
        "max_position_embeddings": _meta_int(md, f"{a}.context_length", 2048),
        "vocab_size": vocab,
        "tie_word_embeddings": "output.weight" not in header.tensor_types,
        "attention_bias": "blk.0.attn_q.bias" in header.tensor_types,
        "mlp_bias": False,
    }
    if md.get(f"{a}.rope.scaling.type") == "linear":
        config["rope_scaling"] = {
            "type": "linear",
            "factor": float(md[f"{a}.rope.scaling.factor"]),
        }
    eos = _eos_ids(md)
    if eos:
        config["eos_token_id"] = eos[0] if len(eos) == 1 else eos
    if "tokenizer.ggml.bos_token_id" in md:
        config["bos_token_id"] = _meta_int(md, "tokenizer.ggml.bos_token_id")
    return config


def _eos_ids(md: dict[str, Any]) -> list[int]:
    # A chat model may end its turn with an EOT token distinct from EOS; generation stops on both.
    ids = [
        _meta_int(md, k)
        for k in ("tokenizer.ggml.eos_token_id", "tokenizer.ggml.eot_token_id")
        if k in md
    ]
    return list(dict.fromkeys(ids))


# ---------------------------------------------------------------- weights


def convert_weights(
    raw: dict[str, mx.array], header: GGUFHeader
) -> tuple[dict[str, mx.array], dict[str, Any] | None]:
    """Rename GGUF tensors to mlx-lm names, re-quantize K-quants; return weights and quantization.

    The quantization dict has the most common (group_size, bits) as default and a per-module
    entry for every module that differs (bits, or False for a float module), which mlx-lm's
    loader reads through its class_predicate.
    """
    weights: dict[str, mx.array] = {}
    module_quant: dict[str, int | None] = {}  # module path -> bits (None: float)
    for name, arr in raw.items():
        mlx_name = _mlx_name(name)
        module, suffix = mlx_name.rsplit(".", 1)
        ttype = header.tensor_types.get(name, "F32")
        if suffix == "weight" and ttype in REQUANTIZED and arr.ndim == 2:
            bits = REQUANTIZED[ttype]
            w, s, b = mx.quantize(arr, group_size=GROUP_SIZE, bits=bits)
            weights[f"{module}.weight"], weights[f"{module}.scales"] = w, s
            weights[f"{module}.biases"] = b
            module_quant[module] = bits
            continue
        weights[mlx_name] = arr
        if suffix == "weight" and arr.ndim == 2:
            module_quant[module] = KEPT_QUANTIZED.get(ttype)
    quantized = {m: b for m, b in module_quant.items() if b is not None}
    if not quantized:
        return weights, None
    default_bits = Counter(quantized.values()).most_common(1)[0][0]
    quant: dict[str, Any] = {"group_size": GROUP_SIZE, "bits": default_bits, "mode": "affine"}
    for module, module_bits in sorted(module_quant.items()):
        if module_bits is None:
            quant[module] = False
        elif module_bits != default_bits:
            quant[module] = {"group_size": GROUP_SIZE, "bits": module_bits, "mode": "affine"}
    return weights, quant


# ---------------------------------------------------------------- tokenizer


def build_tokenizer(md: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    """A `tokenizers.Tokenizer` (byte-level BPE) and its tokenizer_config.json from GGUF metadata."""
    from tokenizers import (
        AddedToken,
        Regex,
        Tokenizer,
        decoders,
        models,
        pre_tokenizers,
        processors,
    )

    tokens: list[str] = md["tokenizer.ggml.tokens"]
    merges = [tuple(m.split(" ", 1)) for m in md.get("tokenizer.ggml.merges", [])]
    types: list[int] = md.get("tokenizer.ggml.token_type", [TOKEN_NORMAL] * len(tokens))
    pre = md.get("tokenizer.ggml.pre", "default")
    vocab = {t: i for i, t in enumerate(tokens)}
    tok = Tokenizer(
        models.BPE(vocab=vocab, merges=merges, ignore_merges=pre in ("llama-bpe", "llama3"))
    )
    byte_level = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    if pre in ("llama-bpe", "llama3", "qwen2"):
        pattern = LLAMA3_PATTERN if pre != "qwen2" else QWEN2_PATTERN
        tok.pre_tokenizer = pre_tokenizers.Sequence(
            [
                pre_tokenizers.Split(Regex(pattern), behavior="isolated"),
                pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
            ]
        )
    elif pre in ("smollm", "starcoder"):
        tok.pre_tokenizer = pre_tokenizers.Sequence(
            [pre_tokenizers.Digits(individual_digits=True), byte_level]
        )
    else:  # "default", "gpt2" and the rest: GPT-2's own split
        tok.pre_tokenizer = byte_level
    tok.decoder = decoders.ByteLevel()

    added = [
        AddedToken(tokens[i], special=types[i] == TOKEN_CONTROL, normalized=False)
        for i in range(len(tokens))
        if types[i] in (TOKEN_CONTROL, TOKEN_USER_DEFINED)
    ]
    tok.add_tokens(added)

    def token(key: str) -> str | None:
        i = md.get(key)
        return tokens[int(i)] if i is not None and 0 <= int(i) < len(tokens) else None

    bos, eos = token("tokenizer.ggml.bos_token_id"), token("tokenizer.ggml.eos_token_id")
    add_bos = bool(md.get("tokenizer.ggml.add_bos_token", False)) and bos is not None
    byte_post = processors.ByteLevel(trim_offsets=False)
    if add_bos:
        bos_id = vocab[bos]  # type: ignore[index]
        template = processors.TemplateProcessing(
            single=f"{bos} $A", pair=f"{bos} $A {bos} $B", special_tokens=[(bos, bos_id)]
        )
        tok.post_processor = processors.Sequence([byte_post, template])
    else:
        tok.post_processor = byte_post

    config: dict[str, Any] = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "bos_token": bos,
        "eos_token": eos,
        "unk_token": token("tokenizer.ggml.unknown_token_id"),
        "pad_token": token("tokenizer.ggml.padding_token_id"),
        "add_bos_token": add_bos,
        "add_eos_token": False,
        "clean_up_tokenization_spaces": False,
        "model_max_length": _meta_int(md, f"{md['general.architecture']}.context_length", 2048),
        "additional_special_tokens": [t.content for t in added if t.special],
    }
    if "tokenizer.chat_template" in md:
        config["chat_template"] = md["tokenizer.chat_template"]
    return tok, config


# ---------------------------------------------------------------- the import


def import_gguf(
    gguf_path: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    progress: Progress | None = None,
    *,
    overwrite: bool = False,
) -> Path:
    """Convert a llama GGUF file into an MLX model folder at out_dir and return out_dir.

    The folder is built under a temporary name beside out_dir and renamed when complete, so a
    crash never leaves a half-written model. A non-empty out_dir is refused unless overwrite.
    """
    src, dst = Path(gguf_path).expanduser(), Path(out_dir).expanduser()
    report = progress or (lambda message, done, total: None)
    total = 5
    if src.is_dir():
        raise GGUFError(f"{src} is a folder; give the .gguf file")
    if not src.is_file():
        raise GGUFError(f"no such GGUF file: {src}")
    if dst.exists() and (not dst.is_dir() or any(dst.iterdir())):
        if not overwrite:
            raise GGUFError(
                f"{dst} already exists and is not empty; choose another folder or {REPLACE_REMEDY}"
            )
        _check_replaceable(dst, src)

    report(f"reading {src.name}", 0, total)
    header = read_header(src)
    check_supported(header, src)
    config = build_config(header)

    report("loading tensors", 1, total)
    try:
        raw = mx.load(str(src))
    except RuntimeError as e:  # mx.load names no tensor; the header check above catches most
        raise GGUFError(f"{src}: MLX cannot read the tensors ({e})") from e
    assert isinstance(raw, dict)
    weights, quant = convert_weights(raw, header)
    del raw
    if quant is not None:
        config["quantization"] = quant
        config["quantization_config"] = quant

    report("building tokenizer", 2, total)
    tokenizer, tok_config = build_tokenizer(header.metadata)

    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.parent / f".{dst.name}.importing-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        report("writing weights", 3, total)
        mx.save_safetensors(str(tmp / "model.safetensors"), weights, metadata={"format": "mlx"})
        (tmp / "config.json").write_text(json.dumps(dict(sorted(config.items())), indent=2))
        report("writing tokenizer", 4, total)
        tokenizer.save(str(tmp / "tokenizer.json"))
        (tmp / "tokenizer_config.json").write_text(json.dumps(tok_config, indent=2))
        source = {
            "gguf": str(src),
            "size": src.stat().st_size,
            "name": _model_name(header, src),
            "format": IMPORT_FORMAT,
        }
        (tmp / "mlxtui_import.json").write_text(json.dumps(source, indent=2))
        _replace_dir(tmp, dst)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    report(f"converted into {dst}", total, total)
    return dst


def _check_replaceable(dst: Path, src: Path) -> None:
    """overwrite replaces an earlier model folder, never a file or a folder of other things.

    `import-gguf model.gguf . --force` would otherwise delete the working folder, GGUF included.
    """
    if not dst.is_dir():
        raise GGUFError(f"{dst} is a file and only a model folder is ever replaced: choose a folder")
    if src.resolve().is_relative_to(dst.resolve()):
        raise GGUFError(f"{dst} holds the GGUF file itself; choose another output folder")
    if not (dst / "config.json").is_file():
        shown = ", ".join(sorted(p.name for p in dst.iterdir())[:3])
        raise GGUFError(
            f"{dst} is not a model folder (no config.json; it holds {shown}…) and only a model "
            "folder is ever replaced: choose a new or empty folder"
        )


def _model_name(header: GGUFHeader, src: Path) -> str:
    # The file name says the model and its quantization ("SmolLM2-135M-Instruct.Q4_1");
    # general.name is often a training-run label.
    return src.stem or str(header.metadata.get("general.name", "model"))


def _replace_dir(new: Path, dst: Path) -> None:
    """Move the finished folder into place; the old one is removed only once the new one is in."""
    if not dst.exists():
        os.replace(new, dst)
        return
    if dst.is_dir() and not any(dst.iterdir()):
        dst.rmdir()
        os.replace(new, dst)
        return
    old = dst.parent / f".{dst.name}.old-{os.getpid()}"
    os.replace(dst, old)
    os.replace(new, dst)
    if old.is_dir():
        shutil.rmtree(old, ignore_errors=True)
    else:
        old.unlink()
