"""The compare screen with four runs at 80x24 and 120x40: every run's column of the settings
table and every column of the per-run table is on screen, without scrolling."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_tui_runs import make_app, wait_for
from test_tui_runs_snapshots import START, write_run
from textual.widgets import DataTable

from mlxtui.tui.screens.compare import CompareScreen


@pytest.fixture
def four_runs(tmp_path: Path) -> Path:
    root = tmp_path / "runs"
    write_run(root, "20260101-120000-base", 2e-4, 8, 1.5, START, "completed")
    write_run(root, "20260101-130000-hot", 1e-3, 8, 1.8, START + 3600, "stopped")
    write_run(root, "20260101-140000-wide", 2e-4, 4, 1.2, START + 7200, "completed")
    write_run(root, "20260101-150000-a-rather-long-run-name", 5e-4, 16, 1.4, START + 9000, "completed")
    return root


def _fits(table: DataTable, screen_width: int) -> None:
    """The whole table is drawn: not clipped by its containers, nothing to scroll sideways."""
    geometry = table.screen.find_widget(table)
    region = geometry.region
    assert region.width > 0 and region.height > 1, table.id
    assert region.intersection(geometry.clip) == region, (table.id, region, geometry.clip)
    assert region.right <= screen_width, (table.id, region)
    assert table.max_scroll_x == 0, (table.id, table.virtual_size, table.scrollable_content_region)


@pytest.mark.parametrize("size", [(80, 24), (120, 40)])
async def test_four_runs_fit(four_runs, size):
    app, _box = make_app(four_runs)
    async with app.run_test(size=size) as pilot:
        await pilot.press("r")
        assert await wait_for(pilot, lambda: app.screen.query("#runs-table").first(DataTable).row_count == 4)
        await pilot.press("space", "space", "space", "space", "v")
        assert await wait_for(pilot, lambda: isinstance(app.screen, CompareScreen))
        await pilot.pause(0.3)
        screen = app.screen
        diff = screen.query_one("#cmp-diff", DataTable)
        figures = screen.query_one("#cmp-figures", DataTable)
        _fits(diff, size[0])
        _fits(figures, size[0])
        assert [str(c.label) for c in diff.columns.values()] == ["setting", "1", "2", "3", "4"]
        rows = {diff.get_row_at(i)[0]: diff.get_row_at(i)[1:] for i in range(diff.row_count)}
        assert rows["learning_rate"] == ["0.0005", "0.0002", "0.001", "0.0002"]
        names = [str(figures.get_row_at(i)[1]) for i in range(figures.row_count)]
        assert names == ["…ather-long-run-name", "20260101-140000-wide", "20260101-130000-hot",
                         "20260101-120000-base"]  # fmt: skip
        assert [str(figures.get_row_at(i)[0]) for i in range(4)] == ["1", "2", "3", "4"]
        assert figures.region.bottom <= size[1] - 1, "above the footer"
