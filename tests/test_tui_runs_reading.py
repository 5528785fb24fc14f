"""The runs screen reads the run folders in a worker thread: it opens at once, says "reading
runs…", stays usable, and fills the table when the read is done (here a read that blocks until
the test lets it go)."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest
from test_tui_runs import make_app, wait_for
from test_tui_runs_snapshots import write_two_runs
from textual.widgets import DataTable, Label, Static

from mlxtui.core import run_history
from mlxtui.tui.screens import runs as runs_screen
from mlxtui.tui.screens.runs import READING, RunsScreen


@pytest.fixture
def two_runs(tmp_path: Path) -> Path:
    return write_two_runs(tmp_path / "runs")


def _text(screen: RunsScreen, selector: str, kind: Any) -> str:
    return str(screen.query_one(selector, kind).render())


async def test_the_screen_opens_before_a_slow_read_ends(two_runs, monkeypatch):
    release = threading.Event()
    reading_threads: list[str] = []

    def slow(runs_dir: Path) -> list[run_history.RunSummary]:
        reading_threads.append(threading.current_thread().name)
        # a read on the UI thread would hold the screen until this times out (and fail below)
        release.wait(timeout=10)
        return run_history.list_summaries(runs_dir)

    monkeypatch.setattr(runs_screen, "list_summaries", slow)
    app, _box = make_app(two_runs)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("r")
        assert await wait_for(pilot, lambda: isinstance(app.screen, RunsScreen) and app.screen.reading)
        screen = app.screen
        assert isinstance(screen, RunsScreen)
        assert await wait_for(pilot, lambda: bool(reading_threads))
        assert not release.is_set()
        assert READING in _text(screen, "#runs-title", Label)
        assert READING in _text(screen, "#runs-detail", Static)
        table = screen.query_one("#runs-table", DataTable)
        assert table.row_count == 0
        await pilot.press("f")  # keys work meanwhile: nothing to chat with yet, and it says so
        assert await wait_for(pilot, lambda: any("no run to chat" in n.message for n in app._notifications))
        assert reading_threads != [threading.current_thread().name]
        release.set()
        assert await wait_for(pilot, lambda: table.row_count == 2)
        assert not screen.reading and READING not in _text(screen, "#runs-title", Label)
        assert table.get_row_at(0)[0] == "20260101-130000-hot"
        assert "hot" in _text(screen, "#runs-detail", Static)


async def test_only_the_last_read_is_shown_and_closing_while_reading_is_safe(two_runs, monkeypatch):
    gates = [threading.Event(), threading.Event()]
    calls: list[int] = []

    def gated(runs_dir: Path) -> list[run_history.RunSummary]:
        n = len(calls)
        calls.append(n)
        gates[min(n, 1)].wait(timeout=10)
        found = run_history.list_summaries(runs_dir)
        return found[:1] if n == 0 else found  # the first, stale read sees one run

    monkeypatch.setattr(runs_screen, "list_summaries", gated)
    app, _box = make_app(two_runs)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("r")
        assert await wait_for(pilot, lambda: len(calls) == 1)
        screen = app.screen
        assert isinstance(screen, RunsScreen)
        await pilot.press("g")  # refresh while the first read is still going
        assert await wait_for(pilot, lambda: len(calls) == 2)
        gates[1].set()
        table = screen.query_one("#runs-table", DataTable)
        assert await wait_for(pilot, lambda: table.row_count == 2)
        gates[0].set()  # the stale read ends last: it must not replace the newer one
        await pilot.pause(0.3)
        assert table.row_count == 2 and not screen.reading
        # closed while a read is under way: its late answer goes nowhere, the app goes on
        gates[0].clear()
        gates[1].clear()
        await pilot.press("g")
        await pilot.press("escape")
        assert await wait_for(pilot, lambda: not isinstance(app.screen, RunsScreen))
        gates[1].set()
        await pilot.pause(0.3)
        assert app.is_running
