"""Sweep screen: a sweep file's queue and its progress; skip, reorder, stop; the results table;
the best run's settings one key away from a new run.

The queue is run by `mlxtui.core.sweep_runner.SweepRunner` on the app's engine, from a worker
thread (it waits on each train job while the engine's MLX thread does the work): the dashboard
shows each run live in the Loss and Memory panes as if it had been started with `t`. The
runner's changes and each step's progress arrive here as messages. Closing the screen leaves
the sweep running; `w` opens it again.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Input, Label, ProgressBar, Static

from mlxtui.core.sweep import (
    DONE,
    FAILED,
    PENDING,
    SHORT,
    SKIPPED,
    Sweep,
    SweepError,
    SweepState,
    fmt_value,
)
from mlxtui.core.sweep_summary import SummaryRow, fmt_duration, summary_rows
from mlxtui.tui.palette import theme_color

DEFAULT_FILE = "sweep.yaml"
# a run's status -> (theme variable, bold); a Rich table cell needs a concrete colour, so it is
# looked up in the running theme (palette.theme_color) when the row is drawn
STATUS_STYLE = {
    "done": ("success", False),
    "running": ("warning", True),
    "stopped": ("warning", False),
    "failed": ("error", False),
}


def _num(value: float | None, spec: str) -> str:
    return format(value, spec) if value is not None else "–"


class SweepScreen(Screen[None]):
    BINDINGS = [
        Binding("escape", "app.pop_screen", "Close", show=True),
        Binding("g", "start", "Start/continue", show=True),
        Binding("k", "skip", "Skip", show=True),
        Binding("u", "move(-1)", "Up", show=True),
        Binding("d", "move(1)", "Down", show=True),
        Binding("s", "stop", "Stop sweep", show=True),
        Binding("b", "load_best", "Best → form", show=True),
        Binding("f", "focus_file", "File", show=False),
    ]

    DEFAULT_CSS = """
    SweepScreen > Vertical { padding: 0 1; }
    SweepScreen .title { text-style: bold; background: $panel; width: 100%; padding: 0 1; }
    SweepScreen #sweep-file-line { height: 1; }
    SweepScreen #sweep-file-line Label { width: auto; padding-right: 1; }
    SweepScreen #sweep-file { width: 1fr; }
    SweepScreen #sweep-error { height: auto; color: $error; }
    SweepScreen .bar-line { height: 1; }
    SweepScreen .bar-line Label { width: 34; }
    SweepScreen .section { color: $text-muted; text-style: bold; }
    SweepScreen #sweep-queue { height: 1fr; }
    SweepScreen #sweep-summary { height: 1fr; }
    SweepScreen #sweep-detail { height: auto; color: $text-muted; }
    """

    class Changed(Message):
        """The runner changed the queue (from its thread)."""

        def __init__(self, state: SweepState) -> None:
            super().__init__()
            self.state = state

    class Progress(Message):
        """A step of the current run (from the engine thread)."""

        def __init__(self, label: str, step: int, total: int) -> None:
            super().__init__()
            self.label, self.step, self.total = label, step, total

    class Ended(Message):
        def __init__(self, state: SweepState | None, error: str = "") -> None:
            super().__init__()
            self.state, self.error = state, error


    def _status_style(self, status: str) -> str:
        if status == "skipped":
            return "dim"
        variable, bold = STATUS_STYLE.get(status, ("", False))
        if not variable:
            return ""
        return ("bold " if bold else "") + theme_color(self.app, variable)
    def __init__(self, engine: Any, file: str | None = None) -> None:
        super().__init__()
        self.engine = engine
        self.file = file or DEFAULT_FILE
        self.sweep: Sweep | None = None
        self.state: SweepState | None = None
        self.runner: Any = None
        self.running = False
        self.rows: list[SummaryRow] = []
        self.step_text = ""

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label("Sweep: runs one after another on this machine", classes="title", id="sweep-title")
            with Horizontal(id="sweep-file-line"):
                yield Label("Sweep file")
                yield Input(self.file, id="sweep-file", compact=True, placeholder="sweep.yaml (enter loads it)")
            yield Static("", id="sweep-error")
            with Horizontal(classes="bar-line"):
                yield Label("sweep: no runs", id="sweep-bar-label")
                yield ProgressBar(total=1, show_eta=False, id="sweep-bar")
            with Horizontal(classes="bar-line"):
                yield Label("run: –", id="run-bar-label")
                yield ProgressBar(total=1, show_eta=False, id="run-bar")
            yield Label("Queue (in order: k skip, u/d move, g start, s stop)", classes="section")
            yield DataTable(id="sweep-queue", cursor_type="row", zebra_stripes=True)
            yield Label("Results, best validation loss first (b loads the best into the Config form)", classes="section")
            yield DataTable(id="sweep-summary", cursor_type="row", zebra_stripes=True)
            yield Static("", id="sweep-detail")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#sweep-queue", DataTable).add_columns("#", "run", "settings", "status", "estimate")
        self.query_one("#sweep-summary", DataTable).add_columns(
            "run", "status", "best val", "step", "tok/s", "peak GB", "time"
        )
        if Path(self.file).is_file():
            self.load(self.file)
        self.query_one("#sweep-queue", DataTable).focus()

    # ------------------------------------------------------------ loading a file

    @on(Input.Submitted, "#sweep-file")
    def _file_submitted(self, event: Input.Submitted) -> None:
        self.load(event.value.strip())
        self.query_one("#sweep-queue", DataTable).focus()

    def action_focus_file(self) -> None:
        self.query_one("#sweep-file", Input).focus()

    def load(self, file: str) -> bool:
        """Read and check a sweep file and show its queue (the saved one when it has run before)."""
        from mlxtui.core.sweep import load_sweep, open_state

        if self.running:
            self.notify("A sweep is running: stop it (s) before loading another.", severity="warning")
            return False
        error = self.query_one("#sweep-error", Static)
        try:
            sweep = load_sweep(file)
            state = open_state(sweep, write=False)
        except SweepError as e:
            error.update(str(e))
            return False
        error.update("")
        if self.runner is not None:
            self.runner.close()
        self.file, self.sweep, self.state, self.runner = file, sweep, state, None
        self.query_one("#sweep-title", Label).update(
            f"Sweep {sweep.name}: {len(sweep.runs)} runs · {sweep.path} · folder {sweep.sweep_dir}"
        )
        self.show_state(state)
        return True

    def _ensure_runner(self) -> Any:
        from mlxtui.core.sweep_runner import SweepRunner

        if self.runner is None and self.sweep is not None:
            self.runner = SweepRunner(
                self.sweep,
                self.engine,
                on_change=lambda state: self.post_message(self.Changed(state)),
                on_progress=lambda label, step, total: self.post_message(self.Progress(label, step, total)),
            )
            self.state = self.runner.state
        return self.runner

    # ------------------------------------------------------------ showing

    def show_state(self, state: SweepState) -> None:
        self.state = state
        queue = self.query_one("#sweep-queue", DataTable)
        cursor = queue.cursor_row
        queue.clear()
        for i, run in enumerate(state.runs, 1):
            settings = " ".join(f"{SHORT.get(k) or k}={fmt_value(v)}" for k, v in run.overrides.items())
            status = run.status + (" ▶" if run.label == state.current else "")
            estimate = "–"
            if run.estimate_bytes:
                estimate = f"{run.estimate_bytes / 2**30:.2f} GB {run.verdict or ''}".strip()
            queue.add_row(
                str(i),
                run.label,
                settings,
                Text(status, style=self._status_style(run.status)),
                Text(
                    ("⚠ " if run.flagged else "") + estimate,
                    style=theme_color(self.app, "error") if run.flagged else "",
                ),
                key=run.label,
            )
        if state.runs:
            queue.move_cursor(row=min(max(cursor, 0), len(state.runs) - 1))
        self.rows = summary_rows(state)
        summary = self.query_one("#sweep-summary", DataTable)
        summary.clear()
        for row in self.rows:
            summary.add_row(
                row.label,
                row.status + (f" {row.iteration}/{row.total_iters}" if row.status != DONE and row.total_iters else ""),
                _num(row.best_val_loss, ".4f"),
                str(row.best_step) if row.best_step is not None else "–",
                _num(row.tokens_per_second, ",.0f"),
                _num(row.peak_memory_gb, ".2f"),
                fmt_duration(row.duration_s) if row.duration_s else "–",
                key=row.label,
            )
        ended = sum(r.status in (DONE, FAILED, SKIPPED) for r in state.runs)
        bar = self.query_one("#sweep-bar", ProgressBar)
        bar.update(total=max(1, len(state.runs)), progress=ended)
        if state.current or self.running:
            where = "running"
        elif state.finished:
            where = "finished"
        elif all(r.status == PENDING and not r.attempts for r in state.runs):
            where = "not started (g)"
        else:
            where = "stopped (g continues)"
        self.query_one("#sweep-bar-label", Label).update(f"sweep {ended}/{len(state.runs)} · {where}"[:33])
        if not state.current:
            self.query_one("#run-bar-label", Label).update("run: –")
            self.query_one("#run-bar", ProgressBar).update(total=1, progress=0)
        self._show_detail()

    def _show_detail(self) -> None:
        run = self.selected()
        detail = self.query_one("#sweep-detail", Static)
        if run is None or self.state is None:
            detail.update("" if self.state else "Give a sweep file (f, then enter); the format is in the README.")
            return
        text = Text()
        text.append(f"{run.label}: {run.status}")
        if run.run_dir:
            text.append(f" · {run.run_dir}")
        if run.resumed_from:
            text.append(f" · resumed at step {', '.join(map(str, run.resumed_from))}")
        if run.message:
            text.append(f"\n{run.message}")
        detail.update(text)

    def selected(self) -> Any:
        queue = self.query_one("#sweep-queue", DataTable)
        if self.state is None or not self.state.runs or queue.cursor_row is None:
            return None
        return self.state.runs[min(max(queue.cursor_row, 0), len(self.state.runs) - 1)]

    @on(DataTable.RowHighlighted, "#sweep-queue")
    def _highlighted(self) -> None:
        self._show_detail()

    @on(Changed)
    def _changed(self, message: Changed) -> None:
        before = self.state.current if self.state is not None else None
        self.show_state(message.state)
        current = message.state.current
        if current and current != before and self.sweep is not None:
            self._say_training(current)

    def _say_training(self, label: str) -> None:
        """The app did not submit this train job: tell it one is on its way (status line, the
        model it will hold), as it does for a run it starts itself."""
        from mlxtui.tui.status import Status

        app: Any = self.app
        if self.sweep is None or not hasattr(app, "show_status"):
            return
        app.training_loads(self.sweep.run(label).config)
        app.show_status(Status(state="training", model=app.status.model, message=f"sweep: {label}"))

    @on(Progress)
    def _progress(self, message: Progress) -> None:
        count = f" {message.step}/{message.total}"
        self.query_one("#run-bar-label", Label).update(f"run {message.label}"[: 33 - len(count)] + count)
        self.query_one("#run-bar", ProgressBar).update(total=max(1, message.total), progress=message.step)

    @on(Ended)
    def _ended(self, message: Ended) -> None:
        self.running = False
        if message.error:
            self.notify(message.error, title="The sweep stopped", severity="error")
        if message.state is not None:
            self.show_state(message.state)
            self._write_outputs(message.state)

    def _write_outputs(self, state: SweepState) -> None:
        from mlxtui.core.sweep_summary import write_outputs

        if self.sweep is None:
            return
        try:
            _table, best_path, best = write_outputs(self.sweep.sweep_dir, state)
        except OSError as e:
            self.notify(f"cannot write the summary: {e}", severity="error")
            return
        left = [r for r in state.runs if r.status not in (DONE, FAILED, SKIPPED)]
        what = f"stopped with {len(left)} run(s) left (g continues)" if left else "finished"
        best_text = f"; best: {best.label} ({best.best_val_loss:.4f}), b loads it" if best else ""
        self.notify(f"Sweep {state.name} {what}{best_text}", title="Sweep")
        if best_path is not None:
            self.query_one("#sweep-detail", Static).update(f"best config written to {best_path}")

    # ------------------------------------------------------------ actions

    def action_start(self) -> None:
        if self.sweep is None:
            self.notify("Load a sweep file first (f, type its path, enter).", severity="warning")
            return
        if self.running:
            self.notify("The sweep is running (s stops it).")
            return
        if self.engine is None:
            self.notify("The engine is not running.", severity="error")
            return
        if getattr(self.app, "status", None) is not None and self.app.status.busy_training:  # type: ignore[attr-defined]
            self.notify("Training is running: stop it before starting a sweep.", severity="warning")
            return
        try:
            runner = self._ensure_runner()
        except SweepError as e:
            self.query_one("#sweep-error", Static).update(str(e))
            return
        runner.allow()  # a stopped sweep continues
        self.running = True
        self.show_state(runner.state)
        self.app.run_worker(lambda: self._drive(runner), thread=True, exclusive=True, group="sweep", exit_on_error=False)

    def _drive(self, runner: Any) -> None:
        """The worker thread: estimate, then train the queue (waiting on the engine)."""
        try:
            flagged = runner.preflight()
            if flagged:
                names = ", ".join(r.label for r in flagged)
                self.app.call_from_thread(
                    self.notify,
                    f"the memory estimate says these will not fit: {names} (k skips a run)",
                    title="Sweep",
                    severity="warning",
                )
            state = runner.run()
        except Exception as e:  # noqa: BLE001 - said on screen; the queue on disk stays as it was
            self.post_message(self.Ended(runner.state, f"{type(e).__name__}: {e}"))
            return
        self.post_message(self.Ended(state))

    def action_skip(self) -> None:
        run = self.selected()
        if run is None:
            return
        self._edit(lambda runner: runner.skip(run.label))

    def action_move(self, delta: int) -> None:
        run = self.selected()
        if run is None:
            return
        self._edit(lambda runner: runner.move(run.label, delta))
        queue = self.query_one("#sweep-queue", DataTable)
        if self.state is not None:
            labels = [r.label for r in self.state.runs]
            queue.move_cursor(row=labels.index(run.label))

    def _edit(self, change: Any) -> None:
        try:
            runner = self._ensure_runner()
        except SweepError as e:
            self.query_one("#sweep-error", Static).update(str(e))
            return
        if runner is None:
            return
        change(runner)
        self.show_state(runner.state)

    def action_stop(self) -> None:
        if not self.running or self.runner is None:
            self.notify("The sweep is not running.")
            return
        self.runner.stop()
        self.notify("Stopping the sweep: the run saves after its step; g continues it later.")

    def action_load_best(self) -> None:
        from mlxtui.core.config import ConfigError
        from mlxtui.core.sweep_summary import best_config, best_row
        from mlxtui.tui.widgets.config_form import ConfigForm

        best = best_row(self.rows)
        if best is None:
            self.notify("No run has a validation loss yet.", severity="warning")
            return
        try:
            config = best_config(best)
        except (ConfigError, OSError) as e:
            self.notify(f"{best.run_dir}: {e}", severity="error")
            return
        self.app.pop_screen()
        form = self.app.screen_stack[0].query_one(ConfigForm)
        form.load_config(config)
        self.app.notify(f"Config pane: the settings of {best.label} (best val loss {best.best_val_loss:.4f}); t trains them")


def open_sweep_screen(app: Any) -> SweepScreen:
    """Show the sweep screen (one per app: it keeps the queue while closed)."""
    screen = getattr(app, "_sweep_screen", None)
    if screen is None:
        screen = SweepScreen(app.engine)
        app._sweep_screen = screen
        app.install_screen(screen, name="sweep")
    if app.screen is not screen:
        app.push_screen(screen)
    return screen
