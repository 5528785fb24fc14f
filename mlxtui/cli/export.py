"""`mlxtui export gguf|hub`: a GGUF file (float16 or Q8_0, adapter fused in, Ollama Modelfile
beside it), or a folder uploaded to the hub."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from mlxtui.cli.fuse import GGUF_TYPES


def add_parser(sub: Any) -> argparse.ArgumentParser:
    """`mlxtui export gguf|hub`."""
    p = sub.add_parser("export", help="export a model as GGUF or upload it to the Hugging Face hub")
    kinds = p.add_subparsers(dest="export_command", required=True)
    g = kinds.add_parser(
        "gguf",
        help="write a GGUF file (llama/mistral/mixtral), adapter fused in, and an Ollama Modelfile",
    )
    g.add_argument(
        "--model",
        default=None,
        help="base model (default: the adapter's config 'model', else demo)",
    )
    g.add_argument(
        "--adapter-path", default=None, help="adapter folder or .safetensors file to fuse in"
    )
    g.add_argument("--out", required=True, help="the .gguf file to write")
    g.add_argument(
        "--gguf-type",
        choices=GGUF_TYPES,
        default="f16",
        help="weight type: f16 (default) or q8_0 (8-bit blocks, about half the size)",
    )
    g.add_argument(
        "--force", action="store_true", help="replace --out (and its Modelfile) if they exist"
    )
    h = kinds.add_parser("hub", help="upload a model folder to the Hugging Face hub")
    h.add_argument("folder", help="the model folder (e.g. made by `mlxtui fuse`)")
    h.add_argument("repo_id", help="owner/name")
    h.add_argument("--private", action="store_true")
    h.add_argument(
        "--token", default=None, help="Hugging Face token (default: HF_TOKEN or the login cache)"
    )
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    from mlxtui.cli.errors import replace_worded
    from mlxtui.cli.fuse import export_errors
    from mlxtui.cli.headless import run_job
    from mlxtui.cli.progress import ProgressPrinter
    from mlxtui.core import export
    from mlxtui.core.engine import EngineError, ExportGGUF

    printer = ProgressPrinter(sys.stderr, steps_out=sys.stderr)
    failures: tuple[type[BaseException], ...] = (EngineError, *export_errors())
    try:
        if args.export_command == "gguf":
            model = args.model
            if model is None and args.adapter_path is None:
                model = "demo"
            job = ExportGGUF(
                out_file=args.out,
                adapter_path=args.adapter_path,
                model=model,
                gguf_type=args.gguf_type,
                force=args.force,
            )
            print(run_job(job, printer))
        elif args.export_command == "hub":
            # network only, no MLX: no engine needed
            print(
                export.upload_to_hub(
                    args.folder, args.repo_id, token=args.token, private=args.private
                )
            )
        else:
            raise export.ExportError(f"unknown export command {args.export_command!r}")
    except failures as e:
        print(f"mlxtui export: error: {replace_worded(str(e))}", file=sys.stderr)
        return 1
    finally:
        printer.close()
    return 0
