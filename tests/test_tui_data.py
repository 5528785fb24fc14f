"""Dataset tools (validate, stats, split/convert) and the browser's search and go-to-line."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from test_tui_fakes import FakeEngine
from textual.app import App, ComposeResult
from textual.widgets import DataTable, Input, Select, Switch

from mlxtui.core import events as ev
from mlxtui.core.config import TrainConfig
from mlxtui.tui.app import MlxtuiApp
from mlxtui.tui.screens.data_tools import PrepareScreen, StatsScreen, ValidateScreen
from mlxtui.tui.screens.modals import ErrorModal
from mlxtui.tui.widgets.config_form import ConfigForm
from mlxtui.tui.widgets.dataset_browser import PAGE_ROWS, DatasetBrowser


async def wait_for(pilot: Any, condition: Callable[[], bool], tries: int = 500) -> bool:
    for _ in range(tries):
        if condition():
            return True
        await pilot.pause(0.02)
    return condition()


def chat(question: str, answer: str) -> str:
    return json.dumps(
        {
            "messages": [
                {"role": "user", "content": question},
                {"role": "assistant", "content": answer},
            ]
        }
    )


def write_dataset(folder: Path, train_lines: list[str], valid_lines: list[str]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "train.jsonl").write_text("\n".join(train_lines) + "\n")
    (folder / "valid.jsonl").write_text("\n".join(valid_lines) + "\n")
    return folder


def good_lines(n: int, start: int = 0) -> list[str]:
    return [
        chat(f"question {i} " + "word " * (i % 7), f"answer {i}") for i in range(start, start + n)
    ]


class Host(App[None]):
    """A bare app to open one screen or widget in (much faster than the whole dashboard)."""

    def __init__(self, browser: bool = False) -> None:
        super().__init__()
        self.with_browser = browser
        self.results: list[Any] = []

    def compose(self) -> ComposeResult:
        if self.with_browser:
            yield DatasetBrowser(id="dataset")

    def open(self, screen: Any) -> None:
        self.push_screen(screen, self.results.append)


async def test_validate_lists_findings_with_lines_and_selecting_one_dismisses_with_it(
    tmp_path: Path,
) -> None:
    lines = good_lines(6)
    lines[1] = '{"messages": [oops'
    lines[3] = json.dumps({"question": "no known keys"})
    data = write_dataset(tmp_path / "bad", lines, good_lines(2, 100))
    app = Host()
    async with app.run_test(size=(120, 40)) as pilot:
        screen = ValidateScreen(data, None, 2048, None, batch_size=2)
        app.open(screen)
        assert await wait_for(pilot, lambda: screen.report is not None)
        shown = screen.finding_lines()
        assert any(line.startswith("train.jsonl:2: error: ") for line in shown), shown
        assert any(line.startswith("train.jsonl:4: error: ") for line in shown), shown
        assert "2 error(s)" in str(screen.query_one("#validate-summary").render())
        await pilot.press("enter")  # the first finding is highlighted
        assert app.results == [("train", 2)]


async def test_validate_from_the_dashboard_jumps_the_browser_and_error_modal_lists_lines(
    tmp_path: Path,
) -> None:
    lines = good_lines(150)
    lines[120] = "not json"
    data = write_dataset(tmp_path / "d", lines, good_lines(5, 500))
    config = TrainConfig.quick_start(data=str(data))
    app = MlxtuiApp(config, engine_factory=lambda on_event: FakeEngine(on_event))
    async with app.run_test(size=(120, 40)) as pilot:
        browser = app.query_one(DatasetBrowser)
        assert await wait_for(pilot, lambda: browser.index is not None)
        await pilot.press("v")
        assert await wait_for(pilot, lambda: isinstance(app.screen, ValidateScreen))
        screen = app.screen
        assert await wait_for(pilot, lambda: screen.report is not None)  # type: ignore[attr-defined]
        assert "train.jsonl:121: error:" in " ".join(screen.finding_lines())  # type: ignore[attr-defined]
        await pilot.press("enter")
        assert await wait_for(pilot, lambda: browser.selected == 120)
        assert browser.split == "train"
        assert "line 121" in browser.example_text()
        assert app.active_pane == 3

        # The engine's refusal to train is a multi-line file:line list: all of it is shown.
        message = (
            "the dataset has 2 error(s); training did not start:\n"
            f"{data}/train.jsonl:121: line is not valid JSON\n"
            f"{data}/train.jsonl:140: no known keys"
        )
        app.bridge(ev.JobFailed(9, "train", message, "fix them"))
        assert await wait_for(pilot, lambda: isinstance(app.screen, ErrorModal))
        shown = str(app.screen.query_one("#error-message").render())
        assert "train.jsonl:121: line is not valid JSON" in shown
        assert "train.jsonl:140: no known keys" in shown
        await pilot.press("escape")

        # Another data folder in the Config pane: the browser follows.
        other = write_dataset(tmp_path / "other", good_lines(12), good_lines(3, 50))
        app.query_one(ConfigForm).set_value("data", str(other))
        assert await wait_for(pilot, lambda: browser.data_dir == other)
        assert browser.index is not None and len(browser.index) == 12


async def test_stats_screen_shows_counts_histogram_and_iterations(tmp_path: Path) -> None:
    data = write_dataset(tmp_path / "s", good_lines(40), good_lines(8, 100))
    app = Host()
    async with app.run_test(size=(120, 40)) as pilot:
        screen = StatsScreen(data, None, max_seq_length=12, batch_size=4)
        app.open(screen)
        assert await wait_for(pilot, lambda: screen.stats is not None)
        text = str(screen.query_one("#stats-text").render())
        assert "train" in text and "valid" in text
        assert screen.stats is not None and screen.stats.counts == {"train": 40, "valid": 8}
        assert "10 iterations per epoch at batch size 4" in text
        assert "exceed max_seq_length 12" in text
        assert "roles (train): assistant 40, user 40" in text
        rows = screen.histogram_rows()
        assert sum(count for _, _, count in rows) == 40 and len(rows) > 1


async def test_split_writes_files_and_refuses_to_overwrite_without_force(tmp_path: Path) -> None:
    source = tmp_path / "all.jsonl"
    source.write_text("\n".join(good_lines(20)) + "\n")
    out = tmp_path / "out"
    app = Host()
    async with app.run_test(size=(120, 40)) as pilot:
        screen = PrepareScreen(str(source))
        app.open(screen)
        await pilot.pause()
        screen.query_one("#prep-out", Input).value = str(out)
        screen.query_one("#prep-ratios", Input).value = "0.8,0.2"
        await pilot.press("ctrl+r")
        assert await wait_for(pilot, lambda: "wrote" in screen.result_text())
        assert "train.jsonl (16)" in screen.result_text()
        assert len((out / "train.jsonl").read_text().splitlines()) == 16
        assert len((out / "valid.jsonl").read_text().splitlines()) == 4
        before = (out / "train.jsonl").read_bytes()

        screen.query_one("#prep-seed", Input).value = "7"
        await pilot.press("ctrl+r")
        assert await wait_for(pilot, lambda: "already exist" in screen.result_text())
        assert "switch Overwrite files on" in screen.result_text()
        assert "--" not in screen.result_text()  # no CLI flag on the screen
        assert (out / "train.jsonl").read_bytes() == before  # untouched

        screen.query_one("#prep-force", Switch).value = True
        await pilot.press("ctrl+r")
        assert await wait_for(pilot, lambda: "wrote" in screen.result_text())
        assert (out / "train.jsonl").read_bytes() != before  # another seed, another order

        # Convert: a CSV into chat JSONL, with a clear error for a missing column first.
        csv = tmp_path / "qa.csv"
        csv.write_text("question,answer\nWhat is Lumo?,A fern.\nWater?,Every three days.\n")
        screen.query_one("#prep-mode", Select).value = "convert"
        screen.query_one("#prep-input", Input).value = str(csv)
        screen.query_one("#prep-prompt", Input).value = "nope"
        await pilot.press("ctrl+r")
        assert await wait_for(pilot, lambda: "nope" in screen.result_text())
        screen.query_one("#prep-prompt", Input).value = ""
        screen.query_one("#prep-system", Input).value = "Be brief."
        await pilot.press("ctrl+r")
        assert await wait_for(pilot, lambda: "wrote 2 example(s)" in screen.result_text())
        first = json.loads((out / "qa.jsonl").read_text().splitlines()[0])
        assert first["messages"][0] == {"role": "system", "content": "Be brief."}
        assert first["messages"][-1]["content"] == "A fern."


async def test_browser_search_and_jump_on_a_200k_line_file(tmp_path: Path) -> None:
    n = 200_000
    needles = {7, 150_000, n - 1}
    data = tmp_path / "big"
    data.mkdir()
    with (data / "train.jsonl").open("w") as f:
        for i in range(n):
            word = "NEEDLE" if i in needles else "hay"
            f.write(f'{{"text": "line {i} {word}"}}\n')
    app = Host(browser=True)
    async with app.run_test(size=(120, 30)) as pilot:
        browser = app.query_one(DatasetBrowser)
        browser.set_data_dir(data)
        table = browser.query_one(DataTable)
        assert browser.loaded_rows == PAGE_ROWS and table.row_count == PAGE_ROWS
        assert "line 0 hay" in browser.example_text()
        table.focus()

        # g: jump to the last line (once the index has reached it), the table stays one window.
        assert await wait_for(pilot, lambda: browser.index.is_complete)  # type: ignore[union-attr]
        await pilot.press("g")
        await pilot.press(*"200000", "enter")
        assert await wait_for(pilot, lambda: browser.selected == n - 1)
        assert f"line {n - 1} NEEDLE" in browser.example_text()
        assert table.row_count <= 2 * PAGE_ROWS
        assert table.get_row_at(table.cursor_row)[0] == str(n)
        await pilot.press("up")
        assert browser.selected == n - 2

        # Back to the top, then search: the first match is selected, n/N walk the matches.
        assert browser.jump_to_line(1)
        await pilot.press("slash")
        assert app.focused is browser.query_one("#ds-find", Input)
        await pilot.press(*"needle", "enter")
        assert await wait_for(pilot, lambda: browser.search is not None and browser.search.is_done)
        assert browser.matches == sorted(needles)
        assert await wait_for(pilot, lambda: browser.selected == 7)
        assert await wait_for(pilot, lambda: "3 matches for 'needle'" in browser.count_text())
        await pilot.press("n")
        assert browser.selected == 150_000
        assert "line 150000 NEEDLE" in browser.example_text()
        await pilot.press("n")
        assert browser.selected == n - 1
        await pilot.press("n")
        assert browser.selected == 7  # wraps
        await pilot.press("N")
        assert browser.selected == n - 1

        # Scrolling up past the window's first row brings the page above into the table.
        assert browser.jump_to_line(150_001)
        start = browser.window_start
        for _ in range(150_000 - start + 1):
            await pilot.press("up")
        assert browser.selected == start - 1
        assert browser.window_start < start


def test_demo_means_the_bundled_demo_set_as_the_engine_reads_it(tmp_path: Path) -> None:
    from mlxtui.demo_data import demo_data_dir
    from mlxtui.tui.data_folder import data_folder

    base = TrainConfig.quick_start()
    for value in (None, "", "demo"):
        assert data_folder(base.with_values(data=value)) == demo_data_dir(), value
    assert data_folder(base.with_values(data=str(tmp_path))) == tmp_path


async def test_typing_demo_in_the_data_field_browses_the_demo_set() -> None:
    from mlxtui.demo_data import demo_data_dir

    app = MlxtuiApp(
        TrainConfig.quick_start().with_values(data=str(Path(__file__).parent)),
        engine_factory=lambda on_event: FakeEngine(on_event),
    )
    async with app.run_test(size=(120, 40)) as pilot:
        browser = app.query_one(DatasetBrowser)
        assert await wait_for(pilot, lambda: browser.data_dir == Path(__file__).parent)
        app.query_one(ConfigForm).set_value("data", "demo")
        assert await wait_for(pilot, lambda: browser.data_dir == demo_data_dir())
