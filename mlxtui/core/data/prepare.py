"""Make a data folder from one file: split a JSONL file, convert CSV/TSV/JSON/JSONL rows.

Never overwrites an existing file unless asked (force), never writes next to a half-written
file: every output is written to a temporary name, fsynced, then renamed.
"""

from __future__ import annotations

import csv
import json
import math
import os
import random
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .formats import SPLITS
from .index import JsonlIndex, RecordError, parse_line, scan_lines

PROMPT_COLUMNS = ("prompt", "instruction", "question", "input", "query")
RESPONSE_COLUMNS = ("response", "completion", "answer", "output")


class PrepareError(ValueError):
    """A split or conversion that cannot be done; the message says why and what to do.

    Where the fix is a setting (the output folder, overwriting), the error names the setting,
    not a front end's control for it: `setting` is the one the problem is about, and `remedy`
    refers to settings as {out} and {force}. Each front end words them (`worded`): the CLI
    with its flags, the dashboard with its controls' labels; `str()` uses plain words.
    """

    PLAIN = {"out": "the output folder", "force": "allow overwriting"}

    def __init__(self, problem: str, remedy: str = "", setting: str | None = None) -> None:
        self.problem, self.remedy, self.setting = problem, remedy, setting
        super().__init__(self.worded(self.PLAIN))

    def worded(self, names: dict[str, str]) -> str:
        """The message with each setting named as `names` says ({"out": "--out", …})."""
        names = {**self.PLAIN, **names}
        head = f"{names[self.setting]} " if self.setting else ""
        tail = ": " + self.remedy.format_map(names) if self.remedy else ""
        return f"{head}{self.problem}{tail}"


@dataclass(frozen=True)
class SplitResult:
    paths: dict[str, Path]
    counts: dict[str, int]
    skipped_blank: int


@dataclass(frozen=True)
class ConvertResult:
    path: Path
    count: int
    prompt_column: str
    response_column: str
    skipped: tuple[str, ...]  # "line N: why" ("item N" in a JSON array), every row not written


# ------------------------------------------------------------------ writing


