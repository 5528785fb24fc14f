"""The lazy line index: lines on demand, records with errors, search, a big file."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from mlxtui.core.data import JsonlIndex, RecordError, parse_line


def write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def test_lines_and_endings(tmp_path: Path) -> None:
    p = write(tmp_path / "a.jsonl", b'{"text": "a"}\r\n\n{"text": "b"}\n{"text": "c"}')
    with JsonlIndex(p) as idx:
        assert idx.wait(5)
        assert idx.is_complete
        assert len(idx) == 4
        assert idx.line(0) == '{"text": "a"}'
        assert idx.line(1) == ""
        assert idx.line(3) == '{"text": "c"}'  # no trailing newline: still a line
        assert idx.line(-1) == '{"text": "c"}'
        assert idx.record(2) == {"text": "b"}
        blank = idx.record(1)
        assert isinstance(blank, RecordError) and blank.line == 2
        with pytest.raises(IndexError):
            idx.line(4)


def test_trailing_newline_makes_no_extra_line(tmp_path: Path) -> None:
    with JsonlIndex(write(tmp_path / "a.jsonl", b"1\n2\n")) as idx:
        idx.wait()
        assert len(idx) == 2


def test_empty_file(tmp_path: Path) -> None:
    with JsonlIndex(write(tmp_path / "e.jsonl", b"")) as idx:
        assert idx.wait(5) and len(idx) == 0


def test_record_errors_say_why(tmp_path: Path) -> None:
    assert parse_line(b"{bad", 3).message.startswith("invalid JSON")
    assert parse_line(b"[1, 2]", 3).message == "expected a JSON object {...}, got an array"
    err = parse_line(b'{"text": "\xff"}', 7)
    assert isinstance(err, RecordError) and err.line == 7 and "UTF-8" in err.message
    assert "\ufffd" in err.text
    assert parse_line("é".encode() * 2 + b"", 1).message.startswith("invalid JSON")


def test_small_chunks_index_incrementally(tmp_path: Path) -> None:
    lines = [json.dumps({"text": f"line {i}"}) for i in range(500)]
    p = write(tmp_path / "a.jsonl", ("\n".join(lines) + "\n").encode())
    seen = []
    with JsonlIndex(p, chunk_size=64, on_progress=lambda d, t, n: seen.append((d, t, n))) as idx:
        assert len(idx) >= 1  # the first chunk is there before the thread runs
        idx.wait()
        assert len(idx) == 500
        assert [idx.record(i)["text"] for i in (0, 250, 499)] == ["line 0", "line 250", "line 499"]
    assert seen and seen[-1][0] == seen[-1][1] == p.stat().st_size and seen[-1][2] == 500


def test_search_finds_every_matching_line_once(tmp_path: Path) -> None:
    recs = [{"text": "needle needle" if i % 97 == 5 else f"hay {i}"} for i in range(3000)]
    recs[2999] = {"text": "Café «Needle»"}
    p = write(tmp_path / "a.jsonl", "\n".join(json.dumps(r) for r in recs).encode())
    with JsonlIndex(p, chunk_size=1000) as idx:
        got: list[int] = []
        s = idx.search("needle", on_match=got.append)
        assert s.wait(30) and s.error is None
        want = [i for i, r in enumerate(recs) if "needle" in r["text"].lower()]
        assert got == want == list(s.matches)
        # non-ASCII text is found in its JSON-escaped spelling too (json.dumps escapes é)
        s2 = idx.search("café", start=10)
        s2.wait(30)
        assert list(s2.matches) == [2999]
        s3 = idx.search("needle", ignore_case=False)
        s3.wait(30)
        assert 2999 not in s3.matches
        s4 = idx.search("needle", start=want[1] + 1, max_matches=1)
        s4.wait(30)
        assert list(s4.matches) == [want[2]]


def test_search_cancel(tmp_path: Path) -> None:
    p = write(tmp_path / "a.jsonl", b'{"text": "x"}\n' * 1000)
    with JsonlIndex(p) as idx:
        cancel = threading.Event()
        cancel.set()
        s = idx.search("x", cancel_event=cancel)
        assert s.wait(10)
        assert len(s.matches) <= 1


def test_large_file_browse(tmp_path: Path) -> None:
    """200k chat lines: first page at once, jump to the last line, search near the end."""
    n = 200_000
    p = tmp_path / "big.jsonl"
    template = '{"messages": [{"role": "user", "content": "Question number %d about things?"}, {"role": "assistant", "content": "Answer %d."}]}\n'
    with open(p, "w") as f:
        for start in range(0, n, 10_000):
            f.write("".join(template % (i, i) for i in range(start, start + 10_000)))
    with open(p, "a") as f:
        f.write('{"text": "the unique marker zebra"}\n')
    idx = JsonlIndex(p, chunk_size=1 << 20)
    try:
        assert idx.wait_for_lines(50, timeout=10)
        first = [idx.record(i) for i in range(50)]
        assert first[0]["messages"][0]["content"] == "Question number 0 about things?"
        assert first[49]["messages"][1]["content"] == "Answer 49."
        assert idx.wait(60)
        assert len(idx) == n + 1
        assert idx.record(n - 1)["messages"][1]["content"] == f"Answer {n - 1}."
        assert idx.record(-1) == {"text": "the unique marker zebra"}
        s = idx.search("ZEBRA")
        assert s.wait(60)
        assert list(s.matches) == [n]
        # the index holds 8 bytes a line, never the file
        assert idx._starts.itemsize == 8 and len(idx._starts) == n + 2
    finally:
        idx.close()
