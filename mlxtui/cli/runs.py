"""`mlxtui runs list|show|compare|rm|rename|tag|note`: the run history from the command line.

Tables print as Markdown (the default), CSV or JSON (`--format`). `mlxtui runs` alone lists.
Exit status: 0 done, 1 a run that cannot be found or an action refused, 2 bad usage.
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:
    from pathlib import Path

FORMATS = ("md", "csv", "json")
# list columns: (header, key of RunSummary.to_row)
LIST_COLUMNS = (
    ("name", "name"), ("date", "date"), ("status", "status"), ("method", "method"), ("model", "model"),
    ("lr", "lr"), ("layers", "layers"), ("rank", "rank"), ("batch", "batch"), ("steps", "steps"),
    ("final val", "final_val_loss"), ("best val", "best_val_loss"), ("best step", "best_step"),
    ("tok/s", "tokens_per_s"), ("peak GB", "peak_mem_gb"), ("est GB", "est_mem_gb"),
    ("time", "duration_s"), ("tags", "tags"),
)  # fmt: skip


def add_parser(sub: Any) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "runs", help="the run history: list, show, compare, rename, tag, note, delete"
    )
    p.add_argument("--runs-dir", default="runs", help="the folder of run folders (default: runs)")
    p.add_argument("--format", choices=FORMATS, default="md", help="table format (default: md)")
    p.set_defaults(func=run, runs_command="list")
    cmds = p.add_subparsers(dest="runs_command", metavar="COMMAND")

    def command(name: str, help: str) -> argparse.ArgumentParser:
        c = cmds.add_parser(name, help=help)
        # SUPPRESS: `mlxtui runs --runs-dir X list` and `mlxtui runs list --runs-dir X` both work
        c.add_argument("--runs-dir", default=argparse.SUPPRESS, help="the folder of run folders")
        c.add_argument(
            "--format", choices=FORMATS, default=argparse.SUPPRESS, help="md, csv or json"
        )
        return c

    command("list", "every run, newest first")
    c = command("show", "one run: its summary, settings and checkpoints")
    c.add_argument("run", help="a run folder, its name, or a unique part of either")
    c = command("compare", "two runs or more: the settings that differ and a table")
    c.add_argument("runs", nargs="+", metavar="RUN")
    c.add_argument(
        "--plot", metavar="FILE", help="also write the loss curves overlaid as FILE (.png or .svg)"
    )
    c.add_argument("--x", choices=("steps", "tokens"), default="steps", help="the plot's x axis")
    c = command("rm", "delete run folders (asks first)")
    c.add_argument("runs", nargs="+", metavar="RUN")
    c.add_argument("--yes", "-y", action="store_true", help="delete without asking")
    c = command("rename", "give a run a name (the folder keeps its name)")
    c.add_argument("run")
    c.add_argument("name")
    c = command("tag", "add tags to a run, or remove them with --remove")
    c.add_argument("run")
    c.add_argument("tags", nargs="*", metavar="TAG", help="tags to add")
    c.add_argument("--remove", action="append", default=[], metavar="TAG", help="a tag to remove")
    c = command("note", "set a run's note ('' clears it)")
    c.add_argument("run")
    c.add_argument("note")
    return p


def run(args: argparse.Namespace, out: TextIO | None = None) -> int:
    from mlxtui.core.plot_export import PlotError
    from mlxtui.core.run_history import RunError

    out = out or sys.stdout
    try:
        return _COMMANDS[args.runs_command or "list"](args, out)
    except (RunError, PlotError) as e:
        print(f"mlxtui runs {args.runs_command or 'list'}: error: {e}", file=sys.stderr)
        return 1


# ---------------------------------------------------------------- formatting


def cell(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if value == 0:
            return "0"
        if abs(value) >= 1000:
            return f"{value:,.0f}"
        if abs(value) < 0.01:
            return f"{value:.1e}"
        return f"{value:.4g}" if abs(value) < 100 else f"{value:.1f}"
    if isinstance(value, list | tuple):
        return ", ".join(cell(v) for v in value)
    return str(value).replace("|", "\\|").replace("\n", " ")


def duration(seconds: float | None) -> str:
    if not seconds:
        return "–"
    s = int(round(seconds))
    h, rest = divmod(s, 3600)
    m, s = divmod(rest, 60)
    return f"{h}h{m:02d}m" if h else (f"{m}m{s:02d}s" if m else f"{s}s")


def write_table(headers: list[str], rows: list[list[Any]], fmt: str, out: TextIO) -> None:
    """A table as Markdown or CSV (JSON callers print their own structure)."""
    if fmt == "csv":
        import csv

        w = csv.writer(out, lineterminator="\n")
        w.writerow(headers)
        w.writerows([["" if v is None else v for v in row] for row in rows])
        return
    text = [[cell(v) for v in row] for row in rows]
    widths = [max([len(h)] + [len(r[i]) for r in text]) for i, h in enumerate(headers)]
    out.write("| " + " | ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)) + " |\n")
    out.write("|" + "|".join("-" * (w + 2) for w in widths) + "|\n")
    for r in text:
        out.write("| " + " | ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)) + " |\n")


def _json(data: Any, out: TextIO) -> None:
    import json

    out.write(json.dumps(data, indent=2, default=str) + "\n")


def _list_row(row: dict[str, Any], fmt: str) -> list[Any]:
    values = [row.get(key) for _, key in LIST_COLUMNS]
    if fmt == "md":
        values[[k for _, k in LIST_COLUMNS].index("duration_s")] = duration(row["duration_s"])
    return values


# ---------------------------------------------------------------- commands


def _list(args: argparse.Namespace, out: TextIO) -> int:
    from mlxtui.core.run_history import list_summaries

    runs = list_summaries(args.runs_dir)
    if args.format == "json":
        _json([r.to_row() for r in runs], out)
        return 0
    if not runs and args.format == "md":
        out.write(f"no runs in {args.runs_dir}\n")
        return 0
    rows = [_list_row(r.to_row(), args.format) for r in runs]
    write_table([h for h, _ in LIST_COLUMNS], rows, args.format, out)
    return 0


def _show(args: argparse.Namespace, out: TextIO) -> int:
    from mlxtui.core.run_history import resolve_run, summarize

    s = summarize(resolve_run(args.run, args.runs_dir))
    row = s.to_row()
    if args.format == "json":
        _json(
            row
            | {
                "message": s.message,
                "test_loss": s.test_loss,
                "trained_tokens": s.trained_tokens,
                "checkpoints": {label: str(p) for label, p in s.checkpoint_files()},
                "config": s.config,
                "train_curve": [p.__dict__ for p in s.train_curve],
                "val_curve": [p.__dict__ for p in s.val_curve],
            },
            out,
        )
        return 0
    if args.format == "csv":
        write_table(list(row), [list(row.values())], "csv", out)
        return 0
    row["duration_s"] = duration(s.duration_s)
    if s.message:
        row["message"] = s.message
    if s.test_loss is not None:
        row["test_loss"] = s.test_loss
    out.write(f"## {s.name}\n\n")
    write_table(["", "value"], [[k, v] for k, v in row.items()], "md", out)
    out.write("\n### checkpoints\n\n")
    files = s.checkpoint_files()
    if files:
        write_table(["adapter", "file"], [[label, str(p)] for label, p in files], "md", out)
    else:
        out.write("none yet\n")
    out.write(f"\nresume: `mlxtui train --resume {s.path}`; settings: {s.path / 'config.yaml'}\n")
    return 0


def _compare(args: argparse.Namespace, out: TextIO) -> int:
    from mlxtui.core.run_compare import compare
    from mlxtui.core.run_history import RunError, resolve_run, summarize

    paths = [resolve_run(ref, args.runs_dir) for ref in args.runs]
    if len(set(paths)) < 2:
        raise RunError("compare needs two different runs or more")
    result = compare([summarize(p) for p in paths])
    if args.plot:
        from mlxtui.core.plot_export import write_overlay

        written = write_overlay(result, args.plot, args.x)
        print(f"plot written to {written}", file=sys.stderr)
    if args.format == "json":
        _json(result.to_dict(), out)
        return 0
    headers = [
        "run",
        "best val",
        "best step",
        "final val",
        "final train",
        "val-train gap",
        "at step",
        "tok/s",
        "peak GB",
        "time",
    ]
    rows = [
        [f.name, f.best_val_loss, f.best_step, f.final_val_loss, f.final_train_loss, f.val_train_gap, f.gap_step,
         r.tokens_per_second, r.peak_memory_gb, duration(r.duration_s) if args.format == "md" else r.duration_s]
        for f, r in zip(result.figures, result.runs, strict=True)
    ]  # fmt: skip
    if args.format == "csv":
        diff_keys = [k for k, _ in result.diff]
        rows = [row + [values[i] for _, values in result.diff] for i, row in enumerate(rows)]
        write_table(headers + diff_keys, rows, "csv", out)
        return 0
    out.write("## settings that differ\n\n")
    if result.diff:
        write_table(["setting", *result.names], [[k, *v] for k, v in result.diff], "md", out)
    else:
        out.write("none: the runs share every setting\n")
    out.write("\n## results\n\n")
    write_table(headers, rows, "md", out)
    return 0


def _rm(args: argparse.Namespace, out: TextIO) -> int:
    from mlxtui.core.run_history import RunError, delete_run, resolve_run, why_not_delete

    paths = []
    for ref in args.runs:
        path = resolve_run(ref, args.runs_dir)
        why = why_not_delete(path)
        if why:
            raise RunError(why)
        paths.append(path)
    if not args.yes:
        out.write("delete these runs (their adapters and checkpoints too)?\n")
        for p in paths:
            out.write(f"  {p}\n")
        out.write("type y to delete: ")
        out.flush()
        try:
            answer = input()
        except EOFError:
            answer = ""
        if answer.strip().lower() not in ("y", "yes"):
            out.write("nothing deleted\n")
            return 1
    for p in paths:
        delete_run(p)
        out.write(f"deleted {p}\n")
    return 0


def _edit(args: argparse.Namespace, out: TextIO) -> int:
    """rename, tag and note: change what the run's meta file says of it, then say it back."""
    from mlxtui.core.run_history import resolve_run

    path = resolve_run(args.run, args.runs_dir)
    out.write(f"{path.name} {_EDITS[args.runs_command](path, args)}\n")
    return 0


def _renamed(path: Path, args: argparse.Namespace) -> str:
    from mlxtui.core.run_history import rename_run

    rename_run(path, args.name)
    return f"is now named {args.name.strip()!r}"


def _tagged(path: Path, args: argparse.Namespace) -> str:
    from mlxtui.core.run_history import RunError, set_tags

    if not args.tags and not args.remove:
        raise RunError("tag: give tags to add, or --remove TAG")
    return f"tags: {', '.join(set_tags(path, add=args.tags, remove=args.remove)) or 'none'}"


def _noted(path: Path, args: argparse.Namespace) -> str:
    from mlxtui.core.run_history import set_note

    set_note(path, args.note)
    return f"note {'set' if args.note else 'cleared'}"


_EDITS = {"rename": _renamed, "tag": _tagged, "note": _noted}


_COMMANDS = {
    "list": _list,
    "show": _show,
    "compare": _compare,
    "rm": _rm,
    "rename": _edit,
    "tag": _edit,
    "note": _edit,
}
