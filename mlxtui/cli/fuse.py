"""`mlxtui fuse`: fold an adapter into its base (mlx_lm.fuse's flags), optionally write GGUF and upload."""

from __future__ import annotations

import argparse
import sys
from typing import Any

# the name mlx_lm.fuse writes; repeated here so `--help` needs no import of the export code
DEFAULT_GGUF_NAME = "ggml-model-f16.gguf"
GGUF_TYPES = ("f16", "q8_0")  # core/gguf_export.py's, repeated for the same reason


def add_parser(sub: Any) -> argparse.ArgumentParser:
    """`mlxtui fuse`, with mlx_lm.fuse's flags."""
    p = sub.add_parser("fuse", help="fuse an adapter into its base model (MLX folder, optional GGUF)")
    p.add_argument("--model", default=None, help="base model (default: the 'model' of the adapter's config)")
    p.add_argument(
        "--adapter-path",
        default="adapters",
        help="adapter folder or .safetensors file (default: adapters)",
    )
    p.add_argument("--save-path", default="fused_model", help="folder to write (default: fused_model)")
    # --de-quantize: mlx_lm.fuse's earlier spelling, which the guides still write
    p.add_argument("--dequantize", "--de-quantize", action="store_true", help="write a de-quantized (float) model")
    p.add_argument("--force", action="store_true", help="replace --save-path / the GGUF file if they exist")
    p.add_argument("--export-gguf", action="store_true", help="also write a GGUF file (llama/mistral/mixtral)")
    p.add_argument(
        "--gguf-path",
        default=None,
        help=f"GGUF file name, inside --save-path unless absolute (default: {DEFAULT_GGUF_NAME}, "
        "ggml-model-q8_0.gguf with --gguf-type q8_0); an Ollama Modelfile is written beside it",
    )
    p.add_argument(
        "--gguf-type",
        choices=GGUF_TYPES,
        default="f16",
        help="GGUF weight type: f16 (default) or q8_0 (8-bit blocks, about half the size)",
    )
    p.add_argument("--upload-repo", default=None, help="Hugging Face repo (owner/name) to upload the fused model to")
    p.set_defaults(func=run)
    return p


def export_errors() -> tuple[type[BaseException], ...]:
    from mlxtui.core.export import ExportError
    from mlxtui.core.models import ModelError

    return (ExportError, ModelError, ValueError, FileNotFoundError, OSError)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from mlxtui.cli.errors import replace_worded
    from mlxtui.cli.headless import run_job
    from mlxtui.cli.progress import ProgressPrinter
    from mlxtui.core import export
    from mlxtui.core.engine import EngineError, Fuse

    printer = ProgressPrinter(sys.stderr, steps_out=sys.stderr)
    failures: tuple[type[BaseException], ...] = (EngineError, *export_errors())
    try:
        save = Path(args.save_path).expanduser()
        gguf = None
        if args.export_gguf:
            gguf = Path(args.gguf_path or f"ggml-model-{args.gguf_type}.gguf").expanduser()
            gguf = gguf if gguf.is_absolute() else save / gguf
        if args.upload_repo and not export.hub_token():
            raise export.ExportError(export.NO_TOKEN)  # say so before the slow part

        job = Fuse(
            save_path=str(save),
            adapter_path=args.adapter_path,
            model=args.model,
            dequantize=args.dequantize,
            gguf_path=None if gguf is None else str(gguf),
            gguf_type=args.gguf_type,
            force=args.force,
        )
        out = run_job(job, printer)
        print(out)
        if gguf is not None:
            print(gguf)
        if args.upload_repo:
            print(export.upload_to_hub(out, args.upload_repo))
    except failures as e:
        print(f"mlxtui fuse: error: {replace_worded(str(e))}", file=sys.stderr)
        return 1
    finally:
        printer.close()
    return 0
