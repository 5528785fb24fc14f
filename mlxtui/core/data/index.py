"""A lazy line index over a JSONL file, so a multi-GB dataset opens at once (like toolong).

A plain Python thread (no MLX) scans the file in chunks and records where each line starts in an
`array('Q')`: 8 bytes a line is all we keep; lines are read back with `os.pread` when asked for.
The first chunk is indexed before the constructor returns, so the first page is there at once.
"""

from __future__ import annotations

import bisect
import json
import os
import threading
import time
from array import array
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

CHUNK_SIZE = 4 << 20
SEARCH_CHUNK_SIZE = 4 << 20
PROGRESS_INTERVAL_S = 0.05

ProgressFn = Callable[[int, int, int], None]  # (bytes done, bytes total, lines so far)


@dataclass(frozen=True)
class RecordError:
    """A line that is not a JSON object: what went wrong, on which line (1-based)."""

    line: int
    message: str
    text: str

    def __bool__(self) -> bool:  # so `if rec := index.record(i)` reads naturally
        return False


def parse_line(raw: bytes, line: int) -> dict[str, Any] | RecordError:
    """Parse one line's bytes into a JSON object, or say exactly why it is not one."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        shown = raw.decode("utf-8", errors="replace")
        return RecordError(line, f"invalid UTF-8 at byte {e.start + 1} of the line", shown)
    if not text.strip():
        return RecordError(line, "blank line", text)
    if text.startswith("\ufeff"):
        # Python's json (and so mlx-lm) rejects it; editors on Windows often add it
        return RecordError(
            line,
            "invalid JSON: the file starts with a UTF-8 byte order mark (BOM); "
            "save it as UTF-8 without BOM",
            text,
        )
    try:
        value = json.loads(text)
    except (json.JSONDecodeError, RecursionError) as e:
        msg = (
            f"invalid JSON: {e.msg} at column {e.colno}"
            if isinstance(e, json.JSONDecodeError)
            else "invalid JSON: nested too deeply"
        )
        return RecordError(line, msg, text)
    if not isinstance(value, dict):
        return RecordError(line, f"expected a JSON object {{...}}, got {json_type(value)}", text)
    return value


def json_type(value: Any) -> str:
    names = {
        list: "an array",
        str: "a string",
        bool: "a boolean",
        int: "a number",
        float: "a number",
        dict: "an object",
    }
    return "null" if value is None else names.get(type(value), type(value).__name__)


class JsonlIndex:
    """Line offsets of a text file, built by a background thread; lines read on demand.

    `len(index)` is the number of lines indexed so far (all of them once `is_complete`).
    A trailing newline does not make an extra empty line; blank lines in the middle count.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        on_progress: ProgressFn | None = None,
        chunk_size: int = CHUNK_SIZE,
        background: bool = True,
    ) -> None:
        self.path = Path(path)
        self._fd = os.open(self.path, os.O_RDONLY)
        self.total_bytes = os.fstat(self._fd).st_size
        # _starts[i] is where line i starts; the last entry is where the next (unfinished) line starts.
        self._starts = array("Q", [0])
        self._scanned = 0
        self._complete = False
        self._error: BaseException | None = None
        self._closed = threading.Event()
        self._cond = threading.Condition()
        self._on_progress = on_progress
        self._chunk_size = max(chunk_size, 1)
        self._last_progress = 0.0
        self._searches: list[Search] = []
        # Index the first chunk now so the first page never waits for the thread.
        self._scan_chunk()
        self._thread: threading.Thread | None = None
        if self._complete:
            self._report_progress(force=True)
        elif background:
            self._thread = threading.Thread(
                target=self._run, name=f"index:{self.path.name}", daemon=True
            )
            self._thread.start()
        else:
            self._run()

    # ------------------------------------------------------------------ indexing

    def _scan_chunk(self) -> None:
        chunk = os.pread(self._fd, self._chunk_size, self._scanned)
        if not chunk:
            with self._cond:
                if self._starts[-1] < self._scanned:  # last line has no trailing newline
                    self._starts.append(self._scanned)
                self.total_bytes = self._scanned
                self._complete = True
                self._cond.notify_all()
            return
        newlines = np.flatnonzero(np.frombuffer(chunk, dtype=np.uint8) == 10)
        with self._cond:
            if len(newlines):
                self._starts.frombytes((newlines + (self._scanned + 1)).astype("<u8").tobytes())
            self._scanned += len(chunk)
            self._cond.notify_all()

    def _run(self) -> None:
        try:
            while not self._complete and not self._closed.is_set():
                self._scan_chunk()
                self._report_progress(force=self._complete)
        except BaseException as e:  # an unreadable file must not hang readers waiting on us
            with self._cond:
                self._error = e
                self._complete = True
                self._cond.notify_all()

    def _report_progress(self, force: bool = False) -> None:
        if self._on_progress is None:
            return
        now = time.monotonic()
        if force or now - self._last_progress >= PROGRESS_INTERVAL_S:
            self._last_progress = now
            self._on_progress(self._scanned, max(self.total_bytes, self._scanned), len(self))

    # ------------------------------------------------------------------ reading

    def __len__(self) -> int:
        return len(self._starts) - 1

    @property
    def is_complete(self) -> bool:
        return self._complete

    @property
    def error(self) -> BaseException | None:
        """The exception that stopped indexing early (an I/O error), if any."""
        return self._error

    @property
    def bytes_indexed(self) -> int:
        return self._scanned

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the whole file is indexed; True when it is."""
        with self._cond:
            return self._cond.wait_for(lambda: self._complete, timeout)

    def wait_for_lines(self, n: int, timeout: float | None = None) -> bool:
        """Block until at least n lines are indexed (or the file ends); True when n are there."""
        with self._cond:
            self._cond.wait_for(lambda: len(self) >= n or self._complete, timeout)
        return len(self) >= n

    def _wait_for_bytes(self, pos: int) -> None:
        with self._cond:
            self._cond.wait_for(lambda: self._scanned > pos or self._complete)

    def line_bytes(self, i: int) -> bytes:
        """The raw bytes of line i (0-based), without its line ending."""
        n = len(self)
        if i < 0:
            i += n
        if not 0 <= i < n:
            raise IndexError(f"line {i} is not indexed ({n} lines so far)")
        start, end = self._starts[i], self._starts[i + 1]
        raw = os.pread(self._fd, end - start, start)
        if raw.endswith(b"\n"):
            raw = raw[:-1]
        if raw.endswith(b"\r"):
            raw = raw[:-1]
        return raw

    def line(self, i: int) -> str:
        """Line i (0-based) as text; undecodable bytes are shown as U+FFFD."""
        return self.line_bytes(i).decode("utf-8", errors="replace")

    def record(self, i: int) -> dict[str, Any] | RecordError:
        """Line i parsed as a JSON object, or a RecordError saying why it is not one."""
        n = i + len(self) if i < 0 else i
        return parse_line(self.line_bytes(i), n + 1)

    def line_at_offset(self, pos: int) -> int:
        """The 0-based line that holds byte `pos` (must be indexed already)."""
        return bisect.bisect_right(self._starts, pos) - 1

    # ------------------------------------------------------------------ search

    def search(
        self,
        text: str,
        start: int = 0,
        on_match: Callable[[int], None] | None = None,
        on_progress: ProgressFn | None = None,
        cancel_event: threading.Event | None = None,
        *,
        ignore_case: bool = True,
        max_matches: int | None = None,
    ) -> Search:
        """Find lines containing `text`, from line `start` on, in a background thread.

        The bytes are scanned directly (no JSON parsing); `text` is also looked for in its JSON
        escaped spelling (so "é" finds "\\u00e9" and a quote finds \\"). `on_match(line)` gets
        0-based line numbers in order; `on_progress(bytes done, bytes total, matches)`.
        """
        search = Search(
            self,
            text,
            start,
            on_match,
            on_progress,
            cancel_event or threading.Event(),
            ignore_case,
            max_matches,
        )
        self._searches = [s for s in self._searches if not s.is_done] + [search]
        search.start()
        return search

    # ------------------------------------------------------------------ lifetime

    def close(self) -> None:
        self._closed.set()
        for search in self._searches:
            search.cancel()
            search.wait()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join()
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> JsonlIndex:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            if self._fd >= 0:
                self._closed.set()
                os.close(self._fd)
                self._fd = -1
        except Exception:
            pass


class Search:
    """A running search over a JsonlIndex: `matches` grows as it goes; `wait()` for the end."""

    def __init__(
        self,
        index: JsonlIndex,
        text: str,
        start: int,
        on_match: Callable[[int], None] | None,
        on_progress: ProgressFn | None,
        cancel_event: threading.Event,
        ignore_case: bool,
        max_matches: int | None,
    ) -> None:
        self.index = index
        self.text = text
        self.matches = array("Q")
        self.cancel_event = cancel_event
        self.error: BaseException | None = None
        self._start_line = max(start, 0)
        self._on_match = on_match
        self._on_progress = on_progress
        self._ignore_case = ignore_case
        self._max_matches = max_matches
        needles = {text, json.dumps(text, ensure_ascii=False)[1:-1], json.dumps(text)[1:-1]}
        if ignore_case:
            needles = {n.lower() for n in needles}
        self._needles = [n.encode("utf-8") for n in needles if n]
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, name="search", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def cancel(self) -> None:
        self.cancel_event.set()

    @property
    def is_done(self) -> bool:
        return self._done.is_set()

    def wait(self, timeout: float | None = None) -> bool:
        return self._done.wait(timeout)

    def _run(self) -> None:
        try:
            self._scan()
        except BaseException as e:
            self.error = e
        finally:
            self._done.set()

    def _scan(self) -> None:
        index = self.index
        if not self._needles:
            return
        index.wait_for_lines(self._start_line + 1)
        if self._start_line >= len(index):
            return
        pos = index._starts[self._start_line]
        overlap = max(len(n) for n in self._needles) - 1
        next_line_start = pos  # matches before this are in a line already reported
        last_progress = 0.0
        while not self.cancel_event.is_set():
            chunk = os.pread(index._fd, SEARCH_CHUNK_SIZE, pos)
            if not chunk:
                break
            hay = chunk.lower() if self._ignore_case else chunk
            index._wait_for_bytes(pos + len(chunk) - 1)
            hits = []
            for needle in self._needles:
                at = hay.find(needle)
                while at >= 0:
                    hits.append(pos + at)
                    at = hay.find(needle, at + 1)
            for hit in sorted(hits):
                if hit < next_line_start:
                    continue
                line = index.line_at_offset(hit)
                index.wait_for_lines(line + 1)  # its end may not be indexed yet
                next_line_start = (
                    index._starts[line + 1] if line + 1 < len(index._starts) else hit + 1
                )
                self.matches.append(line)
                if self._on_match is not None:
                    self._on_match(line)
                if self._max_matches is not None and len(self.matches) >= self._max_matches:
                    return
            if len(chunk) < SEARCH_CHUNK_SIZE:
                break
            pos += len(chunk) - overlap if overlap < len(chunk) else len(chunk)
            now = time.monotonic()
            if self._on_progress is not None and now - last_progress >= PROGRESS_INTERVAL_S:
                last_progress = now
                self._on_progress(pos, index.total_bytes, len(self.matches))
        if self._on_progress is not None:
            self._on_progress(index.total_bytes, index.total_bytes, len(self.matches))


def scan_lines(path: str | Path) -> Iterator[tuple[int, bytes, int]]:
    """Stream a file's lines: (1-based line number, bytes without line ending, bytes read so far).

    For one pass over a big file (validation, stats) without keeping anything in memory.
    """
    done = 0
    with open(path, "rb") as f:
        for number, raw in enumerate(f, start=1):
            done += len(raw)
            if raw.endswith(b"\n"):
                raw = raw[:-1]
            if raw.endswith(b"\r"):
                raw = raw[:-1]
            yield number, raw, done


def iter_records(path: str | Path) -> Iterator[tuple[int, dict[str, Any] | RecordError]]:
    """(1-based line, record or RecordError) for each non-blank line of a JSONL file."""
    for number, raw, _ in scan_lines(path):
        if raw.strip():
            yield number, parse_line(raw, number)
