"""Deleting a run from the runs screen: asked first, then done in a worker thread (the screen
stays usable while a folder of many checkpoints goes), and a failure said, never lost."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest
from test_tui_runs import make_app, open_runs, wait_for
from test_tui_runs_snapshots import write_two_runs
from textual.widgets import DataTable, Label

from mlxtui.core import run_history
from mlxtui.tui.screens.modals import ConfirmScreen
from mlxtui.tui.screens.runs import RunsScreen


@pytest.fixture
def two_runs(tmp_path: Path) -> Path:
    return write_two_runs(tmp_path / "runs")


def said(app: Any) -> list[str]:
    """Every notification's text from now on (a shown one expires: on a loaded machine before
    a check could read it)."""
    messages: list[str] = []
    shown = app.notify

    def notify(message: str, *args: Any, **kwargs: Any) -> None:
        messages.append(str(message))
        shown(message, *args, **kwargs)

    app.notify = notify
    return messages


async def ask_to_delete(pilot: Any, app: Any) -> tuple[Any, DataTable[Any]]:
    """The runs screen open, `d` pressed on the selected run and the question up: (screen, table)."""
    screen = await open_runs(pilot, app)
    table = screen.query_one("#runs-table", DataTable)
    await pilot.press("d")
    assert await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen))
    return screen, table


async def test_the_deletion_runs_in_a_worker_after_the_question(two_runs, monkeypatch):
    release = threading.Event()
    threads: list[str] = []
    real_delete = run_history.delete_run

    def slow_delete(path: Path) -> None:
        threads.append(threading.current_thread().name)
        release.wait(timeout=10)  # on the UI thread this would hold the screen (and fail below)
        real_delete(path)

    monkeypatch.setattr(run_history, "delete_run", slow_delete)
    hot = two_runs / "20260101-130000-hot"
    app, _box = make_app(two_runs)
    notes = said(app)
    async with app.run_test(size=(160, 45)) as pilot:
        screen, table = await ask_to_delete(pilot, app)
        assert not threads  # nothing is deleted before the answer
        await pilot.press("y")
        assert await wait_for(pilot, lambda: bool(threads))
        assert threads != [threading.current_thread().name]
        assert "deleting 20260101-130000-hot" in str(
            screen.query_one("#runs-title", Label).render()
        )
        await pilot.press("d")  # the screen answers meanwhile, and does not start a second deletion
        assert await wait_for(pilot, lambda: any("is being deleted" in m for m in notes))
        assert isinstance(app.screen, RunsScreen) and hot.is_dir()
        release.set()
        assert await wait_for(pilot, lambda: table.row_count == 1)
        assert not hot.exists() and (two_runs / "20260101-120000-base").is_dir()
        assert f"deleted {hot}" in notes
        assert threads == [threads[0]]  # deleted once
        assert "deleting" not in str(screen.query_one("#runs-title", Label).render())


async def test_a_deletion_that_fails_is_said_and_the_run_stays_listed(two_runs, monkeypatch):
    def refused(path: Path) -> None:
        raise PermissionError(13, "Permission denied", str(path / "adapters"))

    monkeypatch.setattr(run_history, "delete_run", refused)
    app, _box = make_app(two_runs)
    notes = said(app)
    async with app.run_test(size=(160, 45)) as pilot:
        screen, table = await ask_to_delete(pilot, app)
        await pilot.press("y")
        assert await wait_for(pilot, lambda: any("Permission denied" in m for m in notes), 1000), notes
        assert await wait_for(pilot, lambda: not screen.reading and not screen.deleting)
        assert table.row_count == 2 and (two_runs / "20260101-130000-hot").is_dir()


async def test_a_folder_holding_the_users_files_is_refused_before_any_question(two_runs):
    hot = two_runs / "20260101-130000-hot"
    (hot / "my_notes.txt").write_text("mine")
    app, _box = make_app(two_runs)
    notes = said(app)
    async with app.run_test(size=(160, 45)) as pilot:
        await open_runs(pilot, app)
        await pilot.press("d")
        assert await wait_for(pilot, lambda: any("my_notes.txt" in m for m in notes))
        assert isinstance(app.screen, RunsScreen)  # not asked: it cannot be deleted
        assert (hot / "my_notes.txt").read_text() == "mine"
