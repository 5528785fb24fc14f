"""`mlxtui convert`: mlx_lm.convert's flags (to MLX, quantize, de-quantize, upload), and `--to-hf`,
which writes an MLX (fused, converted, GGUF-imported) model back in Hugging Face layout.

As the fine-tuning skill writes it, `convert --mlx-path FUSED --hf-path OUT` (an existing MLX
folder, a new --hf-path) means the way back to Hugging Face: mlx_lm.convert would only refuse
it (its --mlx-path must not exist), so it is read as `--to-hf`, and said so on stderr, when the
new folder's parent exists (a hub id such as "Qwen/Qwen2.5-3B-Instruct" has no local parent).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

# mlx_lm.convert's choices (0.32.2); the same tuples are in mlxtui.core.convert
DTYPES = ("float16", "bfloat16", "float32")
QUANT_RECIPES = ("mixed_2_6", "mixed_3_4", "mixed_3_6", "mixed_4_6")
Q_MODES = ("affine", "mxfp4", "nvfp4", "mxfp8")


def add_parser(sub: Any) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "convert",
        help="convert a model to MLX (quantize, de-quantize) or back to Hugging Face layout",
        description="mlx_lm.convert's flags. The source (--hf-path) may be a local Hugging Face or "
        "MLX folder, a .gguf file, 'demo', or a Hugging Face id in the local cache. With --to-hf "
        "(or an existing --mlx-path and a new --hf-path) the MLX model at --mlx-path is written "
        "in Hugging Face layout at --hf-path.",
    )
    p.add_argument(
        "--hf-path",
        "--model",
        default=None,
        help="the model to convert (with --to-hf: the Hugging Face folder to write)",
    )
    p.add_argument(
        "--mlx-path",
        default="mlx_model",
        help="the MLX folder to write (default: mlx_model; with --to-hf: the MLX model to read)",
    )
    p.add_argument("-q", "--quantize", action="store_true", help="write a quantized model")
    p.add_argument(
        "--q-group-size", type=int, default=None, help="group size for quantization (default 64)"
    )
    p.add_argument(
        "--q-bits", type=int, default=None, help="bits per weight for quantization (default 4)"
    )
    p.add_argument(
        "--q-mode", default="affine", choices=Q_MODES, help="the quantization mode (default affine)"
    )
    p.add_argument(
        "--quant-predicate",
        default=None,
        choices=QUANT_RECIPES,
        help="mixed-bit quantization recipe",
    )
    p.add_argument(
        "--dtype",
        default=None,
        choices=DTYPES,
        help="type of the float parameters (default: config.json's torch_dtype, else as stored)",
    )
    p.add_argument("-d", "--dequantize", action="store_true", help="de-quantize a quantized model")
    p.add_argument(
        "--upload-repo", default=None, help="Hugging Face repo (owner/name) to upload the result to"
    )
    p.add_argument(
        "--to-hf",
        action="store_true",
        help="write the MLX model at --mlx-path in Hugging Face layout at --hf-path (float weights, "
        "config.json, tokenizer files), loadable by transformers",
    )
    p.add_argument(
        "--force", action="store_true", help="replace the destination if it is a model folder"
    )
    p.set_defaults(func=run)
    return p


def wants_hf(args: argparse.Namespace) -> bool:
    """--to-hf, or the skill's reverse line: an existing MLX folder at --mlx-path, no --hf-path yet."""
    if args.to_hf:
        return True
    if args.hf_path is None or args.quantize or args.dequantize:
        return False
    mlx, hf = Path(args.mlx_path).expanduser(), Path(args.hf_path).expanduser()
    # a new folder beside existing ones ("models/hf-export"); "Qwen/Qwen2.5-3B" with no Qwen/ here
    # is a hub id, and its MLX folder existing means a repeated forward conversion (refused later)
    return (mlx / "config.json").is_file() and not hf.exists() and hf.parent.is_dir()


def run(args: argparse.Namespace) -> int:
    from mlxtui.cli.errors import replace_worded
    from mlxtui.cli.headless import run_call
    from mlxtui.cli.progress import ProgressPrinter
    from mlxtui.core import convert, export
    from mlxtui.core.engine import EngineError
    from mlxtui.core.models import ModelError

    errors: tuple[type[BaseException], ...] = (
        convert.ConvertError,
        export.ExportError,
        ModelError,
        OSError,
    )
    failures: tuple[type[BaseException], ...] = (EngineError, *errors)
    printer = ProgressPrinter(sys.stderr, steps_out=sys.stderr)
    try:
        if args.upload_repo and not export.hub_token():
            raise export.ExportError(export.NO_TOKEN)  # say so before the slow part
        to_hf = wants_hf(args)
        if to_hf:
            if args.hf_path is None:
                raise convert.ConvertError("--to-hf writes to --hf-path: give the folder to write")
            if args.quantize or args.dequantize or args.quant_predicate:
                raise convert.ConvertError(
                    "--to-hf writes float weights (it de-quantizes); drop -q/--dequantize/--quant-predicate"
                )
            if not args.to_hf:
                print(
                    f"{args.mlx_path} is an MLX model and {args.hf_path} does not exist: writing "
                    f"{args.mlx_path} in Hugging Face layout to {args.hf_path} (as --to-hf)",
                    file=sys.stderr,
                )

            def job(engine: Any, progress: Any) -> Path:
                return convert.convert_to_hf(
                    args.mlx_path,
                    args.hf_path,
                    dtype=args.dtype,
                    force=args.force,
                    progress=progress,
                )

        else:

            def job(engine: Any, progress: Any) -> Path:
                return convert.convert_to_mlx(
                    args.hf_path,
                    args.mlx_path,
                    quantize=args.quantize,
                    q_group_size=args.q_group_size,
                    q_bits=args.q_bits,
                    q_mode=args.q_mode,
                    quant_predicate=args.quant_predicate,
                    dtype=args.dtype,
                    dequantize=args.dequantize,
                    force=args.force,
                    progress=progress,
                )

        out = run_call(job, "convert", printer, errors=errors)
        printer.close()
        print(out)
        if args.upload_repo:
            print(export.upload_to_hub(out, args.upload_repo))
    except failures as e:
        print(f"mlxtui convert: error: {replace_worded(str(e))}", file=sys.stderr)
        return 1
    finally:
        printer.close()
    return 0
