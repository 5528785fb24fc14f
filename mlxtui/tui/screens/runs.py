"""Runs screen: the run history, chat with a run's final or best adapter, resume a run.

The screen reads run folders (plain files, no MLX) and calls back into the app for the actions:
`use(path, label)` picks an adapter file for the chat, `resume(run_path)` starts training.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import Button, DataTable, Footer, Label, Static

from mlxtui.core.runs import BEST_FILE, STATE_DIR, RunInfo, list_runs

ADAPTER_FILE = "adapters.safetensors"


def resumable(run: RunInfo) -> str | None:
    """Why `run` cannot be resumed, or None when it can."""
    if not (run.path / STATE_DIR / "optimizer.safetensors").is_file():
        return f"{run.name} has no resume state ({STATE_DIR}/optimizer.safetensors)"
    if run.status == "completed" and run.total_iters and run.iteration >= run.total_iters:
        return f"{run.name} is complete ({run.iteration}/{run.total_iters}); nothing to resume"
    return None


class RunsScreen(Screen[None]):
    BINDINGS = [
        Binding("escape,q", "app.pop_screen", "Close", show=True),
        Binding("f", "use('final')", "Chat: final", show=True),
        Binding("b", "use('best')", "Chat: best", show=True),
        Binding("c", "resume", "Continue run", show=True),
        Binding("g", "reload", "Refresh", show=True),
    ]

    DEFAULT_CSS = """
    RunsScreen > Vertical { padding: 0 1; }
    RunsScreen .title { text-style: bold; background: $panel; width: 100%; padding: 0 1; }
    RunsScreen #runs-table { height: 1fr; }
    RunsScreen #runs-detail { height: auto; color: $text-muted; }
    RunsScreen #runs-buttons { height: 3; }
    RunsScreen #runs-buttons Button { margin-right: 1; }
    """

    def __init__(
        self,
        runs_dir: str | Path,
        use: Callable[[Path, str], None],
        resume: Callable[[Path], bool],
    ) -> None:
        super().__init__()
        self.runs_dir = Path(runs_dir)
        self.use = use
        self.resume = resume
        self.runs: list[RunInfo] = []

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(f"Runs in {self.runs_dir.resolve()}", classes="title")
            table: DataTable[str] = DataTable(
                id="runs-table", cursor_type="row", zebra_stripes=True
            )
            yield table
            yield Static("", id="runs-detail")
            with Horizontal(id="runs-buttons"):
                yield Button("Chat with final (f)", id="runs-final", variant="primary")
                yield Button("Chat with best (b)", id="runs-best")
                yield Button("Continue this run (c)", id="runs-resume", variant="warning")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one(DataTable).add_columns("run", "status", "iteration", "best val loss")
        self.action_reload()
        self.query_one(DataTable).focus()

    def action_reload(self) -> None:
        self.runs = list_runs(self.runs_dir)
        table = self.query_one(DataTable)
        table.clear()
        for i, run in enumerate(self.runs):
            best = f"{run.best_val_loss:.4f}" if run.best_val_loss is not None else "–"
            total = f"/{run.total_iters}" if run.total_iters else ""
            table.add_row(run.name, run.status, f"{run.iteration}{total}", best, key=str(i))
        if not self.runs:
            self.query_one("#runs-detail", Static).update(
                f"No runs yet in {self.runs_dir} (press t on the main screen to train)."
            )
        else:
            self._show_detail(0)

    def selected(self) -> RunInfo | None:
        table = self.query_one(DataTable)
        if not self.runs or table.cursor_row is None:
            return None
        index = min(max(table.cursor_row, 0), len(self.runs) - 1)
        return self.runs[index]

    @on(DataTable.RowHighlighted, "#runs-table")
    def _highlighted(self, event: DataTable.RowHighlighted) -> None:
        if event.row_key.value is not None:
            self._show_detail(int(event.row_key.value))

    def _show_detail(self, index: int) -> None:
        if not 0 <= index < len(self.runs):
            return
        run = self.runs[index]
        have = [
            name
            for name, file in (("final", ADAPTER_FILE), ("best", BEST_FILE))
            if (run.adapters / file).is_file()
        ]
        why_not = resumable(run)
        text = Text()
        text.append(f"{run.path}\n")
        text.append(f"adapters: {', '.join(have) or 'none yet'}\n")
        text.append(why_not or f"resume: c here, or `mlxtui train --resume {run.path}`")
        self.query_one("#runs-detail", Static).update(text)

    @on(Button.Pressed, "#runs-final")
    def _final(self) -> None:
        self.action_use("final")

    @on(Button.Pressed, "#runs-best")
    def _best(self) -> None:
        self.action_use("best")

    @on(Button.Pressed, "#runs-resume")
    def _resume_pressed(self) -> None:
        self.action_resume()

    def action_use(self, which: str) -> None:
        run = self.selected()
        if run is None:
            self.notify("There is no run to choose.", severity="warning")
            return
        file = run.adapters / (ADAPTER_FILE if which == "final" else BEST_FILE)
        if not file.is_file():
            self.notify(f"{run.name} has no {which} adapter ({file.name}).", severity="error")
            return
        self.use(file, f"{run.name} {which}")

    def action_resume(self) -> None:
        run = self.selected()
        if run is None:
            self.notify("There is no run to continue.", severity="warning")
            return
        why_not = resumable(run)
        if why_not:
            self.notify(why_not, title="Cannot continue", severity="error")
            return
        self.resume(run.path)
