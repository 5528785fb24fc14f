"""`mlxtui models demo|import-gguf|info`: prepare, import and inspect models on the engine thread."""

from __future__ import annotations

import argparse
import sys
from typing import Any


def add_parser(sub: Any) -> argparse.ArgumentParser:
    """Add `models {demo,import-gguf,info}` to an argparse subparsers object."""
    p = sub.add_parser("models", help="prepare, import and inspect models")
    models = p.add_subparsers(dest="models_command", required=True)
    models.add_parser("demo", help="convert the demo model (SmolLM2-135M) if needed; print its folder")
    imp = models.add_parser("import-gguf", help="convert a llama GGUF file into an MLX folder")
    imp.add_argument("file", help="the .gguf file")
    imp.add_argument("out_dir", help="the MLX model folder to create")
    imp.add_argument("--force", action="store_true", help="replace out_dir if it is not empty")
    info = models.add_parser("info", help="load a model and describe it")
    info.add_argument("model", help="MLX folder, .gguf file, Hugging Face id, or 'demo'")
    p.set_defaults(func=run)
    return p


def describe(info: Any) -> str:
    """A few human lines about a model, for `mlxtui models info`."""
    quant = f"{info.quantization_bits}-bit (group {info.group_size})"
    lines = [
        f"name        {info.name}",
        f"path        {info.path}",
        f"type        {info.model_type}, {info.num_layers} layers, hidden {info.hidden_size}",
        f"parameters  {info.num_parameters / 1e6:.1f} M",
        f"weights     {quant if info.quantization_bits else 'not quantized'}, {info.dtype}"
        + (", dequantized" if info.dequantized else ""),
        f"memory      {info.size_bytes / 2**20:.1f} MiB",
        f"chat        {'chat template' if info.has_chat_template else 'no chat template'}",
    ]
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    """Run a `models` subcommand; a ModelError becomes one line on stderr and exit status 1."""
    from mlxtui.cli.errors import replace_worded
    from mlxtui.cli.headless import run_call
    from mlxtui.cli.progress import ProgressPrinter
    from mlxtui.core.engine import EngineError
    from mlxtui.core.models import ModelError

    command = args.models_command
    if command not in ("demo", "import-gguf", "info"):
        print(f"mlxtui models: error: unknown models command {command!r}", file=sys.stderr)
        return 1

    job_ids: list[int] = []

    def job(engine: Any, progress: Any) -> str:
        from mlxtui.core import models
        from mlxtui.core.progress import Reporter

        # phases (converting, loading) as the other commands print them; their stages are
        # printed from the phase's events, so `progress` is not passed as well (twice each)
        reporter = Reporter(engine.emit, job_ids[0] if job_ids else 0, "models")
        progress = None
        if command == "demo":
            return str(models.demo_model_dir(progress, reporter))
        if command == "import-gguf":
            return str(
                models.import_gguf(
                    args.file, args.out_dir, progress, overwrite=args.force, reporter=reporter
                )
            )
        _, _, info = models.load_model(args.model, progress=progress, reporter=reporter)
        return describe(info)

    printer = ProgressPrinter(sys.stderr, steps_out=sys.stderr, steps_elapsed=True)

    def sink(e: Any) -> None:
        if type(e).__name__ == "JobStarted" and not job_ids:
            job_ids.append(e.job_id)
        printer(e)

    try:
        print(run_call(job, "models", sink, errors=(ModelError,)))
    except EngineError as e:
        print(f"mlxtui models: error: {replace_worded(str(e))}", file=sys.stderr)
        return 1
    finally:
        printer.close()
    return 0
