"""`mlxtui`: the parser of every subcommand and the dispatch.

Building the parser imports only the command modules, which import nothing heavy at the
top: `mlxtui --help` and `mlxtui train --help` print without loading MLX, mlx-lm, Textual,
numpy or YAML (tests/test_cli_startup.py checks sys.modules).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from mlxtui.cli import convert, dashboard, data, doctor, export, fuse, generate, models, runs, train
from mlxtui.cli import eval as eval_cmd
from mlxtui.cli import sweep as sweep_cmd
from mlxtui.cli.errors import OneLineParser, check_flag_types

SUBCOMMANDS = (
    "train", "lora", "doctor", "data", "models", "generate", "convert", "fuse", "export", "eval", "bench", "runs", "dashboard", "sweep",
)  # fmt: skip


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="mlxtui",
        description="A terminal dashboard for fine-tuning language models with MLX.",
    )
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    sub = parser.add_subparsers(dest="command")
    dashboard.add_parser(sub)
    train.add_parser(sub)
    runs.add_parser(sub)
    doctor.add_parser(sub)
    data.add_parser(sub)
    models.add_parser(sub)
    generate.add_parser(sub)
    convert.add_parser(sub)
    fuse.add_parser(sub)
    export.add_parser(sub)
    eval_cmd.add_eval_parser(sub)
    eval_cmd.add_bench_parser(sub)
    sweep_cmd.add_parser(sub)
    check_flag_types(parser)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in SUBCOMMANDS + ("-h", "--help", "--version"):
        argv = ["dashboard", *argv]
    parser = build_parser()
    # OpenBLAS needs no re-exec: `import mlxtui` loads it right before MLX (core/blas.py)
    args = parser.parse_args(argv)
    if args.version:
        from importlib.metadata import version

        print(f"mlxtui {version('mlxtui')}")
        return 0
    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # `mlxtui data stats … | head`: the reader left; not an error worth a traceback
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
