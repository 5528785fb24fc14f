"""Browse a big chat JSONL the way the dataset screen does, and print how long each part takes.

    uv run python benchmarks/bench_browse.py                       # ~1 GB, 1,000,000 lines
    uv run python benchmarks/bench_browse.py --lines 100000 --size-mb 100   # a quick run

Prints: time to write the file, time to the first page (open the index + read and parse 50
lines), full indexing time, time to jump to the last line, search time for a string near the end,
and peak RSS (the index keeps 8 bytes a line; the file itself is never held in memory).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mlxtui.core.data import JsonlIndex  # noqa: E402

WORDS = "the model learns from each example and answers the question clearly with care".split()


def write_dataset(path: Path, lines: int, size_mb: float) -> None:
    """Templated chat lines padded so the file is about size_mb; content varies line by line."""
    target = int(size_mb * (1 << 20) / lines)
    base = len(json.dumps(_record(0, "")))
    n_words = max(target - base, 0) // 6
    # A few hundred paddings reused in turn: varied text without building every line from words.
    pads = [
        " ".join(f"{WORDS[(v + k) % len(WORDS)][:5]:<5}" for k in range(n_words))
        for v in range(257)
    ]
    batch = 10_000
    with open(path, "w", encoding="utf-8") as f:
        for start in range(0, lines, batch):
            rows = [
                json.dumps(_record(i, pads[i % len(pads)]))
                for i in range(start, min(start + batch, lines))
            ]
            f.write("\n".join(rows) + "\n")


def _record(i: int, pad: str) -> dict:
    return {
        "messages": [
            {"role": "system", "content": "You are a helpful assistant."},
            {"role": "user", "content": f"Question {i}: {pad[: len(pad) // 3]}"},
            {"role": "assistant", "content": f"Answer {i}: {pad[len(pad) // 3 :]}"},
        ]
    }


def peak_rss_mb() -> float:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return (
        peak / (1 << 20) if sys.platform == "darwin" else peak / 1024
    )  # bytes on macOS, KiB on Linux


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--lines", type=int, default=1_000_000)
    ap.add_argument("--size-mb", type=float, default=1024)
    ap.add_argument("--dir", default=None, help="where to write the file (default: a temp folder)")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        path = Path(tmp) / "train.jsonl"
        t = time.perf_counter()
        write_dataset(path, args.lines, args.size_mb)
        size = path.stat().st_size
        print(
            f"wrote {args.lines:,} lines, {size / (1 << 20):,.0f} MiB in {time.perf_counter() - t:.1f} s"
        )
        # The page cache would flatter the open; drop this file from it where the OS allows.
        if hasattr(os, "posix_fadvise"):
            with open(path, "rb") as f:
                os.fsync(f.fileno())
                os.posix_fadvise(f.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)
        rss_before = psutil.Process().memory_info().rss / (1 << 20)

        t0 = time.perf_counter()
        index = JsonlIndex(path)
        index.wait_for_lines(50)
        page = [index.record(i) for i in range(50)]
        first_page = time.perf_counter() - t0
        assert all(isinstance(r, dict) for r in page)
        print(f"first page (open + 50 records): {first_page * 1000:.1f} ms  (target < 1000 ms)")

        index.wait()
        indexed = time.perf_counter() - t0
        print(
            f"full index: {len(index):,} lines in {indexed:.2f} s ({size / (1 << 20) / indexed:,.0f} MiB/s)"
        )

        t = time.perf_counter()
        last = index.record(len(index) - 1)
        jump = time.perf_counter() - t
        assert isinstance(last, dict)
        print(f"jump to last line: {jump * 1e6:.0f} µs")

        needle = f"Answer {args.lines - 3}:"
        t = time.perf_counter()
        search = index.search(needle, ignore_case=False, max_matches=1)
        search.wait()
        found = list(search.matches)
        print(
            f"search {needle!r} (near the end): {time.perf_counter() - t:.2f} s, found at line {found[0] + 1 if found else None}"
        )
        assert found == [args.lines - 3], found

        t = time.perf_counter()
        search = index.search("zzz not there", ignore_case=True)
        search.wait()
        print(f"search (no match, ignore case, whole file): {time.perf_counter() - t:.2f} s")

        rss_now = psutil.Process().memory_info().rss / (1 << 20)
        print(
            f"RSS: {rss_before:.0f} MiB before open, {rss_now:.0f} MiB after, peak {peak_rss_mb():.0f} MiB; "
            f"index {len(index._starts) * 8 / (1 << 20):.1f} MiB for a {size / (1 << 20):,.0f} MiB file"
        )
        index.close()


if __name__ == "__main__":
    main()