def write_lines_atomic(path: Path, lines: Iterable[bytes | str], min_lines: int = 0) -> int:
    """Write lines (newline added) to path via temp file + fsync + rename; return the line count.

    With fewer than min_lines lines nothing is replaced (an existing file stays) and 0 is returned.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    n = 0
    try:
        with os.fdopen(fd, "wb") as f:
            for line in lines:
                f.write(line.encode("utf-8") if isinstance(line, str) else line)
                f.write(b"\n")
                n += 1
            f.flush()
            os.fsync(f.fileno())
        if n < min_lines:
            Path(tmp).unlink(missing_ok=True)
            return 0
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)
    return n


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some file systems cannot fsync a folder; the rename is still atomic
    finally:
        os.close(fd)


def check_input_file(source: Path, wanted: str) -> None:
    """Refuse a missing input or a folder given where a file is expected."""
    if source.is_dir():
        raise PrepareError(f"{source} is a folder; give {wanted}")
    if not source.is_file():
        raise PrepareError(f"{source}: file not found")


def check_out_folder(out: Path) -> None:
    """The output folder must be a folder (created when missing), never an existing file."""
    for folder in (out, *out.parents):
        if folder.exists():
            if not folder.is_dir():
                raise PrepareError(
                    f"{out}: {folder} is a file, not a folder; give a folder (it is created if missing)",
                    setting="out",
                )
            return


def check_outputs(outputs: Sequence[Path], source: Path, force: bool) -> None:
    """Refuse to write over the input, or over existing files without force."""
    for folder in {out.parent for out in outputs}:
        check_out_folder(folder)
    for out in outputs:
        if out.exists() and source.exists() and out.resolve() == source.resolve():
            raise PrepareError(f"{out} is the input file", "choose another folder ({out})")
    existing = [str(p) for p in outputs if p.exists()]
    if existing and not force:
        raise PrepareError(
            f"{', '.join(existing)} already exist(s)", "choose another folder ({out}), or {force}"
        )


# ------------------------------------------------------------------ split


def parse_ratios(text: str | Sequence[float]) -> tuple[float, ...]:
    """ "0.8,0.1,0.1" or a sequence -> ratios for train, valid[, test] that sum to 1."""
    try:
        ratios = tuple(float(x) for x in (text.split(",") if isinstance(text, str) else text))
    except ValueError as e:
        raise PrepareError(
            f"ratios must be numbers like 0.9,0.1 or 0.8,0.1,0.1, got {text!r}"
        ) from e
    if len(ratios) not in (2, 3) or any(r < 0 or not math.isfinite(r) for r in ratios):
        raise PrepareError(
            f"ratios must be 2 or 3 non-negative numbers (train, valid[, test]), got {text!r}"
        )
    if abs(sum(ratios) - 1.0) > 1e-6:
        raise PrepareError(f"ratios must sum to 1, got {text!r} (sum {sum(ratios):g})")
    if ratios[0] <= 0:
        raise PrepareError("the train ratio must be more than 0")
    return ratios


def split_counts(n: int, ratios: Sequence[float]) -> list[int]:
    """Examples per split: rounded, every split with a ratio > 0 gets one if n allows, train the rest."""
    counts = [0] * len(ratios)
    for i in range(1, len(ratios)):
        counts[i] = math.floor(n * ratios[i] + 0.5)
        if ratios[i] > 0 and counts[i] == 0 and n > len(ratios) - 1:
            counts[i] = 1
    while sum(counts[1:]) > n - 1 and any(counts[1:]):  # train keeps at least one example
        i = max(range(1, len(counts)), key=lambda j: counts[j])
        counts[i] -= 1
    counts[0] = n - sum(counts[1:])
    return counts


def split_file(
    path: str | Path,
    ratios: str | Sequence[float] = (0.9, 0.1),
    seed: int = 42,
    out_dir: str | Path | None = None,
    force: bool = False,
) -> SplitResult:
    """Shuffle the lines of a JSONL file (deterministically, by seed) into train/valid(/test).jsonl.

    Lines are copied byte for byte; blank lines are dropped (and counted). The file is read through
    the line index, so memory stays small for big files. out_dir defaults to the file's folder.
    """
    source = Path(path)
    check_input_file(source, f"one JSONL file (e.g. {source / 'train.jsonl'})")
    ratios = parse_ratios(ratios)
    out = Path(out_dir) if out_dir is not None else source.parent
    names = SPLITS[: len(ratios)]
    outputs = {name: out / f"{name}.jsonl" for name in names}
    check_outputs(list(outputs.values()), source, force)
    with JsonlIndex(source, background=False) as index:
        keep = [i for i in range(len(index)) if index.line_bytes(i).strip()]
        blank = len(index) - len(keep)
        if not keep:
            raise PrepareError(f"{source}: no lines to split (the file is empty)")
        random.Random(seed).shuffle(keep)
        counts = split_counts(len(keep), ratios)
        start = 0
        written: dict[str, int] = {}
        for name, n in zip(names, counts, strict=True):
            part = keep[start : start + n]
            start += n
            if n == 0 and name != "train":
                continue  # mlx-lm fails on an empty valid/test file: better no file at all
            written[name] = write_lines_atomic(outputs[name], (index.line_bytes(i) for i in part))
    return SplitResult({k: outputs[k] for k in written}, written, blank)


# ------------------------------------------------------------------ convert


def read_rows(path: Path) -> tuple[list[str], Iterator[tuple[str, dict[str, Any] | str]]]:
    """(column names, iterator of (row number, row dict or error text)) from CSV, TSV, JSON or JSONL."""
    suffix = path.suffix.lower()
    if suffix in (".csv", ".tsv", ".tab", ".txt"):
        return _read_delimited(path, "," if suffix == ".csv" else "\t")
    if suffix == ".json":
        return _read_json_array(path)
    if suffix in (".jsonl", ".ndjson"):
        return _read_jsonl(path)
    with open(path, "rb") as f:
        head = f.read(4096).lstrip()
    if head.startswith(b"["):
        return _read_json_array(path)
    if head.startswith(b"{"):
        return _read_jsonl(path)
    raise PrepareError(
        f"{path}: unknown file type; expected .csv, .tsv, .json (an array of objects) or .jsonl"
    )


def _read_delimited(
    path: Path, delimiter: str
) -> tuple[list[str], Iterator[tuple[str, dict[str, Any] | str]]]:
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            header = next(csv.reader(f, delimiter=delimiter), None)
    except (csv.Error, UnicodeDecodeError) as e:
        raise PrepareError(f"{path}:1: cannot read the header row: {e}") from e
    if not header:
        raise PrepareError(f"{path}: empty file (expected a header row with column names)")

    def rows() -> Iterator[tuple[str, dict[str, Any] | str]]:
        with open(path, newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f, delimiter=delimiter)
            try:
                start = 2  # a row's first physical line: cells may span lines
                for row in reader:
                    yield f"line {start}", row
                    start = reader.line_num + 1
            except (csv.Error, UnicodeDecodeError) as e:
                raise PrepareError(
                    f"{path}:{reader.line_num + 1}: cannot read this row: {e}"
                ) from e

    return header, rows()


def _read_json_array(path: Path) -> tuple[list[str], Iterator[tuple[str, dict[str, Any] | str]]]:
    try:
        data = json.loads(path.read_text(encoding="utf-8-sig"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise PrepareError(f"{path}: not valid JSON: {e}") from e
    if isinstance(data, dict):  # {"data": [...]} and the like: one list of rows inside
        lists = [v for v in data.values() if isinstance(v, list)]
        if len(lists) == 1:
            data = lists[0]
    if not isinstance(data, list):
        raise PrepareError(f"{path}: expected a JSON array of objects, got {type(data).__name__}")
    columns: dict[str, None] = {}
    for row in data:
        if isinstance(row, dict):
            columns.update(dict.fromkeys(row))

    def rows() -> Iterator[tuple[str, dict[str, Any] | str]]:
        for i, row in enumerate(data, start=1):
            yield f"item {i}", row if isinstance(row, dict) else "not an object"

    return list(columns), rows()


def _read_jsonl(path: Path) -> tuple[list[str], Iterator[tuple[str, dict[str, Any] | str]]]:
    columns: dict[str, None] = {}
    for n, raw, _ in scan_lines(path):
        rec = parse_line(raw, n) if raw.strip() else None
        if isinstance(rec, dict):
            columns.update(dict.fromkeys(rec))
        if n >= 1000:  # the column names of the first thousand rows are enough to choose
            break

    def rows() -> Iterator[tuple[str, dict[str, Any] | str]]:
        for n, raw, _ in scan_lines(path):
            if not raw.strip():
                continue
            rec = parse_line(raw, n)
            yield f"line {n}", rec.message if isinstance(rec, RecordError) else rec

    return list(columns), rows()


def pick_column(
    columns: Sequence[str], candidates: Sequence[str], given: str | None, role: str, path: Path
) -> str:
    flag = f"--{role}-column"
    if given is not None:
        if given not in columns:
            raise PrepareError(
                f"{path}: no column {given!r} ({flag}); columns found: {', '.join(columns) or 'none'}"
            )
        return given
    lower = {c.lower().strip(): c for c in columns}
    for name in candidates:
        if name in lower:
            return lower[name]
    raise PrepareError(
        f"{path}: cannot tell which column is the {role}; columns found: {', '.join(columns) or 'none'}. "
        f"Pass {flag} NAME (looked for: {', '.join(candidates)})"
    )


def convert_file(
    path: str | Path,
    to: str = "chat",
    out_dir: str | Path | None = None,
    prompt_column: str | None = None,
    response_column: str | None = None,
    system_prompt: str | None = None,
    force: bool = False,
) -> ConvertResult:
    """Convert rows with a prompt and a response column into chat or completions JSONL.

    Writes `<out_dir>/<name>.jsonl` (name of the input file). Columns are guessed from common names
    unless given; an Alpaca-style "input" column next to "instruction" is appended to the prompt.
    Rows with an empty prompt or response are not written and are listed in `skipped`.
    """
    source = Path(path)
    if to not in ("chat", "completions"):
        raise PrepareError(f"--to must be chat or completions, got {to!r}")
    if system_prompt and to != "chat":
        raise PrepareError(
            "--system-prompt needs --to chat (the completions format has no system turn)"
        )
    check_input_file(source, "one .csv, .tsv, .json or .jsonl file")
    columns, rows = read_rows(source)
    prompt_col = pick_column(columns, PROMPT_COLUMNS, prompt_column, "prompt", source)
    response_col = pick_column(
        [c for c in columns if c != prompt_col],
        RESPONSE_COLUMNS,
        response_column,
        "response",
        source,
    )
    extra_input = None
    if prompt_column is None and prompt_col.lower() == "instruction":
        extra_input = next((c for c in columns if c.lower() == "input" and c != response_col), None)
    out = (Path(out_dir) if out_dir is not None else source.parent) / f"{source.stem}.jsonl"
    check_outputs([out], source, force)
    skipped: list[str] = []

    def records() -> Iterator[str]:
        for n, row in rows:
            if isinstance(row, str):
                skipped.append(f"{n}: {row}")
                continue
            prompt, response = _cell(row.get(prompt_col)), _cell(row.get(response_col))
            if extra_input and _cell(row.get(extra_input)).strip():
                prompt = f"{prompt}\n\n{_cell(row.get(extra_input))}"
            if not prompt.strip() or not response.strip():
                empty = prompt_col if not prompt.strip() else response_col
                skipped.append(f"{n}: empty {empty!r}")
                continue
            yield json.dumps(_record(prompt, response, to, system_prompt), ensure_ascii=False)

    count = write_lines_atomic(out, records(), min_lines=1)
    if count == 0:
        raise PrepareError(
            f"{source}: no rows with both a {prompt_col!r} and a {response_col!r} value; nothing written"
        )
    return ConvertResult(out, count, prompt_col, response_col, tuple(skipped))


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False) if isinstance(value, (dict, list)) else str(value)


def _record(prompt: str, response: str, to: str, system_prompt: str | None) -> dict[str, Any]:
    if to == "completions":
        return {"prompt": prompt, "completion": response}
    messages = [{"role": "system", "content": system_prompt}] if system_prompt else []
    messages += [{"role": "user", "content": prompt}, {"role": "assistant", "content": response}]
    return {"messages": messages}
