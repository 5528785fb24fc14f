"""Measure a data folder: examples, token lengths, roles, and what an epoch costs.

With a tokenizer the token counts are exact (the model's chat template, as mlx-lm tokenizes);
without one they are bytes/4 estimates of a ChatML rendering and `DatasetStats.approximate` says so.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .formats import DEFAULT_KEYS, FormatKeys, detect_format, split_paths
from .index import RecordError, parse_line, scan_lines
from .render import RenderError, count_tokens, render_example

ProgressFn = Callable[[int, int], None]  # (bytes done, bytes total)


@dataclass(frozen=True)
class SplitStats:
    name: str
    path: str
    examples: int
    skipped: int  # lines that are not usable records (see `mlxtui data validate`)
    format: str | None
    token_lengths: tuple[int, ...]
    prompt_tokens: tuple[int, ...]
    over_max: int  # examples longer than max_seq_length (mlx-lm truncates them)
    role_counts: dict[str, int] = field(default_factory=dict)

    @property
    def total_tokens(self) -> int:
        return sum(self.token_lengths)

    @property
    def mean_tokens(self) -> float:
        return self.total_tokens / len(self.token_lengths) if self.token_lengths else 0.0

    @property
    def mean_prompt_tokens(self) -> float:
        return sum(self.prompt_tokens) / len(self.prompt_tokens) if self.prompt_tokens else 0.0

    @property
    def mean_completion_tokens(self) -> float:
        return self.mean_tokens - self.mean_prompt_tokens

    @property
    def max_tokens(self) -> int:
        return max(self.token_lengths, default=0)


@dataclass(frozen=True)
class DatasetStats:
    data_dir: str
    splits: tuple[SplitStats, ...]
    batch_size: int
    max_seq_length: int
    approximate: bool  # True: no tokenizer, token counts are bytes/4 estimates

    def split(self, name: str) -> SplitStats | None:
        return next((s for s in self.splits if s.name == name), None)

    @property
    def counts(self) -> dict[str, int]:
        return {s.name: s.examples for s in self.splits}

    @property
    def format(self) -> str | None:
        train = self.split("train")
        return train.format if train else None

    @property
    def iterations_per_epoch(self) -> int:
        """Batches in one pass over train.jsonl.

        mlx-lm's iterate_batches drops the last partial batch, so this is n // batch_size
        (at least 1 when there is any data), not a ceiling.
        """
        train = self.split("train")
        n = train.examples if train else 0
        return max(n // self.batch_size, 1) if n else 0


def histogram(lengths: Sequence[int], bins: int = 20) -> list[tuple[int, int, int]]:
    """[(low, high, count)] over equal-width integer bins; low inclusive, high exclusive."""
    if not lengths:
        return []
    lo, hi = min(lengths), max(lengths)
    width = max(math.ceil((hi - lo + 1) / max(bins, 1)), 1)
    n = math.ceil((hi - lo + 1) / width)
    counts = [0] * n
    for x in lengths:
        counts[(x - lo) // width] += 1
    return [(lo + i * width, lo + (i + 1) * width, c) for i, c in enumerate(counts)]


def format_histogram(
    lengths: Sequence[int], bins: int = 20, width: int = 40, mark: int | None = None
) -> str:
    """A text histogram, one bar a bin; bins at or past `mark` (max_seq_length) are flagged."""
    rows = histogram(lengths, bins)
    if not rows:
        return "(no examples)"
    top = max(c for _, _, c in rows) or 1
    label_w = len(f"{rows[-1][1] - 1}")
    lines = []
    for low, high, count in rows:
        bar = "█" * round(count / top * width) if count else ""
        flag = "  > max_seq_length" if mark is not None and high - 1 > mark else ""
        label = f"{low}" if high - 1 == low else f"{low}–{high - 1}"
        lines.append(f"{label:>{2 * label_w + 1}} │{bar} {count}{flag}")
    return "\n".join(lines)


def dataset_stats(
    data_dir: str | Path,
    tokenizer: Any = None,
    max_seq_length: int = 2048,
    batch_size: int = 4,
    progress: ProgressFn | None = None,
    keys: FormatKeys = DEFAULT_KEYS,
) -> DatasetStats:
    """Stats of train/valid/test.jsonl in a folder (lines that are not usable records are counted as skipped)."""
    data_dir = Path(data_dir)
    present = {s: p for s, p in split_paths(data_dir).items() if p.is_file()}
    total = sum(p.stat().st_size for p in present.values())
    done_before = 0
    splits = []
    for name, path in present.items():
        split, size = _split_stats(
            name, path, tokenizer, max_seq_length, keys, progress, done_before, total
        )
        splits.append(split)
        done_before += size
    if progress is not None:
        progress(total, total)
    return DatasetStats(str(data_dir), tuple(splits), batch_size, max_seq_length, tokenizer is None)


def _split_stats(
    name: str,
    path: Path,
    tokenizer: Any,
    max_seq_length: int,
    keys: FormatKeys,
    progress: ProgressFn | None,
    done_before: int,
    total: int,
) -> tuple[SplitStats, int]:
    lengths: list[int] = []
    prompts: list[int] = []
    roles: Counter[str] = Counter()
    skipped = 0
    file_fmt: str | None = None
    done = 0
    for number, raw, done in scan_lines(path):
        if progress is not None and number % 1000 == 0:
            progress(done_before + done, total)
        if not raw.strip():
            continue
        record = parse_line(raw, number)
        fmt = None if isinstance(record, RecordError) else detect_format(record, keys)
        if fmt is None or isinstance(record, RecordError):
            skipped += 1
            continue
        file_fmt = file_fmt or fmt
        try:
            if tokenizer is None:
                ex = render_example(record, None, fmt, mask_prompt=True, keys=keys)
                tokens, prompt = ex.tokens, ex.prompt_tokens
            else:
                tokens, prompt = count_tokens(record, tokenizer, fmt, keys)
        except (RenderError, TypeError, AttributeError, ValueError):
            skipped += 1
            continue
        lengths.append(tokens)
        prompts.append(prompt)
        if fmt == "chat":
            roles.update(
                m["role"]
                for m in record[keys.chat_feature]
                if isinstance(m, dict) and isinstance(m.get("role"), str)
            )
        elif fmt == "completions":
            roles.update(("user", "assistant"))
    over = sum(1 for n in lengths if n > max_seq_length)
    stats = SplitStats(
        name,
        str(path),
        len(lengths),
        skipped,
        file_fmt,
        tuple(lengths),
        tuple(prompts),
        over,
        dict(roles),
    )
    return stats, done


def format_stats(stats: DatasetStats, bins: int = 16) -> str:
    """The `mlxtui data stats` text: a table per split and a histogram of train token lengths."""
    unit = "tokens (estimated: bytes/4, no --model given)" if stats.approximate else "tokens"
    lines = [f"{stats.data_dir}  format: {stats.format or '?'}  lengths in {unit}"]
    header = f"{'split':<6} {'examples':>8} {'skipped':>7} {'mean':>7} {'max':>6} {'prompt':>7} {'answer':>7} {'> max':>6}"
    lines += ["", header, "─" * len(header)]
    for s in stats.splits:
        lines.append(
            f"{s.name:<6} {s.examples:>8} {s.skipped:>7} {s.mean_tokens:>7.1f} {s.max_tokens:>6} "
            f"{s.mean_prompt_tokens:>7.1f} {s.mean_completion_tokens:>7.1f} {s.over_max:>6}"
        )
    train = stats.split("train")
    if train is not None:
        roles = ", ".join(f"{r}: {n}" for r, n in sorted(train.role_counts.items())) or "-"
        lines += [
            "",
            f"roles (train): {roles}",
            f"batch size {stats.batch_size}: {stats.iterations_per_epoch} iterations per epoch "
            f"(mlx-lm drops the last partial batch)",
            f"max_seq_length {stats.max_seq_length}: {train.over_max} train example(s) will be truncated",
            "",
            "train token lengths:",
            format_histogram(train.token_lengths, bins, mark=stats.max_seq_length),
        ]
    else:
        lines += ["", "no train.jsonl"]
    return "\n".join(lines)
