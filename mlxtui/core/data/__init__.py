"""Datasets: the JSONL formats mlx-lm reads, a lazy line index, validation, stats, split/convert, rendering.

No MLX here and no Textual: the tokenizer is passed in by the caller (the engine loads it).
"""

from .formats import (
    DEFAULT_KEYS,
    ROLES,
    SPLITS,
    Format,
    FormatKeys,
    data_file,
    detect_format,
    keys_from,
    split_paths,
)
from .index import JsonlIndex, RecordError, Search, iter_records, parse_line, scan_lines
from .prepare import (
    ConvertResult,
    PrepareError,
    SplitResult,
    convert_file,
    parse_ratios,
    split_file,
    write_lines_atomic,
)
from .render import (
    RenderedExample,
    RenderError,
    Segment,
    approx_tokens,
    count_tokens,
    render_example,
)
from .stats import (
    DatasetStats,
    SplitStats,
    dataset_stats,
    format_histogram,
    format_stats,
    histogram,
)
from .validate import Finding, ValidationReport, check_record, record_hash, validate_dataset

__all__ = [
    "DEFAULT_KEYS",
    "ROLES",
    "SPLITS",
    "ConvertResult",
    "DatasetStats",
    "Finding",
    "Format",
    "FormatKeys",
    "JsonlIndex",
    "PrepareError",
    "RecordError",
    "RenderError",
    "RenderedExample",
    "Search",
    "Segment",
    "SplitResult",
    "SplitStats",
    "ValidationReport",
    "approx_tokens",
    "check_record",
    "convert_file",
    "count_tokens",
    "data_file",
    "dataset_stats",
    "detect_format",
    "format_histogram",
    "format_stats",
    "histogram",
    "iter_records",
    "keys_from",
    "parse_line",
    "parse_ratios",
    "record_hash",
    "render_example",
    "scan_lines",
    "split_file",
    "split_paths",
    "validate_dataset",
    "write_lines_atomic",
]
