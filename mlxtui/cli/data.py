"""`mlxtui data …`: validate, stats, split, convert, show.

`add_parser(subparsers)` adds the `data` command; `run(args)` runs it and returns the exit
status (0 ok, 1 problems found or refused, 2 bad usage such as a tokenizer that won't load).
The work is mlxtui.core.data's; only the tokenizer comes from mlxtui.core.models.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

# how `data split|convert` name the settings a PrepareError refers to
PREPARE_FLAGS = {"out": "--out", "force": "pass --force to overwrite"}

TokenizerLoader = Callable[[str], Any]

GREEN, DIM, RESET = "\033[32m", "\033[2m", "\033[0m"


def default_load_tokenizer(spec: str) -> Any:
    from mlxtui.core.models import load_tokenizer

    return load_tokenizer(spec)


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add `data` with its sub-commands to an argparse subparsers object; returns the `data` parser."""
    data = subparsers.add_parser("data", help="check, measure, split, convert and show datasets")
    sub = data.add_subparsers(dest="data_command", metavar="COMMAND", required=True)

    p = sub.add_parser(
        "validate", help="report every problem of a data folder as file:line (exit 1 on errors)"
    )
    p.add_argument("dir", help="folder with train.jsonl (valid.jsonl, test.jsonl optional)")
    _model_args(p)
    p.add_argument(
        "--batch-size",
        type=positive_int,
        default=None,
        help="also check each split holds one batch",
    )
    p.add_argument(
        "--all",
        action="store_true",
        help="list every finding on its own line (default: grouped by kind, the first few places each)",
    )
    p.add_argument(
        "--json", action="store_true", help="print one JSON object: the groups and every finding"
    )
    _key_args(p)

    p = sub.add_parser("stats", help="examples, token lengths (histogram), iterations per epoch")
    p.add_argument("dir", help="folder with train.jsonl")
    _model_args(p)
    p.add_argument("--batch-size", type=positive_int, default=4)
    _key_args(p)

    p = sub.add_parser("split", help="shuffle one JSONL file into train/valid(/test).jsonl")
    p.add_argument("file", help="the JSONL file to split (it is only read)")
    p.add_argument(
        "--ratios", default="0.9,0.1", help="train,valid[,test] fractions (default 0.9,0.1)"
    )
    p.add_argument("--seed", type=int, default=42, help="shuffle seed (default 42)")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--force", action="store_true", help="overwrite existing train/valid/test.jsonl")

    p = sub.add_parser(
        "convert", help="CSV, TSV, JSON array or JSONL rows -> chat or completions JSONL"
    )
    p.add_argument("file", help="a .csv, .tsv, .json (array of objects) or .jsonl file")
    p.add_argument(
        "--to", choices=("chat", "completions"), default="chat", help="record format (default chat)"
    )
    p.add_argument("--out", required=True, help="output folder (writes <name>.jsonl there)")
    p.add_argument(
        "--prompt-column", default=None, help="default: prompt/instruction/question/input/query"
    )
    p.add_argument(
        "--response-column", default=None, help="default: response/completion/answer/output"
    )
    p.add_argument(
        "--system-prompt", default=None, help="a system turn for every example (--to chat)"
    )
    p.add_argument("--force", action="store_true", help="overwrite an existing output file")

    p = sub.add_parser(
        "show", help="one example as the model sees it, with the trained part marked"
    )
    p.add_argument("path", help="a JSONL file or a data folder (its train.jsonl)")
    p.add_argument(
        "--line",
        type=int,
        default=1,
        help="1-based line number (default 1; negative counts from the end)",
    )
    p.add_argument(
        "--model", default=None, help="model folder whose chat template and tokenizer to use"
    )
    p.add_argument(
        "--mask-prompt",
        action="store_true",
        help="train only on the completion / last assistant turn",
    )
    _key_args(p)

    data.set_defaults(func=run)
    return data


