"""The app's memory cockpit, learning-rate preview and dataset tools.

A mixin for `MlxtuiApp`, kept apart from app.py (as `workbench.py` is): app.py adds
`COCKPIT_BINDINGS`/`COCKPIT_HELP`, calls `cockpit_mount()` in `on_mount` and
`cockpit_config_changed(name)` when a Config field changes. Engine messages are handled in
app.py only (`@on` handlers in a plain mixin would be silently ignored by Textual).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from textual.binding import Binding

from mlxtui.tui.data_folder import data_folder
from mlxtui.tui.widgets.config_form import ConfigForm
from mlxtui.tui.widgets.dataset_browser import DatasetBrowser
from mlxtui.tui.widgets.lr_preview import LossPane
from mlxtui.tui.widgets.memory_estimate import EstimateView

COCKPIT_BINDINGS = [
    Binding("l", "toggle_lr", "LR/Loss", show=False),
    Binding("m", "memory_details", "Memory est.", show=False),
    Binding("v", "data_tool('validate')", "Validate"),
    Binding("i", "data_tool('stats')", "Stats", show=False),
    Binding("d", "data_tool('prepare')", "Split/convert", show=False),
]

COCKPIT_HELP = [
    ("l", "Loss pane: learning-rate schedule / loss curves"),
    ("m", "memory estimate: breakdown and cheaper options"),
    ("v", "validate the data folder (Enter on a finding shows its line)"),
    ("i", "dataset stats: counts, token-length histogram, iterations per epoch"),
    ("d", "split a JSONL file / convert CSV, JSON to JSONL"),
    ("/ (dataset)", "search the split; n / N next / previous match"),
    ("g (dataset)", "go to a line number"),
]

DATA_PANE_INDEX = 3


class CockpitMixin:
    """Mixed into `MlxtuiApp` (an `App`): everything here runs on the UI thread."""

    # Provided by MlxtuiApp / App.
    engine: Any
    status: Any
    config: Any
    query_one: Any
    notify: Any
    push_screen: Any
    _select_pane: Any

    # ------------------------------------------------------------ hooks called by app.py

    def cockpit_mount(self) -> None:
        self.refresh_schedule()

    def cockpit_config_changed(self, name: str) -> None:
        if name == "data":
            self.query_one(DatasetBrowser).set_data_dir(data_folder(self._form_config()))
        self.refresh_schedule()

    # ------------------------------------------------------------ LR preview

    def _form_config(self) -> Any:
        return self.query_one(ConfigForm).config

    def _n_train(self) -> int | None:
        browser = self.query_one(DatasetBrowser)
        index = browser.index
        if index is not None and browser.split == "train" and index.is_complete:
            return len(index)
        return None

    def refresh_schedule(self) -> None:
        """Draw the schedule; with epochs it waits for the dataset's size (DatasetBrowser.Indexed)."""
        self.query_one(LossPane).show_schedule(self._form_config(), self._n_train())

    def action_toggle_lr(self) -> None:
        self.query_one(LossPane).toggle()

    def action_memory_details(self) -> None:
        self.query_one(EstimateView).open_details()

    # ------------------------------------------------------------ dataset tools

    def _data_dir(self) -> Path | None:
        return data_folder(self._form_config())

    def action_data_tool(self, tool: str) -> None:
        from mlxtui.core.data import keys_from
        from mlxtui.tui.screens.data_tools import PrepareScreen, StatsScreen, ValidateScreen

        config = self._form_config()
        data_dir = self._data_dir()
        tokenizer = getattr(self.engine, "tokenizer", None)
        if tool == "prepare":
            start = ""
            if data_dir is not None and config.data:
                candidates = sorted(
                    p
                    for p in Path(data_dir).glob("*")
                    if p.suffix in (".jsonl", ".csv", ".tsv", ".json")
                )
                start = str(candidates[0]) if candidates else str(data_dir) + "/"
            self.push_screen(PrepareScreen(start), self._use_prepared)
            return
        if data_dir is None:
            self.notify("No data folder: set one in the Config pane.", severity="warning")
            return
        if tool == "validate":
            screen: Any = ValidateScreen(
                data_dir, tokenizer, config.max_seq_length, keys_from(config), config.batch_size
            )
            self.push_screen(screen, self._show_finding)
        elif tool == "stats":
            self.push_screen(
                StatsScreen(
                    data_dir, tokenizer, config.max_seq_length, config.batch_size, keys_from(config)
                )
            )

    def _show_finding(self, target: tuple[str, int] | None) -> None:
        if target is None:
            return
        split, line = target
        self._select_pane(DATA_PANE_INDEX)
        self.query_one(DatasetBrowser).show_line(split, line)

    def _use_prepared(self, folder: Path | None) -> None:
        if folder is None:
            return
        form = self.query_one(ConfigForm)
        form.set_value("data", str(folder))
        self.notify(f"Data folder: {folder}")
