"""`mlxtui runs`: the run folders, newest last, with status, steps and best validation loss."""

from __future__ import annotations

import argparse
from typing import Any


def add_parser(sub: Any) -> argparse.ArgumentParser:
    p = sub.add_parser("runs", help="list run folders")
    p.add_argument("--runs-dir", default="runs")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    from mlxtui.core.runs import list_runs

    runs = list_runs(args.runs_dir)
    if not runs:
        print(f"no runs in {args.runs_dir}")
        return 0
    width = max(len(r.name) for r in runs)
    for r in runs:
        best = f"{r.best_val_loss:.4f}" if r.best_val_loss is not None else "-"
        print(f"{r.name:{width}}  {r.status:14} {r.iteration:>6}/{r.total_iters:<6} best val {best}")
    return 0