def positive_int(text: str) -> int:
    """argparse type: a whole number of at least 1 (argparse prints the flag and the value)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} must be at least 1")
    return value


def _model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--model",
        default=None,
        help="model folder, .gguf or 'demo': exact token counts with its tokenizer and chat template "
        "(without it: bytes/4 estimates)",
    )
    p.add_argument("--max-seq-length", type=positive_int, default=2048)


def _key_args(p: argparse.ArgumentParser) -> None:
    # defaults are filled in by _keys: mlxtui.core.data is not imported to print --help
    p.add_argument("--prompt-feature", default=None, help="default: prompt")
    p.add_argument("--completion-feature", default=None, help="default: completion")
    p.add_argument("--text-feature", default=None, help="default: text")
    p.add_argument("--chat-feature", default=None, help="default: messages")


def _keys(args: argparse.Namespace) -> Any:
    from mlxtui.core.data import DEFAULT_KEYS, FormatKeys

    d = DEFAULT_KEYS
    return FormatKeys(
        prompt_feature=getattr(args, "prompt_feature", None) or d.prompt_feature,
        completion_feature=getattr(args, "completion_feature", None) or d.completion_feature,
        text_feature=getattr(args, "text_feature", None) or d.text_feature,
        chat_feature=getattr(args, "chat_feature", None) or d.chat_feature,
    )


def run(
    args: argparse.Namespace,
    load_tokenizer: TokenizerLoader | None = None,
    out: TextIO | None = None,
    err: TextIO | None = None,
) -> int:
    """Run `mlxtui data <command>`; returns the exit status."""
    out = out or sys.stdout
    err = err or sys.stderr
    command = getattr(args, "data_command", None)
    handlers = {
        "validate": _validate,
        "stats": _stats,
        "split": _split,
        "convert": _convert,
        "show": _show,
    }
    if command not in handlers:
        print(
            f"error: unknown data command {command!r}; use one of {', '.join(handlers)}", file=err
        )
        return 2
    tokenizer = None
    if getattr(args, "model", None):
        try:
            tokenizer = (load_tokenizer or default_load_tokenizer)(args.model)
        except Exception as e:
            print(f"error: cannot load a tokenizer from {args.model}: {e}", file=err)
            if type(e).__name__ != "ModelError":  # models' own errors already say what to give
                print(
                    "  --model takes a model folder with tokenizer.json / tokenizer_config.json, "
                    "a .gguf file, a Hugging Face id or 'demo'",
                    file=err,
                )
            return 2
    from mlxtui.core.data import PrepareError, RenderError

    try:
        return handlers[command](args, tokenizer, out, err)
    except PrepareError as e:
        print(f"error: {e.worded(PREPARE_FLAGS)}", file=err)
        return 1
    except RenderError as e:
        print(f"error: {e}", file=err)
        return 1
    except BrokenPipeError:
        raise  # `… | head`: the caller's reader left; mlxtui.cli.main.main handles it
    except OSError as e:  # permission denied, disk full, ...: say which file, no traceback
        where = f"{e.filename}: " if e.filename else ""
        print(f"error: {where}{e.strerror or e}", file=err)
        return 1


def _progress(err: TextIO, label: str) -> Callable[[int, int], None] | None:
    if not err.isatty():
        return None

    def show(done: int, total: int) -> None:
        pct = 100 * done / total if total else 100
        end = "\n" if done >= total else ""
        print(f"\r{label} {pct:5.1f}%", end=end, file=err, flush=True)

    return show


def _validate(args: argparse.Namespace, tokenizer: Any, out: TextIO, err: TextIO) -> int:
    from mlxtui.core.data import validate_dataset

    every = bool(getattr(args, "all", False) or getattr(args, "json", False))
    report = validate_dataset(
        args.dir,
        tokenizer,
        max_seq_length=args.max_seq_length,
        progress=_progress(err, "validating"),
        keys=_keys(args),
        batch_size=args.batch_size,
        max_per_kind=None if every else 1000,  # asked for the full list: no cap
    )
    if getattr(args, "json", False):
        import json

        data = report.to_json()
        data["tokens_checked"] = tokenizer is not None
        data["summary"] = report.summary()
        print(json.dumps(data, indent=2, ensure_ascii=False), file=out)
        return 0 if report.ok else 1
    if report.findings:
        text = report.format_findings() if args.all else report.format_grouped()
        print(text, file=out)
        if not args.all and any(g.count > 1 for g in report.groups()):
            print(
                f"(grouped by kind; `mlxtui data validate {args.dir} --all` lists every finding)",
                file=out,
            )
    if tokenizer is None:
        print("(no --model: lengths in tokens and the chat template were not checked)", file=out)
    print(report.summary(), file=out)
    return 0 if report.ok else 1


def _stats(args: argparse.Namespace, tokenizer: Any, out: TextIO, err: TextIO) -> int:
    folder = Path(args.dir)
    if folder.is_file():
        print(f"error: {folder} is a file; give the folder that holds train.jsonl", file=err)
        return 1
    if not folder.is_dir():
        print(f"error: {folder}: no such folder (expected a folder with train.jsonl)", file=err)
        return 1
    if not (folder / "train.jsonl").is_file():
        print(
            f"error: no train.jsonl in {args.dir} (see `mlxtui data validate {args.dir}`)", file=err
        )
        return 1
    from mlxtui.core.data import dataset_stats, format_stats

    stats = dataset_stats(
        args.dir,
        tokenizer,
        max_seq_length=args.max_seq_length,
        batch_size=args.batch_size,
        progress=_progress(err, "measuring"),
        keys=_keys(args),
    )
    print(format_stats(stats), file=out)
    return 0


def _split(args: argparse.Namespace, tokenizer: Any, out: TextIO, err: TextIO) -> int:
    from mlxtui.core.data import split_file

    result = split_file(args.file, args.ratios, seed=args.seed, out_dir=args.out, force=args.force)
    for name, path in result.paths.items():
        print(f"{path}: {result.counts[name]} examples", file=out)
    if result.skipped_blank:
        print(f"({result.skipped_blank} blank line(s) of {args.file} left out)", file=out)
    return 0


def _convert(args: argparse.Namespace, tokenizer: Any, out: TextIO, err: TextIO) -> int:
    from mlxtui.core.data import convert_file

    result = convert_file(
        args.file,
        to=args.to,
        out_dir=args.out,
        prompt_column=args.prompt_column,
        response_column=args.response_column,
        system_prompt=args.system_prompt,
        force=args.force,
    )
    for reason in result.skipped:
        print(f"{args.file}: skipped {reason}", file=out)  # "line N: why"
    print(
        f"{result.path}: {result.count} {args.to} examples "
        f"(prompt from {result.prompt_column!r}, response from {result.response_column!r}"
        f"{f', {len(result.skipped)} row(s) skipped' if result.skipped else ''})",
        file=out,
    )
    print(f"next: mlxtui data split {result.path} --out {args.out}", file=out)
    return 0


def _show(args: argparse.Namespace, tokenizer: Any, out: TextIO, err: TextIO) -> int:
    from mlxtui.core.data import JsonlIndex, RecordError, data_file, render_example

    path = data_file(args.path)
    if not path.is_file():
        print(f"error: {path}: file not found", file=err)
        return 1
    with JsonlIndex(path) as index:
        # A line near the top of a huge file shows before the whole file is indexed.
        if args.line <= 0 or not index.wait_for_lines(args.line):
            index.wait()
        n = len(index)
        if n == 0:
            print(f"error: {path} is empty: no example to show", file=err)
            return 1
        line = args.line if args.line > 0 else n + 1 + args.line
        if not 1 <= line <= n:
            print(f"error: {path} has {n} line(s); --line {args.line} is outside 1..{n}", file=err)
            return 1
        record = index.record(line - 1)
    if isinstance(record, RecordError):
        print(f"{path}:{line}: error: {record.message}", file=out)
        print(record.text, file=out)
        return 1
    ex = render_example(record, tokenizer, mask_prompt=args.mask_prompt, keys=_keys(args))
    print(format_example(ex, f"{path}:{line}", color=out.isatty()), file=out)
    return 0


def format_example(ex: Any, where: str, color: bool = False) -> str:
    """An example for a terminal: the trained part green (or between [train]…[/train] without color)."""
    estimate = " (estimated, no --model)" if ex.approximate else ""
    head = f"{where}  {ex.format}  {ex.tokens} tokens{estimate}, {ex.trained_tokens} trained"
    body = []
    for seg in ex.segments:
        if color:
            body.append(f"{GREEN if seg.trains else DIM}{seg.text}{RESET}")
        else:
            body.append(f"[train]{seg.text}[/train]" if seg.trains else seg.text)
    legend = "green: carries loss" if color else "[train]…[/train]: carries loss"
    return f"{head}\n{''.join(body)}\n({legend})"
